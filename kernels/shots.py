"""Shot boundaries that are not single-frame spikes: dissolves and fades through a solid colour,
found in small frame thumbnails; and the boundary F1 score that tests and bench/shots.py share.

Hard cuts are single-frame spikes of `features.content_score`; gradual transitions are not, so they
are found here from a thumbnail of every frame (`thumbnail`, THUMB x THUMB RGB):

- a **fade** runs into or out of a blank frame (flat black or white): a frame whose thumbnail has
  almost no spatial spread and is near black or white. A run of flat frames between two shots is one boundary,
  at the middle of the run; the fade's extent is where the distance to the flat colour keeps
  falling toward the run.
- a **dissolve** from shot A to shot B shows frames (1 - alpha) A + alpha B. The spatial spread
  (contrast) of a blend of two unrelated pictures is lower than either's, so a dissolve is a dip in
  the thumbnails' spread, and its frames fit blends of the frames at the dip's shoulders (alpha =
  the projection of T_j - A onto B - A). A pan never dips in contrast; a cut is one frame wide.

Every function takes the whole sequence of thumbnails of a video (range-parallel analysis merges
the per-frame thumbnails first) and is deterministic. They run on numpy on the host: a thumbnail is
768 bytes, not worth a device round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

THUMB = 16
"""Thumbnail side in pixels (THUMB x THUMB x 3, uint8)."""

FLAT_STD = 6.0
"""A frame whose thumbnail's spatial std (0-255 scale, mean over channels) is below this is flat."""

BLACK_LEVEL = 24.0
WHITE_LEVEL = 232.0
"""A flat frame darker than BLACK_LEVEL or brighter than WHITE_LEVEL (mean, 0-255) is blank."""


@dataclass(frozen=True)
class Transition:
    """A gradual transition over frames [start, end): the new shot starts at `boundary`."""

    kind: str  # "dissolve" or "fade"
    start: int
    end: int
    boundary: int
    colour: tuple[int, int, int] | None = None  # the flat colour a fade passes through

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "start_frame": self.start, "end_frame": self.end}
        if self.colour is not None:
            d["colour"] = list(self.colour)
        return d


