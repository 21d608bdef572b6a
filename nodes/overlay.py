"""On-screen text: drawing a plan scene's `overlays` on its frames, and measuring a sample's text colour.

An overlay is {"text", "box": [x, y, w, h] in frame fractions, "colour": [r, g, b], "start_frame",
"end_frame"} (timeline frames, end exclusive; docs/footage.md, "Text, music, voice"). `draw_overlays`
sets the text in the largest font size that fits the box, centred in it, with a thin black outline
(legible on any picture; a light one around dark text was tried and, at small sizes, its ring reads as
the text's colour), and changes no pixel outside the box. The font is DejaVu Sans, from the system's fonts or
matplotlib's copy, else Pillow's own scalable default: the same font gives the same pixels.

`text_colour` is the analysis side: the colour of the text inside a box of a sample frame.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["draw_overlays", "font_path", "text_colour"]

FONT_NAME = "DejaVuSans.ttf"
_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/usr/share/fonts/truetype")
OUTLINE = 1 / 24  # outline width as a share of the font size, at least 1 px
OUTLINE_COLOUR = (0, 0, 0)
_MAX_FONT_SIZE = 2048


@functools.lru_cache(maxsize=1)
def font_path() -> str | None:
    """Where DejaVu Sans is: the system's fonts first, then matplotlib's bundled copy; None for neither."""
    for root in _FONT_DIRS:
        direct = Path(root) / "truetype" / "dejavu" / FONT_NAME
        if direct.is_file():
            return str(direct)
    for root in _FONT_DIRS:
        if Path(root).is_dir():
            found = sorted(Path(root).rglob(FONT_NAME))
            if found:
                return str(found[0])
    spec = importlib.util.find_spec("matplotlib")  # finds the package without importing it
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            mpl = Path(loc) / "mpl-data" / "fonts" / "ttf" / FONT_NAME
            if mpl.is_file():
                return str(mpl)
    return None


@functools.lru_cache(maxsize=256)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = font_path()
    if path is not None:
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def _outline(size: int) -> int:
    return max(1, round(size * OUTLINE))


def _extent(text: str, size: int) -> tuple[int, int, int, int]:
    """The ink box (left, top, right, bottom) of `text` at `size`, outline included, drawn at (0, 0)."""
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    return tuple(  # type: ignore[return-value]
        int(v)
        for v in probe.textbbox((0, 0), text, font=_font(size), stroke_width=_outline(size), align="center")
    )


def _fitted_size(text: str, width: int, height: int) -> int:
    """The largest font size whose ink fits width x height (1 when none does)."""

    def fits(size: int) -> bool:
        left, top, right, bottom = _extent(text, size)
        return right - left <= width and bottom - top <= height

    lo, hi = 1, max(1, min(_MAX_FONT_SIZE, 2 * height))
    if not fits(lo):
        return 1
    while lo < hi:  # ink grows with the size: binary search for the last size that fits
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _pixel_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in pixels of a fractional [x, y, w, h] box, clipped to the frame."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(0, round(x * width)), max(0, round(y * height))
    x1, y1 = min(width, round((x + w) * width)), min(height, round((y + h) * height))
    return x0, y0, x1, y1


def draw_overlays(frame: np.ndarray, overlays: Sequence[Mapping[str, Any]], frame_index: int) -> np.ndarray:
    """`frame` (HxWx3 uint8 RGB) with each overlay live at `frame_index` drawn on it; a new array.

    An overlay is live when start_frame <= frame_index < end_frame. Its text (lines split at "\\n",
    centred) is set in the largest size that fits its box, outline included, and centred there;
    nothing is drawn outside the box. Overlays are drawn in list order, later ones on top.
    """
    out = np.array(frame, dtype=np.uint8, copy=True)
    height, width = out.shape[:2]
    for ov in overlays:
        if not int(ov["start_frame"]) <= frame_index < int(ov["end_frame"]):
            continue
        text = str(ov["text"]).strip()
        x0, y0, x1, y1 = _pixel_box(ov["box"], width, height)
        if not text or x1 - x0 < 2 or y1 - y0 < 2:
            continue
        colour = tuple(int(np.clip(c, 0, 255)) for c in ov["colour"][:3])
        size = _fitted_size(text, x1 - x0, y1 - y0)
        left, top, right, bottom = _extent(text, size)
        origin = ((x1 - x0 - (right - left)) / 2 - left, (y1 - y0 - (bottom - top)) / 2 - top)
        # Drawing on the box's own crop is what keeps every pixel outside the box as it was.
        crop = Image.fromarray(np.ascontiguousarray(out[y0:y1, x0:x1]))
        ImageDraw.Draw(crop).text(
            origin,
            text,
            fill=colour,
            font=_font(size),
            stroke_width=_outline(size),
            stroke_fill=OUTLINE_COLOUR,
            align="center",
        )
        out[y0:y1, x0:x1] = np.asarray(crop)
    return out


def text_colour(frame: np.ndarray, box: Sequence[float]) -> list[int]:
    """The colour of the text inside `box` ([x, y, w, h] fractions) of an RGB uint8 frame, as [r, g, b].

    Otsu's threshold splits the box's luma into a bright and a dark class; the text is the smaller
    class (a text box is mostly background). Its colour is the per-channel median of the half of its
    pixels farthest from the threshold, so anti-aliased glyph edges do not pull it toward the
    background. A box without contrast (or without pixels) gives its median colour.
    """
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = _pixel_box(box, width, height)
    rgb = np.ascontiguousarray(frame[y0:y1, x0:x1, :3], dtype=np.uint8)
    if rgb.size == 0:
        return [0, 0, 0]
    pixels = rgb.reshape(-1, 3)
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).reshape(-1)
    if int(luma.max()) - int(luma.min()) < 16:
        return [int(v) for v in np.median(pixels, axis=0).round()]
    threshold, _ = cv2.threshold(luma.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = luma > threshold
    text = bright if bright.sum() <= (~bright).sum() else ~bright
    distance = np.abs(luma[text].astype(np.float64) - threshold)
    core = pixels[text][distance >= np.median(distance)]
    return [int(v) for v in np.median(core, axis=0).round()]
