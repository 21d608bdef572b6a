"""planner.footage_plan: the first plan of a footage remake from the sample's analysis and the media."""

from __future__ import annotations

import copy

import pytest
from lookalike.coordinator import plan_ops, planner
from test_footage_match import make_item, make_sample, shot


def _docs():
    sample = make_sample([("pan_right", 0.1, 0, "wide", "warm", 48), ("static", 0.0, 0, "wide", "cool", 36)])
    sample["audio"] = {"tempo_bpm": 120.0, "segments": [{"kind": "speech", "start_s": 2.2, "end_s": 3.1}]}
    sample["scenes"][1]["text"] = [{"text": "SALE", "box": [0.2, 0.1, 0.6, 0.1], "colour": [250, 240, 10]}]
    media = [make_item("pan.mp4", [shot("pan_right", 0.1, 0, "wide", "warm", 60)]),
             make_item("still.mp4", [shot("static", 0.0, 0, "wide", "cool", 60)])]
    return sample, media


def test_every_scene_gets_its_source_text_and_script():
    sample, media = _docs()
    plan = planner.make_plan(sample)
    before = copy.deepcopy(plan)
    out = planner.footage_plan(plan, sample, media, text=["Big news", "Spare line"], script="Hello there. Bye.")
    assert plan == before  # the input plan is not changed
    assert [s["source"]["media"] for s in out["scenes"]] == ["pan.mp4", "still.mp4"]
    assert all(s["provider"] == "media" for s in out["scenes"])
    assert [m["name"] for m in out["media"]] == ["pan.mp4", "still.mp4"] and "analysis" not in out["media"][0]
    # The sample's text box takes the first line, in its colour; the spare line goes lower-third on the
    # scene without text.
    assert out["scenes"][1]["overlays"] == [{"text": "Big news", "box": [0.2, 0.1, 0.6, 0.1], "colour": [250, 240, 10]}]
    assert out["scenes"][0]["overlays"][0]["text"] == "Spare line" and out["text_unplaced"] == []
    # The script goes where the sample speaks (2.2 s: scene 1 starts at 2.0 s), paced to the 0.9 s slot.
    lines = out["scenes"][1]["audio"]["voice_lines"]
    assert [(v["text"], v["offset_s"], v["source"]) for v in lines] == [("Hello there. Bye.", 0.2, "script")]
    assert lines[0]["pace"] == pytest.approx(min(planner.PACE_RANGE[1], 3 / (planner.WORDS_PER_S * 0.9)), abs=1e-3)
    # The plan operations keep what footage_plan wrote (normalize fills other fields of this sparse
    # synthetic analysis, such as transition frames).
    norm = plan_ops.normalize(copy.deepcopy(out))
    for field in ("source", "overlays", "provider", "effects"):
        assert [s[field] for s in norm["scenes"]] == [s[field] for s in out["scenes"]], field
    assert norm["media"] == out["media"] and norm["text"] == out["text"]


def test_footage_cleaner_than_the_sample_gets_its_grain():
    sample, media = _docs()
    sample["source"].update(width=1280, height=720)
    for s in sample["scenes"]:
        s["texture"] = {"sharpness": 0.1, "grain": 0.012}
    for m in media:
        m.update(width=1280, height=720)
        m["analysis"]["scenes"][0]["texture"] = {"sharpness": 0.1, "grain": 0.006}
    media[1]["analysis"]["scenes"][0]["texture"]["grain"] = 0.02  # already grainier: nothing added
    out = planner.footage_plan(planner.make_plan(sample), sample, media)
    (grain,) = out["scenes"][0]["effects"]
    # sqrt(0.012^2 - 0.006^2) = 0.0104 as the analysis sees it, x 1280 / (0.85 x 256) = 0.061 added: 0.76
    assert grain["name"] == "film_grain" and grain["strength"] == pytest.approx(0.764, abs=0.01)
    assert out["scenes"][1]["effects"] == []
