"""The monitoring stack against a real farm: a coordinator and two nodes started with the commands
deploy/compose.yaml uses (--listen, --metrics-port), one `lookalike remake --cluster` of a synthesized
clip, and Prometheus scraping all three /metrics endpoints while it runs. Afterwards every dashboard
panel query returns data and the totals agree with the clip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml
from conftest import DEPLOY
from promql import GPU_ONLY, GRAFANA_VARIABLES, panel_queries, rule_exprs, substitute, variable_queries
from promserver import running_prometheus
from synth import make_clip

pytestmark = pytest.mark.slow

DASHBOARDS = {
    p.name: json.loads(p.read_text()) for p in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
}
RULES_FILE = DEPLOY / "prometheus" / "rules.yml"
# The whole run fits in this window, so every rate() sees its increases.
WINDOW = {**GRAFANA_VARIABLES, "__rate_interval": "10m"}


def spawn(args: list[str], log, env) -> tuple[subprocess.Popen, dict]:
    """A `lookalike` process and the JSON line it prints once it listens."""
    p = subprocess.Popen(
        [sys.executable, "-m", "lookalike.cli", *args],
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    line = p.stdout.readline()
    if not line:
        p.wait(timeout=10)
        pytest.fail(f"`lookalike {args[0]}` exited ({p.returncode}) before listening; see {log.name}")
    return p, json.loads(line)


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    home = tmp_path_factory.mktemp("farm")
    env = dict(os.environ, LOOKALIKE_NODE_TIMEOUT_S="10")
    procs: list[subprocess.Popen] = []
    with open(home / "farm.log", "w") as log:
        try:
            coord, first = spawn(
                ["coordinator", "--listen", "127.0.0.1:0", "--metrics-port", "0", "--home", str(home)],
                log,
                env,
            )
            procs.append(coord)
            nodes = []
            for _ in range(2):
                node, info = spawn(
                    [
                        "node",
                        "--coordinator",
                        first["address"],
                        "--listen",
                        "127.0.0.1:0",
                        "--metrics-port",
                        "0",
                    ],
                    log,
                    env,
                )
                procs.append(node)
                nodes.append(info)
            yield home, first, nodes
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                p.stdout.close()


@pytest.fixture(scope="module")
def run(farm, prometheus_bin, tmp_path_factory):
    """Prometheus scraping the farm while a remake runs; yields (prometheus, clip truth, node infos)."""
    home, coord, nodes = farm
    clip = home / "sample.mp4"
    truth = make_clip(clip, [(30, (255, 200, 120), 2.0), (20, (120, 160, 255), -3.0)])
    scrape = {
        "lookalike-coordinator": [f"127.0.0.1:{coord['metrics_port']}"],
        "lookalike-nodes": [f"127.0.0.1:{n['metrics_port']}" for n in nodes],
    }
    with running_prometheus(
        prometheus_bin, tmp_path_factory.mktemp("prometheus"), scrape, [RULES_FILE]
    ) as prom:
        prom.wait_for("first scrape of all three targets", lambda: prom.value("sum(up)") == 3)
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "lookalike.cli",
                "remake",
                str(clip),
                "--out",
                str(home / "out"),
                "--cluster",
                coord["address"],
                "--quiet",
            ],
            capture_output=True,
            text=True,
            timeout=480,
            stdin=subprocess.DEVNULL,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        prom.wait_for(
            "the finished project in Prometheus",
            lambda: prom.value('sum(lookalike_projects_total{state="done"})') == 1,
        )
        # One more scrape of the nodes after that, so their last counters are in too.
        seen = time.time()
        prom.wait_for(
            "a scrape of the nodes after the project ended",
            lambda: (prom.value('min(timestamp(up{job="lookalike-nodes"}))') or 0) > seen,
        )
        yield prom, truth, nodes


QUERIES = [q for d in DASHBOARDS.values() for q in [*panel_queries(d), *variable_queries(d)]]


def test_every_dashboard_query_returns_data(run):
    prom, _, _ = run
    # Not checked for finite values: lookalike.obs creates a labelled counter on its first increment,
    # so a counter that moves once (one attempt of a kind) enters Prometheus at its final value, its
    # rate() reads 0 and a ratio of rates reads 0/0. tests/deploy/test_prometheus_queries.py checks
    # the values on a workload whose counters move between scrapes.
    gpu_panels = [(w, e) for w, e in QUERIES if any(g in e for g in GPU_ONLY)]
    assert gpu_panels, "the node dashboard lost its GPU panels"
    for where, expr in QUERIES:
        if (where, expr) in gpu_panels:
            # A CPU farm: NVML finds no GPU, so the series must be absent rather than faked.
            assert not prom.query(substitute(expr, WINDOW)), f"{where}: GPU series on a farm without a GPU"
            continue
        prom.assert_has_data(where, substitute(expr, WINDOW), finite=False)


def test_every_recording_rule_returns_data(run):
    prom, _, _ = run
    records = list(rule_exprs(yaml.safe_load(RULES_FILE.read_text()), "record"))
    # The rules' own windows: a ratio may read 0/0 (NaN) once the farm is idle, but the series is there.
    empty = [name for name, expr in records if not prom.query(expr)]
    assert not empty, f"recording rules without data on a real farm: {empty}"


def test_totals_agree_with_the_clip(run):
    prom, truth, nodes = run
    n = truth["n_frames"]
    assemble = prom.value('sum(lookalike_frames_total{stage="assemble"})')
    assert assemble == n
    render = prom.value('sum(lookalike_frames_total{stage="render"})')
    assert render is not None and render >= n
    # Both node processes are scraped under the node ids they registered with.
    ids = {s["metric"]["node"] for s in prom.query("count by (node) (lookalike_frames_total)")}
    assert ids <= {info["node_id"] for info in nodes} and ids
    assert prom.value("sum(lookalike_jobs_total)") == prom.value(
        'sum(lookalike_jobs_total{state="succeeded"})'
    )
    assert prom.value('sum(lookalike_rpc_total{service="NodeRegistry", method="Register"})') >= 2
    assert prom.value('sum(lookalike_bytes_stored_total{kind="final"})') > 0
