"""The local generator: a scene's footage from a subject picture, the scene's camera path and its look.

No model, no provider: a procedural backdrop in the sample scene's palette, the user's subject (or a
synthetic stand-in) centred on it, the whole seen through the sample's measured camera trajectory
and graded toward the sample's measured grade (kernels.grade.measure_grade, the analysis' own
definition). It is the fallback provider and the reference that the score stage can be checked on.

Each frame is a pure function of (scene, frame index, subject, seed): a `SceneRenderer` builds one
world canvas for the whole scene (its size from the whole trajectory, never from the frames asked
for) and each frame is one affine warp of it, so a node rendering frames 100..149 writes exactly
the pixels a whole-scene render would.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from lookalike.kernels import compose, grade
from lookalike.nodes import cutout

from lookalike.errors import InputError, NotFoundError
from lookalike.obs import get_logger

SUBJECT_HEIGHT = 0.5  # of the frame height: the brief's 40-60 %, centred on the first frame
PALETTE_PULL = 0.35  # how far the subject's colours move toward the scene palette
MAX_CANVAS_PIXELS = 24_000_000  # a world canvas beyond this is rendered at reduced resolution
MAX_CANVAS_SIDE = 16_000
GRADE_VIEWS = 5  # poses along the trajectory the grade is solved on
_GRADE_VIEW_WIDTH = 320
log = get_logger("generate")


# ---------------------------------------------------------------- subjects


def synth_subject(seed: int, size: int = 512) -> np.ndarray:
    """A stand-in subject: a shaded round mascot (body, head, ears, eyes) on transparency, RGBA uint8.

    Colour and proportions come from `seed`; edges are anti-aliased. Deterministic.
    """
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5B])
    hue = float(rng.uniform(0.0, 1.0))
    base = np.array(colorsys.hsv_to_rgb(hue, float(rng.uniform(0.45, 0.75)), float(rng.uniform(0.7, 0.9))))
    belly = np.array(colorsys.hsv_to_rgb(hue, 0.15, 0.97))
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    px = 1.5 / size  # anti-aliasing width

    def disc(cx: float, cy: float, rx: float, ry: float) -> tuple[np.ndarray, np.ndarray]:
        d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
        cover = np.clip((1.0 - d) * min(rx, ry) / px + 0.5, 0.0, 1.0)
        nz = np.sqrt(np.clip(1.0 - d**2, 0.0, 1.0))
        light = np.array([-0.45, -0.55, 0.70])
        lam = ((xx - cx) / rx * light[0] + (yy - cy) / ry * light[1] + nz * light[2]).clip(0.0, 1.0)
        return cover, 0.35 + 0.65 * lam

    body_ry = float(rng.uniform(0.26, 0.31))
    head_r = float(rng.uniform(0.16, 0.2))
    body_c, body_s = disc(0.5, 0.96 - body_ry, 0.27, body_ry)
    head_cy = 0.96 - 2 * body_ry - head_r * 0.45
    head_c, head_s = disc(0.5, head_cy, head_r, head_r)
    ear_l, ear_ls = disc(0.5 - head_r * 0.7, head_cy - head_r * 0.85, head_r * 0.35, head_r * 0.45)
    ear_r, ear_rs = disc(0.5 + head_r * 0.7, head_cy - head_r * 0.85, head_r * 0.35, head_r * 0.45)
    belly_c, _ = disc(0.5, 0.96 - body_ry * 0.8, 0.16, body_ry * 0.6)

    rgb = np.zeros((size, size, 3), np.float32)
    alpha = np.zeros((size, size), np.float32)
    for cover, shade, colour in (
        (ear_l, ear_ls, base * 0.8),
        (ear_r, ear_rs, base * 0.8),
        (body_c, body_s, base),
        (head_c, head_s, base),
    ):
        layer = colour[None, None, :] * shade[..., None]
        rgb = rgb * (1 - cover[..., None]) + layer * cover[..., None]
        alpha = alpha + cover * (1 - alpha)
    rgb = rgb * (1 - belly_c[..., None]) + (belly[None, None, :] * body_s[..., None]) * belly_c[..., None]
    for side in (-1, 1):
        eye, _ = disc(0.5 + side * head_r * 0.38, head_cy - head_r * 0.05, head_r * 0.16, head_r * 0.22)
        glint, _ = disc(
            0.5 + side * head_r * 0.38 - head_r * 0.05, head_cy - head_r * 0.13, head_r * 0.05, head_r * 0.05
        )
        rgb = rgb * (1 - eye[..., None]) + np.float32(0.06) * eye[..., None]
        rgb = rgb * (1 - glint[..., None]) + np.float32(0.95) * glint[..., None]
    out = np.concatenate([np.clip(rgb, 0, 1), alpha[..., None]], axis=-1)
    return (out * 255.0 + 0.5).astype(np.uint8)


MAX_SUBJECT_SIDE = 16384
MAX_SUBJECT_PIXELS = 64_000_000


def load_subject(path: str | Path, *, cut: bool = True) -> np.ndarray:
    """The user's subject picture as RGBA uint8 (`cut=False`: checked and decoded only, as a probe needs).

    A picture whose alpha channel holds real transparency (`cutout.has_transparency`) is kept as it
    is; any other (a JPEG, an opaque PNG) is cut out of its background (`cutout.cut_out`: GrabCut
    seeded by saliency and faces, feathered), and the log says so. Where the cut finds no subject the
    picture stays fully opaque.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise NotFoundError(
            f"subject image not found: {p}", hint="pass the path of a PNG/JPEG/WebP picture of the subject"
        )
    try:
        with Image.open(p) as im:
            # The header says the size: refuse a huge picture before decoding a single pixel of it.
            w, h = im.size
            if max(w, h) > MAX_SUBJECT_SIDE or w * h > MAX_SUBJECT_PIXELS:
                raise InputError(
                    f"subject image {p} is {w}x{h}; the limit is {MAX_SUBJECT_SIDE} px a side and "
                    f"{MAX_SUBJECT_PIXELS // 1_000_000} Mpx",
                    hint="scale the picture down (2048 px is plenty for a subject)",
                )
            im.load()
            rgba = im.convert("RGBA")
    except Image.DecompressionBombError as exc:
        raise InputError(f"subject image {p} is far too large to decode", hint="scale the picture down") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(
            f"subject file is not a readable image: {p}",
            hint="use a PNG (ideally with transparency around the subject), JPEG or WebP file",
        ) from exc
    arr = np.asarray(rgba, dtype=np.uint8)
    if arr.size == 0 or not arr[..., 3].any():
        raise InputError(
            f"subject image is empty or fully transparent: {p}", hint="use a picture that shows the subject"
        )
    if cut and not cutout.has_transparency(arr[..., 3]):
        arr = arr.copy()
        arr[..., 3] = cutout.cut_out(arr[..., :3])
        log.info("subject_cut_out", subject=p.name, reason="no transparency",
                 kept=round(float(np.mean(arr[..., 3] >= 128)), 3))
    return arr


