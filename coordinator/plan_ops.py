"""Typed plan operations: what a chat edit, a similarity suggestion or a user turns into.

Every edit of a plan is a list of operations (`SetGrade`, `SetDuration`, `SwapScenes`, ...), each a
frozen dataclass that checks its own values when it is built and the scenes it names when it is
applied. `apply(plan, ops)` returns a new plan and never touches the one it was given; afterwards
the plan is consistent again: scenes are numbered 0..n-1 in order, each starts where the previous
ends, camera trajectories hold one pose per frame, transitions sit on their boundary, and
`format.n_frames`/`duration_s` add up.

Scenes carry a stable `id` (the planner gives "s0", "s1", ...; inserted scenes get fresh ones), so
`diff` and `affected_scenes` follow a scene through swaps, inserts and deletes. Operations name
scenes by their 0-based `index` in the plan they apply to (what plan.json and the RPCs use); people
count from 1, and `lookalike.coordinator.chat` converts.

A footage plan (docs/footage.md) lists the user's clips and photos in `media` and gives every scene
a `source`; `UseMedia`, `SwapSources`, `ExcludeMedia` and `IncludeMedia` change them. Only the
source fields that make pixels (the item, its range, speed, extend, mirror, move, focus) are part
of a scene's render key; the cost, why and runner-ups that explain the choice are not.

One description per field (its `metadata`) drives both the checks here and the JSON schemas the
LLM providers get as tools, so the two cannot drift apart.

Errors: every bad value or reference is an `InputError` that names the operation and the field.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lookalike.errors import InputError

GRADE_RANGES = {
    "exposure": (-4.0, 4.0),
    "contrast": (0.05, 4.0),
    "saturation": (0.0, 4.0),
    "temperature": (-1.5, 1.5),
}
IDENTITY_GRADE = {"exposure": 0.0, "contrast": 1.0, "saturation": 1.0, "temperature": 0.0}
CAMERA_MOTIONS = (
    "static",
    "pan_left",
    "pan_right",
    "tilt_up",
    "tilt_down",
    "zoom_in",
    "zoom_out",
    "handheld",
)
TRANSITIONS = ("cut", "dissolve", "fade", "none")
EFFECTS = (
    "motion_blur",
    "lens_flare",
    "particles",
    "film_grain",
    "depth_of_field",
    "stabilization",
    "vignette",
)
# Speeds when a scene gets a move it did not have: frame widths (pan), heights (tilt) or ln(zoom)
# per second, about what a calm handheld-free shot in the sample set measures.
DEFAULT_SPEED = {"pan": 0.1, "tilt": 0.08, "zoom": 0.1, "handheld": 0.05}
MAX_SCENE_FRAMES = 200_000
_KEY_RE = re.compile(r"^[A-G][#b]? (major|minor)$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# Plan keys that describe the edit rather than the video: diff and render keys ignore them.
META_KEYS = ("version", "edit", "next_scene_id")


def _f(doc: str, default: Any = dataclasses.MISSING, **limits: Any) -> Any:
    """A field with its description and limits (min, max, enum, pattern, min_len, max_len)."""
    meta = {"doc": doc, **limits}
    if default is dataclasses.MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------- field checks


def _base_type(hint: Any) -> tuple[type, bool]:
    """(the JSON-able base type, whether None is allowed) of a field's annotation."""
    args = typing.get_args(hint)
    if args:
        non_none = [a for a in args if a is not type(None)]
        return non_none[0], len(non_none) < len(args)
    return hint, False


