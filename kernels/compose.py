"""The local compositor's pictures: a palette backdrop, a placed subject, and the camera pose.

Pure `xp` functions (numpy or cupy). Pictures are HxWx3 (or HxWx4 RGBA) sRGB, float32 in [0, 1] or
uint8; float in, float out.

Camera pose, as in analysis.json trajectories: (x, y, s, r) relative to the scene's first frame.
x, y are the camera's displacement in fractions of frame width / height (camera right = content
moves left = positive x; camera up = negative y), s the zoom (> 1 zoomed in), r the roll in degrees.
With frame centre c = ((W-1)/2, (H-1)/2), t = (x W, y H) and R(a) = [[cos a, -sin a], [sin a, cos a]]
in pixel coordinates (y down), a world point w (pixel coordinates of the first frame) appears at

    screen = c + s · R(-r) · (w - c - t)          (positive r: the content turns counter-clockwise)

so a pan of dx moves content by -dx·W·s on screen, which phase correlation measures directly.

Why the world is a texture: every frame of a scene is one affine warp of a world canvas made once
(backdrop + subject), so camera motion in the output is exactly the trajectory, with no drift from
animated content, and any frame can be rendered alone, bit-identical to a full-scene render.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from lookalike.kernels.grade import to_float, to_uint8
from lookalike.kernels.xp import get_xp

Pose = Sequence[float]


# ---------------------------------------------------------------- resampling


def _resample_matrix(xp: Any, n_out: int, n_in: int, offset: float = 0.0, step: float | None = None) -> Any:
    """Dense (n_out, n_in) linear-interpolation matrix, with a widened triangle when shrinking (anti-alias).

    Output sample i reads input coordinate offset + (i + 0.5) * step - 0.5 (pixel centres).
    """
    step = n_in / n_out if step is None else step
    support = max(1.0, step)
    pos = offset + (np.arange(n_out, dtype=np.float64) + 0.5) * step - 0.5
    pos = np.clip(pos, 0.0, n_in - 1.0)
    src = np.arange(n_in, dtype=np.float64)
    w = np.maximum(0.0, 1.0 - np.abs(src[None, :] - pos[:, None]) / support)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    return xp.asarray(w.astype(np.float32))


def resize(img: Any, height: int, width: int) -> Any:
    """Separable linear resize (anti-aliased when shrinking) of an HxWxC float picture."""
    xp = get_xp(img)
    ry = _resample_matrix(xp, height, img.shape[0])
    rx = _resample_matrix(xp, width, img.shape[1])
    x = img.astype(xp.float32, copy=False)
    tmp = xp.tensordot(ry, x, axes=(1, 0))  # (height, W, C)
    return xp.tensordot(rx, tmp, axes=(1, 1)).transpose(1, 0, 2)


# ---------------------------------------------------------------- backdrop


def _hash_u32(xp: Any, a: Any) -> Any:
    """A 32-bit integer hash (lowbias32); identical on numpy and cupy, unlike their random generators."""
    a = a ^ (a >> xp.uint32(16))
    a = a * xp.uint32(0x7FEB352D)
    a = a ^ (a >> xp.uint32(15))
    a = a * xp.uint32(0x846CA68B)
    return a ^ (a >> xp.uint32(16))


def _value_noise(xp: Any, height: int, width: int, cell: float, seed: int) -> Any:
    """Smooth noise in [-1, 1] with features of about `cell` pixels: hashed grid values, upsampled by matmul."""
    gh, gw = int(np.ceil(height / cell)) + 2, int(np.ceil(width / cell)) + 2
    iy = xp.arange(gh, dtype=xp.uint32)[:, None]
    ix = xp.arange(gw, dtype=xp.uint32)[None, :]
    h = _hash_u32(xp, iy * xp.uint32(0x9E3779B1) ^ _hash_u32(xp, ix + xp.uint32(seed & 0xFFFFFFFF)))
    grid = (h >> xp.uint32(8)).astype(xp.float32) * np.float32(2.0 / (1 << 24)) - 1.0
    ry = _resample_matrix(xp, height, gh, offset=0.5, step=1.0 / cell)
    rx = _resample_matrix(xp, width, gw, offset=0.5, step=1.0 / cell)
    # step < 1 keeps support 1 (plain linear interpolation between grid values).
    return ry @ grid @ rx.T


def render_background(
    xp: Any,
    height: int,
    width: int,
    palette_rgb: Any,
    weights: Sequence[float] | None,
    t: float = 0.0,
    seed: int = 0,
    *,
    feature_px: float | None = None,
) -> Any:
    """A soft procedural backdrop in the palette's colours: HxWx3 float32 in [0, 1].

    A smooth random field (Gaussian blobs plus a slanted wave, drifting slowly with `t` seconds) is cut
    at its quantiles into bands, one per palette colour ordered by lightness, so each colour covers
    its weight's share of the area; band edges are blended softly and the whole is modulated by
    two octaves of value noise (texture that phase correlation can lock onto). `feature_px` is the
    typical blob size (default a third of the shorter side). Deterministic in (seed, t); the same on
    numpy and cupy because random parameters come from numpy and pixel noise from an integer hash.
    """
    pal = np.asarray(palette_rgb, dtype=np.float32).reshape(-1, 3) / 255.0
    if pal.shape[0] == 0:
        pal = np.array([[0.5, 0.5, 0.5]], np.float32)
    w = np.ones(pal.shape[0], np.float64) if weights is None else np.asarray(weights, np.float64)
    w = np.maximum(w[: pal.shape[0]], 0.0)
    w = w / w.sum() if w.sum() > 0 else np.full(pal.shape[0], 1.0 / pal.shape[0])
    order = np.argsort(pal @ np.array([0.2126, 0.7152, 0.0722], np.float32), kind="stable")
    pal, w = pal[order], w[order]

    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x1B6])
    feature = float(feature_px) if feature_px else min(height, width) / 3.0
    n_blobs = int(np.clip(round(1.5 * height * width / feature**2), 4, 96))
    cy = rng.uniform(-0.1, 1.1, n_blobs) * height + rng.uniform(-0.1, 0.1, n_blobs) * feature * t
    cx = rng.uniform(-0.1, 1.1, n_blobs) * width + rng.uniform(-0.1, 0.1, n_blobs) * feature * t
    sig = rng.uniform(0.4, 1.0, n_blobs) * feature
    amp = rng.uniform(-1.0, 1.0, n_blobs)
    ys = np.arange(height, dtype=np.float64)
    xs = np.arange(width, dtype=np.float64)
    gy = amp[:, None] * np.exp(-0.5 * ((ys[None, :] - cy[:, None]) / sig[:, None]) ** 2)
    gx = np.exp(-0.5 * ((xs[None, :] - cx[:, None]) / sig[:, None]) ** 2)
    # Blobs and the slanted wave are separable (outer products), so the field is a single matmul.
    theta, period, phase = rng.uniform(0, np.pi), rng.uniform(1.5, 3.0) * feature, rng.uniform(0, 2 * np.pi)
    ky, kx = 2 * np.pi * np.sin(theta) / period, 2 * np.pi * np.cos(theta) / period
    phase += 0.05 * t
    wave_y = 0.35 * np.stack([np.sin(ky * ys + phase), np.cos(ky * ys + phase)])
    wave_x = np.stack([np.cos(kx * xs), np.sin(kx * xs)])
    left = xp.asarray(np.concatenate([gy, wave_y]).T.astype(np.float32))
    right = xp.asarray(np.concatenate([gx, wave_x]).astype(np.float32))
    field = left @ right
    field = field + 0.25 * _value_noise(xp, height, width, feature / 2.5, int(seed) + 1)

    k = pal.shape[0]
    if k == 1:
        img = xp.broadcast_to(xp.asarray(pal[0]), (height, width, 3)).astype(xp.float32)
    else:
        sample = xp.sort(field[:: max(1, height // 128), :: max(1, width // 128)].ravel())
        n = sample.shape[0]
        cuts = np.cumsum(w)[:-1]
        idx = xp.asarray(np.clip((cuts * n).astype(np.int64), 0, n - 1))
        thresholds = sample[idx]
        soft = 0.08 * float(xp.std(field)) + 1e-6
        img = xp.broadcast_to(xp.asarray(pal[0]), (height, width, 3)).astype(xp.float32)
        steps = xp.asarray(np.diff(pal, axis=0))
        for j in range(k - 1):
            u = xp.clip((field - thresholds[j]) / (2 * soft) + 0.5, 0.0, 1.0)
            img = img + (u * u * (3 - 2 * u))[..., None] * steps[j]
    shade = 1.0 + 0.10 * _value_noise(xp, height, width, feature / 8.0, int(seed) + 2)
    shade = shade + 0.05 * _value_noise(xp, height, width, 6.0, int(seed) + 3)
    return xp.clip(img * shade[..., None], 0.0, 1.0).astype(xp.float32)


# ---------------------------------------------------------------- subject


def place_subject(canvas: Any, subject_rgba: Any, *, centre_xy: tuple[float, float], height_px: float) -> Any:
    """`canvas` (float HxWx3) with the subject alpha-blended on top, its opaque box `height_px` tall.

    The subject is cropped to its alpha's bounding box, resized with premultiplied alpha (no dark
    fringes) and centred on `centre_xy` (canvas pixels); parts outside the canvas are dropped.
    """
    xp = get_xp(canvas)
    sub = xp.asarray(subject_rgba)
    sub = sub.astype(xp.float32) / 255.0 if sub.dtype == xp.uint8 else sub.astype(xp.float32)
    if sub.shape[-1] == 3:
        sub = xp.concatenate([sub, xp.ones(sub.shape[:2] + (1,), xp.float32)], axis=-1)
    rows = xp.nonzero(sub[..., 3].max(axis=1) > 0)[0]
    cols = xp.nonzero(sub[..., 3].max(axis=0) > 0)[0]
    if rows.size == 0 or height_px < 1:
        return canvas
    sub = sub[int(rows[0]) : int(rows[-1]) + 1, int(cols[0]) : int(cols[-1]) + 1]
    h = int(round(height_px))
    w = max(1, int(round(height_px * sub.shape[1] / sub.shape[0])))
    pre = xp.concatenate([sub[..., :3] * sub[..., 3:], sub[..., 3:]], axis=-1)
    pre = resize(pre, h, w)
    top = int(round(centre_xy[1] - h / 2.0))
    left = int(round(centre_xy[0] - w / 2.0))
    y0, y1 = max(0, top), min(canvas.shape[0], top + h)
    x0, x1 = max(0, left), min(canvas.shape[1], left + w)
    if y0 >= y1 or x0 >= x1:
        return canvas
    out = canvas.astype(xp.float32, copy=True)
    patch = pre[y0 - top : y1 - top, x0 - left : x1 - left]
    region = out[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = xp.clip(patch[..., :3] + (1.0 - patch[..., 3:]) * region, 0.0, 1.0)
    return out


# ---------------------------------------------------------------- camera


def pose_matrix(
    pose: Pose,
    frame_width: int,
    frame_height: int,
    *,
    world_origin: tuple[float, float] = (0.0, 0.0),
    world_scale: float = 1.0,
) -> np.ndarray:
    """The 2x3 matrix taking output-frame pixels to canvas pixels for a camera pose (inverse map).

    The canvas holds the world at `world_scale` canvas pixels per world pixel, its pixel (0, 0) at
    world point `world_origin` (world = first-frame pixel coordinates). A host-side numpy array: it is
    six numbers, and both warp paths take it as such.
    """
    x, y, s, r = (float(v) for v in pose)
    s = s if s > 1e-6 else 1e-6
    a = np.deg2rad(r)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = np.array([(frame_width - 1) / 2.0, (frame_height - 1) / 2.0])
    t = np.array([x * frame_width, y * frame_height])
    lin = rot / s  # world = c + t + R(r) (p - c) / s
    off = c + t - lin @ c
    k = float(world_scale)
    return np.hstack([k * lin, (k * (off - np.asarray(world_origin, float)))[:, None]])


def warp_affine(img: Any, matrix: np.ndarray, height: int, width: int, *, fast: bool = True) -> Any:
    """out[v, u] = img sampled (bilinear, edges replicated) at matrix @ (u, v, 1).

    The xp path is plain array arithmetic (float32 weights), the reference on every device. For numpy
    uint8 input with `fast`, OpenCV's warpAffine is used instead: it is the CPU production path (about
    10x faster) but quantizes sub-pixel positions to 1/32 pixel, so it matches the reference to within
    a grey level or two rather than bit for bit (tested).
    """
    xp = get_xp(img)
    m = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    if fast and xp is np and img.dtype == np.uint8:
        import cv2

        return cv2.warpAffine(
            img,
            m,
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
    src = img.astype(xp.float32) if img.dtype == xp.uint8 else img.astype(xp.float32, copy=False)
    u = xp.arange(width, dtype=xp.float64)[None, :]
    v = xp.arange(height, dtype=xp.float64)[:, None]
    sx = (m[0, 0] * u + m[0, 1] * v + m[0, 2]).astype(xp.float32)
    sy = (m[1, 0] * u + m[1, 1] * v + m[1, 2]).astype(xp.float32)
    h_in, w_in = src.shape[:2]
    sx = xp.clip(sx, 0.0, w_in - 1.0)
    sy = xp.clip(sy, 0.0, h_in - 1.0)
    x0 = xp.floor(sx)
    y0 = xp.floor(sy)
    fx = (sx - x0)[..., None]
    fy = (sy - y0)[..., None]
    x0 = x0.astype(xp.int64)
    y0 = y0.astype(xp.int64)
    x1 = xp.minimum(x0 + 1, w_in - 1)
    y1 = xp.minimum(y0 + 1, h_in - 1)
    top = src[y0, x0] * (1.0 - fx) + src[y0, x1] * fx
    bottom = src[y1, x0] * (1.0 - fx) + src[y1, x1] * fx
    out = top * (1.0 - fy) + bottom * fy
    if img.dtype == xp.uint8:
        return xp.clip(out + 0.5, 0, 255).astype(xp.uint8)
    return out.astype(xp.float32)


def composite(
    background: Any,
    subject_rgba: Any | None,
    pose: Pose,
    *,
    frame_size: tuple[int, int] | None = None,
    subject_height: float = 0.5,
    world_origin: tuple[float, float] = (0.0, 0.0),
    world_scale: float = 1.0,
    fast: bool = True,
) -> Any:
    """One frame: the subject placed on the backdrop, seen through the camera `pose`.

    `background` is the world canvas (see pose_matrix for origin/scale; defaults: the canvas is the
    first frame). The subject is centred on the world's first-frame centre, `subject_height` of the
    frame tall. `frame_size` is (width, height), default the canvas size. Returns the frame in the
    background's dtype.
    """
    xp = get_xp(background)
    fw, fh = frame_size if frame_size is not None else (background.shape[1], background.shape[0])
    world = background
    if subject_rgba is not None:
        k = float(world_scale)
        centre = (k * ((fw - 1) / 2.0 - world_origin[0]), k * ((fh - 1) / 2.0 - world_origin[1]))
        world = place_subject(
            to_float(background), subject_rgba, centre_xy=centre, height_px=subject_height * fh * k
        )
        if background.dtype == xp.uint8:
            world = to_uint8(world)
    m = pose_matrix(pose, fw, fh, world_origin=world_origin, world_scale=world_scale)
    return warp_affine(world, m, fh, fw, fast=fast)
