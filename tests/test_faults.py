"""Faults a farm must survive, on a loopback farm (coordinator and node processes, SQLite, folder store):
a node that hangs and comes back late, a node that fails every job, jobs no node can run."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from farm import Farm, cli
from lookalike.client import Client
from lookalike.coordinator.state import open_state
from lookalike.nodes import media
from synth import make_clip

from lookalike.errors import JobError, StoreError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "sample.mp4"
    return path, make_clip(path, [(36, (240, 170, 90), 2.0), (30, (90, 140, 240), -2.0)])


def _frames(path):
    return np.stack([f for _, _, f in media.iter_frames(str(path))])


def _state(farm):
    return open_state(f"sqlite:///{(farm.home / 'state.db').resolve()}")


def _until(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_a_hung_node_is_replaced_and_its_late_result_refused(tmp_path, sample):
    path, truth = sample
    farm = Farm(tmp_path / "farm", nodes=2)
    try:
        with Client(farm.address) as c:
            reference = c.remake(path, out=tmp_path / "ref", chunk_frames=6)
            p = c.submit(path, chunk_frames=6)
            stopped = None
            for ev in c.watch(p.id):
                if stopped is None and ev.stage == "rendering" and ev.done > 0:
                    stopped = farm.nodes[0]
                    stopped.send_signal(signal.SIGSTOP)  # hangs: no heartbeats, no replies
                if ev.state in ("done", "failed", "cancelled"):
                    break
            assert stopped is not None
            c.wait(p.id)
            c.fetch_outputs(p.id, tmp_path / "faulty")
            stopped.send_signal(signal.SIGCONT)  # comes back late
        assert reference.state == "done"
        with _state(farm) as st:
            hung = [a for j in st.jobs(p.id) for a in st.attempts(j.id) if a.node_id == stopped.node_id]

            def late_refused():
                states = {st.get_attempt(a.id).state for a in hung}
                return "running" not in states

            _until(late_refused, what="the hung node's attempts to be settled")
            lost = [st.get_attempt(a.id) for a in hung if st.get_attempt(a.id).state in ("lost", "late")]
            assert lost, "the hung node held no attempt when it stopped"
            for j in st.jobs(p.id):
                assert j.promoted_attempt_id not in {a.id for a in lost}
        assert np.array_equal(_frames(tmp_path / "ref" / "final.mp4"), _frames(tmp_path / "faulty" / "final.mp4"))
    finally:
        farm.close()


def test_with_no_node_alive_the_project_says_so_and_resumes_when_one_comes(tmp_path, sample):
    """The only node hangs mid-render: within seconds `status` says the project waits for nodes and
    why (not a silent `rendering`), the project does not fail, and a new node finishes it."""
    from lookalike.coordinator.dispatch import WAITING_STAGE

    path, truth = sample
    farm = Farm(tmp_path / "farm", nodes=1)
    try:
        with Client(farm.address) as c:
            p = c.submit(path, chunk_frames=6)
            for ev in c.watch(p.id):
                if ev.stage == "rendering" and ev.done > 0:
                    break
            farm.nodes[0].send_signal(signal.SIGSTOP)
            t0 = time.monotonic()
            _until(lambda: c.project(p.id).stage == WAITING_STAGE, timeout=30, what="the waiting stage")
            waited = time.monotonic() - t0
            q = c.project(p.id)
            assert q.state not in ("failed", "done") and "no node is alive" in q.error, (q.state, q.error)
            # The node timeout is 4 s here: the project says so within a few seconds of it.
            assert waited < 15, waited
            farm.add_node()
            done = c.wait(p.id)
            assert done.state == "done" and not done.error
            assert media.probe(str(c.fetch_outputs(p.id, tmp_path / "out") / "final.mp4")).n_frames == truth["n_frames"]
    finally:
        farm.nodes[0].send_signal(signal.SIGCONT)
        farm.close()


def test_a_failing_node_is_blocklisted_and_the_work_done_elsewhere(tmp_path, sample):
    path, truth = sample
    farm = Farm(tmp_path / "farm", nodes=1)
    try:
        bad = farm.add_node(env={"LOOKALIKE_FAIL_JOBS": "render_range"})
        with Client(farm.address) as c:
            p = c.remake(path, out=tmp_path / "out", chunk_frames=6)
        assert media.probe(str(tmp_path / "out" / "final.mp4")).n_frames == truth["n_frames"]
        with _state(farm) as st:
            failed = [a for j in st.jobs(p.id) if j.kind == "render_range" for a in st.attempts(j.id)
                      if a.node_id == bad.node_id]
            assert failed and all(a.state == "failed" for a in failed)
            assert st.is_blocklisted(bad.node_id, "render_range")
    finally:
        farm.close()


def test_a_job_past_its_retries_is_dead_and_the_project_says_why(tmp_path, sample):
    path, _ = sample
    farm = Farm(tmp_path / "farm", nodes=0)
    try:
        for _ in range(2):
            farm.add_node(env={"LOOKALIKE_FAIL_JOBS": "render_range"})
        r = cli("remake", str(path), "--out", str(tmp_path / "out"), "--cluster", farm.address, "--quiet")
        assert r.returncode == JobError.exit_code, r.stderr[-2000:]
        assert "failed for good" in r.stderr and "LOOKALIKE_FAIL_JOBS" in r.stderr
        assert not (tmp_path / "out" / "final.mp4").exists()
    finally:
        farm.close()


def test_a_job_needing_what_no_node_has_is_refused(tmp_path, sample):
    path, _ = sample
    farm = Farm(tmp_path / "farm", nodes=1)
    try:
        r = cli("remake", str(path), "--out", str(tmp_path / "out"), "--cluster", farm.address, "--quiet",
                "--require", "gpu")
        assert r.returncode == JobError.exit_code, r.stderr[-2000:]
        assert "no node offers gpu" in r.stderr
        # A node that has it makes the same request work.
        farm.add_node(args=("--capabilities", "cpu,gpu"))
        r = cli("remake", str(path), "--out", str(tmp_path / "out2"), "--cluster", farm.address, "--quiet",
                "--require", "gpu")
        assert r.returncode == 0, r.stderr[-2000:]
    finally:
        farm.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MiB file system of its own (tmpfs), so that the test can fill it for real."""
    import os
    import subprocess

    where = tmp_path / "disk"
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to mount a tmpfs (it runs as root): {r.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(path):
    """Write zeros to `path` until its disk is full, for real."""
    with open(path, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 20))
                fh.flush()
        except OSError:
            pass


