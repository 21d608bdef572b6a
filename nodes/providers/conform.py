"""Provider footage conformed to the plan: the scene's size, its exact frame count, its grade.

A provider returns a clip of its own size, frame rate and length (Runway 1280x720 at 24 fps for
5 s, Veo 8 s at 24 fps...). `ConformedClip` maps it onto the scene: cover-scaled and centre-cropped
to width x height, retimed so that its whole length spans exactly the scene's frame count (output
frame k shows the source frame at the same fraction of the clip), and graded toward the sample
scene's measured grade. The grade is solved once per clip on a few frames spread over it (the same
solve kernels.grade.match_grade does per image), so every frame gets the same adjustment: no
flicker, and any sub-range of frames is identical to the same frames of a whole-scene conform.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from lookalike.kernels import grade
from lookalike.nodes import media

from lookalike.errors import InputError, ProviderError

GRADE_SAMPLES = 5
_GRADE_WIDTH = 320


def check_clip(path: str | Path, provider: str) -> media.MediaInfo:
    """The MediaInfo of a downloaded clip, or a ProviderError that says what is wrong with it.

    An empty or undecodable file is transient (a cut-off download or a bad render usually goes
    away on a new attempt); a file that decodes but holds no video frames is permanent.
    """
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        raise ProviderError(f"{provider} returned an empty file", transient=True, hint="the call is retried")
    try:
        info = media.probe(str(p))
    except InputError as exc:
        raise ProviderError(
            f"{provider} returned a file that is not a readable video ({exc.message})",
            transient=True,
            hint="the call is retried; if it keeps failing, choose another provider for the scene",
        ) from exc
    if not info.has_video or info.n_frames <= 0:
        raise ProviderError(
            f"{provider} returned a file with no video frames ({p.name})",
            transient=False,
            hint="choose another provider or model for this scene",
        )
    return info


def source_index(k: int, n_out: int, n_src: int) -> int:
    """The source frame that output frame k of n_out shows when n_src frames are stretched over n_out."""
    return min(n_src - 1, int((k + 0.5) * n_src / n_out))


def cover(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """`frame` scaled to cover width x height (aspect kept) and centre-cropped to exactly that."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    s = max(width / w, height / h)
    sw, sh = max(width, round(w * s)), max(height, round(h * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(frame, (sw, sh), interpolation=interp)
    x0, y0 = (sw - width) // 2, (sh - height) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + height, x0 : x0 + width])


class ConformedClip:
    """Frames [start, end) of a scene from a provider clip: `ConformedClip(path, scene, w, h).frames(a, b)`.

    `scene` is the plan entry (start_frame, end_frame, grade). Construction probes the clip (a broken
    one raises ProviderError) and solves the grade on GRADE_SAMPLES frames.
    """

    def __init__(
        self,
        path: str | Path,
        scene: Mapping[str, Any],
        width: int,
        height: int,
        *,
        provider: str = "provider",
    ) -> None:
        self.path = str(path)
        self.provider = provider
        self.start, self.end = int(scene["start_frame"]), int(scene["end_frame"])
        if self.end <= self.start:
            raise InputError(f"scene {scene.get('index')} is empty")
        self.width, self.height = int(width), int(height)
        self.info = check_clip(path, provider)
        self.n_src = self.info.n_frames
        target = {k: float(v) for k, v in (scene.get("grade") or {}).items() if k in grade.GRADE_KEYS}
        self.adjustments = grade.solve_grade(self._views(), target) if target else None

    @property
    def n_frames(self) -> int:
        return self.end - self.start

    def _decode(self, indices: list[int]) -> Iterator[np.ndarray]:
        """Source frames at the non-decreasing `indices`, conformed in size (a repeat is decoded once)."""
        pos = 0
        try:
            with contextlib.closing(media.iter_frames(self.path, indices[0], indices[-1] + 1)) as frames:
                for i, _, rgb in frames:
                    if i != indices[pos]:
                        continue
                    frame = cover(rgb, self.width, self.height)
                    while pos < len(indices) and indices[pos] == i:
                        yield frame
                        pos += 1
                    if pos == len(indices):
                        return
        except InputError as exc:
            raise ProviderError(
                f"{self.provider}'s clip breaks while decoding ({exc.message})",
                transient=True,
                hint="the clip is generated again on the next attempt",
            ) from exc
        raise ProviderError(f"{self.provider}'s clip ends before its frame {indices[pos]}", transient=True)

    def _views(self) -> np.ndarray:
        picks = sorted({source_index(k, GRADE_SAMPLES, self.n_src) for k in range(GRADE_SAMPLES)})
        vw = min(_GRADE_WIDTH, self.width)
        vh = max(2, round(self.height * vw / self.width))
        views = [cv2.resize(f, (vw, vh), interpolation=cv2.INTER_AREA) for f in self._decode(list(picks))]
        return np.concatenate(views, axis=1)

    def frames(self, start: int | None = None, end: int | None = None) -> Iterator[np.ndarray]:
        """rgb24 HxWx3 uint8 frames for ABSOLUTE indices [start, end) of the scene (default: all)."""
        a = self.start if start is None else int(start)
        b = self.end if end is None else int(end)
        if not self.start <= a < b <= self.end:
            raise InputError(f"frame range [{a}, {b}) is not inside the scene [{self.start}, {self.end})")
        indices = [source_index(k - self.start, self.n_frames, self.n_src) for k in range(a, b)]
        for frame in self._decode(indices):
            if self.adjustments is None:
                yield frame
            else:
                yield grade.to_uint8(grade.apply_grade(frame, self.adjustments))
