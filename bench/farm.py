"""Farm throughput: the same batch of remakes on a loopback farm with 1 node and with 2 nodes, in one
run. Prints frames/s across nodes, queue latency (submit to first attempt) and peak memory, and the
ratio of 2 nodes to 1.

    python bench/farm.py [--projects 6] [--frames 96] [--size 320x180]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))


def _load(name: str, path: Path):
    """tests/farm.py shares this file's name, so it is loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


Farm = _load("farm_helpers", ROOT / "tests" / "farm.py").Farm
from lookalike.client import Client  # noqa: E402
from lookalike.coordinator.state import open_state  # noqa: E402
from remake import _tree_rss  # noqa: E402
from synth import make_clip  # noqa: E402


def run(nodes: int, clip: Path, projects: int, tmp: Path) -> dict:
    farm = Farm(tmp / f"farm{nodes}", nodes=nodes)
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            total = _tree_rss(farm.coordinator.pid) + sum(_tree_rss(p.pid) for p in farm.nodes)
            peak[0] = max(peak[0], total)
            stop.wait(0.2)

    threading.Thread(target=sample, daemon=True).start()
    try:
        with Client(farm.address) as c:
            t0 = time.perf_counter()
            ps = c.submit_batch([{"sample": str(clip), "chunk_frames": 24} for _ in range(projects)])
            for p in ps:
                c.wait(p.id)
            wall = time.perf_counter() - t0
    finally:
        stop.set()
        farm.close()
    with open_state(f"sqlite:///{(tmp / f'farm{nodes}' / 'state.db').resolve()}") as st:
        frames, latencies = 0, []
        for p in ps:
            proj = st.get_project(p.id)
            jobs = st.jobs(p.id)
            frames += sum(j.end_frame - j.start_frame for j in jobs if j.kind == "render_range")
            starts = [a.started_at for j in jobs for a in st.attempts(j.id)]
            latencies.append(min(starts) - proj.created_at)
    return {"nodes": nodes, "projects": projects, "wall_s": round(wall, 2), "frames": frames,
            "render_frames_per_s": round(frames / wall, 1), "queue_latency_s_max": round(max(latencies), 2),
            "queue_latency_s_mean": round(sum(latencies) / len(latencies), 2), "peak_rss_mib": round(peak[0] / 2**20)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--projects", type=int, default=6)
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--size", default="320x180")
    a = ap.parse_args()
    w, h = (int(x) for x in a.size.split("x"))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        half = a.frames // 2
        make_clip(tmp / "clip.mp4", [(half, (230, 160, 90), 2.0), (a.frames - half, (90, 130, 230), -2.0)], size=(w, h))
        one = run(1, tmp / "clip.mp4", a.projects, tmp)
        two = run(2, tmp / "clip.mp4", a.projects, tmp)
    print(json.dumps({"one_node": one, "two_nodes": two,
                      "throughput_ratio_2_to_1": round(two["render_frames_per_s"] / one["render_frames_per_s"], 2)},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
