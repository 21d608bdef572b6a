"""Grade kernels: colour spaces against published values, measure/adjust round trips, matching, palette."""

from __future__ import annotations

import numpy as np
import pytest
from lookalike.kernels import grade as G
from lookalike.kernels.compose import render_background

PALETTE = [[200, 120, 60], [40, 60, 90], [230, 220, 200]]
WEIGHTS = [0.5, 0.3, 0.2]


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    """A 180x320 palette backdrop: smooth regions, texture, a spread of tones and hues."""
    return render_background(np, 180, 320, PALETTE, WEIGHTS, 0.0, 5)


def test_srgb_round_trip_and_known_points() -> None:
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    assert np.allclose(G.linear_to_srgb(G.srgb_to_linear(x)), x, atol=1e-5)
    assert G.srgb_to_linear(np.array([0.5], np.float32))[0] == pytest.approx(0.21404, abs=1e-4)
    assert G.srgb_to_linear(np.array([128], np.uint8))[0] == pytest.approx(0.21586, abs=1e-4)


def test_lab_known_values_and_round_trip() -> None:
    rgb = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    lab = G.rgb_to_lab(rgb)
    # sRGB primaries in CIELAB D65 (Bruce Lindbloom's calculator).
    assert np.allclose(lab[0], [53.2408, 80.0925, 67.2032], atol=0.02)
    assert np.allclose(lab[1], [100.0, 0.0, 0.0], atol=0.01)
    assert np.allclose(lab[2], [0.0, 0.0, 0.0], atol=0.01)
    assert np.allclose(lab[3], [32.2970, 79.1875, -107.8602], atol=0.02)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (500, 3)).astype(np.float32)
    assert np.abs(G.lab_to_rgb(G.rgb_to_lab(x)) - x).max() < 1e-4


def test_measure_reference_grey_is_the_origin() -> None:
    grey = np.full((8, 8, 3), float(G.linear_to_srgb(np.array([0.18], np.float32))[0]), np.float32)
    m = G.measure_grade(grey)
    assert m["exposure"] == pytest.approx(0.0, abs=1e-4)
    assert m["contrast"] == pytest.approx(0.0, abs=1e-4)
    assert m["saturation"] == pytest.approx(0.0, abs=1e-3)
    assert m["temperature"] == pytest.approx(0.0, abs=1e-3)


def test_measure_contrast_and_temperature_definitions() -> None:
    # Half the pixels at luma 0.3, half at 0.7: std 0.2 = the reference contrast.
    img = np.full((4, 4, 3), 0.3, np.float32)
    img[::2] = 0.7
    assert G.measure_grade(img)["contrast"] == pytest.approx(1.0, abs=1e-5)
    yellowish = np.tile(np.array([0.8, 0.7, 0.3], np.float32), (4, 4, 1))
    bluish = np.tile(np.array([0.3, 0.45, 0.8], np.float32), (4, 4, 1))
    assert G.measure_grade(yellowish)["temperature"] > 0.3
    assert G.measure_grade(bluish)["temperature"] < -0.3
    assert G.measure_grade(yellowish)["saturation"] == pytest.approx(
        float(np.hypot(*G.rgb_to_lab(yellowish)[0, 0, 1:])) / G.SATURATION_REF_CHROMA, rel=1e-5
    )


def test_uint8_in_uint8_out(picture: np.ndarray) -> None:
    u8 = G.to_uint8(picture)
    out = G.adjust_saturation(u8, 0.5)
    assert out.dtype == np.uint8 and out.shape == u8.shape
    assert G.adjust_saturation(picture, 0.5).dtype == np.float32
    assert np.array_equal(G.apply_grade(u8, G.IDENTITY_GRADE), u8)


def test_single_adjustments_move_their_measure(picture: np.ndarray) -> None:
    dark = G.adjust_exposure(picture, -2.0)  # no clipping going down: exactly two stops
    base = G.measure_grade(picture)
    assert G.measure_grade(dark)["exposure"] == pytest.approx(base["exposure"] - 2.0, abs=1e-3)
    flat = G.adjust_contrast(picture, 0.5, pivot=None)
    assert G.measure_grade(flat)["contrast"] == pytest.approx(0.5 * base["contrast"], rel=0.02)
    grey = G.adjust_saturation(picture, 0.0)
    assert G.measure_grade(grey)["saturation"] < 0.01
    warm = G.adjust_temperature(picture, 0.1)
    assert G.measure_grade(warm)["temperature"] == pytest.approx(base["temperature"] + 0.1, abs=0.01)


