"""3D LUT kernels: .cube parsing and writing, identity exactness, known interpolations, baked tables."""

from __future__ import annotations

import numpy as np
import pytest
from lookalike.kernels import lut as L
from lookalike.kernels.params import ParameterError


def cupy_or_skip():
    """CuPy with a usable GPU, or skip (the parity tests run on GPU nodes only)."""
    cp = pytest.importorskip("cupy")
    try:
        cp.zeros(1).sum()
    except Exception as exc:  # noqa: BLE001 - a cupy without a device
        pytest.skip(f"cupy has no usable GPU ({exc})")
    return cp


def _random_picture(seed: int = 0, h: int = 37, w: int = 53) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _warm_lut(size: int = 17) -> L.Lut3D:
    return L.from_function(lambda c: np.clip(c**0.8 * np.array([1.05, 1.0, 0.9], np.float32), 0, 1), size)


@pytest.mark.parametrize("method", L.METHODS)
@pytest.mark.parametrize("size", [2, 17, 33])
def test_identity_lut_is_exact(method: str, size: int) -> None:
    img = _random_picture()
    assert np.array_equal(L.apply_lut(img, L.identity(size), method), img)
    f = img.astype(np.float32) / 255.0
    assert np.abs(L.apply_lut(f, L.identity(size), method) - f).max() < 1e-6


def test_known_values_at_grid_points_and_between() -> None:
    # A LUT that is linear in the input is reproduced exactly by both interpolations between nodes.
    lut = L.from_function(lambda c: c @ np.array([[0.5, 0, 0], [0, 0.25, 0], [0, 0, 1.0]], np.float32), 5)
    p = np.array([[0.1, 0.6, 0.33], [1.0, 0.0, 0.5]], np.float32)
    want = p * np.array([0.5, 0.25, 1.0], np.float32)
    for method in L.METHODS:
        assert np.allclose(L.apply_lut(p, lut, method), want, atol=1e-6)
    # Tetrahedral on a non-linear LUT, by hand: point (0.75, 0.25, 0) in a 2-point LUT sits in the
    # tetrahedron 000 -> 100 -> 110 -> 111: c000 + (c100 - c000) .75 + (c110 - c100) .25 + 0.
    t = np.zeros((2, 2, 2, 3), np.float32)
    t[1, 0, 0] = [1.0, 0.0, 0.0]
    t[1, 1, 0] = [1.0, 1.0, 0.2]
    t[1, 1, 1] = [1.0, 1.0, 1.0]
    got = L.apply_lut(np.array([[0.75, 0.25, 0.0]], np.float32), L.Lut3D(t), "tetrahedral")[0]
    assert np.allclose(got, [0.75, 0.25, 0.05], atol=1e-6)


def test_cube_round_trip_and_orientation() -> None:
    lut = _warm_lut(9)
    text = L.format_cube(lut)
    assert text.splitlines()[0] == 'TITLE ""' or text.startswith("LUT_3D_SIZE 9")
    back = L.parse_cube(text)
    assert back.size == 9
    assert np.abs(back.table - lut.table).max() < 1e-6
    # Red changes fastest in the file: row 1 is input (1/8, 0, 0).
    rows = [ln for ln in text.splitlines() if ln[:1].isdigit()]
    assert [float(v) for v in rows[1].split()] == pytest.approx(lut.table[1, 0, 0].tolist(), abs=1e-6)


def test_cube_with_domain_comments_and_title() -> None:
    text = """# made by hand
TITLE "double"
LUT_3D_SIZE 2
DOMAIN_MIN 0 0 0
DOMAIN_MAX 2 2 2
0 0 0
1 0 0
0 1 0
1 1 0
0 0 1
1 0 1
0 1 1
1 1 1
"""
    lut = L.parse_cube(text)
    assert lut.title == "double" and lut.domain_max == (2.0, 2.0, 2.0)
    # Input 1.0 is the middle of the domain [0, 2].
    assert np.allclose(L.apply_lut(np.array([[1.0, 0.5, 0.0]], np.float32), lut), [0.5, 0.25, 0.0], atol=1e-6)


