"""The edit stage on a node: grade, effects and transitions over a frame range of a video.

What a node's Grade / ApplyEffects / AddTransitions work calls, and what `lookalike grade` and
`lookalike effects` run locally. Each `*_range` function returns the frames [start, end) of the
result as HxWx3 uint8 arrays; the node encodes them into its segment.

Seams. A video cut into frame ranges that different nodes render must equal the video rendered in
one piece. Every stage here is written so that output frame k depends only on input frames by
absolute index, the clip's length and the spec (never on where a chunk starts):

- pointwise stages (colour, LUT, vignette, grain, particles, flare, depth of field) map frame k
  alone; their randomness is a hash of (seed, stage, k) (`kernels.seeded`);
- temporal stages declare how many lead/trail frames they read (motion blur 1, stabilization its
  window) and `Pipeline.render` reads those across the range boundary, clipped only by the clip's
  own ends;
- retiming maps output frame k to source position p(k) = sum of speeds before k, a prefix sum
  every node computes the same way from frame 0;
- a grade match measures the look on frames at fixed indices of the scene (not of the chunk), so
  every chunk of a scene gets the same LUT;
- a transition frame is a pure function of its two input frames and its index.

Effects spec (JSON, `lookalike.effects/1`)::

    {"schema": "lookalike.effects/1", "seed": 7,
     "effects": [{"name": "stabilize", "radius": 15},
                 {"name": "lut", "path": "look.cube"},
                 {"name": "grain", "sigma": 0.03}]}

Effects run in list order; `EFFECTS` lists every name with its parameters. Errors: a bad spec,
unknown effect or parameter, value out of range, malformed or wrong-size `.cube`, or mismatched
transition frames raise `InputError` naming the parameter, before anything is decoded or written.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from lookalike.kernels import effects as kfx
from lookalike.kernels import grade as kgrade
from lookalike.kernels import lut as klut
from lookalike.kernels import seeded
from lookalike.kernels import transfer as ktransfer
from lookalike.kernels import transitions as ktrans
from lookalike.kernels.params import ParameterError, choice, number

from lookalike.errors import InputError

__all__ = [
    "EFFECTS",
    "SPEC_SCHEMA",
    "Pipeline",
    "effects_range",
    "effects_video",
    "fit_grade",
    "grade_range",
    "grade_video",
    "read_cube",
    "transition_from_analysis",
    "transition_range",
    "transition_video",
    "write_cube",
]

SPEC_SCHEMA = "lookalike.effects/1"
GRADE_SAMPLES = 12
"""Frames of a scene (evenly spread) whose colours define its look for a grade match."""
Frame = np.ndarray


# --------------------------------------------------------------------------------------------------
# .cube files


def read_cube(path: str | os.PathLike[str]) -> klut.Lut3D:
    """A `.cube` file as a Lut3D. Raises InputError (NotFoundError) naming the file and the bad line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="strict")
    except FileNotFoundError:
        from lookalike.errors import NotFoundError

        raise NotFoundError(f"{p}: no such LUT file", hint="check the path of the .cube file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{p} cannot be read as a .cube text file ({exc})", hint="pass a 3D LUT in .cube format"
        ) from exc
    with _bad_input(f"LUT {p.name}"):
        return klut.parse_cube(text, name=p.name)


def write_cube(path: str | os.PathLike[str], lut: klut.Lut3D) -> None:
    """Write a Lut3D as `.cube` text, atomically."""
    _atomic_write_text(Path(path), klut.format_cube(lut))


# --------------------------------------------------------------------------------------------------
# Stages and the pipeline


class _Stage:
    """One effect in a pipeline: frame k of its output from frames of its input."""

    lead = 0
    trail = 0

    def n_out(self, n_in: int) -> int:
        return n_in

    def needs(self, lo: int, hi: int, n_in: int) -> tuple[int, int]:
        """Input frames [lo', hi') that outputs [lo, hi) read."""
        return max(0, lo - self.lead), min(n_in, hi + self.trail)

    def begin(self) -> None:
        """Forget per-range caches (a new range or source is about to be rendered)."""

    def render(self, k: int, get: Callable[[int], Frame], n_in: int) -> Frame:
        raise NotImplementedError


class _Pointwise(_Stage):
    def __init__(self, fn: Callable[[Frame, int], Frame]) -> None:
        self.fn = fn

    def render(self, k: int, get: Callable[[int], Frame], n_in: int) -> Frame:
        return self.fn(get(k), k)


class _Shifts:
    """Content shifts between consecutive input frames, measured once per range."""

    def __init__(self) -> None:
        self.cache: dict[int, tuple[float, float]] = {}

    def delta(self, j: int, get: Callable[[int], Frame]) -> tuple[float, float]:
        """Shift from frame j-1 to frame j."""
        if j not in self.cache:
            self.cache[j] = kfx.global_shift(get(j - 1), get(j))
        return self.cache[j]


class _MotionBlur(_Stage):
    lead = trail = 1

    def __init__(self, shutter: float, velocity: Sequence[float] | None) -> None:
        self.shutter = shutter
        self.velocity = velocity
        self.shifts = _Shifts()

    def begin(self) -> None:
        self.shifts = _Shifts()

    def render(self, k: int, get: Callable[[int], Frame], n_in: int) -> Frame:
        if self.velocity is not None:
            v = (float(self.velocity[0]), float(self.velocity[1]))
        else:
            ds = [self.shifts.delta(j, get) for j in (k, k + 1) if 0 < j < n_in]
            v = (sum(d[0] for d in ds) / len(ds), sum(d[1] for d in ds) / len(ds)) if ds else (0.0, 0.0)
        return kfx.motion_blur(get(k), v, self.shutter)


