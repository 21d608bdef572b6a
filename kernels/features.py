"""Per-frame features for sample analysis: shot-change scores, colour statistics, global motion.

Every function is pure and written once for NumPy and CuPy: the array module is taken from the
input (`xp = get_xp(a)`), nothing is moved between devices, and results that callers keep are plain
Python floats/lists so they can go straight into JSON.

Conventions shared with `lookalike.nodes.analysis`:
- frames are RGB uint8 arrays of shape (H, W, 3);
- a motion "delta" is the similarity warp W that maps pixel coordinates of the current frame onto
  the previous frame (coordinates centred on the frame, y down): W(p) = [[1+a, -b], [b, 1+a]] p + t.
  Its translation is the camera's own motion (camera pans right -> content slides left -> t_x > 0),
  its scale 1+a < 1 means the camera zoomed in, and atan2(b, 1+a) is the camera roll (clockwise on
  screen is positive).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

try:  # CuPy is optional: kernels run on whichever module the input array belongs to.
    import cupy as _cupy  # type: ignore[import-not-found]
except Exception:  # pragma: no cover - no GPU stack here
    _cupy = None

# Lab white point (D65) and sRGB -> XYZ matrix (IEC 61966-2-1).
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
    dtype=np.float32,
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
_LUMA = (0.2126, 0.7152, 0.0722)

COLOR_LEVELS = 16
"""Quantisation levels per RGB channel of the palette histogram (16**3 = 4096 bins)."""

HSV_BINS = 16
"""Bins per channel of the HSV histogram kept for every frame (flash and fade checks)."""


def get_xp(a: Any) -> Any:
    """The array module (numpy or cupy) that `a` belongs to."""
    if _cupy is not None:
        return _cupy.get_array_module(a)
    return np


# --- colour conversions -------------------------------------------------------------------------


def to_float(rgb: Any) -> Any:
    """uint8 RGB -> float32 in [0, 1]."""
    xp = get_xp(rgb)
    return rgb.astype(xp.float32) / xp.float32(255.0)


def srgb_to_linear(c: Any) -> Any:
    """sRGB-encoded values in [0, 1] -> linear light."""
    xp = get_xp(c)
    return xp.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(xp.float32)


def rgb_to_lab(rgb01: Any) -> Any:
    """sRGB in [0, 1] (..., 3) -> CIE L*a*b* (D65), L in [0, 100]."""
    xp = get_xp(rgb01)
    lin = srgb_to_linear(rgb01)
    xyz = lin @ xp.asarray(_RGB_TO_XYZ.T) / xp.asarray(_WHITE_D65)
    eps = 216.0 / 24389.0
    kappa = 24389.0 / 27.0
    f = xp.where(xyz > eps, xp.cbrt(xyz), (kappa * xyz + 16.0) / 116.0)
    L = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return xp.stack([L, a, b], axis=-1).astype(xp.float32)


def rgb_to_hsv(rgb01: Any) -> Any:
    """RGB in [0, 1] (..., 3) -> HSV with H in degrees [0, 360), S and V in [0, 1]."""
    xp = get_xp(rgb01)
    r, g, b = rgb01[..., 0], rgb01[..., 1], rgb01[..., 2]
    v = rgb01.max(axis=-1)
    mn = rgb01.min(axis=-1)
    c = v - mn
    safe_c = xp.where(c > 0, c, 1.0)
    h = xp.where(
        v == r,
        ((g - b) / safe_c) % 6.0,
        xp.where(v == g, (b - r) / safe_c + 2.0, (r - g) / safe_c + 4.0),
    )
    h = xp.where(c > 0, h * 60.0, 0.0)
    s = xp.where(v > 0, c / xp.where(v > 0, v, 1.0), 0.0)
    return xp.stack([h, s, v], axis=-1).astype(xp.float32)


def luma(rgb01: Any) -> Any:
    """Rec.709 luma of gamma-encoded RGB in [0, 1]."""
    return rgb01[..., 0] * _LUMA[0] + rgb01[..., 1] * _LUMA[1] + rgb01[..., 2] * _LUMA[2]


# --- shot-change features -------------------------------------------------------------------------


def content_score(prev_hsv: Any, cur_hsv: Any) -> float:
    """Mean absolute HSV difference between two frames on a 0-255 scale.

    The same quantity as PySceneDetect's ContentDetector (hue on OpenCV's 0-180 scale, S and V on
    0-255, averaged), except that hue is compared on the circle so red does not jump at 0/360, and
    hue/saturation changes of dark pixels are discounted.
    """
    xp = get_xp(cur_hsv)
    # Hue and saturation of near-black pixels are noise (a fade from black would score as a cut),
    # so they count in full only where both frames are brighter than V = 0.25.
    lit = xp.clip(xp.minimum(prev_hsv[..., 2], cur_hsv[..., 2]) * 4.0, 0.0, 1.0)
    dh = xp.abs(cur_hsv[..., 0] - prev_hsv[..., 0])
    dh = xp.minimum(dh, 360.0 - dh) * 0.5 * lit  # degrees -> OpenCV hue units
    ds = xp.abs(cur_hsv[..., 1] - prev_hsv[..., 1]) * 255.0 * lit
    # Value is compared after matching mean brightness, so a fade (a global gain) scores low
    # while a cut between two different pictures of the same brightness is unaffected.
    gain = float(cur_hsv[..., 2].mean()) / max(float(prev_hsv[..., 2].mean()), 1e-3)
    gain = min(max(gain, 0.5), 2.0)
    dv = xp.abs(cur_hsv[..., 2] - gain * prev_hsv[..., 2]) * 255.0
    return float((dh.mean() + ds.mean() + dv.mean()) / 3.0)


def hsv_histogram(hsv: Any, bins: int = HSV_BINS) -> Any:
    """Concatenated, per-channel normalised H, S, V histograms (3 * bins values, each third sums to 1)."""
    xp = get_xp(hsv)
    out = []
    for ch, top in ((0, 360.0), (1, 1.0), (2, 1.0)):
        idx = xp.clip((hsv[..., ch] * (bins / top)).astype(xp.int32), 0, bins - 1)
        h = xp.bincount(idx.ravel(), minlength=bins).astype(xp.float32)
        out.append(h / max(float(h.sum()), 1.0))
    return xp.concatenate(out)


def histogram_distance(h1: Any, h2: Any) -> float:
    """Half the L1 distance between two `hsv_histogram`s, averaged over channels: 0 same, 1 disjoint."""
    xp = get_xp(h1)
    return float(xp.abs(xp.asarray(h1) - xp.asarray(h2)).sum() / 6.0)


def adaptive_cuts(
    scores: Any,
    *,
    window: int = 3,
    ratio: float = 3.0,
    min_score: float = 15.0,
    strong_score: float = 60.0,
    min_scene_len: int = 8,
) -> list[int]:
    """Frame indices whose change score stands out of its neighbourhood: hard-cut candidates.

    `scores[i]` compares frame i with frame i-1 (scores[0] is ignored). A frame is a candidate when
    its score is at least `min_score` and at least `ratio` times the median of the `window` scores on
    either side of it (PySceneDetect's AdaptiveDetector idea: fast motion raises the neighbours too),
    or when it is above `strong_score` outright. Candidates closer than `min_scene_len` to the
    previous accepted cut (or to frame 0) are dropped, keeping the stronger of the two.
    """
    xp = get_xp(scores)
    s = np.asarray(scores.get() if xp is not np else scores, dtype=np.float64)
    n = len(s)
    cuts: list[int] = []
    for i in range(1, n):
        if s[i] < min_score:
            continue
        lo, hi = max(1, i - window), min(n, i + window + 1)
        neigh = np.concatenate([s[lo:i], s[i + 1 : hi]])
        base = float(np.median(neigh)) if len(neigh) else 0.0
        if s[i] < strong_score and s[i] < ratio * max(base, 1.0):
            continue
        if i < min_scene_len:
            continue
        if cuts and i - cuts[-1] < min_scene_len:
            if s[i] > s[cuts[-1]]:
                cuts[-1] = i
            continue
        cuts.append(i)
    return cuts


# --- colour statistics ----------------------------------------------------------------------------


def frame_colour_stats(f: Any, *, levels: int = COLOR_LEVELS, step: int = 1) -> dict[str, Any]:
    """Per-frame sums that pool exactly into scene statistics (all means over the frame's pixels).

    Returns luma mean and mean square (gamma-encoded, [0, 1]), mean linear luminance, mean HSV
    saturation, mean Lab chroma, mean a* and b*, and a sparse RGB histogram of every `step`-th pixel
    quantised to `levels` per channel: {"bins": [...], "counts": [...]}.
    """
    xp = get_xp(f)
    y = luma(f)
    lin = srgb_to_linear(f)
    lin_y = lin[..., 0] * _LUMA[0] + lin[..., 1] * _LUMA[1] + lin[..., 2] * _LUMA[2]
    # Channel max and min as two elementwise steps each: the same values as f.max(axis=-1), without
    # a reduction along a 3-long axis (several times slower in NumPy).
    v = xp.maximum(xp.maximum(f[..., 0], f[..., 1]), f[..., 2])
    lo = xp.minimum(xp.minimum(f[..., 0], f[..., 1]), f[..., 2])
    sat = xp.where(v > 0, (v - lo) / xp.where(v > 0, v, 1.0), 0.0)
    sub = f[::step, ::step]
    lab = rgb_to_lab(sub)
    q = xp.clip((sub * levels).astype(xp.int32), 0, levels - 1)
    idx = ((q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]).ravel()
    counts = xp.bincount(idx, minlength=levels**3)
    nz = xp.nonzero(counts)[0]
    return {
        "luma_mean": float(y.mean()),
        "luma_sq": float((y * y).mean()),
        "lin_luminance": float(lin_y.mean()),
        "saturation": float(sat.mean()),
        "chroma": float(xp.hypot(lab[..., 1], lab[..., 2]).mean()),
        "a_mean": float(lab[..., 1].mean()),
        "b_mean": float(lab[..., 2].mean()),
        "colours": {"bins": [int(i) for i in nz.tolist()], "counts": [int(c) for c in counts[nz].tolist()]},
    }


def histogram_bin_colours(bins: Any, levels: int = COLOR_LEVELS) -> Any:
    """RGB centres (float, 0-255) of flat palette-histogram bin indices."""
    xp = get_xp(bins)
    r = bins // (levels * levels)
    g = (bins // levels) % levels
    b = bins % levels
    width = 256.0 / levels
    return (xp.stack([r, g, b], axis=-1).astype(xp.float32) + 0.5) * width


def weighted_kmeans(points: Any, weights: Any, k: int, *, iters: int = 30) -> tuple[Any, Any]:
    """Deterministic weighted k-means: (centres (k', D), weights (k',)) sorted heaviest first.

    Seeded by weighted farthest-point selection (the heaviest point, then repeatedly the point with
    the largest weight * squared distance to its nearest centre), so the same input always gives the
    same palette. Fewer than `k` distinct points give fewer centres; weights sum to 1.
    """
    xp = get_xp(points)
    pts = points.astype(xp.float64)
    w = weights.astype(xp.float64)
    k = min(k, int(pts.shape[0]))
    centres = [pts[int(xp.argmax(w))]]
    d2 = ((pts - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        score = w * d2
        j = int(xp.argmax(score))
        if float(score[j]) <= 0:
            break
        centres.append(pts[j])
        d2 = xp.minimum(d2, ((pts - pts[j]) ** 2).sum(axis=1))
    c = xp.stack(centres)
    for _ in range(iters):
        dist = ((pts[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        lab = xp.argmin(dist, axis=1)
        new = xp.zeros_like(c)
        mass = xp.zeros(c.shape[0], dtype=xp.float64)
        for j in range(c.shape[0]):
            m = lab == j
            mass[j] = w[m].sum()
            new[j] = (pts[m] * w[m, None]).sum(axis=0) / mass[j] if float(mass[j]) > 0 else c[j]
        if bool(xp.allclose(new, c, atol=1e-4)):
            c = new
            break
        c = new
    dist = ((pts[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    lab = xp.argmin(dist, axis=1)
    mass = xp.stack([w[lab == j].sum() for j in range(c.shape[0])])
    keep = mass > 0
    c, mass = c[keep], mass[keep]
    order = xp.argsort(-mass, kind="stable")
    return c[order], mass[order] / mass.sum()


# --- global motion --------------------------------------------------------------------------------


def downscale(img: Any, factor: int) -> Any:
    """Box-filter downscale of an (H, W) or (H, W, C) array by an integer factor, as float32."""
    xp = get_xp(img)
    if factor == 1:
        return img.astype(xp.float32)
    h, w = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
    shape = (h // factor, factor, w // factor, factor) + tuple(img.shape[2:])
    return img[:h, :w].reshape(shape).mean(axis=(1, 3), dtype=xp.float32)


def phase_correlate(prev: Any, cur: Any) -> tuple[float, float, float]:
    """Translation d (pixels) with cur(p) ~ prev(p - d), and the normalised peak height (confidence)."""
    xp = get_xp(cur)
    h, w = cur.shape
    win = xp.outer(xp.hanning(h), xp.hanning(w)).astype(xp.float32)
    fa = xp.fft.rfft2((prev - prev.mean()) * win)
    fb = xp.fft.rfft2((cur - cur.mean()) * win)
    cross = fb * xp.conj(fa)
    cross /= xp.maximum(xp.abs(cross), 1e-9)
    corr = xp.fft.irfft2(cross, s=(h, w))
    peak = int(xp.argmax(corr))
    py, px = divmod(peak, w)

    def sub(c_m: float, c_0: float, c_p: float) -> float:
        den = c_m - 2 * c_0 + c_p
        return 0.0 if abs(den) < 1e-12 else 0.5 * (c_m - c_p) / den

    c0 = float(corr[py, px])
    dy = py + sub(float(corr[(py - 1) % h, px]), c0, float(corr[(py + 1) % h, px]))
    dx = px + sub(float(corr[py, (px - 1) % w]), c0, float(corr[py, (px + 1) % w]))
    if dy > h / 2:
        dy -= h
    if dx > w / 2:
        dx -= w
    return float(dx), float(dy), c0


def _bilinear(img: Any, x: Any, y: Any) -> tuple[Any, Any]:
    """Sample img at float pixel coordinates; returns (values, inside-mask).

    On the CPU, OpenCV's remap does the sampling (about 5x faster than four gathers); it rounds the
    coordinates to 1/32 pixel (cv2.INTER_TAB_SIZE), far below what the motion fit resolves."""
    xp = get_xp(img)
    h, w = img.shape
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    if xp is np:
        import cv2

        v = cv2.remap(
            np.ascontiguousarray(img, dtype=np.float32),
            np.ascontiguousarray(x, dtype=np.float32),
            np.ascontiguousarray(y, dtype=np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return v, inside
    x = xp.clip(x, 0, w - 1.001)
    y = xp.clip(y, 0, h - 1.001)
    x0 = xp.floor(x).astype(xp.int32)
    y0 = xp.floor(y).astype(xp.int32)
    fx = x - x0
    fy = y - y0
    v = (
        img[y0, x0] * (1 - fx) * (1 - fy)
        + img[y0, x0 + 1] * fx * (1 - fy)
        + img[y0 + 1, x0] * (1 - fx) * fy
        + img[y0 + 1, x0 + 1] * fx * fy
    )
    return v, inside


def _downsample2(img: Any) -> Any:
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    return img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


_GRIDS: dict[tuple[Any, int, int], tuple[Any, Any, Any]] = {}


def _centred_grid(xp: Any, h: int, w: int) -> tuple[Any, Any, Any]:
    """(X, Y, border) of an h x w frame: pixel coordinates from its centre, and the mask of pixels at
    least a sixteenth of the short side from its edges. Made once per size and array module."""
    key = (xp, h, w)
    if key not in _GRIDS:
        ys, xs = xp.mgrid[0:h, 0:w].astype(xp.float32)
        margin = max(2, min(h, w) // 16)
        border = (xs >= margin) & (xs < w - margin) & (ys >= margin) & (ys < h - margin)
        if len(_GRIDS) > 16:
            _GRIDS.clear()
        _GRIDS[key] = (xs - (w - 1) / 2.0, ys - (h - 1) / 2.0, border)
    return _GRIDS[key]


def _refine_similarity(prev: Any, cur: Any, p: list[float], iters: int) -> list[float]:
    """Gauss-Newton on [a, b, tx, ty] (see module docstring) minimising sum (prev(W(p)) - cur(p))^2."""
    xp = get_xp(cur)
    h, w = cur.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    X, Y, border = _centred_grid(xp, h, w)
    a, b, tx, ty = p
    for _ in range(iters):
        wx = (1 + a) * X - b * Y + tx + cx
        wy = b * X + (1 + a) * Y + ty + cy
        warped, inside = _bilinear(prev, wx, wy)
        # Gradient of the warped image rather than the warped gradient: one resampling per step
        # instead of three, and equal to first order for the small per-frame scales seen here.
        gy, gx = xp.gradient(warped)
        m = inside & border
        if int(m.sum()) < 16:
            break
        # Pixels outside the mask are weighted 0 rather than gathered out: the same normal
        # equations (their terms are zero), without five boolean gathers a step.
        mf = m.astype(xp.float32)
        gxm, gym = gx * mf, gy * mf
        J = xp.stack([gxm * X + gym * Y, gym * X - gxm * Y, gxm, gym]).reshape(4, -1).astype(xp.float64)
        r = ((warped - cur) * mf).ravel().astype(xp.float64)
        H = J @ J.T + xp.eye(4) * 1e-6
        step = xp.linalg.solve(H, -(J @ r))
        da, db, dtx, dty = (float(v) for v in step)
        a, b, tx, ty = a + da, b + db, tx + dtx, ty + dty
        if abs(dtx) < 1e-3 and abs(dty) < 1e-3 and abs(da) < 1e-5 and abs(db) < 1e-5:
            break
    return [a, b, tx, ty]


def estimate_motion(prev: Any, cur: Any, *, levels: int = 2, iters: int = 6) -> list[float]:
    """Camera motion from `prev` to `cur` (grey float frames): [dx, dy, a, b] (see module docstring).

    dx, dy are fractions of the frame width/height. Phase correlation gives the translation (robust
    to large pans), then a coarse-to-fine Gauss-Newton fit of a similarity warp adds zoom and roll.
    """
    xp = get_xp(cur)
    h, w = cur.shape
    sp, sc = float(prev.std()), float(cur.std())
    if min(sp, sc) < 0.01:
        return [0.0, 0.0, 0.0, 0.0]  # no texture to track (black, flat or title frames)
    # Gain/offset normalised, so fades and exposure changes do not read as motion.
    prev = (prev - prev.mean()) / sp
    cur = (cur - cur.mean()) / sc
    ddx, ddy, _ = phase_correlate(prev, cur)
    pyr = [(prev, cur)]
    for _ in range(levels - 1):
        p0, c0 = pyr[-1]
        if min(p0.shape) < 24:
            break
        pyr.append((_downsample2(p0), _downsample2(c0)))
    # cur(p) = prev(p - d) means W(p) = p - d.
    scale = 2 ** (len(pyr) - 1)
    params = [0.0, 0.0, -ddx / scale, -ddy / scale]
    for lvl in range(len(pyr) - 1, -1, -1):
        p_img, c_img = pyr[lvl]
        params = _refine_similarity(p_img, c_img, params, iters)
        if lvl:
            params[2] *= 2.0
            params[3] *= 2.0
    a, b, tx, ty = params
    if not all(math.isfinite(v) for v in params) or abs(a) > 0.5 or abs(b) > 0.5:
        a, b, tx, ty = 0.0, 0.0, -ddx, -ddy
    del xp
    return [tx / w, ty / h, a, b]


def accumulate_trajectory(deltas: list[list[float]], aspect: float) -> list[list[float]]:
    """Cumulative camera pose [x, y, s, r] per frame from per-frame deltas (first delta is ignored).

    x, y: camera displacement in frame widths/heights relative to the first frame (right, down
    positive); s: zoom factor relative to the first frame (>1 zoomed in); r: roll in degrees.
    `aspect` is width/height, needed because deltas are normalised per axis.
    """
    T = np.eye(3)
    out = [[0.0, 0.0, 1.0, 0.0]]
    for dx, dy, a, b in deltas[1:]:
        # Per-frame warp in units of frame height on both axes, so rotation stays a rotation.
        Wk = np.array([[1 + a, -b, dx * aspect], [b, 1 + a, dy], [0, 0, 1]])
        T = T @ Wk
        lin = T[:2, :2]
        s = 1.0 / math.sqrt(max(abs(np.linalg.det(lin)), 1e-12))
        r = math.degrees(math.atan2(T[1, 0], T[0, 0]))
        out.append([float(T[0, 2] / aspect), float(T[1, 2]), float(s), float(r)])
    return out


def classify_camera(
    trajectory: list[list[float]], duration_s: float, *, static_tol: float = 0.02
) -> tuple[str, float]:
    """(label, speed) for a scene's trajectory.

    Speed is frame widths (pans) or heights (tilts) per second of net displacement, or the natural
    log of the zoom factor per second for zooms. A scene whose net move is under `static_tol` is
    static unless its path wanders (handheld); one whose path is much longer than its net move is
    handheld.
    """
    t = np.asarray(trajectory, dtype=np.float64)
    if len(t) < 2 or duration_s <= 0:
        return "static", 0.0
    net_x, net_y = t[-1, 0], t[-1, 1]
    net_z = math.log(max(t[-1, 2], 1e-6))
    steps = np.diff(t[:, :2], axis=0)
    path = float(np.hypot(steps[:, 0], steps[:, 1]).sum())
    net = math.hypot(net_x, net_y)
    # Jitter: how far the path strays from the straight line between its ends.
    line = np.linspace(0, 1, len(t))[:, None] * t[-1, :2][None, :]
    wander = float(np.sqrt(((t[:, :2] - line) ** 2).sum(axis=1).mean()))
    moves = {"pan": abs(net_x), "tilt": abs(net_y), "zoom": abs(net_z)}
    kind = max(moves, key=lambda k: moves[k])
    if max(moves.values()) < static_tol:
        if wander > 0.01 and path > 4 * static_tol:
            return "handheld", path / duration_s
        return "static", 0.0
    if kind != "zoom" and path > 3.0 * max(net, 1e-9) and wander > 0.01:
        return "handheld", path / duration_s
    speed = float(moves[kind]) / duration_s
    if kind == "pan":
        return ("pan_right" if net_x > 0 else "pan_left"), speed
    if kind == "tilt":
        return ("tilt_down" if net_y > 0 else "tilt_up"), speed
    return ("zoom_in" if net_z > 0 else "zoom_out"), speed


def lab_to_rgb(lab: Any) -> Any:
    """CIE L*a*b* (D65) (..., 3) -> sRGB in [0, 1] (clipped)."""
    xp = get_xp(lab)
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0
    f = xp.stack([fx, fy, fz], axis=-1)
    eps = 216.0 / 24389.0
    kappa = 24389.0 / 27.0
    xyz = xp.where(f**3 > eps, f**3, (116.0 * f - 16.0) / kappa) * xp.asarray(_WHITE_D65)
    lin = xyz @ xp.asarray(np.linalg.inv(_RGB_TO_XYZ).T.astype(np.float32))
    lin = xp.clip(lin, 0.0, 1.0)
    return xp.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055).astype(xp.float32)


def palette_from_histogram(
    bins: Any, counts: Any, k: int = 5, *, levels: int = COLOR_LEVELS
) -> list[dict[str, Any]]:
    """Dominant colours of a pooled RGB histogram: k-means in Lab, heaviest first.

    Returns [{"rgb": [r, g, b], "lab": [L, a, b], "weight": w}] with weights summing to 1; each
    colour is the weighted mean (in Lab) of the histogram bins in its cluster.
    """
    xp = get_xp(bins)
    if int(bins.shape[0]) == 0:
        return []
    rgb = histogram_bin_colours(bins, levels) / 255.0
    lab = rgb_to_lab(rgb).astype(xp.float64)
    centres, weights = weighted_kmeans(lab, counts.astype(xp.float64), k)
    rgb_c = lab_to_rgb(centres.astype(xp.float32))
    out = []
    for c_lab, c_rgb, w in zip(centres.tolist(), rgb_c.tolist(), weights.tolist(), strict=True):
        out.append(
            {
                "rgb": [int(round(v * 255)) for v in c_rgb],
                "lab": [round(float(v), 2) for v in c_lab],
                "weight": float(w),
            }
        )
    # Rounding must not break "weights sum to 1".
    total = sum(p["weight"] for p in out)
    for p in out:
        p["weight"] = round(p["weight"] / total, 6)
    out[0]["weight"] = round(1.0 - sum(p["weight"] for p in out[1:]), 6)
    return out


# --- texture: sharpness and grain -------------------------------------------------------------------


def sharpness_and_noise(grey: Any) -> tuple[float, float]:
    """(sharpness, noise) of a grey float frame in [0, 1].

    Sharpness is the RMS of the 4-neighbour Laplacian (0-1 scale): fine detail and hard edges raise
    it, blur lowers it. Noise is Immerkaer's estimate of the standard deviation of additive noise
    (grain), from the mask [[1,-2,1],[-2,4,-2],[1,-2,1]] which cancels any locally linear picture:
    sigma = sqrt(pi/2) / (6 (W-2) (H-2)) * sum |I * mask|. Both are in [0, 1] pixel-value units.
    """
    xp = get_xp(grey)
    g = grey.astype(xp.float32)
    c = g[1:-1, 1:-1]
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * c
    m = (
        g[:-2, :-2] - 2 * g[:-2, 1:-1] + g[:-2, 2:]
        - 2 * g[1:-1, :-2] + 4 * c - 2 * g[1:-1, 2:]
        + g[2:, :-2] - 2 * g[2:, 1:-1] + g[2:, 2:]
    )  # fmt: skip
    h, w = g.shape
    noise = math.sqrt(math.pi / 2.0) * float(xp.abs(m).sum()) / (6.0 * (w - 2) * (h - 2))
    return float(xp.sqrt((lap * lap).mean())), noise
