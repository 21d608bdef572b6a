"""Footage scenes: the frames of a plan scene whose `source.kind` is "media" (docs/footage.md).

`FootageSource(path, scene, width, height, fps=F).frame(i)` reads like a SceneRenderer: frame i
(absolute) is a pure function of (scene, i), so any range of a scene renders exactly the pixels a
whole-scene render would. The steps, in the order docs/footage.md fixes:

1. Time. Output frame k shows the item at t = T[in_frame] + k * speed / F, T being the item's own
   frame times (VFR is real). The frame shown is the last one whose pts is at or before t; below
   speed 1 the fractional position between two frames is an in-between made by motion-compensated
   interpolation (DIS optical flow both ways, warped to the position and blended; an exact frame
   position uses the frame as is). Past out_frame `extend` holds the last frame or plays back and
   forth ("none" holds too: the planner is meant to have sized the range).
2. Mirror (left-right; the focus is mirrored with the picture).
3. Move "synth": the sample scene's camera trajectory (kernels.compose.pose_matrix, as the
   compositor films its world) is played over the picture, scaled up first so that no frame of
   the path leaves it, centred on `focus`.
4. Reframe: cover width x height centred on `focus`, the window clamped inside the picture.
5. Colour: a Lab mean/std transfer (kernels.transfer, Reinhard) from the footage's statistics to
   the sample scene's `grade.lut` ones, both measured with the analysis' own definition (the
   16-level RGB histogram of half-of-256-px frames, kernels.look.lab_moments), on COLOUR_VIEWS
   frames spread over the scene, once: every frame gets the same LUT (no flicker, sub-ranges
   identical). A transfer that moves no colour by half a code value is skipped, so the user's clip
   of the sample's own shot comes back untouched.

HDR (PQ or HLG transfer) is tone-mapped to SDR BT.709 with the operator in `tonemap_hdr`; 10-bit
SDR decodes through media.iter_frames like 8-bit. A file that breaks while decoding raises
InputError naming the item.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import av
import av.error
import cv2
import numpy as np
from lookalike.kernels import compose, grade, look
from lookalike.kernels import features as kf
from lookalike.kernels import lut as klut
from lookalike.kernels import metrics as km
from lookalike.kernels import transfer as ktransfer
from lookalike.nodes import generate, media

from lookalike.errors import InputError

__all__ = [
    "COLOUR_VIEWS",
    "FootageSource",
    "hdr_transfer",
    "item_positions",
    "media_warnings",
    "tonemap_hdr",
]

COLOUR_VIEWS = 8
"""Frames spread over a scene that its grade is solved on (plans without Lab statistics)."""
STATS_FRAMES = 240
"""Most item frames a scene's colour statistics are measured on (spread evenly over those used)."""
WINDOW = 48
"""Output frames whose item frames are decoded in one pass."""
_STATS_DECODE_LONG_SIDE = 256  # nodes.analysis.ANALYSIS_LONG_SIDE: stats are measured at half that
_SNAP = 1e-3  # a fractional position this close to a frame is that frame
_FLOW_WIDTH = 640  # optical flow is computed at most this wide, then scaled up
_FIT_PIXELS = 200_000  # pixels the colour transfer is refitted on
FIT_ROUNDS = 4
# The palette transfer after the mean/std one (`_pull_palette`): rounds at most, the palette distance
# (ΔE2000, as the score measures it) that is close enough, and how far (Lab) a colour feels a cluster.
PALETTE_ROUNDS = 4
PALETTE_TARGET_DE = 3.0
PALETTE_SIGMA = 10.0
# Footage whose Lab mean is within SAME_LOOK_LAB and std within SAME_LOOK_STD (ratio) of the scene's
# has its look already (`_same_look`): no palette transfer.
SAME_LOOK_LAB = 1.5
SAME_LOOK_STD = 0.08
_PALETTE_PIXELS = 60_000
"""Most refits of a scene's colour transfer (see _fit_transfer)."""
_IDENTITY_TOLERANCE = 0.5 / 255.0  # a colour LUT that moves nothing by half a code value is skipped

# H.273 transfer characteristics of HDR video.
_HDR_TRC = {16: "pq", 18: "hlg"}
HDR_PEAK_NITS = 1000.0
"""Peak the tone mapping assumes (mastering displays and HLG's reference display: 1000 nits)."""
SDR_WHITE_NITS = 100.0
"""Linear 1.0 of the SDR result (BT.1886 reference white)."""
_BT2020_TO_BT709 = np.array(
    [[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]], np.float32
)
_BT2020_LUMA = np.array([0.2627, 0.6780, 0.0593], np.float32)