class _Stabilize(_Stage):
    def __init__(self, radius: int, zoom: float) -> None:
        self.lead = self.trail = radius
        self.radius = radius
        self.zoom = zoom
        self.shifts = _Shifts()

    def begin(self) -> None:
        self.shifts = _Shifts()

    def render(self, k: int, get: Callable[[int], Frame], n_in: int) -> Frame:
        lo, hi = max(0, k - self.radius), min(n_in - 1, k + self.radius)
        pos = [(0.0, 0.0)]
        for j in range(lo + 1, hi + 1):
            d = self.shifts.delta(j, get)
            pos.append((pos[-1][0] + d[0], pos[-1][1] + d[1]))
        cx, cy = kfx.smooth_correction(pos, k - lo, self.radius)
        return kfx.translate(get(k), cx, cy, self.zoom)


class _Retime(_Stage):
    """Output frame k shows source position p(k) = sum of speed(i) for i < k.

    Between two source frames: "blend" mixes them; "motion" first moves each along the camera's
    measured shift between them (global motion compensation), so a pan stays sharp instead of
    doubling.
    """

    def __init__(self, speed: float, ramp: Sequence[Sequence[float]] | None, mode: str = "blend") -> None:
        self.speed = speed
        self.ramp = ramp
        self.mode = mode
        self._positions: dict[int, np.ndarray] = {}
        self.shifts = _Shifts()

    def begin(self) -> None:
        self.shifts = _Shifts()

    def _speed_at(self, k: np.ndarray) -> np.ndarray:
        if not self.ramp:
            return np.full(k.shape, self.speed)
        xs = [float(p[0]) for p in self.ramp]
        ys = [float(p[1]) for p in self.ramp]
        return np.interp(k, xs, ys)

    def positions(self, n_in: int) -> np.ndarray:
        if n_in not in self._positions:
            # Prefix sums from frame 0 on every node (np.cumsum adds in order), so p(k) is the same
            # number whichever chunk asks for it.
            chunk, out, total = 4096, [np.zeros(1)], 0.0
            k0 = 0
            while True:
                sp = self._speed_at(np.arange(k0, k0 + chunk, dtype=np.float64))
                c = total + np.cumsum(sp)
                out.append(c)
                total = float(c[-1])
                k0 += chunk
                if total > n_in - 1:
                    break
            p = np.concatenate(out)
            self._positions[n_in] = p[: int(np.searchsorted(p, n_in - 1 + 1e-9, side="right"))]
        return self._positions[n_in]

    def n_out(self, n_in: int) -> int:
        return len(self.positions(n_in)) if n_in else 0

    def needs(self, lo: int, hi: int, n_in: int) -> tuple[int, int]:
        if lo >= hi:
            return 0, 0
        p = self.positions(n_in)
        return int(math.floor(p[lo])), min(n_in, int(math.floor(p[hi - 1])) + 2)

    def render(self, k: int, get: Callable[[int], Frame], n_in: int) -> Frame:
        p = float(self.positions(n_in)[k])
        i = int(math.floor(p))
        f = p - i
        if i + 1 >= n_in or ktrans.weight256(f) == 0:
            return get(i).copy()
        if ktrans.weight256(f) == 256:
            return get(i + 1).copy()
        a, b = get(i), get(i + 1)
        if self.mode == "motion":
            dx, dy = self.shifts.delta(i + 1, get)
            a = kfx.translate(a, f * dx, f * dy)
            b = kfx.translate(b, -(1.0 - f) * dx, -(1.0 - f) * dy)
        return ktrans.mix(a, b, f)


@dataclass(frozen=True)
class _Param:
    default: Any
    kind: str  # "number", "int", "bool", "str", "list"


def _p(default: Any, kind: str = "number") -> _Param:
    return _Param(default, kind)


# name -> (parameters with defaults, builder(params, seed, index) -> stage). The builder runs each
# kernel once on a tiny frame, so a bad value fails when the spec is read, with the kernel's own
# message, before any frame is decoded.
EFFECTS: dict[str, dict[str, _Param]] = {
    "exposure": {"stops": _p(0.0)},
    "contrast": {"factor": _p(1.0), "pivot": _p(0.5)},
    "saturation": {"factor": _p(1.0)},
    "white_balance": {"temperature": _p(0.0), "tint": _p(0.0)},
    "grade": {k: _p(v) for k, v in kgrade.IDENTITY_GRADE.items()},
    "curves": {"points": _p([[0.0, 0.0], [1.0, 1.0]], "list"), "channel": _p("rgb", "str")},
    "lut": {"path": _p(None, "str"), "method": _p("tetrahedral", "str")},
    "vignette": {"strength": _p(0.3), "radius": _p(0.75), "softness": _p(0.5)},
    "chromatic_aberration": {"shift_px": _p(2.0)},
    "lens_flare": {
        "position": _p([0.8, 0.2], "list"),
        "drift": _p([0.0, 0.0], "list"),
        "intensity": _p(0.6),
        "size": _p(0.08),
        "colour": _p([1.0, 0.85, 0.6], "list"),
    },
    "grain": {"sigma": _p(0.04), "mono": _p(False, "bool")},
    "particles": {
        "kind": _p("dust", "str"),
        "count": _p(150, "int"),
        "size": _p(2.0),
        "speed": _p(0.002),
        "opacity": _p(0.6),
    },
    "depth_of_field": {
        "map": _p("saliency", "str"),
        "focus": _p([0.5, 0.5], "list"),
        "focus_depth": _p(None),
        "max_sigma": _p(6.0),
        "levels": _p(4, "int"),
    },
    "motion_blur": {"shutter": _p(0.5), "velocity": _p(None, "list")},
    "stabilize": {"radius": _p(15, "int"), "zoom": _p(1.05)},
    "retime": {"speed": _p(1.0), "ramp": _p(None, "list"), "mode": _p("blend", "str")},
}


