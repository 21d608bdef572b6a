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

`frame_features` makes the per-frame inputs (change score, HSV histogram, thumbnail) of a block of
small frames at once: per frame, the forty-odd array calls would cost more than decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from lookalike.kernels import features as kf

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

    kind: str  # "dissolve", "fade" or "wipe"
    start: int
    end: int
    boundary: int
    colour: tuple[int, int, int] | None = None  # the flat colour a fade passes through
    direction: str | None = None  # where a wipe's edge travels: left, right, up or down

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "start_frame": self.start, "end_frame": self.end}
        if self.colour is not None:
            d["colour"] = list(self.colour)
        if self.direction is not None:
            d["direction"] = self.direction
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


@dataclass(frozen=True)
class FrameFeatures:
    """The shot features of a block of consecutive frames, row k for the block's k-th frame.

    `score` and `hist_dist` compare each frame with its predecessor (NaN for a frame without one);
    `last` is what the next block needs as its `prev`.
    """

    score: np.ndarray  # (K,) features.content_score
    hist: np.ndarray  # (K, 3 * HSV_BINS) float32, features.hsv_histogram
    hist_dist: np.ndarray  # (K,) features.histogram_distance
    thumbs: np.ndarray  # (K, THUMB, THUMB, 3) uint8, `thumbnail`
    luma_mean: np.ndarray  # (K,) mean Rec.709 luma in [0, 1]
    last: tuple[np.ndarray, np.ndarray]  # (HSV, histogram) of the block's last frame


def frame_features(rgb: np.ndarray, prev: tuple[np.ndarray, np.ndarray] | None = None) -> FrameFeatures:
    """Shot features of a block of frames `rgb` (K, H, W, 3) uint8, all at once.

    The definitions are `features.content_score`, `features.hsv_histogram` and
    `features.histogram_distance` on OpenCV's float HSV of each frame, and `thumbnail`; computed for
    the block in a few array operations instead of some forty per frame, which is what a small
    frame's features cost. Every row depends only on its frame and its predecessor (the previous
    block's `last` as `prev`, None at the start of a video), so any blocking gives the same values.
    """
    import cv2  # float RGB -> HSV (H in degrees), 16x faster than features.rgb_to_hsv

    k, h, w, _ = rgb.shape
    f = kf.to_float(rgb)
    hsv = cv2.cvtColor(f.reshape(k * h, w, 3), cv2.COLOR_RGB2HSV).reshape(k, h, w, 3)
    # Planes (channel, frame, pixel), contiguous: per-channel arithmetic runs at full speed.
    planes = np.ascontiguousarray(np.moveaxis(hsv, -1, 0).reshape(3, k, h * w))
    hist = _hsv_histograms(planes)
    score = np.full(k, np.nan)
    hist_dist = np.full(k, np.nan)
    if prev is not None:
        prev_planes = np.ascontiguousarray(np.moveaxis(prev[0], -1, 0).reshape(3, 1, h * w))
        planes = np.concatenate([prev_planes, planes], axis=1)
        hists = np.concatenate([prev[1][None].astype(np.float32), hist])
        rows = slice(0, k)
    else:
        hists = hist
        rows = slice(1, k)
    if planes.shape[1] > 1:
        score[rows] = _content_scores(planes)
        hist_dist[rows] = np.abs(hists[1:] - hists[:-1]).sum(axis=1) / 6.0
    thumbs = np.stack([cv2.resize(frame, (THUMB, THUMB), interpolation=cv2.INTER_AREA) for frame in rgb])
    return FrameFeatures(
        score=score,
        hist=hist,
        hist_dist=hist_dist,
        thumbs=thumbs,
        luma_mean=kf.luma(f).reshape(k, -1).mean(axis=1),
        last=(hsv[-1], hist[-1]),
    )