# ---------------------------------------------------------------- HDR


def hdr_transfer(path: str | Path) -> str | None:
    """The HDR transfer the file's video is tagged with ("pq" or "hlg"), or None for SDR."""
    try:
        with av.open(str(path), metadata_errors="ignore") as c:
            if not c.streams.video:
                return None
            return _HDR_TRC.get(int(c.streams.video[0].codec_context.color_trc or 0))
    except av.error.FFmpegError:
        return None


def media_warnings(info: media.MediaInfo) -> list[str]:
    """What the ingest step should tell the user about an item before it is used (may be empty)."""
    out = []
    name = Path(info.path).name
    trc = hdr_transfer(info.path) if info.has_video else None
    if trc is not None:
        out.append(
            f"{name} is HDR ({trc.upper()}); it is tone-mapped to SDR (peak {HDR_PEAK_NITS:.0f} nits "
            "assumed), so its highlights are compressed"
        )
    if info.variable_frame_rate:
        out.append(f"{name} has a variable frame rate; its frames are placed by their own timestamps")
    return out


def tonemap_hdr(rgb: np.ndarray, transfer: str) -> np.ndarray:
    """HxWx3 HDR code values (BT.2020 primaries, float in [0, 1]) to SDR BT.709 sRGB uint8.

    PQ is decoded to absolute nits (SMPTE ST 2084); HLG through its inverse OETF and the BT.2100
    reference OOTF for a HDR_PEAK_NITS display (system gamma 1.2). The operator is extended
    Reinhard on BT.2020 luminance, SDR_WHITE_NITS = 1.0 and white point HDR_PEAK_NITS: HDR's
    diffuse white (203 nits) lands near 85 % sRGB, 1000 nits at white, with hue kept (RGB scaled
    by one ratio per pixel); then BT.2020 to BT.709 primaries, clipped, sRGB-encoded.
    """
    e = np.clip(rgb.astype(np.float32), 0.0, 1.0)
    if transfer == "pq":
        m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
        p = e ** (1.0 / m2)
        nits = 10000.0 * (np.maximum(p - c1, 0.0) / (c2 - c3 * p)) ** (1.0 / m1)
    elif transfer == "hlg":
        a, b, c = 0.17883277, 0.28466892, 0.55991073
        scene = np.where(e <= 0.5, e * e / 3.0, (np.exp((e - c) / a) + b) / 12.0)
        ys = scene @ _BT2020_LUMA
        nits = HDR_PEAK_NITS * scene * (np.maximum(ys, 1e-6) ** 0.2)[..., None]
    else:
        raise InputError(f"HDR transfer {transfer!r} cannot be tone-mapped", hint="use PQ or HLG video")
    lin = nits / SDR_WHITE_NITS
    y = np.maximum(lin @ _BT2020_LUMA, 1e-6)
    white = HDR_PEAK_NITS / SDR_WHITE_NITS
    mapped = y * (1.0 + y / (white * white)) / (1.0 + y)
    lin = lin * (mapped / y)[..., None]
    lin709 = np.clip(lin @ _BT2020_TO_BT709.T, 0.0, 1.0)
    return grade.to_uint8(grade.linear_to_srgb(lin709))


# ---------------------------------------------------------------- time


def item_positions(
    frame_times: tuple[float, ...] | list[float],
    in_frame: int,
    out_frame: int,
    n: int,
    *,
    speed: float,
    out_fps: float,
    extend: str,
) -> list[tuple[int, int, float]]:
    """Per output frame k < n: (a, b, w), showing item frames a and b blended at w (0: a alone).

    Positions come from times (docs/footage.md); below speed 1 a position between two frames is
    kept fractional (the caller makes an in-between), otherwise the frame shown is the one on
    screen at that time. `extend` ("hold", "pingpong", "none" = hold) reflects or clamps positions
    past out_frame - 1.
    """
    times = list(frame_times)
    total = len(times)
    if not 0 <= in_frame < out_frame <= total:
        raise InputError(
            f"item range [{in_frame}, {out_frame}) is outside the item's {total} frames",
            hint="plan the scene's source again",
        )
    if speed <= 0 or out_fps <= 0:
        raise InputError(f"speed {speed} and output fps {out_fps} must be positive")
    deltas = np.diff(times) if total > 1 else np.array([1.0 / out_fps])
    eps = 1e-4 * float(np.median(deltas))
    last = out_frame - 1 - in_frame
    out = []
    for k in range(n):
        t = times[in_frame] + k * speed / out_fps
        j = bisect.bisect_right(times, t + eps) - 1
        pos = float(j)
        if speed < 1 and j + 1 < total:
            pos += max(0.0, (t - times[j]) / (times[j + 1] - times[j]))
        r = pos - in_frame
        if r > last:
            if extend == "pingpong" and last > 0:
                r = r % (2 * last)
                r = 2 * last - r if r > last else r
            else:
                r = float(last)
        a = math.floor(r + _SNAP)
        w = r - a
        if w < _SNAP or a >= last:
            out.append((in_frame + min(a, last), in_frame + min(a, last), 0.0))
        else:
            out.append((in_frame + a, in_frame + a + 1, w))
    return out