def _build(name: str, prm: dict[str, Any], seed: int, index: int, where: str) -> _Stage:
    s = seeded.key(seed, index, name)
    if name == "exposure":
        return _Pointwise(lambda f, k: kfx.exposure(f, prm["stops"]))
    if name == "contrast":
        return _Pointwise(lambda f, k: kfx.contrast(f, prm["factor"], prm["pivot"]))
    if name == "saturation":
        return _Pointwise(lambda f, k: kfx.saturation(f, prm["factor"]))
    if name == "white_balance":
        return _Pointwise(lambda f, k: kfx.white_balance(f, prm["temperature"], prm["tint"]))
    if name == "grade":
        for key, (lo, hi) in (
            ("exposure", (-8, 8)),
            ("contrast", (0.05, 20)),
            ("saturation", (0, 20)),
            ("temperature", (-1.5, 1.5)),
        ):
            _check_number(f"{where}.{key}", prm[key], lo, hi)
        return _Pointwise(lambda f, k: kgrade.apply_grade(f, prm))
    if name == "curves":
        return _Pointwise(lambda f, k: kfx.curves(f, prm["points"], prm["channel"]))
    if name == "lut":
        if not prm["path"]:
            raise InputError(f"{where}.path: the lut effect needs the path of a .cube file")
        try:
            lut = read_cube(prm["path"])
        except InputError as exc:
            raise type(exc)(f"{where}.path: {exc.message}", hint=exc.hint) from exc
        method = prm["method"]
        with _bad_input(where):
            klut.apply_lut(np.zeros((1, 1, 3), np.uint8), lut, method)
        return _LutStage(lut, method)
    if name == "vignette":
        return _Pointwise(lambda f, k: kfx.vignette(f, prm["strength"], prm["radius"], prm["softness"]))
    if name == "chromatic_aberration":
        return _Pointwise(lambda f, k: kfx.chromatic_aberration(f, prm["shift_px"]))
    if name == "lens_flare":
        pos, drift = _pair(prm["position"], f"{where}.position"), _pair(prm["drift"], f"{where}.drift")
        return _Pointwise(
            lambda f, k: kfx.lens_flare(
                f,
                (pos[0] + drift[0] * k, pos[1] + drift[1] * k),
                prm["intensity"],
                prm["size"],
                prm["colour"],
            )
        )
    if name == "grain":
        return _GrainStage(s, prm["sigma"], bool(prm["mono"]))
    if name == "particles":
        return _Pointwise(
            lambda f, k: kfx.particles(
                f, k, s, prm["kind"], prm["count"], prm["size"], prm["speed"], prm["opacity"]
            )
        )
    if name == "depth_of_field":
        return _DepthOfField(prm, where)
    if name == "motion_blur":
        v = None if prm["velocity"] is None else _pair(prm["velocity"], f"{where}.velocity")
        _check_number(f"{where}.shutter", prm["shutter"], 0.0, 2.0)
        return _MotionBlur(prm["shutter"], v)
    if name == "stabilize":
        _check_number(f"{where}.radius", prm["radius"], 1, 120)
        _check_number(f"{where}.zoom", prm["zoom"], 1.0, 2.0)
        return _Stabilize(int(prm["radius"]), prm["zoom"])
    if name == "retime":
        _check_number(f"{where}.speed", prm["speed"], 0.05, 16.0)
        ramp = prm["ramp"]
        if ramp is not None:
            if not ramp or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in ramp):
                raise InputError(f"{where}.ramp: must be a list of [output_frame, speed] pairs, got {ramp!r}")
            for fr, sp in ramp:
                _check_number(f"{where}.ramp frame", fr, 0, None)
                _check_number(f"{where}.ramp speed", sp, 0.05, 16.0)
            if any(b[0] <= a[0] for a, b in zip(ramp, ramp[1:], strict=False)):
                raise InputError(f"{where}.ramp: output frames must increase, got {[p[0] for p in ramp]}")
        if prm["mode"] not in ("blend", "motion"):
            raise InputError(f"{where}.mode: must be blend or motion, got {prm['mode']!r}")
        return _Retime(prm["speed"], ramp, prm["mode"])
    raise AssertionError(name)  # pragma: no cover - EFFECTS and _build list the same names


class _LutStage(_Stage):
    """A LUT; for runs of frames its 2^24 table is filled at the colours that appear (a
    `klut.LazyTable`, bit-identical to per-pixel)."""

    def __init__(self, lut: klut.Lut3D, method: str) -> None:
        self.lut, self.method = lut, method
        self.table: klut.LazyTable | None = None

    def prepare(self, n_frames: int, pixels: int) -> None:
        # The table holds 64 MiB; a frame or two are cheaper per pixel.
        if self.table is None and n_frames >= 3:
            self.table = klut.LazyTable(self.lut, self.method)

    def render(self, k: int, get: Callable[[int], Frame], n_in: int) -> Frame:
        f = get(k)
        if self.table is not None and isinstance(f, np.ndarray) and f.dtype == np.uint8:
            return self.table.apply(f)
        return klut.apply_lut(f, self.lut, self.method)