def thumbnail(rgb: Any) -> np.ndarray:
    """THUMB x THUMB x 3 uint8 area-averaged thumbnail of an RGB frame in 0-255 (any size >= THUMB).

    Where THUMB divides the frame's sides this is the exact box mean of each cell, rounded.
    """
    import cv2  # OpenCV's area resampling: ~100x faster than numpy's strided mean here

    a = np.asarray(rgb.get() if hasattr(rgb, "get") and not isinstance(rgb, np.ndarray) else rgb)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a), 0, 255).astype(np.uint8)
    return cv2.resize(np.ascontiguousarray(a), (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def _spread(t3: np.ndarray) -> np.ndarray:
    """Spatial std of each (N, P, 3) thumbnail, mean over channels."""
    return t3.std(axis=1).mean(axis=1)


def flat_frames(thumbs: np.ndarray) -> np.ndarray:
    """Boolean per frame: the thumbnail is (almost) one solid colour."""
    return _spread(thumbs.reshape(len(thumbs), -1, 3).astype(np.float64)) < FLAT_STD


def blank_frames(thumbs: np.ndarray) -> np.ndarray:
    """Boolean per frame: flat and near black or near white (what a fade passes through).

    A flat mid-grey or coloured frame is a picture in its own right (a title card, a synthetic test
    clip), not the middle of a fade.
    """
    t = thumbs.reshape(len(thumbs), -1, 3).astype(np.float64)
    mean = t.mean(axis=(1, 2))
    return flat_frames(thumbs) & ((mean < BLACK_LEVEL) | (mean > WHITE_LEVEL))


def fades(thumbs: np.ndarray, cuts: list[int]) -> list[Transition]:
    """Fades through black or white between two shots, and an opening fade-in / closing fade-out.

    Internal runs of blank frames give one boundary each, at the middle of the run, with the fade's
    extent grown outward while the distance to the flat colour keeps shrinking toward the run (and
    no cut intervenes). A white run counts only next to a picture (a grey ramp peaking at white is
    not a fade). An opening run gives a Transition with boundary 0 (the first scene's
    transition_in), a closing run one with boundary len(thumbs) (the last scene's fade-out).
    """
    n = len(thumbs)
    t = thumbs.reshape(n, -1, 3).astype(np.float64)
    flat = blank_frames(thumbs)
    cut_set = set(cuts)
    out: list[Transition] = []
    i = 0
    while i < n:
        if not flat[i]:
            i += 1
            continue
        j = i
        while j < n and flat[j]:
            j += 1
        colour = t[i:j].mean(axis=(0, 1))
        dist = np.abs(t - colour[None, None, :]).mean(axis=(1, 2))
        a = i
        while a > 0 and a not in cut_set and dist[a - 1] > dist[a] + 0.25:
            a -= 1
        b = j  # grows to the first frame of the new shot at full strength (exclusive end)
        while b < n - 1 and (b + 1) not in cut_set and dist[b + 1] > dist[b] + 0.25:
            b += 1
        col = (int(round(colour[0])), int(round(colour[1])), int(round(colour[2])))
        pictures = not flat_frames(thumbs[[max(a - 1, 0), min(b, n - 1)]]).all()
        if colour.mean() > WHITE_LEVEL and not pictures:
            i = j  # the bright peak of a grey ramp, not a fade to white between two pictures
            continue
        if i == 0:
            if b > 1:
                out.append(Transition("fade", 0, b, 0, col))
        elif j >= n:
            if n - a > 1:
                out.append(Transition("fade", a, n, n, col))
        else:
            out.append(Transition("fade", a, b, (i + j) // 2, col))
        i = j
    return out


def _blend_fit(t: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, float]:
    """Alpha of every frame in [lo, hi] as a blend of frames lo and hi, and the fit's relative residual."""
    A, B = t[lo], t[hi]
    D = B - A
    dd = max(float((D * D).sum()), 1e-9)
    inner = t[lo : hi + 1] - A
    al = inner @ D / dd
    r = inner - al[:, None] * D[None, :]
    return al, float(np.sqrt((r * r).sum(axis=1).mean() / dd))


def dissolves(
    thumbs: np.ndarray,
    cuts: list[int],
    exclude: list[tuple[int, int]] | None = None,
    *,
    max_dip: float = 0.9,
    min_change: float = 15.0,
    max_residual: float = 0.55,
    max_half: int = 40,
) -> list[Transition]:
    """Dissolves between two shots: a dip in picture contrast whose frames are blends of its shoulders.

    Minima of the thumbnails' spread (smoothed over ~3 frames so motion wobble does not split a dip)
    are climbed on both sides until the spread stops rising (never across a hard cut, a flat frame
    or a range in `exclude`, at most `max_half` frames); the shoulders are the nearest frames that
    reached 92 % of that rise. It is a dissolve when the dip is at most `max_dip` of the shoulders'
    mean spread and below 95 % of each, the shoulders differ by at least `min_change` (mean absolute, 0-255), and the
    frames between fit blends of the shoulders with a relative residual of at most `max_residual`
    and alpha rising overall (the bound is loose because both shots may move during a dissolve).
    Overlapping spans are one dissolve. It spans [left shoulder + 1, right shoulder); the new scene
    starts where alpha passes 0.5.
    """
    n = len(thumbs)
    if n < 5:
        return []
    t3 = thumbs.reshape(n, -1, 3).astype(np.float64)
    # The blend fit runs on 8x8 poolings of the thumbnails: less sensitive to motion during the dissolve.
    t = thumbs.reshape(n, THUMB // 2, 2, THUMB // 2, 2, 3).astype(np.float64).mean(axis=(2, 4)).reshape(n, -1)
    kern = np.exp(-0.5 * (np.arange(-4, 5) / 1.5) ** 2)
    spread = np.convolve(np.pad(_spread(t3), 4, mode="edge"), kern / kern.sum(), mode="valid")
    barrier = flat_frames(thumbs)
    for a, b in exclude or []:
        barrier[max(0, a) : min(n, b)] = True
    cut_set = {int(c) for c in cuts}

    def shoulder(m: int, step: int) -> int:
        j, top, top_j, misses = m, float(spread[m]), m, 0
        while 0 <= j + step < n and abs(j + step - m) <= max_half and not barrier[j + step] and misses < 3:
            if (step < 0 and j in cut_set) or (step > 0 and (j + 1) in cut_set):
                break
            j += step
            if spread[j] > top + 0.05:
                top, top_j, misses = float(spread[j]), j, 0
            else:
                misses += 1
        level = spread[m] + 0.92 * (top - spread[m])
        k = m
        while k != top_j and spread[k] < level:
            k += step
        return k

    candidates: list[tuple[int, int]] = []
    for m in range(1, n - 1):
        if barrier[m] or not (spread[m] <= spread[m - 1] and spread[m] < spread[m + 1]):
            continue
        L, R = shoulder(m, -1), shoulder(m, 1)
        if R - L < 2:
            continue
        # Both sides must rise: a title fading in over a shot raises one side only.
        if float(spread[m]) > max_dip * 0.5 * (spread[L] + spread[R]) or spread[m] > 0.95 * min(
            spread[L], spread[R]
        ):
            continue
        if float(np.abs(t[R] - t[L]).mean()) < min_change:
            continue
        al, residual = _blend_fit(t, L, R)
        if residual > max_residual or al[-1] - al[0] < 0.8 or float(np.diff(al).min(initial=0.0)) < -0.3:
            continue
        candidates.append((L, R))
    spans: list[list[int]] = []
    for L, R in sorted(candidates):
        if spans and L <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], R)
        else:
            spans.append([L, R])
    out = []
    for L, R in spans:
        al, _ = _blend_fit(t, L, R)
        mid = L + int(np.argmax(al >= 0.5))
        # Trim shoulder frames that are still (almost) pure A or already pure B.
        start = L + int(np.argmax(al > 0.06))
        end = L + len(al) - int(np.argmax(al[::-1] < 0.94))
        start, end = min(start, mid), max(end, mid + 1)
        out.append(Transition("dissolve", start, end, mid))
    return out


def boundary_f1(found: list[int], truth: list[int], tol: int | list[int] = 1) -> tuple[float, float, float]:
    """(precision, recall, F1) of boundary frames, each truth frame matched at most once within its tolerance.

    `tol` is one tolerance for all truth frames or one per truth frame (1 for cuts, 3 for gradual
    transitions). Pairs are matched greedily by distance. Two empty lists score 1.0.
    """
    tols = [tol] * len(truth) if isinstance(tol, int) else list(tol)
    if not found and not truth:
        return 1.0, 1.0, 1.0
    pairs = sorted(
        (abs(f - t), fi, ti)
        for fi, f in enumerate(found)
        for ti, t in enumerate(truth)
        if abs(f - t) <= tols[ti]
    )
    used_f: set[int] = set()
    used_t: set[int] = set()
    for _, fi, ti in pairs:
        if fi not in used_f and ti not in used_t:
            used_f.add(fi)
            used_t.add(ti)
    hits = len(used_t)
    p = hits / len(found) if found else 0.0
    r = hits / len(truth) if truth else 0.0
    return p, r, (2 * p * r / (p + r) if hits else 0.0)
