"""Edits after a remake: ChatPlan and ApplyEffects change the plan, GenerateScenes re-renders only the
scenes that changed, and the fix loop raises the score toward a target."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
from farm import Farm
from lookalike.client import Client
from lookalike.coordinator.state import open_state
from lookalike.kernels.grade import measure_grade
from lookalike.nodes import media
from lookalike.v1 import coordinator_pb2, coordinator_pb2_grpc
from synth import make_clip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    f = Farm(tmp_path_factory.mktemp("farm"), nodes=2)
    yield f
    f.close()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("s") / "sample.mp4"
    return path, make_clip(path, [(30, (230, 170, 90), 2.0), (30, (90, 130, 230), -2.0), (24, (200, 90, 200), 0.0)])


def _frames(path):
    return np.stack([f for _, _, f in media.iter_frames(str(path))])


def _render_jobs(farm, project_id, version):
    with open_state(f"sqlite:///{(farm.home / 'state.db').resolve()}") as st:
        return [j for j in st.jobs(project_id) if j.kind == "render_range" and (j.spec or {}).get("v", 1) == version]


def test_chat_edit_rerenders_only_the_scene_it_touches(tmp_path, farm, sample):
    path, truth = sample
    with Client(farm.address) as c, grpc.insecure_channel(farm.address) as ch:
        p = c.remake(path, out=tmp_path / "v1", chunk_frames=10)
        stub = coordinator_pb2_grpc.CoordinatorStub(ch)
        # A dry run shows the operations and the diff and writes nothing.
        dry = stub.ChatPlan(coordinator_pb2.ChatPlanRequest(project_id=p.id, message="make scene 2 brighter",
                                                            dry_run=True))
        assert dry.version == 0 and dry.plan.version == 1 and dry.source == "local"
        preview = json.loads(dry.changes_json)
        assert preview and all(c["new_index"] == 1 for c in preview) and "scene 2" in dry.reply
        reply = stub.ChatPlan(coordinator_pb2.ChatPlanRequest(project_id=p.id, message="make scene 2 brighter"))
        ops = json.loads(reply.operations_json)
        assert ops and all(op.get("scene") == 1 for op in ops)
        assert reply.plan.version == 2 and reply.version == 2
        assert json.loads(reply.changes_json) == preview  # what was shown is what was applied
        stub.GenerateScenes(coordinator_pb2.GenerateScenesRequest(project_id=p.id))
        c.wait(p.id)
        c.fetch_outputs(p.id, tmp_path / "v2")
        # "Warmer" on this strongly blue scene: the grade solver must not trade it away for saturation.
        stub.ChatPlan(coordinator_pb2.ChatPlanRequest(project_id=p.id, message="make scene 2 warmer"))
        stub.GenerateScenes(coordinator_pb2.GenerateScenesRequest(project_id=p.id))
        c.wait(p.id)
        c.fetch_outputs(p.id, tmp_path / "v3")
    new_jobs = _render_jobs(farm, p.id, 2)
    assert new_jobs and {j.scene_index for j in new_jobs} == {1}
    a, b = _frames(tmp_path / "v1" / "final.mp4"), _frames(tmp_path / "v2" / "final.mp4")
    assert a.shape == b.shape
    assert np.array_equal(a[:30], b[:30]) and np.array_equal(a[60:], b[60:])
    # Exposure as the grade kernels define it, on the scene's frames side by side.
    bright = lambda x: measure_grade(x.reshape(-1, x.shape[2], 3))["exposure"]  # noqa: E731
    assert bright(b[30:60]) > bright(a[30:60]) + 0.2
    plan = json.loads((tmp_path / "v2" / "plan.json").read_text())
    assert plan["scenes"][1]["grade"]["exposure"] > json.loads((tmp_path / "v1" / "plan.json").read_text())["scenes"][1]["grade"]["exposure"]
    c3 = _frames(tmp_path / "v3" / "final.mp4")
    warmth = lambda x: measure_grade(x.reshape(-1, x.shape[2], 3))["temperature"]  # noqa: E731
    assert warmth(c3[30:60]) > warmth(b[30:60]) + 0.03, (warmth(b[30:60]), warmth(c3[30:60]))
    assert np.array_equal(c3[:30], b[:30]) and np.array_equal(c3[60:], b[60:])


def test_apply_effects_rpc_adds_grain_to_one_scene(tmp_path, farm, sample):
    path, _ = sample
    with Client(farm.address) as c, grpc.insecure_channel(farm.address) as ch:
        p = c.remake(path, out=tmp_path / "v1", chunk_frames=10)
        stub = coordinator_pb2_grpc.CoordinatorStub(ch)
        stub.ApplyEffects(coordinator_pb2.ProjectEffectsRequest(
            project_id=p.id, effects_json=json.dumps([{"effect": "film_grain", "strength": 0.8, "scene": 2}])))
        c.wait(p.id)
        c.fetch_outputs(p.id, tmp_path / "v2")
        with pytest.raises(grpc.RpcError) as err:
            stub.ApplyEffects(coordinator_pb2.ProjectEffectsRequest(project_id=p.id, effects_json='[{"effect": "warp"}]'))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    a, b = _frames(tmp_path / "v1" / "final.mp4"), _frames(tmp_path / "v2" / "final.mp4")
    assert np.array_equal(a[:60], b[:60])
    assert np.abs(a[60:].astype(int) - b[60:].astype(int)).mean() > 2.0
    assert {j.scene_index for j in _render_jobs(farm, p.id, 2)} == {2}


def test_fix_loop_raises_the_score_and_keeps_the_best_round(tmp_path, farm, sample):
    """A plan edited far off the sample (scene 2 much too cold and dark) scores lower; GenerateScenes with a
    target runs fix rounds whose suggestions pull it back, and the best round is what comes out."""
    path, _ = sample
    with Client(farm.address) as c, grpc.insecure_channel(farm.address) as ch:
        p = c.remake(path, chunk_frames=10)
        stub = coordinator_pb2_grpc.CoordinatorStub(ch)
        plan = json.loads(stub.GetScenes(coordinator_pb2.ProjectRef(project_id=p.id)).json)
        plan["scenes"][1]["grade"].update(temperature=-0.9, exposure=plan["scenes"][1]["grade"]["exposure"] - 1.5)
        stub.UpdateScenes(coordinator_pb2.UpdateScenesRequest(project_id=p.id, plan_json=json.dumps(plan)))
        stub.GenerateScenes(coordinator_pb2.GenerateScenesRequest(project_id=p.id, target=99.5, max_rounds=2))
        c.wait(p.id)
        c.fetch_outputs(p.id, tmp_path / "out")
    with open_state(f"sqlite:///{(farm.home / 'state.db').resolve()}") as st:
        scores = {(j.spec or {}).get("v", 1): j.result["similarity"]["overall"]
                  for j in st.jobs(p.id) if j.kind == "score"}
    edited = min(v for v in scores if v > 1)
    fixed = {v: s for v, s in scores.items() if v > edited}
    assert fixed, f"no fix round ran: {scores}"
    assert max(fixed.values()) > scores[edited], scores
    sim = json.loads((tmp_path / "out" / "similarity.json").read_text())
    assert sim["overall"] == pytest.approx(max(s for v, s in scores.items() if v >= edited))


def test_a_voice_line_remixes_the_audio_and_renders_no_frames(tmp_path, farm, sample):
    path, _ = sample
    with Client(farm.address) as c, grpc.insecure_channel(farm.address) as ch:
        p = c.remake(path, out=tmp_path / "v1", chunk_frames=10)
        stub = coordinator_pb2_grpc.CoordinatorStub(ch)
        reply = stub.ChatPlan(coordinator_pb2.ChatPlanRequest(project_id=p.id,
                                                              message="voice line for scene 1: hello there"))
        assert json.loads(reply.operations_json)[0]["op"] == "set_voice_line"
        stub.GenerateScenes(coordinator_pb2.GenerateScenesRequest(project_id=p.id))
        c.wait(p.id)
        c.fetch_outputs(p.id, tmp_path / "v2")
    assert _render_jobs(farm, p.id, 2) == []
    assert np.array_equal(_frames(tmp_path / "v1" / "final.mp4"), _frames(tmp_path / "v2" / "final.mp4"))
    a, _ = media.read_audio(str(tmp_path / "v1" / "final.mp4"), rate=16000)
    b, _ = media.read_audio(str(tmp_path / "v2" / "final.mp4"), rate=16000)
    n = min(len(a), len(b), 16000)  # the line starts with scene 1, at 0 s
    assert np.sqrt(np.mean((a[:n] - b[:n]) ** 2)) > 0.01, "the voice line is not in the mix"


def test_add_transitions_renders_a_dissolve_across_the_boundary(tmp_path, farm, sample):
    path, _ = sample
    with Client(farm.address) as c, grpc.insecure_channel(farm.address) as ch:
        p = c.remake(path, out=tmp_path / "v1", chunk_frames=10)
        stub = coordinator_pb2_grpc.CoordinatorStub(ch)
        stub.AddTransitions(coordinator_pb2.ProjectTransitionsRequest(
            project_id=p.id, transitions_json=json.dumps([{"scene": 1, "kind": "dissolve", "n_frames": 12}])))
        c.wait(p.id)
        c.fetch_outputs(p.id, tmp_path / "v2")
    a, b = _frames(tmp_path / "v1" / "final.mp4"), _frames(tmp_path / "v2" / "final.mp4")
    # Ranges without transition frames are the same; frames that share a segment with the dissolve are
    # re-encoded with it (a different GOP), so only nearly the same.
    assert np.array_equal(a[:20], b[:20]) and np.array_equal(a[40:], b[40:])
    for i in [*range(20, 24), *range(36, 40)]:
        mse = np.mean((a[i].astype(float) - b[i].astype(float)) ** 2)
        assert mse == 0 or 10 * np.log10(255**2 / mse) > 35, i
    diff = np.abs(a.astype(int) - b.astype(int)).reshape(len(a), -1).mean(axis=1)
    assert all(diff[i] > 1.0 for i in range(25, 35)), diff[24:36]
    # The middle of the dissolve is about the average of the two held frames.
    mid = b[30].astype(float)
    avg = (a[29].astype(float) + a[30].astype(float)) / 2
    assert np.abs(mid - avg).mean() < np.abs(a[30].astype(float) - a[23].astype(float)).mean()
