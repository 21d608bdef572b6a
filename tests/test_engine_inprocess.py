"""The real remake Engine end to end in one process: no Ray, no subprocess, no gRPC server.

The coordinator side is the real `Engine` over the real `Dispatcher` on an `InProcessTransport`; the
node side is the real node code (`NodeRuntime` wrapped by `NodeServicer`, with its `@mapped` error
mapping) called from the transport's handler with a fake gRPC context. State is SQLite and the store a
folder, both under a tmp_path home, opened as `coordinator/service.py`'s `Coordinator` opens them.

What the real farm sets up and these tests set up by hand (the minimum the Engine needs):
- a registered node (`dispatcher.register`) that stays alive: `node_timeout_s` is large, so it is
  never reaped; a heartbeat thread is still needed, because a node that answers UNAVAILABLE is taken
  out (`down_until`) until its next heartbeat, and with one node the retry would wait forever;
- the sample in the store under an upload key (`uploads/<32 hex>/sample.mp4`, as `Upload` writes it);
  the engine only reads `sample_key`, no meta.json is needed since `_validate` is not run;
- the options `_validate` gives a plain remake.
No environment variable, node registration metadata or control port is needed. Every Node method the
engine calls (Probe, Analyze, RenderRange, RenderAudio, Assemble, Score) is unary; only Decode is
server-streaming and the engine never calls it, so the handler refuses streaming methods.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import av
import grpc
import pytest
from lookalike.coordinator.dispatch import Dispatcher
from lookalike.coordinator.engine import Engine
from lookalike.coordinator.state import open_state
from lookalike.coordinator.transport import STORE_DOWN, InProcessTransport, TransportError, current_call
from lookalike.nodes.runtime import NodeRuntime
from lookalike.nodes.server import NodeServicer
from lookalike.v1 import node_pb2
from synth import make_clip

from lookalike.errors import KIND_KEY, StoreError, error_kind
from lookalike.settings import Settings
from lookalike.store import open_store

pytestmark = pytest.mark.timeout(240)

JOIN_S = 150.0  # a whole remake of the small sample takes seconds; past this the engine is hung
NODE_METHODS = node_pb2.DESCRIPTOR.services_by_name["Node"].methods_by_name
SHOTS = [(30, (250, 180, 80), 2.0), (26, (80, 120, 250), -2.0), (24, (200, 90, 200), 0.0)]
SIZE = (160, 90)
UPLOAD = "0123456789abcdef0123456789abcdef"


# -- the node side, in process -----------------------------------------------------------------


class Aborted(Exception):
    """What the fake context's abort raises (as grpc's does), with the status it was given."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing: tuple) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code, self.details, self.trailing = code, details, trailing


@dataclass
class FakeContext:
    """The part of grpc.ServicerContext that NodeServicer and lookalike.grpcutil.mapped use."""

    trailing: tuple = ()
    status: grpc.StatusCode | None = None
    details: str = ""
    metadata: tuple = field(default_factory=tuple)

    def is_active(self) -> bool:  # RenderRange's should_stop: follows the coordinator's cancel
        call = current_call()
        return call is None or not call.cancelled.is_set()

    def invocation_metadata(self) -> tuple:
        return self.metadata

    def set_trailing_metadata(self, md) -> None:
        self.trailing = tuple(md)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.status = code

    def set_details(self, details: str) -> None:
        self.details = details

    def code(self) -> grpc.StatusCode | None:
        return self.status

    def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        self.status, self.details = code, details
        raise Aborted(code, details, self.trailing)


def servicer_handler(servicer):
    """An InProcessTransport handler over a Node servicer: request bytes decoded by the method's input
    type, the servicer called with a FakeContext, its abort turned into the code the Ray gateway
    would answer (STORE_DOWN when the trailing metadata names a StoreError)."""

    def handle(address: str, method: str, payload: bytes):
        desc = NODE_METHODS.get(method)
        if desc is None:
            raise TransportError("UNIMPLEMENTED", f"Node has no method {method}")
        if desc.client_streaming or desc.server_streaming:
            raise TransportError("UNIMPLEMENTED", f"Node.{method} is streaming; the transport is unary only")
        request = getattr(node_pb2, desc.input_type.name).FromString(payload)
        ctx = FakeContext()
        try:
            return getattr(servicer, method)(request, ctx)
        except Aborted as exc:
            if error_kind(exc.trailing) == "StoreError":
                raise TransportError(STORE_DOWN, exc.details) from None
            raise TransportError(exc.code.name, exc.details) from None

    return handle


