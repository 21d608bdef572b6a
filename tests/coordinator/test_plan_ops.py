"""Plan operations: apply keeps the plan consistent and never mutates, diff and affected scenes
follow scenes by id, bad operations are InputErrors that name the field."""

from __future__ import annotations

import copy
import json
import math

import pytest
from lookalike.coordinator import plan_ops as po
from lookalike.coordinator import planner

from lookalike.errors import InputError


def _analysis(cuts, n, fps=24.0):
    bounds = [0, *cuts, n]
    scenes = [
        {
            "index": i,
            "start_frame": a,
            "end_frame": b,
            "start_s": a / fps,
            "end_s": b / fps,
            "transition_in": {"kind": "cut" if i else "none", "start_frame": a, "end_frame": a},
            "palette": [{"rgb": [10 * i, 20, 30], "weight": 1.0}],
            "grade": {"exposure": 0.1 * i, "contrast": 1.0, "saturation": 1.0, "temperature": 0.0},
            "camera": {
                "motion": "pan_right",
                "speed": 0.1,
                "trajectory": [[0.1 * k / fps, 0.0, 1.0, 0.0] for k in range(b - a)],
            },
        }
        for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))
    ]
    return {
        "source": {
            "width": 640,
            "height": 360,
            "fps": fps,
            "fps_num": int(fps),
            "fps_den": 1,
            "n_frames": n,
            "duration_s": n / fps,
        },
        "scenes": scenes,
        "audio": {"tempo_bpm": 120.0, "key": "A minor", "lufs": -16.0},
    }


@pytest.fixture
def plan():
    """Four scenes of 100 frames at 24 fps, each panning right, with distinct palettes and exposures."""
    return planner.make_plan(_analysis([100, 200, 300], 400), seed=5)


def check_consistent(plan):
    """The invariants apply promises after every edit."""
    fps = plan["format"]["fps"]
    pos = 0
    for i, s in enumerate(plan["scenes"]):
        assert s["index"] == i
        assert s["start_frame"] == pos and s["end_frame"] == pos + s["n_frames"] and s["n_frames"] >= 1
        assert len(s["camera"]["trajectory"]) == s["n_frames"]
        assert math.isclose(s["start_s"], s["start_frame"] / fps, abs_tol=1e-5)
        t = s["transition_in"]
        if i == 0:
            assert t["kind"] in ("none", "fade")
        else:
            assert t["kind"] in ("cut", "dissolve", "fade")
            assert (
                plan["scenes"][i - 1]["start_frame"]
                < t["start_frame"]
                <= s["start_frame"]
                <= t["end_frame"]
                <= s["end_frame"]
            )
        for line in s["audio"].get("voice_lines", []):
            assert math.isclose(line["start_s"], s["start_s"] + line["offset_s"], abs_tol=1e-5)
        pos += s["n_frames"]
    assert plan["format"]["n_frames"] == pos
    assert math.isclose(plan["format"]["duration_s"], pos / fps, abs_tol=1e-5)
    assert len({s["id"] for s in plan["scenes"]}) == len(plan["scenes"])


def test_plan_has_stable_scene_ids_and_empty_cues(plan):
    assert [s["id"] for s in plan["scenes"]] == ["s0", "s1", "s2", "s3"]
    assert all(
        s["audio"] == {"music_section": s["index"], "voice_lines": [], "sfx": []} for s in plan["scenes"]
    )
    assert plan["next_scene_id"] == 4


def test_apply_never_mutates_and_no_ops_change_nothing(plan):
    before = copy.deepcopy(plan)
    new = po.apply(plan, [po.SetDuration(scene=1, n_frames=50), po.SwapScenes(a=0, b=3)])
    assert plan == before
    assert po.diff(plan, po.apply(plan, [])) == []
    assert po.affected_scenes(plan, po.apply(plan, [])) == set()
    check_consistent(new)