def _hsv_histograms(planes: np.ndarray) -> np.ndarray:
    """`features.hsv_histogram` of every frame of HSV planes (3, K, pixels): (K, 3 * HSV_BINS) float32."""
    import cv2  # its histogram of 16-bit values is twice as fast as np.bincount

    _, k, _ = planes.shape
    bins = kf.HSV_BINS
    if 3 * k * bins > 65536:  # bin numbers must fit 16 bits
        half = k // 2
        return np.concatenate([_hsv_histograms(planes[:, :half]), _hsv_histograms(planes[:, half:])])
    scale = np.array([bins / 360.0, bins, bins], np.float32)[:, None, None]
    q = planes * scale
    np.clip(q, 0, bins - 1, out=q)  # then truncation is the floor of features.hsv_histogram
    # One bin number per (channel, frame, value): a single histogram counts them all.
    idx = q.astype(np.uint16)
    idx += np.arange(3, dtype=np.uint16)[:, None, None] * (k * bins)
    idx += np.arange(k, dtype=np.uint16)[None, :, None] * bins
    n = 3 * k * bins
    counts = cv2.calcHist([idx.reshape(1, -1)], [0], None, [n], [0, n]).reshape(3, k, bins).transpose(1, 0, 2)
    return (counts / np.maximum(counts.sum(axis=2, keepdims=True), 1.0)).reshape(k, 3 * bins)


def _content_scores(planes: np.ndarray) -> np.ndarray:
    """`features.content_score` of frame j + 1 against frame j, for HSV planes (3, N, pixels): (N - 1,)."""
    hue, sat, val = planes
    lit = np.minimum(val[:-1], val[1:])
    lit *= 4.0
    np.clip(lit, 0.0, 1.0, out=lit)
    dh = np.abs(hue[1:] - hue[:-1])
    np.minimum(dh, 360.0 - dh, out=dh)
    dh *= 0.5  # degrees -> OpenCV hue units
    dh *= lit
    ds = np.abs(sat[1:] - sat[:-1])
    ds *= 255.0
    ds *= lit
    means = val.mean(axis=1).astype(np.float64)
    gain = np.clip(means[1:] / np.maximum(means[:-1], 1e-3), 0.5, 2.0).astype(np.float32)
    dv = val[:-1] * gain[:, None]
    np.subtract(val[1:], dv, out=dv)
    np.abs(dv, out=dv)
    dv *= 255.0
    return (dh.mean(axis=1) + ds.mean(axis=1) + dv.mean(axis=1)) / 3.0


def _spread(t3: np.ndarray) -> np.ndarray:
    """Spatial std of each (N, P, 3) thumbnail, mean over channels."""
    # Channel-major first: a reduction over the contiguous last axis is twice as fast.
    return np.ascontiguousarray(t3.transpose(0, 2, 1)).std(axis=2).mean(axis=1)


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


def _value_counts(thumbs: np.ndarray) -> np.ndarray:
    """(N, 3 * 256) float64: how many pixels of each thumbnail have each value, per channel."""
    n = len(thumbs)
    idx = thumbs.reshape(n, -1, 3).astype(np.intp) + np.arange(3, dtype=np.intp) * 256
    idx += np.arange(n, dtype=np.intp)[:, None, None] * 768
    return np.bincount(idx.ravel(), minlength=n * 768).reshape(n, 768).astype(np.float64)


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
    counts: np.ndarray | None = None
    i = 0
    while i < n:
        if not flat[i]:
            i += 1
            continue
        j = i
        while j < n and flat[j]:
            j += 1
        colour = t[i:j].mean(axis=(0, 1))
        if counts is None:
            counts = _value_counts(thumbs)
        # Mean absolute difference of every thumbnail from the colour, from its value counts.
        levels = np.arange(256, dtype=np.float64)
        dist = counts @ np.abs(levels[None, :] - colour[:, None]).ravel() / t.shape[1] / 3.0
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
    raw_spread = _spread(t3)
    spread = np.convolve(np.pad(raw_spread, 4, mode="edge"), kern / kern.sum(), mode="valid")
    barrier = raw_spread < FLAT_STD  # = flat_frames(thumbs)
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


def _changed_cells(
    t: np.ndarray, a: np.ndarray, b: np.ndarray, level: float, chunk: int = 1024
) -> np.ndarray:
    """Per pair (a[i], b[i]): the share of thumbnail cells of t (N, THUMB, THUMB, 3) whose mean
    absolute difference between the two frames is above `level`."""
    out = np.empty(len(a))
    for i in range(0, len(a), chunk):
        d = np.abs(t[b[i : i + chunk]] - t[a[i : i + chunk]]).mean(axis=-1)
        out[i : i + chunk] = (d > level).mean(axis=(1, 2))
    return out