class _GrainStage(_Stage):
    def __init__(self, seed: int, sigma: float, mono: bool) -> None:
        self.seed, self.sigma, self.mono = seed, sigma, mono
        self.pool: kfx.GrainPool | None = None

    def render(self, k: int, get: Callable[[int], Frame], n_in: int) -> Frame:
        f = get(k)
        n = f.shape[0] * f.shape[1] * (1 if self.mono else 3)
        if self.pool is None or self.pool.frame_len != n:
            self.pool = kfx.grain_pool(np, self.seed, n, self.sigma, floats=f.dtype != np.uint8)
        return kfx.film_grain(f, k, self.seed, self.sigma, mono=self.mono, pool=self.pool)


class _DepthOfField(_Stage):
    def __init__(self, prm: dict[str, Any], where: str) -> None:
        self.prm = prm
        if prm["map"] not in ("saliency", "radial"):
            raise InputError(f"{where}.map: must be saliency or radial, got {prm['map']!r}")
        _pair(prm["focus"], f"{where}.focus")
        # Saliency: sharp where the eye goes (depth 0 = salient); radial: sharp at the focus point.
        self.focus_depth = 0.0 if prm["focus_depth"] is None else prm["focus_depth"]

    def render(self, k: int, get: Callable[[int], Frame], n_in: int) -> Frame:
        f = get(k)
        h, w = f.shape[:2]
        if self.prm["map"] == "saliency":
            depth = 1.0 - kfx.saliency(f)
        else:
            depth = kfx.radial_depth(h, w, self.prm["focus"])
        return kfx.depth_of_field(f, depth, self.focus_depth, self.prm["max_sigma"], self.prm["levels"])


class Pipeline:
    """A parsed effects spec: stages in order, ready to render any frame range of a source."""

    def __init__(self, stages: Sequence[_Stage], names: Sequence[str], seed: int) -> None:
        self.stages = list(stages)
        self.names = list(names)
        self.seed = seed

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, base_dir: str | None = None
    ) -> Pipeline:
        """Parse and check a spec (see the module doc); relative LUT paths resolve against base_dir."""
        if isinstance(spec, Mapping):
            schema = spec.get("schema", SPEC_SCHEMA)
            if schema != SPEC_SCHEMA:
                raise InputError(
                    f"effects spec schema {schema!r} is not {SPEC_SCHEMA!r}", hint="write an effects/1 spec"
                )
            unknown = set(spec) - {"schema", "seed", "effects"}
            if unknown:
                raise InputError(
                    f"effects spec: unknown key(s) {sorted(unknown)}", hint="use schema, seed and effects"
                )
            seed = spec.get("seed", 0)
            items = spec.get("effects", [])
        else:
            seed, items = 0, spec
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InputError(f"effects spec: seed must be a whole number, got {seed!r}")
        if not isinstance(items, (list, tuple)):
            raise InputError(f"effects spec: effects must be a list, got {type(items).__name__}")
        stages, names = [], []
        for i, item in enumerate(items):
            where = f"effects[{i}]"
            if not isinstance(item, Mapping) or "name" not in item:
                raise InputError(f"{where}: each effect is an object with a name, got {item!r}")
            name = item["name"]
            if name not in EFFECTS:
                raise InputError(
                    f"{where}: there is no effect named {name!r}",
                    hint=f"the effects are: {', '.join(sorted(EFFECTS))}",
                )
            where = f"{where}.{name}"
            schema_ = EFFECTS[name]
            extra = set(item) - set(schema_) - {"name"}
            if extra:
                raise InputError(
                    f"{where}: unknown parameter(s) {', '.join(sorted(extra))}",
                    hint=f"{name} takes: {', '.join(schema_) or 'nothing'}",
                )
            prm = {k: item.get(k, p.default) for k, p in schema_.items()}
            for k, p in schema_.items():
                _check_kind(f"{where}.{k}", prm[k], p)
            if name == "lut" and prm["path"] and base_dir and not os.path.isabs(prm["path"]):
                prm["path"] = os.path.join(base_dir, prm["path"])
            with _bad_input(where):
                stage = _build(name, prm, seed, i, where)
                if isinstance(stage, _Pointwise | _GrainStage | _DepthOfField | _MotionBlur | _Stabilize):
                    probe = np.full((8, 8, 3), 128, np.uint8)
                    stage.render(0, _const(probe), 1)
                    stage.begin()
            stages.append(stage)
            names.append(name)
        return cls(stages, names, seed)

    def n_out(self, n_in: int) -> int:
        """Frames the pipeline makes from a source of n_in frames (only retiming changes it)."""
        for st in self.stages:
            n_in = st.n_out(n_in)
        return n_in

    @property
    def retimes(self) -> bool:
        return any(isinstance(s, _Retime) for s in self.stages)

    def source_range(self, start: int, end: int, n_src: int) -> tuple[int, int]:
        """Source frames that output frames [start, end) need, lead and trail included."""
        return self._ranges(start, end, n_src)[0]

    def _ranges(self, start: int, end: int, n_src: int) -> list[tuple[int, int]]:
        counts = [n_src]
        for st in self.stages:
            counts.append(st.n_out(counts[-1]))
        ranges = [(start, end)]
        for st, n_in in zip(reversed(self.stages), reversed(counts[:-1]), strict=True):
            ranges.append(st.needs(*ranges[-1], n_in))
        return ranges[::-1]

    def render(self, source: Mapping[int, Frame], n_src: int, start: int, end: int, *, xp: Any = None) -> list[Frame]:
        """Output frames [start, end), from `source` (index -> frame) holding `source_range(...)`.

        `xp` (cupy on a GPU node): each source frame goes to the device once, every stage runs there,
        and each output frame comes back to the host once, for the encoder."""
        from lookalike.kernels import xp as xpmod

        if xp is not None and xp is not np:
            source = {k: xpmod.to_device(f, xp) for k, f in source.items()}
            return [xpmod.to_host(f) for f in self._render(source, n_src, start, end)]
        return self._render(source, n_src, start, end)

    def _render(self, source: Mapping[int, Frame], n_src: int, start: int, end: int) -> list[Frame]:
        n_final = self.n_out(n_src)
        if not 0 <= start <= end <= n_final:
            raise InputError(
                f"frame range [{start}, {end}) is outside the result, which has {n_final} frames",
                hint=f"ask for frames within [0, {n_final})",
            )
        ranges = self._ranges(start, end, n_src)
        frames: Mapping[int, Frame] = source
        n_in = n_src
        for st, (lo, hi) in zip(self.stages, ranges[1:], strict=True):
            st.begin()
            if isinstance(st, _LutStage):
                f0 = next(iter(frames.values()), None)
                if f0 is not None:
                    st.prepare(hi - lo, f0.shape[0] * f0.shape[1])
            get = frames.__getitem__
            with _bad_input("effects"):
                frames = {k: st.render(k, get, n_in) for k in range(lo, hi)}
            st.begin()
            n_in = st.n_out(n_in)
        return [frames[k] for k in range(start, end)]

    def render_frames(self, frames: Sequence[Frame], start: int, end: int) -> list[Frame]:
        """`render` over an in-memory clip (tests, small jobs)."""
        lo, hi = self.source_range(start, end, len(frames))
        return self.render({k: frames[k] for k in range(lo, hi)}, len(frames), start, end)


