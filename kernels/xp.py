"""The array module (`xp`) of an array: cupy for device arrays, numpy otherwise."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np


def get_xp(*arrays: Any) -> ModuleType:
    """numpy or cupy, whichever owns `arrays`; numpy when cupy is not installed."""
    try:
        import cupy
    except ImportError:
        return np
    return cupy.get_array_module(*arrays)


def to_host(a: Any) -> np.ndarray:
    """A numpy copy of a numpy or cupy array (an explicit, visible device-to-host transfer)."""
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)
