"""Scene boundaries moved onto the beats of the user's music track (docs/footage.md, "Text, music,
voice").

A sample that cuts on the beat is remade to cut on the beat of the track the user brought, whose
beats fall elsewhere than the sample's. Each boundary (every scene's start after the first) moves to
the track's nearest beat when that beat is at most `max_shift_frames` away; further than that the
move would change the scene's length more than the beat is worth, and the boundary stays. The first
scene's start and the last scene's end never move, so the timeline keeps its length.

Pure: plans in, plans out, the given plan never changed. The result is consistent in the sense of
`plan_ops` (scenes start where the previous ends, one camera pose per frame, transitions on their
boundary), made with plan_ops' own helpers so the two cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lookalike.coordinator import plan_ops

__all__ = ["BEAT_SNAP_FRAMES", "CUTS_ON_BEAT_THRESHOLD", "MIN_SCENE_FRAMES", "snap_to_beats"]

BEAT_SNAP_FRAMES = 6
"""The furthest a boundary moves to reach a beat: a quarter second at 24 fps, half a beat at 120 BPM,
so at common tempos nearly every boundary finds a beat while no scene changes length noticeably."""

CUTS_ON_BEAT_THRESHOLD = 0.5
"""The sample's `pacing.cuts_on_beat_ratio` from which it counts as cutting on the beat: from half its
cuts on a beat (within the analysis's 80 ms) the beat is a choice of the editor's, not chance."""

MIN_SCENE_FRAMES = 6
"""No move leaves a scene shorter than this (or than it was, if it was shorter already)."""


def snap_to_beats(
    plan: dict,
    beats_s: Sequence[float],
    *,
    sample_cuts_on_beat: float | None,
    max_shift_frames: int = BEAT_SNAP_FRAMES,
) -> tuple[dict, list[dict]]:
    """`plan` with its scene boundaries on the beats `beats_s` (seconds) of the user's track, and the
    moves made: [{"scene": index of the scene that now starts elsewhere, "from_frame", "to_frame"}].

    Nothing moves when `sample_cuts_on_beat` (the sample analysis's `pacing.cuts_on_beat_ratio`) is
    None or under CUTS_ON_BEAT_THRESHOLD, or when the track has no beats. Boundaries are taken in
    order; each goes to the nearest beat within `max_shift_frames` that keeps both scenes beside it
    at least MIN_SCENE_FRAMES long (a scene already shorter is never shortened further). A boundary
    already on a beat's frame is not reported. Scenes that change length get their camera path
    resampled onto the new frame count; their transitions move with their boundary. The returned plan
    also lists the moves under "boundary_shifts".
    """
    new = plan_ops._normalized(plan)
    moves: list[dict] = []
    new["boundary_shifts"] = moves
    if sample_cuts_on_beat is None or sample_cuts_on_beat < CUTS_ON_BEAT_THRESHOLD or not beats_s:
        return new, moves
    scenes = new["scenes"]
    total = int(new["format"]["n_frames"])
    fps = plan_ops._fps(new)
    beat_frames = sorted({round(float(t) * fps) for t in beats_s if math.isfinite(float(t))})
    beat_frames = [b for b in beat_frames if 0 < b < total]
    if not beat_frames or len(scenes) < 2:
        return new, moves

    old_bounds = [int(s["start_frame"]) for s in scenes] + [total]
    new_bounds = list(old_bounds)
    for i in range(1, len(scenes)):
        here = old_bounds[i]
        # The scene before has its final start already; the one after still has its old end.
        lo = new_bounds[i - 1] + min(MIN_SCENE_FRAMES, here - old_bounds[i - 1])
        hi = old_bounds[i + 1] - min(MIN_SCENE_FRAMES, old_bounds[i + 1] - here)
        fits = [b for b in beat_frames if abs(b - here) <= max_shift_frames and lo <= b <= hi]
        if fits:
            to = min(fits, key=lambda b: (abs(b - here), b))
            new_bounds[i] = to
            if to != here:
                moves.append({"scene": i, "from_frame": here, "to_frame": to})
    if not moves:
        return new, moves
    for i, s in enumerate(scenes):
        plan_ops._set_n_frames(new, s, new_bounds[i + 1] - new_bounds[i], retime_camera=True)
    plan_ops.normalize(new)
    return new, moves