# The plan speaks of effects by name and a strength 0..1 (coordinator.plan_ops.SetEffect); these are
# the parameters each strength stands for.
_PLAN_EFFECTS: dict[str, Callable[[float], dict[str, Any]]] = {
    "film_grain": lambda k: {"name": "grain", "sigma": round(0.08 * k, 4)},
    "vignette": lambda k: {"name": "vignette", "strength": round(0.8 * k, 4)},
    "lens_flare": lambda k: {"name": "lens_flare", "intensity": round(k, 4)},
    "particles": lambda k: {"name": "particles", "count": max(1, int(400 * k)), "opacity": round(0.3 + 0.6 * k, 4)},
    "depth_of_field": lambda k: {"name": "depth_of_field", "max_sigma": round(1.0 + 9.0 * k, 4)},
    "motion_blur": lambda k: {"name": "motion_blur", "shutter": round(k, 4)},
    "stabilization": lambda k: {"name": "stabilize", "radius": max(2, int(30 * k))},
}


def plan_effects_spec(effects: Sequence[Mapping[str, Any]], seed: int) -> dict[str, Any] | None:
    """The effects spec for a plan scene's `effects` list ([{"name", "strength"}]); None when empty."""
    out = []
    for e in effects or []:
        name, strength = e.get("name"), float(e.get("strength", 0.5))
        if name not in _PLAN_EFFECTS:
            raise InputError(f"the plan asks for effect {name!r}, which nodes do not know",
                             hint=f"use one of {', '.join(sorted(_PLAN_EFFECTS))}")
        if strength > 0:
            out.append(_PLAN_EFFECTS[name](min(strength, 1.0)))
    return {"schema": SPEC_SCHEMA, "seed": int(seed) & 0xFFFFFFFF, "effects": out} if out else None


def load_spec(path: str | os.PathLike[str]) -> Pipeline:
    """Read an effects spec file (JSON) into a Pipeline; LUT paths resolve next to the spec."""
    p = Path(path)
    if not p.is_file():
        from lookalike.errors import NotFoundError

        raise NotFoundError(
            f"{p}: no such effects spec", hint="write the spec as JSON (see lookalike.nodes.edit)"
        )
    try:
        doc = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{p} is not valid JSON ({exc})", hint="fix the effects spec") from exc
    return Pipeline.from_spec(doc, base_dir=str(p.parent))


# --------------------------------------------------------------------------------------------------
# Ranges: what a node's job calls


def effects_range(
    path: str | os.PathLike[str],
    spec: Mapping[str, Any] | Pipeline,
    start: int,
    end: int,
    *,
    size: tuple[int, int] | None = None,
) -> list[Frame]:
    """Frames [start, end) of `path` with the effects of `spec` (a dict or a parsed Pipeline).

    Frame indices are those of the result (equal to the source's unless the spec retimes). Reads
    the lead/trail frames temporal effects need from `path` itself, so the frames equal those of
    the whole video rendered in one piece. `size` = (width, height) to decode at.
    """
    from lookalike.nodes import media

    pipe = spec if isinstance(spec, Pipeline) else Pipeline.from_spec(spec)
    n_src = media.probe(path).n_frames
    if not 0 <= start <= end <= pipe.n_out(n_src):
        raise InputError(
            f"frame range [{start}, {end}) is outside the result, which has {pipe.n_out(n_src)} frames",
            hint=f"ask for frames within [0, {pipe.n_out(n_src)})",
        )
    if start == end:
        return []
    lo, hi = pipe.source_range(start, end, n_src)
    source = {k: f for k, _, f in media.iter_frames(str(path), lo, hi, size=size)}
    return pipe.render(source, n_src, start, end)


