"""Synthesized clips with known shot transitions (cuts, dissolves, fades through black or white), for
tests/nodes/test_shots.py and bench/shots.py.

Each shot is a different colourful texture seen by a camera that pans at its own speed, so every
frame moves (a detector that mistakes motion for change fails here). Truth is exact by construction:
a cut's frame is the first frame of the new shot; a dissolve over frames [s, e) blends with alpha
(j - s + 1) / (e - s + 1) and its boundary is the middle frame; a fade through a colour darkens or
brightens to a held run of that colour, and its boundary is the middle of the held run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

W, H, FPS = 192, 108, 24


def texture(seed: int, h: int = 220, w: int = 900) -> np.ndarray:
    """A colourful smooth random texture, float32 RGB in [0, 1], different for every seed."""
    rng = np.random.default_rng(seed)
    small = rng.random((h // 12 + 2, w // 12 + 2, 3)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img = (img - img.min()) / (img.max() - img.min())
    tint = rng.random(3).astype(np.float32) * 0.6 + 0.2
    return np.clip(0.75 * img + 0.25 * tint, 0, 1)


@dataclass
class Clip:
    """A synthesized clip and its truth: boundary frames with their kind and extent."""

    path: Path
    n_frames: int
    boundaries: list[dict] = field(default_factory=list)  # {"frame", "kind", "start", "end"}

    @property
    def cut_frames(self) -> list[int]:
        return [b["frame"] for b in self.boundaries if b["kind"] == "cut"]

    @property
    def frames(self) -> list[int]:
        return [b["frame"] for b in self.boundaries]

    @property
    def tolerances(self) -> list[int]:
        return [1 if b["kind"] == "cut" else 3 for b in self.boundaries]


def make_transitions_clip(
    path: Path, plan: list[tuple[int, str, int]], *, seed: int = 0, pan: float = 1.2
) -> Clip:
    """Write `plan` as H.264 at FPS: [(shot_frames, transition_into_next, transition_frames)].

    transition is "cut", "dissolve", "wipe" (left to right), "fade_black" or "fade_white" (the last shot's is ignored). A
    dissolve's frames overlap the two shots' ends; a fade's frames are split into out-ramp, a held
    flat run of a third of them, and in-ramp.
    """
    shots = [texture(seed * 100 + k) for k in range(len(plan))]
    speeds = [pan * (1 + 0.5 * (k % 3)) * (-1 if k % 2 else 1) for k in range(len(plan))]

    def view(k: int, i: int) -> np.ndarray:
        tex = shots[k]
        x = int(round(300 + speeds[k] * i))
        return tex[50 : 50 + H, x : x + W]

    frames: list[np.ndarray] = []
    clip = Clip(path, 0)
    for k, (length, kind, tlen) in enumerate(plan):
        base = len(frames)
        for i in range(length):
            frames.append(view(k, i))
        if k == len(plan) - 1:
            break
        if kind == "cut":
            clip.boundaries.append(
                {"frame": len(frames), "kind": "cut", "start": len(frames), "end": len(frames)}
            )
        elif kind == "dissolve":
            # The last tlen frames of shot k blend into the first frames of shot k+1.
            s = len(frames) - tlen
            for j in range(tlen):
                a = (j + 1) / (tlen + 1)
                frames[s + j] = (1 - a) * frames[s + j] + a * view(k + 1, j - tlen)
            clip.boundaries.append({"frame": s + tlen // 2, "kind": "dissolve", "start": s, "end": s + tlen})
        elif kind == "wipe":
            # Shot k+1 is revealed left to right over the last tlen frames of shot k.
            s = len(frames) - tlen
            xs = np.arange(W)[None, :, None]
            for j in range(tlen):
                edge = (j + 1) / (tlen + 1) * W
                frames[s + j] = np.where(xs < edge, view(k + 1, j - tlen), frames[s + j])
            clip.boundaries.append({"frame": s + tlen // 2, "kind": "wipe", "start": s, "end": s + tlen})
        elif kind in ("fade_black", "fade_white"):
            flat = np.full((H, W, 3), 0.0 if kind == "fade_black" else 1.0, np.float32)
            hold = max(1, tlen // 3)
            ramp = max(1, (tlen - hold) // 2)
            s = len(frames) - ramp
            for j in range(ramp):
                a = (j + 1) / (ramp + 1)
                frames[s + j] = (1 - a) * frames[s + j] + a * flat
            h0 = len(frames)
            frames.extend([flat] * hold)
            # The next shot opens with an in-ramp over its first `ramp` frames (patched below).
            clip.boundaries.append(
                {"frame": h0 + hold // 2, "kind": "fade", "start": s, "end": h0 + hold + ramp, "ramp": ramp}
            )
        else:
            raise ValueError(kind)
        del base
    # In-ramps of fades: the first `ramp` frames after each held run come up from the flat colour.
    for b in clip.boundaries:
        if b["kind"] == "fade":
            ramp = b["ramp"]
            s = b["end"] - ramp
            flat = frames[s - 1]
            for j in range(ramp):
                a = (j + 1) / (ramp + 1)
                frames[s + j] = (1 - a) * flat + a * frames[s + j]
    clip.n_frames = len(frames)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.options = {"crf": "12", "preset": "veryfast", "bf": "0"}
        for f in frames:
            rgb = (np.clip(f, 0, 1) * 255).round().astype(np.uint8)
            c.mux(vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")))
        c.mux(vs.encode(None))
    return clip


# A fixed set of clips for tests and the benchmark: name -> (plan, seed).
CLIPS: dict[str, tuple[list[tuple[int, str, int]], int]] = {
    "synth-cuts": ([(30, "cut", 0), (26, "cut", 0), (40, "cut", 0), (30, "", 0)], 1),
    "synth-dissolves": ([(40, "dissolve", 12), (44, "dissolve", 20), (40, "dissolve", 8), (36, "", 0)], 2),
    "synth-fades": ([(40, "fade_black", 18), (40, "fade_white", 15), (40, "fade_black", 12), (36, "", 0)], 3),
    "synth-wipes": ([(40, "wipe", 12), (40, "cut", 0), (40, "wipe", 20), (36, "", 0)], 5),
    "synth-mixed": (
        [
            (34, "cut", 0),
            (40, "dissolve", 16),
            (36, "fade_white", 15),
            (30, "cut", 0),
            (40, "dissolve", 6),
            (30, "", 0),
        ],
        4,
    ),
}


def make_named(name: str, folder: Path) -> Clip:
    plan, seed = CLIPS[name]
    return make_transitions_clip(folder / f"{name}.mp4", plan, seed=seed)