def test_longer_scene_shifts_later_scenes_and_slows_its_camera(plan):
    new = po.apply(plan, [po.SetDuration(scene=1, factor=1.5)])
    check_consistent(new)
    assert [(s["start_frame"], s["end_frame"]) for s in new["scenes"]] == [
        (0, 100),
        (100, 250),
        (250, 350),
        (350, 450),
    ]
    assert new["format"]["n_frames"] == 450 and math.isclose(
        new["format"]["duration_s"], 450 / 24, abs_tol=1e-5
    )
    old_traj, traj = plan["scenes"][1]["camera"]["trajectory"], new["scenes"][1]["camera"]["trajectory"]
    # The same path over more frames: same end point, smaller steps.
    assert traj[0] == old_traj[0] and traj[-1] == pytest.approx(old_traj[-1])
    assert traj[1][0] - traj[0][0] == pytest.approx((old_traj[1][0] - old_traj[0][0]) * 99 / 149, rel=1e-3)
    assert new["scenes"][1]["camera"]["speed"] == pytest.approx(0.1 / 1.5, abs=1e-6)
    # Only the retimed scene re-renders; the later ones only moved (their pixels are the same).
    assert po.affected_scenes(plan, new) == {1}
    assert po.affected_scenes(plan, new, include_moved=True) == {1, 2, 3}
    assert po.reusable_scenes(plan, new) == {0: 0, 2: 2, 3: 3}
    assert po.audio_affected(plan, new)


def test_shorten_by_frames_and_keep_pace(plan):
    new = po.apply(plan, [po.SetDuration(scene=2, delta_frames=-10, retime_camera=False)])
    check_consistent(new)
    assert new["scenes"][2]["n_frames"] == 90 and new["scenes"][3]["start_frame"] == 290
    assert new["scenes"][2]["camera"]["trajectory"] == plan["scenes"][2]["camera"]["trajectory"][:90]


def test_swap_renumbers_and_moved_scenes_keep_their_pixels(plan):
    new = po.apply(plan, [po.SwapScenes(a=1, b=3)])
    check_consistent(new)
    assert [s["id"] for s in new["scenes"]] == ["s0", "s3", "s2", "s1"]
    assert new["scenes"][1]["seed"] == plan["scenes"][3]["seed"]
    assert po.affected_scenes(plan, new) == set()
    assert po.reusable_scenes(plan, new) == {0: 0, 1: 3, 2: 2, 3: 1}
    kinds = {(c.kind, c.scene, c.old_index, c.new_index) for c in po.diff(plan, new)}
    assert kinds == {("scene_moved", "s3", 3, 1), ("scene_moved", "s1", 1, 3)}


def test_swap_with_first_scene_fixes_its_transition(plan):
    new = po.apply(plan, [po.SwapScenes(a=0, b=2)])
    check_consistent(new)
    assert new["scenes"][0]["transition_in"]["kind"] == "none"
    assert new["scenes"][2]["transition_in"]["kind"] == "cut"
    assert po.affected_scenes(plan, new) == set()


def test_insert_and_delete_renumber(plan):
    new = po.apply(plan, [po.InsertScene(at=2, n_frames=48, prompt="a red kite", motion="zoom_in")])
    check_consistent(new)
    assert [s["id"] for s in new["scenes"]] == ["s0", "s1", "s4", "s2", "s3"]
    inserted = new["scenes"][2]
    assert inserted["prompt"] == "a red kite" and inserted["camera"]["motion"] == "zoom_in"
    assert (
        inserted["seed"] != plan["scenes"][1]["seed"] and inserted["palette"] == plan["scenes"][1]["palette"]
    )
    assert po.affected_scenes(plan, new) == {2}
    assert [c.kind for c in po.diff(plan, new) if c.kind.startswith("scene")] == ["scene_added"]

    gone = po.apply(new, [po.DeleteScene(scene=0)])
    check_consistent(gone)
    assert [s["id"] for s in gone["scenes"]] == ["s1", "s4", "s2", "s3"]
    assert gone["scenes"][0]["transition_in"]["kind"] == "none"
    assert po.affected_scenes(new, gone) == set()
    assert ("scene_removed", "s0") in {(c.kind, c.scene) for c in po.diff(new, gone)}
    # A deleted scene's id is never handed out again, so diffs across versions stay unambiguous.
    again = po.apply(gone, [po.InsertScene(at=0, n_frames=10)])
    assert again["scenes"][0]["id"] == "s5"


