"""The footage remake of the 30 s sample from the shared footage, beside the floor for the same work
in the same run: decode the media ranges the plan uses, scale them to the output's size and encode
the output's frame count at the same settings (libx264, veryfast, crf 20). Prints wall time, the ratio to the floor, peak memory of the
whole process tree, the media analysis speed (seconds of media per wall second) and where the time goes.

    python bench/footage.py [SAMPLE] [MEDIA_DIR]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from remake import SAMPLE, run_measured  # noqa: E402 - the sibling benchmark's measuring helpers

MEDIA = SAMPLE.parents[1] / "footage"

# The floor: every media range the plan uses decoded and scaled to the output's size, then encoded
# at the output's settings, as a user cutting the same ranges together with PyAV (or the ffmpeg
# command line) would: the output's frame count, each scene's frames in order (a range shorter than
# its scene, slowed down in the remake, repeats its last frame; a scene with no media is black).
# Real pictures, not blank frames: encoding flat black costs x264 next to nothing.
FLOOR = r"""
import json, sys, av, numpy as np
from fractions import Fraction
plan = json.load(open(sys.argv[1]))
media_dir, dst = sys.argv[2], sys.argv[3]
fmt = plan["format"]
W, H = fmt["width"], fmt["height"]
with av.open(dst, "w") as o:
    s = o.add_stream("libx264", rate=Fraction(fmt["fps_num"], fmt["fps_den"]) if fmt.get("fps_num") else round(fmt["fps"]))
    s.width, s.height, s.pix_fmt = W, H, "yuv420p"
    s.options = {"crf": "20", "preset": "veryfast"}
    blank = av.VideoFrame.from_ndarray(np.zeros((H, W, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
    count, tb = [0], Fraction(fmt["fps_den"], fmt["fps_num"]) if fmt.get("fps_num") else Fraction(1, round(fmt["fps"]))

    def put(frame):
        frame.pts, frame.time_base = count[0], tb
        count[0] += 1
        for p in s.encode(frame):
            o.mux(p)

    for sc in plan["scenes"]:
        src = sc["source"]
        need = sc["end_frame"] - sc["start_frame"]
        done, last = 0, blank
        if src.get("kind") == "media":
            with av.open(f"{media_dir}/{src['media']}") as i:
                for k, f in enumerate(i.decode(video=0)):
                    if k >= src["in_frame"]:
                        last = f.reformat(width=W, height=H, format="yuv420p")
                        put(last)
                        done += 1
                    if k + 1 >= src["out_frame"] or done >= need:
                        break
        for _ in range(need - done):
            put(last)
    for p in s.encode():
        o.mux(p)
print(count[0])
"""


def main() -> int:
    sample = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE
    media_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else MEDIA
    with tempfile.TemporaryDirectory() as tmp:
        wall, rss, r = run_measured(
            [sys.executable, "-m", "lookalike.cli", "remake", str(sample), "--media", str(media_dir),
             "--out", f"{tmp}/out", "--home", f"{tmp}/home", "--quiet"], tmp)
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return 1
        plan_path = Path(f"{tmp}/out/plan.json")
        floor_wall, floor_rss, f = run_measured(
            [sys.executable, "-c", FLOOR, str(plan_path), str(media_dir), f"{tmp}/floor.mp4"], tmp)
        if f.returncode:
            print(f.stderr, file=sys.stderr)
            return 1
        plan = json.loads(plan_path.read_text())
        project = json.loads(Path(f"{tmp}/out/project.json").read_text())
        stages = project.get("stage_seconds") or {}
        media_s = sum(float(m.get("duration_s") or 0.0) for m in plan["media"] if m["kind"] == "video")
        used = [s["source"] for s in plan["scenes"] if s["source"].get("kind") == "media"]
        print(json.dumps({
            "sample": sample.name,
            "media_items": len(plan["media"]),
            "media_seconds": round(media_s, 1),
            "scenes_from_media": f"{len(used)} of {len(plan['scenes'])}",
            "floor_decode_encode_s": round(floor_wall, 2),
            "remake_s": round(wall, 2),
            "ratio_to_floor": round(wall / floor_wall, 2),
            "remake_peak_rss_mib": round(rss / 2**20),
            "floor_peak_rss_mib": round(floor_rss / 2**20),
            "analyzing_media_s": stages.get("analyzing_media"),
            "media_analysis_s_of_media_per_s": round(media_s / max(stages.get("analyzing_media") or 1e-9, 1e-9), 2),
            "jobs": project["jobs"],
            "stage_seconds": stages,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
