"""Observability: structlog JSON lines and the lookalike_* Prometheus metrics."""

from __future__ import annotations

import logging
import sys

import structlog
from prometheus_client import Counter, Gauge, Histogram, start_http_server

FRAMES = Counter("lookalike_frames_total", "Frames processed", ["stage", "node"])
JOBS = Counter("lookalike_jobs_total", "Jobs that reached a state", ["kind", "state"])
ATTEMPTS = Counter("lookalike_attempts_total", "Attempts by outcome", ["kind", "outcome"])
JOB_SECONDS = Histogram(
    "lookalike_job_seconds", "Wall time of one attempt", ["kind"], buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300)
)
QUEUE_DEPTH = Gauge("lookalike_queue_depth", "Jobs queued and not yet running")
NODES = Gauge("lookalike_nodes", "Nodes alive")
PROJECTS = Counter("lookalike_projects_total", "Projects that ended, by state", ["state"])
BYTES_STORED = Counter("lookalike_bytes_stored_total", "Bytes written to the segment store", ["kind"])
RPCS = Counter("lookalike_rpc_total", "RPCs served", ["service", "method", "code"])


JOB_KINDS = ("analyze_range", "analyze_audio", "analyze_merge", "analyze_vision", "render_range", "render_audio", "assemble", "score")
FRAME_STAGES = ("analyze", "render", "encode", "grade", "effects", "assemble")


def init_coordinator_metrics() -> None:
    """Create every known label set at 0, so the first event shows in rate() instead of arriving as
    a series that starts at its final value."""
    for kind in JOB_KINDS:
        for state in ("succeeded", "dead"):
            JOBS.labels(kind, state)
        for outcome in ("promoted", "late", "failed", "store_down"):
            ATTEMPTS.labels(kind, outcome)
    for state in ("done", "failed", "cancelled"):
        PROJECTS.labels(state)


def init_node_metrics(node_id: str) -> None:
    for stage in FRAME_STAGES:
        FRAMES.labels(stage, node_id)
    for kind in ("segment", "audio", "final"):
        BYTES_STORED.labels(kind)


def configure_logging(level: str = "info", *, stream=None) -> None:
    """JSON lines on stderr: one object per event with its project, job and attempt ids."""
    lvl = getattr(logging, level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str):
    return structlog.get_logger(component=name)


def serve_metrics(port: int, addr: str = "127.0.0.1") -> int:
    """Start the /metrics HTTP endpoint; port 0 picks a free one. Returns the port."""
    server, _thread = start_http_server(port, addr=addr)
    return server.server_port