def _check_value(op_name: str, name: str, hint: Any, meta: Mapping[str, Any], value: Any) -> Any:
    """`value` checked (and an int made a float where a float is asked for), or InputError."""
    where = f"{op_name}.{name}"
    kind, optional = _base_type(hint)
    if value is None:
        if optional:
            return None
        raise InputError(f"{where} is required")
    if kind is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise InputError(f"{where} must be a whole number, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{where} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise InputError(f"{where} must be a finite number, got {value!r}")
    elif kind is str:
        if not isinstance(value, str):
            raise InputError(f"{where} must be text, got {value!r}")
        value = value.strip()
        if len(value) < meta.get("min_len", 0):
            raise InputError(
                f"{where} must not be empty" if meta.get("min_len") == 1 else f"{where} is too short"
            )
        if len(value) > meta.get("max_len", 10_000):
            raise InputError(f"{where} is longer than {meta.get('max_len', 10_000)} characters")
        if "pattern" in meta and not re.match(meta["pattern"], value):
            raise InputError(f"{where} {value!r} is not of the form {meta.get('form', meta['pattern'])}")
    if "enum" in meta and value not in meta["enum"]:
        raise InputError(f"{where} must be one of {', '.join(meta['enum'])}, got {value!r}")
    if "min" in meta and value < meta["min"]:
        raise InputError(f"{where} must be at least {meta['min']}, got {value}")
    if "max" in meta and value > meta["max"]:
        raise InputError(f"{where} must be at most {meta['max']}, got {value}")
    if "exclusive_min" in meta and value <= meta["exclusive_min"]:
        raise InputError(f"{where} must be more than {meta['exclusive_min']}, got {value}")
    return value


# ---------------------------------------------------------------- the base class


@dataclass(frozen=True)
class PlanOp:
    """One typed change to a plan. Subclasses set `name` and `doc` and implement `_apply`."""

    name: ClassVar[str] = ""
    doc: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            checked = _check_value(self.name, f.name, hints[f.name], f.metadata, getattr(self, f.name))
            object.__setattr__(self, f.name, checked)
        self._check()

    def _check(self) -> None:
        """Checks across fields that need no plan (e.g. 'at least one of')."""

    def _apply(self, plan: dict) -> None:  # pragma: no cover - every subclass implements it
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.name, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    def describe(self) -> str:
        """One human line, scenes counted from 1 as people do."""
        parts = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None or (f.default is not dataclasses.MISSING and v == f.default and f.name != "scene"):
                continue
            if f.name in ("scene", "a", "b", "like") and isinstance(v, int):
                v = f"scene {v + 1}"
            elif f.name in ("at", "to"):
                v = f"position {v + 1}"
            parts.append(f"{f.name}={v}")
        if any(f.name == "scene" for f in dataclasses.fields(self)) and getattr(self, "scene", 0) is None:
            parts.insert(0, "every scene")
        return f"{self.name}({', '.join(parts)})"

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON schema of this operation's arguments (what an LLM tool call must fill in)."""
        hints = typing.get_type_hints(cls)
        props: dict[str, Any] = {}
        required = []
        for f in dataclasses.fields(cls):
            kind, _ = _base_type(hints[f.name])
            meta = f.metadata
            prop: dict[str, Any] = {
                "type": {bool: "boolean", int: "integer", float: "number", str: "string"}[kind],
                "description": meta["doc"],
            }
            for ours, theirs in (
                ("min", "minimum"),
                ("max", "maximum"),
                ("exclusive_min", "exclusiveMinimum"),
                ("min_len", "minLength"),
                ("max_len", "maxLength"),
                ("pattern", "pattern"),
            ):
                if ours in meta:
                    prop[theirs] = meta[ours]
            if "enum" in meta:
                prop["enum"] = list(meta["enum"])
            if f.default is not dataclasses.MISSING and f.default is not None:
                prop["default"] = f.default
            props[f.name] = prop
            if f.default is dataclasses.MISSING:
                required.append(f.name)
        return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


# ---------------------------------------------------------------- helpers on a working plan


def _scenes(plan: dict) -> list[dict]:
    return plan["scenes"]


def _scene(plan: dict, op: PlanOp, index: int | None, field_name: str = "scene") -> dict:
    scenes = _scenes(plan)
    if index is None or not 0 <= index < len(scenes):
        raise InputError(
            f"{op.name}.{field_name}: there is no scene index {index}; the plan has indices 0-{len(scenes) - 1}",
            hint="scenes are numbered from 0 in operations (scene 1 in chat is index 0)",
        )
    return scenes[index]


def _targets(plan: dict, op: PlanOp, index: int | None) -> list[dict]:
    return list(_scenes(plan)) if index is None else [_scene(plan, op, index)]


def _fps(plan: dict) -> float:
    fmt = plan.get("format") or {}
    if fmt.get("fps_num") and fmt.get("fps_den"):
        return fmt["fps_num"] / fmt["fps_den"]
    return float(fmt.get("fps") or 24.0)


def _motion_family(motion: str) -> str:
    return motion.split("_")[0] if motion != "handheld" else "handheld"


def camera_trajectory(
    motion: str, n_frames: int, fps: float, speed: float, seed: int = 0
) -> list[list[float]]:
    """Poses [x, y, zoom, roll] per frame for a labelled move (analysis.json's convention: x in frame
    widths right-positive, y in heights down-positive, zoom > 1 zoomed in)."""
    out = []
    rng_phase = [(seed >> s) % 628 / 100.0 for s in (0, 9, 18, 27)]
    for i in range(n_frames):
        t = i / fps
        x = y = 0.0
        z = 1.0
        if motion == "pan_right":
            x = speed * t
        elif motion == "pan_left":
            x = -speed * t
        elif motion == "tilt_down":
            y = speed * t
        elif motion == "tilt_up":
            y = -speed * t
        elif motion == "zoom_in":
            z = math.exp(speed * t)
        elif motion == "zoom_out":
            z = math.exp(-speed * t)
        elif motion == "handheld":
            # Two incommensurate wobbles per axis: a path that wanders without drifting away.
            x = speed * 0.2 * (math.sin(2.1 * t + rng_phase[0]) + 0.5 * math.sin(5.3 * t + rng_phase[1]))
            y = speed * 0.2 * (math.sin(1.7 * t + rng_phase[2]) + 0.5 * math.sin(4.9 * t + rng_phase[3]))
        out.append([round(x, 6), round(y, 6), round(z, 6), 0.0])
    return out


def _resample(traj: Sequence[Sequence[float]], n: int) -> list[list[float]]:
    """The same camera path spread over n frames (linear interpolation per component)."""
    m = len(traj)
    if m == 0:
        return [[0.0, 0.0, 1.0, 0.0] for _ in range(n)]
    if m == 1 or n == 1:
        return [list(map(float, traj[0])) for _ in range(n)]
    out = []
    for i in range(n):
        u = i * (m - 1) / (n - 1)
        j = min(int(u), m - 2)
        w = u - j
        out.append(
            [round((1 - w) * float(a) + w * float(b), 6) for a, b in zip(traj[j], traj[j + 1], strict=True)]
        )
    return out


def _set_n_frames(plan: dict, scene: dict, n: int, retime_camera: bool) -> None:
    old = int(scene["n_frames"])
    if n == old:
        return
    camera = scene.setdefault("camera", {"motion": "static", "trajectory": []})
    traj = camera.get("trajectory") or []
    if retime_camera:
        camera["trajectory"] = _resample(traj, n)
        if camera.get("speed"):
            camera["speed"] = round(float(camera["speed"]) * old / n, 6)
    else:  # keep the pace: cut the path short or hold its last pose
        held = list(traj[:n]) if traj else [[0.0, 0.0, 1.0, 0.0]]
        camera["trajectory"] = held + [list(held[-1])] * (n - len(held))
    scene["n_frames"] = n
    for line in (scene.get("audio") or {}).get("voice_lines", []):
        if line.get("offset_s", 0.0) * _fps(plan) >= n:
            line["offset_s"] = round(max(0.0, (n - 1) / _fps(plan)), 6)


def _new_scene_id(plan: dict) -> str:
    taken = {s.get("id") for s in _scenes(plan)}
    k = int(plan.get("next_scene_id") or len(_scenes(plan)))
    while f"s{k}" in taken:
        k += 1
    plan["next_scene_id"] = k + 1
    return f"s{k}"


def _derived_seed(base: int, scene_id: str) -> int:
    digest = hashlib.sha256(f"{base}:{scene_id}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


# ---------------------------------------------------------------- the operations

_SCENE_DOC = "0-based index of the scene in the current plan"
_SCENE_OR_ALL_DOC = "0-based index of the scene; leave out for every scene"


@dataclass(frozen=True)
class SetGrade(PlanOp):
    """Set a scene's target grade to absolute values."""

    name: ClassVar[str] = "set_grade"
    doc: ClassVar[str] = (
        "Set the colour grade of one scene (or every scene) to absolute values: exposure in stops "
        "(0 = mid grey), contrast and saturation as ratios (1 = neutral), temperature as CIELAB b*/100 "
        "(positive warm/yellow, negative cool/blue)."
    )
    scene: int | None = _f(_SCENE_OR_ALL_DOC, None, min=0)
    exposure: float | None = _f(
        "exposure in stops", None, min=GRADE_RANGES["exposure"][0], max=GRADE_RANGES["exposure"][1]
    )
    contrast: float | None = _f(
        "contrast ratio", None, min=GRADE_RANGES["contrast"][0], max=GRADE_RANGES["contrast"][1]
    )
    saturation: float | None = _f(
        "saturation ratio", None, min=GRADE_RANGES["saturation"][0], max=GRADE_RANGES["saturation"][1]
    )
    temperature: float | None = _f(
        "temperature (b*/100)", None, min=GRADE_RANGES["temperature"][0], max=GRADE_RANGES["temperature"][1]
    )

    def _values(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in GRADE_RANGES if getattr(self, k) is not None}

    def _check(self) -> None:
        if not self._values():
            raise InputError(f"{self.name}: give at least one of {', '.join(GRADE_RANGES)}")

    def _apply(self, plan: dict) -> None:
        for s in _targets(plan, self, self.scene):
            s.setdefault("grade", {}).update(self._values())


@dataclass(frozen=True)
class AdjustGrade(PlanOp):
    """Move a scene's grade by deltas ("warmer", "more contrast")."""

    name: ClassVar[str] = "adjust_grade"
    doc: ClassVar[str] = (
        "Change the colour grade of one scene (or every scene) relative to what it is: each value is "
        "added (exposure +0.3 is a third of a stop brighter, temperature +0.1 warmer, contrast +0.2 "
        "punchier, saturation -0.2 more muted)."
    )
    scene: int | None = _f(_SCENE_OR_ALL_DOC, None, min=0)
    exposure: float | None = _f("stops to add", None, min=-4.0, max=4.0)
    contrast: float | None = _f("contrast ratio to add", None, min=-2.0, max=2.0)
    saturation: float | None = _f("saturation ratio to add", None, min=-2.0, max=2.0)
    temperature: float | None = _f("temperature to add (positive warmer)", None, min=-1.0, max=1.0)

    def _check(self) -> None:
        if all(getattr(self, k) is None for k in GRADE_RANGES):
            raise InputError(f"{self.name}: give at least one of {', '.join(GRADE_RANGES)}")

    def _apply(self, plan: dict) -> None:
        for s in _targets(plan, self, self.scene):
            g = s.setdefault("grade", {})
            for k, (lo, hi) in GRADE_RANGES.items():
                d = getattr(self, k)
                if d is None:
                    continue
                v = round(float(g.get(k, IDENTITY_GRADE[k])) + d, 6)
                if not lo <= v <= hi:
                    raise InputError(
                        f"{self.name}.{k}: scene {s['index'] + 1} would reach {k} {v:g}, outside [{lo:g}, {hi:g}]",
                        hint="ask for a smaller change",
                    )
                g[k] = v


@dataclass(frozen=True)
class SetDuration(PlanOp):
    """Change a scene's length: to n_frames, by delta_frames, or by a factor (exactly one)."""

    name: ClassVar[str] = "set_duration"
    doc: ClassVar[str] = (
        "Change the length of one scene; give exactly one of n_frames (new length), delta_frames "
        "(frames to add, negative to shorten) or factor (1.25 = a quarter longer, i.e. slower). Later "
        "scenes move to follow. By default the camera move is stretched over the new length (a longer "
        "scene moves slower)."
    )
    scene: int = _f(_SCENE_DOC, min=0)
    n_frames: int | None = _f("new length in frames", None, min=1, max=MAX_SCENE_FRAMES)
    delta_frames: int | None = _f(
        "frames to add (negative shortens)", None, min=-MAX_SCENE_FRAMES, max=MAX_SCENE_FRAMES
    )
    factor: float | None = _f("length multiplier (>1 longer and slower)", None, exclusive_min=0.0, max=20.0)
    retime_camera: bool = _f("stretch the camera move over the new length (false: keep its pace)", True)

    def _check(self) -> None:
        given = [k for k in ("n_frames", "delta_frames", "factor") if getattr(self, k) is not None]
        if len(given) != 1:
            raise InputError(
                f"{self.name}: give exactly one of n_frames, delta_frames or factor (got {given or 'none'})"
            )

    def _apply(self, plan: dict) -> None:
        s = _scene(plan, self, self.scene)
        old = int(s["n_frames"])
        if self.n_frames is not None:
            n = self.n_frames
        elif self.delta_frames is not None:
            n = old + self.delta_frames
        else:
            n = round(old * float(self.factor or 1.0))
        if n < 1:
            field_name = "delta_frames" if self.delta_frames is not None else "factor"
            raise InputError(
                f"{self.name}.{field_name}: scene {self.scene + 1} has {old} frames and would have {n}",
                hint="a scene keeps at least 1 frame; delete it instead",
            )
        if n > MAX_SCENE_FRAMES:
            raise InputError(
                f"{self.name}: scene {self.scene + 1} would have {n} frames, more than {MAX_SCENE_FRAMES}"
            )
        _set_n_frames(plan, s, n, self.retime_camera)


@dataclass(frozen=True)
class SetCamera(PlanOp):
    """Give a scene a new camera move (its trajectory is rebuilt for the scene's length)."""

    name: ClassVar[str] = "set_camera"
    doc: ClassVar[str] = (
        "Give one scene a new camera move. speed is frame widths per second for pans, frame heights "
        "per second for tilts, ln(zoom) per second for zooms; left out, the scene keeps its measured "
        "speed when the kind of move stays, else a calm default."
    )
    scene: int = _f(_SCENE_DOC, min=0)
    motion: str = _f("the camera move", enum=CAMERA_MOTIONS)
    speed: float | None = _f("how fast (see the description)", None, min=0.0, max=5.0)

    def _apply(self, plan: dict) -> None:
        s = _scene(plan, self, self.scene)
        cam = s.get("camera") or {}
        old_motion = cam.get("motion", "static")
        family = _motion_family(self.motion)
        speed = self.speed
        if speed is None:
            same = _motion_family(old_motion) == family and float(cam.get("speed") or 0.0) > 0
            speed = float(cam["speed"]) if same else DEFAULT_SPEED.get(family, 0.0)
        if self.motion == "static":
            speed = 0.0
        traj = camera_trajectory(self.motion, int(s["n_frames"]), _fps(plan), speed, int(s.get("seed") or 0))
        s["camera"] = {"motion": self.motion, "speed": round(speed, 6), "trajectory": traj}


@dataclass(frozen=True)
class SwapScenes(PlanOp):
    name: ClassVar[str] = "swap_scenes"
    doc: ClassVar[str] = "Swap the places of two scenes (each keeps its content, length and look)."
    a: int = _f(_SCENE_DOC, min=0)
    b: int = _f("0-based index of the other scene", min=0)

    def _check(self) -> None:
        if self.a == self.b:
            raise InputError(f"{self.name}.b: a scene cannot be swapped with itself (both are {self.a})")

    def _apply(self, plan: dict) -> None:
        _scene(plan, self, self.a, "a")
        _scene(plan, self, self.b, "b")
        sc = _scenes(plan)
        sc[self.a], sc[self.b] = sc[self.b], sc[self.a]


@dataclass(frozen=True)
class MoveScene(PlanOp):
    name: ClassVar[str] = "move_scene"
    doc: ClassVar[str] = "Move one scene to another position; the scenes between shift by one."
    scene: int = _f(_SCENE_DOC, min=0)
    to: int = _f("0-based position it ends up at", min=0)

    def _apply(self, plan: dict) -> None:
        s = _scene(plan, self, self.scene)
        _scene(plan, self, self.to, "to")
        sc = _scenes(plan)
        sc.pop(self.scene)
        sc.insert(self.to, s)


@dataclass(frozen=True)
class InsertScene(PlanOp):
    name: ClassVar[str] = "insert_scene"
    doc: ClassVar[str] = (
        "Insert a new scene at a position (0 = first; the number of scenes = last). It copies the look "
        "of scene `like` (default: the scene it follows) with its own seed; prompt and motion override."
    )
    at: int = _f("0-based position of the new scene", min=0)
    n_frames: int = _f("length in frames", min=1, max=MAX_SCENE_FRAMES)
    prompt: str | None = _f("what the scene shows", None, min_len=1, max_len=2000)
    like: int | None = _f("0-based index of the scene whose look to copy", None, min=0)
    motion: str | None = _f("camera move", None, enum=CAMERA_MOTIONS)

    def _apply(self, plan: dict) -> None:
        sc = _scenes(plan)
        if self.at > len(sc):
            raise InputError(
                f"{self.name}.at: position {self.at} is past the end; the plan has {len(sc)} scenes",
                hint=f"use at most {len(sc)} to append",
            )
        like = self.like if self.like is not None else max(0, self.at - 1)
        template = _scene(plan, self, like, "like")
        new = copy.deepcopy(template)
        new["id"] = _new_scene_id(plan)
        new["seed"] = _derived_seed(int(template.get("seed") or 0), new["id"])
        new["transition_in"] = {"kind": "cut"}
        new.setdefault("audio", {})["voice_lines"] = []
        new["audio"]["sfx"] = []
        new["n_frames"] = int(template["n_frames"])
        if self.prompt is not None:
            new["prompt"] = self.prompt
        sc.insert(self.at, new)
        _set_n_frames(plan, new, self.n_frames, retime_camera=True)
        if self.motion is not None:
            SetCamera(scene=self.at, motion=self.motion)._apply(plan)


@dataclass(frozen=True)
class DeleteScene(PlanOp):
    name: ClassVar[str] = "delete_scene"
    doc: ClassVar[str] = "Remove one scene; later scenes move up to close the gap."
    scene: int = _f(_SCENE_DOC, min=0)

    def _apply(self, plan: dict) -> None:
        _scene(plan, self, self.scene)
        if len(_scenes(plan)) == 1:
            raise InputError(f"{self.name}.scene: the plan's only scene cannot be deleted")
        _scenes(plan).pop(self.scene)


@dataclass(frozen=True)
class SetPrompt(PlanOp):
    name: ClassVar[str] = "set_prompt"
    doc: ClassVar[str] = "Replace the generation prompt of one scene (what a provider is asked to show)."
    scene: int = _f(_SCENE_DOC, min=0)
    prompt: str = _f("the new prompt", min_len=1, max_len=2000)

    def _apply(self, plan: dict) -> None:
        _scene(plan, self, self.scene)["prompt"] = self.prompt


@dataclass(frozen=True)
class SetProvider(PlanOp):
    name: ClassVar[str] = "set_provider"
    doc: ClassVar[str] = (
        "Choose the generation provider (and model) of one scene or every scene, e.g. local, runway, veo."
    )
    provider: str = _f("provider name", pattern=_NAME_RE.pattern, form="a lower-case name like 'runway'")
    scene: int | None = _f(_SCENE_OR_ALL_DOC, None, min=0)
    model: str | None = _f("model name at that provider", None, min_len=1, max_len=100)

    def _apply(self, plan: dict) -> None:
        for s in _targets(plan, self, self.scene):
            s["provider"] = self.provider
            if self.model is not None:
                s["model"] = self.model


@dataclass(frozen=True)
class SetVoiceLine(PlanOp):
    name: ClassVar[str] = "set_voice_line"
    doc: ClassVar[str] = (
        "Give one scene a voice-over line, spoken offset_s seconds after the scene starts. By default "
        "it replaces the scene's lines; replace=false adds it."
    )
    scene: int = _f(_SCENE_DOC, min=0)
    text: str = _f("the words to speak", min_len=1, max_len=2000)
    offset_s: float = _f("seconds from the scene's start", 0.0, min=0.0, max=3600.0)
    voice: str | None = _f("voice name or id (default: the project's voice)", None, min_len=1, max_len=100)
    emotion: str | None = _f("delivery, e.g. calm, excited, sad", None, min_len=1, max_len=40)
    pace: float = _f("speaking rate (1 = normal)", 1.0, min=0.5, max=2.0)
    replace: bool = _f("replace the scene's lines (false: add)", True)

    def _apply(self, plan: dict) -> None:
        s = _scene(plan, self, self.scene)
        length_s = int(s["n_frames"]) / _fps(plan)
        if self.offset_s >= length_s:
            raise InputError(
                f"{self.name}.offset_s: {self.offset_s:g} s is past the end of scene "
                f"{self.scene + 1} ({length_s:.2f} s long)"
            )
        audio = s.setdefault("audio", {})
        line = {
            "text": self.text,
            "offset_s": self.offset_s,
            "voice": self.voice,
            "emotion": self.emotion,
            "pace": self.pace,
        }
        lines = [] if self.replace else list(audio.get("voice_lines") or [])
        audio["voice_lines"] = sorted([*lines, line], key=lambda x: x["offset_s"])


@dataclass(frozen=True)
class ClearVoiceLines(PlanOp):
    name: ClassVar[str] = "clear_voice_lines"
    doc: ClassVar[str] = "Remove every voice-over line of one scene."
    scene: int = _f(_SCENE_DOC, min=0)

    def _apply(self, plan: dict) -> None:
        _scene(plan, self, self.scene).setdefault("audio", {})["voice_lines"] = []


@dataclass(frozen=True)
class AddSfx(PlanOp):
    name: ClassVar[str] = "add_sfx"
    doc: ClassVar[str] = (
        "Add a sound effect to one scene, offset_s seconds after it starts (e.g. whoosh, impact, riser, click)."
    )
    scene: int = _f(_SCENE_DOC, min=0)
    sound: str = _f("the effect's name", pattern=_NAME_RE.pattern, form="a lower-case name like 'whoosh'")
    offset_s: float = _f("seconds from the scene's start", 0.0, min=0.0, max=3600.0)
    gain_db: float = _f("level relative to the mix", 0.0, min=-40.0, max=12.0)

    def _apply(self, plan: dict) -> None:
        s = _scene(plan, self, self.scene)
        if self.offset_s >= int(s["n_frames"]) / _fps(plan):
            raise InputError(
                f"{self.name}.offset_s: {self.offset_s:g} s is past the end of scene {self.scene + 1}"
            )
        audio = s.setdefault("audio", {})
        audio["sfx"] = [
            *(audio.get("sfx") or []),
            {"sound": self.sound, "offset_s": self.offset_s, "gain_db": self.gain_db},
        ]


@dataclass(frozen=True)
class SetMusic(PlanOp):
    name: ClassVar[str] = "set_music"
    doc: ClassVar[str] = (
        "Change the music of the whole video: an absolute tempo_bpm or a tempo_factor (1.1 = 10% "
        "faster), the key (e.g. 'A minor'), the loudness target in LUFS, the provider that makes it "
        "(local synthesis, elevenlabs) and its model, and its mood in words (the provider's prompt)."
    )
    tempo_bpm: float | None = _f("beats per minute", None, min=30.0, max=300.0)
    tempo_factor: float | None = _f("tempo multiplier", None, min=0.25, max=4.0)
    key: str | None = _f("musical key", None, pattern=_KEY_RE.pattern, form="'A minor' or 'C# major'")
    lufs: float | None = _f("integrated loudness target", None, min=-40.0, max=-6.0)
    provider: str | None = _f(
        "music provider name, e.g. local or elevenlabs",
        None,
        pattern=_NAME_RE.pattern,
        form="a lower-case name like 'elevenlabs'",
    )
    model: str | None = _f("model name at that provider", None, min_len=1, max_len=100)
    mood: str | None = _f(
        "the music's mood or style in words, e.g. 'tense horror drones' (the music provider's prompt)",
        None,
        min_len=1,
        max_len=300,
    )

    def _check(self) -> None:
        if self.tempo_bpm is not None and self.tempo_factor is not None:
            raise InputError(f"{self.name}: give tempo_bpm or tempo_factor, not both")
        if self.model is not None and self.provider is None:
            raise InputError(f"{self.name}: a model needs the provider it belongs to")
        if all(getattr(self, k) is None for k in ("tempo_bpm", "tempo_factor", "key", "lufs", "provider", "mood")):
            raise InputError(
                f"{self.name}: give at least one of tempo_bpm, tempo_factor, key, lufs, provider, mood"
            )

    def _apply(self, plan: dict) -> None:
        music = plan.setdefault("music", {})
        if self.tempo_bpm is not None:
            music["tempo_bpm"] = self.tempo_bpm
        if self.tempo_factor is not None:
            base = music.get("tempo_bpm") or 120.0
            tempo = round(float(base) * self.tempo_factor, 3)
            if not 30.0 <= tempo <= 300.0:
                raise InputError(
                    f"{self.name}.tempo_factor: the tempo would be {tempo:g} BPM, outside 30-300"
                )
            music["tempo_bpm"] = tempo
        if self.key is not None:
            music["key"] = self.key
        if self.lufs is not None:
            music["lufs"] = self.lufs
        if self.provider is not None:
            # The provider's default model unless one is given: another provider's model means nothing to it.
            music["provider"] = self.provider
            music["model"] = self.model or ""
        if self.mood is not None:
            # The node's music request reads plan["music"]["prompt"] (nodes/runtime.py render_audio).
            music["prompt"] = self.mood


@dataclass(frozen=True)
class SetTransition(PlanOp):
    name: ClassVar[str] = "set_transition"
    doc: ClassVar[str] = (
        "Set how a scene begins: a cut, a dissolve from the previous scene, or a fade through black "
        "(on the first scene: a fade in from black, or none). n_frames is the transition's length, "
        "centred on the boundary."
    )
    scene: int = _f(_SCENE_DOC, min=0)
    kind: str = _f("the transition", enum=TRANSITIONS)
    n_frames: int = _f("length in frames (dissolves and fades)", 12, min=0, max=600)

    def _check(self) -> None:
        if self.kind in ("dissolve", "fade") and self.n_frames < 2:
            raise InputError(
                f"{self.name}.n_frames: a {self.kind} needs at least 2 frames, got {self.n_frames}"
            )

    def _apply(self, plan: dict) -> None:
        s = _scene(plan, self, self.scene)
        start = int(s["start_frame"])
        if self.scene == 0:
            if self.kind in ("cut", "dissolve"):
                raise InputError(
                    f"{self.name}.kind: the first scene has nothing before it to {self.kind} from",
                    hint="use 'fade' (in from black) or 'none'",
                )
            s["transition_in"] = (
                {"kind": "fade", "start_frame": start, "end_frame": start + self.n_frames}
                if self.kind == "fade"
                else {"kind": "none", "start_frame": start, "end_frame": start}
            )
            return
        if self.kind == "none":
            raise InputError(f"{self.name}.kind: only the first scene can start with 'none'; use 'cut'")
        half = self.n_frames // 2 if self.kind != "cut" else 0
        end = start + (self.n_frames - half if self.kind != "cut" else 0)
        s["transition_in"] = {"kind": self.kind, "start_frame": start - half, "end_frame": end}


@dataclass(frozen=True)
class SetEffect(PlanOp):
    name: ClassVar[str] = "set_effect"
    doc: ClassVar[str] = (
        "Add an effect to one scene or every scene, or change its strength; strength 0 removes it."
    )
    effect: str = _f("the effect", enum=EFFECTS)
    strength: float = _f("0 (off) to 1 (strong)", 0.5, min=0.0, max=1.0)
    scene: int | None = _f(_SCENE_OR_ALL_DOC, None, min=0)

    def _apply(self, plan: dict) -> None:
        for s in _targets(plan, self, self.scene):
            effects = [e for e in (s.get("effects") or []) if e.get("name") != self.effect]
            if self.strength > 0:
                effects.append({"name": self.effect, "strength": self.strength})
            s["effects"] = sorted(effects, key=lambda e: e["name"])


# ---------------------------------------------------------------- footage: a scene's source (docs/footage.md)

SOURCE_MOVES = ("none", "synth")
SOURCE_EXTENDS = ("none", "hold", "pingpong")
MAX_RUNNER_UPS = 3
# The slowest a clip is played (coordinator.footage.MIN_SPEED; a test keeps them equal, and the
# plan operations do not import the matcher's numpy/scipy).
MIN_SPEED = 0.5
# The source fields a scene's pixels depend on. The rest (the item's name, cost, why, runner-ups,
# reuse count) explain the choice; changing them renders nothing again.
_SOURCE_PIXEL_FIELDS = (
    "kind",
    "media_id",
    "key",
    "photo",
    "in_frame",
    "out_frame",
    "fps",
    "speed",
    "extend",
    "mirror",
    "move",
    "focus",
)
_MEDIA_DOC = "the media item: its name as listed in the plan's media (or its file name, or media_id)"


def _media_items(plan: Mapping[str, Any]) -> list[dict]:
    return list(plan.get("media") or [])


def find_media(plan: Mapping[str, Any], name: str, *, where: str = "media") -> dict:
    """The item of plan["media"] that `name` names: its name, its file name (with or without the
    extension, any case) or its media_id (or a prefix of at least 6 digits); else InputError."""
    items = _media_items(plan)
    if not items:
        raise InputError(
            f"{where}: the plan has no media items", hint="remake with --media DIR to use your own clips"
        )
    want = name.strip()
    low = want.lower()

    def base(n: str) -> str:
        return n.replace("\\", "/").rsplit("/", 1)[-1].lower()

    tests = (
        lambda it: it.get("name") == want,
        lambda it: it.get("media_id") == want,
        lambda it: str(it.get("name", "")).lower() == low,
        lambda it: base(str(it.get("name", ""))) == base(low),
        lambda it: base(str(it.get("name", ""))).rsplit(".", 1)[0] == base(low).rsplit(".", 1)[0],
        lambda it: len(low) >= 6 and str(it.get("media_id", "")).startswith(low),
    )
    for test in tests:
        hits = [it for it in items if test(it)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InputError(
                f"{where}: {name!r} matches {', '.join(str(it['name']) for it in hits)}",
                hint="give the item's full name as `lookalike plan show` lists it",
            )
    raise InputError(
        f"{where}: there is no media item {name!r}; the plan has {', '.join(str(it['name']) for it in items)}",
        hint="`lookalike plan show DIR` lists the media",
    )


def _item_by_id(plan: Mapping[str, Any], media_id: Any) -> dict | None:
    return next((it for it in _media_items(plan) if it.get("media_id") == media_id), None)


def _needed_frames(plan: Mapping[str, Any], scene: Mapping[str, Any], fps: float, speed: float) -> int:
    """Item frames a scene of n output frames shows at `speed` (t = in/fps + k * speed / F)."""
    return max(1, math.ceil(int(scene["n_frames"]) * speed * fps / _fps(dict(plan)) - 1e-9))


def _fit_source(plan: Mapping[str, Any], scene: Mapping[str, Any], src: dict, item: Mapping[str, Any]) -> None:
    """Size the source's range to the scene's length at its speed: out_frame follows, clamped to the
    item, and `extend` holds the last frame where the item is too short."""
    if src.get("photo"):
        src["in_frame"], src["out_frame"] = 0, 1
        src["extend"] = "hold"
        return
    n_item = int(item.get("n_frames") or src["out_frame"])
    need = _needed_frames(plan, scene, float(src["fps"]), float(src.get("speed") or 1.0))
    src["out_frame"] = min(n_item, int(src["in_frame"]) + need)
    if int(src["in_frame"]) + need > n_item and src.get("extend", "none") == "none":
        src["extend"] = "hold"
    elif int(src["in_frame"]) + need <= n_item and src.get("extend") not in ("hold", "pingpong"):
        src["extend"] = "none"


def _candidate(src: Mapping[str, Any]) -> dict:
    """A chosen source as a runner-up entry (so a later edit or the fix loop can go back to it)."""
    keep = ("media", "media_id", "shot", "in_frame", "out_frame", "speed", "mirror", "move", "focus")
    out = {k: src[k] for k in keep if k in src}
    out["cost"] = (src.get("cost") or {}).get("total")
    out["was_chosen"] = True
    return out


def _reuse_count(plan: Mapping[str, Any], index: int, media_id: Any) -> int:
    return sum(
        1
        for s in plan["scenes"][:index]
        if (s.get("source") or {}).get("kind") == "media" and s["source"].get("media_id") == media_id
    )


def set_scene_media(
    plan: dict,
    index: int,
    item: Mapping[str, Any],
    *,
    in_frame: int | None = None,
    why: str,
    where: str = "use_media",
) -> dict:
    """Make plan scene `index` show `item` (a plan["media"] entry), in place; returns the new source.

    The scene's runner-up for that item is taken when there is one (the one starting at `in_frame`
    when it is given), else the item from `in_frame` (default 0) at speed 1 for as many frames as
    the scene needs, holding the last frame when the item is too short. The source it replaces
    becomes the first runner-up."""
    scene = plan["scenes"][index]
    old = dict(scene.get("source") or {})
    n_item = int(item.get("n_frames") or 1)
    photo = item.get("kind") == "photo"
    if in_frame is not None and not 0 <= in_frame < n_item:
        raise InputError(
            f"{where}.in_frame: {item['name']} has frames 0-{n_item - 1}, not {in_frame}",
            hint="leave in_frame out to start where the matcher would",
        )
    runner_ups = [dict(r) for r in old.get("runner_ups") or []]
    same = [r for r in runner_ups if r.get("media_id") == item.get("media_id")]
    if in_frame is not None:
        same = [r for r in same if int(r.get("in_frame", -1)) == in_frame]
    taken = same[0] if same else None
    src: dict[str, Any] = {
        "kind": "media",
        "media": item["name"],
        "media_id": item.get("media_id"),
        "key": item.get("key"),
        "photo": photo,
        "shot": taken.get("shot") if taken else (0 if photo else None),
        "in_frame": 0 if photo else int(taken["in_frame"] if taken else in_frame or 0),
        "out_frame": int(taken["out_frame"]) if taken else 1,
        "fps": float(item.get("fps") or old.get("fps") or _fps(plan)),
        "speed": float(taken.get("speed", 1.0)) if taken else 1.0,
        "extend": "hold" if photo else "none",
        "mirror": bool(taken.get("mirror", False)) if taken else False,
        "move": (taken.get("move") if taken else None) or ("synth" if photo else "none"),
        "focus": list((taken or {}).get("focus") or [0.5, 0.5]),
        "cost": {"total": taken.get("cost")} if taken else {},
        "why": why,
    }
    if taken is None or photo:
        _fit_source(plan, scene, src, item)
    else:
        # A runner-up's range was placed for the speed the matcher found; where it is shorter than
        # real time needs, that speed was a slow-down (down to MIN_SPEED), and a hold fills the rest.
        have = int(src["out_frame"]) - int(src["in_frame"])
        if "speed" not in taken:
            need = _needed_frames(plan, scene, src["fps"], 1.0)
            src["speed"] = round(max(MIN_SPEED, min(1.0, have / need)), 4)
        if have < _needed_frames(plan, scene, src["fps"], src["speed"]):
            src["extend"] = "hold"
    rest = [r for r in runner_ups if r is not taken]
    if old.get("kind") == "media":
        rest.insert(0, _candidate(old))
    src["runner_ups"] = rest[:MAX_RUNNER_UPS]
    src["reused"] = _reuse_count(plan, index, src["media_id"])
    scene["source"] = src
    return src


def _sourced(plan: dict, op: PlanOp, index: int, field_name: str) -> dict:
    s = _scene(plan, op, index, field_name)
    if not isinstance(s.get("source"), Mapping):
        raise InputError(
            f"{op.name}.{field_name}: scene {index + 1} has no source (the plan was not made with --media)",
            hint="remake with --media DIR to use your own clips",
        )
    return s


@dataclass(frozen=True)
class UseMedia(PlanOp):
    """Make a scene show one of the user's media items."""

    name: ClassVar[str] = "use_media"
    doc: ClassVar[str] = (
        "Make one scene show one of the user's clips or photos (plan media, by name). It takes the "
        "matcher's runner-up range for that item when there is one, else the item from in_frame "
        "(default 0) at real speed for the scene's length, holding the last frame if the item is "
        "too short. The scene keeps its length, camera and grade."
    )
    scene: int = _f(_SCENE_DOC, min=0)
    media: str = _f(_MEDIA_DOC, min_len=1, max_len=500)
    in_frame: int | None = _f("first item frame to show (default: the matcher's range, else 0)", None, min=0)

    def _apply(self, plan: dict) -> None:
        _scene(plan, self, self.scene)
        item = find_media(plan, self.media, where=f"{self.name}.media")
        if item.get("excluded"):
            raise InputError(
                f"{self.name}.media: {item['name']} is excluded",
                hint=f"include it again first (include_media), e.g. 'use {item['name']} again'",
            )
        set_scene_media(plan, self.scene, item, in_frame=self.in_frame, why="chosen by the user (use_media)")


@dataclass(frozen=True)
class SwapSources(PlanOp):
    """Two scenes exchange what their pictures are made from."""

    name: ClassVar[str] = "swap_sources"
    doc: ClassVar[str] = (
        "Exchange the sources (the user's clip or photo, or generated) of two scenes; each keeps its "
        "place, length, camera and grade, and the clip's range is refitted to the scene's length."
    )
    a: int = _f(_SCENE_DOC, min=0)
    b: int = _f("0-based index of the other scene", min=0)

    def _check(self) -> None:
        if self.a == self.b:
            raise InputError(f"{self.name}.b: a scene cannot swap sources with itself (both are {self.a})")

    def _apply(self, plan: dict) -> None:
        sa, sb = _sourced(plan, self, self.a, "a"), _sourced(plan, self, self.b, "b")
        sa["source"], sb["source"] = copy.deepcopy(sb["source"]), copy.deepcopy(sa["source"])
        for i, s in ((self.a, sa), (self.b, sb)):
            src = s["source"]
            if src.get("kind") != "media":
                continue
            item = _item_by_id(plan, src.get("media_id")) or {"n_frames": src.get("out_frame")}
            _fit_source(plan, s, src, item)
            src["reused"] = _reuse_count(plan, i, src.get("media_id"))


@dataclass(frozen=True)
class ExcludeMedia(PlanOp):
    """"Don't use X": the item is left out, and the scenes that showed it take their next best."""

    name: ClassVar[str] = "exclude_media"
    doc: ClassVar[str] = (
        "Stop using one of the user's media items: every scene that shows it takes its best runner-up "
        "from another item, else becomes generated. include_media undoes it."
    )
    media: str = _f(_MEDIA_DOC, min_len=1, max_len=500)

    def _apply(self, plan: dict) -> None:
        item = find_media(plan, self.media, where=f"{self.name}.media")
        item["excluded"] = True
        off = {it.get("media_id") for it in _media_items(plan) if it.get("excluded")}
        for i, s in enumerate(_scenes(plan)):
            src = s.get("source") or {}
            if src.get("kind") != "media" or src.get("media_id") != item.get("media_id"):
                continue
            displaced = {k: v for k, v in src.items() if k != "displaced"}
            fits = [
                r
                for r in src.get("runner_ups") or []
                if r.get("media_id") not in off and _item_by_id(plan, r.get("media_id")) is not None
            ]
            why = f"{item['name']} is excluded"
            if fits:
                best = min(fits, key=lambda r: float(r["cost"]) if r.get("cost") is not None else math.inf)
                new = set_scene_media(
                    plan,
                    i,
                    _item_by_id(plan, best["media_id"]) or {},
                    in_frame=int(best["in_frame"]),
                    why=f"runner-up: {why}",
                    where=self.name,
                )
                new["runner_ups"] = [r for r in new["runner_ups"] if r.get("media_id") not in off]
            else:
                s["source"] = new = {
                    "kind": "generated",
                    "why": f"no media fits: {why} and no runner-up from another item is left",
                    "runner_ups": [r for r in src.get("runner_ups") or [] if r.get("media_id") not in off],
                }
            # What include_media puts back, exactly: the scene then renders as it did before.
            new["displaced"] = displaced


@dataclass(frozen=True)
class IncludeMedia(PlanOp):
    """Undo exclude_media: the item may be used again, and the scenes it was taken from get it back."""

    name: ClassVar[str] = "include_media"
    doc: ClassVar[str] = (
        "Allow an excluded media item again; the scenes that showed it before it was excluded show it again."
    )
    media: str = _f(_MEDIA_DOC, min_len=1, max_len=500)

    def _apply(self, plan: dict) -> None:
        item = find_media(plan, self.media, where=f"{self.name}.media")
        item["excluded"] = False
        for s in _scenes(plan):
            back = (s.get("source") or {}).get("displaced")
            if isinstance(back, Mapping) and back.get("media_id") == item.get("media_id"):
                s["source"] = copy.deepcopy(dict(back))


OPS: dict[str, type[PlanOp]] = {
    cls.name: cls
    for cls in (
        SetGrade,
        AdjustGrade,
        SetDuration,
        SetCamera,
        SwapScenes,
        MoveScene,
        InsertScene,
        DeleteScene,
        SetPrompt,
        SetProvider,
        SetVoiceLine,
        ClearVoiceLines,
        AddSfx,
        SetMusic,
        SetTransition,
        SetEffect,
        UseMedia,
        SwapSources,
        ExcludeMedia,
        IncludeMedia,
    )
}


# ---------------------------------------------------------------- (de)serialization


def op_from_dict(d: Mapping[str, Any]) -> PlanOp:
    """An operation from {"op": name, field: value, ...}; unknown names or fields are InputErrors."""
    if not isinstance(d, Mapping):
        raise InputError(f"an operation is a JSON object with an 'op' field, got {type(d).__name__}")
    name = d.get("op")
    cls = OPS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise InputError(f"unknown operation {name!r}", hint=f"known operations: {', '.join(OPS)}")
    return op_from_args(cls.name, {k: v for k, v in d.items() if k != "op"})


def op_from_args(name: str, args: Mapping[str, Any]) -> PlanOp:
    """An operation from its name and arguments (what a tool call carries)."""
    cls = OPS.get(name)
    if cls is None:
        raise InputError(f"unknown operation {name!r}", hint=f"known operations: {', '.join(OPS)}")
    if not isinstance(args, Mapping):
        raise InputError(f"{name}: arguments must be a JSON object")
    known = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(args) - known)
    if extra:
        raise InputError(f"{name}.{extra[0]}: no such field", hint=f"{name} takes {', '.join(sorted(known))}")
    missing = [
        f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.name not in args
    ]
    if missing:
        raise InputError(f"{name}.{missing[0]} is required")
    return cls(**args)


def ops_to_json(ops: Iterable[PlanOp]) -> str:
    return json.dumps([op.to_dict() for op in ops])


def ops_from_json(text: str | bytes) -> list[PlanOp]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"operations are not valid JSON: {exc}") from exc
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list):
        raise InputError("operations are a JSON list of objects with an 'op' field")
    return [op_from_dict(d) for d in data]


