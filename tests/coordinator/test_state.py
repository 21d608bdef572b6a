"""The state store on both backends: SQLite in tmp_path and a private schema on the real PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lookalike.coordinator.state import (
    JOB_TRANSITIONS,
    SCHEMA_VERSION,
    AttemptState,
    JobState,
    ProjectState,
    StateStore,
    open_state,
)

from lookalike.errors import ConfigError, InputError, JobError, NotFoundError, StoreError


class FakeClock:
    """UTC epoch seconds that only move when a test moves them (no sleeping)."""

    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Callable[[], StateStore]:
    """Opens (again) the same store: a SQLite file in tmp_path, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state' / 'state.db'}"
        return lambda: open_state(url, clock=clock)
    pg_url = request.getfixturevalue("pg_url")
    schema = request.getfixturevalue("pg_schema")
    return lambda: open_state(pg_url, schema=schema, clock=clock)


@pytest.fixture
def state(opener: Callable[[], StateStore]) -> Iterator[StateStore]:
    store = opener()
    yield store
    store.close()


def _render_jobs(state: StateStore, n: int = 3, max_attempts: int = 3) -> tuple[str, list[str]]:
    project = state.create_project("acme", "remake", {})
    jobs = state.add_jobs(
        project.id,
        [
            {
                "kind": "render",
                "scene_index": i,
                "start_frame": 24 * i,
                "end_frame": 24 * (i + 1),
                "spec": {"grade": {"exposure": 0.1 * i}},
                "max_attempts": max_attempts,
            }
            for i in range(n)
        ],
    )
    return project.id, [j.id for j in jobs]


def _is_uuid4_hex(value: str) -> bool:
    return uuid.UUID(hex=value).version == 4 and len(value) == 32


# ---- schema -------------------------------------------------------------------------------------


def test_schema_is_idempotent_and_survives_reopen(opener: Callable[[], StateStore]) -> None:
    first = opener()
    project = first.create_project("acme", "p", {"fps": 24})
    version = first.put_document(project.id, "plan", {"scenes": []})
    first.close()
    again = opener()  # schema already there: nothing re-created, nothing lost
    assert again.schema_version() == SCHEMA_VERSION
    assert again.get_project(project.id) == project
    assert again.get_document(project.id, "plan", version) == {"scenes": []}
    again.close()


def test_newer_schema_refused(opener: Callable[[], StateStore]) -> None:
    store = opener()
    with store._db.transaction() as tx:
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (SCHEMA_VERSION + 1, 0.0)
        )
    store.close()
    with pytest.raises(ConfigError, match="newer"):
        opener()


# ---- projects -----------------------------------------------------------------------------------


def test_projects(state: StateStore, clock: FakeClock) -> None:
    a = state.create_project("acme", "first", {"formats": ["mp4"], "target": 80})
    clock.now += 1
    b = state.create_project("acme", "second", {})
    state.create_project("other", "theirs", {})
    assert _is_uuid4_hex(a.id) and a.state is ProjectState.CREATED
    assert state.get_project(a.id) == a
    assert [p.name for p in state.list_projects("acme")] == ["first", "second"]
    assert state.list_projects("nobody") == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.state = ProjectState.DONE  # type: ignore[misc]

    clock.now += 1
    rendering = state.set_project_state(a.id, ProjectState.RENDERING, stage="render", progress=0.25)
    assert (rendering.state, rendering.stage, rendering.progress) == (ProjectState.RENDERING, "render", 0.25)
    assert rendering.updated_at == clock.now and rendering.created_at == a.created_at
    kept = state.set_project_state(a.id, "scoring")
    assert (kept.state, kept.stage, kept.progress) == (ProjectState.SCORING, "render", 0.25)
    failed = state.set_project_state(b.id, ProjectState.FAILED, error="provider down; retry later")
    assert failed.error == "provider down; retry later"
    assert {p.name for p in state.unfinished_projects()} == {"first", "theirs"}
    state.set_project_state(a.id, ProjectState.DONE, progress=1.0)
    assert [p.name for p in state.unfinished_projects()] == ["theirs"]

    with pytest.raises(NotFoundError):
        state.get_project("0" * 32)
    with pytest.raises(NotFoundError):
        state.set_project_state("0" * 32, ProjectState.DONE)
    with pytest.raises(InputError, match="analyzing"):
        state.set_project_state(a.id, "exploded")


