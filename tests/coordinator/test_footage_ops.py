"""Plan operations on a footage plan's sources (docs/footage.md): use, swap, exclude and include the
user's media; only the scenes an operation touches render again; plans without media are as before."""

from __future__ import annotations

import copy

import pytest
from footage_plans import footage_plan
from lookalike.coordinator import plan_ops as po
from lookalike.coordinator import planner
from test_plan_ops import _analysis, check_consistent

from lookalike.errors import InputError


@pytest.fixture
def plan():
    return footage_plan()


def _src(plan, i):
    return plan["scenes"][i]["source"]


def test_use_media_takes_the_scenes_runner_up_for_that_item(plan):
    before = copy.deepcopy(plan)
    new = po.apply(plan, [po.UseMedia(scene=1, media="beach.mp4")])
    assert plan == before
    check_consistent(new)
    src = _src(new, 1)
    # Scene 2's runner-up for beach.mp4: shot 2, frames 0-90; 100 frames at 24 fps need 125 at 30 fps
    # in real time, so the matcher slowed it to 90/125 and nothing is held.
    assert (src["media"], src["shot"], src["in_frame"], src["out_frame"]) == ("clips/beach.mp4", 2, 0, 90)
    assert src["extend"] == "none" and src["speed"] == 0.72 and src["cost"] == {"total": 0.5}
    assert src["key"] == plan["media"][0]["key"] and src["photo"] is False
    # The photo it showed is now the first runner-up; the taken one is gone from the list.
    assert [(r["media"], r.get("was_chosen", False)) for r in src["runner_ups"]] == [
        ("IMG_0042.jpg", True),
        ("pets/cat photo.png", False),
    ]
    assert src["reused"] == 1  # scene 1 shows beach.mp4 too
    assert po.affected_scenes(plan, new) == {1}
    assert {c.scene for c in po.diff(plan, new)} == {"s1"}
    assert not po.audio_affected(plan, new)


def test_use_media_without_a_runner_up_starts_at_in_frame_for_the_frames_needed(plan):
    new = po.apply(plan, [po.UseMedia(scene=2, media="clips/beach.mp4")])
    src = _src(new, 2)
    assert (src["in_frame"], src["out_frame"], src["speed"], src["extend"]) == (0, 125, 1.0, "none")
    assert src["shot"] is None and src["why"] == "chosen by the user (use_media)"
    late = _src(po.apply(plan, [po.UseMedia(scene=2, media="beach", in_frame=200)]), 2)
    assert (late["in_frame"], late["out_frame"], late["extend"]) == (200, 270, "hold")
    # By media_id, and a photo: one frame, held, with the sample's camera path synthesized on it.
    photo = _src(po.apply(plan, [po.UseMedia(scene=0, media="c4e700000000000000000003")]), 0)
    assert (photo["media"], photo["in_frame"], photo["out_frame"]) == ("pets/cat photo.png", 0, 1)
    assert photo["photo"] and photo["move"] == "synth" and photo["extend"] == "hold"


