"""Colour transfer: move a picture's colours toward a reference's, in CIELAB.

Two methods, both per channel of CIELAB (D65, as `grade.rgb_to_lab`):

- "reinhard": match mean and standard deviation (Reinhard et al. 2001, with Lab for lαβ). Smooth,
  keeps the picture's own contrast structure; the usual "match this shot's look".
- "histogram": match the distribution (quantile mapping with 101 quantiles): follows a reference's
  crushed blacks or rolled-off highlights too, at the cost of stronger changes.

Statistics come from `ColourStats.of(frames)` (a subsample of pixels of each frame given, so the
caller decides which frames define a scene's look: a node that renders one chunk of a scene must
measure the same frames as every other chunk, or the seams would show). Because a transfer is a
pointwise colour function, `fit_lut` bakes it into a 3D LUT that `lut.apply_lut` / `lut.bake_table`
apply to video at table-lookup speed, and that can be written out as a `.cube` for other tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from lookalike.kernels import lut as klut
from lookalike.kernels.grade import lab_to_rgb, rgb_to_lab
from lookalike.kernels.params import ParameterError, choice, number
from lookalike.kernels.xp import get_xp, to_host

METHODS = ("reinhard", "histogram")
QUANTILES = 101
# A flat source channel (a grey frame has a* = b* = 0 everywhere) would make the std ratio blow up;
# the ratio is held to this range instead.
_MAX_STD_RATIO = 4.0
_MIN_STD = 1e-3


@dataclass(frozen=True)
class ColourStats:
    """Per-channel CIELAB statistics of a set of frames: mean, std and 101 quantiles (numpy)."""

    mean: np.ndarray
    std: np.ndarray
    quantiles: np.ndarray  # (QUANTILES, 3)
    n_pixels: int

    @classmethod
    def of(cls, frames: Sequence[Any], *, max_pixels_per_frame: int = 65536) -> ColourStats:
        """Statistics of …x3 sRGB frames (uint8 or float), each subsampled to at most the pixel budget."""
        if len(frames) == 0:
            raise ParameterError("frames", "at least one frame is needed to measure colour statistics")
        parts = []
        for f in frames:
            xp = get_xp(f)
            if f.ndim != 3 or f.shape[2] != 3:
                raise ParameterError("frames", f"frames must be HxWx3, got {tuple(f.shape)}")
            h, w = f.shape[:2]
            step = max(1, int(np.ceil(np.sqrt(h * w / max_pixels_per_frame))))
            parts.append(to_host(rgb_to_lab(f[::step, ::step]).reshape(-1, 3)))
            del xp
        lab = np.concatenate(parts).astype(np.float64)
        q = np.quantile(lab, np.linspace(0.0, 1.0, QUANTILES), axis=0)
        return cls(lab.mean(axis=0), lab.std(axis=0), q.astype(np.float64), int(lab.shape[0]))


def transfer_lab(
    lab: Any, src: ColourStats, ref: ColourStats, method: str = "reinhard", strength: float = 1.0
) -> Any:
    """…x3 Lab values moved from `src`'s statistics toward `ref`'s by `strength` (0..1)."""
    choice("transfer.method", method, METHODS)
    strength = number("transfer.strength", strength, 0.0, 1.0)
    xp = get_xp(lab)
    lab = lab.astype(xp.float32, copy=False)
    if method == "reinhard":
        ratio = np.clip(ref.std / np.maximum(src.std, _MIN_STD), 1.0 / _MAX_STD_RATIO, _MAX_STD_RATIO)
        scale = xp.asarray(ratio.astype(np.float32))
        shift = xp.asarray((ref.mean - src.mean * ratio).astype(np.float32))
        mapped = lab * scale + shift
    else:
        chans = []
        for c in range(3):
            # Quantiles of a channel can repeat (flat regions); a tiny ramp keeps them increasing.
            sq = src.quantiles[:, c] + np.arange(QUANTILES) * 1e-6
            chans.append(
                xp.interp(
                    lab[..., c],
                    xp.asarray(sq.astype(np.float32)),
                    xp.asarray(ref.quantiles[:, c].astype(np.float32)),
                )
            )
        mapped = xp.stack(chans, axis=-1).astype(xp.float32)
    if strength == 1.0:
        return mapped
    return lab + (mapped - lab) * xp.float32(strength)


def transfer(
    img: Any, src: ColourStats, ref: ColourStats, method: str = "reinhard", strength: float = 1.0
) -> Any:
    """A picture's colours moved toward `ref` per pixel (the reference that `fit_lut` approximates)."""
    xp = get_xp(img)
    out = lab_to_rgb(transfer_lab(rgb_to_lab(img), src, ref, method, strength))
    if img.dtype == xp.uint8:
        return xp.clip(out * 255.0 + 0.5, 0, 255).astype(xp.uint8)
    return out


