"""Synthesized sample/output pairs for the similarity score, each with a known relation to the sample.

`make(path, spec)` writes an MP4: shots of a textured picture (tint, pan speed in px/frame, texture
seed) joined by hard cuts, a colour transform on every frame, and a soundtrack (nodes.music at a tempo, key and seed)
or no audio. `SAMPLE` is the reference spec; the variants change one thing each.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FPS = 24
RATE = 48000


@dataclass(frozen=True)
class Shot:
    n: int
    tint: tuple[int, int, int]
    speed: float
    seed: int


@dataclass(frozen=True)
class Spec:
    shots: tuple[Shot, ...]
    bpm: float | None = 120.0
    key: str = "A minor"
    music_seed: int = 0
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel multiplier (a colour shift)
    size: tuple[int, int] = (256, 144)
    crf: int = 16
    audio_bitrate: int = 128000
    extra: dict = field(default_factory=dict)


SAMPLE = Spec(
    shots=(
        Shot(40, (255, 170, 110), 2.5, 1),
        Shot(30, (110, 190, 255), -3.0, 2),
        Shot(46, (190, 255, 140), 0.0, 3),
    )
)


def texture(seed: int, h: int, w: int, tint: tuple[int, int, int]) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.random((h // 8 + 2, w // 6 + 2)).astype(np.float32)
    big = cv2.resize(small, (w * 3, h), interpolation=cv2.INTER_CUBIC)[..., None]
    fine = rng.random((h, w * 3, 1)).astype(np.float32)
    img = (0.8 * big + 0.2 * fine) * np.array(tint, np.float32)
    return np.clip(img, 0, 255)


def soundtrack(duration_s: float, spec: Spec) -> np.ndarray:
    from lookalike.nodes.music import render_music

    return render_music(
        duration_s, spec.bpm, rate=RATE, key=spec.key, seed=spec.music_seed, target_lufs=-16.0
    )


def make(path: Path, spec: Spec = SAMPLE) -> Path:
    w, h = spec.size
    total = sum(s.n for s in spec.shots)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": str(spec.crf)}
        a_stream = None
        if spec.bpm:
            a_stream = c.add_stream("aac", rate=RATE)
            a_stream.layout = "stereo"
            a_stream.bit_rate = spec.audio_bitrate
        gain = np.array(spec.gain, np.float32)
        for shot in spec.shots:
            tex = texture(shot.seed, h, w, shot.tint)
            for i in range(shot.n):
                x = int(round(w + shot.speed * i))
                frame = np.clip(tex[:, x : x + w] * gain, 0, 255).astype(np.uint8)
                for p in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if a_stream is not None:
            audio = soundtrack(total / FPS, spec)
            for i in range(0, audio.shape[1], 1024):
                fr = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(audio[:, i : i + 1024]), format="fltp", layout="stereo"
                )
                fr.sample_rate, fr.pts, fr.time_base = RATE, i, Fraction(1, RATE)
                for p in a_stream.encode(fr):
                    c.mux(p)
            for p in a_stream.encode():
                c.mux(p)
    return path


def variant(spec: Spec = SAMPLE, **changes) -> Spec:
    return dataclasses.replace(spec, **changes)


def colour_shift(level: float) -> Spec:
    """Warmer by `level` (0 none, 1 strong): red up, blue down."""
    return variant(gain=(1.0 + 0.25 * level, 1.0, 1.0 - 0.35 * level))


def cuts_moved(frames: int) -> Spec:
    """The first cut later and the second earlier by `frames`, same total length."""
    a, b, c = SAMPLE.shots
    return variant(shots=(dataclasses.replace(a, n=a.n + frames), b, dataclasses.replace(c, n=c.n - frames)))


def music_swapped() -> Spec:
    return variant(bpm=84.0, key="D major", music_seed=7)


def low_bitrate() -> Spec:
    return variant(crf=38, audio_bitrate=64000)


def remake() -> Spec:
    """Different content (texture seeds), same palette, cuts, motion and tempo."""
    return variant(shots=tuple(dataclasses.replace(s, seed=s.seed + 100) for s in SAMPLE.shots))


def unrelated() -> Spec:
    return Spec(
        shots=(
            Shot(22, (60, 60, 200), 0.0, 50),
            Shot(60, (240, 240, 240), 6.0, 51),
            Shot(18, (200, 40, 40), -0.5, 52),
            Shot(16, (30, 120, 30), 4.0, 53),
        ),
        bpm=75.0,
        key="F# major",
        music_seed=3,
    )
