"""Transition kernels: known blends (t = 0.5 is the average), endpoints, wipes, sizes, GPU parity."""

from __future__ import annotations

import numpy as np
import pytest
from lookalike.kernels import transitions as T
from lookalike.kernels.params import ParameterError


def cupy_or_skip():
    """CuPy with a usable GPU, or skip (the parity tests run on GPU nodes only)."""
    cp = pytest.importorskip("cupy")
    try:
        cp.zeros(1).sum()
    except Exception as exc:  # noqa: BLE001 - a cupy without a device
        pytest.skip(f"cupy has no usable GPU ({exc})")
    return cp


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    return (
        rng.integers(0, 256, (36, 64, 3), dtype=np.uint8),
        rng.integers(0, 256, (36, 64, 3), dtype=np.uint8),
    )


def test_progress_is_frame_centred() -> None:
    assert [T.progress(i, 4) for i in range(4)] == [0.125, 0.375, 0.625, 0.875]
    assert T.progress(0, 1) == 0.5
    with pytest.raises(ParameterError, match="outside a transition of 3 frames"):
        T.progress(3, 3)


def test_dissolve_half_is_the_average(pair) -> None:
    a, b = pair
    want = np.round((a.astype(int) + b.astype(int)) / 2).astype(np.uint8)  # ties to even
    assert np.array_equal(T.dissolve(a, b, 0.5), want)
    af, bf = a / 255.0, b / 255.0
    assert np.allclose(
        T.dissolve(af.astype(np.float32), bf.astype(np.float32), 0.5), (af + bf) / 2, atol=1e-6
    )


def test_dissolve_weights_and_endpoints(pair) -> None:
    a, b = pair
    assert np.array_equal(T.dissolve(a, b, 0.0), a)
    assert np.array_equal(T.dissolve(a, b, 1.0), b)
    got = T.dissolve(a, b, 0.25).astype(int)
    want = np.round((a.astype(int) * 192 + b.astype(int) * 64) / 256)
    assert np.array_equal(got, want)


def test_fast_cpu_blend_equals_the_integer_definition() -> None:
    rng = np.random.default_rng(8)
    a = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    for w in range(1, 256):
        assert np.array_equal(T.mix(a, b, w / 256.0), T.mix_reference(a, b, w)), f"weight {w}/256"


def test_fade_through_black_and_white(pair) -> None:
    a, b = pair
    assert int(T.fade(a, b, 0.5).max()) == 0
    assert int(T.fade(a, b, 0.5, colour=(1.0, 1.0, 1.0)).min()) == 255
    # A quarter of the way: a at half strength over black.
    assert np.array_equal(T.fade(a, b, 0.25), np.round(a.astype(int) / 2).astype(np.uint8))


def test_wipe_uncovers_from_the_named_side(pair) -> None:
    a, b = pair
    out = T.wipe(a, b, 0.5, "left", softness=0.0)
    # Moving left from the right edge: right half shows b, left half a.
    assert np.array_equal(out[:, 40:], b[:, 40:]) and np.array_equal(out[:, :24], a[:, :24])
    down = T.wipe(a, b, 0.5, "down", softness=0.0)
    assert np.array_equal(down[:10], b[:10]) and np.array_equal(down[-10:], a[-10:])
    assert np.array_equal(T.wipe(a, b, 0.0, "right"), a) and np.array_equal(T.wipe(a, b, 1.0, "right"), b)


@pytest.mark.parametrize("kind", T.KINDS)
def test_every_kind_starts_at_a_and_ends_at_b(kind, pair) -> None:
    a, b = pair
    flat_a = np.full_like(a, 40)
    flat_b = np.full_like(b, 200)
    # On flat pictures, geometry does not matter: t=0 must be a, t=1 must be b (within rounding).
    assert np.abs(T.apply(kind, flat_a, flat_b, 0.0).astype(int) - 40).max() <= 1
    assert np.abs(T.apply(kind, flat_a, flat_b, 1.0).astype(int) - 200).max() <= 1
    mid = T.apply(kind, a, b, 0.5)
    assert mid.shape == a.shape and mid.dtype == np.uint8


def test_whip_smears_along_its_direction(pair) -> None:
    a, b = pair
    mid = T.whip(a, b, 0.5, "left", blur=0.3).astype(np.float32)
    # Smeared horizontally: neighbouring columns alike, rows still differ.
    dx = np.abs(np.diff(mid, axis=1)).mean()
    dy = np.abs(np.diff(mid, axis=0)).mean()
    assert dx < 0.3 * dy


def test_bad_input_names_the_parameter(pair) -> None:
    a, b = pair
    with pytest.raises(ParameterError, match="transition.incoming"):
        T.dissolve(a, b[:, :32], 0.5)
    with pytest.raises(ParameterError, match="transition.t"):
        T.dissolve(a, b, 1.5)
    with pytest.raises(ParameterError, match="transition.kind"):
        T.apply("spin", a, b, 0.5)
    with pytest.raises(ParameterError, match="transition.direction"):
        T.wipe(a, b, 0.5, "sideways")
    with pytest.raises(ParameterError, match="transition.dissolve"):
        T.apply("dissolve", a, b, 0.5, colour=(1, 1, 1))


@pytest.mark.gpu
def test_gpu_parity(pair) -> None:
    cp = cupy_or_skip()
    a, b = pair
    for kind in ("cut", "dissolve", "fade", "wipe"):
        for t in (0.1, 0.5, 0.8):
            assert np.array_equal(
                T.apply(kind, cp.asarray(a), cp.asarray(b), t).get(), T.apply(kind, a, b, t)
            )
    for kind in ("zoom", "whip"):
        gpu = T.apply(kind, cp.asarray(a), cp.asarray(b), 0.4).get()
        cpu = T.apply(kind, a, b, 0.4)
        assert np.abs(gpu.astype(int) - cpu).max() <= 3  # CPU warps use OpenCV's 1/32-pixel steps
