"""Colour grade: measure a picture's look and move a picture toward a measured look.

Every function is written once for numpy and cupy (`xp` comes from the input array). Pictures are
HxWx3 sRGB-encoded RGB, float32 in [0, 1] or uint8; a function given uint8 returns uint8 (rounded),
given float returns float32, so callers never convert by hand.

`measure_grade` is the one definition of a look, shared by the analysis (sample scenes) and the
generator (remade scenes). Its four numbers, and the reference constants below:

- exposure:    log2(mean linear luminance / EXPOSURE_REF_GREY); 0.0 = the mean is 18 % grey.
               Luminance Y = Rec.709 weights on linear (decoded) RGB.
- contrast:    std of luma / CONTRAST_REF_STD; luma Y' = Rec.709 weights on the *encoded* RGB values,
               so 1.0 means the tonal spread of an ordinary, well exposed frame (std 0.2).
- saturation:  mean CIELAB chroma C*ab / SATURATION_REF_CHROMA; 1.0 = a moderately saturated natural
               scene (mean C* of 20), 0.0 = greyscale.
- temperature: mean CIELAB b* / 100; positive = warm (yellow), negative = cool (blue).

CIELAB is computed from sRGB with the D65 white point (the sRGB white), so sRGB white is L=100, a=b=0.

Adjustments (`apply_grade`) are relative, with identity {exposure 0, contrast 1, saturation 1,
temperature 0}; `solve_grade` finds the adjustments that move `measure_grade` of a picture to an
absolute target, and `match_grade` applies them. All adjustments are per-pixel (pointwise) functions
of colour, so adjustments solved on one view of a scene can be applied to its whole world texture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from lookalike.kernels.xp import get_xp

EXPOSURE_REF_GREY = 0.18
CONTRAST_REF_STD = 0.2
SATURATION_REF_CHROMA = 20.0
TEMPERATURE_SCALE = 100.0

REC709 = (0.2126, 0.7152, 0.0722)
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
    dtype=np.float32,
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ.astype(np.float64)).astype(np.float32)
_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
_DELTA = 6.0 / 29.0

IDENTITY_GRADE = {"exposure": 0.0, "contrast": 1.0, "saturation": 1.0, "temperature": 0.0}
GRADE_KEYS = ("exposure", "contrast", "saturation", "temperature")


# ---------------------------------------------------------------- dtype helpers


def to_float(img: Any) -> Any:
    """float32 in [0, 1] from uint8 (/255) or any float array (cast, not rescaled)."""
    xp = get_xp(img)
    if img.dtype == xp.uint8:
        return img.astype(xp.float32) * xp.float32(1.0 / 255.0)
    return img.astype(xp.float32, copy=False)


def to_uint8(img: Any) -> Any:
    """uint8 from float in [0, 1], rounded to nearest and clipped."""
    xp = get_xp(img)
    if img.dtype == xp.uint8:
        return img
    return xp.clip(img * 255.0 + 0.5, 0, 255).astype(xp.uint8)


def _like(out: Any, original: Any) -> Any:
    xp = get_xp(original)
    return to_uint8(out) if original.dtype == xp.uint8 else out.astype(xp.float32, copy=False)


def _weights(xp: Any, w: Sequence[float]) -> Any:
    return xp.asarray(w, dtype=xp.float32)


# ---------------------------------------------------------------- colour spaces


def srgb_to_linear(img: Any) -> Any:
    """Decode sRGB (IEC 61966-2-1) to linear light; float32 out."""
    xp = get_xp(img)
    x = to_float(img)
    return xp.where(x <= 0.04045, x / 12.92, ((xp.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4).astype(
        xp.float32
    )


def linear_to_srgb(lin: Any) -> Any:
    """Encode linear light to sRGB; float32 out, input clipped to [0, 1]."""
    xp = get_xp(lin)
    x = xp.clip(lin.astype(xp.float32, copy=False), 0.0, 1.0)
    return xp.where(
        x <= 0.0031308, x * 12.92, 1.055 * xp.maximum(x, 0.0031308) ** (1.0 / 2.4) - 0.055
    ).astype(xp.float32)


def rgb_to_lab(img: Any) -> Any:
    """sRGB (…x3, uint8 or float [0, 1]) to CIELAB D65 (…x3 float32: L in [0, 100], a, b)."""
    xp = get_xp(img)
    lin = srgb_to_linear(img)
    m = xp.asarray(_RGB_TO_XYZ / _D65[:, None])
    xyz = lin @ m.T
    f = xp.where(xyz > _DELTA**3, xp.cbrt(xp.maximum(xyz, 0.0)), xyz / (3 * _DELTA**2) + 4.0 / 29.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return xp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1).astype(xp.float32)


def lab_to_rgb(lab: Any) -> Any:
    """CIELAB D65 to sRGB float32, clipped to [0, 1] (out-of-gamut colours are clipped per channel)."""
    xp = get_xp(lab)
    lab = lab.astype(xp.float32, copy=False)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = xp.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = xp.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0))
    m = xp.asarray(_XYZ_TO_RGB * _D65[None, :])
    return linear_to_srgb(xyz @ m.T)


def luma(img: Any) -> Any:
    """Rec.709 luma Y' of encoded RGB (HxW float32)."""
    xp = get_xp(img)
    return to_float(img) @ _weights(xp, REC709)


