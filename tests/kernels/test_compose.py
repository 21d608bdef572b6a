"""Compositor kernels: backdrop area shares, subject placement, camera pose measured by phase correlation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from lookalike.kernels import compose as C
from lookalike.kernels.grade import to_uint8

PALETTE = np.array([[200, 120, 60], [40, 60, 90], [230, 220, 200], [90, 160, 80]], np.float32)
WEIGHTS = [0.4, 0.3, 0.2, 0.1]
H, W = 180, 320


def disc_subject(size: int = 100) -> np.ndarray:
    """An opaque red disc on transparency, filling its square."""
    yy, xx = np.mgrid[0:size, 0:size]
    inside = (yy - (size - 1) / 2) ** 2 + (xx - (size - 1) / 2) ** 2 <= (size / 2) ** 2
    out = np.zeros((size, size, 4), np.uint8)
    out[inside] = [255, 0, 0, 255]
    return out


def shift_between(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(dx, dy) of b's content relative to a's, by phase correlation on luma."""
    ga = cv2.cvtColor(to_uint8(a), cv2.COLOR_RGB2GRAY).astype(np.float64)
    gb = cv2.cvtColor(to_uint8(b), cv2.COLOR_RGB2GRAY).astype(np.float64)
    win = cv2.createHanningWindow(ga.shape[::-1], cv2.CV_64F)
    (dx, dy), _ = cv2.phaseCorrelate(ga, gb, win)
    return dx, dy


@pytest.fixture(scope="module")
def backdrop() -> np.ndarray:
    return C.render_background(np, H, W, PALETTE, WEIGHTS, 0.0, 11)


def test_background_shape_range_determinism(backdrop: np.ndarray) -> None:
    assert backdrop.shape == (H, W, 3) and backdrop.dtype == np.float32
    assert 0.0 <= backdrop.min() and backdrop.max() <= 1.0
    assert np.array_equal(backdrop, C.render_background(np, H, W, PALETTE, WEIGHTS, 0.0, 11))
    other_seed = C.render_background(np, H, W, PALETTE, WEIGHTS, 0.0, 12)
    later = C.render_background(np, H, W, PALETTE, WEIGHTS, 2.0, 11)
    assert np.abs(other_seed - backdrop).mean() > 0.05
    # Time drifts the blobs slowly: a visible but small change after 2 s.
    assert 0.0 < np.abs(later - backdrop).mean() < np.abs(other_seed - backdrop).mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_background_area_shares_follow_weights(seed: int) -> None:
    img = C.render_background(np, 240, 400, PALETTE, WEIGHTS, 0.0, seed)
    d = ((img[..., None, :] - PALETTE[None, None] / 255.0) ** 2).sum(-1)
    shares = np.bincount(d.argmin(-1).ravel(), minlength=len(PALETTE)) / d[..., 0].size
    assert np.allclose(shares, WEIGHTS, atol=0.05), shares


def test_background_single_colour_and_empty_palette() -> None:
    one = C.render_background(np, 40, 60, [[10, 200, 30]], [1.0], 0.0, 0)
    assert np.abs(one.reshape(-1, 3).mean(0) - np.array([10, 200, 30]) / 255).max() < 0.03
    grey = C.render_background(np, 40, 60, [], None, 0.0, 0)
    assert np.abs(grey.mean() - 0.5) < 0.05


def test_resize_preserves_constant_and_mean() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (90, 160, 3)).astype(np.float32)
    assert np.allclose(C.resize(np.full((30, 40, 3), 0.25, np.float32), 77, 13), 0.25, atol=1e-6)
    assert C.resize(img, 30, 50).mean() == pytest.approx(img.mean(), abs=0.01)


def test_warp_identity_and_integer_translation(backdrop: np.ndarray) -> None:
    ident = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    assert np.allclose(C.warp_affine(backdrop, ident, H, W), backdrop, atol=1e-6)
    shifted = C.warp_affine(backdrop, np.array([[1.0, 0, 7], [0, 1.0, -3]]), H, W)
    assert np.allclose(shifted[3:, : W - 7], backdrop[: H - 3, 7:], atol=1e-6)


def test_cv2_fast_path_matches_xp_reference(backdrop: np.ndarray) -> None:
    """The CPU path (cv2, 1/32 px positions) against the reference bilinear: within 2 grey levels."""
    u8 = to_uint8(backdrop)
    m = C.pose_matrix((0.037, -0.021, 1.13, 4.5), W, H)
    fast = C.warp_affine(u8, m, H, W, fast=True).astype(int)
    ref = C.warp_affine(u8, m, H, W, fast=False).astype(int)
    diff = np.abs(fast - ref)
    assert diff.max() <= 2 and diff.mean() < 0.3


