"""The end-to-end remake of the 30 s sample on the embedded default, beside the floor for the same
work in the same run: decode the sample and encode the same number of frames with PyAV at the same
settings (libx264, veryfast, crf 20). Prints wall time, the ratio to the floor and peak memory.

    python bench/remake.py [SAMPLE]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "media" / "samples" / "big_buck_bunny_0_30.webm"


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            ppid, pages = int(parts[1]), int(parts[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
        rss[int(d)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


def run_measured(cmd: list[str], cwd: str) -> tuple[float, int, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    t.join()
    return wall, peak[0], subprocess.CompletedProcess(cmd, proc.returncode, out, err)


FLOOR = r"""
import sys, av
src, dst = sys.argv[1], sys.argv[2]
with av.open(src) as i, av.open(dst, "w") as o:
    vs = i.streams.video[0]
    s = o.add_stream("libx264", rate=vs.average_rate)
    s.width, s.height, s.pix_fmt = vs.codec_context.width, vs.codec_context.height, "yuv420p"
    s.options = {"crf": "20", "preset": "veryfast"}
    n = 0
    for f in i.decode(vs):
        for p in s.encode(f.reformat(format="rgb24")):
            o.mux(p)
        n += 1
    for p in s.encode():
        o.mux(p)
print(n)
"""


def main() -> int:
    sample = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE
    with tempfile.TemporaryDirectory() as tmp:
        floor_wall, floor_rss, r = run_measured([sys.executable, "-c", FLOOR, str(sample), f"{tmp}/floor.mp4"], tmp)
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return 1
        wall, rss, r = run_measured(
            [sys.executable, "-m", "lookalike.cli", "remake", str(sample), "--out", f"{tmp}/out", "--home",
             f"{tmp}/home", "--quiet"], tmp)
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return 1
        project = json.loads(Path(f"{tmp}/out/project.json").read_text())
        print(json.dumps({
            "sample": sample.name,
            "floor_decode_encode_s": round(floor_wall, 2),
            "remake_s": round(wall, 2),
            "ratio_to_floor": round(wall / floor_wall, 2),
            "remake_peak_rss_mib": round(rss / 2**20),
            "floor_peak_rss_mib": round(floor_rss / 2**20),
            "jobs": project["jobs"],
            # Where the time goes (coordinator's view, wall seconds per stage; the rest is start-up:
            # Ray, node processes, upload and download).
            "stage_seconds": project.get("stage_seconds"),
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
