"""3D LUTs: `.cube` text in and out, tetrahedral or trilinear apply, and a 256^3 table for video.

A LUT is a `Lut3D`: `table[r, g, b]` (N x N x N x 3, float32) holds the output colour for the input
(r, g, b) / (N - 1) of the domain [domain_min, domain_max] per channel. The `.cube` format (Adobe /
Resolve) lists the same entries with red changing fastest, then green, then blue.

Apply: `apply_lut` interpolates each pixel (tetrahedral by default: the four corners of the
sub-cube's tetrahedron that holds the point, as ffmpeg's lut3d and Resolve do; trilinear uses all
eight). For uint8 video the same function evaluated once at every one of the 2^24 possible colours
(`bake_table`) turns each later frame into a single table lookup (`apply_table`), bit-identical to
`apply_lut` on those frames, because both evaluate the same elementwise float32 arithmetic.

Pure text and array functions: reading and writing files is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from lookalike.kernels.params import ParameterError, choice
from lookalike.kernels.xp import get_xp

MIN_SIZE = 2
MAX_SIZE = 256
METHODS = ("tetrahedral", "trilinear")


@dataclass(frozen=True)
class Lut3D:
    """A 3D LUT (see the module doc). `table` is a numpy or cupy array."""

    table: Any
    domain_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    domain_max: tuple[float, float, float] = (1.0, 1.0, 1.0)
    title: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def size(self) -> int:
        return int(self.table.shape[0])

    def to(self, xp: Any) -> Lut3D:
        """The same LUT with its table on `xp`'s device (an explicit transfer)."""
        t = self.table
        if xp is np and not isinstance(t, np.ndarray):
            t = t.get()
        return Lut3D(xp.asarray(t, dtype=xp.float32), self.domain_min, self.domain_max, self.title)