# ---------------------------------------------------------------- scenes


def _trajectory(scene: Mapping[str, Any]) -> np.ndarray:
    n = int(scene["end_frame"]) - int(scene["start_frame"])
    traj = np.asarray((scene.get("camera") or {}).get("trajectory") or [], dtype=np.float64).reshape(-1, 4)
    if len(traj) == 0:
        traj = np.array([[0.0, 0.0, 1.0, 0.0]])
    if len(traj) < n:  # a short trajectory holds its last pose
        traj = np.vstack([traj, np.repeat(traj[-1:], n - len(traj), axis=0)])
    return traj[:n]


def _check_scene(scene: Mapping[str, Any]) -> tuple[int, int]:
    try:
        start, end = int(scene["start_frame"]), int(scene["end_frame"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            "scene needs integer start_frame and end_frame",
            hint="pass a plan scene entry as in analysis.json",
        ) from exc
    if end <= start:
        raise InputError(f"scene {scene.get('index')} is empty: start_frame {start} >= end_frame {end}")
    return start, end


class SceneRenderer:
    """Renders the frames of one scene: `SceneRenderer(scene, 1280, 720, subject, seed).frame(i)`.

    Construction builds and grades the world canvas (about 0.5 s at 720p); `frame` is one warp.
    """

    def __init__(
        self, scene: Mapping[str, Any], width: int, height: int, subject_rgba: np.ndarray | None, seed: int
    ) -> None:
        if width < 2 or height < 2:
            raise InputError(f"frame size {width}x{height} is too small", hint="use at least 2x2 pixels")
        self.start, self.end = _check_scene(scene)
        self.width, self.height = int(width), int(height)
        self.poses = _trajectory(scene)
        palette = scene.get("palette") or []
        pal_rgb = np.array([p["rgb"] for p in palette], np.float32).reshape(-1, 3)
        pal_w = np.array([p.get("weight", 1.0) for p in palette], np.float64)

        origin, scale, cw, ch = self._canvas_geometry()
        self.world_origin, self.world_scale = origin, scale
        world = compose.render_background(
            np, ch, cw, pal_rgb, pal_w, 0.0, seed, feature_px=0.25 * self.height * scale
        )
        if subject_rgba is not None:
            subject = np.asarray(subject_rgba)
            if len(pal_rgb):
                rgb = grade.palette_map(subject[..., :3], pal_rgb, pal_w, PALETTE_PULL)
                subject = np.concatenate([rgb, subject[..., 3:]], axis=-1) if subject.shape[-1] == 4 else rgb
            centre = (
                scale * ((self.width - 1) / 2.0 - origin[0]),
                scale * ((self.height - 1) / 2.0 - origin[1]),
            )
            world = compose.place_subject(
                world, subject, centre_xy=centre, height_px=SUBJECT_HEIGHT * self.height * scale
            )
        target = {k: float(v) for k, v in (scene.get("grade") or {}).items() if k in grade.GRADE_KEYS}
        self.adjustments = (
            grade.solve_grade(self._views(world), target) if target else dict(grade.IDENTITY_GRADE)
        )
        self.canvas = grade.to_uint8(grade.apply_grade(world, self.adjustments))
        self.target_exposure = target.get("exposure")
        self._decode = grade.srgb_to_linear(np.arange(256, dtype=np.uint8)).astype(np.float64)

    def _canvas_geometry(self) -> tuple[tuple[float, float], float, int, int]:
        """World bounding box of every frame of the scene (plus a margin), and the canvas scale."""
        w, h = self.width, self.height
        corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
        pts = []
        for pose in self.poses:
            m = compose.pose_matrix(pose, w, h)
            pts.append(corners @ m[:, :2].T + m[:, 2])
        pts = np.concatenate(pts)
        margin = 0.05 * max(w, h)
        x0, y0 = pts.min(axis=0) - margin
        x1, y1 = pts.max(axis=0) + margin
        # Zoomed-in shots see the world magnified: render it finer so they stay sharp (up to 2x).
        scale = float(np.clip(self.poses[:, 2].max(), 1.0, 2.0))
        scale = min(
            scale,
            np.sqrt(MAX_CANVAS_PIXELS / ((x1 - x0) * (y1 - y0))),
            MAX_CANVAS_SIDE / max(x1 - x0, y1 - y0),
        )
        cw = int(np.ceil((x1 - x0) * scale)) + 1
        ch = int(np.ceil((y1 - y0) * scale)) + 1
        return (float(x0), float(y0)), float(scale), cw, ch

    def _views(self, world: np.ndarray) -> np.ndarray:
        """Small renders of a few frames along the trajectory, side by side: what the grade is solved on."""
        vw = min(_GRADE_VIEW_WIDTH, self.width)
        vh = max(2, round(self.height * vw / self.width))
        sx, sy = self.width / vw, self.height / vh
        # View pixel centres onto frame pixel centres: p = (u + 0.5) * sx - 0.5.
        down = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        picks = np.unique(np.linspace(0, len(self.poses) - 1, GRADE_VIEWS).round().astype(int))
        views = []
        for i in picks:
            m = compose.pose_matrix(
                self.poses[i],
                self.width,
                self.height,
                world_origin=self.world_origin,
                world_scale=self.world_scale,
            )
            views.append(compose.warp_affine(world, m @ down, vh, vw))
        return np.concatenate(views, axis=1)

    def frame(self, index: int) -> np.ndarray:
        """The frame at absolute index `index` (start_frame <= index < end_frame): HxWx3 uint8 RGB."""
        if not self.start <= index < self.end:
            raise InputError(f"frame {index} is outside the scene [{self.start}, {self.end})")
        m = compose.pose_matrix(
            self.poses[index - self.start],
            self.width,
            self.height,
            world_origin=self.world_origin,
            world_scale=self.world_scale,
        )
        out = compose.warp_affine(self.canvas, m, self.height, self.width)
        return out if self.target_exposure is None else self._trim_exposure(out)

    def _trim_exposure(self, frame: np.ndarray) -> np.ndarray:
        """`frame` with its exposure pulled onto the scene target by a per-frame gain (a 256-entry LUT).

        The world is graded once for the whole scene, but a camera that pans from a dark region to a
        bright one changes what each frame averages; the trim keeps every frame's exposure on the
        target. It is measured on a 1/8 subsample and depends only on the frame's own pixels, so it
        keeps sub-range renders identical and varies as smoothly as the frames do.
        """
        import cv2

        small = frame[::8, ::8].reshape(-1, 3)
        rec = np.asarray(grade.REC709)
        target = grade.EXPOSURE_REF_GREY * 2.0 ** float(self.target_exposure)
        gain, lut = 1.0, None
        for _ in range(4):
            lin = np.minimum(self._decode * gain, 1.0)
            lut = grade.to_uint8(grade.linear_to_srgb(lin.astype(np.float32)))
            current = float((self._decode[lut[small]] @ rec).mean())
            if abs(np.log2(max(current, 1e-6) / target)) < 0.02:
                break
            gain = float(np.clip(gain * target / max(current, 1e-6), 0.25, 4.0))
        return frame if gain == 1.0 else cv2.LUT(frame, lut)


_RENDERERS: OrderedDict[str, SceneRenderer] = OrderedDict()
_RENDERER_CACHE_SIZE = 2


def _renderer_for(
    scene: Mapping[str, Any], width: int, height: int, subject_rgba: np.ndarray | None, seed: int
) -> SceneRenderer:
    """A renderer per (scene, size, subject, seed): consecutive chunks of one scene share the canvas."""
    h = hashlib.sha256(json.dumps(scene, sort_keys=True, default=str).encode())
    h.update(f"{width}x{height}:{seed}".encode())
    if subject_rgba is not None:
        sub = np.ascontiguousarray(subject_rgba)
        h.update(str(sub.shape).encode())
        h.update(sub.tobytes())
    key = h.hexdigest()
    if key in _RENDERERS:
        _RENDERERS.move_to_end(key)
        return _RENDERERS[key]
    renderer = SceneRenderer(scene, width, height, subject_rgba, seed)
    _RENDERERS[key] = renderer
    while len(_RENDERERS) > _RENDERER_CACHE_SIZE:
        _RENDERERS.popitem(last=False)
    return renderer


def render_frames(
    scene: Mapping[str, Any],
    start: int,
    end: int,
    *,
    width: int,
    height: int,
    subject_rgba: np.ndarray | None,
    seed: int,
) -> Iterator[np.ndarray]:
    """Yield rgb24 HxWx3 uint8 frames for ABSOLUTE frame indices [start, end) of `scene`.

    `scene` is a plan scene entry (start_frame, end_frame, palette, grade, camera.trajectory as in
    analysis.json); `seed` is the generation seed (callers pass the plan scene's seed). Any sub-range
    gives the same pixels as the same frames of a whole-scene render.
    """
    s0, s1 = _check_scene(scene)
    if not s0 <= start < end <= s1:
        raise InputError(
            f"frame range [{start}, {end}) is not inside scene {scene.get('index')} [{s0}, {s1})",
            hint="ask for a non-empty range within the scene's start_frame and end_frame",
        )
    renderer = _renderer_for(scene, width, height, subject_rgba, seed)
    for i in range(start, end):
        yield renderer.frame(i)
