"""kernels.look: the fitted Lab-transfer LUT (and its .cube text), lighting key and mood."""

from __future__ import annotations

import numpy as np
import pytest
from lookalike.kernels import features as kf
from lookalike.kernels import grade as kg
from lookalike.kernels import look


def neutral_picture(n: int = 20000, seed: int = 0) -> np.ndarray:
    """Pixels whose Lab statistics are the neutral reference's (sampled, then clipped to sRGB)."""
    rng = np.random.default_rng(seed)
    lab = rng.normal(look.NEUTRAL_LAB_MEAN, look.NEUTRAL_LAB_STD, size=(n, 3)).astype(np.float32)
    lab[:, 0] = np.clip(lab[:, 0], 5, 95)
    return kf.lab_to_rgb(lab)


def test_lut_moves_a_neutral_picture_to_the_scene_statistics():
    target_mean, target_std = [62.0, 4.0, 18.0], [15.0, 8.0, 10.0]
    table = look.lut_table(target_mean, target_std, size=33)
    src = neutral_picture()
    out = look.apply_table(src, table)
    lab_in, lab_out = kf.rgb_to_lab(src), kf.rgb_to_lab(out)
    # Exact where the transfer stays inside sRGB: compare with the transfer applied directly.
    direct = look.lab_transfer(lab_in.astype(np.float64), target_mean, target_std)
    inside = np.all(np.abs(kf.rgb_to_lab(kf.lab_to_rgb(direct.astype(np.float32))) - direct) < 0.5, axis=1)
    assert inside.mean() > 0.6
    assert np.abs(lab_out[inside] - direct[inside]).mean() < 1.5
    assert lab_out[:, 0].mean() == pytest.approx(target_mean[0], abs=2.5)
    assert lab_out[:, 2].mean() == pytest.approx(target_mean[2], abs=3.0)
    # The warm target reads warm in grade.py's own terms.
    assert kg.measure_grade(out[None])["temperature"] > kg.measure_grade(src[None])["temperature"] + 0.1


def test_neutral_statistics_give_an_identity_lut():
    table = look.lut_table(list(look.NEUTRAL_LAB_MEAN), list(look.NEUTRAL_LAB_STD), size=9)
    axis = np.linspace(0, 1, 9)
    ident = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)
    np.testing.assert_allclose(table, ident, atol=2e-3)


def test_cube_text_layout():
    table = look.lut_table([50.0, 0.0, 0.0], [20.0, 14.0, 14.0], size=3)
    lines = look.cube_text(table, "t").splitlines()
    assert lines[:4] == ['TITLE "t"', "LUT_3D_SIZE 3", "DOMAIN_MIN 0.0 0.0 0.0", "DOMAIN_MAX 1.0 1.0 1.0"]
    assert len(lines) == 4 + 27
    # Red changes fastest: the second entry is (r=0.5, g=0, b=0).
    np.testing.assert_allclose([float(v) for v in lines[5].split()], table[1, 0, 0], atol=1e-6)


def test_lab_moments_of_a_histogram():
    bins = np.array([0, kf.COLOR_LEVELS**3 - 1])  # near black and near white, equal weight
    mean, std = look.lab_moments(bins, np.array([1.0, 1.0]))
    assert mean[0] == pytest.approx(50.0, abs=3.0) and std[0] == pytest.approx(mean[0], abs=3.0)


@pytest.mark.parametrize(
    ("luma", "dark", "bright", "key"),
    [(0.7, 0.05, 0.6, "high_key"), (0.2, 0.7, 0.05, "low_key"), (0.45, 0.2, 0.2, "normal")],
)
def test_lighting_key(luma, dark, bright, key):
    assert look.lighting_key(luma, dark, bright) == key


def test_mood_follows_its_terms():
    calm = look.mood(luma_mean=0.2, saturation=0.4, temperature=-0.1, camera_speed=0.0,
                     cuts_per_minute=2, tempo_bpm=70, lufs=-30)  # fmt: skip
    lively = look.mood(luma_mean=0.7, saturation=1.8, temperature=0.15, camera_speed=0.6,
                       cuts_per_minute=40, tempo_bpm=150, lufs=-9)  # fmt: skip
    assert calm["valence"] < 0.35 < 0.6 < lively["valence"]
    assert calm["energy"] < 0.3 < 0.6 < lively["energy"]
    assert "dark" in calm["words"] and "calm" in calm["words"] and "sombre" in calm["words"]
    assert "bright" in lively["words"] and "energetic" in lively["words"] and "cheerful" in lively["words"]
    quiet = look.mood(luma_mean=0.5, saturation=1.0, temperature=0.0, camera_speed=0.0,
                      cuts_per_minute=0, tempo_bpm=None, lufs=None)  # fmt: skip
    assert quiet["energy"] == 0.0