def test_a_full_store_disk_pauses_the_project_until_space_is_freed(tmp_path, sample, small_disk):
    """The folder store's disk fills up mid-render: the project pauses with the disk's error (no retries
    spent, no node blocklisted); once space is freed it resumes and its frames are a fault-free run's."""
    from farm import check_jobs_intact, ride_out_store_outage

    path, truth = sample
    store = small_disk / "store"
    farm = Farm(tmp_path / "farm", store=str(store), nodes=2)
    filler = small_disk / "filler"
    try:
        with Client(farm.address) as c:
            assert c.remake(path, out=tmp_path / "ref", chunk_frames=6).state == "done"
        seen = ride_out_store_outage(farm, path, tmp_path / "faulty", lambda: _fill(filler), filler.unlink,
                                     chunk_frames=6)
        assert "No space left on device" in seen["paused"].error, seen["paused"].error
        assert "disk is not full" in seen["paused"].error  # the hint says what to check
        with _state(farm) as st:
            check_jobs_intact(st, seen["done"].id, [n.node_id for n in farm.nodes])
        assert not [p for p in store.rglob("*.tmp~")], "a half-written file was left in the store"
    finally:
        farm.close()
    a, b = _frames(tmp_path / "ref" / "final.mp4"), _frames(tmp_path / "faulty" / "final.mp4")
    assert a.shape[0] == truth["n_frames"] and np.array_equal(a, b), "the full disk changed the remake"


def test_a_store_that_stays_full_fails_the_project_with_its_error_after_the_patience(tmp_path, sample, small_disk):
    """Past LOOKALIKE_STORE_PATIENCE_S the project stops waiting: it fails, naming the disk's error."""
    path, _ = sample
    filler = small_disk / "filler"
    farm = Farm(tmp_path / "farm", store=str(small_disk / "store"), nodes=1,
                env={"LOOKALIKE_STORE_PATIENCE_S": "3"})
    try:
        with Client(farm.address) as c:
            p = c.submit(path, chunk_frames=6)
            for ev in c.watch(p.id):
                if ev.stage == "rendering":
                    break
            _fill(filler)
            with pytest.raises(StoreError) as info:
                c.wait(p.id)
            assert "No space left on device" in str(info.value), str(info.value)
            assert c.project(p.id).state == "failed"
    finally:
        farm.close()
