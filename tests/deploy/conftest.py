"""Fixtures for the deploy tests: the deploy/ folder, its parsed files, and the Prometheus tools.

`promtool` and `prometheus` come from the Debian package that deploy/ci-deps.sh installs. Where they
are missing the tests that need them skip, except under CI (CI set), where they fail: CI must check
the Prometheus files with the real tools.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        msg = f"`{name}` is not on PATH; run deploy/ci-deps.sh (apt-get install prometheus) to install it"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Prometheus checks: {msg}")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return _tool("prometheus")


@pytest.fixture(scope="session")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@pytest.fixture(scope="session")
def prometheus_config() -> dict:
    return yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())


@pytest.fixture(scope="session")
def rules() -> dict:
    return yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict]:
    return {
        p.name: json.loads(p.read_text()) for p in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    }
