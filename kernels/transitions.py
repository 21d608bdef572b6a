"""Transitions between an outgoing picture `a` and an incoming picture `b` at progress t in [0, 1].

Every transition is a pure function of (a, b, t): frame i of an n-frame transition uses
t = (i + 0.5) / n (`progress`), so any frame renders alone and a transition split across nodes
equals one rendered whole. Blends of uint8 pictures are integer arithmetic with 8-bit weights:
w = round(t * 256), out = (a * (256 - w) + b * w) / 256 rounded half to even, which cupy computes
in integers and numpy through OpenCV's addWeighted (its float32 products and sum are exact for
these weights and it rounds half to even: the same numbers, tested, about 8x faster than numpy).
At t = 0.5 that is the average of a and b, ties to even.

Kinds: cut, dissolve, fade (through black or white, or any colour), wipe (left, right, up, down,
with a soft edge), zoom (push into the outgoing picture while the incoming one settles from a
zoom), whip (a fast pan: both pictures slide, smeared along the direction of travel).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from lookalike.kernels.compose import warp_affine
from lookalike.kernels.filters import shift, smear
from lookalike.kernels.grade import to_float
from lookalike.kernels.params import ParameterError, choice, number, same_frame_shape
from lookalike.kernels.xp import get_xp

KINDS = ("cut", "dissolve", "fade", "wipe", "zoom", "whip")
DIRECTIONS = ("left", "right", "up", "down")


def progress(i: int, n: int) -> float:
    """t of frame i of an n-frame transition: (i + 0.5) / n, so the middle of an odd n is 0.5."""
    if n <= 0 or not 0 <= i < n:
        raise ParameterError("transition.frame", f"frame {i} is outside a transition of {n} frames")
    return (i + 0.5) / n


def weight256(t: float) -> int:
    return int(math.floor(min(max(t, 0.0), 1.0) * 256.0 + 0.5))


def mix(a: Any, b: Any, t: float | Any) -> Any:
    """(1 - t) a + t b. uint8: the integer blend of the module doc; t may be a per-pixel HxW map."""
    same_frame_shape("transition.incoming", a, b)
    xp = get_xp(a)
    if a.dtype == xp.uint8:
        if isinstance(t, (int, float)):
            w = weight256(float(t))
            if w == 0:
                return a.copy()
            if w == 256:
                return b.copy()
            if xp is np:
                import cv2

                return cv2.addWeighted(
                    np.ascontiguousarray(a), (256 - w) / 256.0, np.ascontiguousarray(b), w / 256.0, 0.0
                )
            return mix_reference(a, b, w)
        w = xp.floor(xp.clip(t, 0.0, 1.0) * 256.0 + 0.5).astype(xp.uint16)[..., None]
        return mix_reference(a, b, w)
    tt = t if isinstance(t, (int, float)) else t[..., None]
    return (to_float(a) * (1.0 - tt) + to_float(b) * tt).astype(xp.float32)


def mix_reference(a: Any, b: Any, w: int | Any) -> Any:
    """The integer blend of uint8 pictures with weight w/256 on b (scalar or per-pixel ...x1 uint16),
    rounded half to even: the definition every device follows."""
    xp = get_xp(a)
    acc = a.astype(xp.uint16) * (xp.uint16(256) - xp.uint16(w) if isinstance(w, int) else xp.uint16(256) - w)
    acc += b.astype(xp.uint16) * (xp.uint16(w) if isinstance(w, int) else w)
    q = acc >> xp.uint16(8)
    r = acc & xp.uint16(255)
    up = (r > 128) | ((r == 128) & ((q & xp.uint16(1)) == 1))
    return (q + up.astype(xp.uint16)).astype(xp.uint8)


def dissolve(a: Any, b: Any, t: float) -> Any:
    """Cross dissolve."""
    return mix(a, b, number("transition.t", t, 0.0, 1.0))


def cut(a: Any, b: Any, t: float) -> Any:
    """`a` before the middle, `b` from it on."""
    same_frame_shape("transition.incoming", a, b)
    return (a if number("transition.t", t, 0.0, 1.0) < 0.5 else b).copy()


def fade(a: Any, b: Any, t: float, colour: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Any:
    """Fade `a` out to a flat colour (0..1 RGB; black by default) in the first half, `b` in from it."""
    same_frame_shape("transition.incoming", a, b)
    t = number("transition.t", t, 0.0, 1.0)
    if len(colour) != 3:
        raise ParameterError("transition.colour", f"must be 3 numbers (RGB 0..1), got {colour!r}")
    c = [number("transition.colour", v, 0.0, 1.0) for v in colour]
    xp = get_xp(a)
    if a.dtype == xp.uint8:
        flat = xp.empty_like(a)
        flat[...] = xp.asarray([int(round(v * 255)) for v in c], dtype=xp.uint8)
    else:
        flat = xp.empty(a.shape, xp.float32)
        flat[...] = xp.asarray(c, dtype=xp.float32)
    return mix(a, flat, 2.0 * t) if t < 0.5 else mix(flat, b, 2.0 * t - 1.0)


def wipe(a: Any, b: Any, t: float, direction: str = "left", softness: float = 0.05) -> Any:
    """`b` is uncovered by an edge travelling in `direction` (left: from the right edge leftward)."""
    same_frame_shape("transition.incoming", a, b)
    t = number("transition.t", t, 0.0, 1.0)
    choice("transition.direction", direction, DIRECTIONS)
    s = number("transition.softness", softness, 0.0, 1.0)
    xp = get_xp(a)
    h, w = a.shape[:2]
    if direction in ("left", "right"):
        coord = (xp.arange(w, dtype=xp.float32) + 0.5) / w
        coord = 1.0 - coord if direction == "left" else coord
    else:
        coord = (xp.arange(h, dtype=xp.float32) + 0.5) / h
        coord = 1.0 - coord if direction == "up" else coord
    # The edge runs from -s to 1 so that t = 0 shows only a and t = 1 only b, soft edge included.
    edge = t * (1.0 + s) - s
    m = xp.clip((edge + s - coord) / s, 0.0, 1.0) if s > 0 else (coord < edge).astype(xp.float32)
    m = xp.broadcast_to(m[None, :] if direction in ("left", "right") else m[:, None], (h, w))
    return mix(a, b, m)


def zoom(a: Any, b: Any, t: float, amount: float = 2.0) -> Any:
    """Push into the centre of `a` (up to `amount` x) while dissolving to `b`, which settles from
    1/amount closer; the blend is steepest in the middle."""
    same_frame_shape("transition.incoming", a, b)
    t = number("transition.t", t, 0.0, 1.0)
    z = number("transition.amount", amount, 1.0, 8.0)
    za = z**t
    zb = z ** (t - 1.0)
    blend = 0.5 - 0.5 * math.cos(math.pi * t)
    return mix(_scaled(a, za), _scaled(b, zb), blend)


def whip(a: Any, b: Any, t: float, direction: str = "left", blur: float = 0.15) -> Any:
    """A whip pan: `a` slides out and `b` in along `direction`, smeared by up to `blur` frame widths."""
    same_frame_shape("transition.incoming", a, b)
    t = number("transition.t", t, 0.0, 1.0)
    choice("transition.direction", direction, DIRECTIONS)
    blur = number("transition.blur", blur, 0.0, 1.0)
    h, w = a.shape[:2]
    # Eased travel (smoothstep): fastest, and so most smeared, in the middle.
    e = t * t * (3.0 - 2.0 * t)
    speed = 6.0 * t * (1.0 - t)  # d(e)/dt, 1.5 at the middle
    ux, uy = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}[direction]
    span = w if ux else h
    off_a = e * span
    off_b = (e - 1.0) * span
    smear = blur * span * speed / 1.5
    fa = _smeared(a, ux * off_a, uy * off_a, ux * smear, uy * smear)
    fb = _smeared(b, ux * off_b, uy * off_b, ux * smear, uy * smear)
    # Where each picture is on screen: a covers the side it slides toward, b the rest.
    xp = get_xp(a)
    if ux:
        coord = xp.arange(w, dtype=xp.float32) + 0.5
        m = (coord >= -off_b) if ux < 0 else (coord < off_a)
        m = xp.broadcast_to(m[None, :], (h, w))
    else:
        coord = xp.arange(h, dtype=xp.float32) + 0.5
        m = (coord >= -off_b) if uy < 0 else (coord < off_a)
        m = xp.broadcast_to(m[:, None], (h, w))
    return mix(fa, fb, m.astype(xp.float32))


def apply(kind: str, a: Any, b: Any, t: float, **params: Any) -> Any:
    """The transition `kind` (one of KINDS) with its parameters."""
    choice("transition.kind", kind, KINDS)
    fn = {"cut": cut, "dissolve": dissolve, "fade": fade, "wipe": wipe, "zoom": zoom, "whip": whip}[kind]
    try:
        return fn(a, b, t, **params)
    except TypeError as exc:
        raise ParameterError(f"transition.{kind}", f"unknown parameter ({exc})") from None


def _scaled(img: Any, z: float) -> Any:
    """`img` zoomed by z about its centre (z < 1 shows it smaller, edges replicated)."""
    h, w = img.shape[:2]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = np.array([[1.0 / z, 0.0, cx - cx / z], [0.0, 1.0 / z, cy - cy / z]])
    return warp_affine(img, m, h, w)


def _smeared(img: Any, ox: float, oy: float, sx: float, sy: float) -> Any:
    """`img` moved by whole pixels (ox, oy) and smeared along (sx, sy) (a box motion blur)."""
    return smear(shift(img, int(round(ox)), int(round(oy))), sx, sy)