# ---------------------------------------------------------------- measuring


def measure_grade(img: Any) -> dict[str, float]:
    """The look of a picture: {exposure, contrast, saturation, temperature} as defined in the module doc."""
    xp = get_xp(img)
    x = to_float(img)
    lum = float(xp.mean(srgb_to_linear(x) @ _weights(xp, REC709)))
    lab = rgb_to_lab(x)
    chroma = xp.sqrt(lab[..., 1] ** 2 + lab[..., 2] ** 2)
    return {
        "exposure": float(np.log2(max(lum, 1e-6) / EXPOSURE_REF_GREY)),
        "contrast": float(xp.std(luma(x))) / CONTRAST_REF_STD,
        "saturation": float(xp.mean(chroma)) / SATURATION_REF_CHROMA,
        "temperature": float(xp.mean(lab[..., 2])) / TEMPERATURE_SCALE,
    }


# ---------------------------------------------------------------- adjusting


def adjust_exposure(img: Any, stops: float) -> Any:
    """Multiply linear light by 2**stops (highlights clip at white)."""
    if stops == 0:
        return _like(to_float(img), img)
    return _like(linear_to_srgb(srgb_to_linear(img) * np.float32(2.0**stops)), img)


def adjust_contrast(img: Any, factor: float, pivot: float | None = 0.5) -> Any:
    """Scale luma about `pivot` (None = the picture's mean luma), keeping each pixel's colour offsets.

    Working on luma rather than on each channel keeps contrast and saturation apart, which makes
    `solve_grade` converge in a few steps.
    """
    xp = get_xp(img)
    x = to_float(img)
    y = luma(x)
    p = float(xp.mean(y)) if pivot is None else float(pivot)
    delta = (y - p) * np.float32(factor - 1.0)
    return _like(xp.clip(x + delta[..., None], 0.0, 1.0), img)


def adjust_saturation(img: Any, factor: float) -> Any:
    """Scale each pixel's distance from its luma (0 = greyscale, 1 = unchanged)."""
    xp = get_xp(img)
    x = to_float(img)
    y = luma(x)[..., None]
    return _like(xp.clip(y + (x - y) * np.float32(factor), 0.0, 1.0), img)


def adjust_temperature(img: Any, amount: float) -> Any:
    """Shift CIELAB b* by amount*100 (positive = warmer), so measured temperature moves by `amount`."""
    if amount == 0:
        return _like(to_float(img), img)
    lab = rgb_to_lab(img)
    lab[..., 2] += np.float32(amount * TEMPERATURE_SCALE)
    return _like(lab_to_rgb(lab), img)


def apply_grade(img: Any, grade: Mapping[str, float]) -> Any:
    """Apply relative adjustments in a fixed order: exposure, contrast, saturation, temperature.

    Keys (all optional, identity when absent): exposure (stops), contrast (factor), contrast_pivot
    (luma pivot, default 0.5), saturation (factor), temperature (b*/100 shift).
    """
    x = to_float(img)
    x = adjust_exposure(x, float(grade.get("exposure", 0.0)))
    c = float(grade.get("contrast", 1.0))
    if c != 1.0:
        x = adjust_contrast(x, c, float(grade.get("contrast_pivot", 0.5)))
    s = float(grade.get("saturation", 1.0))
    if s != 1.0:
        x = adjust_saturation(x, s)
    x = adjust_temperature(x, float(grade.get("temperature", 0.0)))
    return _like(x, img)