def tool_schemas() -> list[dict[str, Any]]:
    """Every operation as {name, description, input_schema}: the tools an LLM may call."""
    return [
        {"name": cls.name, "description": cls.doc, "input_schema": cls.json_schema()} for cls in OPS.values()
    ]


# ---------------------------------------------------------------- apply


def _with_ids(plan: dict) -> None:
    for i, s in enumerate(_scenes(plan)):
        s.setdefault("id", f"s{s.get('index', i)}")
        s.setdefault("n_frames", int(s["end_frame"]) - int(s["start_frame"]))


def _check_plan(plan: Any) -> None:
    if not isinstance(plan, Mapping) or not isinstance(plan.get("scenes"), list) or not plan["scenes"]:
        raise InputError('a plan is a JSON object with a non-empty "scenes" list (plan.json)')
    for i, s in enumerate(plan["scenes"]):
        if not isinstance(s, Mapping) or "start_frame" not in s or "end_frame" not in s:
            raise InputError(f"plan scene {i} needs start_frame and end_frame")


def normalize(plan: dict) -> dict:
    """Make `plan` consistent in place (see the module doc) and return it."""
    fps = _fps(plan)
    pos = 0
    scenes = _scenes(plan)
    for i, s in enumerate(scenes):
        n = int(s["n_frames"])
        old_start, old_end = int(s["start_frame"]), int(s["end_frame"])
        shift = pos - old_start
        s["index"] = i
        s["start_frame"], s["end_frame"] = pos, pos + n
        if pos != old_start or s.get("start_s") is None:
            s["start_s"] = round(pos / fps, 6)
        if pos + n != old_end or s.get("end_s") is None:
            s["end_s"] = round((pos + n) / fps, 6)
        cam = s.setdefault("camera", {"motion": "static"})
        traj = cam.get("trajectory") or []
        if len(traj) != n:
            cam["trajectory"] = _resample(traj, n) if traj else [[0.0, 0.0, 1.0, 0.0] for _ in range(n)]
        _fix_transition(s, i, shift, scenes[i - 1] if i else None, pos)
        for line in (s.get("audio") or {}).get("voice_lines", []):
            line["start_s"] = round(s["start_s"] + float(line.get("offset_s", 0.0)), 6)
        pos += n
    fmt = plan.setdefault("format", {})
    if fmt.get("n_frames") != pos or fmt.get("duration_s") is None:
        fmt["n_frames"] = pos
        fmt["duration_s"] = round(pos / fps, 6)
    return plan


