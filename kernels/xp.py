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


def device_module(device: str) -> ModuleType:
    """The array module a node computes with: "cpu" numpy; "gpu" cupy (a clear error where it cannot
    work); "auto" cupy when it is installed and sees a device, else numpy."""
    if device not in ("cpu", "gpu", "auto"):
        from lookalike.errors import ConfigError

        raise ConfigError(f"unknown device {device!r}", hint="use cpu, gpu or auto")
    if device == "cpu":
        return np
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device")
    except Exception as exc:  # noqa: BLE001 - ImportError, CUDA driver errors, no device
        if device == "auto":
            return np
        from lookalike.errors import ConfigError

        raise ConfigError(
            f"device gpu needs CuPy and a CUDA device: {type(exc).__name__}: {exc}",
            hint="install the gpu extra (pip install 'lookalike[gpu]') on a machine with an NVIDIA GPU, or use --device cpu",
        ) from exc
    return cupy


def to_device(a: Any, xp: ModuleType) -> Any:
    """`a` on `xp`'s device (a host-to-device copy for cupy; nothing for numpy)."""
    return a if xp is np else xp.asarray(a)