@pytest.mark.parametrize(
    ("pose", "expected"),
    [
        ((0.05, 0.0, 1.0, 0.0), (-16.0, 0.0)),
        ((0.0, -0.1, 1.0, 0.0), (0.0, 18.0)),
        ((-0.03, 0.04, 1.0, 0.0), (9.6, -7.2)),
    ],
    ids=["pan_right", "tilt_up", "diagonal"],
)
def test_composite_pose_translation_is_measurable(backdrop: np.ndarray, pose: tuple, expected: tuple) -> None:
    """Camera right by x (fraction of width) moves content left by x*W; camera up moves content down."""
    big = C.render_background(np, 2 * H, 2 * W, PALETTE, WEIGHTS, 0.0, 3)
    origin = (-W / 2, -H / 2)  # canvas covers a margin of half a frame around the first frame
    a = C.composite(big, None, (0, 0, 1, 0), frame_size=(W, H), world_origin=origin)
    b = C.composite(big, None, pose, frame_size=(W, H), world_origin=origin)
    dx, dy = shift_between(a, b)
    assert dx == pytest.approx(expected[0], abs=0.3)
    assert dy == pytest.approx(expected[1], abs=0.3)


def test_composite_zoom_and_roll_about_the_centre(backdrop: np.ndarray) -> None:
    ref = C.composite(backdrop, disc_subject(), (0, 0, 1, 0))
    zoom = C.composite(backdrop, disc_subject(), (0, 0, 2.0, 0))
    # Zoom 2 about the centre: the centre pixel stays, the frame shows the central half magnified.
    centre = ref[(H - 1) // 2 - 20 : (H - 1) // 2 + 20, (W - 1) // 2 - 40 : (W - 1) // 2 + 40]
    up = cv2.resize(centre, (160, 80), interpolation=cv2.INTER_LINEAR)
    mid = zoom[H // 2 - 40 : H // 2 + 40, W // 2 - 80 : W // 2 + 80]
    assert np.abs(up - mid).mean() < 0.03
    # Roll 90 degrees: positive r turns the content counter-clockwise on screen.
    marked = backdrop.copy()
    marked[:, :] = 0.0
    marked[(H - 1) // 2 - 2 : (H - 1) // 2 + 3, (W - 1) // 2 + 30 : (W - 1) // 2 + 60] = (
        1.0  # bar right of centre
    )
    rolled = C.composite(marked, None, (0, 0, 1, 90.0))
    ys, xs = np.nonzero(rolled[..., 0] > 0.5)
    assert ys.max() < (H - 1) / 2 and abs(xs.mean() - (W - 1) / 2) < 3  # now above the centre


def test_subject_is_centred_at_the_requested_height(backdrop: np.ndarray) -> None:
    plain = C.composite(backdrop, None, (0, 0, 1, 0))
    with_subject = C.composite(backdrop, disc_subject(), (0, 0, 1, 0), subject_height=0.5)
    changed = np.abs(with_subject - plain).max(axis=-1) > 0.05
    ys, xs = np.nonzero(changed)
    assert ys.max() - ys.min() + 1 == pytest.approx(0.5 * H, abs=2)
    assert (ys.max() + ys.min()) / 2 == pytest.approx((H - 1) / 2, abs=1.5)
    assert (xs.max() + xs.min()) / 2 == pytest.approx((W - 1) / 2, abs=1.5)
    assert np.allclose(with_subject[H // 2, W // 2], [1.0, 0.0, 0.0], atol=0.01)
    u8 = C.composite(to_uint8(backdrop), disc_subject(), (0, 0, 1, 0))
    assert u8.dtype == np.uint8 and u8.shape == (H, W, 3)


@pytest.mark.gpu
def test_gpu_parity(backdrop: np.ndarray) -> None:
    cp = pytest.importorskip("cupy")
    dev = C.render_background(cp, H, W, PALETTE, WEIGHTS, 0.5, 11)
    assert np.allclose(cp.asnumpy(dev), C.render_background(np, H, W, PALETTE, WEIGHTS, 0.5, 11), atol=1e-4)
    pose = (0.03, -0.02, 1.1, 3.0)
    gpu = C.composite(cp.asarray(backdrop), disc_subject(), pose)
    cpu = C.composite(backdrop, disc_subject(), pose, fast=False)
    assert np.allclose(cp.asnumpy(gpu), cpu, atol=1e-4)
