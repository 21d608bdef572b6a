#!/usr/bin/env bash
# System packages the tests need beyond the Python venv, from Debian: prometheus (server and promtool,
# for the monitoring tests), espeak-ng (the local voice) and chromium (the report, tested in a real browser). Idempotent: installs only what is missing.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null

# The prometheus package enables a system-wide server on :9090; the tests start their own on a free port.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v espeak-ng >/dev/null && command -v chromium >/dev/null
