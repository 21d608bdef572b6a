"""The footage matcher: for every scene of the sample, the stretch of the user's media that remakes it.

Plain dictionaries in and out (docs/footage.md is the schema): the sample's analysis, the media
items with their own analyses, and back one `source` per sample scene. No media work happens here.

Candidates (`candidates`): every usable stretch (`usable`, else the whole shot) of every shot of
every item not excluded; a photo is one candidate.

The cost of a (scene, candidate) pair (`pair_cost`) is a weighted sum of terms, each about 0 (as
the sample) to 1 (as wrong as it gets), times WEIGHTS:

- motion: the camera label, direction and speed. Same move: only the speed ratio costs. A pan the
  opposite way is mirrored for MIRROR_COST when neither picture holds text (text would read
  backwards); otherwise an opposite move is the worst. A still (photo, static clip) or handheld
  clip for a moving scene costs SYNTH_COST / a little more and gets the sample's path synthesized
  on it (`move: synth`).
- scale: close / medium / wide (`scale`, else from the largest face and the people's share).
- people: someone in frame where the sample has someone, about as many, faces where it has faces.
- lighting and palette are judged AFTER the grade the renderer applies: a Lab mean/std transfer
  toward the scene's `grade.lut` (its gain held to [1/MAX_STD_RATIO, MAX_STD_RATIO], as in
  kernels.transfer). A mean shift is free, so what costs is what the transfer cannot do: the lighting
  key, a large luma gap, a contrast gain past 2x; colour spread out of the gain's reach (a near-grey
  or black-and-white picture for a colourful scene), chroma gain past 2x, and the palettes' distance
  once the candidate's palette has been through the transfer.
- duration: nothing when the candidate lasts the scene at real time; shorter ones are slowed (not
  under MIN_SPEED, SLOW_COST at the limit) and what is still missing is filled with `hold` or
  `pingpong`, each costing more the more is missing.

The whole timeline is solved at once: a linear assignment of scenes to candidate copies, the k-th
use of the same candidate costing k * REUSE_PENALTY more, then local moves (reassign one scene, swap
two) while they lower the total including NEIGHBOUR_PENALTY for the same item in consecutive scenes.
A scene whose best pair cost is over the threshold is left to generation (`kind: generated`).
Within a long candidate the in-point is where the candidate's frame-to-frame camera steps best follow
the sample scene's, away from windows of the same shot used by earlier scenes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from lookalike.errors import InputError

WEIGHTS = {"motion": 1.0, "scale": 0.5, "people": 0.7, "lighting": 0.6, "palette": 0.8, "duration": 1.0,
           "framing": 1.0}
# Framing: how much of the item the output's aspect crops away past CROP_FREE, and how far it is
# blown up past UPSCALE_FREE (a 270x480 phone clip for a 1280x720 scene loses two thirds of its
# picture and is enlarged 4.7x: soft, and a passer-by fills the frame).
CROP_FREE, CROP_COST = 0.25, 0.5
UPSCALE_FREE, UPSCALE_COST = 2.0, 0.3
TERMS = (*WEIGHTS, "reuse", "neighbour")
MATCH_THRESHOLD = 2.5
MIN_SPEED = 0.5
REUSE_PENALTY = 0.15
NEIGHBOUR_PENALTY = 0.3

MIRROR_COST = 0.15
SYNTH_COST = 0.3
HANDHELD_SYNTH_COST = 0.45
STILL_COST = 0.1  # a photo for a static scene: nothing moves in it, not even leaves
PHOTO_COST = 0.1  # a photo for a moving scene, over a static clip's SYNTH_COST: the same reason
STILL_SPEED = 0.015  # camera speed (frame fractions per second) under which a "move" is not seen
SLOW_COST = 0.3  # at MIN_SPEED; linear from real time
HOLD_COST = 0.3
PINGPONG_COST = 0.35
# A short freeze is less visible than a reversal; a reversed camera move is always visible.
HOLD_MAX_MISSING = 0.25
MAX_STD_RATIO = 4.0  # kernels.transfer._MAX_STD_RATIO: the renderer's gain limit
OVERLAP_COST = 0.5  # in-point: a window over one an earlier scene showed, in units of step error

MOVES = ("pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out")
SCALES = ("close", "medium", "wide")
NEUTRAL_LAB = ([50.0, 0.0, 0.0], [20.0, 14.0, 14.0])
_KEYS = {"high_key": 1, "normal": 0, "low_key": -1}
# Camera steps below this (frame fractions per frame) are estimator noise, not motion.
_STEP_NOISE = 0.002
_MAX_PLACEMENTS = 400


@dataclass(frozen=True)
class Candidate:
    """One usable stretch of one shot of one media item (a photo: the photo)."""

    media: str
    media_id: str
    key: str
    photo: bool
    shot: int
    start: int  # first usable item frame
    end: int  # one past the last
    fps: float
    scene: dict[str, Any] = field(repr=False, compare=False)  # the shot's analysis scene
    shot_start: int = 0  # item frame of the shot's first trajectory pose
    size: tuple[int, int] | None = None  # the item's display width and height, when known

    @property
    def length(self) -> int:
        return self.end - self.start

    @cached_property
    def label(self) -> tuple[str, float]:
        """(camera label, speed) of this stretch: its own as the analysis measured it (`usable_camera`),
        else the shot's."""
        cam = self.scene.get("camera") or {}
        if self.photo:
            return "static", 0.0
        usable = [list(map(int, r)) for r in self.scene.get("usable") or []]
        own = self.scene.get("usable_camera") or []
        if [self.start, self.end] in usable and len(own) == len(usable):
            got = own[usable.index([self.start, self.end])]
            return got.get("motion") or "static", float(got.get("speed") or 0.0)
        return cam.get("motion", "static"), float(cam.get("speed") or 0.0)


