"""Nobody can freeze the coordinator: hundreds of idle streams (reflection, WatchProject, uploads that send
a header and then nothing) from one client, with no token, while unary calls and node heartbeats are
timed; hostile request sizes and nesting; a project with no node alive says so.

A loopback farm of one node. The watched project is a real remake that is running or waiting during
the stress (a remake of the small synthetic clip); the test never waits for it to finish."""

from __future__ import annotations

import json
import queue
import threading
import time

import grpc
import pytest
from farm import Farm
from grpc_reflection.v1alpha import reflection_pb2_grpc
from lookalike.client import Client
from lookalike.v1 import coordinator_pb2, coordinator_pb2_grpc
from synth import make_clip

C = grpc.StatusCode
IDLE_S = 6.0  # the farm's stream idle timeout: short, so the test sees idle streams end
STREAMS_EACH = 300  # idle streams of each kind; past the per-peer cap (256) the rest are refused
STRESS_S = 8.0
UPLOAD_GRACE_S = 3.0  # the sweeper then runs every 5 s
BIG = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    f = Farm(tmp_path_factory.mktemp("stall-farm"), nodes=1,
             env={"LOOKALIKE_STREAM_IDLE_S": str(IDLE_S), "LOOKALIKE_RATE_PER_S": "0",
                  "LOOKALIKE_UPLOAD_GRACE_S": str(UPLOAD_GRACE_S)})
    yield f
    f.close()


@pytest.fixture(scope="module")
def control_address(farm):
    for line in (farm.home / "farm.log").read_text().splitlines():
        if '"coordinator_started"' in line:
            return json.loads(line)["control_address"]
    raise AssertionError("the coordinator did not log its control address")


@pytest.fixture(scope="module")
def project(farm, tmp_path_factory):
    clip = tmp_path_factory.mktemp("clip") / "s.mp4"
    make_clip(clip, [(24, (250, 180, 80), 2.0), (24, (80, 120, 250), 0.0)], size=(96, 64))
    with Client(farm.address) as c:
        p = c.submit(clip, chunk_frames=8)
        yield p.id
        c.cancel(p.id)


def _rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


class _Held:
    """Streams held open from a thread each (a gRPC client call needs its request iterator fed)."""

    def __init__(self) -> None:
        self.codes: list = []
        self._gates: list[queue.Queue] = []
        self._calls: list = []
        self._lock = threading.Lock()

    def _gate(self, first=None):
        q: queue.Queue = queue.Queue()
        self._gates.append(q)

        def gen():
            if first is not None:
                yield first
            while (m := q.get()) is not None:
                yield m

        return gen()

    def _finish(self, call) -> None:
        try:
            for _ in call:
                pass
            code = C.OK
        except grpc.RpcError as exc:
            code = exc.code()
        with self._lock:
            self.codes.append(code)

    def open(self, call) -> None:
        self._calls.append(call)
        threading.Thread(target=self._finish, args=(call,), daemon=True).start()

    def reflection(self, ch) -> None:
        self.open(reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(self._gate()))

    def watch(self, ch, project_id: str) -> None:
        self.open(coordinator_pb2_grpc.CoordinatorStub(ch).WatchProject(coordinator_pb2.ProjectRef(project_id=project_id)))

    def upload(self, ch) -> None:
        header = coordinator_pb2.UploadChunk(header=coordinator_pb2.UploadHeader(filename="x.mp4", kind="sample", size=10))
        future = coordinator_pb2_grpc.CoordinatorStub(ch).UploadSample.future(self._gate(header))
        self._calls.append(future)

        def done(f):
            with self._lock:
                self.codes.append(f.code())

        future.add_done_callback(done)

    def cancel(self) -> None:
        for call in self._calls:
            call.cancel()
        for q in self._gates:
            q.put(None)


def _timed(fn, samples: list, failures: list) -> None:
    t0 = time.perf_counter()
    try:
        fn()
    except grpc.RpcError as exc:
        failures.append(exc.code())
    samples.append(time.perf_counter() - t0)


