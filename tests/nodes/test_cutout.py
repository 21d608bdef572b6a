"""nodes.cutout: GrabCut seeded by saliency and faces, on synthesized figures with known masks and on
a real portrait; and load_subject cutting out only pictures without transparency."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from lookalike.nodes import cutout
from lookalike.nodes.generate import load_subject
from PIL import Image

PHOTOS = Path(__file__).resolve().parents[2] / ".." / "shared" / "media" / "footage" / "photos"
ASTRONAUT = PHOTOS / "skimage_astronaut.png"
H, W = 240, 320


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1


def backdrop(kind: str) -> np.ndarray:
    """A 320x240 background: flat grey, smooth green-brown noise (foliage-like), or a 16 px checker."""
    if kind == "plain":
        return np.full((H, W, 3), (200, 200, 190), np.uint8)
    if kind == "noise":
        rng = np.random.default_rng(0)
        tex = cv2.resize(
            rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (W, H), interpolation=cv2.INTER_CUBIC
        )
        return (tex * 0.5 + np.array([40, 110, 60]) * 0.5).astype(np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    checker = ((xx // 16 + yy // 16) % 2).astype(bool)[..., None]
    return np.where(checker, np.uint8([90, 90, 110]), np.uint8([150, 150, 170])).astype(np.uint8)


def figure(kind: str, truth: np.ndarray) -> np.ndarray:
    """A shaded red disc (lit from the top left) painted on `backdrop(kind)` where `truth` is set."""
    yy, xx = np.mgrid[0:H, 0:W]
    shade = 0.6 + 0.4 * np.clip(1 - ((xx - 150) ** 2 + (yy - 90) ** 2) / 110**2, 0, 1)
    img = backdrop(kind)
    img[truth] = (np.array([220, 60, 40]) * shade[..., None]).astype(np.uint8)[truth]
    return img


@pytest.mark.parametrize("kind", ["plain", "noise", "checker"])
@pytest.mark.parametrize("where", [(170, 115, 70, 80), (90, 130, 50, 60)], ids=["centred", "off-centre"])
def test_a_synthesized_figure_is_cut_out_along_its_mask(kind: str, where: tuple) -> None:
    truth = ellipse(*where)
    alpha = cutout.cut_out(figure(kind, truth), faces=[])
    assert alpha.shape == (H, W) and alpha.dtype == np.uint8
    assert iou(alpha >= 128, truth) >= 0.85  # measured: 0.9995 or better on all six
    # Feathered: the edge passes through intermediate values, the inside and outside are solid.
    assert ((alpha > 0) & (alpha < 255)).any()
    assert (alpha[truth & (cv2.erode(truth.astype(np.uint8), np.ones((9, 9))) > 0)] == 255).all()


def test_the_cut_is_deterministic() -> None:
    img = figure("noise", ellipse(170, 115, 70, 80))
    assert np.array_equal(cutout.cut_out(img, faces=[]), cutout.cut_out(img, faces=[]))


def test_a_flat_picture_has_no_subject_and_stays_opaque() -> None:
    assert (cutout.cut_out(np.full((60, 80, 3), 128, np.uint8), faces=[]) == 255).all()


@pytest.mark.skipif(not ASTRONAUT.exists(), reason="shared media not present")
def test_the_astronaut_keeps_the_person() -> None:
    """skimage's astronaut (512x512, Eileen Collins in an orange suit before a flag and a shuttle model;
    her face at about x 0.34-0.53, y 0.13-0.32): the face is kept, the corners (flag, backdrop, table)
    are not."""
    rgb = np.asarray(Image.open(ASTRONAUT).convert("RGB"))
    alpha = cutout.cut_out(rgb).astype(np.float64) / 255  # faces detected by vision.FaceDetector
    h, w = alpha.shape
    face = alpha[round(0.13 * h) : round(0.32 * h), round(0.34 * w) : round(0.53 * w)]
    assert face.mean() > 0.9
    suit = alpha[round(0.6 * h) : round(0.8 * h), round(0.1 * w) : round(0.4 * w)]  # the orange torso
    assert suit.mean() > 0.9
    c = round(0.04 * h)  # the helmet she holds reaches the right edge 5 % above the bottom corner
    for corner in (alpha[:c, :c], alpha[:c, -c:], alpha[-c:, :c], alpha[-c:, -c:]):
        assert corner.mean() < 0.05
    assert 0.3 < (alpha >= 0.5).mean() < 0.75  # a person, neither a speck nor the whole picture


def test_load_subject_cuts_out_only_pictures_without_transparency(tmp_path: Path) -> None:
    truth = ellipse(170, 115, 70, 80)
    rgb = figure("noise", truth)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=92)
    Image.fromarray(np.dstack([rgb, np.full((H, W), 255, np.uint8)])).save(tmp_path / "opaque_rgba.png")
    for name in ("photo.png", "photo.jpg", "opaque_rgba.png"):
        rgba = load_subject(tmp_path / name)
        assert rgba.shape == (H, W, 4)
        assert iou(rgba[..., 3] >= 128, truth) >= 0.85, name
    # A PNG with real transparency is the user's own matte: untouched, even where it differs from ours.
    matte = np.where(ellipse(100, 100, 60, 40), 255, 0).astype(np.uint8)
    matte[:10] = 90  # some semi-transparent rows: kept as they are
    rgba = np.dstack([rgb, matte])
    Image.fromarray(rgba).save(tmp_path / "matte.png")
    assert np.array_equal(load_subject(tmp_path / "matte.png"), rgba)


def test_what_counts_as_transparency() -> None:
    alpha = np.full((100, 100), 255, np.uint8)
    assert not cutout.has_transparency(alpha)
    alpha[:2, :2] = 0  # rounded corners, a stray pixel: 0.04 % of the picture
    assert not cutout.has_transparency(alpha)
    alpha[:10] = 0
    assert cutout.has_transparency(alpha)