@dataclass(frozen=True)
class Fit:
    """How a candidate would remake a scene: its cost terms and how it would be played."""

    terms: dict[str, float]
    speed: float
    extend: str
    mirror: bool
    move: str
    in_frame: int
    out_frame: int
    notes: tuple[str, ...]  # the plain-word reasons, one per term

    @property
    def total(self) -> float:
        return float(sum(self.terms.values()))


# --- candidates ------------------------------------------------------------------------------------


def candidates(media: list[dict[str, Any]], *, exclude: tuple | list | set = ()) -> list[Candidate]:
    """Every usable stretch of every shot of every item that is neither `excluded` nor named in `exclude`.

    `exclude` holds names or media ids. The order is stable whatever order the items come in (by
    media id, shot, in-point), so ties always break the same way.
    """
    out = []
    for item in sorted(media, key=lambda m: (str(m.get("media_id", "")), str(m.get("name", "")))):
        if item.get("excluded") or item.get("name") in exclude or item.get("media_id") in exclude:
            continue
        out += _item_candidates(item)
    return out


def _item_candidates(item: dict[str, Any]) -> list[Candidate]:
    photo = item.get("kind") == "photo"
    fps = float(item.get("fps") or 0.0) or 1.0
    shots = ((item.get("analysis") or {}).get("scenes")) or [
        {"index": 0, "start_frame": 0, "end_frame": int(item.get("n_frames") or 1)}
    ]
    base = {
        "media": item.get("name", ""),
        "media_id": item.get("media_id", ""),
        "key": item.get("key", ""),
        "photo": photo,
        "fps": fps,
        "size": (int(item["width"]), int(item["height"])) if item.get("width") and item.get("height") else None,
    }
    if photo:
        return [Candidate(**base, shot=int(shots[0].get("index", 0)), start=0, end=1, scene=shots[0])]
    out = []
    for shot in shots:
        a0, b0 = int(shot.get("start_frame", 0)), int(shot.get("end_frame", 0))
        for a, b in shot.get("usable") or [[a0, b0]]:
            a, b = max(int(a), a0), min(int(b), b0)
            if b - a >= 2:  # a single frame is a photo, and the item is a clip
                out.append(
                    Candidate(
                        **base, shot=int(shot.get("index", 0)), start=a, end=b, scene=shot, shot_start=a0
                    )
                )
    return out


# --- what a scene or shot shows ----------------------------------------------------------------------


def shot_scale(scene: dict[str, Any]) -> str | None:
    """close / medium / wide: `scale` where the analysis has it, else from faces and people; None when
    neither shows (a landscape and a table-top close-up look alike to the detectors)."""
    if scene.get("scale") in SCALES:
        return scene["scale"]
    faces = scene.get("faces") or []
    people = scene.get("people") or []
    face_h = max((float(f["box"][3]) for f in faces if f.get("box")), default=0.0)
    if face_h >= 0.25:
        return "close"
    if face_h >= 0.1:
        return "medium"
    if not faces and not people:
        return None
    share = float(
        scene.get("people_share") or max((float(p.get("share") or 0.0) for p in people), default=0.0)
    )
    body_h = max((float(p["box"][3]) for p in people if p.get("box")), default=0.0)
    return "medium" if share >= 0.25 or body_h >= 0.7 else "wide"


def shot_focus(scene: dict[str, Any]) -> list[float]:
    """The subject's centre in frame fractions: `salient`, else the largest face, else the largest
    person, else the frame's centre."""
    sal = scene.get("salient")
    if sal:
        return [round(float(sal[0]), 4), round(float(sal[1]), 4)]
    for group in ("faces", "people"):
        boxes = [b["box"] for b in scene.get(group) or [] if b.get("box")]
        if boxes:
            x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
            return [round(x + w / 2, 4), round(y + h / 2, 4)]
    return [0.5, 0.5]


def _people(scene: dict[str, Any]) -> tuple[int, int]:
    faces = len(scene.get("faces") or [])
    count = int(scene.get("people_count") or len(scene.get("people") or []) or faces)
    return count, faces


def _has_text(scene: dict[str, Any]) -> bool:
    return any(str(t.get("text", "")).strip() or t.get("box") for t in scene.get("text") or [])