def _sample_indices(first: int, end: int, n: int) -> list[int]:
    count = end - first
    return sorted({first + int((i + 0.5) * count / n) for i in range(min(n, count))})


def _frames_at(path: str, indices: Sequence[int], size: tuple[int, int] | None) -> list[Frame]:
    from lookalike.nodes import media

    out: list[Frame] = []
    for i in indices:
        out.extend(f for _, _, f in media.iter_frames(path, i, i + 1, size=size))
    return out


def _scene(path: str, scene: tuple[int, int] | None, what: str) -> tuple[int, int]:
    from lookalike.nodes import media

    n = media.probe(path).n_frames
    s0, s1 = (0, n) if scene is None else (int(scene[0]), int(scene[1]))
    if not 0 <= s0 < s1 <= n:
        raise InputError(f"{what} scene [{s0}, {s1}) is outside {Path(path).name}, which has {n} frames")
    return s0, s1


def fit_grade(
    input_path: str | os.PathLike[str],
    reference_path: str | os.PathLike[str],
    *,
    scene: tuple[int, int] | None = None,
    reference_scene: tuple[int, int] | None = None,
    method: str = "reinhard",
    strength: float = 1.0,
    samples: int = GRADE_SAMPLES,
    lut_size: int = 33,
) -> klut.Lut3D:
    """The LUT that moves the look of `input_path`'s scene toward `reference_path`'s scene.

    Each look is measured on `samples` frames spread evenly over its scene ([start, end) frames;
    None = the whole file), so every chunk of the scene fits the same LUT.
    """
    with _bad_input("grade"):
        choice("grade.method", method, ktransfer.METHODS)
        number("grade.strength", strength, 0.0, 1.0)
        if not 1 <= samples <= 256:
            raise ParameterError("grade.samples", f"must be in [1, 256], got {samples}")
    s0, s1 = _scene(str(input_path), scene, "input")
    r0, r1 = _scene(str(reference_path), reference_scene, "reference")
    # Looks are compared at a fixed working size: a 4K reference and a 720p input measure alike.
    src = [_thumb(f) for f in _frames_at(str(input_path), _sample_indices(s0, s1, samples), None)]
    ref = [_thumb(f) for f in _frames_at(str(reference_path), _sample_indices(r0, r1, samples), None)]
    with _bad_input("grade"):
        return ktransfer.match_frames(src, ref, method, strength, size=lut_size)


