"""A process that exports the real lookalike_* metrics (lookalike.obs) and moves them like a farm
running projects, for tests/deploy/test_prometheus_queries.py.

    python metrics_workload.py    -> prints {"port": N}; then each "project" line on stdin records one
                                     more project's worth of work and answers {"projects": K}.

The counters are the objects lookalike/obs.py defines, exported by its serve_metrics, and incremented
with the label values the coordinator and nodes use (job kinds, stages, outcomes, RPC services). The
farm itself does not run here: that keeps the test to seconds and independent of the pipeline.
"""

from __future__ import annotations

import json
import sys

from lookalike import obs

NODES = ("node-a", "node-b")
# (kind, frames it covers, the stage its frames count under, attempts that fail before one succeeds)
JOBS = (
    ("analyze_range", 36, "analyze", 0),
    ("analyze_range", 36, "analyze", 0),
    ("analyze_audio", 0, None, 0),
    ("analyze_merge", 0, None, 0),
    ("render_range", 24, "render", 1),
    ("render_range", 24, "render", 0),
    ("render_range", 24, "render", 0),
    ("render_audio", 0, None, 0),
    ("assemble", 72, "assemble", 0),
    ("score", 0, None, 0),
)


class _OneGpu:
    """NVML's interface for one GPU at 40% and 3 GiB (the workload has no GPU; the collector is real)."""

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUtilizationRates(self, h):
        from types import SimpleNamespace

        return SimpleNamespace(gpu=40, memory=10)

    def nvmlDeviceGetMemoryInfo(self, h):
        from types import SimpleNamespace

        return SimpleNamespace(used=3 << 30, total=80 << 30, free=77 << 30)


def one_project(n: int) -> None:
    obs.NODES.set(len(NODES))
    for node in NODES:
        obs.NODE_SLOTS.labels(node).set(2)
        obs.NODE_BUSY.labels(node).set(n % 3)
    obs.QUEUE_DEPTH.set(len(JOBS))
    for service, method in (
        ("Coordinator", "SubmitProject"),
        ("NodeRegistry", "Register"),
        ("NodeRegistry", "Heartbeat"),
        ("Coordinator", "WatchProject"),
    ):
        obs.RPCS.labels(service, method, "OK").inc()
    for i, (kind, frames, stage, failures) in enumerate(JOBS):
        node = NODES[(i + n) % len(NODES)]
        for _ in range(failures):
            obs.JOB_SECONDS.labels(kind).observe(0.3)
            obs.ATTEMPTS.labels(kind, "failed").inc()
            obs.RPCS.labels("Node", "Render", "UNAVAILABLE").inc()
        obs.QUEUE_WAIT.labels(kind).observe(0.1 * i)
        obs.JOB_SECONDS.labels(kind).observe(0.2 + 0.5 * i)
        obs.ATTEMPTS.labels(kind, "promoted").inc()
        obs.JOBS.labels(kind, "succeeded").inc()
        obs.RPCS.labels("Node", "Render" if kind.startswith("render") else "Analyze", "OK").inc()
        if stage:
            obs.FRAMES.labels(stage, node).inc(frames)
        if kind in ("render_range", "render_audio", "assemble"):
            obs.BYTES_STORED.labels(
                {"render_range": "segment", "render_audio": "audio"}.get(kind, "final")
            ).inc(4096)
        obs.QUEUE_DEPTH.set(len(JOBS) - i - 1)
    obs.PROJECTS.labels("done").inc()


def main() -> int:
    port = obs.serve_metrics(0)
    obs._register_gpu_collector("node-a", _OneGpu())
    print(json.dumps({"port": port}), flush=True)
    n = 0
    for line in sys.stdin:
        if line.strip() == "project":
            n += 1
            one_project(n)
            print(json.dumps({"projects": n}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
