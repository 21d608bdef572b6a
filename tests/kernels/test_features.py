"""NumPy reference tests for kernels.features: colour maths, change scores, cuts, motion, palette."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
from lookalike.kernels import features as kf
from scipy import ndimage


def texture(h: int = 400, w: int = 600, seed: int = 0) -> np.ndarray:
    """A smooth random grey texture in [0, 1] with structure at several scales."""
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.random((h, w)), 3) + 0.5 * ndimage.gaussian_filter(
        rng.random((h, w)), 8
    )
    return ((img - img.min()) / (img.max() - img.min())).astype(np.float32)


def view(img: np.ndarray, cx: float, cy: float, scale: float = 1.0, roll_deg: float = 0.0, w=128, h=72):
    """What a camera centred at (cx, cy) of `img`, zoomed by `scale` and rolled, sees."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    X, Y = (xs - (w - 1) / 2) / scale, (ys - (h - 1) / 2) / scale
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    return ndimage.map_coordinates(img, [s * X + c * Y + cy, c * X - s * Y + cx], order=1).astype(np.float32)


def test_lab_of_known_colours_and_round_trip():
    rgb = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.2, 0.5, 0.7]], dtype=np.float32)
    lab = kf.rgb_to_lab(rgb)
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(lab[1], [53.24, 80.09, 67.20], atol=0.1)
    np.testing.assert_allclose(lab[2], [0.0, 0.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(kf.lab_to_rgb(lab), rgb, atol=2e-3)


def test_hsv_matches_colorsys():
    rng = np.random.default_rng(1)
    rgb = rng.random((50, 3)).astype(np.float32)
    hsv = kf.rgb_to_hsv(rgb)
    for p, q in zip(rgb, hsv, strict=True):
        h, s, v = colorsys.rgb_to_hsv(*p)
        assert q[0] == pytest.approx(h * 360.0, abs=1e-3)
        assert q[1] == pytest.approx(s, abs=1e-5)
        assert q[2] == pytest.approx(v, abs=1e-5)


def test_content_score_cut_high_fade_low():
    rng = np.random.default_rng(2)
    a = rng.random((36, 64, 3)).astype(np.float32)
    b = rng.random((36, 64, 3)).astype(np.float32)
    ha, hb = kf.rgb_to_hsv(a), kf.rgb_to_hsv(b)
    assert kf.content_score(ha, ha) == 0.0
    assert kf.content_score(ha, hb) > 40.0
    # A 10% fade step is a global gain, not a change of picture.
    assert kf.content_score(ha, kf.rgb_to_hsv(a * 0.9)) < 2.0


def test_adaptive_cuts_keeps_isolated_peaks_only():
    s = np.full(100, 3.0)
    s[[30, 70]] = 40.0  # cuts
    s[50:60] = 20.0  # sustained fast motion: high but not standing out
    s[33] = 35.0  # too close to the cut at 30
    assert kf.adaptive_cuts(s, min_scene_len=8) == [30, 70]
    assert kf.adaptive_cuts(np.zeros(50)) == []


@pytest.mark.parametrize(
    ("dx", "dy", "scale", "roll"),
    [
        (3.0, 0.0, 1.0, 0.0),
        (0.0, -2.0, 1.0, 0.0),
        (-6.5, 4.0, 1.0, 0.0),
        (0.0, 0.0, 1.03, 0.0),
        (0, 0, 0.97, 0.0),
        (0, 0, 1.0, 1.5),
    ],
    ids=["pan_right", "tilt_up", "diagonal", "zoom_in", "zoom_out", "roll"],
)
def test_estimate_motion_recovers_known_camera_moves(dx, dy, scale, roll):
    img = texture()
    prev = view(img, 300, 200)
    cur = view(img, 300 + dx, 200 + dy, scale, roll)
    mdx, mdy, a, b = kf.estimate_motion(prev, cur)
    assert mdx == pytest.approx(dx / 128, abs=0.002)
    assert mdy == pytest.approx(dy / 72, abs=0.002)
    assert 1.0 / math.hypot(1 + a, b) == pytest.approx(scale, abs=0.002)
    assert math.degrees(math.atan2(b, 1 + a)) == pytest.approx(roll, abs=0.1)


def test_estimate_motion_ignores_flat_and_faded_frames():
    flat = np.full((72, 128), 0.5, dtype=np.float32)
    assert kf.estimate_motion(flat, flat * 0.5) == [0.0, 0.0, 0.0, 0.0]
    prev = view(texture(), 300, 200)
    assert np.abs(kf.estimate_motion(prev, prev * 0.7 + 0.1)).max() < 1e-3


def test_trajectory_and_labels():
    aspect = 16 / 9
    fps = 24.0
    pan = [[0.01, 0.0, 0.0, 0.0]] * 48
    traj = kf.accumulate_trajectory(pan, aspect)
    assert traj[0] == [0.0, 0.0, 1.0, 0.0]
    assert traj[-1][0] == pytest.approx(0.47, abs=1e-9)
    assert kf.classify_camera(traj, 48 / fps) == ("pan_right", pytest.approx(0.47 / 2.0))
    tilt = kf.accumulate_trajectory([[0.0, -0.01, 0.0, 0.0]] * 48, aspect)
    assert kf.classify_camera(tilt, 2.0)[0] == "tilt_up"
    zoom = kf.accumulate_trajectory([[0.0, 0.0, 1 / 1.01 - 1, 0.0]] * 49, aspect)
    assert zoom[-1][2] == pytest.approx(1.01**48)
    label, speed = kf.classify_camera(zoom, 2.0)
    assert label == "zoom_in" and speed == pytest.approx(48 * math.log(1.01) / 2.0)
    still = kf.accumulate_trajectory([[0.0001, -0.0001, 0.0, 0.0]] * 48, aspect)
    assert kf.classify_camera(still, 2.0) == ("static", 0.0)
    rng = np.random.default_rng(3)
    shake = np.cumsum(rng.normal(0, 0.004, (96, 2)), axis=0)
    steps = np.diff(np.vstack([[0, 0], shake - np.linspace(0, 1, 96)[:, None] * shake[-1]]), axis=0)
    jitter = [[float(x), float(y), 0.0, 0.0] for x, y in steps]
    assert kf.classify_camera(kf.accumulate_trajectory(jitter, aspect), 4.0)[0] == "handheld"


def test_palette_recovers_colours_and_weights():
    frame = np.zeros((60, 100, 3), dtype=np.float32)
    frame[:30] = np.array([70, 130, 200]) / 255  # sky
    frame[30:50] = np.array([60, 160, 50]) / 255  # grass
    frame[50:] = np.array([200, 180, 60]) / 255  # sand
    stats = kf.frame_colour_stats(frame)
    pal = kf.palette_from_histogram(
        np.asarray(stats["colours"]["bins"]), np.asarray(stats["colours"]["counts"]), k=5
    )
    assert len(pal) == 3
    assert sum(p["weight"] for p in pal) == pytest.approx(1.0, abs=1e-9)
    assert [p["weight"] for p in pal] == pytest.approx([0.5, 1 / 3, 1 / 6], abs=1e-6)
    # Histogram bins are 16 levels wide: the reported colours sit within half a bin.
    for p, want in zip(pal, ([70, 130, 200], [60, 160, 50], [200, 180, 60]), strict=True):
        assert np.abs(np.array(p["rgb"]) - want).max() <= 8
        np.testing.assert_allclose(p["lab"], kf.rgb_to_lab(np.array(p["rgb"], np.float32) / 255), atol=1.0)


def test_frame_stats_of_mid_grey():
    grey = np.full((10, 10, 3), 0.5, dtype=np.float32)
    s = kf.frame_colour_stats(grey)
    assert s["luma_mean"] == pytest.approx(0.5)
    assert s["luma_sq"] == pytest.approx(0.25)
    assert s["lin_luminance"] == pytest.approx(0.2140, abs=1e-3)
    assert s["saturation"] == 0.0
    assert abs(s["b_mean"]) < 1e-2


def test_weighted_kmeans_is_deterministic():
    rng = np.random.default_rng(4)
    pts = np.concatenate([rng.normal(c, 1.0, (200, 3)) for c in (0, 20, 40)])
    w = rng.random(len(pts))
    c1, w1 = kf.weighted_kmeans(pts, w, 3)
    c2, w2 = kf.weighted_kmeans(pts, w, 3)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(w1, w2)
    assert sorted(np.round(c1[:, 0] / 20).astype(int).tolist()) == [0, 1, 2]


@pytest.mark.gpu
def test_gpu_parity_of_change_score_and_motion():
    cp = pytest.importorskip("cupy")
    img = texture()
    prev, cur = view(img, 300, 200), view(img, 304, 198, 1.02)
    host = kf.estimate_motion(prev, cur)
    dev = kf.estimate_motion(cp.asarray(prev), cp.asarray(cur))
    np.testing.assert_allclose(dev, host, atol=1e-4)
    rgb = np.random.default_rng(5).random((36, 64, 3)).astype(np.float32)
    a, b = kf.rgb_to_hsv(rgb), kf.rgb_to_hsv(rgb[::-1].copy())
    assert kf.content_score(cp.asarray(a), cp.asarray(b)) == pytest.approx(kf.content_score(a, b), rel=1e-4)