@pytest.mark.parametrize(
    "target",
    [
        {"exposure": -1.25, "contrast": 0.2, "saturation": 0.2, "temperature": 0.0},
        {"exposure": 1.5, "contrast": 1.08, "saturation": 1.04, "temperature": 0.065},
        {"exposure": 0.35, "contrast": 1.18, "saturation": 1.37, "temperature": 0.23},
        {"exposure": 0.0, "contrast": 0.9, "saturation": 0.6, "temperature": -0.12},
    ],
    ids=["dim-flat", "bright", "warm-punchy", "cool"],
)
def test_match_grade_reaches_target(picture: np.ndarray, target: dict) -> None:
    """Targets shaped like frames of Big Buck Bunny (measured) plus a cool one."""
    m = G.measure_grade(G.match_grade(picture, target))
    assert m["exposure"] == pytest.approx(target["exposure"], abs=0.05)
    assert m["contrast"] == pytest.approx(target["contrast"], abs=0.05)
    assert m["saturation"] == pytest.approx(target["saturation"], abs=0.05)
    assert m["temperature"] == pytest.approx(target["temperature"], abs=0.02)


def test_match_grade_strength_and_partial_targets(picture: np.ndarray) -> None:
    base = G.measure_grade(picture)
    half = G.measure_grade(G.match_grade(picture, {"exposure": base["exposure"] - 1.0}, strength=0.5))
    assert half["exposure"] == pytest.approx(base["exposure"] - 0.5, abs=0.05)
    adj = G.solve_grade(picture, {"exposure": base["exposure"] - 1.0})
    assert (adj["contrast"], adj["saturation"], adj["temperature"]) == (1.0, 1.0, 0.0)


def test_palette_map_pulls_toward_palette(picture: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 1, (64, 64, 3)).astype(np.float32)
    teal = [[20, 150, 160]]
    out = G.palette_map(img, teal, [1.0], strength=1.0)
    target_ab = G.rgb_to_lab(np.array(teal, np.float32) / 255)[0, 1:]
    before = np.abs(G.rgb_to_lab(img)[..., 1:] - target_ab).mean()
    after = np.abs(G.rgb_to_lab(out)[..., 1:] - target_ab).mean()
    assert after < 0.25 * before
    assert np.allclose(G.palette_map(img, teal, [1.0], strength=0.0), img)
    # Weights are priors: with two palette colours, the heavier one attracts more pixels.
    two = [[200, 40, 40], [40, 40, 200]]
    heavy_red = G.rgb_to_lab(G.palette_map(img, two, [0.9, 0.1], 1.0))[..., 2].mean()
    heavy_blue = G.rgb_to_lab(G.palette_map(img, two, [0.1, 0.9], 1.0))[..., 2].mean()
    assert heavy_red > heavy_blue + 5


@pytest.mark.gpu
def test_gpu_parity(picture: np.ndarray) -> None:
    cp = pytest.importorskip("cupy")
    d = cp.asarray(picture)
    assert np.allclose(cp.asnumpy(G.rgb_to_lab(d)), G.rgb_to_lab(picture), atol=1e-3)
    target = {"exposure": 0.3, "contrast": 1.1, "saturation": 0.8, "temperature": -0.05}
    adj = G.solve_grade(picture, target)
    assert np.allclose(cp.asnumpy(G.apply_grade(d, adj)), G.apply_grade(picture, adj), atol=1e-4)
    gm, cm = G.measure_grade(d), G.measure_grade(picture)
    assert all(gm[k] == pytest.approx(cm[k], abs=1e-4) for k in G.GRADE_KEYS)
    out = G.palette_map(d, PALETTE, WEIGHTS, 0.5)
    assert np.allclose(cp.asnumpy(out), G.palette_map(picture, PALETTE, WEIGHTS, 0.5), atol=1e-4)
    u8 = G.to_uint8(picture)
    diff = np.abs(cp.asnumpy(G.adjust_exposure(cp.asarray(u8), 0.7)).astype(int) - G.adjust_exposure(u8, 0.7))
    assert diff.max() <= 1


@pytest.mark.parametrize("shift", [0.1, 0.3, -0.1])
def test_an_edit_on_a_saturated_picture_moves_its_way(shift: float) -> None:
    """A strongly blue picture cannot get warmer at the same chroma with these controls: the solver
    must still move temperature the asked way (at least half of it), keep the other measures close,
    and stay with mild adjustments rather than faking the means at the parameter bounds."""
    rng = np.random.default_rng(0)
    img = np.clip(np.array([70, 110, 235], np.float32) + rng.normal(0, 25, (120, 160, 3)), 0, 255).astype(np.uint8)
    base = G.measure_grade(img)
    target = dict(base, temperature=base["temperature"] + shift)
    adj = G.solve_grade(img, target)
    got = G.measure_grade(G.apply_grade(img, adj))
    moved = got["temperature"] - base["temperature"]
    assert np.sign(moved) == np.sign(shift) and abs(moved) >= 0.5 * abs(shift), (moved, shift)
    if abs(shift) <= 0.1:  # an ordinary "warmer"/"cooler": the rest of the look stays
        assert abs(got["exposure"] - base["exposure"]) < 0.1
        assert abs(got["saturation"] - base["saturation"]) < 0.1 * base["saturation"]
        assert abs(got["contrast"] - base["contrast"]) < 0.15 * base["contrast"]
    # Mild adjustments, never the bounds (exposure +-8, factors 0.05-20).
    assert abs(adj["exposure"]) < 1.5 and 0.3 < adj["contrast"] < 3.0 and 0.2 < adj["saturation"] < 4.0, adj