def wipes(
    thumbs: np.ndarray,
    cuts: list[int],
    exclude: list[tuple[int, int]] | None = None,
    *,
    half_widths: tuple[int, ...] = (4, 6, 9, 13, 18),
    min_prominence: float = 1.8,
    min_fit: float = 0.85,
    min_cell_change: float = 20.0,
) -> list[Transition]:
    """Wipes: an edge sweeps across the frame, the new shot on one side of it, the old on the other.

    Frame to frame, a wipe changes most along its edge, while motion changes the whole picture a
    little. So for every frame the change against its predecessor is profiled per thumbnail column
    (and per row); the edge is the column whose change stands out (at least `min_prominence` times
    the median column). A window [c-k, c+k] is a wipe when the edge stands out in 80 % of its frames
    and its position moves along a straight line (R^2 at least `min_fit`) across at least half the
    frame, at least 60 % of the thumbnail's cells differ by `min_cell_change` (mean absolute, 0-255)
    between its first and last frame (a whole new picture, not an object crossing a still one), with
    no hard cut inside and no overlap with `exclude`. Overlapping finds are one wipe,
    reported with the direction its edge travels (left, right, up, down).
    """
    n = len(thumbs)
    if n < 6:
        return []
    t = thumbs.reshape(n, THUMB, THUMB, 3).astype(np.float64)
    diff = np.abs(np.diff(t, axis=0)).mean(axis=-1)  # (n-1, rows, cols): frame j+1 against j
    profiles = {"x": diff.mean(axis=1), "y": diff.mean(axis=2)}  # per column, per row
    blocked = np.zeros(n, bool)
    for c in cuts:
        if 0 <= c < n:
            blocked[c] = True
    for a, b in exclude or []:
        blocked[max(0, a) : min(n, b)] = True
    cum = np.concatenate([[0], np.cumsum(blocked)])
    found: list[tuple[int, int, int, str]] = []
    for axis_name, prof in profiles.items():
        peak = prof.argmax(axis=1).astype(np.float64)
        prominent = prof.max(axis=1) >= min_prominence * np.maximum(np.median(prof, axis=1), 1e-6)
        prom_cum = np.concatenate([[0], np.cumsum(prominent)])
        for k in half_widths:
            # Windows [c-k, c+k] (frames L..R; diff rows L-1..R-1 compare each with its predecessor)
            # with no blocked frame and the edge prominent in 80 % of its rows, found for all c at once.
            cs = np.arange(k + 1, n - k)
            clear = cum[cs + k + 1] - cum[cs - k] == 0
            share = (prom_cum[cs + k] - prom_cum[cs - k - 1]) / (2 * k + 1)
            cs = cs[clear & (share >= 0.8)]
            # A new shot replaces the whole picture; an object crossing a still scene does not.
            cs = cs[_changed_cells(t, cs - k, cs + k, min_cell_change) >= 0.6]
            for c in cs.tolist():
                L, R = c - k, c + k
                rows = np.arange(L - 1, R)
                ok = prominent[rows]
                x, y = rows[ok].astype(np.float64), peak[rows[ok]]
                if np.ptp(y) < THUMB / 2:
                    continue
                slope, icpt = np.polyfit(x, y, 1)
                ss = float(((y - y.mean()) ** 2).sum())
                if 1.0 - float(((y - (slope * x + icpt)) ** 2).sum()) / max(ss, 1e-9) < min_fit:
                    continue
                # The edge enters at coordinate 0 (or THUMB) and leaves at the far side: extrapolate.
                first, last = (0.0, THUMB - 1.0) if slope > 0 else (THUMB - 1.0, 0.0)
                start = int(np.floor((first - icpt) / slope)) + 1
                end = int(np.ceil((last - icpt) / slope)) + 1
                mid = int(round(((THUMB - 1) / 2.0 - icpt) / slope)) + 1
                direction = {
                    ("x", True): "right",
                    ("x", False): "left",
                    ("y", True): "down",
                    ("y", False): "up",
                }
                found.append((max(L, start), min(R + 1, end), mid, direction[(axis_name, slope > 0)]))
    found.sort()
    merged: list[list] = []
    for f in found:
        if merged and f[0] <= merged[-1][1]:
            m = merged[-1]
            m[0], m[1] = min(m[0], f[0]), max(m[1], f[1])
            m[2] = (m[0] + m[1]) // 2
        else:
            merged.append(list(f))
    return [Transition("wipe", a, b, mid, None, d) for a, b, mid, d in merged]


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
