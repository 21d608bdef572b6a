"""Counter-based randomness: reproducible, independent per key, with the promised moments."""

from __future__ import annotations

import numpy as np
import pytest
from lookalike.kernels import seeded


def cupy_or_skip():
    """CuPy with a usable GPU, or skip (the parity tests run on GPU nodes only)."""
    cp = pytest.importorskip("cupy")
    try:
        cp.zeros(1).sum()
    except Exception as exc:  # noqa: BLE001 - a cupy without a device
        pytest.skip(f"cupy has no usable GPU ({exc})")
    return cp


def test_same_key_same_numbers_different_key_different_numbers() -> None:
    k1, k2 = seeded.key(7, 100, "grain"), seeded.key(7, 101, "grain")
    assert k1 == seeded.key(7, 100, "grain") and k1 != k2
    assert seeded.key(-1) == seeded.key(2**64 - 1)  # ints are taken modulo 2**64
    a = seeded.uniform(np, k1, 1000)
    assert np.array_equal(a, seeded.uniform(np, k1, 1000))
    assert abs(np.corrcoef(a, seeded.uniform(np, k2, 1000))[0, 1]) < 0.1


def test_hash_is_a_permutation_and_matches_its_scalar_twin() -> None:
    assert seeded.mix32(0) == 0
    h = seeded.hash_u32(np, np.arange(1 << 20, dtype=np.uint32), 0)
    assert np.unique(h).size == 1 << 20  # no collisions: a bijection on 32 bits
    x = np.arange(5, dtype=np.uint32)
    assert [int(v) for v in seeded.hash_u32(np, x, 0)] == [
        seeded.mix32(i ^ seeded.mix32(0)) for i in range(5)
    ]


def test_normal_and_uniform_moments() -> None:
    z = seeded.normal(np, seeded.key(1), 400_000).astype(np.float64)
    assert abs(z.mean()) < 0.01 and abs(z.var() - 1.0) < 0.01
    u = seeded.uniform(np, seeded.key(2), 400_000)
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.005
    i = seeded.integers(np, seeded.key(3), 100_000, 10)
    assert set(np.unique(i)) == set(range(10))


@pytest.mark.gpu
def test_gpu_bit_identical() -> None:
    cp = cupy_or_skip()
    k = seeded.key(9, 3)
    assert np.array_equal(seeded.normal(cp, k, 10000).get(), seeded.normal(np, k, 10000))
    assert np.array_equal(seeded.integers(cp, k, 1000, 77).get(), seeded.integers(np, k, 1000, 77))
