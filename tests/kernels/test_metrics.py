import numpy as np
import pytest
from lookalike.kernels.metrics import cut_f1, delta_e2000, palette_distance

# Sharma, Wu, Dalal (2005), test data pairs 1, 7, 17 and 25 with their published ΔE00.
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
]


@pytest.mark.parametrize("lab1,lab2,expected", SHARMA)
def test_delta_e2000_matches_published_pairs(lab1, lab2, expected):
    assert float(delta_e2000(np.array(lab1), np.array(lab2))) == pytest.approx(expected, abs=1e-4)


def test_palette_distance_zero_for_same_palette_and_grows_with_shift():
    lab = np.array([[50, 10, 10], [70, -20, 30]], float)
    w = np.array([0.6, 0.4])
    assert palette_distance(lab, w, lab, w) == pytest.approx(0.0, abs=1e-9)
    near = palette_distance(lab, w, lab + [2, 0, 0], w)
    far = palette_distance(lab, w, lab + [15, 0, 0], w)
    assert 0 < near < far


def test_cut_f1_tolerance_and_one_match_per_cut():
    assert cut_f1([10, 20], [11, 20]) == (1.0, 1.0, 1.0)
    p, r, f = cut_f1([10, 20], [10, 10, 13])
    assert (p, r) == (pytest.approx(1 / 3), 0.5)
    assert cut_f1([], []) == (1.0, 1.0, 1.0)
    assert cut_f1([5], [])[2] == 0.0


# --- scores, pictures, distributions, paths, cuts, beats, features ---------------------------------

from lookalike.kernels import metrics as km  # noqa: E402


def test_closeness_is_100_at_zero_50_at_half_and_nan_when_missing():
    assert km.closeness(0.0, 2.0) == 100.0
    assert km.closeness(2.0, 2.0) == pytest.approx(50.0)
    assert km.closeness(-2.0, 2.0) == pytest.approx(50.0)
    assert km.closeness(1.0, 2.0) > km.closeness(3.0, 2.0) > 0
    assert np.isnan(km.closeness(None, 1.0)) and np.isnan(km.closeness(float("nan"), 1.0))


def _picture(seed=0, shape=(96, 128)):
    rng = np.random.default_rng(seed)
    import cv2

    return cv2.GaussianBlur(rng.random(shape), (0, 0), 2.0)


def test_ssim_and_ms_ssim_are_one_for_equal_pictures_and_fall_with_noise():
    a = _picture()
    rng = np.random.default_rng(1)
    assert km.ssim(a, a) == pytest.approx(1.0)
    assert km.ms_ssim(a, a) == pytest.approx(1.0)
    s = [km.ssim(a, np.clip(a + rng.normal(0, sd, a.shape), 0, 1)) for sd in (0.01, 0.05, 0.2)]
    m = [km.ms_ssim(a, np.clip(a + rng.normal(0, sd, a.shape), 0, 1)) for sd in (0.01, 0.05, 0.2)]
    assert s[0] > s[1] > s[2] and m[0] > m[1] > m[2]
    assert km.ssim(a, _picture(5)) < 0.5


def test_ssim_matches_the_textbook_formula_on_flat_patches():
    # Two flat 11x11 pictures: SSIM is the luminance term alone.
    a, b = np.full((11, 11), 0.5), np.full((11, 11), 0.25)
    c1 = 0.01**2
    assert km.ssim(a, b) == pytest.approx((2 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1))


