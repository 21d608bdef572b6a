"""Effects on pictures: colour basics, curves, vignette, film grain, chromatic aberration, lens flare,
particles, depth of field, motion blur, stabilization and retiming helpers.

Pure `xp` functions (numpy or cupy) on HxWx3 sRGB pictures, uint8 or float32 in [0, 1]; a function
returns the dtype it was given. Randomness comes from `seeded` (a hash of seed, frame index and
position), so a frame renders identically on every node and device. Effects that look across frames
(motion blur, stabilization, retiming) take the neighbouring frames or measurements as arguments:
which frames those are is the node's business (`lookalike.nodes.edit` reads lead/trail frames
across chunk boundaries so that chunked renders equal whole ones).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from lookalike.kernels import seeded
from lookalike.kernels.compose import resize, warp_affine
from lookalike.kernels.features import downscale, phase_correlate
from lookalike.kernels.filters import blur, smear
from lookalike.kernels.grade import (
    adjust_contrast,
    adjust_exposure,
    adjust_saturation,
    linear_to_srgb,
    luma,
    srgb_to_linear,
    to_float,
)
from lookalike.kernels.params import ParameterError, choice, integer, number
from lookalike.kernels.xp import get_xp


def _like(out: Any, original: Any) -> Any:
    xp = get_xp(original)
    if original.dtype == xp.uint8:
        return xp.clip(out * xp.float32(255.0) + xp.float32(0.5), 0, 255).astype(xp.uint8)
    return out.astype(xp.float32, copy=False)


def _check_picture(img: Any) -> None:
    if img.ndim != 3 or img.shape[2] != 3:
        raise ParameterError("image", f"must be HxWx3 RGB, got shape {tuple(img.shape)}")


# ---------------------------------------------------------------- colour basics


def exposure(img: Any, stops: float) -> Any:
    """Multiply linear light by 2**stops."""
    return adjust_exposure(img, number("exposure.stops", stops, -8.0, 8.0))


def contrast(img: Any, factor: float, pivot: float = 0.5) -> Any:
    """Scale luma about `pivot` (see grade.adjust_contrast)."""
    return adjust_contrast(
        img, number("contrast.factor", factor, 0.0, 10.0), number("contrast.pivot", pivot, 0.0, 1.0)
    )


def saturation(img: Any, factor: float) -> Any:
    """Scale each pixel's distance from its luma (0 = greyscale)."""
    return adjust_saturation(img, number("saturation.factor", factor, 0.0, 10.0))


def white_balance(img: Any, temperature: float = 0.0, tint: float = 0.0) -> Any:
    """Per-channel gains in linear light: temperature > 0 warmer (red up, blue down), tint > 0 more
    magenta (green down). Each in [-1, 1]; 1 is a gain of 2**0.5 on the channel it raises."""
    t = number("white_balance.temperature", temperature, -1.0, 1.0)
    g = number("white_balance.tint", tint, -1.0, 1.0)
    xp = get_xp(img)
    gains = xp.asarray([2.0 ** (0.5 * t), 2.0 ** (-0.5 * g), 2.0 ** (-0.5 * t)], dtype=xp.float32)
    return _like(linear_to_srgb(srgb_to_linear(img) * gains), img)


