"""Colour transfer: statistics land on the reference's, identity when source = reference, LUT fit."""

from __future__ import annotations

import numpy as np
import pytest
from lookalike.kernels import lut as L
from lookalike.kernels import transfer as X
from lookalike.kernels.compose import render_background
from lookalike.kernels.grade import rgb_to_lab
from lookalike.kernels.params import ParameterError


def cupy_or_skip():
    """CuPy with a usable GPU, or skip (the parity tests run on GPU nodes only)."""
    cp = pytest.importorskip("cupy")
    try:
        cp.zeros(1).sum()
    except Exception as exc:  # noqa: BLE001 - a cupy without a device
        pytest.skip(f"cupy has no usable GPU ({exc})")
    return cp


def _scene(palette, seed: int) -> np.ndarray:
    img = render_background(np, 90, 160, palette, [0.5, 0.3, 0.2], 0.0, seed)
    return img if img.dtype == np.uint8 else (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


@pytest.fixture(scope="module")
def warm() -> np.ndarray:
    return _scene([[220, 140, 70], [120, 60, 30], [250, 220, 180]], 1)


@pytest.fixture(scope="module")
def cool() -> np.ndarray:
    return _scene([[40, 80, 140], [20, 30, 60], [160, 190, 230]], 2)


def test_reinhard_moves_mean_and_std_onto_the_reference(warm, cool) -> None:
    src, ref = X.ColourStats.of([warm]), X.ColourStats.of([cool])
    lab = X.transfer_lab(rgb_to_lab(warm), src, ref, "reinhard").reshape(-1, 3).astype(np.float64)
    assert np.allclose(lab.mean(0), ref.mean, atol=1e-3)
    assert np.allclose(lab.std(0), ref.std, rtol=1e-3)
    # Back in sRGB, colours outside the gamut are clipped: still within a few Lab units.
    out = rgb_to_lab(X.transfer(warm.astype(np.float32) / 255, src, ref, "reinhard")).reshape(-1, 3)
    assert np.allclose(out.mean(0), ref.mean, atol=3.0)


def test_histogram_matches_quantiles(warm, cool) -> None:
    src, ref = X.ColourStats.of([warm]), X.ColourStats.of([cool])
    lab = X.transfer_lab(rgb_to_lab(warm), src, ref, "histogram").reshape(-1, 3)
    q = np.quantile(lab, [0.1, 0.5, 0.9], axis=0)
    assert np.allclose(q, ref.quantiles[[10, 50, 90]], atol=1.0)


def test_same_statistics_is_identity_and_strength_zero_too(warm, cool) -> None:
    s = X.ColourStats.of([warm])
    for method in X.METHODS:
        assert np.abs(X.transfer(warm, s, s, method).astype(int) - warm).max() <= 1
    assert (
        np.abs(X.transfer(warm, s, X.ColourStats.of([cool]), "reinhard", 0.0).astype(int) - warm).max() <= 1
    )


def test_fitted_lut_approximates_the_direct_transfer(warm, cool) -> None:
    src, ref = X.ColourStats.of([warm]), X.ColourStats.of([cool])
    lut = X.fit_lut(src, ref, "reinhard", size=33)
    direct = X.transfer(warm, src, ref, "reinhard").astype(int)
    via = L.apply_lut(warm, lut).astype(int)
    assert np.abs(direct - via).mean() < 0.5 and np.abs(direct - via).max() <= 4
    assert lut.title == "lookalike reinhard transfer"


def test_match_frames_is_a_lut_and_bad_args(warm, cool) -> None:
    lut = X.match_frames([warm, warm[::-1]], [cool], "histogram", size=9)
    assert lut.size == 9
    with pytest.raises(ParameterError, match="transfer.method"):
        X.fit_lut(X.ColourStats.of([warm]), X.ColourStats.of([cool]), "magic")
    with pytest.raises(ParameterError, match="transfer.strength"):
        X.transfer_lab(rgb_to_lab(warm), X.ColourStats.of([warm]), X.ColourStats.of([cool]), "reinhard", 2.0)
    with pytest.raises(ParameterError, match="at least one frame"):
        X.ColourStats.of([])


@pytest.mark.gpu
def test_gpu_parity(warm, cool) -> None:
    cp = cupy_or_skip()
    src, ref = X.ColourStats.of([warm]), X.ColourStats.of([cool])
    for method in X.METHODS:
        cpu = X.transfer(warm, src, ref, method)
        gpu = X.transfer(cp.asarray(warm), src, ref, method).get()
        assert np.abs(cpu.astype(int) - gpu).max() <= 1
    gs = X.ColourStats.of([cp.asarray(warm)])
    assert np.allclose(gs.mean, src.mean, atol=1e-3)


def test_fit_lut_pairs_recovers_a_known_grade(warm, cool) -> None:
    # A known grade (gamma and channel gains) applied to two pictures; the LUT fitted on one
    # reproduces it on both, and on colours in neither within a few code values.
    truth = L.from_function(
        lambda c: np.clip(c ** np.float32(0.8) * np.array([1.0, 0.95, 0.85], np.float32), 0, 1), 33
    )
    pictures = np.concatenate([warm, cool], axis=0)
    graded = L.apply_lut(pictures, truth)
    fitted = X.fit_lut_pairs(pictures, graded, 17)
    err = np.abs(L.apply_lut(pictures, fitted).astype(int) - graded)
    assert err.mean() < 1.0 and err.max() <= 8
    with pytest.raises(ParameterError, match="fit_lut_pairs.dst"):
        X.fit_lut_pairs(warm, cool[:10])
    # No pairs at all: the identity.
    empty = X.fit_lut_pairs(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), 5)
    assert np.allclose(empty.table, L.identity(5).table, atol=1e-6)
