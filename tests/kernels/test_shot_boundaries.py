"""NumPy reference tests for kernels.shots: thumbnails, fades, dissolves and boundary F1 on
thumbnail sequences built in memory (no codec in the way)."""

from __future__ import annotations

import numpy as np
import pytest
from lookalike.kernels import shots as ks
from scipy import ndimage


def picture(seed: int, h: int = 64, w: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.stack([ndimage.gaussian_filter(rng.random((h, w)), 3) for _ in range(3)], axis=-1)
    return (img - img.min()) / (img.max() - img.min()) * 255.0


def view(img: np.ndarray, x: int) -> np.ndarray:
    return img[:, x : x + 64]


def thumbs_of(frames: list[np.ndarray]) -> np.ndarray:
    return np.stack([ks.thumbnail(f) for f in frames])


def test_thumbnail_is_the_box_mean():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (48, 32, 3)).astype(np.uint8)
    th = ks.thumbnail(img)
    assert th.shape == (ks.THUMB, ks.THUMB, 3) and th.dtype == np.uint8
    np.testing.assert_allclose(th[1, 2], img[3:6, 4:6].reshape(-1, 3).mean(axis=0), atol=0.5)


def test_f1_matches_each_truth_once_within_its_tolerance():
    assert ks.boundary_f1([10, 11], [10]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert ks.boundary_f1([13], [10], [3])[2] == 1.0
    assert ks.boundary_f1([14], [10], [3])[2] == 0.0
    assert ks.boundary_f1([], []) == (1.0, 1.0, 1.0)
    assert ks.boundary_f1([], [5])[2] == 0.0


def test_dissolve_between_panning_shots_is_found_with_its_extent():
    a, b = picture(1), picture(2)
    frames = [view(a, i) for i in range(30)] + [view(b, 30 + i) for i in range(30)]
    s, L = 22, 14  # frames [22, 36) blend a into b
    for j in range(L):
        al = (j + 1) / (L + 1)
        frames[s + j] = (1 - al) * view(a, s + j) + al * view(b, s + j)
    found = ks.dissolves(thumbs_of(frames), cuts=[])
    assert len(found) == 1
    tr = found[0]
    assert tr.kind == "dissolve"
    assert abs(tr.start - s) <= 2 and abs(tr.end - (s + L)) <= 2
    assert abs(tr.boundary - (s + L // 2)) <= 2


def test_pans_and_cuts_are_not_dissolves():
    a, b = picture(3), picture(4)
    frames = [view(a, 2 * i) for i in range(40)] + [view(b, 2 * i) for i in range(40)]
    assert ks.dissolves(thumbs_of(frames), cuts=[40]) == []


def test_fade_through_black_and_white():
    a, b, c = picture(5), picture(6), picture(7)
    black, white = np.zeros((64, 64, 3)), np.full((64, 64, 3), 255.0)
    frames = []
    for k in range(10):
        frames.append((1 - k / 10) * view(a, k) + (k / 10) * black)
    frames += [black] * 4  # 10..13
    for k in range(10):
        frames.append((1 - (k + 1) / 10) * black + ((k + 1) / 10) * view(b, k))
    for k in range(10):  # 24..33 toward white
        frames.append((1 - k / 10) * view(b, 10 + k) + (k / 10) * white)
    frames += [white] * 3  # 34..36
    frames += [view(c, k) for k in range(10)]  # a hard cut out of white
    found = ks.fades(thumbs_of(frames), cuts=[37])
    assert [t.colour[0] < 50 for t in found] == [True, False]
    # The middle of each blank run: black from about frame 9 (10 % of a picture is blank too) to 13.
    assert abs(found[0].boundary - 11.5) <= 1 and found[1].boundary == 35
    assert abs(found[0].start - 1) <= 1 and abs(found[0].end - 23) <= 2


def test_wipe_is_found_with_direction_and_an_object_crossing_is_not():
    a, b = picture(8), picture(9)
    frames = [view(a, i) for i in range(30)] + [view(b, 30 + i) for i in range(30)]
    s, L = 20, 12  # b is revealed top to bottom over frames [20, 32)
    for j in range(L):
        edge = int((j + 1) / (L + 1) * 64)
        f = view(a, s + j).copy()
        f[:edge] = view(b, s + j)[:edge]
        frames[s + j] = f
    found = ks.wipes(thumbs_of(frames[:32] + [view(b, 32 + i) for i in range(28)]), cuts=[])
    assert [(t.kind, t.direction) for t in found] == [("wipe", "down")]
    assert abs(found[0].boundary - (s + L // 2)) <= 3
    assert abs(found[0].start - s) <= 3 and abs(found[0].end - (s + L)) <= 3
    # A dark square crossing a still picture left to right is motion, not a wipe.
    still = view(a, 0)
    crossing = []
    for i in range(40):
        f = still.copy()
        x = int(i * 1.5)
        f[20:40, x : x + 12] = 10.0
        crossing.append(f)
    assert ks.wipes(thumbs_of(crossing), cuts=[]) == []