def _thumb(f: Frame, width: int = 320) -> Frame:
    step = max(1, f.shape[1] // width)
    return f[::step, ::step]


def grade_range(
    path: str | os.PathLike[str],
    start: int,
    end: int,
    *,
    lut: klut.Lut3D | str | os.PathLike[str] | None = None,
    reference: str | os.PathLike[str] | None = None,
    scene: tuple[int, int] | None = None,
    reference_scene: tuple[int, int] | None = None,
    method: str = "reinhard",
    strength: float = 1.0,
    size: tuple[int, int] | None = None,
) -> list[Frame]:
    """Frames [start, end) of `path` graded by a LUT (a Lut3D or a `.cube` path), or matched to
    `reference` (see fit_grade: the look is measured over the whole `scene`, not the range)."""
    from lookalike.nodes import media

    if (lut is None) == (reference is None):
        raise InputError("grade: give exactly one of a LUT or a reference to match")
    if reference is not None:
        lut = fit_grade(
            path, reference, scene=scene, reference_scene=reference_scene, method=method, strength=strength
        )
    elif not isinstance(lut, klut.Lut3D):
        lut = read_cube(lut)  # type: ignore[arg-type]
    stage = _LutStage(lut, "tetrahedral")
    n = media.probe(path).n_frames
    if not 0 <= start <= end <= n:
        raise InputError(f"frame range [{start}, {end}) is outside {Path(path).name}, which has {n} frames")
    out: list[Frame] = []
    for k, _, f in media.iter_frames(str(path), start, end, size=size):
        if stage.table is None:
            stage.prepare(end - start, f.shape[0] * f.shape[1])
        out.append(stage.render(k, _const(f), n))
    return out


def transition_range(
    outgoing: str | os.PathLike[str],
    incoming: str | os.PathLike[str],
    transition: Mapping[str, Any],
    start: int,
    end: int,
    *,
    outgoing_first: int = 0,
    incoming_first: int = 0,
    size: tuple[int, int] | None = None,
) -> list[Frame]:
    """Frames [start, end) of an n-frame transition from `outgoing` to `incoming`.

    `transition` is {"kind": one of cut/dissolve/fade/wipe/zoom/whip, "frames": n, ...the kind's
    parameters (fade: colour; wipe: direction, softness; zoom: amount; whip: direction, blur)}.
    Transition frame i blends outgoing frame outgoing_first + i with incoming frame incoming_first
    + i at t = (i + 0.5) / n. Both clips must decode to the same size (or pass `size`).
    """
    return list(iter_transition(outgoing, incoming, transition, start, end, outgoing_first=outgoing_first,
                                incoming_first=incoming_first, size=size))


def iter_transition(
    outgoing: str | os.PathLike[str],
    incoming: str | os.PathLike[str],
    transition: Mapping[str, Any],
    start: int,
    end: int,
    *,
    outgoing_first: int = 0,
    incoming_first: int = 0,
    size: tuple[int, int] | None = None,
) -> Iterator[Frame]:
    """transition_range's frames one at a time, for streaming into an encoder: every input is checked
    before this returns, and only one frame of each clip is held at a time."""
    from lookalike.nodes import media

    kind, n, params = _check_transition(transition)
    if not 0 <= start <= end <= n:
        raise InputError(f"transition frames [{start}, {end}) are outside its {n} frames")
    a_info, b_info = media.probe(outgoing), media.probe(incoming)
    if size is None and (a_info.width, a_info.height) != (b_info.width, b_info.height):
        raise InputError(
            f"transition.incoming: {Path(incoming).name} is {b_info.width}x{b_info.height} but "
            f"{Path(outgoing).name} is {a_info.width}x{a_info.height}",
            hint="render both scenes at the same size, or pass the output size",
        )
    for info, first, what in ((a_info, outgoing_first, "outgoing"), (b_info, incoming_first, "incoming")):
        if first < 0 or first + end > info.n_frames:
            raise InputError(
                f"transition.{what}: frames [{first + start}, {first + end}) are outside "
                f"{Path(info.path).name}, which has {info.n_frames} frames",
                hint="give the clips handles as long as the transition",
            )
    return _transition_frames(outgoing, incoming, kind, n, params, start, end, outgoing_first, incoming_first, size)


def _transition_frames(outgoing, incoming, kind, n, params, start, end, outgoing_first, incoming_first,
                       size) -> Iterator[Frame]:
    from lookalike.nodes import media

    if start == end:
        return
    a = media.iter_frames(str(outgoing), outgoing_first + start, outgoing_first + end, size=size)
    b = media.iter_frames(str(incoming), incoming_first + start, incoming_first + end, size=size)
    with _bad_input("transition"):
        for i, ((_, _, fa), (_, _, fb)) in enumerate(zip(a, b, strict=True), start=start):
            yield ktrans.apply(kind, fa, fb, ktrans.progress(i, n), **params)


def transition_from_analysis(transition_in: Mapping[str, Any]) -> dict[str, Any] | None:
    """The transition spec for a scene's analysis.json `transition_in` ({kind: cut|dissolve|fade|none,
    start_frame, end_frame}); None for a plain cut or none (nothing to render)."""
    kind = transition_in.get("kind", "cut")
    n = int(transition_in.get("end_frame", 0)) - int(transition_in.get("start_frame", 0))
    if kind in ("cut", "none") or n <= 0:
        return None
    if kind not in ("dissolve", "fade"):
        raise InputError(f"transition_in.kind: {kind!r} is not a transition this node renders")
    return {"kind": kind, "frames": n}


def transition_video(
    outgoing: str | os.PathLike[str],
    incoming: str | os.PathLike[str],
    transition: Mapping[str, Any],
    out: str | os.PathLike[str],
    *,
    chunk_frames: int = 48,
    crf: int = 18,
    preset: str = "veryfast",
) -> dict[str, Any]:
    """Join two clips with a transition into `out`: outgoing's frames, then n transition frames
    (outgoing's last n under incoming's first n), then the rest of incoming. Frame count
    n_out + n_in - n; no audio. Atomic; nothing written on error."""
    from lookalike.nodes import media

    kind, n, _ = _check_transition(transition)
    a = _check_video(outgoing, out)
    b = media.probe(incoming)
    media.validate_sample(b)
    if n > min(a.n_frames, b.n_frames):
        raise InputError(
            f"transition.frames: {n} frames is longer than a clip ({a.n_frames} and {b.n_frames} frames)",
            hint="shorten the transition",
        )
    first = a.n_frames - n

    def frames() -> Iterator[Frame]:
        yield from (f for _, _, f in media.iter_frames(str(outgoing), 0, first))
        for s in range(0, n, chunk_frames):
            yield from transition_range(
                outgoing, incoming, transition, s, min(n, s + chunk_frames), outgoing_first=first
            )
        yield from (
            f for _, _, f in media.iter_frames(str(incoming), n, b.n_frames, size=(a.width, a.height))
        )

    _encode(frames(), a, out, audio=False, crf=crf, preset=preset)
    return {"out": str(out), "frames": a.n_frames + b.n_frames - n, "transition": kind}


def _check_transition(transition: Mapping[str, Any]) -> tuple[str, int, dict[str, Any]]:
    if not isinstance(transition, Mapping):
        raise InputError(f"transition must be an object, got {transition!r}")
    kind = transition.get("kind")
    if kind not in ktrans.KINDS:
        raise InputError(
            f"transition.kind: there is no transition {kind!r}", hint=f"use one of {', '.join(ktrans.KINDS)}"
        )
    n = transition.get("frames")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"transition.frames: must be a whole number of frames >= 1, got {n!r}")
    params = {k: v for k, v in transition.items() if k not in ("kind", "frames")}
    probe = np.zeros((4, 4, 3), np.uint8)
    with _bad_input("transition"):
        ktrans.apply(kind, probe, probe, 0.5, **params)
    return str(kind), n, params


# --------------------------------------------------------------------------------------------------
# Whole files: `lookalike grade` and `lookalike effects`


