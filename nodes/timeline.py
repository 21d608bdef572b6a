"""The remake as an OpenTimelineIO timeline (`timeline.otio`), so editors can open and re-cut it.

One video clip per plan scene, each a range of the final file (frames in the final's own numbering,
so the clip ranges sum to its frame count), named after the scene with its prompt, provider and the
sample scene it remakes as metadata under "lookalike". Where the plan has a dissolve or a fade, an
OTIO Transition sits between the clips with its frames on each side of the cut (the plan centres a
dissolve on the boundary). Transitions do not consume track time in OTIO, so the clip ranges still
sum to the frame count; the dissolve itself is already rendered into the final file. One audio clip
covers the whole timeline (the mix is one piece, never split by scene), with the sample's beats as
markers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from lookalike.errors import InputError

__all__ = ["write_otio"]

_TRANSITIONS = {
    "dissolve": otio.schema.TransitionTypes.SMPTE_Dissolve,
    "fade": otio.schema.TransitionTypes.Custom,
}


def _fps(plan: Mapping[str, Any], analysis: Mapping[str, Any]) -> float:
    fmt = plan.get("format") or {}
    if fmt.get("fps_num") and fmt.get("fps_den"):
        return float(Fraction(int(fmt["fps_num"]), int(fmt["fps_den"])))
    fps = fmt.get("fps") or (analysis.get("source") or {}).get("fps")
    if not fps or float(fps) <= 0:
        raise InputError(
            "the plan has no frame rate (format.fps)", hint="make the plan from an analysis again"
        )
    return float(fps)


def _rt(frames: float, rate: float) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, rate)


def write_otio(
    plan: Mapping[str, Any],
    analysis: Mapping[str, Any],
    media_name: str,
    out_path: str | os.PathLike[str],
) -> otio.schema.Timeline:
    """Write the plan's scenes over `media_name` (the final file, as the editor should find it:
    usually a path relative to the .otio) to `out_path` atomically; returns the timeline.

    Raises InputError when the plan's scenes do not tile [0, n_frames) of the final contiguously.
    """
    rate = _fps(plan, analysis)
    scenes = sorted(plan.get("scenes") or [], key=lambda s: int(s["start_frame"]))
    if not scenes:
        raise InputError("the plan has no scenes to put on a timeline", hint="make the plan again")
    n_frames = int((plan.get("format") or {}).get("n_frames") or scenes[-1]["end_frame"])
    expected = 0
    for s in scenes:
        if int(s["start_frame"]) != expected or int(s["end_frame"]) <= int(s["start_frame"]):
            raise InputError(
                f"plan scene {s.get('index')} covers frames [{s['start_frame']}, {s['end_frame']}), "
                f"but the previous scene ends at frame {expected}",
                hint="scenes must follow each other without gaps or overlaps; undo the last edit",
            )
        expected = int(s["end_frame"])
    if expected != n_frames:
        raise InputError(f"the plan's scenes end at frame {expected}, but the final has {n_frames} frames")

    available = otio.opentime.TimeRange(_rt(0, rate), _rt(n_frames, rate))
    sample_scenes = {int(s["index"]): s for s in analysis.get("scenes") or []}
    timeline = otio.schema.Timeline(name=str(plan.get("name") or Path(media_name).stem))
    timeline.global_start_time = _rt(0, rate)
    timeline.metadata["lookalike"] = {"plan_version": plan.get("version"), "schema": plan.get("schema")}
    video = otio.schema.Track(name="Video", kind=otio.schema.TrackKind.Video)
    for i, s in enumerate(scenes):
        t = s.get("transition_in") or {}
        kind = t.get("kind", "cut")
        if i > 0 and kind in _TRANSITIONS and int(t.get("end_frame", 0)) > int(t.get("start_frame", 0)):
            boundary = int(s["start_frame"])
            video.append(
                otio.schema.Transition(
                    name=f"{kind} into scene {s.get('index')}",
                    transition_type=_TRANSITIONS[kind],
                    in_offset=_rt(max(0, boundary - int(t["start_frame"])), rate),
                    out_offset=_rt(max(0, int(t["end_frame"]) - boundary), rate),
                    metadata={"lookalike": {"kind": kind}},
                )
            )
        sample = sample_scenes.get(int(s.get("source_index", -1)), {})
        clip = otio.schema.Clip(
            name=f"Scene {int(s.get('index', i)) + 1}",
            media_reference=otio.schema.ExternalReference(target_url=media_name, available_range=available),
            source_range=otio.opentime.TimeRange(
                _rt(int(s["start_frame"]), rate), _rt(int(s["end_frame"]) - int(s["start_frame"]), rate)
            ),
            metadata={
                "lookalike": {
                    "index": s.get("index"),
                    "id": s.get("id"),
                    "prompt": s.get("prompt"),
                    "provider": s.get("provider"),
                    "model": s.get("model"),
                    "seed": s.get("seed"),
                    "transition_in": dict(t),
                    "camera_motion": (s.get("camera") or {}).get("motion"),
                    "grade": s.get("grade"),
                    "effects": s.get("effects"),
                    "sample_scene": {
                        "index": sample.get("index"),
                        "start_s": sample.get("start_s"),
                        "end_s": sample.get("end_s"),
                    },
                }
            },
        )
        video.append(clip)
    timeline.tracks.append(video)

    audio = otio.schema.Track(name="Mix", kind=otio.schema.TrackKind.Audio)
    mix = otio.schema.Clip(
        name="Mix (music, voice, effects)",
        media_reference=otio.schema.ExternalReference(target_url=media_name, available_range=available),
        source_range=available,
        metadata={"lookalike": {"music": plan.get("music")}},
    )
    for beat in (analysis.get("audio") or {}).get("beats_s") or []:
        frame = round(float(beat) * rate)
        if 0 <= frame < n_frames:
            mix.markers.append(
                otio.schema.Marker(
                    name="beat", marked_range=otio.opentime.TimeRange(_rt(frame, rate), _rt(0, rate))
                )
            )
    audio.append(mix)
    timeline.tracks.append(audio)

    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        tmp.write_text(otio.adapters.write_to_string(timeline, "otio_json"))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return timeline
