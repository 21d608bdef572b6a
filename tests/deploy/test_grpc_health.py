"""deploy/docker/healthcheck.py, the containers' health check, against a real Lookalike gRPC server."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from conftest import DEPLOY
from lookalike.v1 import node_pb2_grpc

from lookalike.grpcutil import make_server

SCRIPT = DEPLOY / "docker" / "healthcheck.py"


@pytest.fixture(scope="module")
def node_server():
    """A server registered as lookalike.v1.Node, as nodes/server.py makes it (no servicer logic needed:
    the health service answers for the registration)."""
    server, port = make_server(
        "127.0.0.1:0",
        [(node_pb2_grpc.add_NodeServicer_to_server, node_pb2_grpc.NodeServicer(), "lookalike.v1.Node")],
    )
    yield f"127.0.0.1:{port}"
    server.stop(0).wait()


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_serving_service_is_healthy(node_server):
    assert run(node_server, "lookalike.v1.Node").returncode == 0
    assert run(node_server).returncode == 0  # the whole server


def test_unknown_service_is_unhealthy(node_server):
    r = run(node_server, "lookalike.v1.Coordinator")
    assert r.returncode == 1
    assert "NOT_FOUND" in r.stderr


def test_nothing_listening_is_unhealthy():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The port is closed again: nothing answers there.
    r = run(f"127.0.0.1:{port}", "lookalike.v1.Node")
    assert r.returncode == 2
    assert "UNAVAILABLE" in r.stderr or "DEADLINE_EXCEEDED" in r.stderr
