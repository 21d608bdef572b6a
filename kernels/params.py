"""Parameter checks shared by the colour, effect and transition kernels.

A kernel that is handed a value it cannot honour raises `ParameterError` naming the parameter, the
value and the accepted range. It derives from ValueError (kernels import nothing from the rest of
Lookalike); the node library maps it to `lookalike.errors.InputError` at its boundary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


class ParameterError(ValueError):
    """A kernel parameter outside what the kernel accepts. `param` names it (e.g. "grain.sigma")."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


def number(param: str, value: Any, lo: float | None = None, hi: float | None = None) -> float:
    """`value` as a finite float within [lo, hi] (either bound may be None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(param, f"must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ParameterError(param, f"must be finite, got {value!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ParameterError(param, f"must be in [{_fmt(lo)}, {_fmt(hi)}], got {_fmt(v)}")
    return v


def integer(param: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """`value` as an int within [lo, hi]; floats with a fractional part are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
        raise ParameterError(param, f"must be a whole number, got {value!r}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ParameterError(param, f"must be in [{_fmt(lo)}, {_fmt(hi)}], got {v}")
    return v


def choice(param: str, value: Any, options: Sequence[str]) -> str:
    if value not in options:
        raise ParameterError(param, f"must be one of {', '.join(options)}; got {value!r}")
    return str(value)


def same_frame_shape(param: str, a: Any, b: Any) -> None:
    """Both pictures HxWx3 of one size and dtype (transitions and blends mix them pixel by pixel)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ParameterError(
            param,
            f"frames must have the same size and type: {tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}",
        )


def _fmt(v: float | None) -> str:
    if v is None:
        return "any"
    return f"{v:g}"