def test_move_scene(plan):
    new = po.apply(plan, [po.MoveScene(scene=3, to=0)])
    check_consistent(new)
    assert [s["id"] for s in new["scenes"]] == ["s3", "s0", "s1", "s2"]


def test_grade_set_and_adjust(plan):
    new = po.apply(plan, [po.AdjustGrade(scene=2, temperature=0.1, exposure=-0.3), po.SetGrade(contrast=1.2)])
    check_consistent(new)
    assert new["scenes"][2]["grade"]["temperature"] == pytest.approx(0.1)
    assert new["scenes"][2]["grade"]["exposure"] == pytest.approx(0.2 - 0.3)
    assert all(s["grade"]["contrast"] == 1.2 for s in new["scenes"])
    assert po.affected_scenes(plan, new) == {0, 1, 2, 3}
    assert not po.audio_affected(plan, new)
    changed = {(c.scene, c.field) for c in po.diff(plan, new) if c.scene == "s2"}
    assert changed == {("s2", "grade.temperature"), ("s2", "grade.exposure"), ("s2", "grade.contrast")}


def test_camera_move_is_what_the_analysis_would_measure(plan):
    from lookalike.kernels.features import classify_camera

    for motion in ("pan_left", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "static"):
        new = po.apply(
            plan, [po.SetCamera(scene=1, motion=motion, speed=0.2 if motion != "static" else None)]
        )
        cam = new["scenes"][1]["camera"]
        label, speed = classify_camera(cam["trajectory"], 100 / 24)
        assert label == motion
        if motion != "static":
            assert speed == pytest.approx(0.2 * 99 / 100, rel=0.02)
    kept = po.apply(plan, [po.SetCamera(scene=0, motion="pan_right")])["scenes"][0]["camera"]
    assert kept["speed"] == pytest.approx(0.1)  # same kind of move: the measured speed stays


def test_dissolve_sits_on_the_boundary_and_follows_it(plan):
    new = po.apply(plan, [po.SetTransition(scene=2, kind="dissolve", n_frames=12)])
    check_consistent(new)
    assert new["scenes"][2]["transition_in"] == {"kind": "dissolve", "start_frame": 194, "end_frame": 206}
    # Both sides of a dissolve show blended frames: the scene and the one it dissolves from.
    assert po.affected_scenes(plan, new) == {1, 2}
    later = po.apply(new, [po.SetDuration(scene=0, n_frames=80)])
    check_consistent(later)
    assert later["scenes"][2]["transition_in"] == {"kind": "dissolve", "start_frame": 174, "end_frame": 186}
    # The neighbour of a dissolve re-renders when the scene it blends with changes.
    assert po.affected_scenes(new, po.apply(new, [po.AdjustGrade(scene=1, exposure=0.5)])) == {1, 2}
    with pytest.raises(InputError, match="set_transition.kind"):
        po.apply(plan, [po.SetTransition(scene=0, kind="dissolve")])
    fade = po.apply(plan, [po.SetTransition(scene=0, kind="fade", n_frames=10)])
    assert fade["scenes"][0]["transition_in"] == {"kind": "fade", "start_frame": 0, "end_frame": 10}


def test_voice_lines_follow_their_scene(plan):
    new = po.apply(
        plan,
        [
            po.SetVoiceLine(scene=1, text="hello there", offset_s=0.5),
            po.SetVoiceLine(scene=1, text="and welcome", offset_s=2.0, replace=False),
            po.SwapScenes(a=0, b=1),
        ],
    )
    check_consistent(new)
    lines = new["scenes"][0]["audio"]["voice_lines"]
    assert [(ln["text"], ln["start_s"]) for ln in lines] == [("hello there", 0.5), ("and welcome", 2.0)]
    assert po.audio_affected(plan, new) and po.affected_scenes(plan, new) == set()
    with pytest.raises(InputError, match="offset_s"):
        po.apply(plan, [po.SetVoiceLine(scene=1, text="late", offset_s=10.0)])
    with pytest.raises(InputError, match="set_voice_line.text"):
        po.SetVoiceLine(scene=1, text="   ")


