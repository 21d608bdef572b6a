"""The real Dispatcher on an InProcessTransport: fake nodes are Python objects, the state store is a real
SQLite file. No Ray, no node processes, no gRPC server; each test asserts what the state store records."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from lookalike.coordinator.dispatch import Dispatcher
from lookalike.coordinator.engine import _parse_features, _parse_reply
from lookalike.coordinator.state import StateStore, open_state
from lookalike.coordinator.transport import (
    STORE_DOWN,
    InProcessTransport,
    Transport,
    TransportError,
    current_call,
)
from lookalike.v1 import node_pb2

from lookalike.errors import CancelledError, InputError, JobError, StoreError

pytestmark = pytest.mark.timeout(60)

LIMIT_S = 15.0  # no run here should take more than a few seconds; past this it is reported as hung


# -- fakes -----------------------------------------------------------------------------------------


class FakeNode:
    """A node answering RenderRange, Analyze and Probe. `fail`: a TransportError raised on every call
    (or a callable(request) giving one or None); `hold`: an Event each call waits for before replying."""

    def __init__(self, name: str, *, fail=None, hold: threading.Event | None = None, delay: float = 0.0) -> None:
        self.name = name
        self.fail = fail
        self.hold = hold
        self.delay = delay
        self.calls: list[str] = []  # attempt ids (or probe keys), in call order
        self.contexts: list = []
        self.started = threading.Event()
        self._lock = threading.Lock()

    def _enter(self, ident: str, request) -> None:
        with self._lock:
            self.calls.append(ident)
            self.contexts.append(current_call())
        self.started.set()
        if self.hold is not None:
            assert self.hold.wait(LIMIT_S), "the test never released the held call"
        if self.delay:
            time.sleep(self.delay)
        fail = self.fail(request) if callable(self.fail) else self.fail
        if fail is not None:
            raise fail

    def RenderRange(self, payload: bytes):
        req = node_pb2.RenderRangeRequest.FromString(payload)
        self._enter(req.ctx.attempt_id, req)
        return node_pb2.SegmentReply(key=req.output_key, n_frames=req.range.end_frame - req.range.start_frame,
                                     sha256=self.name)

    def Analyze(self, payload: bytes):
        req = node_pb2.AnalyzeRequest.FromString(payload)
        self._enter(req.ctx.attempt_id, req)
        features = {"frames": [req.range.start_frame, req.range.end_frame], "node": self.name}
        return node_pb2.AnalyzeReply(features_json=json.dumps(features))

    def Probe(self, payload: bytes):
        req = node_pb2.ProbeRequest.FromString(payload)
        self._enter(req.key, req)
        return node_pb2.ProbeReply(info_json=json.dumps({"node": self.name, "key": req.key}))


def _ctx(job, attempt) -> node_pb2.JobContext:
    return node_pb2.JobContext(project_id=job.project_id, job_id=job.id, attempt_id=attempt.id)


def build_render(job, attempt):
    req = node_pb2.RenderRangeRequest(ctx=_ctx(job, attempt), output_key=f"seg/{job.id}/{attempt.id}")
    req.range.start_frame, req.range.end_frame = job.start_frame, job.end_frame
    return "RenderRange", req


def build_analyze(job, attempt):
    req = node_pb2.AnalyzeRequest(ctx=_ctx(job, attempt), sample_key="sample.mp4")
    req.range.start_frame, req.range.end_frame = job.start_frame, job.end_frame
    return "Analyze", req


class Beats:
    """Heartbeats for some nodes, every 50 ms, as live nodes send them."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher, self.ids = dispatcher, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="beats", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            for node_id in list(self.ids):
                self.dispatcher.heartbeat(node_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Farm:
    def __init__(self, state: StateStore) -> None:
        self.state = state
        self.discarded: list[str] = []
        self.discard_seen = threading.Event()
        self.dispatchers: list[Dispatcher] = []
        self.beats: list[Beats] = []

    def _discard(self, key: str) -> None:
        self.discarded.append(key)
        self.discard_seen.set()

    def dispatcher(self, nodes: dict[str, FakeNode], *, slots: int = 1, beating: tuple[str, ...] | None = None,
                   caps: dict[str, tuple[str, ...]] | None = None, **kw) -> tuple[Dispatcher, InProcessTransport]:
        """A dispatcher on an in-process transport, each node registered at `addr-<id>` in the order
        given; `beating` (default all) keep sending heartbeats."""
        transport = InProcessTransport({f"addr-{i}": n for i, n in nodes.items()})
        kw.setdefault("node_timeout_s", 30.0)
        d = Dispatcher(self.state, transport=transport, discard=self._discard, **kw)
        self.dispatchers.append(d)
        for node_id in nodes:
            d.register(node_id, f"addr-{node_id}", (caps or {}).get(node_id, ("cpu",)), slots)
        beats = Beats(d)
        beats.ids.update(nodes if beating is None else beating)
        self.beats.append(beats)
        return d, transport

    def close(self) -> None:
        for b in self.beats:
            b.stop()
        for d in self.dispatchers:
            d.close()


@pytest.fixture
def state(tmp_path) -> Iterator[StateStore]:
    store = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    yield store
    store.close()


@pytest.fixture
def farm(state) -> Iterator[Farm]:
    f = Farm(state)
    yield f
    f.close()


def project_with(state: StateStore, kind: str, n: int, *, max_attempts: int = 3, extra: list | None = None):
    project = state.create_project("acme", "remake", {})
    specs = [{"kind": kind, "scene_index": 0, "start_frame": 24 * i, "end_frame": 24 * (i + 1),
              "max_attempts": max_attempts} for i in range(n)]
    jobs = state.add_jobs(project.id, specs + (extra or []))
    return project.id, [j.id for j in jobs[:n]]


def run(dispatcher: Dispatcher, *args, **kw) -> None:
    """dispatcher.run on a thread, bounded: a run that hangs fails the test instead of the suite."""
    cancelled = kw.setdefault("cancelled", threading.Event())
    box: dict = {}

    def target() -> None:
        try:
            dispatcher.run(*args, **kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["exc"] = exc

    t = threading.Thread(target=target, name="run", daemon=True)
    t.start()
    t.join(LIMIT_S)
    if t.is_alive():
        cancelled.set()
        t.join(5)
        pytest.fail(f"Dispatcher.run did not finish within {LIMIT_S} s")
    if "exc" in box:
        raise box["exc"]


# -- the tests -------------------------------------------------------------------------------------


def test_in_process_transport_is_a_transport_and_dispatch_imports_no_ray():
    assert isinstance(InProcessTransport(lambda a, m, p: b""), Transport)
    code = ("import sys, lookalike.coordinator.dispatch, lookalike.coordinator.transport; "
            "sys.exit(1 if 'ray' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0, "importing dispatch imported ray"


def test_in_process_transport_answers_codes():
    def handler(address, method, payload):
        if method == "Boom":
            raise RuntimeError("bug in the node")
        if method == "Refuse":
            raise TransportError("INVALID_ARGUMENT", "no such scene")
        return payload[::-1]

    t = InProcessTransport(handler)
    by_obj = InProcessTransport({"addr-a": FakeNode("a")})
    try:
        handles = [t.submit("x", "Echo", b"abc", 5.0), t.submit("x", "Refuse", b"", 5.0),
                   t.submit("x", "Boom", b"", 5.0), by_obj.submit("addr-gone", "Probe", b"", 5.0),
                   by_obj.submit("addr-a", "Nope", b"", 5.0)]
        codes = [t.result(h, timeout=5) if i < 3 else by_obj.result(h, timeout=5) for i, h in enumerate(handles)]
        assert codes[0] == ("OK", b"cba")
        assert codes[1] == ("INVALID_ARGUMENT", "no such scene")
        assert codes[2][0] == "UNKNOWN" and "bug in the node" in codes[2][1]
        assert codes[3][0] == "UNAVAILABLE" and codes[4][0] == "UNIMPLEMENTED"
    finally:
        t.close()
        by_obj.close()


def test_in_process_cancel_stops_queued_calls_and_signals_running_ones():
    gate, started = threading.Event(), threading.Event()
    seen = {}

    def handler(address, method, payload):
        seen[method] = current_call()
        started.set()
        assert gate.wait(5)
        return b"late"

    t = InProcessTransport(handler, max_workers=1)
    try:
        running = t.submit("x", "First", b"", 5.0, "call-1")
        assert started.wait(5)
        queued = t.submit("x", "Second", b"", 5.0, "call-2")
        assert t.wait([running, queued], timeout=0.1) == []
        t.cancel(["call-1", "call-2"])
        assert seen["First"].cancelled.is_set() and seen["First"].call_id == "call-1"
        assert t.result(queued, timeout=5) == ("CANCELLED", "cancelled by the coordinator")
        assert "Second" not in seen  # never started
        gate.set()
        assert t.result(running, timeout=5) == ("OK", b"late")  # the handler's answer stands
        assert t.cancelled_ids == ["call-1", "call-2"]
    finally:
        gate.set()
        t.close()


def test_all_jobs_of_the_kinds_succeed_and_parse_results_are_stored(farm, state):
    a, b = FakeNode("a"), FakeNode("b")
    d, _ = farm.dispatcher({"a": a, "b": b})
    other = {"kind": "render_range", "start_frame": 0, "end_frame": 24}
    pid, ids = project_with(state, "analyze_range", 3, extra=[other])
    done = []
    run(d, pid, {"analyze_range"}, build_analyze, _parse_features, on_done=lambda job, r: done.append((job.id, r)))

    nodes_used = set()
    for i, job_id in enumerate(ids):
        job = state.get_job(job_id)
        assert job.state == "succeeded" and job.attempts_used == 1
        (attempt,) = state.attempts(job_id)
        assert attempt.state == "succeeded" and job.promoted_attempt_id == attempt.id
        assert job.result == {"key": None, "features": {"frames": [24 * i, 24 * (i + 1)], "node": attempt.node_id}}
        nodes_used.add(attempt.node_id)
    # Two free slots at the start: the first two jobs went one to each node.
    assert nodes_used == {"a", "b"} and len(a.calls) + len(b.calls) == 3
    assert sorted(j for j, _ in done) == sorted(ids)
    assert dict(done)[ids[0]] == state.get_job(ids[0]).result
    # A job of another kind was left alone.
    (render,) = state.jobs(pid, kind="render_range")
    assert render.state == "queued" and render.attempts_used == 0 and state.attempts(render.id) == []
    assert all(n.running == 0 for n in d.alive_nodes())


def test_a_transient_failure_is_retried_after_a_backoff_and_then_succeeds(farm, state):
    calls: dict[str, int] = {}

    def node(address, method, payload):
        req = node_pb2.RenderRangeRequest.FromString(payload)
        calls[req.ctx.job_id] = calls.get(req.ctx.job_id, 0) + 1
        if calls[req.ctx.job_id] == 1:
            raise TransportError("UNAVAILABLE", "node restarting")
        return node_pb2.SegmentReply(key=req.output_key, n_frames=24).SerializeToString()

    d = Dispatcher(state, transport=InProcessTransport(node), node_timeout_s=30.0, discard=farm._discard)
    farm.dispatchers.append(d)
    d.register("a", "addr-a", ("cpu",), 1)
    beats = Beats(d)  # UNAVAILABLE takes the node out until its next heartbeat
    beats.ids.add("a")
    farm.beats.append(beats)
    pid, (job_id,) = project_with(state, "render_range", 1, max_attempts=3)
    run(d, pid, {"render_range"}, build_render, _parse_reply)

    job = state.get_job(job_id)
    first, second = state.attempts(job_id)
    assert job.state == "succeeded" and job.attempts_used == 2 and calls[job_id] == 2
    assert first.state == "failed" and first.error == "UNAVAILABLE: node restarting"
    assert second.state == "succeeded" and job.promoted_attempt_id == second.id
    assert job.output_key == f"seg/{job_id}/{second.id}" and job.result["key"] == job.output_key
    assert job.result["n_frames"] == 24
    assert second.started_at - first.finished_at >= 0.45  # the 0.5 s backoff after a failure
    assert state.is_blocklisted("a", "render_range", threshold=1)  # the failure was counted
    assert not state.is_blocklisted("a", "render_range", threshold=2)
    assert farm.discarded == []


def test_a_permanent_failure_kills_the_job_at_once(farm, state):
    a = FakeNode("a", fail=TransportError("INVALID_ARGUMENT", "bad scene"))
    d, _ = farm.dispatcher({"a": a})
    pid, (job_id,) = project_with(state, "render_range", 1, max_attempts=3)
    with pytest.raises(JobError, match=r"failed for good: INVALID_ARGUMENT: bad scene \(permanent error"):
        run(d, pid, {"render_range"}, build_render, _parse_reply)
    job = state.get_job(job_id)
    assert job.state == "dead" and job.attempts_used == 1 and len(a.calls) == 1  # not retried
    assert [x.state for x in state.attempts(job_id)] == ["failed"]


def test_transient_failures_until_max_attempts_kill_the_job(farm, state):
    a = FakeNode("a", fail=TransportError("INTERNAL", "decoder crashed"))
    d, _ = farm.dispatcher({"a": a}, blocklist_after=10)
    pid, (job_id,) = project_with(state, "render_range", 1, max_attempts=2)
    with pytest.raises(JobError, match="gave up after 2 of 2 attempts"):
        run(d, pid, {"render_range"}, build_render, _parse_reply)
    job = state.get_job(job_id)
    assert job.state == "dead" and job.attempts_used == 2 and len(a.calls) == 2
    assert [x.state for x in state.attempts(job_id)] == ["failed", "failed"]
    assert job.result is None and job.promoted_attempt_id is None


def test_a_node_that_keeps_failing_a_kind_is_blocklisted_for_that_kind_only(farm, state):
    a = FakeNode("a", fail=lambda req: TransportError("INTERNAL", "out of GPU memory")
                 if isinstance(req, node_pb2.RenderRangeRequest) else None)
    b = FakeNode("b", delay=0.1)
    d, _ = farm.dispatcher({"a": a, "b": b}, blocklist_after=2, caps={"a": ("cpu", "gpu"), "b": ("cpu",)})
    pid, ids = project_with(state, "render_range", 6, max_attempts=3)
    run(d, pid, {"render_range"}, build_render, _parse_reply)

    assert len(a.calls) == 2  # blocklisted after its second failure: no third job of this kind
    assert state.is_blocklisted("a", "render_range", threshold=2)
    assert not state.is_blocklisted("b", "render_range", threshold=1)
    for job_id in ids:
        job = state.get_job(job_id)
        promoted = state.get_attempt(job.promoted_attempt_id)
        assert job.state == "succeeded" and promoted.node_id == "b" and job.result["key"] == job.output_key
    assert sum(len(state.attempts(j)) for j in ids) == 8  # 6 on b that succeeded, 2 on a that failed

    # Another kind still goes to a (only a has the gpu these jobs need).
    state.add_jobs(pid, [{"kind": "analyze_range", "start_frame": 0, "end_frame": 24}])
    run(d, pid, {"analyze_range"}, build_analyze, _parse_features, needs=("gpu",))
    (job,) = state.jobs(pid, kind="analyze_range")
    assert job.state == "succeeded" and job.result["features"]["node"] == "a"


def test_a_cancelled_run_cancels_its_calls_and_never_promotes_the_late_result(farm, state):
    release = threading.Event()
    a = FakeNode("a", hold=release)
    d, transport = farm.dispatcher({"a": a})
    pid, (job_id,) = project_with(state, "render_range", 1)
    cancelled, done = threading.Event(), []
    errors: list[BaseException] = []

    def go() -> None:
        try:
            run(d, pid, {"render_range"}, build_render, _parse_reply, cancelled=cancelled,
                on_done=lambda job, r: done.append(job.id))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    try:
        assert a.started.wait(5), "the job never reached the node"
        (attempt_id,) = a.calls
        # As the engine cancels a project: the event, then the state store.
        cancelled.set()
        state.cancel_project(pid)
        t.join(5)
        assert not t.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], CancelledError), errors
        assert transport.cancelled_ids == [attempt_id]
        assert a.contexts[0].cancelled.is_set()  # the handler could see the cancel
        assert farm.discarded == []  # the call is still out
        assert all(n.running == 0 for n in d.alive_nodes())
    finally:
        release.set()  # the node answers after all, OK with a segment
    assert farm.discard_seen.wait(5), "the late segment was never discarded"
    assert farm.discarded == [f"seg/{job_id}/{attempt_id}"]
    job = state.get_job(job_id)
    assert job.state == "cancelled" and job.promoted_attempt_id is None and job.result is None
    assert job.output_key is None and state.get_attempt(attempt_id).state == "cancelled"
    assert done == []


def test_a_silent_node_loses_its_attempt_and_the_job_finishes_elsewhere(farm, state):
    release = threading.Event()
    a, b = FakeNode("a", hold=release), FakeNode("b")
    # a registers first (so it takes the job) and then never beats again; b keeps beating.
    d, transport = farm.dispatcher({"a": a, "b": b}, beating=("b",), node_timeout_s=1.0)
    pid, (job_id,) = project_with(state, "render_range", 1)
    try:
        run(d, pid, {"render_range"}, build_render, _parse_reply)
        job = state.get_job(job_id)
        lost, won = state.attempts(job_id)
        assert len(a.calls) == 1 and a.calls[0] == lost.id and b.calls == [won.id]
        assert lost.node_id == "a" and lost.state == "lost" and "stopped heartbeating" in lost.error
        assert won.node_id == "b" and job.state == "succeeded" and job.promoted_attempt_id == won.id
        assert job.output_key == f"seg/{job_id}/{won.id}" and job.result["sha256"] == "b"
        assert transport.forgotten == ["addr-a"] and [n.node_id for n in d.alive_nodes()] == ["b"]
        assert farm.discarded == []
    finally:
        release.set()  # the hung node comes back with its (now late) result
    assert farm.discard_seen.wait(5), "the late segment was never discarded"
    assert farm.discarded == [f"seg/{job_id}/{lost.id}"]
    job = state.get_job(job_id)
    assert job.promoted_attempt_id == won.id and job.output_key == f"seg/{job_id}/{won.id}"
    assert state.get_attempt(lost.id).state == "late"


def test_a_segment_store_outage_pauses_without_charging_or_blaming(farm, state):
    a = FakeNode("a", fail=TransportError(STORE_DOWN, "bucket unreachable"))
    d, _ = farm.dispatcher({"a": a}, blocklist_after=1)
    pid, (job_id,) = project_with(state, "render_range", 1, max_attempts=1)
    with pytest.raises(StoreError, match="bucket unreachable"):
        run(d, pid, {"render_range"}, build_render, _parse_reply)
    job = state.get_job(job_id)
    assert job.state == "queued" and job.attempts_used == 0  # the attempt went back to the budget
    assert not state.is_blocklisted("a", "render_range", threshold=1)


def test_call_any_moves_past_an_unavailable_node(farm, state):
    a = FakeNode("a", fail=TransportError("UNAVAILABLE", "restarting"))
    b = FakeNode("b")
    d, _ = farm.dispatcher({"a": a, "b": b}, beating=())
    info = d.call_any("Probe", node_pb2.ProbeRequest(key="k1", check="sample"), node_pb2.ProbeReply,
                      lambda r: json.loads(r.info_json))
    assert info == {"node": "b", "key": "k1"}
    assert a.calls == ["k1"] and b.calls == ["k1"]  # a first (equal load, registered first), then b
    assert [n.node_id for n in d.alive_nodes()] == ["b"]  # a is out until it beats again


def test_call_any_raises_permanent_and_store_errors_without_retrying(farm, state):
    a = FakeNode("a", fail=lambda req: TransportError("INVALID_ARGUMENT", f"{req.key} is not a video")
                 if req.key == "bad" else TransportError(STORE_DOWN, "disk full"))
    d, _ = farm.dispatcher({"a": a})
    with pytest.raises(InputError, match="bad is not a video"):
        d.call_any("Probe", node_pb2.ProbeRequest(key="bad"), node_pb2.ProbeReply, lambda r: r)
    with pytest.raises(StoreError, match="disk full"):
        d.call_any("Probe", node_pb2.ProbeRequest(key="k2"), node_pb2.ProbeReply, lambda r: r)
    assert a.calls == ["bad", "k2"]


def test_a_project_whose_only_node_is_blocklisted_says_so_and_resumes_on_a_new_node(farm, state):
    """Every node able to run the work failed it until blocklisted: the project does not hang in a silent
    `rendering` nor fail; within seconds its status says why, and a node that registers takes the work."""
    from lookalike.coordinator.dispatch import WAITING_STAGE

    a = FakeNode("a", fail=TransportError("INTERNAL", "out of GPU memory"))
    b = FakeNode("b")
    transport = InProcessTransport({"addr-a": a, "addr-b": b})
    d = Dispatcher(state, transport=transport, discard=farm._discard, node_timeout_s=30.0, blocklist_after=2)
    farm.dispatchers.append(d)
    d.register("a", "addr-a", ("cpu",), 1)
    beats = Beats(d)
    beats.ids.add("a")
    farm.beats.append(beats)
    pid, (job_id,) = project_with(state, "render_range", 1, max_attempts=10)
    state.set_project_state(pid, "rendering", stage="rendering")
    errors: list[BaseException] = []

    def go() -> None:
        try:
            run(d, pid, {"render_range"}, build_render, _parse_reply)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    deadline = time.time() + 8
    while time.time() < deadline and state.get_project(pid).stage != WAITING_STAGE:
        time.sleep(0.05)
    p = state.get_project(pid)
    assert p.stage == WAITING_STAGE, f"the project still shows {p.stage!r}: {p.error!r}"
    assert "blocklisted" in p.error and "render_range" in p.error and "(a)" in p.error
    assert len(a.calls) == 2 and state.get_job(job_id).state == "queued"

    d.register("b", "addr-b", ("cpu",), 1)
    beats.ids.add("b")
    t.join(LIMIT_S)
    assert not t.is_alive() and not errors
    job = state.get_job(job_id)
    assert job.state == "succeeded" and state.get_attempt(job.promoted_attempt_id).node_id == "b"
    p = state.get_project(pid)
    assert p.stage == "rendering" and p.error is None


def test_a_scenes_ranges_stay_on_the_node_that_began_it(farm, state):
    """Each node keeps what it made for a scene (its decoded source, its solved colour): the ranges of
    one scene go to the node that ran its first one, while both nodes stay busy."""
    a, b = FakeNode("a", delay=0.3), FakeNode("b", delay=0.3)
    d, _ = farm.dispatcher({"a": a, "b": b})
    project = state.create_project("acme", "remake", {})
    jobs = state.add_jobs(project.id, [{"kind": "render_range", "scene_index": scene, "start_frame": 24 * i,
                                        "end_frame": 24 * (i + 1)} for scene in (0, 1) for i in range(3)])
    run(d, project.id, {"render_range"}, build_render, _parse_reply)
    ran = {(j.scene_index, state.get_attempt(state.get_job(j.id).promoted_attempt_id).node_id) for j in jobs}
    assert len(ran) == 2 and {n for _, n in ran} == {"a", "b"}, ran
    assert len(a.calls) == len(b.calls) == 3
