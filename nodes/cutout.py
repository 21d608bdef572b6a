"""Cut a subject out of a picture that has no transparency: an alpha matte from GrabCut.

No model is fetched or shipped for this: the venv's wheels hold no person-segmentation model
(no mediapipe; torchvision has the architectures but downloads their weights; rembg downloads at run
time), so the matte is classical. GrabCut (Rother et al., 2004: colour GMMs for the subject and the
background, refined by graph cuts) is seeded from what the picture says about itself:

- sure background: a band along the border (a subject photo is framed with room around it), except
  where a face's body runs out of the bottom edge (a portrait is cut at the chest);
- sure subject: the middle of each frontal face (`vision.FaceDetector`, or the faces given);
- probable subject: frequency-tuned salient pixels (`formats.saliency_map`, more than
  SALIENT_DEVIATIONS above the mean), a middle ellipse (CENTRE), the hair above each face and the
  body below it; everything else starts as probable background.

GrabCut runs on a copy scaled to WORK_LONG_SIDE (it is O(pixels) per iteration and the matte is
feathered anyway); the kept regions (any holding a face, and those at least KEEP_SHARE of the largest)
are scaled back and feathered by a Gaussian of a few pixels. Deterministic: OpenCV's RNG (GrabCut's
k-means initialisation draws from it) is seeded before each cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

__all__ = ["cut_out", "has_transparency"]

WORK_LONG_SIDE = 400
BORDER_BAND = 0.02  # of the short side, at least 2 px: sure background
SALIENT_DEVIATIONS = 1.0
CENTRE = (0.25, 0.3)  # semi-axes (of the width, the height) of the middle ellipse, probably subject
GRABCUT_ITERATIONS = 5
KEEP_SHARE = 0.2  # a region this share of the largest one's area is kept too (an arm, a held object)
MIN_SUBJECT_SHARE = 0.01  # a cut keeping less (or more than 1 - this) found no subject: nothing is cut
FEATHER = 0.004  # edge softness, Gaussian sigma as a share of the long side, at least 1 px
TRANSPARENT_SHARE = 0.01  # alpha below 128 over at least this share of a picture is real transparency


def has_transparency(alpha: np.ndarray) -> bool:
    """Whether an alpha channel (HxW uint8) holds real transparency: at least TRANSPARENT_SHARE of it
    below half cover. A few clear pixels (rounded corners, an exporter's stray edge) do not count."""
    return bool(np.mean(alpha < 128) >= TRANSPARENT_SHARE)


def _boxes(faces: Sequence[Any]) -> list[tuple[float, float, float, float]]:
    """Face boxes as (x, y, w, h) frame fractions, from FaceDetector entries or plain 4-sequences."""
    out = []
    for f in faces:
        box = f["box"] if isinstance(f, dict) else f
        x, y, w, h = (float(v) for v in box)
        if w > 0 and h > 0:
            out.append((x, y, w, h))
    return out


def _detect_faces(rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
    from lookalike.nodes.vision import FaceDetector

    try:
        detector = FaceDetector()
    except ImportError:  # OpenCV 5 ships no cascades: saliency alone seeds the cut
        return []
    return _boxes(detector.detect(rgb))


def _seeds(rgb: np.ndarray, faces: list[tuple[float, float, float, float]]) -> np.ndarray:
    """GrabCut's initial mask (GC_BGD, GC_FGD, GC_PR_BGD, GC_PR_FGD) for a working-size picture."""
    from lookalike.nodes.formats import saliency_map

    h, w = rgb.shape[:2]
    mask = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    sal = saliency_map(rgb)
    if sal.std() >= 1.0:  # a flat picture has no salient part
        mask[sal > sal.mean() + SALIENT_DEVIATIONS * sal.std()] = cv2.GC_PR_FGD
    # A subject photo is framed on its subject: the middle is probably subject too, which gives the
    # colour model the parts of a frame-filling subject that do not stand out from the mean colour.
    yy, xx = np.ogrid[0:h, 0:w]
    mask[((xx + 0.5) / w - 0.5) ** 2 / CENTRE[0] ** 2 + ((yy + 0.5) / h - 0.5) ** 2 / CENTRE[1] ** 2 <= 1] = (
        cv2.GC_PR_FGD
    )
    band = max(2, round(BORDER_BAND * min(h, w)))
    border = np.zeros((h, w), bool)
    border[:band], border[-band:], border[:, :band], border[:, -band:] = True, True, True, True
    sure_fg = np.zeros((h, w), bool)
    for fx, fy, fw, fh in faces:
        x0, x1 = round(fx * w), round((fx + fw) * w)
        y0, y1 = round(fy * h), round((fy + fh) * h)
        # Hair above and the body below (three face widths, to the bottom edge) are probably subject.
        mask[max(0, round(y0 - 0.4 * fh * h)) : y1, x0:x1] = cv2.GC_PR_FGD
        # Hair is often the backdrop's colour: the strip just above the face is kept outright.
        sure_fg[
            max(0, round(y0 - 0.2 * fh * h)) : y0 + 1, round((fx + 0.2 * fw) * w) : round((fx + 0.8 * fw) * w)
        ] = True
        bx0, bx1 = max(0, round((fx - fw) * w)), min(w, round((fx + 2 * fw) * w))
        mask[y1:, bx0:bx1] = cv2.GC_PR_FGD
        border[-band:, bx0:bx1] = False  # a portrait's body runs out of the bottom edge
        mx, my = round(0.15 * fw * w), round(0.15 * fh * h)
        sure_fg[y0 + my : max(y0 + my + 1, y1 - my), x0 + mx : max(x0 + mx + 1, x1 - mx)] = True
    mask[border] = cv2.GC_BGD
    mask[sure_fg] = cv2.GC_FGD
    return mask


def _kept(fg: np.ndarray, sure_fg: np.ndarray) -> np.ndarray:
    """The foreground regions worth keeping: any holding a sure-subject seed, and any at least
    KEEP_SHARE of the largest one's area (GrabCut leaves specks where the backdrop matches the subject)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    if n <= 1:
        return fg
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, bool)
    keep[1:] = areas >= KEEP_SHARE * areas.max()
    keep[np.unique(labels[sure_fg])] = True
    keep[0] = False
    return keep[labels]


def cut_out(rgb: np.ndarray, *, faces: Sequence[Any] | None = None) -> np.ndarray:
    """An alpha matte (HxW uint8, 255 the subject) for an RGB uint8 picture without transparency.

    `faces`: frontal faces as FaceDetector entries ({"box": [x, y, w, h]} in frame fractions) or
    plain boxes; None detects them (`vision.FaceDetector`), [] seeds from saliency alone. When the
    cut keeps under MIN_SUBJECT_SHARE of the picture, or nearly all of it, no subject was found and
    the matte is fully opaque (the picture as it was).
    """
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    h, w = rgb.shape[:2]
    if min(h, w) < 16:  # an icon: too small to hold a border band and a subject
        return np.full((h, w), 255, np.uint8)
    scale = min(1.0, WORK_LONG_SIDE / max(h, w))
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    work = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if scale < 1.0 else rgb
    boxes = _detect_faces(work) if faces is None else _boxes(faces)
    mask = _seeds(work, boxes)
    sure_fg = mask == cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut initialises its colour models with k-means on OpenCV's (thread-local) RNG: seed it, or
    # the same picture can get a different matte from one call to the next.
    cv2.setRNGSeed(0x5B)
    cv2.grabCut(work, mask, (0, 0, 0, 0), bgd, fgd, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    fg = _kept(np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)), sure_fg)
    share = float(fg.mean())
    if share < MIN_SUBJECT_SHARE or share > 1.0 - MIN_SUBJECT_SHARE:
        return np.full((h, w), 255, np.uint8)
    soft = fg.astype(np.float32)
    if soft.shape != (h, w):
        # Back to full size on a smooth edge (bilinear, then cut at half) rather than blocky pixels.
        soft = (cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5).astype(np.float32)
    sigma = max(1.0, FEATHER * max(h, w), 0.5 / scale)
    feathered = cv2.GaussianBlur(soft, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return np.clip(feathered * 255.0 + 0.5, 0, 255).astype(np.uint8)
