"""Assembling a multi-scene timeline with a dissolve and a mixed, normalized soundtrack, three ways.

    python bench/assemble.py [--scenes 4] [--seconds 2] [--size 1280x720] [--dissolve 12] [--json]

The timeline: `--scenes` synthesized scenes of `--seconds` each at 24 fps (a moving gradient with a
scene-coloured square: content an encoder has to work for), a dissolve of `--dissolve` frames from
scene 2 into scene 3 (outgoing's last frames under incoming's first, so the result is one dissolve
shorter), a music bed and a voice-over, mixed with the music ducked under the voice and normalized
to -14 LUFS. Every way writes an H.264 (crf 18, veryfast) + AAC MP4 with faststart.

- ours: what the assemble step does. Scenes arrive as closed-GOP segments from the render jobs,
  scene-aligned, with the dissolve's frame range its own job: the dissolve frames are streamed by
  nodes.edit.iter_transition from the two scene clips' handles into their own encode; everything
  else is remuxed by nodes.media.concat_segments (no re-encode). Audio (its own job on a farm, so
  done first here): nodes.mix.mix_timeline (duck, loudness, true peak) once over the whole
  timeline, then nodes.media.write_audio.
- ffmpeg: one command line over the whole scene clips: concat + xfade=fade + concat, and
  sidechaincompress (the duck) + amix + loudnorm=I=-14:TP=-1, encoding every frame.
- MoviePy 2: VideoFileClip per scene, CrossFadeIn on scene 3 composited over scene 2's tail,
  CompositeAudioClip of music and voice, write_videofile (it pipes frames to the same ffmpeg).

Inputs are made once, before any timing. Each way runs in its own Python process (so peak memory is
its own); wall time is the process's, peak memory the largest sum of RSS over its process tree
(ffmpeg children included), sampled from /proc every 10 ms. Ratios > 1 mean ours is better.
Note what each way does: ours only encodes the dissolve frames because the scenes were already
encoded by the render jobs; ffmpeg and MoviePy start from the scene clips and re-encode all frames.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

FPS = 24
RATE = 48000


def _scene_frames(k: int, n: int, w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    colours = [(220, 60, 40), (40, 180, 90), (50, 90, 220), (230, 200, 40), (200, 60, 200), (60, 200, 200)]
    c = np.array(colours[k % len(colours)], np.uint8)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        base = ((xx + 4 * i + 37 * k) % 256).astype(np.uint8)
        out[i] = np.stack([base, ((yy + 2 * i) % 256).astype(np.uint8), 255 - base], axis=-1) // 2
        x0 = (w // 4 + 8 * i) % (w - h // 4)
        out[i, h // 3 : h // 3 + h // 4, x0 : x0 + h // 4] = c
    return out


def make_inputs(d: Path, scenes: int, seconds: float, w: int, h: int, dissolve: int) -> dict:
    from lookalike.nodes import media
    from lookalike.nodes.music import render_music

    n = int(round(seconds * FPS))
    clips = []
    for k in range(scenes):
        frames = _scene_frames(k, n, w, h)
        p = d / f"scene{k}.mp4"
        with media.SegmentWriter(p, width=w, height=h, fps=Fraction(FPS)) as wr:
            for f in frames:
                wr.write(f)
        clips.append(p)
        # The render jobs' segments for our path: scene 2 (index 1) without its last `dissolve`
        # frames, scene 3 (index 2) without its first: the dissolve range is a job of its own.
        if k in (1, 2):
            part = frames[: n - dissolve] if k == 1 else frames[dissolve:]
            with media.SegmentWriter(d / f"seg{k}.mp4", width=w, height=h, fps=Fraction(FPS)) as wr:
                for f in part:
                    wr.write(f)
    total_s = (scenes * n - dissolve) / FPS
    music = render_music(total_s, 120, rate=RATE)
    t = np.arange(music.shape[1]) / RATE
    voice = np.where(
        (t > 1.0) & (t < 3.0), 0.25 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)), 0.0
    )
    _write_wav(d / "music.wav", music)
    _write_wav(d / "voice.wav", voice[None, :].astype(np.float32))
    return {"n": n, "total_frames": scenes * n - dissolve, "total_s": total_s}


def _write_wav(path: Path, x: np.ndarray) -> None:
    import wave

    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").T.copy()
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(x.shape[0])
        wf.setsampwidth(2)
        wf.setframerate(RATE)
        wf.writeframes(pcm.tobytes())


def _read_wav(path: Path) -> np.ndarray:
    import wave

    with wave.open(str(path), "rb") as wf:
        ch = wf.getnchannels()
        data = np.frombuffer(wf.readframes(wf.getnframes()), "<i2").astype(np.float32) / 32767
    return data.reshape(-1, ch).T


# --------------------------------------------------------------------------------------------------
# The three ways


def run_ours(d: Path, scenes: int, n: int, dissolve: int) -> None:
    from lookalike.nodes import media
    from lookalike.nodes.edit import iter_transition
    from lookalike.nodes.mix import mix_timeline

    # The soundtrack first (on a farm it is its own job): its buffers are gone before video starts.
    mixed = mix_timeline(_read_wav(d / "music.wav"), _read_wav(d / "voice.wav")[0], rate=RATE)
    media.write_audio(d / "ours_mix.m4a", mixed, RATE)
    del mixed
    # The dissolve streams from the two clips' handles into the encoder, one frame at a time.
    trans = d / "ours_dissolve.mp4"
    frames = iter_transition(d / "scene1.mp4", d / "scene2.mp4", {"kind": "dissolve", "frames": dissolve}, 0,
                             dissolve, outgoing_first=n - dissolve)
    info = media.probe(d / "scene1.mp4")
    with media.SegmentWriter(trans, width=info.width, height=info.height, fps=Fraction(FPS)) as w:
        for f in frames:
            w.write(f)
    segs = [
        d / "scene0.mp4",
        d / "seg1.mp4",
        trans,
        d / "seg2.mp4",
        *(d / f"scene{k}.mp4" for k in range(3, scenes)),
    ]
    media.concat_segments(segs, d / "ours.mp4", audio_path=d / "ours_mix.m4a")


def ffmpeg_command(d: Path, scenes: int, n: int, dissolve: int) -> list[str]:
    import imageio_ffmpeg

    seconds, fade = n / FPS, dissolve / FPS
    inputs = [a for k in range(scenes) for a in ("-i", str(d / f"scene{k}.mp4"))]
    inputs += ["-i", str(d / "music.wav"), "-i", str(d / "voice.wav")]
    # xfade needs both inputs in one time base: every scene goes to FFmpeg's default one first.
    norm = "".join(f"[{k}:v]settb=AVTB,setpts=PTS-STARTPTS[v{k}];" for k in range(scenes))
    tail = "".join(f"[v{k}]" for k in range(3, scenes))
    graph = (
        f"{norm}[v0][v1]concat=n=2:v=1:a=0[ab];"
        f"[ab][v2]xfade=transition=fade:duration={fade}:offset={2 * seconds - fade}[abc];"
        f"[abc]{tail}concat=n={scenes - 2}:v=1:a=0,format=yuv420p[v];"
        f"[{scenes + 1}:a]asplit=2[vo][sc];"
        f"[{scenes}:a][sc]sidechaincompress=threshold=0.01:ratio=20:attack=20:release=400[ducked];"
        f"[ducked][vo]amix=inputs=2:duration=first:normalize=0,loudnorm=I=-14:TP=-1,aresample=48000[a]"
    )
    return [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        *inputs,
        "-filter_complex",
        graph,
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "18",
        "-c:a",
        "aac",
        "-b:a",
        "192k",
        "-movflags",
        "+faststart",
        str(d / "ffmpeg.mp4"),
    ]


def run_moviepy(d: Path, scenes: int, n: int, dissolve: int) -> None:
    from moviepy import AudioFileClip, CompositeAudioClip, CompositeVideoClip, VideoFileClip, vfx

    seconds, fade = n / FPS, dissolve / FPS
    clips = [VideoFileClip(str(d / f"scene{k}.mp4"), audio=False) for k in range(scenes)]
    layered = []
    t = 0.0
    for k, c in enumerate(clips):
        if k == 2:
            t -= fade
            c = c.with_effects([vfx.CrossFadeIn(fade)])
        layered.append(c.with_start(t))
        t += seconds
    video = CompositeVideoClip(layered)
    music = AudioFileClip(str(d / "music.wav"))
    voice = AudioFileClip(str(d / "voice.wav"))
    video = video.with_audio(CompositeAudioClip([music, voice]).with_duration(video.duration))
    video.write_videofile(
        str(d / "moviepy.mp4"),
        fps=FPS,
        codec="libx264",
        preset="veryfast",
        ffmpeg_params=["-crf", "18", "-movflags", "+faststart"],
        audio_codec="aac",
        logger=None,
    )
    for c in clips:
        c.close()


# --------------------------------------------------------------------------------------------------
# Measuring


def _tree_rss(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


def measure(cmd: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes of the process tree) of one command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.01)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return wall, peak


def _check(path: Path, total_frames: int) -> dict:
    from lookalike.nodes import media

    info = media.probe(path)
    return {
        "frames": info.n_frames,
        "duration_s": round(info.duration_s, 3),
        "frames_ok": info.n_frames == total_frames,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--dissolve", type=int, default=12)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--way", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    n = int(round(a.seconds * FPS))
    if a.way:  # a child process: one way, timed from outside
        {"ours": run_ours, "moviepy": run_moviepy}[a.way](Path(a.dir), a.scenes, n, a.dissolve)
        return
    with tempfile.TemporaryDirectory(prefix="bench_assemble_") as tmp:
        d = Path(tmp)
        meta = make_inputs(d, a.scenes, a.seconds, w, h, a.dissolve)
        me = [
            sys.executable,
            os.path.abspath(__file__),
            "--scenes",
            str(a.scenes),
            "--seconds",
            str(a.seconds),
        ]
        me += ["--size", a.size, "--dissolve", str(a.dissolve), "--dir", str(d), "--way"]
        results = {}
        results["ours"] = measure([*me, "ours"])
        results["ffmpeg"] = measure(ffmpeg_command(d, a.scenes, n, a.dissolve))
        results["moviepy"] = measure([*me, "moviepy"])
        checks = {k: _check(d / f"{k}.mp4", meta["total_frames"]) for k in results}
    rows = {
        k: {"wall_s": round(wall, 3), "peak_rss_mib": round(rss / 2**20, 1), **checks[k]}
        for k, (wall, rss) in results.items()
    }
    ours = results["ours"]
    ratios = {
        f"{k}/ours": {"time": round(results[k][0] / ours[0], 2), "memory": round(results[k][1] / ours[1], 2)}
        for k in ("ffmpeg", "moviepy")
    }
    report = {
        "timeline": {**meta, "scenes": a.scenes, "size": a.size, "dissolve_frames": a.dissolve},
        "runs": rows,
    }
    report["ratios"] = ratios
    if a.json:
        print(json.dumps(report, indent=2))
        return
    print(f"timeline: {a.scenes} scenes x {a.seconds} s at {a.size}, {FPS} fps, dissolve {a.dissolve} frames")
    for k, r in rows.items():
        print(
            f"  {k:8s} {r['wall_s']:7.2f} s  {r['peak_rss_mib']:8.1f} MiB  {r['frames']} frames ok={r['frames_ok']}"
        )
    for k, r in ratios.items():
        print(f"  {k:13s} time x{r['time']:.2f}  peak memory x{r['memory']:.2f}  (> 1: ours is better)")


if __name__ == "__main__":
    main()
