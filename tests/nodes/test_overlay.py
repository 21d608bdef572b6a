"""nodes.overlay: text drawn fitted into its box and frame range only, and a sample's text colour
measured on synthesized title cards with known colours."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from lookalike.nodes.overlay import draw_overlays, text_colour

H, W = 360, 640
BG = (30, 60, 90)


def frame() -> np.ndarray:
    """A 640x360 frame: a smooth colour ramp, so a pixel changed anywhere is seen."""
    yy, xx = np.mgrid[0:H, 0:W]
    return np.dstack([xx * 200 // W + 20, yy * 200 // H + 20, np.full((H, W), 90)]).astype(np.uint8)


def title(text: str, box=(0.1, 0.4, 0.8, 0.2), colour=(250, 220, 40), start=10, end=20) -> dict:
    return {"text": text, "box": list(box), "colour": list(colour), "start_frame": start, "end_frame": end}


def inside(box, h: int = H, w: int = W) -> np.ndarray:
    x, y, bw, bh = box
    m = np.zeros((h, w), bool)
    m[round(y * h) : round((y + bh) * h), round(x * w) : round((x + bw) * w)] = True
    return m


def ink(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (before != after).any(axis=2)


def test_text_is_drawn_inside_its_box_only() -> None:
    ov = title("HELLO WORLD")
    before = frame()
    after = draw_overlays(before, [ov], 12)
    changed = ink(before, after)
    assert changed.any() and not changed[~inside(ov["box"])].any()
    assert np.array_equal(before, frame())  # the input is not drawn on
    # Fitted: the ink spans most of the box one way or the other (it is as large as fits).
    ys, xs = np.nonzero(changed)
    x, y, bw, bh = ov["box"]
    assert (xs.max() - xs.min() + 1) / (bw * W) > 0.9 or (ys.max() - ys.min() + 1) / (bh * H) > 0.9


@pytest.mark.parametrize("index,shown", [(9, False), (10, True), (19, True), (20, False)])
def test_text_shows_only_in_its_frame_range(index: int, shown: bool) -> None:
    before = frame()
    assert ink(before, draw_overlays(before, [title("HELLO")], index)).any() == shown


@pytest.mark.parametrize("colour", [(250, 220, 40), (255, 255, 255), (40, 200, 240)])
def test_text_has_the_asked_colour_and_a_dark_outline(colour: tuple) -> None:
    before = frame()
    after = draw_overlays(before, [title("TITLE", colour=colour)], 15)
    drawn = after[ink(before, after)].reshape(-1, 3)
    # The glyphs' insides are exactly the colour; the outline is black.
    assert (drawn == colour).all(axis=1).mean() > 0.3
    assert (drawn == (0, 0, 0)).all(axis=1).mean() > 0.05


def test_long_text_shrinks_to_fit() -> None:
    box = (0.2, 0.7, 0.5, 0.12)
    before = frame()
    short = ink(before, draw_overlays(before, [title("GO", box=box)], 15))
    long = ink(
        before, draw_overlays(before, [title("A much longer line that has to shrink to fit", box=box)], 15)
    )
    assert not long[~inside(box)].any()
    hs, hl = (np.ptp(np.nonzero(m)[0]) + 1 for m in (short, long))
    assert hl < 0.6 * hs  # smaller letters...
    xs = np.nonzero(long)[1]
    assert np.ptp(xs) + 1 > 0.9 * box[2] * W  # ...filling the box's width instead


def test_drawing_is_deterministic_and_layered_in_order() -> None:
    overlays = [
        title("FIRST", colour=(255, 0, 0)),
        title("SECOND", box=(0.1, 0.1, 0.4, 0.1), colour=(0, 255, 0)),
    ]
    a = draw_overlays(frame(), overlays, 12)
    assert np.array_equal(a, draw_overlays(frame(), overlays, 12))
    assert ink(frame(), a)[inside(overlays[1]["box"])].any()
    assert np.array_equal(draw_overlays(frame(), [], 12), frame())


def card(text_rgb: tuple, bg_rgb: tuple) -> tuple[np.ndarray, list[float]]:
    """A title card: `text_rgb` words (anti-aliased Hershey strokes) on a flat `bg_rgb`, and a tight box."""
    img = np.full((H, W, 3), bg_rgb, np.uint8)
    cv2.putText(img, "CAMERA PAN 42", (60, 200), cv2.FONT_HERSHEY_SIMPLEX, 1.8, text_rgb, 4, cv2.LINE_AA)
    ys, xs = np.nonzero((img != bg_rgb).any(axis=2))
    pad = 6
    box = [(xs.min() - pad) / W, (ys.min() - pad) / H, (np.ptp(xs) + 2 * pad) / W, (np.ptp(ys) + 2 * pad) / H]
    return img, box


@pytest.mark.parametrize(
    "text_rgb,bg_rgb",
    [
        ((250, 250, 250), BG),
        ((245, 210, 30), (20, 20, 30)),
        ((20, 20, 20), (235, 235, 225)),
        ((150, 20, 30), (240, 240, 200)),
    ],
    ids=["white-on-blue", "yellow-on-black", "black-on-light", "red-on-cream"],
)
def test_text_colour_is_the_minority_class_in_the_box(text_rgb: tuple, bg_rgb: tuple) -> None:
    img, box = card(text_rgb, bg_rgb)
    got = text_colour(img, box)
    assert max(abs(g - t) for g, t in zip(got, text_rgb, strict=True)) <= 6, got


def test_text_colour_reads_what_draw_overlays_wrote() -> None:
    ov = title("SUMMER SALE", colour=(255, 255, 255))
    dark = np.full((H, W, 3), BG, np.uint8)
    assert text_colour(draw_overlays(dark, [ov], 12), ov["box"]) == [255, 255, 255]


def test_text_colour_of_a_flat_box_is_its_colour() -> None:
    assert text_colour(np.full((H, W, 3), BG, np.uint8), [0.1, 0.1, 0.3, 0.2]) == list(BG)