def identity(size: int = 33, xp: Any = np) -> Lut3D:
    """The LUT that maps every colour to itself."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ParameterError("lut.size", f"must be in [{MIN_SIZE}, {MAX_SIZE}], got {size}")
    g = xp.linspace(0.0, 1.0, size, dtype=xp.float32)
    r, gg, b = xp.meshgrid(g, g, g, indexing="ij")
    return Lut3D(xp.stack([r, gg, b], axis=-1).astype(xp.float32))


def from_function(fn: Callable[[Any], Any], size: int = 33, xp: Any = np) -> Lut3D:
    """Sample a pointwise colour function (…x3 float [0, 1] -> …x3) on an N^3 grid."""
    grid = identity(size, xp).table
    out = fn(grid.reshape(-1, 3)).reshape(grid.shape)
    return Lut3D(xp.clip(out.astype(xp.float32), 0.0, 1.0))


# ---------------------------------------------------------------- .cube text


def parse_cube(text: str, *, name: str = "LUT") -> Lut3D:
    """A Lut3D from `.cube` text. Raises ParameterError naming the line that is wrong."""
    size: int | None = None
    lo, hi = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    title = ""
    rows: list[list[float]] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        head = line.split()[0].upper()
        if head == "TITLE":
            title = line[5:].strip().strip('"')
            continue
        if head == "LUT_3D_SIZE":
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise ParameterError(f"{name} line {n}", f"LUT_3D_SIZE needs one whole number, got {line!r}")
            size = int(parts[1])
            if not MIN_SIZE <= size <= MAX_SIZE:
                raise ParameterError(
                    f"{name} line {n}", f"LUT_3D_SIZE must be in [{MIN_SIZE}, {MAX_SIZE}], got {size}"
                )
            continue
        if head == "LUT_1D_SIZE":
            raise ParameterError(f"{name} line {n}", "this is a 1D LUT; a 3D LUT (LUT_3D_SIZE) is needed")
        if head in ("DOMAIN_MIN", "DOMAIN_MAX"):
            vals = _floats(line.split()[1:], name, n)
            if len(vals) != 3:
                raise ParameterError(f"{name} line {n}", f"{head} needs 3 numbers, got {line!r}")
            (lo if head == "DOMAIN_MIN" else hi)[:] = vals
            continue
        if head.replace("_", "").isalpha():
            continue  # other keywords (LUT_IN_VIDEO_RANGE, ...): not used here
        vals = _floats(line.split(), name, n)
        if len(vals) != 3:
            raise ParameterError(f"{name} line {n}", f"a table row needs 3 numbers, got {line!r}")
        rows.append(vals)
    if size is None:
        raise ParameterError(name, "no LUT_3D_SIZE line: this is not a 3D .cube file")
    if len(rows) != size**3:
        raise ParameterError(name, f"LUT_3D_SIZE {size} needs {size**3} table rows, the file has {len(rows)}")
    if any(h <= low for low, h in zip(lo, hi, strict=True)):
        raise ParameterError(name, f"DOMAIN_MAX {hi} must be above DOMAIN_MIN {lo} on every channel")
    data = np.asarray(rows, dtype=np.float32).reshape(size, size, size, 3)  # [b, g, r]
    table = np.ascontiguousarray(data.transpose(2, 1, 0, 3))
    return Lut3D(table, tuple(lo), tuple(hi), title)  # type: ignore[arg-type]


def _floats(parts: list[str], name: str, n: int) -> list[float]:
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise ParameterError(f"{name} line {n}", f"expected numbers, got {' '.join(parts)!r}") from None
    if not all(np.isfinite(vals)):
        raise ParameterError(f"{name} line {n}", "numbers must be finite")
    return vals


def format_cube(lut: Lut3D) -> str:
    """`.cube` text for a LUT (6 decimals, red fastest), readable by Resolve, ffmpeg and parse_cube."""
    t = lut.to(np).table
    lines = []
    if lut.title:
        lines.append(f'TITLE "{lut.title}"')
    lines.append(f"LUT_3D_SIZE {lut.size}")
    if tuple(lut.domain_min) != (0.0, 0.0, 0.0) or tuple(lut.domain_max) != (1.0, 1.0, 1.0):
        lines.append("DOMAIN_MIN " + " ".join(f"{v:.6f}" for v in lut.domain_min))
        lines.append("DOMAIN_MAX " + " ".join(f"{v:.6f}" for v in lut.domain_max))
    rows = t.transpose(2, 1, 0, 3).reshape(-1, 3)
    body = "\n".join(f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in rows.tolist())
    return "\n".join(lines) + "\n" + body + "\n"


# ---------------------------------------------------------------- apply


def apply_lut(img: Any, lut: Lut3D, method: str = "tetrahedral") -> Any:
    """Each pixel of an …x3 picture through the LUT. uint8 in -> uint8 out (rounded), float -> float32."""
    choice("lut.method", method, METHODS)
    xp = get_xp(img)
    table = lut.table if get_xp(lut.table) is xp else lut.to(xp).table
    n = table.shape[0]
    if table.shape != (n, n, n, 3):
        raise ParameterError("lut", f"table must be NxNxNx3, got {tuple(table.shape)}")
    shape = img.shape
    if shape[-1] != 3:
        raise ParameterError("image", f"must have 3 colour channels, got shape {tuple(shape)}")
    if img.dtype == xp.uint8:
        p = img.reshape(-1, 3).astype(xp.float32) * xp.float32(1.0 / 255.0)
    else:
        p = img.reshape(-1, 3).astype(xp.float32)
    lo = xp.asarray(lut.domain_min, dtype=xp.float32)
    hi = xp.asarray(lut.domain_max, dtype=xp.float32)
    if tuple(lut.domain_min) != (0.0, 0.0, 0.0) or tuple(lut.domain_max) != (1.0, 1.0, 1.0):
        p = (p - lo) / (hi - lo)
    x = xp.clip(p, 0.0, 1.0) * xp.float32(n - 1)
    i = xp.minimum(xp.floor(x), xp.float32(n - 2))
    f = x - i
    i = i.astype(xp.int32)
    flat = table.reshape(-1, 3)
    sr, sg, sb = n * n, n, 1
    base = i[:, 0] * sr + i[:, 1] * sg + i[:, 2] * sb
    fr, fg, fb = f[:, 0], f[:, 1], f[:, 2]
    if method == "trilinear":
        out = xp.zeros((base.shape[0], 3), xp.float32)
        for dr in (0, 1):
            wr = fr if dr else 1.0 - fr
            for dg in (0, 1):
                wg = fg if dg else 1.0 - fg
                for db in (0, 1):
                    wb = fb if db else 1.0 - fb
                    out += flat[base + (dr * sr + dg * sg + db * sb)] * (wr * wg * wb)[:, None]
    else:
        # The tetrahedron is picked by the order of the fractions: walk from corner 000 along the
        # axis with the largest fraction, then the next, to 111.
        r_ge_g, g_ge_b, r_ge_b = fr >= fg, fg >= fb, fr >= fb
        fmax = xp.maximum(xp.maximum(fr, fg), fb)
        fmin = xp.minimum(xp.minimum(fr, fg), fb)
        fmid = fr + fg + fb - fmax - fmin
        s1 = xp.where(r_ge_g & r_ge_b, sr, xp.where(g_ge_b, sg, sb))
        smin = xp.where(~r_ge_b & ~r_ge_g, sr, xp.where(g_ge_b, sb, sg))
        s2 = (sr + sg + sb) - smin
        c0 = flat[base]
        c1 = flat[base + s1]
        c2 = flat[base + s2]
        c3 = flat[base + (sr + sg + sb)]
        out = c0 + (c1 - c0) * fmax[:, None] + (c2 - c1) * fmid[:, None] + (c3 - c2) * fmin[:, None]
    out = out.reshape(shape)
    if img.dtype == xp.uint8:
        return xp.clip(out * xp.float32(255.0) + xp.float32(0.5), 0, 255).astype(xp.uint8)
    return out.astype(xp.float32, copy=False)


def bake_table(lut: Lut3D, method: str = "tetrahedral", xp: Any = np, *, chunk: int = 1 << 20) -> Any:
    """The LUT at every uint8 colour: 2^24 uint32 entries, R | G<<8 | B<<16, indexed the same way.

    Built by `apply_lut` on uint8 input, so `apply_table(img, table)` equals `apply_lut(img, lut)`
    bit for bit. 64 MiB; takes a few seconds on a CPU core, so build it once per LUT and job.
    """
    choice("lut.method", method, METHODS)
    out = xp.empty(1 << 24, dtype=xp.uint32)
    for s in range(0, 1 << 24, chunk):
        idx = xp.arange(s, s + chunk, dtype=xp.uint32)
        rgb = xp.stack([idx & 255, (idx >> 8) & 255, idx >> 16], axis=-1).astype(xp.uint8)
        out[s : s + chunk] = _packed(apply_lut(rgb, lut, method).astype(xp.uint32))
    return out


def _packed(o: Any) -> Any:
    """N x 3 uint32 colours as table entries: R | G<<8 | B<<16."""
    return o[:, 0] | (o[:, 1] << 8) | (o[:, 2] << 16)


def _table_index(img: np.ndarray) -> np.ndarray:
    """A uint8 HxWx3 picture's table indices (HxW uint32, R | G<<8 | B<<16). OpenCV's channel
    shuffles are the fast (multi-threaded) way to 4-byte pixels: RGBA read as little-endian uint32 is
    R | G<<8 | B<<16 | A<<24, the table's own order once A is masked off."""
    import cv2

    h, w = img.shape[:2]
    idx = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2RGBA).view(np.uint32).reshape(h, w)
    idx &= np.uint32(0xFFFFFF)
    return idx