def test_values_are_bound_not_formatted(state: StateStore) -> None:
    evil = "x'); DROP TABLE projects; --"
    project = state.create_project(evil, evil, {evil: evil, "quote": '"\\'})
    assert state.list_projects(evil)[0] == project
    assert state.get_project(project.id).options == {evil: evil, "quote": '"\\'}
    assert state.put_document(project.id, evil, {"k": evil}) == 1
    assert state.get_document(project.id, evil) == {"k": evil}


# ---- documents ----------------------------------------------------------------------------------


def test_documents_are_versioned(state: StateStore) -> None:
    pid = state.create_project("acme", "p", {}).id
    assert state.get_document(pid, "plan") is None
    assert state.document_versions(pid, "plan") == []
    plans = [{"schema": "lookalike.plan/1", "scenes": [{"index": i}]} for i in range(3)]
    assert [state.put_document(pid, "plan", doc) for doc in plans] == [1, 2, 3]
    assert state.put_document(pid, "analysis", {"schema": "lookalike.analysis/1"}) == 1
    assert state.get_document(pid, "plan") == plans[2]
    assert state.get_document(pid, "plan", version=1) == plans[0]
    assert state.get_document(pid, "plan", version=9) is None
    assert state.document_versions(pid, "plan") == [1, 2, 3]
    with pytest.raises(NotFoundError):
        state.put_document("0" * 32, "plan", {})
    with pytest.raises(InputError, match="JSON"):
        state.put_document(pid, "plan", {"bad": float("nan")})
    assert state.document_versions(pid, "plan") == [1, 2, 3]