def _fix_transition(s: dict, i: int, shift: int, prev: dict | None, start: int) -> None:
    t = dict(s.get("transition_in") or {"kind": "cut"})
    kind = t.get("kind", "cut")
    # The first scene has nothing to cut or dissolve from; a later one always has.
    if i == 0 and kind in ("cut", "dissolve"):
        kind = "none"
    elif i > 0 and kind == "none":
        kind = "cut"
    a = int(t.get("start_frame", start - shift)) + shift
    b = int(t.get("end_frame", start - shift)) + shift
    if kind in ("cut", "none"):
        a = b = start
    else:
        lo = int(prev["start_frame"]) + 1 if prev is not None else 0
        a, b = max(a, lo), min(b, start + int(s["n_frames"]))
        if b - a < 2 or not a <= start <= b:
            kind, a, b = ("cut", start, start) if i else ("none", start, start)
    t.update(kind=kind, start_frame=a, end_frame=b)
    s["transition_in"] = t


def _normalized(plan: Mapping[str, Any]) -> dict:
    _check_plan(plan)
    out = copy.deepcopy(dict(plan))
    _with_ids(out)
    return normalize(out)


def apply(plan: Mapping[str, Any], ops: Sequence[PlanOp]) -> dict:
    """A new plan with `ops` applied in order; `plan` itself is never changed.

    All or nothing: the first operation that does not fit raises InputError and nothing is applied.
    """
    new = _normalized(plan)
    new.setdefault("next_scene_id", len(new["scenes"]))
    for op in ops:
        if not isinstance(op, PlanOp):
            raise InputError(f"not a plan operation: {op!r}", hint="build operations with op_from_dict")
        op._apply(new)
        normalize(new)
    return new


