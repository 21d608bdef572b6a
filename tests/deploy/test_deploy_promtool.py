"""The Prometheus files pass Prometheus's own checker, and the alert rules fire when they should
(deploy/prometheus/rules.test.yml, run by `promtool test rules`)."""

from __future__ import annotations

import subprocess

from conftest import DEPLOY

PROM = DEPLOY / "prometheus"


def promtool_run(promtool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=60, cwd=PROM, stdin=subprocess.DEVNULL
    )


def test_config_is_valid(promtool):
    r = promtool_run(promtool, "check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 rule files found" in r.stdout


def test_rules_are_valid(promtool, rules):
    r = promtool_run(promtool, "check", "rules", "rules.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    n = sum(len(g["rules"]) for g in rules["groups"])
    assert f"SUCCESS: {n} rules found" in r.stdout


def test_rule_unit_tests_pass(promtool):
    r = promtool_run(promtool, "test", "rules", "rules.test.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_has_a_firing_unit_test(rules):
    """Each alert is shown to fire in rules.test.yml, not only to stay quiet."""
    import yaml

    tests = yaml.safe_load((PROM / "rules.test.yml").read_text())["tests"]
    fired = {t["alertname"] for case in tests for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == fired


def test_a_broken_rule_is_caught(promtool, tmp_path):
    """The check is not a formality: a typo in PromQL fails it."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "groups:\n  - name: x\n    rules:\n      - record: a:b\n        expr: sum(rate(lookalike_frames_total[1m])\n"
    )
    r = promtool_run(promtool, "check", "rules", str(bad))
    assert r.returncode != 0