def _lab_stats(scene: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    lut = (scene.get("grade") or {}).get("lut") or {}
    if lut.get("lab_mean") and lut.get("lab_std"):
        return np.asarray(lut["lab_mean"], float), np.asarray(lut["lab_std"], float)
    pal = [p for p in scene.get("palette") or [] if p.get("lab")]
    if not pal:
        return np.asarray(NEUTRAL_LAB[0]), np.asarray(NEUTRAL_LAB[1])
    lab = np.asarray([p["lab"] for p in pal], float)
    w = np.asarray([float(p.get("weight") or 0.0) for p in pal]) + 1e-9
    w /= w.sum()
    mean = (lab * w[:, None]).sum(axis=0)
    # The palette's centres understate the picture's spread; a floor keeps a flat palette from
    # reading as a grey picture.
    return mean, np.maximum(np.sqrt((w[:, None] * (lab - mean) ** 2).sum(axis=0)), 2.0)


def _luma(scene: dict[str, Any]) -> float:
    light = scene.get("lighting") or {}
    if light.get("luma_mean") is not None:
        return float(light["luma_mean"])
    return float(_lab_stats(scene)[0][0]) / 100.0


def _key(scene: dict[str, Any]) -> str:
    return (scene.get("lighting") or {}).get("key") or "normal"


# --- the cost of one pair -----------------------------------------------------------------------------


def scene_frames(scene: dict[str, Any], sample_fps: float, output_fps: float | None = None) -> int:
    """Output frames of a sample scene: its own frame count, rescaled when the output rate differs."""
    n = int(scene["end_frame"]) - int(scene["start_frame"])
    if output_fps and abs(output_fps - sample_fps) > 1e-6:
        n = round(n * output_fps / sample_fps)
    return max(1, n)


def frames_needed(n: int, item_fps: float, output_fps: float, speed: float) -> int:
    """Item frames that `n` output frames at `output_fps` show at `speed`."""
    return max(1, math.ceil(n * item_fps / output_fps * speed - 1e-9))


def _speed_term(scene_speed: float, cand_speed: float) -> float:
    return 0.4 * min(1.0, abs(math.log((cand_speed + 0.01) / (scene_speed + 0.01))) / math.log(4.0))


def _motion(scene: dict, cand: Candidate, speed: float) -> tuple[float, bool, str, str]:
    """(cost, mirror, move, why) of the camera."""
    cam = scene.get("camera") or {}
    s_label, s_speed = cam.get("motion") or "static", float(cam.get("speed") or 0.0)
    c_label, c_speed = cand.label
    c_speed *= speed  # a slowed clip moves slower
    if c_label in MOVES and c_speed < STILL_SPEED:
        # Classified a move, but too slow to be seen as one (a tripod time-lapse of a bud opening
        # reads tilt_up at 0.008): for matching it is a still camera.
        c_label = "static"
    said = s_label.replace("_", " ")
    if s_label in MOVES:
        if c_label == "static":
            what = "a photo" if cand.photo else "a static shot"
            # A photo costs a little more: nothing moves inside it, where a static clip has life.
            cost = SYNTH_COST + (PHOTO_COST if cand.photo else 0.0)
            return cost, False, "synth", f"{what}, so the sample's {said} is synthesized on it"
        if c_label == "handheld":
            return (
                HANDHELD_SYNTH_COST,
                False,
                "synth",
                f"a handheld shot, with the sample's {said} synthesized on it",
            )
        if c_label not in MOVES:
            return 0.8, False, "none", f"camera {c_label.replace('_', ' ')} where the sample's does a {said}"
        s_axis, c_axis = s_label.split("_")[0], c_label.split("_")[0]
        if c_label == s_label:
            return _speed_term(s_speed, c_speed), False, "none", f"camera {said} like the sample's"
        if s_axis == c_axis == "pan" and not _has_text(scene) and not _has_text(cand.scene):
            return (
                MIRROR_COST + _speed_term(s_speed, c_speed),
                True,
                "none",
                f"mirrored, so its {c_label.replace('_', ' ')} becomes the sample's {said}",
            )
        if s_axis == c_axis:
            why = " (text in frame, so it cannot be mirrored)" if s_axis == "pan" else ""
            return (
                1.0,
                False,
                "none",
                f"camera {c_label.replace('_', ' ')}, the opposite of the sample's {said}{why}",
            )
        return 0.8, False, "none", f"camera {c_label.replace('_', ' ')} where the sample's does a {said}"
    if s_label == "handheld":
        if c_label == "handheld":
            return 0.5 * _speed_term(s_speed, c_speed), False, "none", "handheld like the sample's"
        if c_label == "static":
            return 0.25, False, "synth", "still, with the sample's handheld sway synthesized on it"
        return 0.5, False, "none", f"camera {c_label.replace('_', ' ')} where the sample's is handheld"
    if c_label == "static":
        if cand.photo:
            return STILL_COST, False, "none", "a still photo for the sample's static shot"
        return 0.0, False, "none", "static like the sample's"
    if c_label == "handheld":
        return 0.25, False, "none", "handheld where the sample's camera is still"
    return 0.8, False, "none", f"camera {c_label.replace('_', ' ')} where the sample's is still"


def _scale(scene: dict, cand: Candidate) -> tuple[float, str]:
    s, c = shot_scale(scene), shot_scale(cand.scene)
    if s == c:
        return 0.0, f"{s} like the sample's" if s else ""  # the people term says "no people"
    if s is None or c is None:
        return 0.3, f"{c or 'no'} scale against the sample's {s or 'unknown'}"
    gap = abs(SCALES.index(s) - SCALES.index(c))
    return 0.5 * gap, f"{c} where the sample's is {s}"


def _people_term(scene: dict, cand: Candidate) -> tuple[float, str]:
    (sp, sf), (cp, cf) = _people(scene), _people(cand.scene)
    if (sp > 0) != (cp > 0):
        return 1.0, "people where the sample has none" if cp else "no people where the sample has some"
    if sp == 0:
        return 0.0, "no people, like the sample"
    cost = 0.5 * min(1.0, abs(math.log((sp + 1) / (cp + 1))) / math.log(3.0))
    if (sf > 0) != (cf > 0):
        cost += 0.3
    words = f"{cp} {'person' if cp == 1 else 'people'} against the sample's {sp}"
    if cost == 0.0:
        words = f"{cp} {'person' if cp == 1 else 'people'} like the sample"
    return cost, words


def _gain(ref_std: np.ndarray, src_std: np.ndarray) -> np.ndarray:
    return np.clip(ref_std / np.maximum(src_std, 1e-3), 1.0 / MAX_STD_RATIO, MAX_STD_RATIO)


def _lighting(scene: dict, cand: Candidate) -> tuple[float, str]:
    sk, ck = _key(scene), _key(cand.scene)
    key_gap = abs(_KEYS.get(sk, 0) - _KEYS.get(ck, 0)) / 2.0
    luma_gap = min(1.0, max(0.0, abs(_luma(scene) - _luma(cand.scene)) - 0.1) / 0.3)
    ref_mean, ref_std = _lab_stats(scene)
    src_mean, src_std = _lab_stats(cand.scene)
    gain = float(_gain(ref_std[:1], src_std[:1])[0])
    # Lifting a flat picture's contrast past 2x shows its noise and banding; flattening past 2x
    # looks washed out.
    strain = min(1.0, max(0.0, abs(math.log(gain)) - math.log(2.0)) / math.log(2.0))
    cost = 0.5 * key_gap + 0.4 * luma_gap + 0.3 * strain
    if cost < 0.05:
        return cost, "lighting the grade matches"
    parts = []
    if key_gap:
        parts.append(f"{ck.replace('_', ' ')} against the sample's {sk.replace('_', ' ')}")
    if luma_gap:
        parts.append("brightness far from the sample's" if key_gap == 0 else "a large brightness gap")
    if strain:
        parts.append("contrast the grade must stretch")
    return cost, "lighting: " + ", ".join(parts)


def _palette(scene: dict, cand: Candidate) -> tuple[float, str]:
    ref_mean, ref_std = _lab_stats(scene)
    src_mean, src_std = _lab_stats(cand.scene)
    gain = _gain(ref_std, src_std)
    reach = src_std * gain
    # Colour the transfer cannot create (a grey picture stays grey, only tinted) weighs more than
    # colour it cannot take away.
    spread = max(float(ref_std[1:].sum()), 5.0)
    deficit = float(np.maximum(ref_std[1:] - reach[1:], 0.0).sum()) / spread
    excess = float(np.maximum(reach[1:] - ref_std[1:], 0.0).sum()) / spread
    strain = float(np.clip((np.log(gain[1:]) - math.log(2.0)) / math.log(2.0), 0.0, 1.0).mean())
    # A near-grey picture for a colourful scene: the transfer only tints it (a mean shift), which
    # the spread terms miss when the scene's colour is in its mean rather than its spread.
    grey = _clip01((_chroma(ref_mean, ref_std) - 15.0) / 20.0) * _clip01(
        (8.0 - _chroma(src_mean, src_std)) / 6.0
    )
    dist = _palette_distance(scene, cand, src_mean, gain, ref_mean)
    cost = min(1.5, 0.8 * deficit + 0.3 * excess + 0.3 * strain + 0.8 * grey + 0.6 * dist)
    if cost < 0.05:
        return cost, "colours the grade reaches"
    if deficit > 0.3 or grey > 0.3:
        return cost, "too little colour for the grade to reach the sample's (a near-grey picture)"
    if dist > 0.4:
        return cost, "colours unlike the sample's even after the grade"
    return cost, "colours the grade brings close"


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, float(v)))


