#!/usr/bin/env bash
# System tools the deploy tests (tests/deploy) need beyond the Python venv: `promtool` and the
# `prometheus` server, from the Debian package. Idempotent: does nothing when both are on PATH.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq prometheus >/dev/null

# The package enables a system-wide Prometheus on :9090; the tests start their own on a free port.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

command -v promtool >/dev/null && command -v prometheus >/dev/null