def curve_table(points: Sequence[Sequence[float]], n: int = 256) -> np.ndarray:
    """A monotone cubic (Fritsch-Carlson) through control points [[x, y], ...] in [0, 1], sampled
    at n evenly spaced inputs. Points must have increasing x; the curve is flat beyond the ends."""
    pts = [(number("curves.points", p[0], 0.0, 1.0), number("curves.points", p[1], 0.0, 1.0)) for p in points]
    if len(pts) < 2:
        raise ParameterError("curves.points", f"needs at least 2 [x, y] points, got {len(pts)}")
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    if np.any(np.diff(x) <= 0):
        raise ParameterError("curves.points", f"x must increase from point to point, got {x.tolist()}")
    d = np.diff(y) / np.diff(x)
    m = np.empty_like(y)
    m[0], m[-1] = d[0], d[-1]
    m[1:-1] = np.where(
        d[:-1] * d[1:] > 0,
        2.0 / (1.0 / np.where(d[:-1] == 0, 1, d[:-1]) + 1.0 / np.where(d[1:] == 0, 1, d[1:])),
        0.0,
    )
    xs = np.linspace(0.0, 1.0, n)
    k = np.clip(np.searchsorted(x, xs, side="right") - 1, 0, len(x) - 2)
    h = x[k + 1] - x[k]
    s = np.clip((xs - x[k]) / h, 0.0, 1.0)
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    out = h00 * y[k] + h10 * h * m[k] + h01 * y[k + 1] + h11 * h * m[k + 1]
    out = np.where(xs < x[0], y[0], np.where(xs > x[-1], y[-1], out))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def curves(img: Any, points: Sequence[Sequence[float]], channel: str = "rgb") -> Any:
    """Tone curve on all channels ("rgb") or one ("r", "g", "b"). uint8 goes through a 256-entry table."""
    choice("curves.channel", channel, ("rgb", "r", "g", "b"))
    xp = get_xp(img)
    chans = [0, 1, 2] if channel == "rgb" else ["rgb".index(channel)]
    if img.dtype == xp.uint8:
        table = xp.asarray(np.clip(np.floor(curve_table(points) * 255.0 + 0.5), 0, 255).astype(np.uint8))
        out = img.copy()
        for c in chans:
            out[..., c] = table[img[..., c]]
        return out
    table = xp.asarray(curve_table(points, 4096))
    grid = xp.linspace(0.0, 1.0, 4096, dtype=xp.float32)
    out = to_float(img).copy()
    for c in chans:
        out[..., c] = xp.interp(out[..., c], grid, table)
    return out


# ---------------------------------------------------------------- lens look


def vignette(img: Any, strength: float = 0.3, radius: float = 0.75, softness: float = 0.5) -> Any:
    """Darken toward the corners: gain 1 inside `radius` (fraction of the half diagonal), falling by
    `strength` over `softness` (smoothstep)."""
    s = number("vignette.strength", strength, 0.0, 1.0)
    r0 = number("vignette.radius", radius, 0.0, 2.0)
    soft = number("vignette.softness", softness, 0.01, 2.0)
    xp = get_xp(img)
    h, w = img.shape[:2]
    y = (xp.arange(h, dtype=xp.float32) - (h - 1) / 2.0)[:, None]
    x = (xp.arange(w, dtype=xp.float32) - (w - 1) / 2.0)[None, :]
    r = xp.sqrt(x * x + y * y) / xp.float32(math.hypot(w / 2.0, h / 2.0))
    u = xp.clip((r - r0) / soft, 0.0, 1.0)
    gain = 1.0 - s * u * u * (3.0 - 2.0 * u)
    return _like(to_float(img) * gain[..., None], img)


def chromatic_aberration(img: Any, shift_px: float = 2.0) -> Any:
    """Lateral colour fringing: red scaled outward and blue inward so that each moves `shift_px`
    pixels at the corners (green stays)."""
    s = number("chromatic_aberration.shift_px", shift_px, -50.0, 50.0)
    _check_picture(img)
    xp = get_xp(img)
    h, w = img.shape[:2]
    if s == 0:
        return img.copy()
    half_diag = math.hypot(w / 2.0, h / 2.0)
    out = img.copy()
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    for c, k in ((0, 1.0 + s / half_diag), (2, 1.0 - s / half_diag)):
        m = np.array([[1.0 / k, 0.0, cx - cx / k], [0.0, 1.0 / k, cy - cy / k]])
        chan = xp.ascontiguousarray(img[..., c])
        out[..., c] = warp_affine(chan[..., None], m, h, w).reshape(h, w)
    return out


