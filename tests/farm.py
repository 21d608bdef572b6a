"""Helpers for tests that run a farm: the CLI as a user runs it, and a module-wide embedded farm."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"


def cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    e = os.environ.copy()
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "lookalike.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=e, stdin=subprocess.DEVNULL)


def _spawn(args, env, log) -> subprocess.Popen:
    # A session of its own: whatever the process starts (a coordinator's local Ray daemons, a node's
    # helper interpreters) is in its process group, which _kill_group ends with it.
    return subprocess.Popen([sys.executable, "-m", "lookalike.cli", *args], stdout=subprocess.PIPE, stderr=log,
                            stdin=subprocess.DEVNULL, env=env, text=True, start_new_session=True)


def _kill_group(p: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the whole group has already exited


class Farm:
    """A coordinator process and node processes on loopback (SQLite and a folder store unless told)."""

    def __init__(self, home: Path, *, db: str | None = None, store: str | None = None, nodes: int = 2,
                 env: dict | None = None) -> None:

        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.env = dict(os.environ, LOOKALIKE_NODE_TIMEOUT_S="4", **(env or {}))
        self.log = open(home / "farm.log", "a")
        # Port 0: the coordinator binds a free port itself and says which, so no other process can take
        # the port between our choosing it and its binding it (Ray opens many while a coordinator starts).
        self.args = ["coordinator", "--listen", "127.0.0.1:0", "--metrics-port", "0", "--home", str(home)]
        if db:
            self.args += ["--db", db]
        if store:
            self.args += ["--store", store]
        self.nodes: list[subprocess.Popen] = []
        self.start_coordinator()
        for _ in range(nodes):
            self.add_node()

    def start_coordinator(self) -> None:
        import json

        self.coordinator = _spawn(self.args, self.env, self.log)
        line = self.coordinator.stdout.readline()
        if not line:
            self.close()
            tail = (self.home / "farm.log").read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the coordinator did not start; the end of {self.home / 'farm.log'}:\n{tail}")
        first = json.loads(line)
        self.address, self.metrics_port = first["address"], first["metrics_port"]
        # A restart (start_coordinator after kill_coordinator) comes back on the same address.
        self.args[self.args.index("--listen") + 1] = self.address

    def kill_coordinator(self) -> None:
        """SIGKILL to the coordinator and everything it started, as a crash of its machine would: no clean
        shutdown of anything. (Killing the process alone leaves its local Ray's dashboard and runtime-env
        agents running, orphaned, holding ports and memory into the next test.)"""
        _kill_group(self.coordinator)
        self.coordinator.wait()

    def add_node(self, env: dict | None = None, args: tuple[str, ...] = ()) -> subprocess.Popen:
        import json

        p = _spawn(["node", "--coordinator", self.address, *args], {**self.env, **(env or {})}, self.log)
        self.nodes.append(p)  # every node this farm starts is stopped by close()
        line = json.loads(p.stdout.readline())
        p.node_id = line["node_id"]  # type: ignore[attr-defined]
        return p

    def close(self) -> None:
        procs = [*getattr(self, "nodes", []), self.coordinator]
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
            _kill_group(p)  # what it left behind: nothing outlives the farm
        self.log.close()


def ride_out_store_outage(farm: Farm, sample: Path, out: Path, begin, end, *, hold_s: float = 6.0,
                          chunk_frames: int = 8) -> dict:
    """Remake `sample` on `farm`, calling begin() once ranges render and end() after the project has shown
    itself paused for `hold_s` seconds; return what a user saw: the paused project record, the events,
    and the finished project (its outputs fetched into `out`)."""
    import time

    from lookalike.client import Client

    with Client(farm.address) as c:
        p = c.submit(sample, chunk_frames=chunk_frames)
        for ev in c.watch(p.id):
            if ev.stage == "rendering" and ev.done > 0:
                break
        begin()
        try:
            deadline = time.monotonic() + 60
            while (paused := c.project(p.id)).stage != "paused":
                assert paused.state not in ("done", "failed", "cancelled"), (paused.state, paused.error)
                assert time.monotonic() < deadline, "the project never showed itself paused"
                time.sleep(0.2)
            time.sleep(hold_s)
            held = c.project(p.id)
            assert held.state not in ("done", "failed", "cancelled"), (held.state, held.error)
        finally:
            end()
        events: list = []
        done = c.wait(p.id, events.append)
        c.fetch_outputs(p.id, out)
    return {"paused": paused, "held": held, "events": events, "done": done}


def check_jobs_intact(st, project_id: str, node_ids: list[str]) -> list:
    """Every job succeeded with exactly one promoted attempt, within its retry budget, and no node was
    blamed (blocklisted) for the store's failure. Returns the attempts that failed on the store."""
    jobs = st.jobs(project_id)
    assert jobs and all(j.state == "succeeded" for j in jobs), [(j.kind, j.state, j.error) for j in jobs]
    store_failed = []
    for j in jobs:
        attempts = st.attempts(j.id)
        assert len([a for a in attempts if a.state == "succeeded"]) == 1, (j.kind, [a.state for a in attempts])
        assert j.attempts_used <= j.max_attempts, (j.kind, j.attempts_used)
        store_failed += [a for a in attempts if (a.error or "").startswith("STORE_UNAVAILABLE")]
    for node in node_ids:
        for kind in {j.kind for j in jobs}:
            assert not st.is_blocklisted(node, kind), f"node {node} was blocklisted for {kind} by a store outage"
    return store_failed