# ---------------------------------------------------------------- diff and affected scenes


@dataclass(frozen=True)
class Change:
    """One difference between two plans. `scene` is the scene's id; indices are 0-based."""

    kind: str  # scene_added, scene_removed, scene_moved, scene_changed, plan_changed
    scene: str | None = None
    field: str | None = None
    old: Any = None
    new: Any = None
    old_index: int | None = None
    new_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def describe(self) -> str:
        where = (
            f"scene {self.new_index + 1}"
            if self.new_index is not None
            else (f"scene {self.old_index + 1}" if self.old_index is not None else "plan")
        )
        if self.kind == "scene_added":
            return f"{where} added ({self.scene})"
        if self.kind == "scene_removed":
            return f"{where} removed ({self.scene})"
        if self.kind == "scene_moved" and self.old_index is not None and self.new_index is not None:
            return f"scene {self.old_index + 1} moved to position {self.new_index + 1} ({self.scene})"
        return f"{where}: {self.field}: {_short(self.old)} -> {_short(self.new)}"


def _short(v: Any) -> str:
    if isinstance(v, list) and len(v) > 6:
        return f"[{len(v)} items]"
    text = json.dumps(v)
    return text if len(text) <= 80 else text[:77] + "..."


# Derived fields that follow from order and lengths: reported through moves and n_frames instead.
_DERIVED = {"index", "start_frame", "end_frame", "start_s", "end_s"}