def test_lab_histogram_distances_grow_with_a_shift():
    rng = np.random.default_rng(0)
    lab = np.stack([rng.uniform(20, 80, 5000), rng.normal(10, 10, 5000), rng.normal(-5, 10, 5000)], -1)
    h0 = km.lab_histograms(lab)
    widths = [(hi - lo) / h0.shape[1] for lo, hi in km.LAB_RANGES]
    d = []
    for shift in (0, 3, 10):
        h = km.lab_histograms(lab + [0, shift, 0])
        d.append(km.wasserstein_1d(h0[1], h[1], widths[1]))
    assert d[0] == 0 and d[1] == pytest.approx(3, abs=1.0) and d[2] == pytest.approx(10, abs=1.5)
    c0, c1 = km.chroma_histogram(lab), km.chroma_histogram(lab + [0, 40, 40])
    assert km.bhattacharyya(c0, c0) == pytest.approx(0, abs=1e-6) and km.bhattacharyya(c0, c1) > 0.5
    assert km.chi_square(c0, c0) == 0 and 0 < km.chi_square(c0, c1) <= 1


def test_texture_stats_see_blur_and_noise():
    a = _picture()
    import cv2

    blurred = cv2.GaussianBlur(a, (0, 0), 2.0)
    noisy = np.clip(a + np.random.default_rng(2).normal(0, 0.05, a.shape), 0, 1)
    t, tb, tn = km.texture_stats(a), km.texture_stats(blurred), km.texture_stats(noisy)
    assert tb["gradient"] < t["gradient"] and tn["noise"] > 3 * t["noise"]


def test_trajectory_agreement_same_path_opposite_path_and_still():
    pan = [[0.01 * i, 0.0, 1.0, 0.0] for i in range(48)]
    half_rate = [[x, 0.0, 1.0, 0.0] for x in np.linspace(0, 0.47, 24)]
    same = km.trajectory_agreement(pan, half_rate)  # another frame rate, same move
    assert same["rmse"] == pytest.approx(0, abs=1e-9) and same["correlation"] == pytest.approx(1.0)
    opposite = km.trajectory_agreement(pan, [[-x, y, s, r] for x, y, s, r in pan])
    assert opposite["correlation"] == pytest.approx(-1.0) and opposite["rmse"] > 0.3
    still = km.trajectory_agreement([[0, 0, 1, 0]] * 10, [[0, 0, 1, 0]] * 10)
    assert still["rmse"] == 0 and np.isnan(still["correlation"])


def test_cut_alignment_credits_near_cuts_and_counts_extra_ones():
    assert km.cut_alignment([1.0, 2.0], [1.0, 2.0], 0.1)["soft_f1"] == 1.0
    near = km.cut_alignment([1.0, 2.0], [1.05, 2.0], 0.1)["soft_f1"]
    far = km.cut_alignment([1.0, 2.0], [1.3, 2.0], 0.1)["soft_f1"]
    assert 1.0 > near > far > 0.4
    assert km.cut_alignment([1.0], [1.0, 3.0], 0.1)["soft_f1"] == pytest.approx(2 / 3)
    assert km.cut_alignment([], [], 0.1)["soft_f1"] == 1.0


def test_shot_length_distance_and_beat_f_measure():
    d0 = km.shot_length_distance([1, 2, 4], [4, 2, 1])
    d1 = km.shot_length_distance([1, 2, 4], [2, 4, 8])
    assert d0["wasserstein_log2"] == 0 and d1["wasserstein_log2"] == pytest.approx(1.0)
    beats = np.arange(0, 10, 0.5)
    assert km.beat_f_measure(beats, beats + 0.03) == 1.0
    assert km.beat_f_measure(beats, beats + 0.2) == 0.0
    assert km.beat_f_measure(beats, np.arange(0, 10, 0.25)) == pytest.approx(2 / 3)


def test_frechet_distance_matches_the_closed_form_and_kid_is_near_zero_for_one_distribution():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (4000, 3))
    b = rng.normal(0, 2, (4000, 3)) + [1, 0, 0]
    # Isotropic Gaussians: |mu|^2 + sum (s1 - s2)^2 = 1 + 3 * (1 - 2)^2 = 4.
    assert km.frechet_distance(a, b) == pytest.approx(4.0, rel=0.1)
    assert km.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    same = km.kernel_inception_distance(a[:500], rng.normal(0, 1, (500, 3)))
    other = km.kernel_inception_distance(a[:500], b[:500])
    assert abs(same) < 0.05 < other
