"""The audio part of the first plan: sound effects at the sample's salient onsets (and not on its
beats, syllables or the track's first frames), their kind from the onset's spectrum, and the
music's provider, which set_music changes."""

from __future__ import annotations

import pytest
from lookalike.coordinator import plan_ops, planner
from synth import tiny_analysis

from lookalike.errors import InputError


def _onset(t: float, strength: float, centroid: float = 300.0) -> dict:
    # attack_s is what the analysis measures on the waveform; t_s the envelope frame, ~15 ms early
    return {"t_s": round(t - 0.015, 4), "attack_s": t, "strength": strength, "centroid_hz": centroid}


def _analysis(audio: dict, cuts=(48, 120), n=192) -> dict:
    return tiny_analysis(audio, cuts, n)


def test_lone_strong_onsets_become_effects_of_their_kind() -> None:
    audio = {
        "onsets": [_onset(0.83, 40, 210), _onset(2.37, 50, 2800), _onset(3.61, 9, 180), _onset(4.95, 4, 3000)]
    }
    events = planner.sfx_events(audio, 8.0)
    assert [(e["at_s"], e["kind"]) for e in events] == [(0.83, "hit"), (2.37, "click"), (3.61, "hit")]
    # placed in the scenes they fall in, at their offset from the scene's start (scenes: 0-2, 2-5, 5-8 s)
    plan = planner.make_plan(_analysis(audio))
    got = [[(fx["sound"], fx["offset_s"]) for fx in s["audio"]["sfx"]] for s in plan["scenes"]]
    assert got == [[("hit", 0.83)], [("click", 0.37), ("hit", 1.61)], []]
    assert all(
        fx["source"] == "sample_onset" and fx["gain_db"] == 0.0
        for s in plan["scenes"]
        for fx in s["audio"]["sfx"]
    )


def test_a_rhythm_is_music_not_effects_but_an_accent_over_it_is() -> None:
    """Onsets every 0.5 s of like strength (a beat) give no effects; one three times as strong does."""
    beat = [_onset(0.5 * k, 12.0) for k in range(1, 16)]
    assert planner.sfx_events({"onsets": beat}, 8.0) == []
    accent = [dict(o) for o in beat]
    accent[7]["strength"] = 36.0
    assert [e["at_s"] for e in planner.sfx_events({"onsets": accent}, 8.0)] == [4.0]
    # two hits close together are still hits: fewer than SFX_RUN_MIN peers
    pair = [_onset(2.0, 30), _onset(2.8, 25)]
    assert [e["at_s"] for e in planner.sfx_events({"onsets": pair}, 8.0)] == [2.0, 2.8]


def test_speech_weak_onsets_and_the_first_frames_are_left_alone() -> None:
    audio = {
        "onsets": [_onset(0.05, 30), _onset(1.0, 30), _onset(3.0, 30), _onset(6.0, 5.0)],
        # the onset at 1.0 opens a speech segment (its envelope time leads the segment by 15 ms)
        "segments": [
            {"start_s": 0.0, "end_s": 1.0, "kind": "silence"},
            {"start_s": 1.0, "end_s": 2.0, "kind": "speech"},
            {"start_s": 2.0, "end_s": 8.0, "kind": "music"},
        ],
    }
    assert [e["at_s"] for e in planner.sfx_events(audio, 8.0)] == [3.0]


def test_close_onsets_keep_the_stronger_and_old_analyses_still_plan() -> None:
    events = planner.sfx_events({"onsets": [_onset(2.0, 20), _onset(2.1, 40)]}, 8.0)
    assert [(e["at_s"], e["strength"]) for e in events] == [(2.1, 40)]
    # an analysis from before attack_s/centroid_hz: the envelope time, and a hit
    old = planner.sfx_events({"onsets": [{"t_s": 2.0, "strength": 20.0}]}, 8.0)
    assert old == [{"at_s": 2.0, "kind": "hit", "strength": 20.0}]
    assert (
        planner.sfx_events({}, 8.0) == []
        and planner.make_plan(_analysis({}))["scenes"][0]["audio"]["sfx"] == []
    )


def test_music_provider_in_the_plan_and_set_music() -> None:
    plan = planner.make_plan(_analysis({"tempo_bpm": 118.0, "key": "D minor", "lufs": -15.0}))
    assert plan["music"] == {
        "tempo_bpm": 118.0,
        "key": "D minor",
        "lufs": -15.0,
        "provider": None,
        "model": "",
    }
    chosen = planner.make_plan(_analysis({}), music_provider="elevenlabs")["music"]
    assert chosen["provider"] == "elevenlabs"
    new = plan_ops.apply(plan, [plan_ops.SetMusic(provider="elevenlabs", model="music_v1")])
    assert new["music"]["provider"] == "elevenlabs" and new["music"]["model"] == "music_v1"
    assert new["music"]["tempo_bpm"] == 118.0  # the rest of the music is kept
    assert plan_ops.audio_affected(plan, new) and not plan_ops.affected_scenes(plan, new)
    back = plan_ops.apply(new, [plan_ops.op_from_dict({"op": "set_music", "provider": "local"})])
    assert back["music"]["provider"] == "local" and back["music"]["model"] == ""  # music_v1 is not local's
    with pytest.raises(InputError, match="provider"):
        plan_ops.SetMusic(model="music_v1")
    with pytest.raises(InputError, match="not of the form"):
        plan_ops.SetMusic(provider="Eleven Labs")
    schema = plan_ops.SetMusic.json_schema()["properties"]
    assert "provider" in schema and "model" in schema