def _flat(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _flat(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = value


def _candidate_label(c: Any) -> Any:
    if not isinstance(c, Mapping):
        return c
    return f"{c.get('media')} {c.get('in_frame')}-{c.get('out_frame')}"


def _source_fields(src: Mapping[str, Any]) -> dict[str, Any]:
    """A source as diff fields: one line per pixel field, the cost as its total, the runner-ups and
    the displaced source by item and range (their own details explain, they do not render)."""
    out = {k: v for k, v in src.items() if k not in ("cost", "runner_ups", "displaced")}
    if "cost" in src:
        out["cost"] = (src.get("cost") or {}).get("total")
    if "runner_ups" in src:
        out["runner_ups"] = [_candidate_label(c) for c in src.get("runner_ups") or []]
    if "displaced" in src:
        out["displaced"] = _candidate_label(src["displaced"])
    return out


def _scene_fields(s: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    body = {k: v for k, v in s.items() if k not in _DERIVED and k != "id"}
    if isinstance(body.get("source"), Mapping):
        body["source"] = _source_fields(body["source"])
    _flat(body, "", out)
    t = s.get("transition_in") or {}
    # A transition is compared relative to its scene's start, so a moved scene shows no change.
    for k in ("transition_in.start_frame", "transition_in.end_frame"):
        if k in out and out[k] is not None:
            out[k] = int(out[k]) - int(s["start_frame"])
    if "start_s" in t:
        out.pop("transition_in.start_s", None)
    for line_key in ("audio.voice_lines",):
        if isinstance(out.get(line_key), list):
            out[line_key] = [{k: v for k, v in ln.items() if k != "start_s"} for ln in out[line_key]]
    return out


def _ids(plan: Mapping[str, Any]) -> list[str]:
    return [s.get("id") or f"s{s.get('index', i)}" for i, s in enumerate(plan["scenes"])]


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """What changed from `old` to `new`: scenes added, removed, moved, and changed field by field.

    Both plans are compared in their normalized form, so fields that `apply` merely fills in (a
    cut's frame range, scene ids) are not reported as changes."""
    old, new = _normalized(old), _normalized(new)
    changes: list[Change] = []
    old_ids, new_ids = _ids(old), _ids(new)
    old_by = dict(zip(old_ids, old["scenes"], strict=True))
    new_by = dict(zip(new_ids, new["scenes"], strict=True))
    for i, sid in enumerate(old_ids):
        if sid not in new_by:
            changes.append(Change("scene_removed", sid, old_index=i))
    # A scene "moved" when its place among the scenes both plans share changed, not merely because
    # one before it was inserted or deleted.
    shared_old = [s for s in old_ids if s in new_by]
    shared_new = [s for s in new_ids if s in old_by]
    for j, sid in enumerate(new_ids):
        if sid not in old_by:
            changes.append(Change("scene_added", sid, new_index=j))
            continue
        i = old_ids.index(sid)
        if shared_old.index(sid) != shared_new.index(sid):
            changes.append(Change("scene_moved", sid, old_index=i, new_index=j))
        a, b = _scene_fields(old_by[sid]), _scene_fields(new_by[sid])
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                changes.append(Change("scene_changed", sid, key, a.get(key), b.get(key), i, j))
    ta: dict[str, Any] = {}
    tb: dict[str, Any] = {}
    _flat({k: v for k, v in old.items() if k not in ("scenes", *META_KEYS)}, "", ta)
    _flat({k: v for k, v in new.items() if k not in ("scenes", *META_KEYS)}, "", tb)
    for key in sorted(set(ta) | set(tb)):
        if ta.get(key) != tb.get(key):
            changes.append(Change("plan_changed", None, key, ta.get(key), tb.get(key)))
    return changes


# What a scene's pixels depend on. Its place in the timeline is not among them: the renderer draws
# frame k of a scene from pose k of its trajectory, wherever the scene starts.
_RENDER_FIELDS = (
    "n_frames",
    "camera",
    "palette",
    "grade",
    "prompt",
    "provider",
    "model",
    "seed",
    "effects",
    "subject",
)


def _source_view(s: Mapping[str, Any]) -> dict[str, Any] | None:
    src = s.get("source")
    if not isinstance(src, Mapping):
        return None
    return {k: src.get(k) for k in _SOURCE_PIXEL_FIELDS if k in src}


def _base_key(plan: Mapping[str, Any], s: Mapping[str, Any]) -> str:
    fmt = plan.get("format") or {}
    body = {k: s.get(k) for k in _RENDER_FIELDS}
    # Footage plans only (docs/footage.md): a plan without them keeps the keys it always had.
    if s.get("source") is not None:
        body["source"] = _source_view(s)
    if s.get("overlays"):
        body["overlays"] = s.get("overlays")
    body["format"] = [
        fmt.get("width"),
        fmt.get("height"),
        fmt.get("fps_num"),
        fmt.get("fps_den"),
        fmt.get("fps"),
    ]
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _transition_rel(s: Mapping[str, Any]) -> list[Any]:
    t = s.get("transition_in") or {}
    start = int(s["start_frame"])
    # "none" (the first scene) and "cut" draw the same frames: a scene moved to or from the front
    # keeps its pixels.
    kind = "cut" if t.get("kind", "cut") == "none" else t.get("kind", "cut")
    return [kind, int(t.get("start_frame", start)) - start, int(t.get("end_frame", start)) - start]


def render_keys(plan: Mapping[str, Any]) -> list[str]:
    """A key per scene that changes exactly when the scene's frames must be rendered again.

    It covers the scene's own render inputs and its transitions: a dissolve or fade blends the
    neighbour across the boundary, so a scene re-renders when the neighbour it blends with changes.
    """
    plan = _normalized(plan)
    scenes = plan["scenes"]
    bases = [_base_key(plan, s) for s in scenes]
    keys = []
    for i, s in enumerate(scenes):
        body: list[Any] = [bases[i], _transition_rel(s)]
        if i > 0 and _transition_rel(s)[0] not in ("cut", "none"):
            body.append(["in", bases[i - 1]])
        if i + 1 < len(scenes) and _transition_rel(scenes[i + 1])[0] not in ("cut", "none"):
            body.append(["out", _transition_rel(scenes[i + 1]), bases[i + 1]])
        keys.append(hashlib.sha256(json.dumps(body).encode()).hexdigest()[:32])
    return keys


def reusable_scenes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[int, int]:
    """{new index: old index} for scenes of `new` whose frames `old` already rendered (same render
    key), perhaps at another place in the timeline."""
    old_keys = {k: i for i, k in reversed(list(enumerate(render_keys(old))))}
    return {j: old_keys[k] for j, k in enumerate(render_keys(new)) if k in old_keys}


def affected_scenes(
    old: Mapping[str, Any], new: Mapping[str, Any], *, include_moved: bool = False
) -> set[int]:
    """Indices in `new` of the scenes whose frames must be rendered again after the edit old -> new.

    A scene that only moved (a swap, or a change before it) keeps its pixels and is left out: its
    segments can be reused (`reusable_scenes` maps it to its old index). With include_moved=True a
    scene whose frame range changed counts as affected too, for callers that key rendered segments
    by frame range.
    """
    reuse = reusable_scenes(old, new)
    out = {j for j in range(len(new["scenes"])) if j not in reuse}
    if include_moved:
        for j, i in reuse.items():
            a, b = old["scenes"][i], new["scenes"][j]
            if (a["start_frame"], a["end_frame"]) != (b["start_frame"], b["end_frame"]):
                out.add(j)
    return out


def audio_affected(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether the timeline's audio (music, voice, effects, mixed once) must be rendered again."""

    def audio_view(p: Mapping[str, Any]) -> Any:
        view = [
            p.get("music"),
            (p.get("format") or {}).get("n_frames"),
            [[s["start_frame"], s["end_frame"], s.get("audio")] for s in p["scenes"]],
        ]
        # With the clips' own sound under the music, a scene's source is part of the mix.
        if (p.get("music") or {}).get("keep_media_audio"):
            view.append([_source_view(s) for s in p["scenes"]])
        return view

    return audio_view(old) != audio_view(new)
