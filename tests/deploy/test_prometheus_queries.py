"""Every Grafana panel query, every dashboard variable query and every recording rule, run by a real
Prometheus that scrapes a lookalike_* exporter, returns data (finite numbers, not empty).

The exporter is tests/deploy/metrics_workload.py: lookalike.obs's own metrics and serve_metrics,
moved the way projects move them (including a failed attempt), so the test takes seconds.
test_prometheus_farm.py does the same against a real coordinator and node running a remake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DEPLOY
from promql import panel_queries, rule_exprs, substitute, variable_queries
from promserver import running_prometheus

pytestmark = pytest.mark.slow

WORKLOAD = Path(__file__).with_name("metrics_workload.py")
DASHBOARDS = {
    p.name: json.loads(p.read_text()) for p in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
}
PANEL_QUERIES = [q for d in DASHBOARDS.values() for q in [*panel_queries(d), *variable_queries(d)]]
RULES_FILE = DEPLOY / "prometheus" / "rules.yml"
RECORDS = list(rule_exprs(yaml.safe_load(RULES_FILE.read_text()), "record"))


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
def prom(workload, prometheus_bin, tmp_path_factory):
    """Prometheus scraping the workload after two projects ran with a scrape between them, so every
    rate() window holds an increase."""
    exporter_port, project = workload
    folder = tmp_path_factory.mktemp("prometheus")
    with running_prometheus(
        prometheus_bin, folder, {"lookalike-coordinator": [f"127.0.0.1:{exporter_port}"]}, [RULES_FILE]
    ) as p:
        done = 'sum(lookalike_projects_total{state="done"})'
        for n in (1, 2):
            assert project() == n
            p.wait_for(f"scrape of project {n}", lambda n=n: p.value(done) == n)
        yield p


@pytest.mark.parametrize(("where", "expr"), PANEL_QUERIES, ids=[w for w, _ in PANEL_QUERIES])
def test_dashboard_query_returns_data(prom, where, expr):
    prom.assert_has_data(where, substitute(expr))


@pytest.mark.parametrize(("name", "expr"), RECORDS, ids=[n for n, _ in RECORDS])
def test_recording_rule_expr_returns_data_and_is_recorded(prom, name, expr):
    prom.assert_has_data(name, expr)
    # Prometheus itself evaluates the rule from deploy/prometheus/rules.yml and stores the series.
    prom.wait_for(f"recorded series {name}", lambda: prom.value(f"count({name})"))


def test_values_match_the_work_done(prom):
    """Two projects of the workload: the totals the dashboards show say exactly that."""
    by_stage = {
        s["metric"]["stage"]: float(s["value"][1])
        for s in prom.query('sum by (stage) (lookalike_frames_total{node=~"node-a|node-b"})')
    }
    assert by_stage == {"analyze": 144, "render": 144, "assemble": 144}
    failed = prom.query('sum by (kind) (lookalike_attempts_total{outcome="failed"})')
    assert [(s["metric"]["kind"], float(s["value"][1])) for s in failed] == [("render_range", 2)]
    assert prom.value("max(lookalike_nodes)") == 2
    assert prom.value('sum(lookalike_jobs_total{kind="render_range", state="succeeded"})') == 6
    ratio = prom.wait_for(
        "recorded failure ratio",
        lambda: prom.value('lookalike:attempt_failure_ratio:rate5m{kind="render_range"}'),
    )
    assert 0 < ratio < 1