def lens_flare(
    img: Any,
    position: Sequence[float] = (0.8, 0.2),
    intensity: float = 0.6,
    size: float = 0.08,
    colour: Sequence[float] = (1.0, 0.85, 0.6),
) -> Any:
    """A flare from a light at `position` (fractions of width, height): a glow, an anamorphic
    streak and ghosts mirrored through the centre, screen-blended over the picture."""
    px, py = (number("lens_flare.position", v, -1.0, 2.0) for v in position)
    a = number("lens_flare.intensity", intensity, 0.0, 4.0)
    sz = number("lens_flare.size", size, 0.005, 1.0)
    col = [number("lens_flare.colour", v, 0.0, 1.0) for v in colour]
    _check_picture(img)
    xp = get_xp(img)
    h, w = img.shape[:2]
    d = math.hypot(w, h)
    x = (xp.arange(w, dtype=xp.float32) + 0.5)[None, :]
    y = (xp.arange(h, dtype=xp.float32) + 0.5)[:, None]
    lx, ly = px * w, py * h
    glow_r = sz * d
    dx2 = (x - lx) ** 2
    dy2 = (y - ly) ** 2
    layer = xp.exp(-(dx2 + dy2) / xp.float32(2.0 * glow_r**2))
    layer = layer + 0.35 * xp.exp(
        -dx2 / xp.float32(2.0 * (6.0 * glow_r) ** 2) - dy2 / xp.float32(2.0 * (0.08 * glow_r) ** 2)
    )
    cx, cy = w / 2.0, h / 2.0
    for pos, rad, gain in ((-0.3, 0.5, 0.25), (-0.7, 0.9, 0.15), (-1.1, 0.35, 0.3), (0.45, 0.25, 0.2)):
        gx, gy = cx + (lx - cx) * pos, cy + (ly - cy) * pos
        r = rad * glow_r
        dist = xp.sqrt((x - gx) ** 2 + (y - gy) ** 2)
        layer = layer + gain * xp.clip((r - dist) / xp.float32(0.15 * r + 1.0), 0.0, 1.0)
    flare = xp.clip(layer * a, 0.0, 1.0)[..., None] * xp.asarray(col, dtype=xp.float32)
    base = to_float(img)
    return _like(1.0 - (1.0 - base) * (1.0 - flare), img)


# ---------------------------------------------------------------- film grain


@dataclass(frozen=True)
class GrainPool:
    """A strip of seeded noise, two frames long, that each frame takes a window of.

    Frame k's grain is the frame-sized window of the strip starting at an offset hashed from
    (seed, k): a view, so adding grain is one pass over the picture. Two frames' grains are
    displaced copies of one white-noise strip, by a random offset of up to a frame, which is
    uncorrelated pixel by pixel (tested), so the grain is new every frame. uint8 pictures use the
    strip rounded to whole code values, split into its positive and negative parts: a saturating
    add of one then a saturating subtract of the other is exactly clip(img + noise, 0, 255)
    (only one of the two is non-zero at any pixel), two of the cheapest passes there are.
    """

    frame_len: int
    sigma: float
    seed: int
    pos: Any  # uint8, max(round(255 sigma z), 0)
    neg: Any  # uint8, max(-round(255 sigma z), 0)
    values: Any = None  # float32 sigma z, for float pictures only


def grain_pool(xp: Any, seed: int, frame_len: int, sigma: float, *, floats: bool = False) -> GrainPool:
    """The noise strip for one (seed, sigma) and frame length (H * W * channels)."""
    s = number("grain.sigma", sigma, 0.0, 0.25)
    v = seeded.normal(xp, seeded.key(seed, "grain-pool"), 2 * frame_len) * xp.float32(s)
    q = xp.clip(xp.floor(v * xp.float32(255.0) + xp.float32(0.5)), -255, 255)
    pos = xp.maximum(q, 0).astype(xp.uint8)
    neg = xp.maximum(-q, 0).astype(xp.uint8)
    return GrainPool(frame_len, s, seed, pos, neg, v if floats else None)


def grain_offset(seed: int, frame: int, frame_len: int) -> int:
    """Where frame `frame`'s window starts in the strip: in [0, frame_len]."""
    return int(seeded.integers(np, seeded.key(seed, frame, "grain-offset"), 1, frame_len + 1)[0])