def test_concurrent_document_puts_get_distinct_versions(state: StateStore) -> None:
    pid = state.create_project("acme", "p", {}).id
    versions: list[int] = []
    barrier = threading.Barrier(6)

    def put(i: int) -> None:
        barrier.wait()
        for j in range(5):
            versions.append(state.put_document(pid, "plan", {"writer": i, "n": j}))

    threads = [threading.Thread(target=put, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == list(range(1, 31))


# ---- jobs, attempts, fencing --------------------------------------------------------------------


def test_add_and_filter_jobs(state: StateStore) -> None:
    pid, ids = _render_jobs(state, n=3)
    state.add_jobs(pid, [{"kind": "assemble", "scene_index": -1, "start_frame": 0, "end_frame": 0}])
    jobs = state.jobs(pid)
    assert [j.kind for j in jobs] == ["render", "render", "render", "assemble"]
    assert [j.id for j in jobs[:3]] == ids and all(_is_uuid4_hex(i) for i in ids)
    first = state.get_job(ids[0])
    assert (first.state, first.attempts_used, first.max_attempts) == (JobState.QUEUED, 0, 3)
    assert (first.scene_index, first.start_frame, first.end_frame) == (0, 0, 24)
    assert state.get_job(ids[2]).spec == {"grade": {"exposure": 0.2}}
    assert [j.id for j in state.jobs(pid, kind="render", state="queued")] == ids
    assert state.jobs(pid, state=JobState.RUNNING) == []
    assert state.get_job(jobs[3].id).max_attempts == 3

    with pytest.raises(InputError, match="kind"):
        state.add_jobs(pid, [{"scene_index": 0}])
    with pytest.raises(InputError, match="frame range"):
        state.add_jobs(pid, [{"kind": "render", "start_frame": 10, "end_frame": 9}])
    with pytest.raises(InputError, match="frame range"):
        state.add_jobs(pid, [{"kind": "render", "start_frame": -1, "end_frame": 9}])
    with pytest.raises(InputError, match="max_attempts"):
        state.add_jobs(pid, [{"kind": "render", "max_attempts": 0}])
    with pytest.raises(NotFoundError):
        state.add_jobs("0" * 32, [{"kind": "render"}])
    with pytest.raises(NotFoundError):
        state.get_job("0" * 32)
    assert len(state.jobs(pid)) == 4


def test_jobs_by_kinds_without_results(state: StateStore) -> None:
    """The scheduler's poll: several kinds in one query, and no result JSON read (None), while the
    job's spec, state and output key still come back."""
    pid, ids = _render_jobs(state, n=2)
    state.add_jobs(pid, [{"kind": "assemble", "scene_index": -1, "start_frame": 0, "end_frame": 0},
                         {"kind": "score", "scene_index": -1, "start_frame": 0, "end_frame": 0}])
    attempt = state.start_attempt(ids[0], "node-a")
    assert state.finish_attempt(attempt.id, ok=True, output_key="segments/a.mp4", result={"features": [1] * 1000})
    assert [j.kind for j in state.jobs(pid, kinds={"render", "score"})] == ["render", "render", "score"]
    assert state.jobs(pid, kinds=set()) == []
    light = state.jobs(pid, kinds=["render"], results=False)
    full = state.jobs(pid, kinds=["render"])
    assert [j.id for j in light] == ids and full[0].result == {"features": [1] * 1000}
    assert light[0].result is None and light[0].output_key == "segments/a.mp4"
    assert light[0].state is JobState.SUCCEEDED and light[1].spec == {"grade": {"exposure": 0.1}}
    assert [(j.id, j.state, j.spec) for j in light] == [(j.id, j.state, j.spec) for j in full]


def test_attempt_promotes_once(state: StateStore, clock: FakeClock) -> None:
    _, (job_id, *_) = _render_jobs(state)
    attempt = state.start_attempt(job_id, "node-a")
    assert _is_uuid4_hex(attempt.id) and attempt.state is AttemptState.RUNNING
    assert attempt.started_at == clock.now and attempt.node_id == "node-a"
    job = state.get_job(job_id)
    assert (job.state, job.attempts_used, job.current_attempt_id) == (JobState.RUNNING, 1, attempt.id)
    with pytest.raises(JobError, match="running"):
        state.start_attempt(job_id, "node-b")

    clock.now += 5
    key = f"segments/{job_id}/{attempt.id}.mp4"
    assert state.finish_attempt(attempt.id, ok=True, output_key=key, result={"frames": 24}) is True
    job = state.get_job(job_id)
    assert (job.state, job.promoted_attempt_id, job.output_key, job.result) == (
        JobState.SUCCEEDED,
        attempt.id,
        key,
        {"frames": 24},
    )
    done = state.get_attempt(attempt.id)
    assert (done.state, done.finished_at) == (AttemptState.SUCCEEDED, clock.now)

    # A duplicate report is refused and changes nothing, not even the attempt's own record.
    assert state.finish_attempt(attempt.id, ok=True, output_key="segments/other.mp4") is False
    assert state.finish_attempt(attempt.id, ok=False, error="late crash") is False
    assert state.get_job(job_id) == job
    assert state.get_attempt(attempt.id) == done
    with pytest.raises(JobError, match="succeeded"):
        state.start_attempt(job_id, "node-b")
    with pytest.raises(NotFoundError):
        state.finish_attempt("0" * 32, ok=True)


def test_transient_failures_retry_then_die(state: StateStore) -> None:
    _, (job_id, *_) = _render_jobs(state, n=1, max_attempts=2)
    first = state.start_attempt(job_id, "node-a")
    assert state.finish_attempt(first.id, ok=False, error="CUDA OOM") is False
    job = state.get_job(job_id)
    assert (job.state, job.attempts_used, job.error) == (JobState.QUEUED, 1, "CUDA OOM")
    assert state.get_attempt(first.id).state is AttemptState.FAILED

    second = state.start_attempt(job_id, "node-b")
    assert state.finish_attempt(second.id, ok=False, error="CUDA OOM again") is False
    job = state.get_job(job_id)
    assert job.state is JobState.DEAD and job.attempts_used == 2
    assert "CUDA OOM again" in job.error and "2 of 2" in job.error
    with pytest.raises(JobError, match="dead"):
        state.start_attempt(job_id, "node-c")
    assert [(a.number, a.node_id) for a in state.attempts(job_id)] == [(1, "node-a"), (2, "node-b")]


def test_an_uncharged_failure_gives_the_attempt_back(state: StateStore) -> None:
    """A failure that was nobody's fault (the segment store was down) requeues the job without spending
    its budget, however often it happens; attempt numbers still count every try."""
    _, (job_id, *_) = _render_jobs(state, n=1, max_attempts=1)
    for _ in range(3):
        a = state.start_attempt(job_id, "node-a")
        assert state.finish_attempt(a.id, ok=False, error="STORE_UNAVAILABLE: s3 down", charge=False) is False
        job = state.get_job(job_id)
        assert (job.state, job.attempts_used) == (JobState.QUEUED, 0)
    last = state.start_attempt(job_id, "node-b")
    assert state.finish_attempt(last.id, ok=True, output_key="k") is True
    assert [a.number for a in state.attempts(job_id)] == [1, 2, 3, 4]
    assert state.get_job(job_id).attempts_used == 1


def test_permanent_failure_dies_at_once(state: StateStore) -> None:
    _, (job_id, *_) = _render_jobs(state, n=1, max_attempts=5)
    attempt = state.start_attempt(job_id, "node-a")
    assert state.finish_attempt(attempt.id, ok=False, error="bad LUT in spec", transient=False) is False
    job = state.get_job(job_id)
    assert job.state is JobState.DEAD and "bad LUT in spec" in job.error and "permanent" in job.error


def test_lost_node_requeues_and_late_attempt_is_fenced(state: StateStore) -> None:
    _, (j0, j1, j2) = _render_jobs(state)
    lost = state.start_attempt(j0, "node-a")
    other = state.start_attempt(j1, "node-b")
    also_lost = state.start_attempt(j2, "node-a")
    assert sorted(state.requeue_attempts_of_node("node-a", "heartbeat missed")) == sorted([j0, j2])
    assert state.get_job(j0).state is JobState.QUEUED and "heartbeat missed" in state.get_job(j0).error
    assert state.get_attempt(lost.id).state is AttemptState.LOST
    assert state.get_job(j1).state is JobState.RUNNING  # other node's work untouched
    assert state.requeue_attempts_of_node("node-a", "again") == []

    retry = state.start_attempt(j0, "node-c")
    # The lost node comes back and reports: it was current once, but not any more.
    assert state.finish_attempt(lost.id, ok=True, output_key="attempts/lost.mp4") is False
    assert state.get_attempt(lost.id).state is AttemptState.LATE
    job = state.get_job(j0)
    assert (job.state, job.output_key, job.current_attempt_id) == (JobState.RUNNING, None, retry.id)
    assert state.finish_attempt(retry.id, ok=True, output_key="attempts/retry.mp4") is True
    assert state.get_job(j0).output_key == "attempts/retry.mp4"
    # A late failure report can't requeue a job that succeeded.
    assert state.finish_attempt(also_lost.id, ok=False, error="late") is False
    assert state.get_job(j2).state is JobState.QUEUED
    assert state.finish_attempt(other.id, ok=True) is True


def test_requeue_stale_and_spent_budget(state: StateStore, clock: FakeClock) -> None:
    _, (j0, j1) = _render_jobs(state, n=2, max_attempts=1)
    old = state.start_attempt(j0, "node-a")
    clock.now += 100
    fresh = state.start_attempt(j1, "node-b")
    clock.now += 50
    assert state.requeue_stale(older_than_s=120) == [j0]
    assert state.get_attempt(old.id).state is AttemptState.LOST
    assert state.get_attempt(fresh.id).state is AttemptState.RUNNING
    # max_attempts=1 and one attempt used: a job that loses its node can't cycle for ever.
    job = state.get_job(j0)
    assert job.state is JobState.DEAD and "retry budget spent" in job.error


def test_cancel_project(state: StateStore) -> None:
    pid, (j0, j1, j2) = _render_jobs(state)
    done = state.start_attempt(j0, "n")
    assert state.finish_attempt(done.id, ok=True, output_key="s/0.mp4")
    running = state.start_attempt(j1, "n")
    project = state.cancel_project(pid)
    assert project.state is ProjectState.CANCELLED
    assert [state.get_job(j).state for j in (j0, j1, j2)] == [
        JobState.SUCCEEDED,
        JobState.CANCELLED,
        JobState.CANCELLED,
    ]
    assert state.get_attempt(running.id).state is AttemptState.CANCELLED
    assert state.finish_attempt(running.id, ok=True, output_key="s/1.mp4") is False
    assert state.get_job(j1).output_key is None
    assert state.unfinished_projects() == []

    finished = state.create_project("acme", "finished", {})
    state.set_project_state(finished.id, ProjectState.DONE)
    assert state.cancel_project(finished.id).state is ProjectState.DONE
    with pytest.raises(NotFoundError):
        state.cancel_project("0" * 32)


def test_transition_table(state: StateStore) -> None:
    assert all(JOB_TRANSITIONS[s] == frozenset() for s in JobState if s.finished)
    assert {s for s in JobState if not s.finished} == {JobState.QUEUED, JobState.RUNNING}
    _, (j0, j1, j2) = _render_jobs(state)
    with pytest.raises(JobError, match="queued to succeeded"):
        state.set_job_state(j0, JobState.SUCCEEDED)
    failed = state.set_job_state(j0, JobState.FAILED, error="upstream analysis failed")
    assert (failed.state, failed.error) == (JobState.FAILED, "upstream analysis failed")
    with pytest.raises(JobError, match="none: it is finished"):
        state.set_job_state(j0, JobState.QUEUED)
    attempt = state.start_attempt(j1, "n")
    state.set_job_state(j1, "cancelled")
    assert state.finish_attempt(attempt.id, ok=True) is False
    assert state.get_job(j1).state is JobState.CANCELLED
    with pytest.raises(InputError):
        state.set_job_state(j2, "paused")


@pytest.mark.parametrize("finishers", [2, 8])
def test_concurrent_finishers_promote_once(state: StateStore, finishers: int) -> None:
    """Threads report the same attempts at once, plus the lost attempt racing its replacement."""
    _, job_ids = _render_jobs(state, n=4)
    current, stale = {}, {}
    for job_id in job_ids:
        stale[job_id] = state.start_attempt(job_id, "node-gone").id
    state.requeue_attempts_of_node("node-gone", "test")
    for job_id in job_ids:
        current[job_id] = state.start_attempt(job_id, "node-ok").id

    outcomes: list[tuple[str, str, bool]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(finishers * 2)

    def report(attempt_ids: dict[str, str], who: int) -> None:
        barrier.wait()
        for job_id in job_ids:
            promoted = state.finish_attempt(
                attempt_ids[job_id], ok=True, output_key=f"s/{attempt_ids[job_id]}-{who}.mp4"
            )
            with lock:
                outcomes.append((job_id, attempt_ids[job_id], promoted))

    threads = [threading.Thread(target=report, args=(current, i)) for i in range(finishers)]
    threads += [threading.Thread(target=report, args=(stale, i)) for i in range(finishers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(outcomes) == 2 * finishers * len(job_ids)
    for job_id in job_ids:
        winners = [a for j, a, promoted in outcomes if j == job_id and promoted]
        assert winners == [current[job_id]]
        job = state.get_job(job_id)
        assert job.promoted_attempt_id == current[job_id]
        assert job.output_key.startswith(f"s/{current[job_id]}-")
        assert state.get_attempt(current[job_id]).state is AttemptState.SUCCEEDED
        assert state.get_attempt(stale[job_id]).state is AttemptState.LATE


def test_concurrent_starts_one_wins(state: StateStore) -> None:
    _, (job_id,) = _render_jobs(state, n=1)
    barrier = threading.Barrier(6)
    started: list[str] = []
    refused: list[str] = []

    def start(node: str) -> None:
        barrier.wait()
        try:
            started.append(state.start_attempt(job_id, node).id)
        except JobError:
            refused.append(node)

    threads = [threading.Thread(target=start, args=(f"node-{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(started) == 1 and len(refused) == 5
    job = state.get_job(job_id)
    assert job.current_attempt_id == started[0] and job.attempts_used == 1


# ---- nodes --------------------------------------------------------------------------------------


def test_nodes_heartbeat_and_blocklist(state: StateStore, clock: FakeClock) -> None:
    node = state.upsert_node("gpu-1", "10.0.0.5:50061", {"gpus": 1, "nvenc": True})
    assert (node.address, node.capabilities, node.last_heartbeat) == (
        "10.0.0.5:50061",
        {"gpus": 1, "nvenc": True},
        clock.now,
    )
    clock.now += 10
    state.upsert_node("gpu-2", "10.0.0.6:50061", {})
    moved = state.upsert_node("gpu-1", "10.0.0.7:50061", {"gpus": 2})
    assert (moved.address, moved.capabilities) == ("10.0.0.7:50061", {"gpus": 2})
    assert moved.registered_at == node.registered_at and moved.last_heartbeat == clock.now

    clock.now += 30
    state.heartbeat("gpu-2")
    assert [n.id for n in state.nodes()] == ["gpu-1", "gpu-2"]
    assert [n.id for n in state.nodes(alive_within_s=15)] == ["gpu-2"]
    with pytest.raises(NotFoundError):
        state.heartbeat("gpu-9")

    assert [state.record_failure("gpu-1", "render") for _ in range(3)] == [1, 2, 3]
    assert state.record_failure("gpu-1", "encode") == 1
    assert state.is_blocklisted("gpu-1", "render")
    assert not state.is_blocklisted("gpu-1", "render", threshold=4)
    assert not state.is_blocklisted("gpu-1", "encode")
    assert not state.is_blocklisted("gpu-2", "render")
    state.clear_failures("gpu-1", "render")
    assert not state.is_blocklisted("gpu-1", "render") and state.record_failure("gpu-1", "encode") == 2
    state.clear_failures("gpu-1")
    assert state.record_failure("gpu-1", "encode") == 1


# ---- backend specifics --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, kwargs",
    [
        ("mysql://x/y", {}),
        ("sqlite:///relative.db", {"schema": "s"}),
        ("sqlite://host/x.db", {}),
        ("sqlite:relative.db", {}),
        ("postgresql://root@127.0.0.1/test", {"schema": "Bad-Name; DROP"}),
    ],
)
def test_bad_urls(url: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        open_state(url, **kwargs)


def test_postgres_down_is_store_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}"):
        open_state(f"postgresql://root@127.0.0.1:{port}/test", timeout_s=1)


def test_pg_schemas_are_private(pg_url: str, pg_schema: str) -> None:
    with open_state(pg_url, schema=pg_schema) as mine, open_state(pg_url, schema=pg_schema + "_b") as theirs:
        try:
            mine.create_project("acme", "mine", {})
            assert theirs.list_projects("acme") == []
        finally:
            import psycopg
            from psycopg import sql

            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(pg_schema + "_b")))


_WORKER = """
import json, sys
from lookalike.coordinator.state import open_state
from lookalike.errors import JobError
store = open_state(sys.argv[1])
project_id, who = sys.argv[2], sys.argv[3]
wins = 0
for job in store.jobs(project_id):
    try:
        attempt = store.start_attempt(job.id, who)
    except JobError:
        continue
    wins += store.finish_attempt(attempt.id, ok=True, output_key=f"s/{job.id}/{who}.mp4")
print(json.dumps({"who": who, "wins": wins}))
"""


def test_sqlite_across_processes(tmp_path: Path) -> None:
    """Three processes race over the same jobs in one SQLite file: each job runs and promotes once."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with open_state(url) as store:
        pid, job_ids = _render_jobs(store, n=30)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, pid, f"proc-{i}"], stdout=subprocess.PIPE, text=True
        )
        for i in range(3)
    ]
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(r["wins"] for r in results) == len(job_ids)
    with open_state(url) as store:
        jobs = store.jobs(pid)
        assert all(j.state is JobState.SUCCEEDED and j.attempts_used == 1 for j in jobs)
        assert all(len(store.attempts(j.id)) == 1 for j in jobs)


def test_schema_from_the_url(pg_url, pg_schema):
    import psycopg

    with open_state(f"{pg_url}?schema={pg_schema}") as st:
        st.create_project("t", "n", {})
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = 'projects'",
            (pg_schema,),
        ).fetchone()
    assert rows[0] == 1
