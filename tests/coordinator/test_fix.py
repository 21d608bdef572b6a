"""coordinator.fix: suggestions to plan operations, operations on plans, and the loop that raises the score."""

from __future__ import annotations

import copy
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from lookalike.coordinator.fix import affected_scenes, apply_suggestions, music_changed, suggestions_to_ops
from lookalike.coordinator.planner import make_plan

from lookalike.errors import InputError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nodes"))
import score_media as sm  # noqa: E402


def _plan() -> dict:
    scenes = []
    start = 0
    for i, n in enumerate((10, 20, 30)):
        scenes.append(
            {
                "index": i,
                "start_frame": start,
                "end_frame": start + n,
                "n_frames": n,
                "grade": {"exposure": 0.0, "temperature": 0.0, "saturation": 1.0, "contrast": 1.0},
                "palette": [{"rgb": [10, 20, 30], "weight": 1.0}],
                "camera": {"motion": "static", "trajectory": [[0.0, 0.0, 1.0, 0.0]] * n},
            }
        )
        start += n
    return {
        "schema": "lookalike.plan/1",
        "version": 3,
        "format": {"fps": 24.0, "n_frames": 60, "duration_s": 2.5},
        "music": {"tempo_bpm": 100.0, "lufs": -16.0},
        "scenes": scenes,
    }


def test_apply_keeps_scenes_contiguous_and_does_not_touch_the_input():
    plan = _plan()
    before = copy.deepcopy(plan)
    new = apply_suggestions(
        plan,
        [
            {"op": "set_duration", "scene": 0, "n_frames": 15},
            {"op": "adjust_grade", "scene": 2, "delta": {"temperature": 0.1, "exposure": -0.25}},
            {"op": "set_tempo", "bpm": 124.0},
        ],
    )
    assert plan == before
    assert [(s["start_frame"], s["end_frame"]) for s in new["scenes"]] == [(0, 15), (15, 35), (35, 65)]
    assert new["format"]["n_frames"] == 65 and new["format"]["duration_s"] == pytest.approx(65 / 24)
    assert len(new["scenes"][0]["camera"]["trajectory"]) == 15
    assert new["scenes"][2]["grade"]["temperature"] == pytest.approx(0.1)
    assert new["scenes"][2]["grade"]["exposure"] == pytest.approx(-0.25)
    assert new["music"]["tempo_bpm"] == 124.0 and new["version"] == 4
    # Scene 1 only moved: its frames need no new render; scenes 0 and 2 changed, and so did the music.
    assert affected_scenes(plan, new) == [0, 2]
    assert music_changed(plan, new)


def test_set_camera_resamples_and_bad_ops_are_refused():
    new = apply_suggestions(
        _plan(),
        [
            {
                "op": "set_camera",
                "scene": 1,
                "motion": "pan_right",
                "trajectory": [[0, 0, 1, 0], [0.5, 0, 1, 0]],
            }
        ],
    )
    traj = np.asarray(new["scenes"][1]["camera"]["trajectory"])
    assert traj.shape == (20, 4) and traj[-1, 0] == pytest.approx(0.5) and np.all(np.diff(traj[:, 0]) > 0)
    with pytest.raises(InputError, match="unknown plan operation"):
        apply_suggestions(_plan(), [{"op": "explode"}])
    with pytest.raises(InputError, match="scene 9"):
        apply_suggestions(_plan(), [{"op": "set_palette", "scene": 9, "palette": []}])


def test_suggestions_to_ops_orders_by_gain_and_keeps_one_per_kind_and_scene():
    sim = {
        "suggestions": [
            {
                "scene": 1,
                "operation": {"op": "adjust_grade", "scene": 1, "delta": {"exposure": 0.1}},
                "gain": 3.0,
            },
            {"scene": None, "operation": {"op": "set_tempo", "bpm": 120.0}, "gain": 25.0},
            {
                "scene": 1,
                "operation": {"op": "adjust_grade", "scene": 1, "delta": {"exposure": 9}},
                "gain": 1.0,
            },
            {"scene": 0, "operation": {"op": "set_duration", "scene": 0, "n_frames": 12}, "gain": 6.0},
        ]
    }
    ops = suggestions_to_ops(sim)
    assert [o["op"] for o in ops] == ["set_tempo", "set_duration", "adjust_grade"]
    assert ops[2]["delta"] == {"exposure": 0.1}
    assert suggestions_to_ops(sim, min_gain=5.0, max_ops=1) == [{"op": "set_tempo", "bpm": 120.0}]


def _render(plan: dict, out: Path, subject: np.ndarray) -> Path:
    """The local remake of `plan`: SceneRenderer footage per scene, nodes.music at the plan's tempo."""
    from lookalike.nodes import media
    from lookalike.nodes.generate import SceneRenderer
    from lookalike.nodes.music import render_music

    out.mkdir(parents=True, exist_ok=True)
    w, h = sm.SAMPLE.size
    segs = []
    for s in plan["scenes"]:
        r = SceneRenderer(s, w, h, subject, s["seed"])
        p = out / f"scene{s['index']}.mp4"
        with media.SegmentWriter(p, width=w, height=h, fps=Fraction(sm.FPS)) as wr:
            for i in range(s["start_frame"], s["end_frame"]):
                wr.write(r.frame(i))
        segs.append(p)
    music = plan["music"]
    audio = render_music(
        plan["format"]["n_frames"] / sm.FPS,
        music["tempo_bpm"],
        rate=48000,
        key=music.get("key"),
        target_lufs=music.get("lufs") or -16.0,
    )
    media.write_audio(out / "music.m4a", audio, 48000)
    media.concat_segments(segs, out / "final.mp4", audio_path=out / "music.m4a")
    return out / "final.mp4"