def grade_video(
    input_path: str | os.PathLike[str],
    reference: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    *,
    lut: str | os.PathLike[str] | klut.Lut3D | None = None,
    method: str = "reinhard",
    strength: float = 1.0,
    save_lut: str | os.PathLike[str] | None = None,
    crf: int = 18,
    preset: str = "veryfast",
) -> dict[str, Any]:
    """Grade a whole video toward `reference` (or through `lut`) into `out` (MP4, audio kept).

    The output appears atomically; on any error nothing is written (nor `save_lut`). Returns a
    summary: frames, seconds, the LUT size and where it was saved.
    """
    from lookalike.nodes import media

    info = _check_video(input_path, out)
    if reference is not None:
        media.validate_sample(media.probe(reference))
        fitted = fit_grade(input_path, reference, method=method, strength=strength)
    elif lut is not None:
        fitted = lut if isinstance(lut, klut.Lut3D) else read_cube(lut)
    else:
        raise InputError("grade: give a reference video to match (--match) or a LUT (--lut)")
    stage = _LutStage(fitted, "tetrahedral")
    stage.prepare(info.n_frames, info.width * info.height)

    def frames() -> Iterator[Frame]:
        for k, _, f in media.iter_frames(str(input_path)):
            yield stage.render(k, _const(f), info.n_frames)

    _encode(frames(), info, out, audio=info.has_audio, crf=crf, preset=preset)
    if save_lut is not None:
        write_cube(save_lut, fitted)
    return {
        "out": str(out),
        "frames": info.n_frames,
        "lut_size": fitted.size,
        "lut": str(save_lut) if save_lut else None,
    }


def effects_video(
    input_path: str | os.PathLike[str],
    spec: Mapping[str, Any] | Pipeline | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    chunk_frames: int = 48,
    crf: int = 18,
    preset: str = "veryfast",
) -> dict[str, Any]:
    """Apply an effects spec (dict, Pipeline or spec file path) to a whole video into `out` (MP4).

    Rendered in chunks of `chunk_frames` through `effects_range`, the same code a node runs per
    range. Audio is kept unless the spec retimes the picture. Atomic; nothing written on error.
    """

    if isinstance(spec, Pipeline):
        pipe = spec
    elif isinstance(spec, Mapping):
        pipe = Pipeline.from_spec(spec)
    else:
        pipe = load_spec(spec)
    info = _check_video(input_path, out)
    if chunk_frames < 1:
        raise InputError(f"chunk_frames must be >= 1, got {chunk_frames}")
    n = pipe.n_out(info.n_frames)

    def frames() -> Iterator[Frame]:
        for s in range(0, n, chunk_frames):
            yield from effects_range(input_path, pipe, s, min(n, s + chunk_frames))

    _encode(frames(), info, out, audio=info.has_audio and not pipe.retimes, crf=crf, preset=preset)
    return {"out": str(out), "frames": n, "effects": pipe.names}


def _check_video(input_path: str | os.PathLike[str], out: str | os.PathLike[str]) -> Any:
    from lookalike.nodes import media

    info = media.probe(input_path)
    media.validate_sample(info)
    o = Path(out)
    if o.exists() and o.resolve() == Path(input_path).resolve():
        raise InputError(f"{o}: the output would overwrite the input", hint="write to another file")
    if not o.parent.exists():
        raise InputError(f"{o.parent}: no such folder for the output", hint="create the folder first")
    if o.is_dir():
        raise InputError(f"{o} is a folder", hint="give the path of the .mp4 to write")
    if info.width % 2 or info.height % 2:
        raise InputError(
            f"{Path(input_path).name} is {info.width}x{info.height}; H.264 output needs an even size",
            hint="crop or scale the input to an even width and height",
        )
    return info


def _encode(
    frames: Iterable[Frame], info: Any, out: str | os.PathLike[str], *, audio: bool, crf: int, preset: str
) -> None:
    from lookalike.nodes import media

    o = Path(out)
    tmp = o.with_name(f".{o.name}.{uuid.uuid4().hex[:8]}.video.mp4")
    fps = Fraction(info.fps).limit_denominator(1001000) if info.fps else Fraction(24)
    try:
        with media.SegmentWriter(
            tmp, width=info.width, height=info.height, fps=fps, crf=crf, preset=preset
        ) as w:
            for f in frames:
                w.write(f)
        media.concat_segments([tmp], o, audio_path=info.path if audio else None)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# Helpers


class _bad_input:
    """Turn a kernel's ParameterError into InputError naming where in the request it came from."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is not None and isinstance(exc, ParameterError):
            raise InputError(f"{self.where}: {exc}", hint="fix that parameter and run again") from exc


def _const(frame: Frame) -> Callable[[int], Frame]:
    """A frame source that always gives `frame` (one-frame stages: grade, dry runs)."""

    def get(_index: int) -> Frame:
        return frame

    return get


def _check_kind(where: str, value: Any, p: _Param) -> None:
    if value is None:
        return
    ok = {
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "list": isinstance(value, (list, tuple)),
    }[p.kind]
    if not ok:
        raise InputError(
            f"{where}: must be {'a ' + p.kind if p.kind != 'int' else 'a whole number'}, got {value!r}"
        )
    if p.kind == "number" and not math.isfinite(value):
        raise InputError(f"{where}: must be finite, got {value!r}")


def _check_number(where: str, value: Any, lo: float | None, hi: float | None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{where}: must be a number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InputError(f"{where}: must be in [{lo}, {hi if hi is not None else 'any'}], got {value}")


def _pair(v: Any, where: str) -> tuple[float, float]:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise InputError(f"{where}: must be two numbers [x, y], got {v!r}")
    for x in v:
        _check_number(where, x, None, None)
    return float(v[0]), float(v[1])


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
