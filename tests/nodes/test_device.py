"""The node's device path, checked on the CPU: frames cross to the device once per range and back
once per frame (on a GPU node those are the only host<->device copies), the results equal the CPU
path, and a node asked for a GPU it cannot use refuses to start with a clear error."""

from __future__ import annotations

import types

import numpy as np
import pytest
from farm import cli
from lookalike.kernels import xp as xpmod
from lookalike.kernels.xp import device_module
from lookalike.nodes import edit

from lookalike.errors import ConfigError


class _Counting:
    """Stands in for cupy at the two transfer points: a device module whose arrays are numpy's."""

    def __init__(self, monkeypatch):
        self.to_device = self.to_host = 0
        self.module = types.ModuleType("fake_device")
        self.module.asarray = np.asarray
        real_to_host = xpmod.to_host

        def to_device(a, xp):
            assert xp is self.module
            self.to_device += 1
            return np.asarray(a)

        def to_host(a):
            self.to_host += 1
            return real_to_host(a)

        monkeypatch.setattr(xpmod, "to_device", to_device)
        monkeypatch.setattr(xpmod, "to_host", to_host)


SPEC = {"seed": 3, "effects": [{"name": "grain", "sigma": 0.05}, {"name": "vignette", "strength": 0.4},
                               {"name": "motion_blur", "shutter": 0.5}]}


def test_an_effects_chain_crosses_to_the_device_once_and_back_once(monkeypatch):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (36, 64, 3), dtype=np.uint8) for _ in range(10)]
    pipe = edit.Pipeline.from_spec(SPEC)
    want = pipe.render_frames(frames, 2, 8)
    dev = _Counting(monkeypatch)
    lo, hi = pipe.source_range(2, 8, len(frames))
    got = pipe.render({k: frames[k] for k in range(lo, hi)}, len(frames), 2, 8, xp=dev.module)
    assert dev.to_device == hi - lo and dev.to_host == 6  # three kernels per frame, two copies
    assert all(np.array_equal(a, b) for a, b in zip(want, got, strict=True))


def test_device_choice():
    assert device_module("cpu") is np
    try:
        import cupy  # noqa: F401

        has_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001
        has_gpu = False
    if not has_gpu:
        assert device_module("auto") is np
        with pytest.raises(ConfigError, match="needs CuPy and a CUDA device"):
            device_module("gpu")
    with pytest.raises(ConfigError, match="unknown device"):
        device_module("tpu")


def test_a_gpu_node_without_a_gpu_refuses_to_start():
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            pytest.skip("this machine has a GPU: the refusal cannot happen here")
    except Exception:  # noqa: BLE001
        pass
    r = cli("node", "--coordinator", "127.0.0.1:1", "--device", "gpu", timeout=60)
    assert r.returncode == ConfigError.exit_code and "needs CuPy and a CUDA device" in r.stderr, r.stderr[-1500:]


@pytest.mark.gpu
def test_effects_on_the_gpu_match_the_cpu():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (72, 128, 3), dtype=np.uint8) for _ in range(10)]
    pipe = edit.Pipeline.from_spec(SPEC)
    lo, hi = pipe.source_range(2, 8, len(frames))
    want = pipe.render({k: frames[k] for k in range(lo, hi)}, len(frames), 2, 8)
    got = pipe.render({k: frames[k] for k in range(lo, hi)}, len(frames), 2, 8, xp=device_module("gpu"))
    assert all(isinstance(g, np.ndarray) for g in got)  # back on the host for the encoder
    assert max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(want, got, strict=True)) <= 1
    del cp
