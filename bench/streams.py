"""How many concurrent watchers and idle uploads one coordinator holds on this machine, and what they
cost: a loopback farm of one node with the stream caps raised out of the way, then steps of N open
WatchProject streams plus N uploads that sent their header, each step timing GetProject (p50/p99)
and reading the coordinator's resident memory. Stops at the first step whose p99 passes 1 s, whose
streams fail, or at --max.

    .venv/bin/python bench/streams.py --steps 250,500,1000,2000 --max-seconds 240

Loopback only; every stream is cancelled before the next step and the farm is closed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import grpc  # noqa: E402
from farm import Farm  # noqa: E402
from lookalike.client import Client  # noqa: E402
from lookalike.v1 import coordinator_pb2, coordinator_pb2_grpc  # noqa: E402
from synth import make_clip  # noqa: E402


def _rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _step(address: str, project_id: str, n: int, pid: int) -> dict:
    # 100 streams a connection (n watchers + n uploads over n // 50 channels): the servers allow 128
    # concurrent streams on one connection, and HTTP/2 queues the rest, which would read as a stall.
    channels = [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(max(1, n // 50))]
    calls, failed = [], 0
    header = coordinator_pb2.UploadChunk(header=coordinator_pb2.UploadHeader(filename="x.mp4", kind="sample", size=10))
    never = asyncio.Event()

    async def idle_upload():
        yield header
        await never.wait()

    t0 = time.perf_counter()
    for i in range(n):
        stub = coordinator_pb2_grpc.CoordinatorStub(channels[i % len(channels)])
        calls.append(stub.WatchProject(coordinator_pb2.ProjectRef(project_id=project_id)))
        calls.append(stub.UploadSample(idle_upload()))
    # Each watch's first event (the project as it stands), bounded: a coordinator that no longer
    # answers is a failed step, not a hung benchmark.
    first = await asyncio.gather(*(asyncio.wait_for(c.read(), 30) for c in calls[::2]), return_exceptions=True)
    why: dict[str, int] = {}
    for x in first:
        if isinstance(x, BaseException):
            name = x.code().name if isinstance(x, grpc.aio.AioRpcError) else type(x).__name__
            why[f"watch {name}"] = why.get(f"watch {name}", 0) + 1
    failed += sum(why.values())
    opened_s = time.perf_counter() - t0
    lat = []
    async with grpc.aio.insecure_channel(address) as ch:
        api = coordinator_pb2_grpc.CoordinatorStub(ch)
        for _ in range(200):
            t = time.perf_counter()
            await api.GetProject(coordinator_pb2.ProjectRef(project_id=project_id), timeout=10)
            lat.append(time.perf_counter() - t)
    rss = _rss_mib(pid)
    # An idle upload still open has not failed; one the coordinator ended has (a cap, a timeout).
    for c in calls[1::2]:
        if c.done() and (code := await c.code()) != grpc.StatusCode.OK:
            failed += 1
            why[f"upload {code.name}: {await c.details()}"] = why.get(f"upload {code.name}: {await c.details()}", 0) + 1
    for c in calls:
        c.cancel()
    for ch in channels:
        await ch.close()
    lat.sort()
    return {"streams": 2 * n, "opened_s": opened_s, "failed": failed, "p50_ms": lat[100] * 1e3,
            "p99_ms": lat[197] * 1e3, "rss_mib": rss, "why": why}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="250,500,1000,2000", help="watchers (and as many uploads) per step")
    ap.add_argument("--max-seconds", type=float, default=240.0)
    args = ap.parse_args()
    started = time.monotonic()
    big = "100000"
    with tempfile.TemporaryDirectory() as home:
        farm = Farm(Path(home) / "farm", nodes=1, env={
            "LOOKALIKE_STREAMS_PER_PEER": big, "LOOKALIKE_STREAMS_PER_TENANT": big, "LOOKALIKE_STREAMS_TOTAL": big,
            "LOOKALIKE_STREAM_IDLE_S": "600", "LOOKALIKE_RATE_PER_S": "0"})
        try:
            clip = Path(home) / "s.mp4"
            make_clip(clip, [(24, (250, 180, 80), 2.0), (24, (80, 120, 250), 0.0)], size=(96, 64))
            with Client(farm.address) as c:
                p = c.submit(clip, chunk_frames=8)
                print(f"coordinator rss at rest {_rss_mib(farm.coordinator.pid):.0f} MiB", flush=True)
                async def steps() -> None:  # one event loop for every step: grpc.aio keeps its poller
                    for n in (int(x) for x in args.steps.split(",")):
                        if time.monotonic() - started > args.max_seconds:
                            print("stopped: --max-seconds")
                            break
                        r = await _step(farm.address, p.id, n, farm.coordinator.pid)
                        print("{streams} streams: opened in {opened_s:.1f} s, {failed} failed, GetProject p50 "
                              "{p50_ms:.1f} ms p99 {p99_ms:.1f} ms, coordinator rss {rss_mib:.0f} MiB".format(**r)
                              + (f"; failures: {r['why']}" if r["why"] else ""), flush=True)
                        if r["failed"] or r["p99_ms"] > 1000:
                            break

                asyncio.run(steps())
                c.cancel(p.id)
        finally:
            farm.close()


if __name__ == "__main__":
    main()
