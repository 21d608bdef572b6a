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
QUEUE_WAIT = Histogram(
    "lookalike_queue_wait_seconds", "Time a job waited in the queue before an attempt started", ["kind"],
    buckets=(0.05, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
)
NODE_SLOTS = Gauge("lookalike_node_slots", "Job slots a node offers", ["node"])
NODE_BUSY = Gauge("lookalike_node_busy_slots", "Jobs a node is running now", ["node"])


JOB_KINDS = ("analyze_range", "analyze_audio", "analyze_merge", "analyze_vision", "media_range", "media_merge",
             "media_vision", "music_audio", "generate_scene", "render_range", "render_audio", "assemble",
             "score_range", "score_audio", "score_merge", "score")
FRAME_STAGES = ("analyze", "render", "encode", "grade", "effects", "assemble")


def init_coordinator_metrics() -> None:
    """Create every known label set at 0, so the first event shows in rate() instead of arriving as
    a series that starts at its final value."""
    for kind in JOB_KINDS:
        for state in ("succeeded", "dead"):
            JOBS.labels(kind, state)
        for outcome in ("promoted", "late", "failed", "store_down"):
            ATTEMPTS.labels(kind, outcome)
        QUEUE_WAIT.labels(kind)
    for state in ("done", "failed", "cancelled"):
        PROJECTS.labels(state)


def init_node_metrics(node_id: str, *, slots: int = 1, busy=None) -> None:
    """A node's series at 0, its slots, its busy slots read at scrape time (`busy()`), and its GPUs'
    utilization and memory where NVML (nvidia-ml-py) finds any."""
    for stage in FRAME_STAGES:
        FRAMES.labels(stage, node_id)
    for kind in ("segment", "audio", "final", "clip"):
        BYTES_STORED.labels(kind)
    NODE_SLOTS.labels(node_id).set(slots)
    if busy is not None:
        NODE_BUSY.labels(node_id).set_function(busy)
    _register_gpu_collector(node_id)


class GpuCollector:
    """lookalike_node_gpu_utilization_ratio and lookalike_node_gpu_memory_used_bytes per GPU, read from
    NVML at scrape time. Built only where NVML loads and finds a device."""

    def __init__(self, node_id: str, nvml) -> None:
        self.node_id, self.nvml = node_id, nvml
        self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        util = GaugeMetricFamily("lookalike_node_gpu_utilization_ratio", "Share of time the GPU was busy (NVML)",
                                 labels=["node", "gpu"])
        mem = GaugeMetricFamily("lookalike_node_gpu_memory_used_bytes", "GPU memory in use (NVML)",
                                labels=["node", "gpu"])
        for i, h in enumerate(self.handles):
            try:
                rates = self.nvml.nvmlDeviceGetUtilizationRates(h)
                info = self.nvml.nvmlDeviceGetMemoryInfo(h)
            except Exception:  # noqa: BLE001 - a GPU that stops answering drops out of this scrape
                continue
            util.add_metric([self.node_id, str(i)], rates.gpu / 100.0)
            mem.add_metric([self.node_id, str(i)], float(info.used))
        yield util
        yield mem


_gpu_collector: GpuCollector | None = None


def _register_gpu_collector(node_id: str, nvml=None) -> GpuCollector | None:
    global _gpu_collector
    from prometheus_client import REGISTRY

    if _gpu_collector is not None:
        return _gpu_collector
    try:
        if nvml is None:
            import pynvml as nvml  # nvidia-ml-py, the GPU extra
        nvml.nvmlInit()
        collector = GpuCollector(node_id, nvml)
    except Exception as exc:  # noqa: BLE001 - no NVML library or no GPU: a CPU node
        get_logger("obs").info("gpu_metrics_off", reason=f"{type(exc).__name__}: {exc}")
        return None
    if not collector.handles:
        return None
    REGISTRY.register(collector)
    _gpu_collector = collector
    return collector


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
