"""Effect kernels: known numbers (grain moments, vignette gains, curves, shifts), determinism, GPU parity."""

from __future__ import annotations

import numpy as np
import pytest
from lookalike.kernels import effects as E
from lookalike.kernels import filters as F
from lookalike.kernels.compose import render_background
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
def picture() -> np.ndarray:
    """A 120x200 palette backdrop with texture (something for motion estimation to lock on)."""
    img = render_background(
        np, 120, 200, [[200, 120, 60], [40, 60, 90], [230, 220, 200]], [0.5, 0.3, 0.2], 0.0, 5
    )
    return img if img.dtype == np.uint8 else (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def test_grain_has_the_requested_mean_and_variance() -> None:
    grey = np.full((360, 640, 3), 128, np.uint8)
    for sigma in (0.02, 0.06):
        out = E.film_grain(grey, 5, seed=11, sigma=sigma).astype(np.float64)
        # Whole code values: variance sigma^2 plus the rounding's 1/12.
        assert out.mean() == pytest.approx(128.0, abs=0.15)
        assert out.std() == pytest.approx(np.sqrt((sigma * 255) ** 2 + 1 / 12), rel=0.02)
    f = np.full((360, 640, 3), 0.5, np.float32)
    out = E.film_grain(f, 5, seed=11, sigma=0.05)
    assert out.mean() == pytest.approx(0.5, abs=5e-4) and out.std() == pytest.approx(0.05, rel=0.02)


def test_grain_is_seeded_per_frame_and_temporal() -> None:
    grey = np.full((90, 160, 3), 128, np.uint8)
    a = E.film_grain(grey, 3, seed=1, sigma=0.05)
    assert np.array_equal(a, E.film_grain(grey, 3, seed=1, sigma=0.05))  # same frame, same grain
    b = E.film_grain(grey, 4, seed=1, sigma=0.05)
    c = E.film_grain(grey, 3, seed=2, sigma=0.05)
    na, nb, nc = (x.astype(float).ravel() - 128 for x in (a, b, c))
    assert abs(np.corrcoef(na, nb)[0, 1]) < 0.1 and abs(np.corrcoef(na, nc)[0, 1]) < 0.1
    mono = E.film_grain(grey, 3, seed=1, sigma=0.05, mono=True)
    assert np.array_equal(mono[..., 0], mono[..., 1]) and np.array_equal(mono[..., 1], mono[..., 2])


def test_grain_fast_path_equals_the_reference_clip(picture) -> None:
    n = picture.size
    pool = E.grain_pool(np, 4, n, 0.1)
    got = E.film_grain(picture, 9, 4, 0.1, pool=pool)
    assert not ((pool.pos > 0) & (pool.neg > 0)).any()
    o = E.grain_offset(4, 9, n)
    noise = (pool.pos[o : o + n].astype(int) - pool.neg[o : o + n].astype(int)).reshape(picture.shape)
    assert np.array_equal(got, np.clip(picture.astype(int) + noise, 0, 255).astype(np.uint8))


def test_vignette_known_gains() -> None:
    white = np.ones((101, 101, 3), np.float32)
    out = E.vignette(white, strength=0.5, radius=0.5, softness=0.5)
    assert out[50, 50, 0] == pytest.approx(1.0)  # centre untouched
    assert out[0, 0, 0] == pytest.approx(0.5, abs=1e-3)  # corner: radius 1 = full strength
    r = np.hypot(50, 0) / np.hypot(50.5, 50.5)
    u = (r - 0.5) / 0.5
    assert out[50, 0, 0] == pytest.approx(1 - 0.5 * u * u * (3 - 2 * u), abs=1e-4)


def test_curves_identity_and_known_point(picture) -> None:
    assert np.array_equal(E.curves(picture, [[0, 0], [1, 1]]), picture)
    table = E.curve_table([[0, 0], [0.5, 0.75], [1, 1]])
    assert table[0] == 0 and table[-1] == pytest.approx(1.0)
    assert table[int(round(0.5 * 255))] == pytest.approx(0.75, abs=0.005)
    assert np.all(np.diff(table) >= 0)  # monotone
    red = E.curves(picture, [[0, 0], [0.5, 0.75], [1, 1]], channel="r")
    assert np.array_equal(red[..., 1:], picture[..., 1:]) and (red[..., 0] >= picture[..., 0]).all()
    with pytest.raises(ParameterError, match="curves.points"):
        E.curves(picture, [[0.5, 0], [0.2, 1]])


def test_white_balance_warms_and_identity(picture) -> None:
    assert np.abs(E.white_balance(picture).astype(int) - picture).max() <= 1
    warm = E.white_balance(picture, temperature=0.5).astype(float)
    assert warm[..., 0].mean() > picture[..., 0].mean() and warm[..., 2].mean() < picture[..., 2].mean()


def test_global_shift_and_translate_round_trip(picture) -> None:
    moved = E.translate(picture, 6.0, -3.0)
    dx, dy = E.global_shift(picture, moved, width=200)
    assert dx == pytest.approx(6.0, abs=0.3) and dy == pytest.approx(-3.0, abs=0.3)
    assert E.global_shift(np.zeros_like(picture), picture) == (0.0, 0.0)  # nothing to track


def test_smooth_correction_follows_the_triangle_mean() -> None:
    pos = [(0.0, 0.0), (10.0, 0.0), (0.0, 2.0)]
    cx, cy = E.smooth_correction(pos, 1, 1)
    # weights 1, 2, 1 around frame 1: mean x = (0 + 20 + 0) / 4 = 5, so move by 5 - 10.
    assert (cx, cy) == pytest.approx((-5.0, 0.5))
    shifted = [(x + 100.0, y - 7.0) for x, y in pos]
    assert E.smooth_correction(shifted, 1, 1) == pytest.approx((cx, cy))  # origin does not matter


def test_motion_blur_smears_along_the_velocity(picture) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    for v, axis, other in (((16.0, 0.0), 1, 0), ((0.0, 16.0), 0, 1), ((12.0, 12.0), 1, 0)):
        out = E.motion_blur(noise, v, shutter=1.0).astype(float)
        along = np.abs(np.diff(out, axis=axis)).mean()
        assert along < 0.4 * np.abs(np.diff(noise.astype(float), axis=axis)).mean()
        if v[1] == 0 or v[0] == 0:
            assert np.abs(np.diff(out, axis=other)).mean() > 2 * along
    assert np.array_equal(E.motion_blur(picture, (0.4, 0.2)), picture)  # under a pixel: no blur


def test_box_blur_is_exact_on_integers() -> None:
    row = np.array([[0, 0, 90, 0, 0]], np.uint8)[..., None]
    out = F.box_blur_axis(row, 1, 1)[0, :, 0]
    assert out.tolist() == [0, 30, 30, 30, 0]
    assert np.array_equal(F.box_blur(np.full((5, 7, 3), 77, np.uint8), 3), np.full((5, 7, 3), 77, np.uint8))


def test_chromatic_aberration_moves_red_out_and_blue_in() -> None:
    img = np.zeros((101, 101, 3), np.uint8)
    img[:, 80] = 255
    out = E.chromatic_aberration(img, shift_px=4.0)
    assert np.array_equal(out[..., 1], img[..., 1])
    red_col = int(np.argmax(out[50, :, 0].astype(int)))
    blue_col = int(np.argmax(out[50, :, 2].astype(int)))
    assert red_col > 80 > blue_col


def test_flare_particles_dof_render_and_stay_deterministic(picture) -> None:
    flare = E.lens_flare(picture, (0.8, 0.2), 0.8)
    assert flare.astype(int).sum() > picture.astype(int).sum()  # screen blend only brightens
    assert (flare >= picture).all()
    for kind in E.PARTICLE_KINDS:
        a = E.particles(picture, 12, 5, kind, count=40)
        assert np.array_equal(a, E.particles(picture, 12, 5, kind, count=40))
        assert not np.array_equal(a, E.particles(picture, 13, 5, kind, count=40))
        assert (a >= picture).all()
    depth = E.radial_depth(*picture.shape[:2])
    dof = E.depth_of_field(picture, depth, 0.0, 4.0)
    h, w = picture.shape[:2]
    centre = np.abs(
        dof[h // 2 - 3 : h // 2 + 3, w // 2 - 3 : w // 2 + 3].astype(int)
        - picture[h // 2 - 3 : h // 2 + 3, w // 2 - 3 : w // 2 + 3]
    ).mean()
    edge = np.abs(dof[:, :10].astype(int) - picture[:, :10]).mean()
    assert centre < edge
    sal = E.saliency(picture)
    assert sal.shape == picture.shape[:2] and 0 <= sal.min() and sal.max() <= 1


@pytest.mark.parametrize(
    "call, param",
    [
        (lambda p: E.film_grain(p, 0, 0, sigma=0.5), "grain.sigma"),
        (lambda p: E.vignette(p, strength=2.0), "vignette.strength"),
        (lambda p: E.particles(p, 0, 0, kind="rain"), "particles.kind"),
        (lambda p: E.particles(p, 0, 0, count=-1), "particles.count"),
        (lambda p: E.exposure(p, float("nan")), "exposure.stops"),
        (lambda p: E.depth_of_field(p, np.zeros((3, 3)), 0.0), "depth_of_field.depth"),
        (lambda p: E.chromatic_aberration(p, 500), "chromatic_aberration.shift_px"),
    ],
)
def test_out_of_range_parameters_are_named(picture, call, param) -> None:
    with pytest.raises(ParameterError, match=param.replace(".", r"\.")):
        call(picture)


@pytest.mark.gpu
def test_gpu_parity(picture) -> None:
    cp = cupy_or_skip()
    g = cp.asarray(picture)
    # Integer and hash-based effects are bit-identical across devices.
    assert np.array_equal(E.film_grain(g, 3, 9, 0.05).get(), E.film_grain(picture, 3, 9, 0.05))
    assert np.array_equal(
        E.curves(g, [[0, 0], [0.5, 0.7], [1, 1]]).get(), E.curves(picture, [[0, 0], [0.5, 0.7], [1, 1]])
    )
    assert np.array_equal(F.blur(g, 3.0).get(), F.blur(picture, 3.0))
    # Float effects agree within a code value or two (libm and warp rounding differ).
    for fn in (
        lambda x: E.vignette(x, 0.4),
        lambda x: E.white_balance(x, 0.3, -0.2),
        lambda x: E.lens_flare(x),
        lambda x: E.particles(x, 4, 2, "snow", 30),
        lambda x: E.chromatic_aberration(x, 3.0),
        lambda x: E.motion_blur(x, (7.0, 5.0)),
    ):
        assert np.abs(fn(g).get().astype(int) - fn(picture)).max() <= 2


def test_float_box_blur_matches_a_running_sum() -> None:
    x = np.random.default_rng(1).random((50, 70, 3)).astype(np.float32)
    for axis in (0, 1):
        n = 7
        pad = [(0, 0)] * 3
        pad[axis] = (4, 3)
        c = np.cumsum(np.pad(x.astype(np.float64), pad, mode="edge"), axis=axis)
        size = x.shape[axis]
        want = (np.take(c, np.arange(n, n + size), axis=axis) - np.take(c, np.arange(size), axis=axis)) / n
        assert np.abs(F.box_blur_axis(x, 3, axis) - want).max() < 1e-6


def test_grain_is_white_and_new_every_frame() -> None:
    grey = np.full((180, 320, 3), 128, np.uint8)
    pool = E.grain_pool(np, 5, grey.size, 0.05)
    noise = [E.film_grain(grey, k, 5, 0.05, pool=pool).astype(np.float64) - 128 for k in range(12)]
    for a, b in zip(noise, noise[1:], strict=False):
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.03  # frame to frame
    n0 = noise[0]
    for lag in ((0, 1), (1, 0)):  # neighbouring pixels, same channel
        a = n0[: n0.shape[0] - lag[0], : n0.shape[1] - lag[1]]
        b = n0[lag[0] :, lag[1] :]
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.03