def _chroma(mean: np.ndarray, std: np.ndarray) -> float:
    """RMS chroma of a picture from its Lab statistics (its cast and its spread together)."""
    return float(math.sqrt(mean[1] ** 2 + mean[2] ** 2 + std[1] ** 2 + std[2] ** 2))


def _palette_distance(scene: dict, cand: Candidate, src_mean, gain, ref_mean) -> float:
    """Weighted nearest-colour distance (CIE76, both ways) of the two palettes after the transfer, /40."""
    sp = [p for p in scene.get("palette") or [] if p.get("lab")]
    cp = [p for p in cand.scene.get("palette") or [] if p.get("lab")]
    if not sp or not cp:
        return 0.0
    s_lab = np.asarray([p["lab"] for p in sp], float)
    c_lab = (np.asarray([p["lab"] for p in cp], float) - src_mean) * gain + ref_mean
    sw = np.asarray([float(p.get("weight") or 0.0) for p in sp]) + 1e-9
    cw = np.asarray([float(p.get("weight") or 0.0) for p in cp]) + 1e-9
    d = np.linalg.norm(s_lab[:, None, :] - c_lab[None, :, :], axis=2)
    both = 0.5 * ((d.min(axis=1) * sw).sum() / sw.sum() + (d.min(axis=0) * cw).sum() / cw.sum())
    return float(min(1.0, both / 40.0))


