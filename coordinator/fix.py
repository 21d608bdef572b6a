"""The fix loop's plan side: similarity suggestions to plan operations, and operations applied to a plan.

Pure functions on the documents (similarity.json, plan.json); no media work. An operation is a dict
with an "op" and, for scene operations, a "scene" index:

- ``{"op": "adjust_grade", "scene": i, "delta": {"temperature": 0.06, "exposure": -0.2, ...}}``:
  add to the scene's grade targets (the renderer grades toward them; the score measured how far the
  output landed from the sample, so adding the error closes the loop);
- ``{"op": "set_grade", "scene": i, "grade": {...}}``: replace grade targets;
- ``{"op": "set_palette", "scene": i, "palette": [{"rgb": [r, g, b], "weight": w}, ...]}``;
- ``{"op": "set_camera", "scene": i, "motion": "pan_left", "trajectory": [[x, y, s, r], ...]}``
  (the trajectory is resampled to the scene's length);
- ``{"op": "set_duration", "scene": i, "n_frames": n}``: later scenes move so scenes stay contiguous;
- ``{"op": "set_tempo", "bpm": 124.0}`` and ``{"op": "set_loudness", "lufs": -16.0}``: the music.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from lookalike.errors import InputError

SCENE_OPS = {"adjust_grade", "set_grade", "set_palette", "set_camera", "set_duration"}
MUSIC_OPS = {"set_tempo", "set_loudness"}
GRADE_LIMITS = {
    "exposure": (-4.0, 4.0),
    "contrast": (0.05, 5.0),
    "saturation": (0.0, 5.0),
    "temperature": (-1.0, 1.0),
}


def suggestions_to_ops(similarity: dict, *, min_gain: float = 0.0, max_ops: int | None = None) -> list[dict]:
    """The plan operations of a similarity document, biggest expected gain first.

    At most one operation of each kind per scene (the first, i.e. most valuable, one is kept).
    """
    ops, seen = [], set()
    ranked = sorted(similarity.get("suggestions", []), key=lambda s: -(s.get("gain") or 0.0))
    for s in ranked:
        op = s.get("operation") or {}
        if not op.get("op") or (s.get("gain") or 0.0) < min_gain:
            continue
        key = (op["op"], op.get("scene"))
        if key in seen:
            continue
        seen.add(key)
        ops.append(copy.deepcopy(op))
        if max_ops is not None and len(ops) >= max_ops:
            break
    return ops


def _resample(traj: list, n: int) -> list:
    import numpy as np

    t = np.asarray(traj, dtype=float).reshape(-1, 4)
    if len(t) == 0:
        return [[0.0, 0.0, 1.0, 0.0]] * n
    if len(t) == 1 or n == 1:
        return [t[0].tolist()] * n
    src, dst = np.linspace(0, 1, len(t)), np.linspace(0, 1, n)
    return np.stack([np.interp(dst, src, t[:, d]) for d in range(4)], axis=1).round(6).tolist()


def _scene(plan: dict, op: dict) -> dict:
    idx = op.get("scene")
    for s in plan["scenes"]:
        if s["index"] == idx:
            return s
    raise InputError(
        f"operation {op.get('op')} names scene {idx}, which the plan does not have",
        hint=f"use a scene index from 0 to {len(plan['scenes']) - 1}",
    )


def apply_suggestions(plan: dict, ops: Iterable[dict]) -> dict:
    """A new plan (version + 1) with the operations applied; the input plan is left unchanged."""
    new = copy.deepcopy(plan)
    applied = []
    for op in ops:
        kind = op.get("op")
        if kind in SCENE_OPS:
            s = _scene(new, op)
            if kind == "adjust_grade":
                grade = s.setdefault("grade", {})
                for k, d in (op.get("delta") or {}).items():
                    lo, hi = GRADE_LIMITS.get(k, (-1e9, 1e9))
                    base = grade.get(k, 1.0 if k in ("contrast", "saturation") else 0.0)
                    grade[k] = round(min(hi, max(lo, base + float(d))), 5)
            elif kind == "set_grade":
                s["grade"] = dict(op["grade"])
            elif kind == "set_palette":
                s["palette"] = copy.deepcopy(op["palette"])
            elif kind == "set_camera":
                n = s["end_frame"] - s["start_frame"]
                s["camera"] = {
                    "motion": op.get("motion"),
                    "trajectory": _resample(op.get("trajectory") or [], n),
                }
            elif kind == "set_duration":
                n = int(op["n_frames"])
                if n < 1:
                    raise InputError(
                        f"scene {s['index']} cannot be {n} frames long", hint="give at least 1 frame"
                    )
                cam = s.get("camera") or {}
                s["camera"] = {**cam, "trajectory": _resample(cam.get("trajectory") or [], n)}
                s["n_frames"] = n
                s["end_frame"] = s["start_frame"] + n
        elif kind == "set_tempo":
            new.setdefault("music", {})["tempo_bpm"] = float(op["bpm"])
        elif kind == "set_loudness":
            new.setdefault("music", {})["lufs"] = float(op["lufs"])
        else:
            raise InputError(
                f"unknown plan operation {kind!r}",
                hint=f"use one of {', '.join(sorted(SCENE_OPS | MUSIC_OPS))}",
            )
        applied.append(op)
    _relayout(new)
    new["version"] = int(plan.get("version", 1)) + 1
    return new


def _relayout(plan: dict) -> None:
    """Scenes back to back from frame 0, times from the frame rate; the format's length follows."""
    fmt = plan.get("format") or {}
    fps = float(fmt.get("fps") or 24.0)
    start = 0
    for s in sorted(plan["scenes"], key=lambda s: s["index"]):
        n = s["end_frame"] - s["start_frame"]
        s["start_frame"], s["end_frame"], s["n_frames"] = start, start + n, n
        s["start_s"], s["end_s"] = round(start / fps, 6), round((start + n) / fps, 6)
        start += n
    if fmt:
        fmt["n_frames"] = start
        fmt["duration_s"] = round(start / fps, 6)


def affected_scenes(before: dict, after: dict) -> list[int]:
    """Indices of the scenes whose footage must be rendered again (their look, path or length changed).

    A scene that only moved in time (an earlier scene changed length) keeps its frames; the engine
    re-cuts its ranges but need not re-render it.
    """
    keys = ("grade", "palette", "camera", "n_frames", "prompt", "seed", "provider", "model")
    old = {s["index"]: s for s in before["scenes"]}
    return [
        s["index"]
        for s in after["scenes"]
        if s["index"] not in old or any(s.get(k) != old[s["index"]].get(k) for k in keys)
    ]


def music_changed(before: dict, after: dict) -> bool:
    """Whether the soundtrack must be rendered again (tempo, loudness or the timeline length changed)."""
    return before.get("music") != after.get("music") or (before.get("format") or {}).get("n_frames") != (
        after.get("format") or {}
    ).get("n_frames")