# -- the farm ------------------------------------------------------------------------------------


@dataclass
class Farm:
    engine: Engine
    dispatcher: Dispatcher
    state: object
    store: object
    sample_key: str
    truth: dict
    calls: list = field(default_factory=list)  # (method, code) of every node call, in order
    faults: dict = field(default_factory=dict)  # method -> callable(n-th call of it) -> TransportError | None


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict:
    """Three shots (cuts at 30 and 56, 80 frames at 24 fps, 160x90): with a 120 bpm click track, and
    without sound."""
    folder = tmp_path_factory.mktemp("sample")
    return {bpm: (folder / f"sample-{bpm}.mp4", make_clip(folder / f"sample-{bpm}.mp4", SHOTS, size=SIZE, bpm=bpm))
            for bpm in (120.0, None)}


@pytest.fixture
def sample(request, samples):
    """The sample with sound, unless a test is parametrized with `sample` = None (no audio stream)."""
    return samples[getattr(request, "param", 120.0)]


@pytest.fixture
def farm(tmp_path, sample) -> Iterator[Farm]:
    settings = Settings(home=tmp_path / "home", max_attempts=3)
    settings.home.mkdir(parents=True)
    state = open_state(settings.resolved_db_url)
    store = open_store(settings.resolved_store_url)
    path, truth = sample
    sample_key = f"uploads/{UPLOAD}/sample.mp4"
    store.put_file(sample_key, path)
    node = servicer_handler(NodeServicer(NodeRuntime(store, node_id="n1", cache_dir=str(tmp_path / "cache"))))
    farm: Farm
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def handler(address, method, payload):
        with lock:
            counts[method] = n = counts.get(method, 0) + 1
        fault = farm.faults.get(method)
        err = fault(n) if fault else None
        try:
            if err is not None:
                raise err
            reply = node(address, method, payload)
        except TransportError as exc:
            farm.calls.append((method, exc.code))
            raise
        farm.calls.append((method, "OK"))
        return reply

    dispatcher = Dispatcher(state, transport=InProcessTransport(handler), node_timeout_s=3600.0,
                            call_timeout_s=120.0, discard=store.delete)
    dispatcher.register("n1", "inproc:1", ("cpu",), 2)
    stop = threading.Event()

    def beats() -> None:  # as NodeProcess._heartbeats: brings a node answered UNAVAILABLE back
        while not stop.wait(0.1):
            dispatcher.heartbeat("n1")

    beat = threading.Thread(target=beats, name="heartbeat", daemon=True)
    beat.start()
    engine = Engine(settings, state, store, dispatcher)
    farm = Farm(engine, dispatcher, state, store, sample_key, truth)
    yield farm
    stop.set()
    beat.join(5)
    for pid in engine.running():  # a test that failed mid-run: stop its project before closing the farm
        engine.cancel(pid)
        engine.join(pid, 10)
    dispatcher.close()
    state.close()


def plain_options() -> dict:
    """What CoordinatorServicer._validate gives a remake with default options."""
    return {"keep_audio": False, "keep_video": False, "chunk_frames": None, "seed": 7, "codec": "libx264", "crf": 20,
            "sample_name": "sample", "priority": 0, "require": [], "target": None, "max_rounds": 0, "formats": [],
            "resolution": "source", "aspect": "", "loudness": None, "text": [], "script": "",
            "keep_media_audio": False}


def remake(farm: Farm) -> str:
    """Submit a plain remake and wait for its thread; a hang fails the test."""
    p = farm.engine.submit("acme", "sample", farm.sample_key, "", plain_options())
    t0 = time.time()
    assert farm.engine.join(p.id, timeout=JOIN_S), (
        f"the engine did not finish within {JOIN_S:.0f} s: {farm.state.get_project(p.id)}")
    assert time.time() - t0 < JOIN_S
    return p.id


