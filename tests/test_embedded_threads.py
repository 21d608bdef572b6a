"""The embedded farm shares the machine's cores among its node processes (lookalike.embedded)."""

from __future__ import annotations

import os

from lookalike import embedded


def test_cores_are_shared_out_among_the_nodes(monkeypatch):
    for name in ("LOOKALIKE_NODE_THREADS", *embedded.THREAD_VARS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    env = embedded.node_thread_env(2)
    assert env["LOOKALIKE_NODE_THREADS"] == "4"
    assert all(env[name] == "4" for name in embedded.THREAD_VARS)
    assert embedded.node_thread_env(16)["LOOKALIKE_NODE_THREADS"] == "1"  # never 0
    assert "LOOKALIKE_NODE_THREADS" not in os.environ  # the coordinator's own environment is left alone


def test_what_the_user_set_is_kept(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setenv("LOOKALIKE_NODE_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    env = embedded.node_thread_env(2)
    assert (env["LOOKALIKE_NODE_THREADS"], env["OMP_NUM_THREADS"], env["MKL_NUM_THREADS"]) == ("3", "2", "3")