def _subsample(img: Any, max_pixels: int) -> Any:
    h, w = img.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / max_pixels))))
    return img[::step, ::step]


_BOUNDS = {"exposure": (-8.0, 8.0), "contrast": (0.05, 20.0), "saturation": (1e-3, 20.0), "temperature": (-1.5, 1.5)}
_LOG_KEYS = ("contrast", "saturation")  # solved as logarithms: factors stay positive, steps stay relative
# Where the targets cannot all be met (see solve_grade), errors are traded in roughly CIELAB units:
# a stop of exposure ~ 17 L*, a unit of contrast 20 L* of spread, of saturation 20 chroma, of
# temperature 100 b*. So a temperature edit is not given up for a little saturation.
_PERCEPTUAL = {"exposure": 30.0, "contrast": CONTRAST_REF_STD * 100.0, "saturation": SATURATION_REF_CHROMA,
               "temperature": TEMPERATURE_SCALE}


def solve_grade(
    img: Any,
    target_grade: Mapping[str, float],
    strength: float = 1.0,
    *,
    iterations: int = 12,
    max_pixels: int = 65536,
    tolerance: float = 0.005,
) -> dict[str, float]:
    """The adjustments (for `apply_grade`) that move measure_grade(img) to `target_grade`.

    `strength` in [0, 1] blends from the picture's own look (0) to the target (1); keys missing from
    the target are left as they are. Two phases, on a subsample of at most `max_pixels` pixels:
    1. each parameter updated from its own measured error (exposure and temperature additively,
       contrast and saturation as ratios): on most pictures the couplings are weak and a few rounds
       reach the target;
    2. where they are not (saturated colours: shifting b* changes chroma, so "warmer" fights the
       saturation; clipping near white), a joint Levenberg-Marquardt solve from the best point so far,
       with a finite-difference Jacobian, so every measure moves toward its target together.
    Returns the best adjustments found (smallest largest error), deterministic for a given input.
    """
    x = to_float(_subsample(img, max_pixels))
    xp = get_xp(x)
    m0 = measure_grade(x)
    target = {k: m0[k] + strength * (float(target_grade[k]) - m0[k]) for k in GRADE_KEYS if k in target_grade}
    adj = dict(IDENTITY_GRADE)
    adj["contrast_pivot"] = float(xp.mean(luma(x)))
    if not target:
        return adj
    keys = [k for k in GRADE_KEYS if k in target]

    def residual(a: dict[str, float]) -> tuple[np.ndarray, dict[str, float]]:
        a["contrast_pivot"] = float(xp.mean(luma(adjust_exposure(x, a["exposure"]))))
        m = measure_grade(apply_grade(x, a))
        return np.array([m[k] - target[k] for k in keys]), a

    weights = np.array([_PERCEPTUAL[k] for k in keys])
    best_cost, best = np.inf, dict(adj)
    for _ in range(iterations):
        r, adj = residual(adj)
        cost = float(np.sum((weights * r) ** 2))
        if cost < best_cost:
            best_cost, best = cost, dict(adj)
        if float(np.abs(r).max()) < tolerance:
            return best
        m = {k: target[k] + r[i] for i, k in enumerate(keys)}
        for k in keys:
            lo, hi = _BOUNDS[k]
            if k in _LOG_KEYS:
                ratio = (max(target[k], 0.0) + 1e-3) / (max(m[k], 0.0) + 1e-3)
                adj[k] = float(np.clip(adj[k] * ratio, lo, hi))
            else:
                adj[k] = float(np.clip(adj[k] + target[k] - m[k], lo, hi))
    return _refine(residual, weights, best, keys, iterations, tolerance)


# Levenberg-Marquardt's restraint: past these free ranges (stops, log factors, temperature) each unit
# of parameter costs _RESTRAINT (in _PERCEPTUAL's units), so where the targets conflict the solver
# does not darken by 3 stops and saturate 20x to fake a mean; inside them it is free to be exact.
_FREE = {"exposure": 1.5, "contrast": float(np.log(2.5)), "saturation": float(np.log(3.0)), "temperature": 0.5}
_RESTRAINT = 8.0


