from itertools import pairwise

import pytest
from lookalike.coordinator import planner


def _analysis(cuts, n):
    bounds = [0, *cuts, n]
    scenes = [
        {"index": i, "start_frame": a, "end_frame": b, "start_s": a / 24, "end_s": b / 24,
         "transition_in": {"kind": "cut" if i else "none"},
         "palette": [{"rgb": [10, 20, 30], "weight": 1.0}], "grade": {"exposure": 0.1},
         "camera": {"motion": "pan_left", "trajectory": [[0, 0, 1, 0]] * (b - a)}}
        for i, (a, b) in enumerate(pairwise(bounds))
    ]
    return {"source": {"width": 640, "height": 360, "fps": 24.0, "fps_num": 24, "fps_den": 1, "n_frames": n,
                       "duration_s": n / 24}, "scenes": scenes, "audio": {"tempo_bpm": 120.0, "lufs": -18.0}}


def test_plan_keeps_every_scene_boundary_and_length():
    plan = planner.make_plan(_analysis([283, 376, 551], 720), seed=7)
    assert [(s["start_frame"], s["end_frame"]) for s in plan["scenes"]] == [(0, 283), (283, 376), (376, 551), (551, 720)]
    assert plan["schema"] == "lookalike.plan/1"
    assert plan["format"]["n_frames"] == 720
    assert plan["scenes"][1]["camera"]["motion"] == "pan_left"
    # Seeds are per scene and stable, whatever renders them.
    again = planner.make_plan(_analysis([283, 376, 551], 720), seed=7)
    assert [s["seed"] for s in plan["scenes"]] == [s["seed"] for s in again["scenes"]]
    assert len({s["seed"] for s in plan["scenes"]}) == 4


def test_range_jobs_cover_every_frame_once_and_never_cross_a_scene():
    plan = planner.make_plan(_analysis([283, 376, 551], 720))
    jobs = planner.range_jobs(plan, 48, 3)
    covered = [f for j in jobs for f in range(j["start_frame"], j["end_frame"])]
    assert covered == list(range(720))
    for j in jobs:
        s = plan["scenes"][j["scene_index"]]
        assert s["start_frame"] <= j["start_frame"] < j["end_frame"] <= s["end_frame"]
        assert j["end_frame"] - j["start_frame"] >= 12 or j["end_frame"] - j["start_frame"] == s["n_frames"]


def test_analysis_ranges_split_evenly():
    assert planner.analysis_ranges(720, 2) == [(0, 360), (360, 720)]
    assert planner.analysis_ranges(100, 4) == [(0, 100)]
    r = planner.analysis_ranges(1000, 3)
    assert r[0][0] == 0 and r[-1][1] == 1000 and all(a[1] == b[0] for a, b in pairwise(r))


def test_camera_glitches_are_removed_but_real_motion_kept():
    steady = [[0.004 * i, 0.0, 1.0 + 0.001 * i, 0.0] for i in range(40)]
    glitched = [list(r) for r in steady]
    for r in glitched[20:]:
        r[0] += 0.15  # one lost frame: the path jumps by 15% of the frame
        r[2] *= 1.3
    clean = planner.clean_trajectory(glitched)
    steps = [b[0] - a[0] for a, b in pairwise(clean)]
    assert max(steps) < 0.01
    assert clean[-1][0] == pytest.approx(steady[-1][0], abs=0.01)
    assert clean[-1][2] == pytest.approx(steady[-1][2], rel=0.02)
    assert planner.clean_trajectory(steady) == [[float(v) for v in r] for r in steady]
    fast = [[0.05 * i, 0, 1, 0] for i in range(30)]  # a whip pan: large but steady steps stay
    assert planner.clean_trajectory(fast)[-1][0] == pytest.approx(fast[-1][0])