def test_music_effects_prompt_provider_sfx(plan):
    new = po.apply(
        plan,
        [
            po.SetMusic(tempo_factor=1.1, key="C# major"),
            po.SetEffect(effect="film_grain", strength=0.3),
            po.SetEffect(scene=1, effect="film_grain", strength=0.0),
            po.SetPrompt(scene=3, prompt="a kite"),
            po.SetProvider(scene=2, provider="runway", model="gen4_turbo"),
            po.AddSfx(scene=0, sound="whoosh", offset_s=1.0),
        ],
    )
    check_consistent(new)
    assert new["music"]["tempo_bpm"] == pytest.approx(132.0) and new["music"]["key"] == "C# major"
    assert [s["effects"] for s in new["scenes"]] == [
        [{"name": "film_grain", "strength": 0.3}],
        [],
        [{"name": "film_grain", "strength": 0.3}],
        [{"name": "film_grain", "strength": 0.3}],
    ]
    assert new["scenes"][3]["prompt"] == "a kite" and new["scenes"][2]["provider"] == "runway"
    assert new["scenes"][0]["audio"]["sfx"] == [{"sound": "whoosh", "offset_s": 1.0, "gain_db": 0.0}]
    assert po.affected_scenes(plan, new) == {0, 2, 3}


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: po.SetDuration(scene=1, n_frames=-5), "set_duration.n_frames"),
        (lambda: po.SetDuration(scene=1, n_frames=0), "set_duration.n_frames"),
        (lambda: po.SetDuration(scene=1, n_frames=5, factor=2.0), "set_duration"),
        (lambda: po.SetDuration(scene=-1, n_frames=5), "set_duration.scene"),
        (lambda: po.SetGrade(scene=0, temperature=3.0), "set_grade.temperature"),
        (lambda: po.SetGrade(scene=0), "set_grade"),
        (lambda: po.SetCamera(scene=0, motion="barrel_roll"), "set_camera.motion"),
        (lambda: po.SwapScenes(a=1, b=1), "swap_scenes.b"),
        (lambda: po.SetMusic(key="H minor"), "set_music.key"),
        (lambda: po.SetEffect(effect="film_grain", strength=1.5), "set_effect.strength"),
        (lambda: po.SetPrompt(scene=0, prompt=""), "set_prompt.prompt"),
        (lambda: po.SetDuration(scene=True, n_frames=5), "set_duration.scene"),
        (lambda: po.SetDuration(scene=1, n_frames="5"), "set_duration.n_frames"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_values_name_the_field(make, field):
    with pytest.raises(InputError) as exc:
        make()
    assert str(exc.value).startswith(field)


@pytest.mark.parametrize(
    "op, field",
    [
        (po.SetDuration(scene=9, n_frames=5), "set_duration.scene"),
        (po.DeleteScene(scene=4), "delete_scene.scene"),
        (po.SwapScenes(a=0, b=7), "swap_scenes.b"),
        (po.SetDuration(scene=1, delta_frames=-100), "set_duration.delta_frames"),
        (po.AdjustGrade(scene=1, temperature=0.9), None),
        (po.InsertScene(at=9, n_frames=5), "insert_scene.at"),
        (po.SetMusic(tempo_factor=3.0), "set_music.tempo_factor"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_ops_that_do_not_fit_the_plan_are_refused_whole(plan, op, field):
    before = copy.deepcopy(plan)
    with pytest.raises(InputError) as exc:
        # The first, valid op must not survive the failure of the second.
        po.apply(
            plan,
            [po.SetPrompt(scene=0, prompt="changed"), op, op]
            if field is None
            else [po.SetPrompt(scene=0, prompt="changed"), op],
        )
    assert str(exc.value).startswith(field or "adjust_grade.temperature")
    assert plan == before


def test_deleting_the_only_scene_is_refused():
    one = planner.make_plan(_analysis([], 50))
    with pytest.raises(InputError, match="only scene"):
        po.apply(one, [po.DeleteScene(scene=0)])


EXAMPLES = [
    po.SetGrade(scene=1, temperature=0.2),
    po.AdjustGrade(exposure=0.3),
    po.SetDuration(scene=0, factor=1.25),
    po.SetCamera(scene=1, motion="pan_left", speed=0.3),
    po.SwapScenes(a=0, b=2),
    po.MoveScene(scene=3, to=1),
    po.InsertScene(at=1, n_frames=30, prompt="x", like=2, motion="static"),
    po.DeleteScene(scene=2),
    po.SetPrompt(scene=1, prompt="a kite"),
    po.SetProvider(provider="veo"),
    po.SetVoiceLine(scene=0, text="hi"),
    po.ClearVoiceLines(scene=0),
    po.AddSfx(scene=1, sound="boom"),
    po.SetMusic(tempo_bpm=128),
    po.SetTransition(scene=1, kind="fade", n_frames=8),
    po.SetEffect(effect="vignette"),
]


# Operations on what a scene's pictures are made from: they need a footage plan (footage_plans.py).
FOOTAGE_EXAMPLES = [
    po.UseMedia(scene=2, media="beach.mp4", in_frame=10),
    po.SwapSources(a=0, b=1),
    po.ExcludeMedia(media="IMG_0042.jpg"),
    po.IncludeMedia(media="pets/cat photo.png"),
]


def test_examples_cover_every_operation():
    assert {type(op) for op in EXAMPLES + FOOTAGE_EXAMPLES} == set(po.OPS.values())


@pytest.mark.parametrize("op", FOOTAGE_EXAMPLES, ids=lambda op: op.name)
def test_footage_json_round_trip_and_schema(op):
    from footage_plans import footage_plan

    jsonschema = pytest.importorskip("jsonschema")
    assert po.ops_from_json(po.ops_to_json([op])) == [op]
    schema = next(t for t in po.tool_schemas() if t["name"] == op.name)["input_schema"]
    jsonschema.validate({k: v for k, v in op.to_dict().items() if k != "op" and v is not None}, schema)
    check_consistent(po.apply(footage_plan(), [op]))


@pytest.mark.parametrize("op", EXAMPLES, ids=lambda op: op.name)
def test_json_round_trip_and_schema(plan, op):
    jsonschema = pytest.importorskip("jsonschema")
    back = po.ops_from_json(po.ops_to_json([op]))
    assert back == [op]
    schema = next(t for t in po.tool_schemas() if t["name"] == op.name)["input_schema"]
    args = {k: v for k, v in op.to_dict().items() if k != "op" and v is not None}
    jsonschema.validate(args, schema)
    check_consistent(po.apply(plan, [op]))


def test_schema_limits_match_the_checks():
    jsonschema = pytest.importorskip("jsonschema")
    schema = po.SetDuration.json_schema()
    assert schema["required"] == ["scene"] and schema["additionalProperties"] is False
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"scene": 0, "n_frames": 0}, schema)
    assert set(po.SetCamera.json_schema()["properties"]["motion"]["enum"]) == set(po.CAMERA_MOTIONS)


def test_unknown_operations_and_fields():
    with pytest.raises(InputError, match="unknown operation 'explode'"):
        po.op_from_dict({"op": "explode"})
    with pytest.raises(InputError, match="set_prompt.colour: no such field"):
        po.op_from_dict({"op": "set_prompt", "scene": 0, "prompt": "x", "colour": "red"})
    with pytest.raises(InputError, match="set_prompt.prompt is required"):
        po.op_from_dict({"op": "set_prompt", "scene": 0})
    with pytest.raises(InputError, match="not valid JSON"):
        po.ops_from_json("[{")
    assert po.ops_from_json(json.dumps({"op": "delete_scene", "scene": 1})) == [po.DeleteScene(scene=1)]


def test_plans_without_ids_are_matched_by_index():
    plan = planner.make_plan(_analysis([100], 200))
    for s in plan["scenes"]:
        del s["id"]
    del plan["next_scene_id"]
    new = po.apply(plan, [po.SwapScenes(a=0, b=1)])
    assert [s["id"] for s in new["scenes"]] == ["s1", "s0"]
    assert {c.kind for c in po.diff(plan, new)} >= {"scene_moved"}