def _duration(n: int, cand: Candidate, available: int, output_fps: float) -> tuple[float, float, str, str]:
    """(cost, speed, extend, why) of filling n output frames from `available` item frames."""
    if cand.photo:
        return 0.0, 1.0, "hold", "a photo, held for the scene"
    if available >= frames_needed(n, cand.fps, output_fps, 1.0):
        return 0.0, 1.0, "none", "long enough at real time"
    speed = math.floor(available * output_fps / (n * cand.fps) * 1e4) / 1e4
    if speed >= MIN_SPEED:
        while speed > MIN_SPEED and frames_needed(n, cand.fps, output_fps, speed) > available:
            speed = round(speed - 1e-4, 4)
        cost = SLOW_COST * (1.0 - speed) / (1.0 - MIN_SPEED)
        return cost, speed, "none", f"slowed to {speed:.2f}x to last the scene"
    speed = MIN_SPEED
    missing = 1.0 - available / frames_needed(n, cand.fps, output_fps, speed)
    moving = cand.label[0] in MOVES
    if missing <= HOLD_MAX_MISSING or moving:
        extend, cost = "hold", SLOW_COST + HOLD_COST + missing
        how = "held on its last frame"
    else:
        extend, cost = "pingpong", SLOW_COST + PINGPONG_COST + 0.7 * missing
        how = "played back and forth"
    return cost, speed, extend, f"slowed to {speed:.2f}x and {how} for the last {missing:.0%}"


def _framing(size: tuple[int, int] | None, out: tuple[int, int] | None) -> tuple[float, str]:
    """Cost of covering `out` (w, h) with an item of `size`: the share cropped away and the blow-up."""
    if not size or not out:
        return 0.0, ""
    (w, h), (ow, oh) = size, out
    scale = max(ow / w, oh / h)
    lost = 1.0 - (ow * oh) / (scale * scale * w * h)
    crop = CROP_COST * max(0.0, lost - CROP_FREE) / (1.0 - CROP_FREE)
    blow = UPSCALE_COST * min(1.0, max(0.0, math.log2(max(scale, 1e-9) / UPSCALE_FREE)) / 2.0)
    if crop + blow == 0:
        return 0.0, "frames the scene without a heavy crop"
    return crop + blow, f"cropped by {lost:.0%} and enlarged {scale:.1f}x to fill the frame"


def pair_cost(
    scene: dict[str, Any],
    cand: Candidate,
    *,
    output_fps: float,
    sample_fps: float | None = None,
    in_frame: int | None = None,
    out_size: tuple[int, int] | None = None,
) -> Fit:
    """The cost terms (weighted, see the module doc) of remaking `scene` from `cand`, and how it plays.

    `in_frame` (a pinned in-point) shortens what is available; otherwise the window starts at the
    candidate's start (`match` later slides it to the best in-point).
    """
    n = scene_frames(scene, sample_fps or output_fps, output_fps)
    start = cand.start if in_frame is None else min(max(int(in_frame), cand.start), cand.end - 1)
    d_cost, speed, extend, d_why = _duration(n, cand, cand.end - start, output_fps)
    m_cost, mirror, move, m_why = _motion(scene, cand, speed)
    raw = {
        "motion": (m_cost, m_why),
        "scale": _scale(scene, cand),
        "people": _people_term(scene, cand),
        "lighting": _lighting(scene, cand),
        "palette": _palette(scene, cand),
        "duration": (d_cost, d_why),
        "framing": _framing(cand.size, out_size),
    }
    terms = {k: WEIGHTS[k] * float(v[0]) for k, v in raw.items()}
    out = cand.end if cand.photo else min(cand.end, start + frames_needed(n, cand.fps, output_fps, speed))
    return Fit(
        terms=terms,
        speed=speed,
        extend=extend,
        mirror=mirror,
        move=move,
        in_frame=start,
        out_frame=out,
        notes=tuple(v[1] for v in raw.values()),
    )


# --- the in-point -----------------------------------------------------------------------------------


def _steps(traj: list, positions: np.ndarray) -> np.ndarray:
    """(dx, dy, dlog zoom) between consecutive poses of `traj` sampled at fractional `positions`."""
    t = np.asarray(traj, float).reshape(-1, 4)
    if len(t) < 2:
        return np.zeros((max(len(positions) - 1, 0), 3))
    idx = np.arange(len(t))
    p = np.clip(positions, 0, len(t) - 1)
    pose = np.stack(
        [
            np.interp(p, idx, t[:, 0]),
            np.interp(p, idx, t[:, 1]),
            np.interp(p, idx, np.log(np.clip(t[:, 2], 1e-6, None))),
        ],
        axis=1,
    )
    return np.diff(pose, axis=0)


