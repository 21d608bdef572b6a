"""Scoring speed and the calibration table.

    python bench/score.py [--quick]
    python bench/score.py --farm [--farm-frames 480] [--farm-size 640x360] [--pin]

Prints (1) seconds of scoring per minute of video for the shared Big Buck Bunny clip (sample
analysis given, as in a remake; output analysed, keyframes, audio) and (2) the calibration table:
the shared clip against itself, re-encoded at a low bitrate, colour-shifted, with its audio
replaced, and against an unrelated shared clip; then the synthesized cases of tests/nodes.
CPU here; on a GPU node the same command measures the GPU path where kernels run on cupy.

With --farm it instead remakes a synthesized clip on the embedded farm with 1 node and with 2 nodes
(one run each, on this machine) and prints the scoring stage's wall time (project.json
stage_seconds) and its jobs: the output analysed by range (score_range, score_audio, score_merge)
and the Score job (keyframes, audio measures, comparison). --pin runs each farm on one CPU core per
node, so that a machine with few cores shows how scoring scales with nodes rather than how two
nodes share its cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / ".." / "shared" / "media"
sys.path.insert(0, str(ROOT / "tests" / "nodes"))
FAMILIES = ("overall", "visual", "audio", "pacing", "colour", "texture", "perceptual", "motion")


def reencode(
    src: Path,
    dst: Path,
    *,
    crf: int = 23,
    gain=(1.0, 1.0, 1.0),
    audio_bitrate: int = 128000,
    audio=None,
    seconds: float | None = None,
) -> Path:
    """`src` re-encoded (H.264 at `crf`, a per-channel colour gain; its audio, or `audio` samples)."""
    from lookalike.nodes import media

    info = media.probe(str(src))
    g = np.array(gain, np.float32)
    samples = audio
    if samples is None:
        got = media.read_audio(str(src), rate=48000, mono=False)
        samples = None if got is None else got[0]
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=Fraction(info.fps).limit_denominator(100000))
        vs.width, vs.height, vs.pix_fmt = info.width // 2 * 2, info.height // 2 * 2, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": str(crf)}
        a = None
        if samples is not None:
            samples = np.ascontiguousarray(np.atleast_2d(samples)[:2].astype(np.float32))
            a = out.add_stream("aac", rate=48000)
            a.layout = "stereo" if samples.shape[0] == 2 else "mono"
            a.bit_rate = audio_bitrate
        n_max = None if seconds is None else int(seconds * float(info.fps))
        for _i, _t, rgb in media.iter_frames(str(src), 0, n_max):
            frame = np.clip(rgb[: vs.height, : vs.width] * g, 0, 255).astype(np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if a is not None:
            if seconds is not None:
                samples = samples[:, : int(seconds * 48000)]
            for i in range(0, samples.shape[1], 1024):
                block = np.ascontiguousarray(samples[:, i : i + 1024])
                fr = av.AudioFrame.from_ndarray(block, format="fltp", layout=a.layout.name)
                fr.sample_rate, fr.pts, fr.time_base = 48000, i, Fraction(1, 48000)
                for p in a.encode(fr):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
    return dst


def row(name: str, doc: dict, seconds: float) -> str:
    cells = " ".join(f"{doc[k]:7.1f}" if doc.get(k) is not None else "      –" for k in FAMILIES)
    return f"{name:<28} {cells} {seconds:7.1f}s"


def farm_scoring(nodes: int, clip: Path, tmp: Path, *, pin: bool = False) -> dict:
    """Remake `clip` on the embedded farm with `nodes` nodes; the scoring stage's time and its jobs.
    With `pin`, the whole farm runs on `nodes` CPU cores (one per node)."""
    from lookalike.coordinator.state import open_state

    home, out = tmp / f"home{nodes}", tmp / f"out{nodes}"
    cmd = [
        sys.executable,
        "-m",
        "lookalike.cli",
        "remake",
        str(clip),
        "--out",
        str(out),
        "--home",
        str(home),
        "--nodes",
        str(nodes),
        "--quiet",
    ]
    cores = set(range(nodes))
    r = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if pin else None,
    )
    if r.returncode != 0:
        raise SystemExit(f"remake on {nodes} node(s) failed:\n{r.stderr[-3000:]}")
    project = json.loads((out / "project.json").read_text())
    jobs: dict[str, list[float]] = {}
    used: set[str] = set()
    with open_state(f"sqlite:///{(home / 'state.db').resolve()}") as st:
        for j in st.jobs(project["id"]):
            if j.kind.startswith("score"):
                for a in st.attempts(j.id):
                    if a.state == "succeeded" and a.finished_at is not None:
                        jobs.setdefault(j.kind, []).append(round(a.finished_at - a.started_at, 2))
                        used.add(a.node_id)
    return {
        "nodes": nodes,
        "scoring_s": project["stage_seconds"].get("scoring"),
        "score_nodes_used": len(used),
        "job_seconds": jobs,
    }


def farm_main(frames: int, size: str, pin: bool) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from synth import make_clip

    w, h = (int(x) for x in size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        third = frames // 3
        make_clip(
            d / "clip.mp4",
            [
                (third, (230, 160, 90), 2.0),
                (third, (90, 130, 230), -2.0),
                (frames - 2 * third, (200, 240, 150), 0.0),
            ],
            size=(w, h),
        )
        rows = [farm_scoring(n, d / "clip.mp4", d, pin=pin) for n in (1, 2)]
    for row_ in rows:
        print(json.dumps(row_))
    one, two = rows[0]["scoring_s"], rows[1]["scoring_s"]
    print(
        f"\nscoring stage, {frames} frames at {size}: 1 node {one:.1f} s, 2 nodes {two:.1f} s "
        f"({one / two:.2f}x)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="only the first 10 s of the shared clip")
    ap.add_argument("--farm", action="store_true", help="the farm's scoring stage with 1 node and with 2")
    ap.add_argument("--farm-frames", type=int, default=480)
    ap.add_argument("--farm-size", default="640x360")
    ap.add_argument(
        "--pin", action="store_true", help="with --farm: one CPU core per node (for machines with few cores)"
    )
    args = ap.parse_args()
    if args.farm:
        farm_main(args.farm_frames, args.farm_size, args.pin)
        return
    import score_media as sm
    from lookalike.nodes.analysis import analyze
    from lookalike.nodes.music import render_music
    from lookalike.nodes.score import ScoreConfig, score

    bbb = MEDIA / "samples" / "big_buck_bunny_0_30.webm"
    other = MEDIA / "shots" / "issue-134-rotate.mp4"
    cfg = ScoreConfig()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        sample = reencode(bbb, d / "sample.mp4", crf=18, seconds=10.0) if args.quick else bbb
        t = time.perf_counter()
        analysis = analyze(str(sample))
        t_an = time.perf_counter() - t
        dur = analysis["source"]["duration_s"]
        print(
            f"sample: {bbb.name} ({dur:.1f} s, {analysis['source']['width']}x{analysis['source']['height']}, "
            f"{len(analysis['scenes'])} scenes); analysis {t_an:.1f} s"
        )
        music = render_music(dur + 1, 84.0, rate=48000, key="D major", seed=5)
        cases = {
            "identical": sample,
            "low bitrate (crf 36, 48k)": reencode(sample, d / "low.mp4", crf=36, audio_bitrate=48000),
            "colour shifted (warm)": reencode(sample, d / "warm.mp4", gain=(1.2, 1.0, 0.75)),
            "music swapped": reencode(sample, d / "music.mp4", audio=music),
            "unrelated (GoldenEye)": other,
        }
        print(f"\n{'case':<28} " + " ".join(f"{k[:7]:>7}" for k in FAMILIES) + "    time")
        timings = []
        for name, path in cases.items():
            t = time.perf_counter()
            doc = score(str(sample), str(path), analysis, None, config=cfg)
            el = time.perf_counter() - t
            if name != "unrelated (GoldenEye)":
                timings.append(el)
            print(row(name, doc, el))
        print(
            f"\nscoring speed: {np.median(timings) / (dur / 60):.1f} s per minute of video "
            f"(median of {len(timings)}, sample analysis given; + {t_an / (dur / 60):.1f} s/min to analyse the sample)"
        )

        print(
            f"\n{'synthesized (tests/nodes)':<28} " + " ".join(f"{k[:7]:>7}" for k in FAMILIES) + "    time"
        )
        s = sm.make(d / "synth.mp4")
        sa = analyze(str(s))
        synth = {
            "identical": sm.SAMPLE,
            "low bitrate": sm.low_bitrate(),
            "colour 0.5": sm.colour_shift(0.5),
            "colour 1.0": sm.colour_shift(1.0),
            "cuts moved 5": sm.cuts_moved(5),
            "cuts moved 10": sm.cuts_moved(10),
            "music swapped": sm.music_swapped(),
            "remake (other content)": sm.remake(),
            "unrelated": sm.unrelated(),
        }
        for name, spec in synth.items():
            p = sm.make(d / f"synth-{len(name)}-{abs(hash(name))}.mp4", spec)
            t = time.perf_counter()
            doc = score(str(s), str(p), sa, None, config=cfg)
            print(row(name, doc, time.perf_counter() - t))


if __name__ == "__main__":
    main()