def _refine(residual, weights: np.ndarray, start: dict[str, float], keys: list[str], iterations: int,
            tolerance: float) -> dict[str, float]:
    """Levenberg-Marquardt over the grade parameters (logs of the factors), from `start`, on the
    weighted errors plus a restraint toward the identity; `residual(adj)` gives (raw errors, adj)."""

    def errors(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        raw, a = residual(to_adj(q))
        excess = np.maximum(np.abs(q) - free, 0.0) * np.sign(q)
        return raw, np.concatenate([weights * raw, _RESTRAINT * excess]), a

    free = np.array([_FREE[k] for k in keys])

    def to_adj(p: np.ndarray) -> dict[str, float]:
        a = dict(start)
        for i, k in enumerate(keys):
            lo, hi = _BOUNDS[k]
            a[k] = float(np.clip(np.exp(p[i]) if k in _LOG_KEYS else p[i], lo, hi))
        return a

    p = np.array([np.log(start[k]) if k in _LOG_KEYS else start[k] for k in keys], np.float64)
    raw, r, best = errors(p)
    cost, lam, h = float(r @ r), 1e-2, 1e-2
    for _ in range(iterations):
        if float(np.abs(raw).max()) < tolerance:
            break
        jac = np.empty((len(r), len(keys)))
        for j in range(len(keys)):
            q = p.copy()
            q[j] += h
            jac[:, j] = (errors(q)[1] - r) / h
        jtj, jtr = jac.T @ jac, jac.T @ r
        for _ in range(6):  # raise the damping until a step lowers the cost
            step = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-9), -jtr)
            raw_new, r_new, a_new = errors(p + step)
            if float(r_new @ r_new) < cost:
                p, raw, r, best, cost = p + step, raw_new, r_new, a_new, float(r_new @ r_new)
                lam = max(lam / 3, 1e-6)
                break
            lam *= 4
        else:
            break
    return best


def match_grade(img: Any, target_grade: Mapping[str, float], strength: float = 1.0) -> Any:
    """`img` adjusted so that measure_grade moves to `target_grade` (see solve_grade)."""
    return apply_grade(img, solve_grade(img, target_grade, strength))


# ---------------------------------------------------------------- palette


def palette_map(
    img: Any,
    palette_rgb: Any,
    weights: Sequence[float] | Any = None,
    strength: float = 0.5,
    *,
    sigma: float = 25.0,
) -> Any:
    """Pull each pixel's colour toward the palette colours near it (soft nearest colour in CIELAB).

    `palette_rgb` is Kx3 in 0..255; `weights` (K, default equal) act as priors, so a colour that
    covers more of the sample attracts more pixels. Each pixel moves toward the softmax-weighted mean
    of palette colours (ΔE scale `sigma`) by `strength`; lightness moves at half that rate, so the
    shading of a subject survives while its hues join the palette.
    """
    xp = get_xp(img)
    pal = xp.asarray(np.asarray(palette_rgb, dtype=np.float32).reshape(-1, 3) / 255.0)
    if pal.shape[0] == 0 or strength == 0:
        return _like(to_float(img), img)
    w = np.ones(pal.shape[0], np.float32) if weights is None else np.asarray(weights, np.float32)
    logw = xp.asarray(np.log(np.maximum(w / max(float(w.sum()), 1e-9), 1e-6)))
    lab = rgb_to_lab(img)
    shape = lab.shape
    flat = lab.reshape(-1, 3)
    pal_lab = rgb_to_lab(pal)
    d2 = (flat**2).sum(1)[:, None] - 2.0 * flat @ pal_lab.T + (pal_lab**2).sum(1)[None, :]
    logits = -xp.maximum(d2, 0.0) / (2.0 * sigma**2) + logw[None, :]
    logits -= logits.max(axis=1, keepdims=True)
    p = xp.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    goal = p @ pal_lab
    rate = xp.asarray(np.array([0.5 * strength, strength, strength], np.float32))
    out = flat + (goal - flat) * rate[None, :]
    return _like(lab_to_rgb(out.reshape(shape)), img)