def test_idle_streams_starve_nobody(farm, control_address, project):
    """Idle streams of every kind, past every cap, while GetProject and node heartbeats are timed."""
    held = _Held()
    chans = [grpc.insecure_channel(farm.address, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(8)]
    try:
        for i in range(STREAMS_EACH):
            ch = chans[i % len(chans)]
            held.reflection(ch)
            held.watch(ch, project)
            held.upload(ch)
        unary, beats, unary_fail, beat_fail = [], [], [], []
        node_id = farm.nodes[0].node_id
        with grpc.insecure_channel(farm.address) as pub, grpc.insecure_channel(control_address) as ctl:
            api = coordinator_pb2_grpc.CoordinatorStub(pub)
            reg = coordinator_pb2_grpc.NodeRegistryStub(ctl)
            end = time.monotonic() + STRESS_S
            while time.monotonic() < end:
                _timed(lambda: api.GetProject(coordinator_pb2.ProjectRef(project_id=project), timeout=5), unary, unary_fail)
                _timed(lambda: reg.Heartbeat(coordinator_pb2.NodeHeartbeat(node_id=node_id), timeout=5), beats, beat_fail)
            # The streams past the caps were refused at once; the rest are still held (idle, not timed out yet).
            refused = sum(code == C.RESOURCE_EXHAUSTED for code in held.codes)
            held.cancel()
            # Cancelled streams give their places back at once: new ones are taken within a second.
            deadline = time.monotonic() + 2.0
            while True:
                probe = api.WatchProject(coordinator_pb2.ProjectRef(project_id=project), timeout=1.0)
                try:
                    next(probe)
                    probe.cancel()
                    break
                except grpc.RpcError as exc:
                    assert exc.code() == C.RESOURCE_EXHAUSTED and time.monotonic() < deadline, exc
    finally:
        held.cancel()
        for ch in chans:
            ch.close()
    unary.sort()
    beats.sort()
    p99 = unary[int(len(unary) * 0.99) - 1]
    beat_max = beats[-1]
    print(f"\nstall: {3 * STREAMS_EACH} idle streams opened, {refused} refused at the caps; "
          f"GetProject n={len(unary)} p50={unary[len(unary) // 2] * 1e3:.1f} ms p99={p99 * 1e3:.1f} ms "
          f"max={unary[-1] * 1e3:.1f} ms; heartbeat n={len(beats)} max={beat_max * 1e3:.1f} ms")
    assert not unary_fail and not beat_fail, (unary_fail[:5], beat_fail[:5])
    assert refused >= 3 * STREAMS_EACH - 256, refused  # one peer holds at most 256 streams
    assert p99 < 1.0 and beat_max < 1.0, (p99, beat_max)
    # The remake that ran under the stress completes.
    with Client(farm.address) as c:
        assert c.wait(project).state == "done"
    log = (farm.home / "farm.log").read_text()
    assert '"heartbeat_failed"' not in log


def test_idle_upload_ends_after_the_idle_timeout(farm):
    with grpc.insecure_channel(farm.address) as ch:
        gate: queue.Queue = queue.Queue()

        def gen():
            yield coordinator_pb2.UploadChunk(header=coordinator_pb2.UploadHeader(filename="x.mp4", kind="sample", size=9))
            gate.get()

        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            coordinator_pb2_grpc.CoordinatorStub(ch).UploadSample(gen(), timeout=IDLE_S * 4)
        gate.put(None)
        assert err.value.code() == C.DEADLINE_EXCEEDED and "idle" in err.value.details()
        assert IDLE_S - 1 <= time.monotonic() - t0 < IDLE_S * 2


def test_hostile_sizes_are_refused_before_decoding(farm):
    """A 25 MB Remake whose repeated field holds millions of entries: refused before it is decoded; the
    coordinator's memory stays within 64 MiB of where it was, and its resident size comes back."""
    pid = farm.coordinator.pid
    rss0, _ = _rss_kib(pid)
    with grpc.insecure_channel(farm.address, options=BIG) as ch:
        stub = coordinator_pb2_grpc.CoordinatorStub(ch)
        huge = coordinator_pb2.RemakeRequest(options=coordinator_pb2.RemakeOptions(formats=["x"] * 8_000_000))
        assert huge.ByteSize() > 20 << 20
        peaks = []
        for _ in range(5):
            with pytest.raises(grpc.RpcError) as err:
                stub.Remake(huge, timeout=30)
            assert err.value.code() == C.RESOURCE_EXHAUSTED
            peaks.append(_rss_kib(pid)[0])
        # Under the size limit but with far more entries than any remake has: refused by count.
        many = coordinator_pb2.RemakeRequest(options=coordinator_pb2.RemakeOptions(formats=["x"] * 50_000))
        with pytest.raises(grpc.RpcError) as err:
            stub.Remake(many, timeout=30)
        assert err.value.code() == C.RESOURCE_EXHAUSTED and "formats" in err.value.details()
        # Small methods take small messages.
        with pytest.raises(grpc.RpcError) as err:
            stub.GetProject(coordinator_pb2.ProjectRef(project_id="0" * (1 << 20)), timeout=30)
        assert err.value.code() == C.RESOURCE_EXHAUSTED
    rss1, _ = _rss_kib(pid)
    print(f"\nrss: before {rss0 / 1024:.0f} MiB, highest during {max(peaks) / 1024:.0f} MiB, after {rss1 / 1024:.0f} MiB")
    assert max(peaks) - rss0 < 64 * 1024 and rss1 - rss0 < 64 * 1024


@pytest.mark.parametrize("method,message,field", [("ApplyEffects", "ProjectEffectsRequest", "effects_json"),
                                                   ("AddTransitions", "ProjectTransitionsRequest", "transitions_json")])
def test_nested_json_is_invalid_argument(farm, project, method, message, field):
    with grpc.insecure_channel(farm.address) as ch:
        stub = coordinator_pb2_grpc.CoordinatorStub(ch)
        req = getattr(coordinator_pb2, message)(project_id=project, **{field: "[" * 200_000})
        with pytest.raises(grpc.RpcError) as err:
            getattr(stub, method)(req, timeout=30)
        assert err.value.code() == C.INVALID_ARGUMENT, err.value.details()
        deep = json.dumps([{"effect": "film_grain", "strength": json.loads("[" * 100 + "]" * 100)}])
        req = getattr(coordinator_pb2, message)(project_id=project, **{field: deep})
        with pytest.raises(grpc.RpcError) as err:
            getattr(stub, method)(req, timeout=30)
        assert err.value.code() == C.INVALID_ARGUMENT and "nested" in err.value.details()


def test_uploads_of_a_refused_batch_are_removed_after_the_grace(farm, project, tmp_path):
    """A batch whose second entry is no video is refused after its files were uploaded: the uploads no
    project uses are gone a grace period later; the project's own sample stays."""
    from lookalike.errors import InputError
    from lookalike.store import open_store

    good = tmp_path / "good.mp4"
    make_clip(good, [(12, (200, 120, 60), 1.0)], bpm=None)
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video at all")
    store = open_store(f"file://{(farm.home / 'store').resolve()}")
    before = {k.split("/")[1] for k in store.list("uploads/")}
    with Client(farm.address) as c, pytest.raises(InputError):
        c.submit_batch([{"sample": good}, {"sample": bad}])
    after = {k.split("/")[1] for k in store.list("uploads/")}
    fresh = after - before
    assert len(fresh) == 2  # both files went up before the batch was refused
    deadline = time.monotonic() + 30
    while fresh & {k.split("/")[1] for k in store.list("uploads/")}:
        assert time.monotonic() < deadline, "the refused batch's uploads are still there"
        time.sleep(0.5)
    # What a project uses is kept (the module's project was uploaded well over the grace ago).
    from lookalike.coordinator.state import open_state

    with open_state(f"sqlite:///{(farm.home / 'state.db').resolve()}") as st:
        sample_key = st.get_project(project).options["sample_key"]
    assert store.exists(sample_key)


def test_a_batch_entry_that_is_no_video_uploads_nothing(farm, tmp_path):
    """`lookalike submit` with an entry such as "../tokens.txt": refused before the first upload."""
    from lookalike.errors import InputError
    from lookalike.store import open_store

    good = tmp_path / "good.mp4"
    make_clip(good, [(12, (200, 120, 60), 1.0)], bpm=None)
    secret = tmp_path / "tokens.txt"
    secret.write_text("s3cret alice\n")
    store = open_store(f"file://{(farm.home / 'store').resolve()}")
    before = set(store.list("uploads/"))
    with Client(farm.address) as c, pytest.raises(InputError, match=r"entry 2: sample tokens.txt is not a video"):
        (tmp_path / "batch").mkdir()
        c.submit_batch([{"sample": good}, {"sample": tmp_path / "batch" / ".." / "tokens.txt"}])
    assert set(store.list("uploads/")) == before