def _from_entries(out: np.ndarray) -> np.ndarray:
    """HxW uint32 table entries back to a uint8 HxWx3 picture (the top byte dropped)."""
    import cv2

    h, w = out.shape
    return cv2.cvtColor(out.view(np.uint8).reshape(h, w, 4), cv2.COLOR_RGBA2RGB)


def apply_table(img: Any, table: Any) -> Any:
    """A uint8 HxWx3 picture through a baked table (see bake_table): one lookup per pixel."""
    xp = get_xp(img)
    if img.dtype != xp.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ParameterError(
            "image", f"a baked LUT takes uint8 HxWx3 frames, got {img.dtype} {tuple(img.shape)}"
        )
    if xp is np:
        return _from_entries(np.take(table, _table_index(img)))
    p = img.astype(xp.uint32)
    idx = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
    v = xp.take(table, idx)
    return xp.stack([v & 255, (v >> 8) & 255, (v >> 16) & 255], axis=-1).astype(xp.uint8)


# The top byte of a table entry says whether it has been filled (outputs use the low 24 bits, and
# the RGBA -> RGB conversion drops it), so an untouched entry is 0 and the table starts as calloc'd
# pages the lookups fault in on demand.
_FILLED = 0x01000000


class LazyTable:
    """A LUT's 2^24 uint8 table (the same entries as `bake_table`), filled only at the colours the
    frames it is applied to hold, when they first appear.

    A run of video frames holds a few hundred thousand to a few million distinct colours, so this
    costs a fraction of baking all 16.7 million (about 5 s a core for a tetrahedral LUT), and every
    later frame is a table lookup plus a check. Bit for bit `apply_lut(img, lut, method)`: each
    colour goes through apply_lut itself. NumPy only (a CuPy frame goes through apply_lut).
    """

    def __init__(self, lut: Lut3D, method: str = "tetrahedral") -> None:
        choice("lut.method", method, METHODS)
        self.lut, self.method = lut, method
        self.table = np.zeros(1 << 24, dtype=np.uint32)
        self.filled = 0

    def apply(self, img: np.ndarray) -> np.ndarray:
        """A uint8 HxWx3 picture through the LUT (float pictures go through apply_lut)."""
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            return apply_lut(img, self.lut, self.method)
        idx = _table_index(img)
        out = np.take(self.table, idx)
        missing = out < np.uint32(_FILLED)
        if missing.any():
            # Sorted and deduplicated by hand: np.unique takes about 15x as long on a frame's worth.
            new = np.sort(idx[missing])
            new = new[np.concatenate(([True], new[1:] != new[:-1]))]
            rgb = np.stack([new & 255, (new >> 8) & 255, new >> 16], axis=-1).astype(np.uint8)
            self.table[new] = _packed(apply_lut(rgb, self.lut, self.method).astype(np.uint32)) | np.uint32(_FILLED)
            self.filled += int(new.size)
            out[missing] = np.take(self.table, idx[missing])
        return _from_entries(out)
