"""Sample analysis: the analysis.json document (scenes, camera, colour, audio, pacing) of one video.

Split for range parallelism: `analyze_range` turns frames [start, end) into JSON-serializable
per-frame features (it decodes one lead frame at start-1 so every frame in the range has its
change score and motion against its predecessor); `merge_ranges` joins the ranges of a whole video
with its audio features into the document; `analyze` is the two run in one process. Because every
per-frame feature depends only on the frame and its predecessor, any split gives the same document.

Frames are decoded at a reduced size (`ANALYSIS_LONG_SIDE`): cuts, motion and palette do not need
full resolution, and decoding with scaling dominates the time. The shot features (change score,
HSV histogram, thumbnail) need less still: each frame is also scaled straight to `SHOT_LONG_SIDE`
and they are computed there, a block of frames at a time (`kernels.shots.frame_features`); the
shot pass alone (`detect_shots`) decodes at that size only.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from lookalike.kernels import features as kf
from lookalike.kernels import grade as kg
from lookalike.kernels import look as klook
from lookalike.kernels import shots as kt
from lookalike.nodes import media, shots_learned
from lookalike.nodes.shots_learned import ShotModel

from lookalike.errors import InputError, JobError

SCHEMA = "lookalike.analysis/1"
ANALYSIS_LONG_SIDE = 256
# Shot features (change score, HSV histogram, thumbnail) are computed on frames this size (long
# side), SHOT_BLOCK frames at a time: enough to find cuts and gradual transitions, and cheap.
SHOT_LONG_SIDE = 64
SHOT_BLOCK = 24
PALETTE_SIZE = 5
BEAT_TOLERANCE_S = 0.080


# A frame whose mean luma is below this is "black" (fades pass through it).
DARK_LUMA = 0.06
# A change that reverts within this many frames (HSV histograms of the frames on either side
# closer than FLASH_HIST_DIST) is a flash, not a cut.
FLASH_MAX_FRAMES = 2
FLASH_HIST_DIST = 0.12
# ... that is, the thumbnail after it is closer to the one before than FLASH_REVERT times the jump.
FLASH_REVERT = 0.4
# A learned cut closer than this to a scene start already found is that boundary (or noise beside
# it): the classic detector's own shortest shot (`features.adaptive_cuts` min_scene_len).
LEARNED_MIN_GAP = 8

# A scene's `usable` ranges leave out black, frozen and badly blurred frames (docs/footage.md).
# Black: mean luma (gamma-encoded, 0-1) under 4% (10 of 255), darker than any night shot keeps.
BLACK_LUMA = 0.04
# Frozen: a run of at least FROZEN_MIN_RUN frames that each repeat their predecessor (change score,
# the mean HSV difference at SHOT_LONG_SIDE that the thumbnail and histogram are made from, under
# FROZEN_SCORE; an encoder's repeated frame scores 0 to 0.01), in a shot that visibly changes (75th
# percentile score at least FROZEN_MOVING; the footage set's moving clips reach 1.06-13, its talking
# black-and-white film 0.92, and an encoder settling on a still picture lifts only its first frames). A
# freeze is motion that stalls: in a still shot (a tripod on a still scene) a held frame looks like
# the scene itself, and there the score is grain alone, 0.3-0.5 at 320x180, falling under 0.01 as
# the encoder stops coding the grain of a static picture, so a still shot is never frozen. Single
# repeats (pulldown, a dropped frame: the footage's dashcam and selfie clips hold one or two) are not
# a freeze.
FROZEN_SCORE = 0.05
FROZEN_MOVING = 1.0
FROZEN_MIN_RUN = 3
# Badly blurred: sharpness (RMS Laplacian at analysis size) under a third of the median of the
# shot's non-black frames, or under BLUR_FLOOR whatever the shot. Measured on the footage set: a
# whip pan in the selfie clip falls to 0.15-0.33 of its shot's median, the runners' pan blur to
# 0.25-0.35; a hiker walking past the lens, soft but readable, 0.36-0.45 (kept); no real frame
# outside a whip pan is under 0.011, a black frame is 0.001.
BLUR_RATIO = 1 / 3
BLUR_FLOOR = 0.008
# Usable stretches shorter than this are dropped (a shot this short or shorter is kept whole when
# none of its frames is bad: a photo is one frame).
MIN_USABLE_FRAMES = 6

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class _Info:
    """What analysis needs from a probe; used only when `media.probe` is unavailable."""

    path: str
    fps: Fraction
    n_frames: int
    width: int
    height: int
    rotation_deg: int
    has_audio: bool


def _probe(path: str) -> Any:
    probe = getattr(media, "probe", None)
    if probe is not None:
        return probe(path)
    try:
        with av.open(path) as c:
            if not c.streams.video:
                raise InputError(f"{path} has no video stream", hint="pass a video file")
            s = c.streams.video[0]
            n = sum(1 for p in c.demux(s) if p.size > 0)
            fps = s.average_rate or s.guessed_rate or Fraction(0)
            return _Info(
                path=path,
                fps=Fraction(fps),
                n_frames=n,
                width=s.codec_context.width,
                height=s.codec_context.height,
                rotation_deg=0,
                has_audio=bool(c.streams.audio),
            )
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="check that the file is a video") from exc


def _source(info: Any, path: str, frame_times: list[float], duration_s: float) -> dict[str, Any]:
    for name in ("source", "source_dict", "to_source", "as_source"):
        src = getattr(info, name, None)
        if src is not None:
            src = src() if callable(src) else src
            if isinstance(src, dict):
                return dict(src)
    w, h = int(info.width), int(info.height)
    return {
        "path": str(path),
        "duration_s": round(duration_s, 6),
        "fps": float(info.fps),
        "n_frames": len(frame_times),
        "width": w,
        "height": h,
        "rotation_deg": int(info.rotation_deg),
        "has_audio": bool(info.has_audio),
    }


def _analysis_size(info: Any) -> tuple[int, int]:
    """(width, height) to decode at: long side ANALYSIS_LONG_SIDE, even, display orientation."""
    w, h = int(info.width), int(info.height)
    if getattr(media, "probe", None) is None and int(info.rotation_deg) % 180:
        w, h = h, w
    scale = ANALYSIS_LONG_SIDE / max(w, h)
    return max(16, int(round(w * scale / 2)) * 2), max(16, int(round(h * scale / 2)) * 2)


def _prefetch(items: Iterator[Any], depth: int = 8) -> Iterator[Any]:
    """`items` produced on a helper thread, up to `depth` ahead, in order.

    PyAV decodes and rescales without the GIL, so decoding the next frames overlaps the numpy
    features of this one (about 1.6x faster on two cores). Exceptions reach the consumer; closing
    the consumer stops the producer.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(("error", exc))

    worker = threading.Thread(target=produce, name="analysis-decode", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _shot_size(size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) the shot features are computed at: long side SHOT_LONG_SIDE, even, the aspect
    of the analysis `size`, never smaller than a thumbnail."""
    w, h = int(size[0]), int(size[1])
    scale = SHOT_LONG_SIDE / max(w, h)
    return max(kt.THUMB, int(round(w * scale / 2)) * 2), max(kt.THUMB, int(round(h * scale / 2)) * 2)


def _blocks(items: Iterator[Any], n: int) -> Iterator[list[Any]]:
    """`items` in lists of n (the last one shorter); closing this closes `items`."""
    block: list[Any] = []
    try:
        for item in items:
            block.append(item)
            if len(block) == n:
                yield block
                block = []
        if block:
            yield block
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _opt(v: float, digits: int) -> float | None:
    """`v` rounded, None for NaN (a frame with no predecessor)."""
    return None if math.isnan(v) else round(v, digits)


def analyze_range(
    path: str,
    start: int,
    end: int | None = None,
    *,
    size: tuple[int, int] | None = None,
    progress: Progress | None = None,
    shots_only: bool = False,
) -> dict[str, Any]:
    """Per-frame features of frames [start, end) (end None: to the last frame), JSON-serializable.

    Returns {"start", "end", "size": [w, h], "frames": [...]} where each frame holds its index, pts
    `t`, change `score` and `hist_dist` against the previous frame (None for frame 0), its HSV
    histogram and a THUMB x THUMB RGB `thumb` (the shot features, computed at `_shot_size`: a frame
    scaled straight to it); unless `shots_only`, also `motion` [dx, dy, a, b] against the previous
    frame, `sharpness`, `noise` and colour statistics (at `size`).
    """
    if start < 0 or (end is not None and end <= start):
        raise InputError(f"bad frame range [{start}, {end})", hint="give 0 <= start < end")
    if size is None:
        size = _analysis_size(_probe(path))
    sizes = [_shot_size(size)] if shots_only else [_shot_size(size), size]
    frames: list[dict[str, Any]] = []
    prev_shot: tuple[Any, Any] | None = None
    prev_grey = None
    lead = max(0, start - 1)
    decoded = media.iter_scaled_frames(path, lead, end, sizes=sizes)
    for block in _prefetch(_blocks(decoded, SHOT_BLOCK), depth=2):
        shot = kt.frame_features(np.stack([imgs[0] for _, _, imgs in block]), prev_shot)
        prev_shot = shot.last
        hists = np.round(shot.hist.astype(np.float64), 5).tolist()
        for k, (index, t, imgs) in enumerate(block):
            if not shots_only:
                # Features work at half the decode size: box-filtered, so less noise than decoding
                # smaller (OpenCV's area filter is the same box mean at an integer factor).
                rgb = imgs[1]
                h2, w2 = rgb.shape[0] // 2, rgb.shape[1] // 2
                f = cv2.resize(kf.to_float(rgb[: 2 * h2, : 2 * w2]), (w2, h2), interpolation=cv2.INTER_AREA)
                grey = kf.luma(f)
            if index >= start:
                rec: dict[str, Any] = {
                    "index": int(index),
                    "t": float(t),
                    "score": _opt(float(shot.score[k]), 4),
                    "hist_dist": _opt(float(shot.hist_dist[k]), 5),
                    "hist": hists[k],
                    "thumb": shot.thumbs[k].ravel().tolist(),
                }
                if shots_only:
                    rec["luma_mean"] = round(float(shot.luma_mean[k]), 6)
                else:
                    motion = [0.0, 0.0, 0.0, 0.0]
                    if prev_grey is not None and index > 0:
                        motion = [round(v, 7) for v in kf.estimate_motion(prev_grey, grey)]
                    rec["motion"] = motion
                    sharp, noise = kf.sharpness_and_noise(kf.luma(kf.to_float(rgb)))
                    rec["sharpness"] = round(sharp, 6)
                    rec["noise"] = round(noise, 6)
                    rec.update(
                        {
                            name: (round(v, 6) if isinstance(v, float) else v)
                            for name, v in kf.frame_colour_stats(f).items()
                        }
                    )
                frames.append(rec)
            if not shots_only:
                prev_grey = grey
        if progress is not None and frames:
            progress(len(frames), (end - start) if end is not None else 0)
    if not frames:
        raise InputError(f"no frames decoded in [{start}, {end}) of {path}", hint="check the range")
    if frames[0]["index"] != start:
        raise JobError(f"decode of {path} started at frame {frames[0]['index']}, not {start}")
    return {"start": start, "end": frames[-1]["index"] + 1, "size": list(size), "frames": frames}


# --- audio ----------------------------------------------------------------------------------------


def _empty_audio(has_audio: bool) -> dict[str, Any]:
    return {
        "has_audio": has_audio,
        "tempo_bpm": None,
        "beats_s": [],
        "key": None,
        "lufs": None,
        "segments": [],
        "transcript": [],
    }


def analyze_audio(path: str, *, transcriber: Any = "default") -> dict[str, Any]:
    """The audio section of analysis.json: tempo, beats and downbeats, key, loudness (BS.1770),
    music/speech/silence segments, onsets and a transcript with word times (nodes.audio_analysis).

    `transcriber`: "default" is the offline recognizer, None skips transcription, or any
    nodes.transcribe Transcriber (a provider chain built from the node's settings)."""
    from lookalike.nodes import audio_analysis

    if transcriber == "default":
        return audio_analysis.audio_section(path)
    return audio_analysis.audio_section(path, transcriber=transcriber)


# --- merge ----------------------------------------------------------------------------------------


def _frames_of(ranges: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    frames = sorted((f for r in ranges for f in r["frames"]), key=lambda f: f["index"])
    for i, f in enumerate(frames):
        if f["index"] != i:
            raise JobError(
                f"analysis ranges do not cover the video: expected frame {i}, got {f['index']}",
                hint="analyze every frame range exactly once before merging",
            )
    if not frames:
        raise JobError("no analysed frames to merge", hint="analyze at least one frame range")
    return frames


def _is_flash(frames: list[dict[str, Any]], cut: int) -> bool:
    """A change at `cut` that comes back within FLASH_MAX_FRAMES frames.

    Thumbnails, not colour histograms, decide: two different shots of similar colours have close
    histograms, but a frame after a flash looks like the frame before it, closer than the flash does.
    """

    def dist(i: int, j: int) -> float:
        return float(
            np.abs(np.asarray(frames[i]["thumb"], float) - np.asarray(frames[j]["thumb"], float)).mean()
        )

    jump = dist(cut - 1, cut)
    for k in range(1, FLASH_MAX_FRAMES + 1):
        j = cut + k
        if j >= len(frames):
            break
        if dist(cut - 1, j) < FLASH_REVERT * jump:
            return True
    return False


def _shake(trajectory: list[list[float]], window: int = 9) -> float:
    """RMS distance (frame widths/heights) of the camera path from its own moving average over
    `window` frames: 0 for a tripod or a smooth move, larger the more the camera jitters."""
    xy = np.asarray(trajectory, dtype=np.float64)[:, :2]
    if len(xy) < 3:
        return 0.0
    k = min(window, len(xy) | 1)
    pad = np.pad(xy, ((k // 2, k // 2), (0, 0)), mode="edge")
    smooth = np.stack([np.convolve(pad[:, i], np.ones(k) / k, mode="valid") for i in range(2)], axis=1)
    return float(np.sqrt(((xy - smooth) ** 2).sum(axis=1).mean()))


def _pooled_colours(frames: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The scene's RGB histogram (`features.frame_colour_stats` bins) summed over its frames: (bins, counts)."""
    bins = np.concatenate([np.asarray(f["colours"]["bins"], dtype=np.int64) for f in frames])
    counts = np.concatenate([np.asarray(f["colours"]["counts"], dtype=np.float64) for f in frames])
    pooled = np.bincount(bins, weights=counts, minlength=kf.COLOR_LEVELS**3)
    nz = np.nonzero(pooled)[0]
    return nz, pooled[nz]


def _grade(frames: list[dict[str, Any]], bins: np.ndarray, counts: np.ndarray) -> dict[str, Any]:
    """The scene's look in `kernels.grade.measure_grade`'s definitions, pooled over its frames, plus
    the parameters of its fitted LUT (`kernels.look`: Lab means and spreads)."""
    lm = np.mean([f["luma_mean"] for f in frames])
    lsq = np.mean([f["luma_sq"] for f in frames])
    lin = np.mean([f["lin_luminance"] for f in frames])
    mean, std = klook.lab_moments(bins, counts)
    return {
        "exposure": round(math.log2(max(lin, 1e-6) / kg.EXPOSURE_REF_GREY), 4),
        "contrast": round(math.sqrt(max(lsq - lm * lm, 0.0)) / kg.CONTRAST_REF_STD, 4),
        "saturation": round(float(np.mean([f["chroma"] for f in frames])) / kg.SATURATION_REF_CHROMA, 4),
        "temperature": round(float(np.mean([f["b_mean"] for f in frames])) / kg.TEMPERATURE_SCALE, 4),
        "lut": {
            "kind": "lab_transfer",
            "size": klook.LUT_SIZE,
            "lab_mean": [round(v, 4) for v in mean],
            "lab_std": [round(v, 4) for v in std],
        },
    }


def _lighting(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """Lighting key from the pooled HSV value histogram (third of each frame's `hist`)."""
    b = kf.HSV_BINS
    v = np.mean([np.asarray(f["hist"][2 * b : 3 * b]) for f in frames], axis=0)
    dark = float(v[: b // 4].sum())
    bright = float(v[3 * b // 4 :].sum())
    luma = float(np.mean([f["luma_mean"] for f in frames]))
    return {
        "key": klook.lighting_key(luma, dark, bright),
        "luma_mean": round(luma, 4),
        "dark_share": round(dark, 4),
        "bright_share": round(bright, 4),
    }


def _texture(frames: list[dict[str, Any]]) -> dict[str, float]:
    """Median sharpness and grain (noise std) of the scene's frames, both in 0-1 pixel units."""
    return {
        "sharpness": round(float(np.median([f["sharpness"] for f in frames])), 5),
        "grain": round(float(np.median([f["noise"] for f in frames])), 5),
    }


def _palette(bins: np.ndarray, counts: np.ndarray) -> list[dict[str, Any]]:
    return kf.palette_from_histogram(bins, counts, PALETTE_SIZE)


def write_luts(doc: dict[str, Any], folder: str | Path) -> list[Path]:
    """Write every scene's fitted LUT as `scene_NNN.cube` in `folder`; record each file name in the
    scene's grade.lut.cube. Returns the paths written."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for sc in doc["scenes"]:
        lut = sc["grade"]["lut"]
        table = klook.lut_table(lut["lab_mean"], lut["lab_std"], lut["size"])
        p = out / f"scene_{sc['index']:03d}.cube"
        p.write_text(klook.cube_text(table, f"lookalike scene {sc['index']}"))
        lut["cube"] = p.name
        paths.append(p)
    return paths


def _thumbs(frames: list[dict[str, Any]]) -> np.ndarray:
    # bytes() of each list of 0-255 ints, then one buffer: twice as fast as numpy converting lists.
    data = b"".join(bytes(f["thumb"]) for f in frames)
    return np.frombuffer(data, dtype=np.uint8).reshape(len(frames), kt.THUMB, kt.THUMB, 3)


def scene_boundaries(
    frames: list[dict[str, Any]], learned: ShotModel | None = None, path: str | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """[(start_frame, transition_in)] for every scene, the first one included, from per-frame features.

    Hard cuts are adaptive spikes of the change score that do not revert within FLASH_MAX_FRAMES
    (flashes); fades run through flat frames (black, white, any solid colour) and dissolves are
    blends of two shots, wipes sweep one shot over the other (`kernels.shots`). A flat run no longer than FLASH_MAX_FRAMES between
    two views of the same shot is a flash, not a fade. A cut at the edge of a fade belongs to it.

    With a `learned` model (`nodes.shots_learned`: TransNetV2) and the video's `path` (it decodes
    its own 48x27 frames), its boundaries are added to these (see `_learned_boundaries`); without
    one the result is the classic detector's alone.
    """
    found = shots_learned.detect(learned, path) if learned is not None and path else None
    return _boundaries(frames, found)[0]


def _boundaries(
    frames: list[dict[str, Any]], learned: list[shots_learned.Transition] | None
) -> tuple[list[tuple[int, dict[str, Any]]], list[int]]:
    """`scene_boundaries` and the scene starts only the learned detector found (`learned`: its
    transitions, `shots_learned.detect`; None: classic only)."""
    n = len(frames)
    scores = np.array([f["score"] or 0.0 for f in frames])
    raw = kf.adaptive_cuts(scores)
    cuts = [c for c in raw if not _is_flash(frames, c)]
    thumbs = _thumbs(frames)
    first: dict[str, Any] = {"kind": "none", "start_frame": 0, "end_frame": 0}
    bounds: dict[int, dict[str, Any]] = {}
    fade_spans: list[tuple[int, int]] = []
    for tr in kt.fades(thumbs, raw):
        if tr.boundary == 0:
            first = tr.as_dict()
            fade_spans.append((tr.start, tr.end))
            continue
        if tr.boundary >= n:  # closing fade-out: part of the last scene, not a boundary
            fade_spans.append((tr.start, tr.end))
            continue
        if tr.end - tr.start <= FLASH_MAX_FRAMES + 2 and tr.start > 0 and tr.end < n:
            before, after = np.asarray(frames[tr.start - 1]["hist"]), np.asarray(frames[tr.end]["hist"])
            if kf.histogram_distance(before, after) < FLASH_HIST_DIST:
                continue  # a flash inside one shot
        fade_spans.append((tr.start, tr.end))
        cuts = [c for c in cuts if not tr.start - 1 <= c <= tr.end + 1]
        bounds[tr.boundary] = tr.as_dict()
    for c in cuts:
        bounds[c] = {"kind": "cut", "start_frame": c, "end_frame": c}
    gradual = list(fade_spans)
    for tr in kt.dissolves(thumbs, raw, fade_spans):
        if 0 < tr.boundary < n and not any(tr.start <= b < tr.end for b in bounds):
            bounds[tr.boundary] = tr.as_dict()
            gradual.append((tr.start, tr.end))
    spans = list(gradual)
    for tr in kt.wipes(thumbs, raw, gradual):
        if 0 < tr.boundary < n and not any(tr.start <= b < tr.end for b in bounds):
            bounds[tr.boundary] = tr.as_dict()
            spans.append((tr.start, tr.end))
    added: list[int] = []
    if learned is not None:
        for tr in _learned_boundaries(frames, learned, sorted(bounds), spans):
            bounds[tr.boundary] = (
                {"kind": "cut", "start_frame": tr.boundary, "end_frame": tr.boundary}
                if tr.kind == "cut"
                else {"kind": "dissolve", "start_frame": tr.start, "end_frame": tr.end}
            )
            added.append(tr.boundary)
    return [(0, first)] + sorted(bounds.items()), sorted(added)


def _learned_boundaries(
    frames: list[dict[str, Any]],
    learned: list[shots_learned.Transition],
    found: list[int],
    spans: list[tuple[int, int]],
) -> list[shots_learned.Transition]:
    """The learned detector's transitions that add to the classic scene starts `found` (after frame 0).

    One counts when it is not in or beside a fade, dissolve or wipe the classic detector found
    (`spans`: the same transition, which the classic detector places and labels more finely), a cut
    is not a flash, and it is at least LEARNED_MIN_GAP frames from every scene start already there
    (the classic detector's own shortest shot: a boundary next to a cut is the same cut, a frame
    off). The classic boundaries are never removed or moved.
    """
    n = len(frames)
    taken = [0, *found]
    added = []
    for tr in learned:
        if not 0 < tr.boundary < n:
            continue
        if any(a - 1 <= tr.boundary <= b + 1 or (tr.start <= b and a <= tr.end) for a, b in spans):
            continue
        if any(abs(tr.boundary - b) < LEARNED_MIN_GAP for b in taken):
            continue
        if tr.kind == "cut" and _is_flash(frames, tr.boundary):
            continue
        taken.append(tr.boundary)
        added.append(tr)
    return added


def detect_shots(
    path: str, *, size: tuple[int, int] | None = None, learned: ShotModel | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """Scene starts and their transitions (as `scene_boundaries`), decoding only what shots need."""
    info = _probe(path)
    r = analyze_range(path, 0, None, size=size or _analysis_size(info), shots_only=True)
    return scene_boundaries(r["frames"], learned, path)


def merge_ranges(
    info_or_path: Any,
    ranges: Iterable[dict[str, Any]],
    audio_doc: dict[str, Any],
    *,
    learned: ShotModel | None = None,
    learned_note: str | None = None,
) -> dict:
    """The analysis.json document from the per-frame features of every range and the audio section.

    `learned`: a loaded learned shot detector to run beside the classic one (`scene_boundaries`);
    `learned_note`: why there is none (the reason `shots_learned.load_shot_model` gave), recorded
    in the document's `shot_detector` so a reader knows which detectors made its scenes.
    """
    info = _probe(info_or_path) if isinstance(info_or_path, str) else info_or_path
    path = str(getattr(info, "path", info_or_path))
    ranges = list(ranges)
    frames = _frames_of(ranges)
    n = len(frames)
    times = [f["t"] for f in frames]
    step = float(np.median(np.diff(times[-6:]))) if n > 1 else float(1 / info.fps) if info.fps else 0.0
    duration = times[-1] + step
    size = ranges[0]["size"]
    aspect = size[0] / size[1]

    # The learned detector decodes the whole video itself (48x27), so it runs here, once, where
    # every range has come together.
    found = shots_learned.detect(learned, path) if learned is not None else None
    bounds, learned_cuts = _boundaries(frames, found)
    scenes = []
    for k, (s, transition) in enumerate(bounds):
        e = bounds[k + 1][0] if k + 1 < len(bounds) else n
        fr = frames[s:e]
        start_s, end_s = times[s], (times[e] if e < n else duration)
        bins, counts = _pooled_colours(fr)
        trajectory = kf.accumulate_trajectory([f["motion"] for f in fr], aspect)
        label, speed = kf.classify_camera(trajectory, end_s - start_s)
        scenes.append(
            {
                "index": k,
                "start_frame": s,
                "end_frame": e,
                "start_s": round(start_s, 6),
                "end_s": round(end_s, 6),
                "transition_in": transition,
                "palette": _palette(bins, counts),
                "grade": _grade(fr, bins, counts),
                "lighting": _lighting(fr),
                "texture": _texture(fr),
                "camera": {
                    "motion": label,
                    "speed": round(speed, 5),
                    "shake": round(_shake(trajectory), 6),
                    "trajectory": [[round(v, 6) for v in p] for p in trajectory],
                },
                "objects": [],
                "faces": [],
                "people": [],
                "people_count": 0,
                "people_share": 0.0,
                "text": [],
                "mood": {},
                "usable": (usable := usable_ranges(fr, s)),
                # Each usable stretch's own camera move: a stretch of a shot can move unlike the whole.
                "usable_camera": [_stretch_camera(trajectory, a - s, b - s, times) for a, b in usable],
                # From the key frame's faces and saliency: nodes.vision fills them; null until then.
                "scale": None,
                "salient": None,
            }
        )
    audio = dict(audio_doc)
    pacing = _pacing(scenes, audio.get("beats_s") or [], duration)
    for sc in scenes:
        sc["mood"] = klook.mood(
            luma_mean=sc["lighting"]["luma_mean"],
            saturation=sc["grade"]["saturation"],
            temperature=sc["grade"]["temperature"],
            camera_speed=sc["camera"]["speed"],
            cuts_per_minute=pacing["cuts_per_minute"],
            tempo_bpm=audio.get("tempo_bpm"),
            lufs=audio.get("lufs"),
        )
    return {
        "schema": SCHEMA,
        "source": _source(info, path, times, duration),
        "scenes": scenes,
        "audio": audio,
        "pacing": pacing,
        "shot_detector": _shot_detector(learned, learned_note, learned_cuts),
    }


def _bad_frames(frames: list[dict[str, Any]]) -> np.ndarray:
    """Per frame of one shot, whether it is black, frozen or badly blurred (see BLACK_LUMA)."""
    luma = np.array([f["luma_mean"] for f in frames])
    sharp = np.array([f["sharpness"] for f in frames])
    black = luma < BLACK_LUMA
    lit = sharp[~black]
    median = float(np.median(lit)) if len(lit) else 0.0
    blurred = (sharp < BLUR_RATIO * median) | (sharp < BLUR_FLOOR)
    # The shot's first frame is compared with the previous shot's last: never a repeat.
    score = np.array([np.inf] + [f["score"] if f["score"] is not None else np.inf for f in frames[1:]])
    moving = len(frames) > 1 and float(np.percentile(score[1:], 75)) >= FROZEN_MOVING
    frozen = np.zeros(len(frames), dtype=bool)
    for a, b in _runs(score < FROZEN_SCORE) if moving else []:
        if b - a >= FROZEN_MIN_RUN:
            frozen[a:b] = True
    return black | frozen | blurred


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[a, b) of every run of True in `mask`."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist(), strict=True))


def _stretch_camera(trajectory: list, a: int, b: int, times: list[float]) -> dict[str, Any]:
    """{"motion", "speed"} of frames [a, b) of a shot (indices into its trajectory): the whole shot's
    rule (kernels.features.classify_camera) on that part of its path."""
    if b - a < 2:
        return {"motion": "static", "speed": 0.0}
    part = trajectory[a:b]
    step = (times[-1] - times[0]) / max(1, len(times) - 1) if len(times) > 1 else 1 / 30
    label, speed = kf.classify_camera(part, max(step, 1e-6) * (b - a))
    return {"motion": label, "speed": round(speed, 5)}


def usable_ranges(frames: list[dict[str, Any]], start: int) -> list[list[int]]:
    """[[a, b), ...] absolute frame ranges of the shot whose `frames` begin at frame `start`, with
    no black, frozen or badly blurred frame; stretches under MIN_USABLE_FRAMES are dropped unless
    they are the whole shot. Uses only the shot's own frames, so any range split gives the same."""
    good = ~_bad_frames(frames)
    keep = min(MIN_USABLE_FRAMES, len(frames))
    return [[start + a, start + b] for a, b in _runs(good) if b - a >= keep]


def _shot_detector(learned: ShotModel | None, note: str | None, added: list[int]) -> dict[str, Any]:
    """Which shot detectors made the scenes: the classic one always, the learned one (TransNetV2)
    when loaded, with where its weights came from and the scene starts only it found, or why not."""
    if learned is None:
        return {"classic": True, "learned": None, "learned_note": note or shots_learned.NO_WEIGHTS}
    return {"classic": True, "learned": "transnetv2", "learned_weights": learned.path, "learned_note": note or "",
            "learned_cuts": added}


def _pacing(scenes: list[dict[str, Any]], beats: list[float], duration: float) -> dict[str, Any]:
    cut_times = [sc["start_s"] for sc in scenes[1:]]
    ratio = None
    if beats and cut_times:
        b = np.asarray(beats)
        ratio = round(
            sum(float(np.min(np.abs(b - t))) <= BEAT_TOLERANCE_S for t in cut_times) / len(cut_times), 4
        )
    lengths = [round(sc["end_s"] - sc["start_s"], 6) for sc in scenes]
    return {
        "shot_lengths_s": lengths,
        "mean_shot_s": round(float(np.mean(lengths)), 6) if lengths else 0.0,
        "median_shot_s": round(float(np.median(lengths)), 6) if lengths else 0.0,
        "cuts_per_minute": round(len(cut_times) / (duration / 60.0), 4) if duration > 0 else 0.0,
        "cuts_on_beat_ratio": ratio,
        "rhythm_curve": rhythm_curve(cut_times, duration),
    }


def rhythm_curve(
    cut_times: list[float], duration: float, *, step_s: float = 1.0, sigma_s: float = 2.0
) -> dict:
    """Local cutting rate over time: cuts per minute at every `step_s`, from the boundaries (every
    scene start after the first) smoothed with a Gaussian of `sigma_s`; each boundary adds 60 cuts per
    minute spread over its kernel, so the curve's mean over a long video is its cuts per minute."""
    ts = np.arange(0.0, max(duration, 0.0) + 1e-9, step_s)
    rate = np.zeros(len(ts))
    for c in cut_times:
        rate += np.exp(-0.5 * ((ts - c) / sigma_s) ** 2) / (sigma_s * math.sqrt(2 * math.pi)) * 60.0
    return {"step_s": step_s, "sigma_s": sigma_s, "cuts_per_minute": [round(float(v), 4) for v in rate]}


def split_ranges(n_frames: int, chunk_frames: int | None) -> list[tuple[int, int]]:
    """[start, end) ranges of at most chunk_frames frames covering 0..n_frames."""
    if not chunk_frames or chunk_frames >= n_frames:
        return [(0, n_frames)]
    return [(a, min(a + chunk_frames, n_frames)) for a in range(0, n_frames, chunk_frames)]


def analyze(
    path: str,
    *,
    progress: Progress | None = None,
    chunk_frames: int | None = None,
    lut_dir: str | Path | None = None,
    transcribe: bool = True,
    learned: ShotModel | None = None,
    learned_note: str | None = None,
) -> dict:
    """analysis.json for the video at `path`; `progress(done_frames, total_frames)` as it goes.

    Adds `timings` (seconds per stage: video features, audio, merge). With `lut_dir`, each scene's
    fitted LUT is written there as a `.cube` (see `write_luts`). `transcribe=False` leaves the
    audio section without a transcript. `learned` and `learned_note` are `merge_ranges`'s.
    """
    t0 = time.perf_counter()
    info = _probe(path)
    total = int(info.n_frames)
    size = _analysis_size(info)
    ranges = []
    done = 0
    for a, b in split_ranges(total, chunk_frames):

        def sub(k: int, _n: int, base: int = done) -> None:
            if progress is not None:
                progress(min(base + k, total), total)

        r = analyze_range(path, a, b if b < total else None, size=size, progress=sub)
        ranges.append(r)
        done += len(r["frames"])
        if progress is not None:
            progress(min(done, total), total)
    t_video = time.perf_counter() - t0
    audio = analyze_audio(path) if transcribe else analyze_audio(path, transcriber=None)
    t_audio = time.perf_counter() - t0 - t_video
    doc = merge_ranges(info, ranges, audio, learned=learned, learned_note=learned_note)
    doc["timings"] = {
        "video_s": round(t_video, 3),
        "audio_s": round(t_audio, 3),
        "merge_s": round(time.perf_counter() - t0 - t_video - t_audio, 3),
        "total_s": round(time.perf_counter() - t0, 3),
    }
    if lut_dir is not None:
        write_luts(doc, lut_dir)
    return doc