def _inbetween(fa: np.ndarray, fb: np.ndarray, w: float, flows: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The picture at fraction w of the way from fa to fb, from the flows fa->fb and fb->fa.

    The flows from the in-between to each end are approximated from the two end flows as in Super
    SloMo (Jiang et al. 2018): F_t0 = -(1-t) t F_01 + t^2 F_10, F_t1 = (1-t)^2 F_01 - t (1-t) F_10;
    each end is warped backward along its flow and the two are blended by closeness in time.
    `flows` are at the flow size (`_flows`): the mix is made there and scaled up once per end,
    which equals mixing the scaled-up flows (bilinear scaling is linear).
    """
    f01, f10 = flows
    t = float(w)
    h, wd = fa.shape[:2]
    sh, sw = f01.shape[:2]
    ft0 = -(1 - t) * t * f01 + t * t * f10
    ft1 = (1 - t) * (1 - t) * f01 - t * (1 - t) * f10
    gx, gy = _grid(h, wd)
    ends = []
    for picture, ft in ((fa, ft0), (fb, ft1)):
        if (sh, sw) != (h, wd):
            ft = cv2.resize(ft, (wd, h), interpolation=cv2.INTER_LINEAR)
            ft[..., 0] *= wd / sw
            ft[..., 1] *= h / sh
        ft[..., 0] += gx
        ft[..., 1] += gy
        ends.append(cv2.remap(picture, ft[..., 0], ft[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    return cv2.addWeighted(ends[0], 1.0 - t, ends[1], t, 0.0)


@functools.lru_cache(maxsize=4)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y coordinates of an h x w picture (read-only, shared)."""
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def _flows(fa: np.ndarray, fb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense optical flow fa->fb and fb->fa, DIS at most _FLOW_WIDTH wide, at that size and in its
    pixels (`_inbetween` scales them up to fa's size)."""
    h, w = fa.shape[:2]
    s = min(1.0, _FLOW_WIDTH / w)
    size = (max(8, round(w * s)), max(8, round(h * s)))
    ga = cv2.cvtColor(cv2.resize(fa, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(cv2.resize(fb, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    # DIS's FAST preset: on the shared footage (4 clips, the middle of frames k and k+2 made from
    # them and compared with frame k+1) it gave 30.16 dB PSNR beside MEDIUM's 30.29 (a plain blend
    # 26.72) for a quarter of the time (9 ms a pair at 640x360 against 40 ms).
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    return dis.calc(ga, gb, None), dis.calc(gb, ga, None)


# ---------------------------------------------------------------- the source


class FootageSource:
    """Frames of one footage scene: `FootageSource(path, scene, 1280, 720, fps=24).frame(i)`.

    `path` is the local file of the scene's media item (a video, or a photo); `scene` the plan
    scene (start_frame, end_frame, grade, camera.trajectory, source as docs/footage.md); `fps`
    the output frame rate F. Construction probes the item, plans every frame's item position and
    geometry, and measures the colour transfer on up to STATS_FRAMES used item frames. `frame` decodes the item
    frames of WINDOW output frames at a time (callers read in order). `xp` (numpy or cupy) is
    where the colour LUT is applied when no baked table is used; frames come back as numpy.
    """

    def __init__(
        self,
        path: str | Path,
        scene: Mapping[str, Any],
        width: int,
        height: int,
        *,
        fps: float,
        xp: Any = np,
    ) -> None:
        if width < 2 or height < 2:
            raise InputError(f"frame size {width}x{height} is too small", hint="use at least 2x2 pixels")
        self.path = Path(path)
        self.start, self.end = generate._check_scene(scene)
        self.width, self.height = int(width), int(height)
        self.fps = float(fps)
        self.xp = xp
        src = dict(scene.get("source") or {})
        if src.get("kind", "media") != "media":
            raise InputError(
                f"scene {scene.get('index')} is not made from media (source.kind {src.get('kind')})"
            )
        self.name = str(src.get("media") or self.path.name)
        self.mirror = bool(src.get("mirror"))
        self.move = str(src.get("move") or "none")
        focus = src.get("focus") or [0.5, 0.5]
        fx, fy = (float(v) for v in focus)
        self.focus = (1.0 - fx if self.mirror else fx, fy)

        self._photo: np.ndarray | None = None
        self._hdr: str | None = None
        self.info: media.MediaInfo | None = None
        times = self._open(bool(src.get("photo")))
        in_frame = int(src.get("in_frame", 0))
        out_frame = int(src.get("out_frame", len(times)))
        self.taps = item_positions(
            times,
            in_frame,
            min(out_frame, len(times)),
            self.end - self.start,
            speed=float(src.get("speed", 1.0)),
            out_fps=self.fps,
            extend=str(src.get("extend") or "none"),
        )
        self._plan_geometry(scene)
        self._items: dict[int, np.ndarray] = {}
        self._flow_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.lut = self._solve_colour(scene)
        # Filled at the colours the frames hold, as they come (bit for bit apply_lut).
        self._table = klut.LazyTable(self.lut) if self.lut is not None and self.xp is np else None

    # ------------------------------------------------------------ opening

    def _open(self, photo: bool) -> tuple[float, ...]:
        """Probe the item (a photo PyAV cannot read opens with PIL); return its frame times."""
        try:
            self.info = media.probe(self.path)
            if not self.info.has_video or self.info.n_frames == 0:
                raise InputError(f"footage {self.name} ({self.path.name}) holds no video frames")
        except InputError as exc:
            self._photo = self._pil(exc)
            self.src_size = (self._photo.shape[1], self._photo.shape[0])
            return (0.0,)
        self._hdr = hdr_transfer(self.path)
        self.src_size = (self.info.width, self.info.height)
        return self.info.frame_times

    def _pil(self, why: InputError) -> np.ndarray:
        from PIL import Image, ImageOps, UnidentifiedImageError

        try:
            with Image.open(self.path) as im:
                return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise InputError(
                f"footage {self.name} ({self.path.name}) is neither a readable video nor a picture "
                f"({why.message})",
                hint="export it as MP4 (H.264) or JPEG/PNG and add it again",
            ) from exc

    # ------------------------------------------------------------ geometry

    def _plan_geometry(self, scene: Mapping[str, Any]) -> None:
        """Decode size of item frames and, per output frame, how they map onto the output."""
        w, h = self.width, self.height
        ws, hs = self.src_size
        self.poses = generate._trajectory(scene) if self.move == "synth" else None
        if self.poses is None:
            # Cover: the largest window of the output's aspect, scaled to exactly the output size
            # (as providers.conform.cover, but centred on the focus): an integer crop, no resampling
            # beyond the one scale, none at all when the item already has the output size.
            s = max(w / ws, h / hs)
            self.decode_size = (max(w, round(ws * s)), max(h, round(hs * s)))
            dw, dh = self.decode_size
            self.crop = (
                int(np.clip(round(self.focus[0] * dw - w / 2), 0, dw - w)),
                int(np.clip(round(self.focus[1] * dh - h / 2), 0, dh - h)),
            )
            return
        # Synth move: every frame's view of the world (first frame's output pixels), then the one
        # similarity that puts the whole path inside the picture, its first frame on the focus.
        edges = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]])
        mats = [np.vstack([compose.pose_matrix(p, w, h), [0.0, 0.0, 1.0]]) for p in self.poses]
        pts = np.concatenate([edges @ m[:2, :2].T + m[:2, 2] for m in mats])
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        g = min(ws / (x1 - x0), hs / (y1 - y0))  # item pixels per world pixel
        # Decode no larger than the most zoomed-in frame needs (detail), never above the item's size.
        zmax = max(1.0, float(self.poses[:, 2].max()))
        r = min(1.0, zmax / g)
        self.decode_size = (max(2, round(ws * r)), max(2, round(hs * r)))
        dw, dh = self.decode_size
        g = min(dw / (x1 - x0), dh / (y1 - y0))
        c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        f = np.array([self.focus[0] * dw - 0.5, self.focus[1] * dh - 0.5])
        o = f - g * c
        o[0] = np.clip(o[0], -0.5 - g * x0, dw - 0.5 - g * x1)
        o[1] = np.clip(o[1], -0.5 - g * y0, dh - 0.5 - g * y1)
        to_item = np.array([[g, 0.0, o[0]], [0.0, g, o[1]], [0.0, 0.0, 1.0]])
        self.matrices = [(to_item @ m)[:2] for m in mats]

    def _place(self, picture: np.ndarray, k: int) -> np.ndarray:
        """An item picture (at decode_size, mirrored) as output frame k's view of it."""
        if self.poses is None:
            x0, y0 = self.crop
            if picture.shape[:2] == (self.height, self.width):
                return picture
            return np.ascontiguousarray(picture[y0 : y0 + self.height, x0 : x0 + self.width])
        return compose.warp_affine(picture, self.matrices[k], self.height, self.width)

    # ------------------------------------------------------------ decoding

    def _load(self, needed: set[int]) -> None:
        """Decode the item frames `needed` (one pass over their span), prepared; drop all others."""
        keep = {i: self._items[i] for i in needed if i in self._items}
        todo = sorted(needed - keep.keys())
        if todo and self._photo is not None:
            keep[0] = self._prepare(self._resize(self._photo))
        elif todo:
            size = None if self.decode_size == self.src_size else self.decode_size
            with contextlib.closing(self._iter(todo[0], todo[-1] + 1, size)) as frames:
                for i, _, rgb in self._named(frames):
                    if i in needed:
                        keep[i] = self._prepare(rgb)
        self._items = keep
        self._flow_cache = {a: f for a, f in self._flow_cache.items() if a in keep and a + 1 in keep}

    def _named(
        self, frames: Iterator[tuple[int, float, np.ndarray]]
    ) -> Iterator[tuple[int, float, np.ndarray]]:
        """`frames`, with a decode failure re-raised naming the footage item."""
        try:
            yield from frames
        except InputError as exc:
            raise InputError(
                f"footage {self.name} ({self.path.name}) breaks while decoding: {exc.message}",
                hint="the file is damaged; re-export it or leave it out of --media",
            ) from exc

    def _iter(self, a: int, b: int, size: tuple[int, int] | None):
        if self._hdr is None:
            return media.iter_frames(str(self.path), a, b, size=size)
        transfer = self._hdr

        def convert(frame: av.VideoFrame, scaled: list, turns: int) -> np.ndarray:
            sz = scaled[0] or (frame.width, frame.height)
            kw = {"src_colorspace": 9} if frame.colorspace == 9 else {}  # BT.2020 non-constant luminance
            rgb48 = frame.reformat(
                width=sz[0], height=sz[1], format="rgb48le", interpolation="AREA", **kw
            ).to_ndarray()
            if turns:
                rgb48 = np.rot90(rgb48, k=turns)
            return tonemap_hdr(rgb48.astype(np.float32) / 65535.0, transfer)

        # media's frame-exact range decode, with a 16-bit conversion instead of rgb24.
        return media._iter_converted(str(self.path), a, b, [size], convert)

    def _resize(self, rgb: np.ndarray) -> np.ndarray:
        dw, dh = self.decode_size
        if (rgb.shape[1], rgb.shape[0]) == (dw, dh):
            return rgb
        interp = cv2.INTER_AREA if dw < rgb.shape[1] else cv2.INTER_LINEAR
        return cv2.resize(rgb, (dw, dh), interpolation=interp)

    def _prepare(self, rgb: np.ndarray) -> np.ndarray:
        rgb = self._resize(rgb)
        return np.ascontiguousarray(rgb[:, ::-1]) if self.mirror else rgb

    def _picture(self, k: int) -> np.ndarray:
        """Output frame k before colour: its item frame or in-between, placed."""
        a, b, w = self.taps[k]
        if w == 0.0:
            return self._place(self._items[a], k)
        if a not in self._flow_cache:
            self._flow_cache[a] = _flows(self._items[a], self._items[b])
        return self._place(_inbetween(self._items[a], self._items[b], w, self._flow_cache[a]), k)

    def _needed(self, ks: list[int]) -> set[int]:
        return {i for k in ks for i in self.taps[k][:2]}

    # ------------------------------------------------------------ colour

    def _solve_colour(self, scene: Mapping[str, Any]) -> klut.Lut3D | None:
        """The scene's colour LUT (None: identity): the Lab transfer onto grade.lut, else the grade."""
        g = scene.get("grade") or {}
        lut = g.get("lut") or {}
        target_grade = {k: float(v) for k, v in g.items() if k in grade.GRADE_KEYS}
        if not lut.get("lab_mean") and not target_grade:
            return None
        if lut.get("lab_mean") and lut.get("lab_std"):
            counts, pixels = self._colour_histogram()
            bins = np.nonzero(counts)[0]
            mean, std = look.lab_moments(bins, counts[bins])
            table = _fit_transfer(pixels, mean, std, lut["lab_mean"], lut["lab_std"])
            if not _same_look(mean, std, lut["lab_mean"], lut["lab_std"]):
                table = _pull_palette(table, pixels, scene.get("palette") or [], counts)
        else:
            # No Lab statistics (an older plan): the four grade numbers, solved as conform does.
            views = np.concatenate([_grade_view(p) for p in self._grade_pictures()], axis=1)
            adjustments = grade.solve_grade(views, target_grade)
            table = klut.from_function(lambda rgb: grade.apply_grade(rgb, adjustments), 33)
        if float(np.abs(table.table - klut.identity(table.size).table).max()) < _IDENTITY_TOLERANCE:
            return None
        return table

    def _colour_histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """The analysis' pooled 16-level RGB histogram of the scene's item frames, seen through
        frame 0's output window.

        Measured as nodes.analysis measures a shot (decoded with the long side at 256, halved by an
        area filter, every frame used up to STATS_FRAMES spread evenly), so a clip that is the
        sample's own shot measures what the sample's analysis did and its transfer is the identity.
        A few frames are not enough: their statistics wander by a couple of L* units from the
        shot's, which alone costs the reassembly case 5-10 dB of PSNR. Also returns a subsample of
        the measured pixels (N x 1 x 3 float) for `_fit_transfer`.
        """
        used = sorted({i for t in self.taps for i in t[:2]})
        if len(used) > STATS_FRAMES:
            used = [used[j] for j in np.linspace(0, len(used) - 1, STATS_FRAMES).round().astype(int)]
        ws, hs = self.src_size
        scale = _STATS_DECODE_LONG_SIDE / max(ws, hs)
        size = (max(16, int(round(ws * scale / 2)) * 2), max(16, int(round(hs * scale / 2)) * 2))
        # A synthesized move shows a different part of the picture in every frame: measure the part
        # the whole move covers, not frame 0's window alone.
        (u0, v0), (u1, v1) = self._window_fractions() if self.poses is None else self._move_fractions()
        if self.mirror:
            u0, u1 = 1.0 - u1, 1.0 - u0
        x0, x1 = int(round(u0 * size[0])), max(int(round(u0 * size[0])) + 2, int(round(u1 * size[0])))
        y0, y1 = int(round(v0 * size[1])), max(int(round(v0 * size[1])) + 2, int(round(v1 * size[1])))
        counts = np.zeros(kf.COLOR_LEVELS**3)
        stride = max(1, int(np.ceil(len(used) * (x1 - x0) * (y1 - y0) / 4 / _FIT_PIXELS)))
        pixels: list[np.ndarray] = []

        def add(rgb: np.ndarray) -> None:
            f = kf.to_float(rgb[y0:y1, x0:x1])
            h2, w2 = f.shape[0] // 2, f.shape[1] // 2
            f = cv2.resize(f[: 2 * h2, : 2 * w2], (w2, h2), interpolation=cv2.INTER_AREA)
            c = kf.frame_colour_stats(f)["colours"]
            counts[np.asarray(c["bins"], np.int64)] += np.asarray(c["counts"], np.float64)
            pixels.append(f.reshape(-1, 3)[len(pixels) % stride :: stride])

        if self._photo is not None:
            add(cv2.resize(self._photo, size, interpolation=cv2.INTER_AREA))
        else:
            wanted = set(used)
            with contextlib.closing(self._iter(used[0], used[-1] + 1, size)) as frames:
                for i, _, rgb in self._named(frames):
                    if i in wanted:
                        add(rgb)
        return counts, np.concatenate(pixels)[:, None, :]

    def _window_fractions(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Frame 0's output window on the (mirrored) item, as fractions: ((u0, v0), (u1, v1))."""
        dw, dh = self.decode_size
        if self.poses is None:
            x0, y0 = self.crop
            return (x0 / dw, y0 / dh), ((x0 + self.width) / dw, (y0 + self.height) / dh)
        w, h = self.width, self.height
        edges = np.array([[-0.5, -0.5], [w - 0.5, h - 0.5]])
        m = self.matrices[0]
        (a, b), (c, d) = (edges @ m[:, :2].T + m[:, 2] + 0.5) / np.array([dw, dh])
        return (max(0.0, min(a, c)), max(0.0, min(b, d))), (min(1.0, max(a, c)), min(1.0, max(b, d)))

    def _move_fractions(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The bounding box, as fractions of the item, of every output window along the synthesized move."""
        dw, dh = self.decode_size
        w, h = self.width, self.height
        edges = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]])
        pts = np.concatenate([edges @ m[:, :2].T + m[:, 2] + 0.5 for m in self.matrices]) / np.array([dw, dh])
        lo, hi = np.clip(pts.min(axis=0), 0.0, 1.0), np.clip(pts.max(axis=0), 0.0, 1.0)
        return (float(lo[0]), float(lo[1])), (float(hi[0]), float(hi[1]))

    def _grade_pictures(self) -> list[np.ndarray]:
        n = self.n_frames
        pictures = []
        for k in sorted(set(np.linspace(0, n - 1, min(n, COLOUR_VIEWS)).round().astype(int).tolist())):
            self._load(self._needed([k]))
            pictures.append(self._picture(k))
        self._items, self._flow_cache = {}, {}
        return pictures

    def _colour(self, picture: np.ndarray) -> np.ndarray:
        if self.lut is None:
            return picture
        if self.xp is not np:
            from lookalike.kernels.xp import to_host

            return to_host(klut.apply_lut(self.xp.asarray(picture), self.lut.to(self.xp)))
        return self._table.apply(picture)

    # ------------------------------------------------------------ frames

    @property
    def n_frames(self) -> int:
        return self.end - self.start

    def frame(self, i: int) -> np.ndarray:
        """The frame at absolute index i (start_frame <= i < end_frame): HxWx3 uint8 RGB."""
        if not self.start <= i < self.end:
            raise InputError(f"frame {i} is outside the scene [{self.start}, {self.end})")
        k = i - self.start
        a, b, _ = self.taps[k]
        if a not in self._items or b not in self._items:
            self._load(self._needed(list(range(k, min(self.n_frames, k + WINDOW)))))
        return self._colour(self._picture(k))


def _moments(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = kf.frame_colour_stats(pixels)["colours"]
    m, sd = look.lab_moments(np.asarray(c["bins"], np.int64), np.asarray(c["counts"], np.float64))
    return np.asarray(m), np.asarray(sd)


def _fit_transfer(pixels: np.ndarray, mean: list, std: list, ref_mean: list, ref_std: list) -> klut.Lut3D:
    """The Reinhard LUT that moves the measured statistics (mean, std) of `pixels` onto the target's.

    Statistics are measured the analysis' way, on a 16-level histogram, whose bins add a spread of
    their own: scaling a faint chroma spread by r does not scale its measured std by r. So the
    transfer is refitted (FIT_ROUNDS at most) until applying it to the measured pixels changes
    their measured statistics by what the target asks, as measured; a source that already has the
    target statistics asks for no change and gets the identity.
    """
    none = np.zeros((ktransfer.QUANTILES, 3))
    m0, s0 = np.asarray(mean, float), np.asarray(std, float)
    want_dm = np.asarray(ref_mean, float) - m0
    want_ratio = np.asarray(ref_std, float) / np.maximum(s0, 1e-3)
    src = ktransfer.ColourStats(m0, s0, none, 1)
    base_m, base_s = _moments(pixels)
    goal_m, goal_s = m0 + want_dm, s0 * want_ratio
    table = ktransfer.fit_lut(src, ktransfer.ColourStats(goal_m, goal_s, none, 1), "reinhard", size=33)
    for _ in range(FIT_ROUNDS):
        got_m, got_s = _moments(klut.apply_lut(pixels, table))
        dm = (base_m + want_dm) - got_m
        ratio = base_s * want_ratio / np.maximum(got_s, 1e-3)
        if np.abs(dm).max() < 0.2 and np.abs(ratio - 1).max() < 0.01:
            break
        goal_m, goal_s = goal_m + dm, goal_s * np.clip(ratio, 0.5, 2.0)
        table = ktransfer.fit_lut(src, ktransfer.ColourStats(goal_m, goal_s, none, 1), "reinhard", size=33)
    return table


def _same_look(mean: Any, std: Any, ref_mean: Any, ref_std: Any) -> bool:
    """Whether footage already has the scene's colour statistics (the sample's own shot, re-encoded):
    then its palette is the scene's too, and a palette transfer would only chase k-means noise (two
    clusterings of one smooth gradient differ by a few ΔE)."""
    dm = np.abs(np.asarray(mean, float) - np.asarray(ref_mean, float))
    ratio = np.asarray(std, float) / np.maximum(np.asarray(ref_std, float), 1e-3)
    return bool(dm.max() < SAME_LOOK_LAB and np.abs(ratio - 1.0).max() < SAME_LOOK_STD)


def _palette_of(pixels: np.ndarray) -> list[dict[str, Any]]:
    c = kf.frame_colour_stats(pixels)["colours"]
    return kf.palette_from_histogram(np.asarray(c["bins"], np.int64), np.asarray(c["counts"], np.float64), 5)


def _palette_gap(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    """The score's palette distance (symmetric weighted nearest-colour CIEDE2000) of two palettes."""
    la, wa = np.array([p["lab"] for p in a], float), np.array([p["weight"] for p in a], float)
    lb, wb = np.array([p["lab"] for p in b], float), np.array([p["weight"] for p in b], float)
    return float(km.palette_distance(la, wa, lb, wb))


def _pull_palette(
    table: klut.Lut3D, pixels: np.ndarray, palette: list[dict[str, Any]], counts: np.ndarray | None = None
) -> klut.Lut3D:
    """`table` followed by a palette transfer onto the sample scene's palette.

    A mean/std transfer matches a scene's overall colour but not its palette (a clip of grass under a
    sky for a scene of pink and olive stays green and blue), and the palette is what a viewer reads as
    the look. The footage's own palette (measured after `table`, as the analysis measures one) is paired
    one to one with the scene's (least total CIEDE2000, an assignment), and every colour moves by the
    displacements of the footage colours near it (Gaussian weights of PALETTE_SIGMA in Lab), so each
    footage colour moves toward its partner and shading in between follows smoothly. Clusters move a
    little differently once recoloured, so this runs for PALETTE_ROUNDS at most, until the palette is
    within PALETTE_TARGET_DE of the scene's; the closest round wins. A source already there (the
    sample's own shot) is left as it is, and stays the identity."""
    if not palette:
        return table
    shown = klut.apply_lut(pixels[:: max(1, len(pixels) // _PALETTE_PIXELS)], table)
    dst = np.array([p["lab"] for p in palette], float)
    identity = float(np.abs(table.table - klut.identity(table.size).table).max()) < _IDENTITY_TOLERANCE
    if identity and counts is not None:
        # Unchanged colours: the palette is the one the analysis itself measures on this histogram (a
        # pixel subsample's k-means lands a few ΔE away, which would move the sample's own shot).
        bins = np.nonzero(counts)[0]
        mine = kf.palette_from_histogram(bins, counts[bins], 5)
    else:
        mine = _palette_of(shown)
    best = (_palette_gap(mine, palette), table)
    current = table.table
    for _ in range(PALETTE_ROUNDS):
        if best[0] <= PALETTE_TARGET_DE or not mine:
            break
        shift_by = _palette_shift(np.array([p["lab"] for p in mine], float), dst)
        current = shift_by(current)
        shown = shift_by(shown)
        mine = _palette_of(shown)
        gap = _palette_gap(mine, palette)
        if gap < best[0]:
            best = (gap, klut.Lut3D(current, title="lookalike footage grade"))
    return best[1]


def _palette_shift(src: np.ndarray, dst: np.ndarray):
    """The colour function that moves palette `src` onto `dst` (Lab rows), paired by assignment."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(km.delta_e2000(src[:, None, :], dst[None, :, :]))
    shift = np.zeros_like(src)
    shift[rows] = dst[cols] - src[rows]
    for i in set(range(len(src))) - set(rows.tolist()):  # more footage colours than scene colours
        shift[i] = dst[int(np.argmin(km.delta_e2000(src[i][None, :], dst)))] - src[i]

    def moved(rgb: np.ndarray) -> np.ndarray:
        lab = grade.rgb_to_lab(rgb).reshape(-1, 3).astype(np.float64)
        d2 = ((lab[:, None, :] - src[None, :, :]) ** 2).sum(-1)
        w = np.exp(-(d2 - d2.min(axis=1, keepdims=True)) / (2 * PALETTE_SIGMA**2))
        w /= w.sum(axis=1, keepdims=True)
        out = grade.lab_to_rgb((lab + w @ shift).reshape(rgb.shape).astype(np.float32))
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    return moved


def _grade_view(picture: np.ndarray) -> np.ndarray:
    w = min(320, picture.shape[1])
    h = max(2, round(picture.shape[0] * w / picture.shape[1]))
    return cv2.resize(picture, (w, h), interpolation=cv2.INTER_AREA)