def place(
    scene: dict[str, Any],
    cand: Candidate,
    fit: Fit,
    *,
    output_fps: float,
    sample_fps: float,
    taken: Sequence[tuple[int, int]] = (),
) -> tuple[int, int]:
    """(in_frame, out_frame) of the window that best follows the scene's camera steps.

    Slides a window of the frames the fit needs along the candidate, comparing its camera steps
    (mirrored when the fit mirrors, at the fit's speed) with the scene's; windows over ones in
    `taken` (earlier scenes' windows of the same shot) cost OVERLAP_COST times their overlap.
    """
    if cand.photo:
        return 0, 1
    n = scene_frames(scene, sample_fps, output_fps)
    need = frames_needed(n, cand.fps, output_fps, fit.speed)
    last = cand.end - need
    if last <= cand.start:
        return cand.start, cand.end
    starts = np.arange(cand.start, last + 1)
    if len(starts) > _MAX_PLACEMENTS:
        starts = np.unique(np.linspace(cand.start, last, _MAX_PLACEMENTS).round().astype(int))
    k = np.arange(n)
    ref = _steps((scene.get("camera") or {}).get("trajectory") or [], k * sample_fps / output_fps)
    traj = (cand.scene.get("camera") or {}).get("trajectory") or []
    sign = np.array([-1.0 if fit.mirror else 1.0, 1.0, 1.0])
    best, best_cost = int(starts[0]), math.inf
    for s in starts:
        pos = s - cand.shot_start + k * fit.speed * cand.fps / output_fps
        got = _steps(traj, pos) * sign
        if len(ref) and len(got):
            # Normalised by the motion present, so a fast pan and a slow one are judged alike; the
            # noise floor keeps two still shots from reading as different.
            err = float(
                ((got - ref) ** 2).sum() / ((ref**2).sum() + (got**2).sum() + len(ref) * _STEP_NOISE**2)
            )
        else:
            err = 0.0
        overlap = sum(max(0, min(s + need, b) - max(s, a)) for a, b in taken) / need
        cost = err + OVERLAP_COST * overlap
        if cost < best_cost - 1e-12:
            best, best_cost = int(s), cost
    return best, best + need


# --- the whole timeline -----------------------------------------------------------------------------


def _pin_target(pin: dict[str, Any], cands: list[Candidate], media: list[dict[str, Any]]) -> list[int]:
    want = pin.get("media_id") or pin.get("media")
    found = [j for j, c in enumerate(cands) if want in (c.media_id, c.media)]
    if not found:
        known = any(want in (m.get("media_id"), m.get("name")) for m in media)
        why = "it is excluded" if known else "no media item has that name or id"
        raise InputError(
            f"cannot use {want!r} for a scene: {why}",
            hint="name one of the plan's media items that is not excluded",
        )
    if pin.get("in_frame") is not None:
        f = int(pin["in_frame"])
        inside = [j for j in found if cands[j].start <= f < cands[j].end]
        found = inside or [min(found, key=lambda j: min(abs(cands[j].start - f), abs(cands[j].end - 1 - f)))]
    return found


def _improve(assign: list[int | None], free: list[int], pair: np.ndarray, cands: list[Candidate]) -> None:
    """Local moves (reassign a scene, swap two) while the timeline's total cost falls, in place.

    Each move is judged by its change alone: the pair costs, the reuse sum (REUSE_PENALTY *
    c(c-1)/2 for a candidate used c times) and the neighbour edges it touches.
    """
    items = [c.media_id for c in cands]
    counts = np.zeros(len(cands), int)
    for j in assign:
        if j is not None:
            counts[j] += 1

    def edges_cost(edges: set[int]) -> float:
        # Edge e joins scenes e-1 and e.
        same = 0
        for e in edges:
            if 0 < e < len(assign) and assign[e - 1] is not None and assign[e] is not None:
                same += items[assign[e - 1]] == items[assign[e]]
        return NEIGHBOUR_PENALTY * same

    for _ in range(100):
        improved = False
        for s in free:
            edges = {s, s + 1}
            for j in range(len(cands)):
                o = assign[s]
                if j == o:
                    continue
                before = edges_cost(edges)
                assign[s] = j
                delta = pair[s, j] - pair[s, o] + REUSE_PENALTY * (counts[j] - counts[o] + 1)
                delta += edges_cost(edges) - before
                if delta < -1e-9:
                    counts[o] -= 1
                    counts[j] += 1
                    improved = True
                else:
                    assign[s] = o
        for i, s in enumerate(free):
            for t in free[i + 1 :]:
                a, b = assign[s], assign[t]
                if a == b:
                    continue
                edges = {s, s + 1, t, t + 1}
                before = edges_cost(edges)
                assign[s], assign[t] = b, a
                delta = pair[s, b] + pair[t, a] - pair[s, a] - pair[t, b] + edges_cost(edges) - before
                if delta < -1e-9:
                    improved = True
                else:
                    assign[s], assign[t] = a, b
        if not improved:
            return


