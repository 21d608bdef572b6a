"""The embedded farm: an in-process coordinator and node processes on 127.0.0.1, SQLite state and a
folder store under one home folder. Same code as a cluster, nothing to start by hand."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from lookalike.errors import UnreachableError
from lookalike.settings import Settings


def start_node_process(coordinator: str, *, log_path: Path, slots: int = 1, env: dict | None = None,
                       extra: tuple[str, ...] = ()) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "lookalike.cli", "node", "--coordinator", coordinator, "--listen", "127.0.0.1:0",
             "--slots", str(slots), *extra],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env or os.environ.copy(),
        )
    finally:
        log.close()


# The libraries' own thread pools (OpenCV, ONNX Runtime, OpenMP/BLAS) that a node may use.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def node_thread_env(n_nodes: int) -> dict:
    """The environment of the embedded farm's node processes: the machine's cores shared out among
    them (LOOKALIKE_NODE_THREADS and the OpenMP/BLAS variables; `lookalike node` sets OpenCV's and
    ONNX Runtime's pools from it). N nodes each using every core fight over them: on the 2-core
    machine, two processes running the footage vision at once took a quarter longer with the
    default pools than with one thread each. A variable the user set is kept."""
    env = os.environ.copy()
    n = str(max(1, (os.cpu_count() or 1) // max(1, n_nodes)))
    env.setdefault("LOOKALIKE_NODE_THREADS", n)
    for name in THREAD_VARS:
        env.setdefault(name, env["LOOKALIKE_NODE_THREADS"])
    return env


class Embedded:
    """`with Embedded(settings) as farm: Client(farm.address)...`"""

    def __init__(self, settings: Settings, *, nodes: int | None = None, node_start_timeout: float = 120.0) -> None:
        self.settings = settings
        self.n_nodes = nodes or settings.embedded_nodes
        self.node_start_timeout = node_start_timeout
        self.coordinator = None
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Embedded:
        from lookalike.coordinator.service import Coordinator

        self.coordinator = Coordinator(self.settings, listen="127.0.0.1:0")
        logs = self.settings.home / "logs"
        env = node_thread_env(self.n_nodes)
        for i in range(self.n_nodes):
            self.procs.append(start_node_process(self.coordinator.address, log_path=logs / f"node-{i}.log", env=env))
        deadline = time.time() + self.node_start_timeout
        while len(self.coordinator.dispatcher.alive_nodes()) < self.n_nodes:
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                self.__exit__(None, None, None)
                raise UnreachableError(f"a node process exited at start (code {dead[0].returncode}); see {logs}")
            if time.time() > deadline:
                self.__exit__(None, None, None)
                raise UnreachableError(f"nodes did not register within {self.node_start_timeout:.0f} s; see {logs}")
            time.sleep(0.05)
        self.coordinator.resume()
        return self

    @property
    def address(self) -> str:
        return self.coordinator.address

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.coordinator is not None:
            self.coordinator.stop(0.5)