def probe(path) -> tuple[int, int, int, float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return n, s.codec_context.width, s.codec_context.height, float(s.average_rate)


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", [120.0, None], ids=["with-audio", "silent"], indirect=True)
def test_a_plain_remake_runs_to_done_in_process(farm):
    pid = remake(farm)
    p = farm.state.get_project(pid)
    assert p.state.value == "done", p.error
    truth = farm.truth

    local = farm.store.local_path(farm.engine.output(pid, "final.mp4"))
    assert local is not None
    assert probe(local) == (truth["n_frames"], *truth["size"], float(truth["fps"]))
    with av.open(local) as c:  # the remake makes new sound for the length of the sample either way
        assert len(c.streams.audio) == 1

    plan = json.loads(farm.store.get_bytes(farm.engine.output(pid, "plan.json")))
    starts = [s["start_frame"] for s in plan["scenes"]]
    assert len(starts) == len(truth["cuts"]) + 1 and starts[0] == 0
    assert all(abs(a - b) <= 1 for a, b in zip(starts[1:], truth["cuts"], strict=True)), starts
    assert plan["scenes"][-1]["end_frame"] == truth["n_frames"]

    jobs = farm.state.jobs(pid)
    kinds = {j.kind for j in jobs}
    assert {"analyze_range", "analyze_audio", "analyze_merge", "render_range", "render_audio", "assemble",
            "score"} <= kinds
    assert all(j.state == "succeeded" for j in jobs), [(j.kind, j.state) for j in jobs]
    sim = json.loads(farm.store.get_bytes(farm.engine.output(pid, "similarity.json")))
    assert 0 <= sim["overall"] <= 100
    assert all(code == "OK" for _, code in farm.calls)
    assert {m for m, _ in farm.calls} >= {"Probe", "Analyze", "RenderRange", "RenderAudio", "Assemble", "Score"}


def test_a_transient_render_failure_is_retried_and_the_remake_finishes(farm):
    farm.faults["RenderRange"] = lambda n: TransportError("UNAVAILABLE", "node restarting") if n == 1 else None
    pid = remake(farm)
    p = farm.state.get_project(pid)
    assert p.state.value == "done", p.error
    renders = farm.state.jobs(pid, kind="render_range")
    assert renders and all(j.state == "succeeded" for j in renders)
    retried = [j for j in renders if j.attempts_used == 2]
    assert len(retried) == 1 and all(j.attempts_used == 1 for j in renders if j not in retried)
    first, second = farm.state.attempts(retried[0].id)
    assert first.state == "failed" and first.error == "UNAVAILABLE: node restarting"
    assert second.state == "succeeded" and retried[0].promoted_attempt_id == second.id
    assert [c for m, c in farm.calls if m == "RenderRange"].count("UNAVAILABLE") == 1


def test_a_permanent_score_failure_fails_the_project(farm):
    farm.faults["Score"] = lambda n: TransportError("INVALID_ARGUMENT", "the output is not comparable")
    t0 = time.time()
    pid = remake(farm)
    p = farm.state.get_project(pid)
    assert p.state.value == "failed"
    assert "failed for good" in p.error and "INVALID_ARGUMENT: the output is not comparable" in p.error, p.error
    (score,) = farm.state.jobs(pid, kind="score")
    assert score.state == "dead" and score.attempts_used == 1  # a permanent error is not retried
    assert [c for m, c in farm.calls if m == "Score"] == ["INVALID_ARGUMENT"]
    assert time.time() - t0 < JOIN_S


def test_node_errors_cross_as_the_real_server_sends_them(farm, tmp_path):
    """The handler maps what NodeServicer raises as the gRPC server does: an InputError is
    INVALID_ARGUMENT, a StoreError the gateway's STORE_DOWN (by its trailing metadata kind)."""
    t = farm.dispatcher.transport
    bad = node_pb2.ProbeRequest(key=f"uploads/{UPLOAD}/missing.mp4", check="sample").SerializeToString()
    code, details = t.result(t.submit("inproc:1", "Probe", bad, 10.0), timeout=30)
    assert code in ("NOT_FOUND", "INVALID_ARGUMENT") and "missing.mp4" in details

    class DownStore:
        def __getattr__(self, name):
            def fail(*a, **k):
                raise StoreError("bucket unreachable")
            return fail

    servicer = NodeServicer(NodeRuntime(DownStore(), node_id="n2", cache_dir=str(tmp_path / "c2")))
    with pytest.raises(TransportError) as err:
        servicer_handler(servicer)("x", "Probe", node_pb2.ProbeRequest(key="k").SerializeToString())
    assert (err.value.code, err.value.details) == (STORE_DOWN, "bucket unreachable")
    ctx = FakeContext()
    with pytest.raises(Aborted):
        servicer.Probe(node_pb2.ProbeRequest(key="k"), ctx)
    assert ctx.trailing == ((KIND_KEY, "StoreError"),) and ctx.status == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(TransportError) as err:
        servicer_handler(servicer)("x", "Decode", b"")
    assert err.value.code == "UNIMPLEMENTED"