def _assign(free: list[int], fixed: dict[int, int], pair: np.ndarray) -> dict[int, int]:
    """Scenes in `free` to candidates: one linear assignment over candidate copies."""
    if not free:
        return {}
    m = pair.shape[1]
    copies = len(free)
    if m * copies > 250_000:
        copies = max(math.ceil(len(free) / m), 250_000 // m)
    used = np.zeros(m, int)
    for j in fixed.values():
        used[j] += 1
    cols = [(j, k) for k in range(copies) for j in range(m)]
    cost = np.empty((len(free), len(cols)))
    for c, (j, k) in enumerate(cols):
        cost[:, c] = pair[free, j] + REUSE_PENALTY * (used[j] + k)
    rows, picked = linear_sum_assignment(cost)
    return {free[r]: cols[c][0] for r, c in zip(rows, picked, strict=True)}


def match(
    analysis: dict[str, Any],
    media: list[dict[str, Any]],
    *,
    output_fps: float | None = None,
    threshold: float = MATCH_THRESHOLD,
    exclude: tuple | list | set = (),
    pins: dict[Any, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One `source` (docs/footage.md) per scene of the sample's `analysis`, in scene order.

    `output_fps` defaults to the sample's rate. `exclude`: media names or ids never used. `pins`:
    {scene index: {"media_id" or "media", optional "in_frame"}} forces an item for a scene (an
    unknown or excluded item is an InputError); a pinned scene is never left to generation.
    A runner-up's `cost` is its pair cost, before the reuse and neighbour penalties it would add.
    """
    scenes = analysis.get("scenes") or []
    sample_fps = float((analysis.get("source") or {}).get("fps") or 0.0) or 30.0
    fps = float(output_fps or sample_fps)
    src = analysis.get("source") or {}
    out_size = (int(src["width"]), int(src["height"])) if src.get("width") and src.get("height") else None
    cands = candidates(media, exclude=exclude)
    pins = {int(k): v for k, v in (pins or {}).items()}
    n = len(scenes)
    fits: dict[tuple[int, int], Fit] = {}
    pair = np.full((n, len(cands)), np.inf)
    for s, scene in enumerate(scenes):
        for j, c in enumerate(cands):
            fit = pair_cost(scene, c, output_fps=fps, sample_fps=sample_fps, out_size=out_size)
            fits[s, j] = fit
            pair[s, j] = fit.total

    fixed: dict[int, int] = {}
    pin_in: dict[int, int] = {}
    for s, pin in sorted(pins.items()):
        if not 0 <= s < n:
            raise InputError(f"cannot pin scene {s}: the sample has scenes 0 to {n - 1}")
        options = _pin_target(pin, cands, media)
        if pin.get("in_frame") is not None:
            pin_in[s] = int(pin["in_frame"])
            for j in options:
                fits[s, j] = pair_cost(
                    scenes[s], cands[j], output_fps=fps, sample_fps=sample_fps, in_frame=pin_in[s],
                    out_size=out_size,
                )
                pair[s, j] = fits[s, j].total
        fixed[s] = min(options, key=lambda j: (pair[s, j], j))

    generated = [s for s in range(n) if s not in fixed and (not cands or pair[s].min() > threshold)]
    free = [s for s in range(n) if s not in fixed and s not in generated]
    assign: list[int | None] = [None] * n
    for s, j in {**fixed, **_assign(free, fixed, pair)}.items():
        assign[s] = j
    _improve(assign, free, pair, cands)

    out = []
    taken: dict[tuple[str, int], list[tuple[int, int]]] = {}
    uses: dict[int, int] = {}
    item_uses: dict[str, int] = {}
    for s, scene in enumerate(scenes):
        order = [int(j) for j in np.argsort(pair[s], kind="stable")] if cands else []
        j = assign[s]
        if j is None:
            out.append(_generated(scene, s, order, pair, fits, cands, fps, sample_fps))
            continue
        c, fit = cands[j], fits[s, j]
        shot_key = (c.media_id, c.shot)
        if s in pin_in:
            win = (fit.in_frame, fit.out_frame)
        else:
            win = place(scene, c, fit, output_fps=fps, sample_fps=sample_fps, taken=taken.get(shot_key, []))
        taken.setdefault(shot_key, []).append(win)
        terms = dict(fit.terms)
        terms["reuse"] = REUSE_PENALTY * uses.get(j, 0)
        prev = assign[s - 1] if s else None
        terms["neighbour"] = (
            NEIGHBOUR_PENALTY if prev is not None and cands[prev].media_id == c.media_id else 0.0
        )
        uses[j] = uses.get(j, 0) + 1
        reused = item_uses.get(c.media_id, 0)
        item_uses[c.media_id] = reused + 1
        runners = [_runner(cands[r], fits[s, r], scene, fps, sample_fps) for r in order if r != j][:3]
        out.append(
            {
                "kind": "media",
                "media": c.media,
                "media_id": c.media_id,
                "key": c.key,
                "photo": c.photo,
                "shot": c.shot,
                "in_frame": int(win[0]),
                "out_frame": int(win[1]),
                "fps": c.fps,
                "speed": fit.speed,
                "extend": fit.extend,
                "mirror": fit.mirror,
                "move": fit.move,
                "focus": _mirrored(shot_focus(c.scene), fit.mirror),
                "cost": _cost_doc(terms),
                "why": _why(fit, terms, s in fixed, reused),
                "runner_ups": runners,
                "reused": reused,
            }
        )
    return out


def _mirrored(focus: list[float], mirror: bool) -> list[float]:
    return [round(1.0 - focus[0], 4), focus[1]] if mirror else focus


def _cost_doc(terms: dict[str, float]) -> dict[str, float]:
    doc = {k: round(float(terms.get(k, 0.0)), 4) for k in TERMS}
    # The total is the sum of the rounded terms, so the document adds up exactly as printed.
    return {"total": round(sum(doc.values()), 4), **doc}


def _runner(c: Candidate, fit: Fit, scene: dict, fps: float, sample_fps: float) -> dict[str, Any]:
    a, b = place(scene, c, fit, output_fps=fps, sample_fps=sample_fps)
    return {
        "media": c.media,
        "media_id": c.media_id,
        "shot": c.shot,
        "in_frame": a,
        "out_frame": b,
        "cost": round(fit.total, 4),
    }


def _why(fit: Fit, terms: dict[str, float], pinned: bool, reused: int) -> str:
    parts = ["pinned by the plan"] if pinned else []
    parts += [n for n in fit.notes if n]
    if reused:
        parts.append(f"this item is also used for {reused} earlier scene{'s' if reused > 1 else ''}")
    if terms.get("neighbour"):
        parts.append("same item as the scene before (no better choice)")
    return "; ".join(parts)


def _generated(scene, s, order, pair, fits, cands, fps, sample_fps) -> dict[str, Any]:
    if not order:
        return {
            "kind": "generated",
            "why": "no media item fits: there are no usable media items",
            "runner_ups": [],
            "cost": {},
        }
    best = order[0]
    c, fit = cands[best], fits[s, best]
    return {
        "kind": "generated",
        "why": f"no media item fits: best was {c.media} (shot {c.shot}) at cost {fit.total:.2f}, over the "
        f"threshold; its worst terms: "
        + "; ".join(
            note
            for k, note in sorted(zip(fit.terms, fit.notes, strict=True), key=lambda kv: -fit.terms[kv[0]])[
                :2
            ]
        ),
        "runner_ups": [_runner(cands[r], fits[s, r], scene, fps, sample_fps) for r in order[:3]],
        "cost": _cost_doc(fit.terms),
    }


# --- a scene in words ---------------------------------------------------------------------------------

_COUNT_WORDS = {1: "one person", 2: "two people", 3: "three people", 4: "four people", 5: "five people"}


def colour_name(lab: list[float]) -> str:
    """A colour in words ("deep blue", "pale orange", "dark grey") from CIELAB."""
    L, a, b = (float(v) for v in lab)
    chroma = math.hypot(a, b)
    if chroma < 8:
        if L < 20:
            return "black"
        if L > 88:
            return "white"
        return "dark grey" if L < 40 else "light grey" if L > 70 else "grey"
    hue = math.degrees(math.atan2(b, a)) % 360
    # Hue bounds measured on sRGB primaries and secondaries (red 40, orange 73, yellow 100,
    # green 136, cyan 196, blue 306, magenta 328 degrees).
    bounds = (
        (15, "pink"),
        (50, "red"),
        (85, "orange"),
        (115, "yellow"),
        (170, "green"),
        (235, "teal"),
        (315, "blue"),
        (345, "purple"),
        (361, "pink"),
    )
    name = next(n for bound, n in bounds if hue < bound)
    if name in ("red", "orange", "yellow") and L < 45 and chroma < 50:
        name = "brown"
    if name == "pink" and L < 50:
        name = "crimson"
    shade = "deep " if L < 35 else "pale " if L > 78 else "muted " if chroma < 20 else ""
    return shade + name


def _camera_words(cam: dict[str, Any]) -> str:
    label, speed = cam.get("motion") or "static", float(cam.get("speed") or 0.0)
    if label == "static":
        return "the camera holds still"
    if label == "handheld":
        return "a handheld camera sways gently" if speed < 0.1 else "a handheld camera shakes"
    axis, way = label.split("_")
    slow, fast = (0.05, 0.15) if axis == "zoom" else (0.08, 0.25)
    pace = "slowly" if speed < slow else "quickly" if speed > fast else "steadily"
    verb = {"pan": "pans", "tilt": "tilts", "zoom": "zooms"}[axis]
    return f"the camera {verb} {way} {pace}"


def _light_words(scene: dict[str, Any]) -> str:
    luma = _luma(scene)
    key = _key(scene)
    temp = float((scene.get("grade") or {}).get("temperature") or 0.0)
    warmth = "warm" if temp > 0.08 else "cool" if temp < -0.05 else "neutral"
    if key == "low_key":
        bright = "dark, shadowy"
    elif key == "high_key":
        bright = "bright, airy"
    else:
        bright = "bright" if luma > 0.55 else "dim" if luma < 0.25 else "soft"
    return f"in {warmth}, {bright} light"


def describe_scene(scene: dict[str, Any]) -> str:
    """A provider prompt for the scene in words: the caption where vision made one, else who is in a
    shot of what size and in what light; then the camera move, the mood and the main colours."""
    caption = str(scene.get("caption") or "").strip().rstrip(".")
    if caption:
        subject = caption
    else:
        scale = shot_scale(scene)
        count, faces = _people(scene)
        if count == 0:
            who = "a scene with no people"
        elif count > 5:
            who = "a crowd of people"
        else:
            who = _COUNT_WORDS[count]
        if scale == "close" and count == 1:
            subject = "a close-up of a person's face"
        elif scale == "close" and count:
            subject = f"a close-up of the faces of {who}"
        elif scale:
            subject = f"a {scale} shot of {who}"
        else:
            subject = who
        subject += " " + _light_words(scene)
    parts = [subject, _camera_words(scene.get("camera") or {})]
    mood = scene.get("mood") or {}
    words = [w for w in (mood.get("words") or [])[3:] if w]
    if words:
        parts.append("the mood is " + " and ".join(words))
    names: list[str] = []
    for p in sorted(scene.get("palette") or [], key=lambda p: -float(p.get("weight") or 0.0)):
        if p.get("lab"):
            name = colour_name(p["lab"])
            if name not in names:
                names.append(name)
        if len(names) == 3:
            break
    if names:
        tones = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        parts.append(f"{tones} tones")
    return "; ".join(parts)
