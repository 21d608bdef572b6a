"""Beat snapping: boundaries go to the user's track's nearest beat within the limit, only when the
sample cuts on beats, and the plan stays consistent with the timeline's length unchanged."""

from __future__ import annotations

import copy
import math

import pytest
from lookalike.coordinator import beats, planner
from lookalike.coordinator import plan_ops as po

FPS = 24.0


def _analysis(cuts, n, dissolve_at=()):
    bounds = [0, *cuts, n]
    scenes = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        kind = "dissolve" if a in dissolve_at else ("cut" if i else "none")
        half = 4 if kind == "dissolve" else 0
        scenes.append(
            {
                "index": i,
                "start_frame": a,
                "end_frame": b,
                "start_s": a / FPS,
                "end_s": b / FPS,
                "transition_in": {"kind": kind, "start_frame": a - half, "end_frame": a + half},
                "palette": [{"rgb": [10 * i, 20, 30], "weight": 1.0}],
                "grade": {"exposure": 0.0, "contrast": 1.0, "saturation": 1.0, "temperature": 0.0},
                "camera": {
                    "motion": "pan_right",
                    "speed": 0.1,
                    "trajectory": [[0.1 * k / FPS, 0.0, 1.0, 0.0] for k in range(b - a)],
                },
            }
        )
    return {
        "source": {
            "width": 640,
            "height": 360,
            "fps": FPS,
            "fps_num": int(FPS),
            "fps_den": 1,
            "n_frames": n,
            "duration_s": n / FPS,
        },
        "scenes": scenes,
        "audio": {"tempo_bpm": 120.0, "key": "A minor", "lufs": -16.0},
    }


@pytest.fixture
def plan():
    """Five scenes at 24 fps with boundaries at frames 50, 103, 160 (a dissolve) and 230, of 300."""
    return planner.make_plan(_analysis([50, 103, 160, 230], 300, dissolve_at=(160,)), seed=3)


# A 100 BPM track whose first beat is at 0.31 s: beats every 0.6 s, off the sample's grid.
TRACK_BEATS = [0.31 + 0.6 * k for k in range(21)]


def _bounds(p):
    return [s["start_frame"] for s in p["scenes"][1:]]


def test_boundaries_land_on_beats_within_the_limit(plan):
    new, moves = beats.snap_to_beats(plan, TRACK_BEATS, sample_cuts_on_beat=0.8)
    assert moves, "a track off the sample's grid moves boundaries"
    for m in moves:
        assert abs(m["to_frame"] - m["from_frame"]) <= beats.BEAT_SNAP_FRAMES
        t = m["to_frame"] / FPS
        assert min(abs(t - b) for b in TRACK_BEATS) <= 0.5 / FPS + 1e-9  # on a beat to the frame
        assert new["scenes"][m["scene"]]["start_frame"] == m["to_frame"]
    moved = {m["scene"] for m in moves}
    for i, (a, b) in enumerate(zip(_bounds(plan), _bounds(new), strict=True), start=1):
        if i not in moved:
            assert a == b
    assert new["boundary_shifts"] == moves


def test_a_beat_beyond_the_limit_leaves_the_boundary(plan):
    # One beat only, 10 frames after the first boundary: out of reach of every boundary at limit 6.
    new, moves = beats.snap_to_beats(plan, [60 / FPS], sample_cuts_on_beat=1.0)
    assert moves == [] and _bounds(new) == _bounds(plan)
    new, moves = beats.snap_to_beats(plan, [60 / FPS], sample_cuts_on_beat=1.0, max_shift_frames=10)
    assert moves == [{"scene": 1, "from_frame": 50, "to_frame": 60}]


@pytest.mark.parametrize("ratio", [None, 0.0, beats.CUTS_ON_BEAT_THRESHOLD - 0.01])
def test_nothing_moves_when_the_sample_does_not_cut_on_beats(plan, ratio):
    new, moves = beats.snap_to_beats(plan, TRACK_BEATS, sample_cuts_on_beat=ratio)
    assert moves == []
    assert new["scenes"] == plan["scenes"]


def test_no_beats_moves_nothing(plan):
    assert beats.snap_to_beats(plan, [], sample_cuts_on_beat=1.0)[1] == []


def test_the_plan_stays_consistent_and_the_input_untouched(plan):
    before = copy.deepcopy(plan)
    new, moves = beats.snap_to_beats(plan, TRACK_BEATS, sample_cuts_on_beat=0.9)
    assert plan == before
    assert moves
    assert new["format"]["n_frames"] == plan["format"]["n_frames"] == 300
    assert new["scenes"][0]["start_frame"] == 0 and new["scenes"][-1]["end_frame"] == 300
    assert sum(s["n_frames"] for s in new["scenes"]) == 300
    assert po.normalize(copy.deepcopy(new)) == new
    pos = 0
    for s in new["scenes"]:
        assert s["start_frame"] == pos and s["end_frame"] == pos + s["n_frames"]
        assert math.isclose(s["start_s"], s["start_frame"] / FPS, abs_tol=1e-5)
        assert math.isclose(s["end_s"], s["end_frame"] / FPS, abs_tol=1e-5)
        assert len(s["camera"]["trajectory"]) == s["n_frames"]
        pos = s["end_frame"]


def test_trajectories_keep_their_path_on_the_new_length(plan):
    new, moves = beats.snap_to_beats(plan, TRACK_BEATS, sample_cuts_on_beat=0.9)
    for old_s, new_s in zip(plan["scenes"], new["scenes"], strict=True):
        old_t, new_t = old_s["camera"]["trajectory"], new_s["camera"]["trajectory"]
        assert len(new_t) == new_s["n_frames"]
        assert new_t[0] == pytest.approx(old_t[0], abs=1e-6)
        assert new_t[-1] == pytest.approx(old_t[-1], abs=1e-6)  # the same path, end to end


def test_a_transition_moves_with_its_boundary(plan):
    # A beat 3 frames before the dissolve's boundary (160) and nothing near the others.
    new, moves = beats.snap_to_beats(plan, [157 / FPS], sample_cuts_on_beat=0.9)
    assert moves == [{"scene": 3, "from_frame": 160, "to_frame": 157}]
    old_t, new_t = plan["scenes"][3]["transition_in"], new["scenes"][3]["transition_in"]
    assert new_t["kind"] == old_t["kind"] == "dissolve"
    assert (new_t["start_frame"], new_t["end_frame"]) == (old_t["start_frame"] - 3, old_t["end_frame"] - 3)


def test_no_scene_is_squeezed_under_the_minimum():
    # Scenes of 8 frames between boundaries 100 and 108: beats that would squeeze the middle one.
    p = planner.make_plan(_analysis([100, 108], 200), seed=1)
    new, _ = beats.snap_to_beats(p, [104 / FPS, 105 / FPS], sample_cuts_on_beat=1.0)
    assert all(s["n_frames"] >= beats.MIN_SCENE_FRAMES for s in new["scenes"])
    assert new["format"]["n_frames"] == 200


def test_two_boundaries_never_share_a_beat():
    p = planner.make_plan(_analysis([100, 106], 200), seed=1)
    new, _ = beats.snap_to_beats(p, [103 / FPS], sample_cuts_on_beat=1.0)
    assert len(set(_bounds(new))) == 2
    assert all(s["n_frames"] >= 1 for s in new["scenes"])
