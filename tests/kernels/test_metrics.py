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