@pytest.mark.slow
def test_rounds_of_suggestions_raise_the_score(tmp_path):
    from lookalike.nodes.analysis import analyze
    from lookalike.nodes.generate import synth_subject
    from lookalike.nodes.score import ScoreConfig, score

    sample = sm.make(tmp_path / "sample.mp4")
    analysis = analyze(str(sample))
    plan = make_plan(analysis, seed=1)
    # A poor first attempt: scene 1 graded cold and dark, scene 0 cut 8 frames short, music too slow.
    g = plan["scenes"][1]["grade"]
    g["temperature"] = g.get("temperature", 0.0) - 0.25
    g["exposure"] = g.get("exposure", 0.0) - 0.8
    plan = apply_suggestions(
        plan,
        [
            {"op": "set_duration", "scene": 0, "n_frames": plan["scenes"][0]["n_frames"] - 8},
            {"op": "set_tempo", "bpm": 92.0},
        ],
    )
    subject = synth_subject(3, 96)
    cfg = ScoreConfig(thumbnails=False)
    history = []
    for rnd in range(3):
        out = _render(plan, tmp_path / f"round{rnd}", subject)
        sim = score(str(sample), str(out), analysis, plan, config=cfg)
        history.append(sim)
        plan = apply_suggestions(plan, suggestions_to_ops(sim))
    overall = [h["overall"] for h in history]
    assert overall[1] > overall[0] + 5, overall
    assert overall[2] >= overall[1] - 1, overall
    first, last = history[0], history[-1]
    assert last["scenes"][1]["colour"] > first["scenes"][1]["colour"] + 10
    assert last["pacing"] > first["pacing"] + 10
    assert last["audio"] > first["audio"] + 10


def _weak(index: int, visual: float) -> dict:
    return {"index": index, "overall": visual + 5, "visual": visual}


def test_a_weak_footage_scene_tries_its_runner_up():
    from footage_plans import footage_plan

    plan = footage_plan()
    sim = {
        "scenes": [_weak(0, 40.0), _weak(1, 85.0), _weak(2, 55.0)],
        "suggestions": [
            {"scene": 0, "operation": {"op": "adjust_grade", "scene": 0, "delta": {"exposure": 0.2}}, "gain": 8.0},
            {"scene": 1, "operation": {"op": "adjust_grade", "scene": 1, "delta": {"exposure": 0.1}}, "gain": 4.0},
        ],
    }
    ops = suggestions_to_ops(sim, plan=plan)
    # Scene 0 (visual 40) and scene 2 (55) try their best runner-up; scene 1 scores well. Scene 0's
    # grade change was measured on the picture it leaves, so it is dropped this round.
    assert ops == [
        {"op": "use_media", "scene": 0, "media": "IMG_0042.jpg", "in_frame": 0},
        {"op": "use_media", "scene": 2, "media": "pets/cat photo.png", "in_frame": 0},
        {"op": "adjust_grade", "scene": 1, "delta": {"exposure": 0.1}},
    ]
    assert suggestions_to_ops(sim) == [sim["suggestions"][0]["operation"], sim["suggestions"][1]["operation"]]

    new = apply_suggestions(plan, ops)
    assert new["scenes"][0]["source"]["media"] == "IMG_0042.jpg" and new["scenes"][0]["source"]["photo"]
    assert new["scenes"][2]["source"]["media"] == "pets/cat photo.png"
    assert affected_scenes(plan, new) == [0, 1, 2]
    assert affected_scenes(plan, apply_suggestions(plan, ops[:1])) == [0]
    # Next round, still weak: the next runner-up, never back to the source it left.
    again = suggestions_to_ops({"scenes": [_weak(0, 40.0)], "suggestions": []}, plan=new)
    assert again == [{"op": "use_media", "scene": 0, "media": "pets/cat photo.png", "in_frame": 0}]
    last = apply_suggestions(new, again)
    assert suggestions_to_ops({"scenes": [_weak(0, 40.0)], "suggestions": []}, plan=last) == []


def test_no_runner_up_from_an_excluded_item_or_for_a_plan_without_media():
    from footage_plans import footage_plan

    plan = footage_plan()
    plan["media"][1]["excluded"] = True
    ops = suggestions_to_ops({"scenes": [_weak(0, 30.0)], "suggestions": []}, plan=plan)
    assert ops == [{"op": "use_media", "scene": 0, "media": "pets/cat photo.png", "in_frame": 0}]
    assert suggestions_to_ops({"scenes": [_weak(0, 30.0)], "suggestions": []}, plan=_plan()) == []
    with pytest.raises(InputError, match="IMG_0042.jpg is excluded"):
        apply_suggestions(plan, [{"op": "use_media", "scene": 1, "media": "IMG_0042.jpg"}])


def test_a_fixed_grade_stays_within_what_a_plan_may_hold():
    """The fix loop clamps to plan_ops.GRADE_RANGES, the table chat and plan edits check against, so a
    fix round never writes a grade that a plan edit would refuse."""
    from lookalike.coordinator import plan_ops

    new = apply_suggestions(_plan(), [{"op": "adjust_grade", "scene": 1,
                                       "delta": {"contrast": 50.0, "temperature": -9.0, "saturation": 9.0}}])
    grade = new["scenes"][1]["grade"]
    assert grade["contrast"] == plan_ops.GRADE_RANGES["contrast"][1]
    assert grade["temperature"] == plan_ops.GRADE_RANGES["temperature"][0]
    assert grade["saturation"] == plan_ops.GRADE_RANGES["saturation"][1]
    plan_ops.SetGrade(scene=1, **{k: grade[k] for k in ("contrast", "temperature", "saturation")})  # accepted
