"""Synthesized media with known truth, for tests: shots with hard cuts at chosen frames, each shot a
textured picture moving at a known speed, and a click track at a known tempo."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def texture(seed: int, h: int, w: int, tint: tuple[int, int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((h // 8 + 2, w // 8 + 2, 1)).astype(np.float32)
    import cv2

    big = cv2.resize(small, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC)[..., None]
    img = np.clip(big * np.array(tint, np.float32), 0, 255).astype(np.uint8)
    return img


def click_track(duration_s: float, bpm: float, rate: int = 48000) -> np.ndarray:
    n = int(duration_s * rate)
    out = np.zeros(n, np.float32)
    period = 60.0 / bpm
    click = (np.sin(2 * np.pi * 1000 * np.arange(int(0.02 * rate)) / rate) * np.hanning(int(0.02 * rate))).astype(np.float32)
    t = 0.0
    while t < duration_s:
        i = int(t * rate)
        seg = out[i : i + len(click)]
        seg += click[: len(seg)] * 0.5
        t += period
    return np.stack([out, out])


def make_clip(
    path: Path,
    shots: list[tuple[int, tuple[int, int, int], float]],
    *,
    size: tuple[int, int] = (192, 108),
    fps: int = 24,
    bpm: float | None = 120.0,
) -> dict:
    """Write an MP4 of consecutive shots: (n_frames, tint, pan speed in px/frame). Returns its truth."""
    w, h = size
    cuts, start = [], 0
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "18"}
        astream = None
        if bpm:
            astream = c.add_stream("aac", rate=48000)
            astream.layout = "stereo"
        for k, (n, tint, speed) in enumerate(shots):
            if k:
                cuts.append(start)
            tex = texture(k + 1, h, w, tint)
            for i in range(n):
                x = int(round(speed * i)) % w
                frame = np.ascontiguousarray(tex[h // 2 : h // 2 + h, x : x + w])
                for p in vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    c.mux(p)
            start += n
        for p in vs.encode():
            c.mux(p)
        if astream is not None:
            audio = click_track(start / fps, bpm)
            for i in range(0, audio.shape[1], 1024):
                block = np.ascontiguousarray(audio[:, i : i + 1024])
                fr = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                fr.sample_rate = 48000
                fr.pts = i
                fr.time_base = Fraction(1, 48000)
                for p in astream.encode(fr):
                    c.mux(p)
            for p in astream.encode():
                c.mux(p)
    return {"cuts": cuts, "n_frames": start, "fps": fps, "size": size, "bpm": bpm}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def tiny_analysis(audio: dict, cuts: tuple[int, ...] = (72,), n: int = 144) -> dict:
    """A minimal analysis.json for plan/audio tests: a 64x36 24 fps source of `n` frames cut into
    scenes at `cuts`, with the given audio section."""
    bounds = [0, *cuts, n]
    scenes = [
        {"index": i, "start_frame": a, "end_frame": b, "start_s": a / 24, "end_s": b / 24}
        for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))
    ]
    source = {"width": 64, "height": 36, "fps": 24.0, "fps_num": 24, "fps_den": 1, "n_frames": n, "duration_s": n / 24}
    return {"source": source, "scenes": scenes, "audio": audio}


def two_subject_clip(folder: Path, *, width: int = 320, height: int = 180, n: int = 16) -> Path:
    """A clip for subject-following crops: two scenes of `n` frames on a dark, lightly textured ground,
    an orange disc at 15% of the width in the first and at 85% in the second (both outside a centred
    9:16 window)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:height, :width]
    from lookalike.nodes import media

    path = folder / "two.mp4"
    with media.SegmentWriter(path, width=width, height=height, fps=Fraction(24), crf=12) as w:
        for at in (0.15, 0.85):
            disc = (xx - at * width) ** 2 + (yy - height / 2) ** 2 < (height / 6) ** 2
            for _ in range(n):
                f = (30 + rng.integers(0, 12, (height, width, 1))).repeat(3, axis=2).astype(np.uint8)
                f[disc] = (250, 150, 40)
                w.write(f)
    return path


def orange_share(frame: np.ndarray) -> float:
    """The share of a frame's pixels that are two_subject_clip's orange."""
    r, g, b = (frame[..., k].astype(int) for k in range(3))
    return float(((r > 180) & (g > 90) & (b < 110)).mean())