def fit_lut(
    src: ColourStats,
    ref: ColourStats,
    method: str = "reinhard",
    strength: float = 1.0,
    *,
    size: int = 33,
    xp: Any = np,
) -> klut.Lut3D:
    """The transfer from `src` to `ref` baked into an N^3 LUT (tetrahedral apply is within a few
    hundredths of a code value of `transfer` on smooth methods; see tests)."""
    choice("transfer.method", method, METHODS)
    lut = klut.from_function(lambda rgb: transfer(rgb, src, ref, method, strength), size, xp)
    return klut.Lut3D(lut.table, title=f"lookalike {method} transfer")


def match_frames(
    src_frames: Sequence[Any],
    ref_frames: Sequence[Any],
    method: str = "reinhard",
    strength: float = 1.0,
    *,
    size: int = 33,
) -> klut.Lut3D:
    """The LUT that moves the look of `src_frames` toward `ref_frames` (statistics of each set)."""
    xp = get_xp(src_frames[0]) if len(src_frames) else np
    return fit_lut(ColourStats.of(src_frames), ColourStats.of(ref_frames), method, strength, size=size, xp=xp)


def fit_lut_pairs(
    src: Any, dst: Any, size: int = 17, *, smoothing: float = 0.01, max_pairs: int = 200_000
) -> klut.Lut3D:
    """The LUT that best maps colours `src` to colours `dst` (…x3 each, corresponding pixels: the
    same picture before and after a grade).

    Least squares: trilinear interpolation of the LUT at each source colour should give its
    target, plus `smoothing` times the squared distance of every node to "identity plus the mean
    shift", which decides the nodes no pixel reaches (colours the picture does not have).
    Solved on the host (scipy sparse normal equations, N^3 unknowns per channel); at most
    `max_pairs` pairs are used, evenly strided.
    """
    from scipy.sparse import csr_matrix, identity
    from scipy.sparse.linalg import spsolve

    if not klut.MIN_SIZE <= size <= 33:
        raise ParameterError("fit_lut_pairs.size", f"must be in [2, 33], got {size}")
    sm = number("fit_lut_pairs.smoothing", smoothing, 1e-9, 1e6)
    if src.shape != dst.shape or src.shape[-1] != 3:
        raise ParameterError(
            "fit_lut_pairs.dst", f"must match src, …x3: {tuple(src.shape)} vs {tuple(dst.shape)}"
        )
    s = _as_unit(to_host(src)).reshape(-1, 3)
    d = _as_unit(to_host(dst)).reshape(-1, 3)
    step = max(1, int(np.ceil(s.shape[0] / max_pairs)))
    s, d = s[::step], d[::step]
    n = size
    x = np.clip(s, 0.0, 1.0) * (n - 1)
    i = np.minimum(np.floor(x), n - 2).astype(np.int64)
    f = x - i
    rows, cols, vals = [], [], []
    r = np.arange(s.shape[0])
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                w = (
                    (f[:, 0] if dr else 1 - f[:, 0])
                    * (f[:, 1] if dg else 1 - f[:, 1])
                    * (f[:, 2] if db else 1 - f[:, 2])
                )
                rows.append(r)
                cols.append(((i[:, 0] + dr) * n + (i[:, 1] + dg)) * n + (i[:, 2] + db))
                vals.append(w)
    a = csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(s.shape[0], n**3)
    )
    shift = (d - s).mean(axis=0) if s.shape[0] else np.zeros(3)
    prior = klut.identity(n).table.reshape(-1, 3).astype(np.float64) + shift
    lhs = (a.T @ a + sm * identity(n**3)).tocsc()
    rhs = a.T @ d + sm * prior
    table = np.stack([spsolve(lhs, rhs[:, c]) for c in range(3)], axis=-1)
    return klut.Lut3D(
        np.clip(table, 0.0, 1.0).reshape(n, n, n, 3).astype(np.float32), title="lookalike fitted LUT"
    )


def _as_unit(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)
