"""Every Grafana panel query, every dashboard variable query and every recording rule, run by a real
Prometheus that scrapes a real lookalike_* exporter, returns data (finite numbers, not empty).

The exporter is tests/deploy/metrics_workload.py: lookalike.obs's own metrics and serve_metrics,
moved the way one project moves them. Prometheus runs on loopback with a temporary config that
scrapes it every second and loads deploy/prometheus/rules.yml."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import DEPLOY
from promql import panel_queries, rule_exprs, substitute, variable_queries

pytestmark = pytest.mark.slow

WORKLOAD = Path(__file__).with_name("metrics_workload.py")
DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, proc: subprocess.Popen, log: Path, timeout: float = DEADLINE_S):
    """Poll `check()` until it returns something truthy; fail with Prometheus's log otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if proc.poll() is not None:
            pytest.fail(
                f"prometheus exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f} s; prometheus log:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


class Prometheus:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, expr: str) -> list[dict]:
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
        try:
            result = self.query(expr)
        except (OSError, AssertionError):
            return None
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def workload():
    proc = subprocess.Popen(
        [sys.executable, str(WORKLOAD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    port = json.loads(proc.stdout.readline())["port"]

    def project() -> int:
        proc.stdin.write("project\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())["projects"]

    yield port, project
    proc.stdin.close()
    proc.wait(timeout=10)
    proc.stdout.close()


@pytest.fixture(scope="module")
def prometheus(workload, prometheus_bin, tmp_path_factory):
    """Prometheus scraping the workload, after two projects ran with a scrape between them, so every
    rate() window holds an increase."""
    exporter_port, project = workload
    tmp = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus" / "rules.yml")],
        "scrape_configs": [
            {
                "job_name": "lookalike-coordinator",
                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
            }
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp / "prometheus.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [
                prometheus_bin,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    prom = Prometheus(port)
    try:
        wait_for("ready Prometheus", prom.ready, proc, log)
        done = 'sum(lookalike_projects_total{state="done"})'
        for n in (1, 2):
            assert project() == n
            wait_for(f"scrape of project {n}", lambda n=n: prom.value(done) == n, proc, log)
        yield prom, proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def assert_has_data(prom: Prometheus, where: str, expr: str) -> list[dict]:
    result = prom.query(expr)
    assert result, f"{where}: no data for {expr!r}"
    bad = [(s["metric"], s["value"][1]) for s in result if not math.isfinite(float(s["value"][1]))]
    assert not bad, f"{where}: non-finite values {bad} for {expr!r}"
    return result


DASHBOARDS = {
    p.name: json.loads(p.read_text()) for p in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
}
PANEL_QUERIES = [q for d in DASHBOARDS.values() for q in [*panel_queries(d), *variable_queries(d)]]
RULES = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
RECORDS = list(rule_exprs(RULES, "record"))


@pytest.mark.parametrize(("where", "expr"), PANEL_QUERIES, ids=[w for w, _ in PANEL_QUERIES])
def test_dashboard_query_returns_data(prometheus, where, expr):
    prom, _, _ = prometheus
    assert_has_data(prom, where, substitute(expr))


@pytest.mark.parametrize(("name", "expr"), RECORDS, ids=[n for n, _ in RECORDS])
def test_recording_rule_expr_returns_data_and_is_recorded(prometheus, name, expr):
    prom, proc, log = prometheus
    assert_has_data(prom, name, expr)
    # Prometheus itself evaluates the rule from deploy/prometheus/rules.yml and stores the series.
    wait_for(f"recorded series {name}", lambda: prom.value(f"count({name})"), proc, log)


def test_values_match_the_work_done(prometheus):
    """Two projects of the workload: the dashboards' totals say exactly that."""
    prom, _, _ = prometheus
    by_stage = {
        s["metric"]["stage"]: float(s["value"][1])
        for s in prom.query('sum by (stage) (lookalike_frames_total{node=~"node-a|node-b"})')
    }
    assert by_stage == {"analyze": 144, "render": 144, "assemble": 144}
    failed = prom.query('sum by (kind) (lookalike_attempts_total{outcome="failed"})')
    assert [(s["metric"]["kind"], float(s["value"][1])) for s in failed] == [("render_range", 2)]
    assert prom.value("max(lookalike_nodes)") == 2
    assert prom.value('sum(lookalike_jobs_total{kind="render_range", state="succeeded"})') == 6
