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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(args, env, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lookalike.cli", *args], stdout=subprocess.PIPE, stderr=log,
                            stdin=subprocess.DEVNULL, env=env, text=True)


class Farm:
    """A coordinator process and node processes on loopback (SQLite and a folder store unless told)."""

    def __init__(self, home: Path, *, db: str | None = None, store: str | None = None, nodes: int = 2,
                 env: dict | None = None) -> None:
        import json

        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.env = dict(os.environ, LOOKALIKE_NODE_TIMEOUT_S="4", **(env or {}))
        self.log = open(home / "farm.log", "a")
        self.args = ["coordinator", "--listen", f"127.0.0.1:{free_port()}", "--metrics-port", "0", "--home", str(home)]
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
            raise RuntimeError(f"the coordinator did not start: see {self.home / 'farm.log'}")
        first = json.loads(line)
        self.address, self.metrics_port = first["address"], first["metrics_port"]

    def kill_coordinator(self) -> None:
        """SIGKILL, as a crash would: no clean shutdown of anything."""
        import signal

        self.coordinator.send_signal(signal.SIGKILL)
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
        self.log.close()