def film_grain(
    img: Any, frame: int, seed: int, sigma: float = 0.04, *, mono: bool = False, pool: GrainPool | None = None
) -> Any:
    """Add zero-mean grain of standard deviation `sigma` (in 0..1 units), new every frame.

    Deterministic in (seed, frame): the same frame index gets the same grain on every node and
    device. `mono` adds one value to all three channels (luma grain); otherwise each channel gets
    its own. Pass a `grain_pool(...)` built once per clip so the strip is not rebuilt each frame.
    """
    _check_picture(img)
    xp = get_xp(img)
    h, w = img.shape[:2]
    n = h * w * (1 if mono else 3)
    floats = img.dtype != xp.uint8
    if (
        pool is None
        or pool.frame_len != n
        or pool.seed != seed
        or pool.sigma != float(sigma)
        or (floats and pool.values is None)
    ):
        pool = grain_pool(xp, seed, n, sigma, floats=floats)
    if pool.sigma == 0:
        return img.copy()
    o = grain_offset(seed, frame, n)
    shape = (h, w, 1) if mono else (h, w, 3)
    if not floats:
        pos = pool.pos[o : o + n].reshape(shape)
        neg = pool.neg[o : o + n].reshape(shape)
        if xp is np:
            import cv2

            if mono:
                pos, neg = np.repeat(pos, 3, axis=2), np.repeat(neg, 3, axis=2)
            out = cv2.add(np.ascontiguousarray(img), pos)
            return cv2.subtract(out, neg, dst=out)
        return xp.clip(img.astype(xp.int16) + pos.astype(xp.int16) - neg.astype(xp.int16), 0, 255).astype(
            xp.uint8
        )
    noise = pool.values[o : o + n].reshape(shape)
    return xp.clip(to_float(img) + noise, 0.0, 1.0).astype(xp.float32)


# ---------------------------------------------------------------- particles

PARTICLE_KINDS = ("dust", "snow", "sparks")


def particles(
    img: Any,
    frame: int,
    seed: int,
    kind: str = "dust",
    count: int = 150,
    size: float = 2.0,
    speed: float = 0.002,
    opacity: float = 0.6,
) -> Any:
    """Dust, snow or sparks over the picture. Each particle's start, drift and size are hashed from
    (seed, particle), its position at `frame` is a closed-form function of the frame index, so any
    frame renders alone. `size` in pixels (blob sigma), `speed` in frame heights per frame."""
    choice("particles.kind", kind, PARTICLE_KINDS)
    n = integer("particles.count", count, 0, 20000)
    sz = number("particles.size", size, 0.3, 50.0)
    sp = number("particles.speed", speed, 0.0, 0.2)
    op = number("particles.opacity", opacity, 0.0, 1.0)
    _check_picture(img)
    xp = get_xp(img)
    h, w = img.shape[:2]
    if n == 0 or op == 0:
        return img.copy()
    u = seeded.uniform(np, seeded.key(seed, kind, "particles"), n * 6).reshape(n, 6).astype(np.float64)
    x0, y0, s_rel, bright, phase, drift = u.T
    k = float(frame)
    if kind == "snow":
        vy = sp * (0.5 + s_rel)
        vx = sp * 0.3 * (drift - 0.5)
        xs = x0 + vx * k + 0.01 * np.sin(phase * 2 * np.pi + 0.05 * k)
        ys = y0 + vy * k
        colour = (1.0, 1.0, 1.0)
    elif kind == "sparks":
        vy = -sp * (1.0 + 2.0 * s_rel)
        vx = sp * 1.5 * (drift - 0.5)
        xs = x0 + vx * k
        ys = y0 + vy * k
        colour = (1.0, 0.6, 0.2)
        bright = bright * (0.5 + 0.5 * np.sin(phase * 2 * np.pi + 0.4 * k) ** 2)  # flicker
    else:
        vx = sp * 0.5 * (drift - 0.5)
        vy = sp * 0.5 * (phase - 0.5)
        xs = x0 + vx * k + 0.004 * np.sin(phase * 2 * np.pi + 0.03 * k)
        ys = y0 + vy * k
        colour = (1.0, 0.95, 0.85)
    xs = np.mod(xs, 1.0) * w
    ys = np.mod(ys, 1.0) * h
    sig = sz * (0.5 + s_rel)
    layer = xp.zeros((h, w), xp.float32)
    for i in range(n):
        r = int(math.ceil(3.0 * sig[i]))
        xa, xb = max(0, int(xs[i]) - r), min(w, int(xs[i]) + r + 1)
        ya, yb = max(0, int(ys[i]) - r), min(h, int(ys[i]) + r + 1)
        if xa >= xb or ya >= yb:
            continue
        gx = xp.arange(xa, xb, dtype=xp.float32) + 0.5 - xp.float32(xs[i])
        gy = xp.arange(ya, yb, dtype=xp.float32) + 0.5 - xp.float32(ys[i])
        if kind == "sparks":
            # Streaks: stretched along the direction of travel.
            ang = math.atan2(vy[i], vx[i])
            ca, sa = math.cos(ang), math.sin(ang)
            along = gx[None, :] * ca + gy[:, None] * sa
            across = -gx[None, :] * sa + gy[:, None] * ca
            blob = xp.exp(
                -(along**2) / xp.float32(2 * (3 * sig[i]) ** 2) - across**2 / xp.float32(2 * sig[i] ** 2)
            )
        else:
            blob = xp.exp(-(gx[None, :] ** 2 + gy[:, None] ** 2) / xp.float32(2 * sig[i] ** 2))
        layer[ya:yb, xa:xb] = xp.maximum(layer[ya:yb, xa:xb], blob * xp.float32(bright[i]))
    over = (layer * xp.float32(op))[..., None] * xp.asarray(colour, dtype=xp.float32)
    base = to_float(img)
    return _like(1.0 - (1.0 - base) * (1.0 - over), img)


