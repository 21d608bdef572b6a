"""A provider scene on a farm: its footage is generated once (one paid call), stored, and every node
that renders one of its ranges conforms that same clip; later edits that leave it alone reuse it.
Runway is the real `runwayml` SDK on the nodes against a fake of Runway's API on loopback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from farm import Farm
from lookalike.client import Client
from lookalike.coordinator.state import open_state
from lookalike.nodes import media
from lookalike.v1 import coordinator_pb2, coordinator_pb2_grpc
from synth import make_clip

sys.path.insert(0, str(Path(__file__).parent / "nodes" / "providers"))
from provider_fakes import FakeAPI, reply_json, write_clip  # noqa: E402

pytestmark = pytest.mark.slow


def _frames(path):
    return np.stack([f for _, _, f in media.iter_frames(str(path))])


@pytest.fixture
def runway(tmp_path):
    api = FakeAPI()
    clip = write_clip(tmp_path / "clip.mp4").read_bytes()
    api.calls = []  # type: ignore[attr-defined]

    def create(r):
        api.calls.append(r.json())
        return reply_json({"id": "task-1"})

    api.route("POST", r"^/v1/image_to_video$", create)
    api.route("GET", r"^/v1/tasks/task-1$", lambda r: reply_json(
        {"id": "task-1", "status": "SUCCEEDED", "createdAt": "2026-01-01T00:00:00Z", "cost": {"credits": 25},
         "output": [f"{api.url}/out/task-1.mp4"]}))
    api.route("GET", r"^/out/task-1.mp4$", lambda r: (200, {"content-type": "video/mp4"}, clip))
    yield api
    api.close()


def test_a_provider_scene_is_generated_once_for_the_whole_farm(tmp_path, runway):
    sample = tmp_path / "sample.mp4"
    make_clip(sample, [(30, (230, 170, 90), 2.0), (36, (90, 130, 230), -2.0)])
    farm = Farm(tmp_path / "farm", nodes=2, env={"LOOKALIKE_RUNWAY_API_KEY": "key-123",
                                                 "LOOKALIKE_RUNWAY_BASE_URL": runway.url, "LOOKALIKE_POLL_S": "0.05"})
    try:
        with Client(farm.address) as c, grpc.insecure_channel(farm.address) as ch:
            p = c.remake(sample, out=tmp_path / "v1", chunk_frames=6)
            stub = coordinator_pb2_grpc.CoordinatorStub(ch)
            plan = json.loads(stub.GetScenes(coordinator_pb2.ProjectRef(project_id=p.id)).json)
            plan["scenes"][1].update(provider="runway", model="gen4_turbo")
            stub.UpdateScenes(coordinator_pb2.UpdateScenesRequest(project_id=p.id, plan_json=json.dumps(plan)))
            stub.GenerateScenes(coordinator_pb2.GenerateScenesRequest(project_id=p.id))
            c.wait(p.id)
            c.fetch_outputs(p.id, tmp_path / "v2")
            assert len(runway.calls) == 1, "the provider was paid more than once for one scene"
            # An edit of the other scene renders it again beside the stored clip: no new call.
            stub.ChatPlan(coordinator_pb2.ChatPlanRequest(project_id=p.id, message="make scene 1 brighter"))
            stub.GenerateScenes(coordinator_pb2.GenerateScenesRequest(project_id=p.id))
            c.wait(p.id)
            assert len(runway.calls) == 1, "an unchanged provider scene was generated again"
        with open_state(f"sqlite:///{(farm.home / 'state.db').resolve()}") as st:
            jobs = st.jobs(p.id)
            gen = [j for j in jobs if j.kind == "generate_scene"]
            assert len(gen) == 1 and gen[0].scene_index == 1 and gen[0].result["provider"] == "runway"
            ranges = [j for j in jobs if j.kind == "render_range" and j.scene_index == 1 and (j.spec or {}).get("v") == 2]
            nodes = {a.node_id for j in ranges for a in st.attempts(j.id) if a.state == "succeeded"}
            assert len(ranges) == 6 and len(nodes) == 2, (len(ranges), nodes)
    finally:
        farm.close()
    a, b = _frames(tmp_path / "v1" / "final.mp4"), _frames(tmp_path / "v2" / "final.mp4")
    assert np.array_equal(a[:30], b[:30])
    # Scene 2 now shows the provider's clip, conformed (graded toward the blue scene): flat regions with
    # the clip's band on the left third, where the compositor drew a textured world.
    scene = b[30:].astype(float)
    w = scene.shape[2]
    left, right = scene[:, 10:-10, 4 : w // 3 - 4], scene[:, 10:-10, w // 2 :]
    assert np.abs(left.mean(axis=(1, 2)) - right.mean(axis=(1, 2))).max(axis=1).min() > 20
    assert left.std(axis=(1, 2)).max() < 6 and not np.array_equal(a[30:], b[30:])


def test_provider_limits_hold_for_the_whole_farm_not_per_node(tmp_path):
    """Four Runway scenes on two nodes with LOOKALIKE_CONCURRENCY=1: each node alone would allow one
    task at a time, two at once in all; the coordinator starts them so that Runway never sees more
    than one task running."""
    import threading
    import time

    api = FakeAPI()
    clip = write_clip(tmp_path / "clip.mp4").read_bytes()
    lock, tasks, peak = threading.Lock(), {}, [0]

    def running() -> int:
        return sum(1 for t in tasks.values() if t is not None)

    def create(r):
        with lock:
            tid = f"task-{len(tasks)}"
            tasks[tid] = time.monotonic()
            peak[0] = max(peak[0], running())
        return reply_json({"id": tid})

    def task(r):
        tid = r.path.split("?")[0].rsplit("/", 1)[1]
        with lock:
            started = tasks[tid]
            done = started is None or time.monotonic() - started > 0.5
            if done:
                tasks[tid] = None
        body = {"id": tid, "status": "SUCCEEDED" if done else "RUNNING", "createdAt": "2026-01-01T00:00:00Z"}
        if done:
            body["output"] = [f"{api.url}/out/clip.mp4"]
        return reply_json(body)

    api.route("POST", r"^/v1/image_to_video$", create)
    api.route("GET", r"^/v1/tasks/task-\d+$", task)
    api.route("GET", r"^/out/clip.mp4$", lambda r: (200, {"content-type": "video/mp4"}, clip))
    sample = tmp_path / "sample.mp4"
    make_clip(sample, [(16, (230, 170, 90), 2.0), (16, (90, 130, 230), -2.0), (16, (200, 90, 180), 0.0),
                       (16, (90, 200, 120), 1.0)])
    farm = Farm(tmp_path / "farm", nodes=2, env={
        "LOOKALIKE_RUNWAY_API_KEY": "key-123", "LOOKALIKE_RUNWAY_BASE_URL": api.url, "LOOKALIKE_POLL_S": "0.05",
        "LOOKALIKE_CONCURRENCY": "1", "LOOKALIKE_REQUESTS_PER_MINUTE": "600"})
    try:
        with Client(farm.address) as c, grpc.insecure_channel(farm.address) as ch:
            p = c.remake(sample, out=tmp_path / "v1", chunk_frames=8)
            stub = coordinator_pb2_grpc.CoordinatorStub(ch)
            plan = json.loads(stub.GetScenes(coordinator_pb2.ProjectRef(project_id=p.id)).json)
            assert len(plan["scenes"]) == 4
            for s in plan["scenes"]:
                s.update(provider="runway", model="gen4_turbo")
            stub.UpdateScenes(coordinator_pb2.UpdateScenesRequest(project_id=p.id, plan_json=json.dumps(plan)))
            stub.GenerateScenes(coordinator_pb2.GenerateScenesRequest(project_id=p.id))
            assert c.wait(p.id).state == "done"
        with open_state(f"sqlite:///{(farm.home / 'state.db').resolve()}") as st:
            gen = [j for j in st.jobs(p.id) if j.kind == "generate_scene"]
        assert len(gen) == 4 and all(j.result["provider"] == "runway" for j in gen)
        assert len(tasks) == 4 and peak[0] == 1, f"Runway saw {peak[0]} tasks at once"
    finally:
        farm.close()
        api.close()