@pytest.mark.parametrize(
    "op, message",
    [
        (po.UseMedia(scene=0, media="sunset.mov"), "no media item 'sunset.mov'; the plan has clips/beach.mp4, IMG_0042.jpg"),
        (po.UseMedia(scene=5, media="beach.mp4"), "there is no scene index 5"),
        (po.UseMedia(scene=0, media="beach.mp4", in_frame=270), "has frames 0-269, not 270"),
        (po.ExcludeMedia(media="nothing.jpg"), "exclude_media.media: there is no media item 'nothing.jpg'"),
        (po.IncludeMedia(media="nothing.jpg"), "include_media.media: there is no media item"),
        (po.SwapSources(a=0, b=3), "swap_sources.b: there is no scene index 3"),
    ],
    ids=["unknown-name", "unknown-scene", "in-frame-past-end", "exclude-unknown", "include-unknown", "swap-scene"],
)
def test_bad_references_are_input_errors_naming_the_field(plan, op, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        po.apply(plan, [op])


def test_bad_values_and_plans_without_media():
    with pytest.raises(InputError, match="use_media.media must not be empty"):
        po.UseMedia(scene=0, media=" ")
    with pytest.raises(InputError, match="use_media.in_frame must be at least 0"):
        po.UseMedia(scene=0, media="a", in_frame=-1)
    with pytest.raises(InputError, match="cannot swap sources with itself"):
        po.SwapSources(a=1, b=1)
    old = planner.make_plan(_analysis([100], 200))
    with pytest.raises(InputError, match="the plan has no media items"):
        po.apply(old, [po.UseMedia(scene=0, media="beach.mp4")])
    with pytest.raises(InputError, match="scene 1 has no source"):
        po.apply(old, [po.SwapSources(a=0, b=1)])


def test_use_of_an_excluded_item_asks_to_include_it_first(plan):
    off = po.apply(plan, [po.ExcludeMedia(media="beach.mp4")])
    with pytest.raises(InputError, match="clips/beach.mp4 is excluded") as info:
        po.apply(off, [po.UseMedia(scene=2, media="beach.mp4")])
    assert "include_media" in (info.value.hint or "")


def test_swap_sources_exchanges_sources_and_keeps_timing_camera_grade(plan):
    new = po.apply(plan, [po.SwapSources(a=0, b=1)])
    check_consistent(new)
    a, b = _src(new, 0), _src(new, 1)
    assert a["media"] == "IMG_0042.jpg" and b["media"] == "clips/beach.mp4"
    assert (b["in_frame"], b["out_frame"], b["speed"], b["mirror"]) == (120, 220, 0.8, True)
    for i in (0, 1):
        for k in ("n_frames", "start_frame", "camera", "grade", "id"):
            assert new["scenes"][i][k] == plan["scenes"][i][k]
    assert po.affected_scenes(plan, new) == {0, 1}
    assert {c.scene for c in po.diff(plan, new)} == {"s0", "s1"}
    # A scene that is longer than the clip's range refits it and holds where the item ends.
    longer = po.apply(plan, [po.SetDuration(scene=2, n_frames=200), po.SwapSources(a=0, b=2)])
    assert (_src(longer, 2)["out_frame"], _src(longer, 2)["extend"]) == (270, "hold")


def test_exclude_media_moves_every_scene_that_used_it_and_include_undoes_it(plan):
    new = po.apply(plan, [po.ExcludeMedia(media="img_0042")])
    check_consistent(new)
    assert [m["excluded"] for m in new["media"]] == [False, True, False]
    assert _src(new, 0) == _src(plan, 0)  # it never showed the photo
    # Scene 2's best runner-up from another item is beach.mp4 (0.5 beats the cat photo's 0.62).
    assert (_src(new, 1)["media"], _src(new, 1)["in_frame"]) == ("clips/beach.mp4", 0)
    assert _src(new, 2)["media"] == "pets/cat photo.png"
    for i in (1, 2):
        assert all(r["media_id"] != plan["media"][1]["media_id"] for r in _src(new, i)["runner_ups"])
    assert po.affected_scenes(plan, new) == {1, 2}
    kinds = {(c.kind, c.scene) for c in po.diff(plan, new)}
    assert kinds == {("scene_changed", "s1"), ("scene_changed", "s2"), ("plan_changed", None)}

    back = po.apply(new, [po.IncludeMedia(media="IMG_0042.jpg")])
    assert back["media"] == plan["media"]
    assert po.affected_scenes(plan, back) == set()  # the old segments are reused as they are
    assert po.affected_scenes(new, back) == {1, 2}


def test_excluding_the_last_candidate_makes_the_scene_generated(plan):
    new = po.apply(plan, [po.ExcludeMedia(media="IMG_0042.jpg"), po.ExcludeMedia(media="cat photo")])
    src = _src(new, 2)
    assert src["kind"] == "generated" and "excluded" in src["why"] and src["why"].startswith("no media fits")
    assert po.affected_scenes(plan, new) == {1, 2}


def test_only_pixel_fields_of_a_source_make_a_render(plan):
    explained = copy.deepcopy(plan)
    src = explained["scenes"][0]["source"]
    src["why"], src["runner_ups"], src["cost"], src["reused"] = "other words", [], {"total": 0.9}, 4
    assert po.render_keys(explained) == po.render_keys(plan)
    assert po.affected_scenes(plan, explained) == set()
    moved = copy.deepcopy(plan)
    moved["scenes"][0]["source"]["in_frame"] = 121
    assert po.affected_scenes(plan, moved) == {0}
    # With the clips' own sound in the mix, a new range is new audio too.
    for p in (plan, moved, explained):
        p["music"]["keep_media_audio"] = True
    assert po.audio_affected(plan, moved) and not po.audio_affected(plan, explained)


def test_plans_without_sources_keep_their_render_keys():
    old = planner.make_plan(_analysis([100, 200], 300), seed=2)
    with_media = copy.deepcopy(old)
    with_media["media"] = footage_plan()["media"]
    assert po.render_keys(with_media) == po.render_keys(old)
    # A scene without a source and one whose source is null render alike.
    nulled = copy.deepcopy(old)
    nulled["scenes"][0]["source"] = None
    assert po.render_keys(nulled) == po.render_keys(old)


def test_tool_schemas_offer_the_footage_operations():
    tools = {t["name"]: t for t in po.tool_schemas()}
    assert {"use_media", "swap_sources", "exclude_media", "include_media"} <= set(tools)
    use = tools["use_media"]["input_schema"]
    assert use["required"] == ["scene", "media"] and set(use["properties"]) == {"scene", "media", "in_frame"}
    assert use["properties"]["in_frame"]["minimum"] == 0
    assert tools["swap_sources"]["input_schema"]["required"] == ["a", "b"]
    assert tools["exclude_media"]["input_schema"]["required"] == ["media"]
    assert po.UseMedia(scene=2, media="beach.mp4").describe() == "use_media(scene=scene 3, media=beach.mp4)"


def test_min_speed_is_the_matchers():
    footage = pytest.importorskip("lookalike.coordinator.footage")
    assert po.MIN_SPEED == footage.MIN_SPEED