# ---------------------------------------------------------------- depth of field


def saliency(img: Any, *, width: int = 64) -> Any:
    """A saliency map in [0, 1] (spectral residual, Hou & Zhang 2007) at the picture's size."""
    xp = get_xp(img)
    h, w = img.shape[:2]
    f = max(1, w // width)
    g = downscale(luma(img), f)
    spec = xp.fft.fft2(g)
    logamp = xp.log(xp.abs(spec) + 1e-6)
    phase = xp.angle(spec)
    resid = logamp - _box3(logamp)
    sal = xp.abs(xp.fft.ifft2(xp.exp(resid + 1j * phase))) ** 2
    sal = blur(sal.astype(xp.float32), max(1.0, g.shape[1] / 32.0))
    sal = sal - sal.min()
    sal = sal / xp.maximum(sal.max(), xp.float32(1e-12))
    return xp.clip(resize(sal[..., None], h, w)[..., 0], 0.0, 1.0)


def _box3(a: Any) -> Any:
    xp = get_xp(a)
    p = xp.pad(a, 1, mode="edge")
    return sum(p[i : i + a.shape[0], j : j + a.shape[1]] for i in range(3) for j in range(3)) / 9.0


def _soft(img: Any, sigma: float) -> Any:
    """`blur` at a reduced size for wide sigmas (a 1080p frame at sigma 6 blurs 3x3 fewer pixels),
    then resized back: the same look within a grey level, a fraction of the cost."""
    h, w = img.shape[:2]
    f = max(1, int(sigma // 2))
    if f == 1 or min(h, w) < 8 * f:
        return blur(img, sigma)
    small = downscale(img, f)
    return resize(blur(small, sigma / f), h, w)


def radial_depth(h: int, w: int, focus: Sequence[float] = (0.5, 0.5), xp: Any = np) -> Any:
    """Distance from a focus point (fractions of width, height), normalised to 1 at the farthest corner."""
    fx, fy = (number("depth_of_field.focus", v, 0.0, 1.0) for v in focus)
    y = (xp.arange(h, dtype=xp.float32) + 0.5)[:, None] / h - fy
    x = ((xp.arange(w, dtype=xp.float32) + 0.5)[None, :] / w - fx) * (w / h)
    d = xp.sqrt(x * x + y * y)
    return d / xp.maximum(d.max(), xp.float32(1e-6))


def depth_of_field(
    img: Any, depth: Any, focus_depth: float = 0.0, max_sigma: float = 6.0, levels: int = 4
) -> Any:
    """Blur each pixel by how far its depth (HxW, 0..1) is from `focus_depth`: sigma grows linearly
    to `max_sigma` pixels at distance 1, interpolated between `levels` precomputed blurs."""
    fd = number("depth_of_field.focus_depth", focus_depth, 0.0, 1.0)
    ms = number("depth_of_field.max_sigma", max_sigma, 0.0, 64.0)
    lv = integer("depth_of_field.levels", levels, 2, 8)
    _check_picture(img)
    xp = get_xp(img)
    if depth.shape != img.shape[:2]:
        raise ParameterError(
            "depth_of_field.depth", f"map {tuple(depth.shape)} must match the picture {tuple(img.shape[:2])}"
        )
    base = to_float(img)
    if ms == 0:
        return img.copy()
    amount = xp.clip(xp.abs(depth.astype(xp.float32) - fd), 0.0, 1.0) * (lv - 1)
    out = xp.zeros_like(base)
    prev = base
    for k in range(1, lv):
        cur = _soft(base, ms * k / (lv - 1))
        wgt = xp.clip(1.0 - xp.abs(amount - (k - 1)), 0.0, 1.0)[..., None]
        out += prev * wgt
        prev = cur
    out += prev * xp.clip(1.0 - xp.abs(amount - (lv - 1)), 0.0, 1.0)[..., None]
    return _like(out, img)


# ---------------------------------------------------------------- motion


def global_shift(prev: Any, cur: Any, *, width: int = 320) -> tuple[float, float]:
    """Content translation (dx, dy) in pixels from `prev` to `cur` (cur(p) ~ prev(p - d))."""
    f = max(1, prev.shape[1] // width)
    a = downscale(luma(prev), f)
    b = downscale(luma(cur), f)
    if float(a.std()) < 1e-3 or float(b.std()) < 1e-3:
        return 0.0, 0.0  # nothing to track (flat, black or title frames)
    dx, dy, _ = phase_correlate(a, b)
    return dx * f, dy * f


def motion_blur(img: Any, velocity: tuple[float, float], shutter: float = 0.5) -> Any:
    """Blur along the content's motion: `velocity` in pixels per frame, `shutter` the fraction of a
    frame the virtual shutter is open (0.5 = a 180-degree shutter)."""
    sh = number("motion_blur.shutter", shutter, 0.0, 2.0)
    vx, vy = (number("motion_blur.velocity", v) for v in velocity)
    return smear(img, vx * sh, vy * sh)


def translate(img: Any, dx: float, dy: float, zoom: float = 1.0) -> Any:
    """Move content by (dx, dy) pixels and zoom it by `zoom` about the centre (edges replicated)."""
    h, w = img.shape[:2]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    z = number("translate.zoom", zoom, 0.1, 10.0)
    # out(p) = img(src): p = c + z (src + d - c)  =>  src = c + (p - c) / z - d
    m = np.array([[1.0 / z, 0.0, cx - cx / z - dx], [0.0, 1.0 / z, cy - cy / z - dy]])
    return warp_affine(img, m, h, w)


def smooth_correction(
    positions: Sequence[tuple[float, float]], centre: int, radius: int
) -> tuple[float, float]:
    """How far to move frame `centre` so that it sits on the smoothed path.

    `positions` are content positions relative to any origin, indexed like the frames available
    around `centre` (the clip's ends clip the window); the smoothed position is a triangle-weighted
    mean over [centre - radius, centre + radius]. Only differences to `positions[centre]` enter, so
    the origin (and so where a chunk starts) does not matter.
    """
    lo, hi = max(0, centre - radius), min(len(positions) - 1, centre + radius)
    px, py = positions[centre]
    sw = sx = sy = 0.0
    for j in range(lo, hi + 1):
        wgt = radius + 1 - abs(j - centre)
        sw += wgt
        sx += wgt * (positions[j][0] - px)
        sy += wgt * (positions[j][1] - py)
    return sx / sw, sy / sw
