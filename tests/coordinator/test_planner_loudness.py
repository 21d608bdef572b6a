"""The --loudness option as the plan holds it, and the music entry's sections from an envelope."""

from __future__ import annotations

import pytest
from lookalike.coordinator import planner
from synth import tiny_analysis

from lookalike.errors import InputError


@pytest.mark.parametrize("option, want", [("", None), (None, None), ("sample", "sample"), ("SAMPLE", "sample"),
                                          ("-16", -16.0), ("-23 LUFS", -23.0), (-9.5, -9.5)])
def test_loudness_option(option, want) -> None:
    assert planner.parse_loudness(option) == want


@pytest.mark.parametrize("option", ["loud", "-60", "3", "-14 dB"])
def test_bad_loudness_is_refused_with_a_hint(option) -> None:
    with pytest.raises(InputError) as exc:
        planner.parse_loudness(option)
    assert exc.value.hint


def test_the_plan_keeps_the_target_and_old_analyses_plan_as_before() -> None:
    plain = planner.make_plan(tiny_analysis({"tempo_bpm": 100.0, "lufs": -18.0}))["music"]
    assert "loudness_target" not in plain and "envelope" not in plain and "style" not in plain
    assert planner.make_plan(tiny_analysis({}), loudness="sample")["music"]["loudness_target"] == "sample"


def test_sections_from_a_loud_quiet_loud_envelope_snap_to_a_scene_cut() -> None:
    env = {"hop_s": 1.0, "window_s": 3.0, "lufs": [-20.0] * 10 + [-40.0] * 10 + [-20.0] * 11}
    secs = planner.music_sections(env, [9.5, 15.0], 30.0)
    assert [s["role"] for s in secs] == ["drop", "break", "drop"]
    assert secs[1]["start_s"] == 9.5 and 19.0 <= secs[1]["end_s"] <= 21.0
    fade = {"hop_s": 1.0, "window_s": 3.0, "lufs": [-60.0] * 6 + [-22.0] * 25}
    assert [s["role"] for s in planner.music_sections(fade, [], 30.0)] == ["intro", "drop"]


def test_style_follows_the_descriptors() -> None:
    sparse = planner.music_style({"percussiveness": 0.1, "onset_rate_per_s": 0.2, "centroid_hz": 800.0,
                                  "bass_share": 0.2}, 90.0, "A minor")
    busy = planner.music_style({"percussiveness": 0.4, "onset_rate_per_s": 7.0, "centroid_hz": 2500.0,
                                "bass_share": 0.6}, 128.0, "C major")
    assert sparse["groove"] == "ambient" and busy["groove"] == "four_on_floor"
    assert (sparse["bass"], busy["bass"]) == ("round", "sub") and sparse["minor"] and not busy["minor"]
    assert busy["hats_per_beat"] == 4 and busy["lead"] == "arp"
    prompt = planner.music_prompt(busy, [{"start_s": 0.0, "end_s": 8.0, "role": "intro"}], 128.0, "C major")
    assert prompt.startswith("house, bright") and "128 BPM in C major" in prompt and "intro 0-8 s" in prompt
