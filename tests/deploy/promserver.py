"""A real Prometheus on loopback for the deploy tests: start it on a temp config, poll, query, stop."""

from __future__ import annotations

import contextlib
import json
import math
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """A running Prometheus process and its HTTP API."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.log = proc, log
        self.base = f"http://127.0.0.1:{port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, expr: str) -> list[dict]:
        """The instant vector `expr` gives now; a rejected query fails the test with Prometheus's reason."""
        url = f"{self.base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            pytest.fail(f"Prometheus rejected {expr!r}: {exc.read().decode()[:500]}")
        assert body["status"] == "success", body
        assert body["data"]["resultType"] == "vector", (expr, body["data"]["resultType"])
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        """The first sample's value, or None when there is none (yet)."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, what: str, check: Callable[[], object], timeout: float = 60.0, also=None):
        """Poll `check()` until it is truthy; fail with Prometheus's log when it exits or time runs out.
        `also()` may raise to give up early (another process died)."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if also is not None:
                also()
            if self.proc.poll() is not None:
                pytest.fail(
                    f"prometheus exited ({self.proc.returncode}) while waiting for {what}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout:.0f} s; prometheus log:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self) -> str:
        return self.log.read_text()[-3000:]

    def assert_has_data(self, where: str, expr: str, *, finite: bool = True) -> list[dict]:
        result = self.query(expr)
        assert result, f"{where}: no data for {expr!r}"
        if finite:
            bad = [(s["metric"], s["value"][1]) for s in result if not math.isfinite(float(s["value"][1]))]
            assert not bad, f"{where}: non-finite values {bad} for {expr!r}"
        return result


@contextlib.contextmanager
def running_prometheus(
    binary: str, folder: Path, scrape: dict[str, list[str]], rule_files: list[Path]
) -> Iterator[Prometheus]:
    """Prometheus scraping each job's targets every second and evaluating `rule_files` every second,
    its data in `folder`; ready when this yields, stopped after."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in scrape.items()
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = folder / "prometheus.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    prom = Prometheus(proc, port, log)
    try:
        prom.wait_for("ready Prometheus", prom.ready)
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
