"""The CLI commands other than remake, against a loopback farm; health and reflection on every server."""

from __future__ import annotations

import json

import grpc
import pytest
from farm import MEDIA, Farm, cli
from synth import make_clip


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    f = Farm(tmp_path_factory.mktemp("farm"), nodes=1)
    yield f
    f.close()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("s") / "sample.mp4"
    return path, make_clip(path, [(30, (250, 180, 80), 2.0), (26, (80, 120, 250), 0.0)])


def test_analyze_writes_analysis_json(tmp_path, farm, sample):
    path, truth = sample
    out = tmp_path / "a.json"
    r = cli("analyze", str(path), "--out", str(out), "--cluster", farm.address)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["schema"] == "lookalike.analysis/1"
    assert [s["start_frame"] for s in doc["scenes"][1:]] == truth["cuts"]
    assert doc["source"]["n_frames"] == truth["n_frames"]


def test_score_compares_two_files(tmp_path, sample):
    path, _ = sample
    r = cli("score", str(path), str(path), "--out", str(tmp_path / "s.json"), "--report", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["schema"] == "lookalike.similarity/1"
    assert doc["pacing"] == pytest.approx(100.0)
    assert "<html" in (tmp_path / "r.html").read_text()


def test_submit_status_watch_and_cancel(tmp_path, farm, sample):
    path, truth = sample
    manifest = tmp_path / "batch.json"
    manifest.write_text(json.dumps([{"sample": str(path), "out": "one"}, {"sample": str(path), "name": "second"}]))
    r = cli("submit", str(manifest), "--cluster", farm.address, "--wait")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    ids = [x["project_id"] for x in lines if x.get("state") == "done"]
    assert len(ids) == 2
    assert (tmp_path / "one" / "final.mp4").is_file()
    r = cli("status", ids[0], "--cluster", farm.address)
    assert r.returncode == 0 and json.loads(r.stdout)["state"] == "done"
    r = cli("watch", ids[1], "--cluster", farm.address)
    assert r.returncode == 0, r.stderr
    # Cancelling a finished project changes nothing; an unknown one is a clear error.
    r = cli("cancel", ids[0], "--cluster", farm.address)
    assert r.returncode == 0 and json.loads(r.stdout)["state"] == "done"
    r = cli("cancel", "0" * 32, "--cluster", farm.address)
    assert r.returncode == 2 and "no project" in r.stderr


def test_cancel_stops_a_running_project(tmp_path, farm):
    from lookalike.client import Client

    from lookalike.errors import CancelledError

    # Long enough (many small ranges) that the render is still under way when the cancel arrives.
    path = tmp_path / "long.mp4"
    make_clip(path, [(120, (250, 180, 80), 2.0), (120, (80, 120, 250), 0.0)], size=(320, 180))
    with Client(farm.address) as c:
        p = c.submit(path, chunk_frames=2)
        for ev in c.watch(p.id):
            if ev.stage == "rendering":
                break
        assert c.cancel(p.id).state == "cancelled"
        with pytest.raises(CancelledError):
            c.wait(p.id)
    r = cli("status", p.id, "--cluster", farm.address)
    assert r.returncode == 0 and json.loads(r.stdout)["state"] == "cancelled"


@pytest.mark.parametrize("service", ["lookalike.v1.Coordinator", "lookalike.v1.NodeRegistry"])
def test_coordinator_health_and_reflection(farm, service):
    _check_health_and_reflection(farm.address, service)


def test_node_health_and_reflection(farm):
    from lookalike.client import Client

    # A node's address is in its log line; ask the coordinator's node for one through a probe run.
    log = (farm.home / "farm.log").read_text()
    addr = next(json.loads(x)["address"] for x in log.splitlines() if '"node_started"' in x)
    _check_health_and_reflection(addr, "lookalike.v1.Node")
    assert Client  # the SDK imports next to a farm, too


def _check_health_and_reflection(address, service):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(address) as ch:
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for r in replies for s in r.list_services_response.service}
        assert service in names


def test_shared_rotated_clip_keeps_portrait(tmp_path, farm):
    """A sample with rotation metadata is remade in its display orientation (portrait)."""
    out = tmp_path / "out"
    r = cli("remake", str(MEDIA / "shots" / "issue-134-rotate.mp4"), "--out", str(out), "--cluster", farm.address,
            "--quiet", timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    from lookalike.nodes import media

    info = media.probe(str(out / "final.mp4"))
    assert (info.width, info.height, info.n_frames) == (544, 1280, 240)
    analysis = json.loads((out / "analysis.json").read_text())
    assert [s["start_frame"] for s in analysis["scenes"][1:]] == [90, 210]


def test_formats_resolution_aspect_and_timeline(tmp_path, farm, sample):
    path, truth = sample
    out = tmp_path / "out"
    r = cli("remake", str(path), "--out", str(out), "--cluster", farm.address, "--quiet", "--formats", "mp4,webm",
            "--resolution", "720p", "--aspect", "9:16")
    assert r.returncode == 0, r.stderr[-2000:]
    from lookalike.nodes import media

    for name, codec in (("final.mp4", "h264"), ("final.webm", "vp9")):
        info = media.probe(str(out / name))
        assert (info.width, info.height, info.n_frames, info.video_codec) == (720, 1280, truth["n_frames"], codec)
        assert info.has_audio
    import opentimelineio as otio

    tl = otio.adapters.read_from_file(str(out / "timeline.otio"))
    assert sum(c.source_range.duration.value for c in tl.video_tracks()[0].find_clips()) == truth["n_frames"]
    r = cli("remake", str(path), "--out", str(tmp_path / "x"), "--cluster", farm.address, "--formats", "gif")
    assert r.returncode == 2 and "formats" in r.stderr