@pytest.mark.parametrize(
    "text, words",
    [
        ("0 0 0\n", "no LUT_3D_SIZE"),
        ("LUT_3D_SIZE 2\n0 0 0\n", "needs 8 table rows"),
        ("LUT_3D_SIZE 1\n0 0 0\n", "LUT_3D_SIZE must be in [2, 256]"),
        ("LUT_3D_SIZE 300\n", "LUT_3D_SIZE must be in [2, 256]"),
        ("LUT_3D_SIZE two\n", "one whole number"),
        ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "0 zero 0\n", "line 9"),
        ("LUT_3D_SIZE 2\n" + "0 0\n" * 8, "3 numbers"),
        ("LUT_1D_SIZE 16\n", "1D LUT"),
    ],
)
def test_malformed_cube_names_the_problem(text: str, words: str) -> None:
    with pytest.raises(ParameterError, match=words.replace("[", r"\[").replace("]", r"\]")):
        L.parse_cube(text, name="bad.cube")


def test_bad_method_and_shapes() -> None:
    with pytest.raises(ParameterError, match="lut.method"):
        L.apply_lut(_random_picture(), L.identity(5), "cubic")
    with pytest.raises(ParameterError, match="3 colour channels"):
        L.apply_lut(np.zeros((4, 4, 4), np.uint8), L.identity(5))
    with pytest.raises(ParameterError, match="NxNxNx3"):
        L.apply_lut(_random_picture(), L.Lut3D(np.zeros((3, 3, 4, 3), np.float32)))


def test_trilinear_and_tetrahedral_agree_closely_on_smooth_luts() -> None:
    img = _random_picture(1)
    a = L.apply_lut(img, _warm_lut(), "tetrahedral").astype(int)
    b = L.apply_lut(img, _warm_lut(), "trilinear").astype(int)
    assert np.abs(a - b).max() <= 2


@pytest.mark.slow
def test_baked_table_equals_per_pixel_apply() -> None:
    lut = _warm_lut(33)
    table = L.bake_table(lut)
    img = _random_picture(2, 120, 160)
    assert np.array_equal(L.apply_table(img, table), L.apply_lut(img, lut))


def test_apply_table_refuses_float() -> None:
    with pytest.raises(ParameterError, match="uint8"):
        L.apply_table(np.zeros((2, 2, 3), np.float32), np.zeros(1 << 24, np.uint32))


@pytest.mark.gpu
def test_gpu_parity() -> None:
    cp = cupy_or_skip()
    img = _random_picture(3, 64, 96)
    lut = _warm_lut(33)
    for method in L.METHODS:
        cpu = L.apply_lut(img, lut, method)
        gpu = L.apply_lut(cp.asarray(img), lut.to(cp), method).get()
        assert np.abs(cpu.astype(int) - gpu).max() <= 1
        assert (cpu != gpu).mean() < 1e-3
    table = L.bake_table(lut.to(cp), xp=cp)
    assert np.array_equal(
        L.apply_table(cp.asarray(img), table).get(), L.apply_lut(cp.asarray(img), lut.to(cp)).get()
    )


@pytest.mark.parametrize("method", ["tetrahedral", "trilinear"])
def test_lazy_table_equals_per_pixel_apply(method: str) -> None:
    """Filled colour by colour as frames come, bit for bit apply_lut; a colour seen before is not
    computed again, and a float frame goes through apply_lut itself."""
    lut = _warm_lut(33)
    lazy = L.LazyTable(lut, method)
    first = _random_picture(3, 90, 120)
    assert np.array_equal(lazy.apply(first), L.apply_lut(first, lut, method))
    n_first = lazy.filled
    assert 0 < n_first <= 90 * 120
    # The same colours again, rearranged, plus black and white (entries 0 and 2^24 - 1).
    again = np.ascontiguousarray(first[::-1, ::-1])
    again[0, 0], again[0, 1] = 0, 255
    assert np.array_equal(lazy.apply(again), L.apply_lut(again, lut, method))
    assert lazy.filled <= n_first + 2
    second = _random_picture(4, 60, 80)
    assert np.array_equal(lazy.apply(second), L.apply_lut(second, lut, method))
    as_float = first.astype(np.float32) / 255.0
    assert np.array_equal(lazy.apply(as_float), L.apply_lut(as_float, lut, method))
