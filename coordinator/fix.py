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
- ``{"op": "use_media", "scene": i, "media": "clips/beach.mp4", "in_frame": 0}``: a footage scene
  (docs/footage.md) shows that item from that frame: the matcher's runner-up starting there when
  the scene has one (plan_ops.set_scene_media; the source it replaces becomes a runner-up);
- ``{"op": "set_tempo", "bpm": 124.0}`` and ``{"op": "set_loudness", "lufs": -16.0}``: the music.

The score node's suggestions cover grade, palette, camera, length and music. `footage_suggestions`
adds the plan-side one it cannot make: a footage scene that scores low tries its best runner-up.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from lookalike.coordinator import plan_ops

from lookalike.errors import InputError

SCENE_OPS = {"adjust_grade", "set_grade", "set_palette", "set_camera", "set_duration", "use_media"}
MUSIC_OPS = {"set_tempo", "set_loudness"}
# A fixed grade stays within what a plan may hold (one table: plan_ops.GRADE_RANGES).
GRADE_LIMITS = plan_ops.GRADE_RANGES


# A footage scene whose visual score is below this tries its best runner-up.
WEAK_FOOTAGE_BELOW = 60.0
# The visual family's share of the overall score (nodes.score.OVERALL_WEIGHTS["visual"]; the
# coordinator does not import the nodes): what a better picture can add at most.
VISUAL_SHARE = 0.45
# Measured on the picture a use_media replaces: they mean nothing for the new one.
_PICTURE_OPS = {"adjust_grade", "set_grade", "set_palette"}


def footage_suggestions(plan: dict, similarity: dict, *, weak_below: float = WEAK_FOOTAGE_BELOW) -> list[dict]:
    """Suggestions (similarity.json's shape) to show a weak footage scene's best runner-up instead.

    A scene qualifies when its source is one of the user's items, its visual score (else overall)
    is below `weak_below`, and a runner-up is left from an item that is not excluded and that the
    scene has not shown before (a former choice is marked `was_chosen`, so rounds never go back and
    forth between two candidates)."""
    items = {m.get("media_id"): m for m in plan.get("media") or [] if not m.get("excluded")}
    by_index = {s.get("index", i): s for i, s in enumerate(plan.get("scenes") or [])}
    out = []
    for sc in similarity.get("scenes", []):
        s = by_index.get(sc.get("index"))
        src = (s or {}).get("source") or {}
        score = sc.get("visual") if isinstance(sc.get("visual"), (int, float)) else sc.get("overall")
        if src.get("kind") != "media" or not isinstance(score, (int, float)) or score >= weak_below:
            continue
        fits = [
            r for r in src.get("runner_ups") or [] if r.get("media_id") in items and not r.get("was_chosen")
        ]
        if not fits:
            continue
        ru = fits[0]
        idx = sc["index"]
        cost = (src.get("cost") or {}).get("total")
        out.append(
            {
                "scene": idx,
                "operation": {
                    "op": "use_media",
                    "scene": idx,
                    "media": items[ru["media_id"]]["name"],
                    "in_frame": int(ru.get("in_frame") or 0),
                },
                "reason": f"scene {idx}: visual {score:.0f} with {src.get('media')}; try the runner-up "
                f"{ru.get('media')} frames {ru.get('in_frame')}-{ru.get('out_frame')} (cost "
                f"{_cost(ru.get('cost'))}, the chosen {_cost(cost)})",
                "gain": round((100.0 - float(score)) * VISUAL_SHARE, 3),
            }
        )
    return out


def _cost(v: object) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) else "?"


def suggestions_to_ops(
    similarity: dict, *, plan: dict | None = None, min_gain: float = 0.0, max_ops: int | None = None
) -> list[dict]:
    """The plan operations of a similarity document, biggest expected gain first.

    At most one operation of each kind per scene (the first, i.e. most valuable, one is kept). With
    the `plan`, weak footage scenes also try a runner-up (`footage_suggestions`), and such a scene
    takes no grade or palette change that round: those were measured on the picture it leaves.
    """
    ops, seen = [], set()
    extra = footage_suggestions(plan, similarity) if plan is not None else []
    swapped = {s["scene"] for s in extra}
    ranked = sorted([*similarity.get("suggestions", []), *extra], key=lambda s: -(s.get("gain") or 0.0))
    for s in ranked:
        op = s.get("operation") or {}
        if not op.get("op") or (s.get("gain") or 0.0) < min_gain:
            continue
        if op["op"] in _PICTURE_OPS and op.get("scene") in swapped:
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
            elif kind == "use_media":
                s.setdefault("n_frames", s["end_frame"] - s["start_frame"])
                item = plan_ops.find_media(new, str(op.get("media") or ""), where="use_media.media")
                if item.get("excluded"):
                    raise InputError(f"use_media: {item['name']} is excluded", hint="include it again first")
                plan_ops.set_scene_media(
                    new,
                    new["scenes"].index(s),
                    item,
                    in_frame=op.get("in_frame"),
                    why=op.get("why") or "runner-up tried by the fix loop (the scene scored low)",
                )
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
    keys = ("grade", "palette", "camera", "n_frames", "prompt", "seed", "provider", "model", "source")
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
