"""audio_section: the whole audio part of analysis.json from a media file, on real and synthesized media."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from lookalike.nodes import media, music
from lookalike.nodes.audio_analysis import audio_section, speech_spans
from lookalike.nodes.transcribe import SpeechAudio, Transcript, Word

from lookalike.errors import ProviderError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import synth  # noqa: E402

MEDIA = Path(__file__).resolve().parents[2] / ".." / "shared" / "media"


class Scripted:
    """A recognizer that answers with fixed words relative to the clip it is given, and logs the clips."""

    name = "scripted"

    def __init__(self, fail: ProviderError | None = None) -> None:
        self.clips: list[SpeechAudio] = []
        self.fail = fail

    def transcribe(self, audio: SpeechAudio) -> Transcript:
        self.clips.append(audio)
        if self.fail:
            raise self.fail
        return Transcript("hello there", (Word("hello", 0.3, 0.6), Word("there", 0.7, 1.0)), self.name)


def test_big_buck_bunny_music_section():
    """Big Buck Bunny's first 30 s: orchestral score and ambience, no speech (ground_truth.json)."""
    rec = Scripted()
    doc = audio_section(str(MEDIA / "samples" / "big_buck_bunny_0_30.webm"), transcriber=rec)
    json.dumps(doc)
    assert doc["has_audio"] and rec.clips == [] and doc["transcript"] == []
    assert {s["kind"] for s in doc["segments"]} == {"music", "silence"}
    assert doc["tempo_bpm"] and 40 < doc["tempo_bpm"] < 200
    assert doc["beats_per_bar"] in (3, 4) and set(doc["downbeats_s"]) <= set(doc["beats_s"])
    assert -40 < doc["lufs"] < -10
    assert doc["onsets"] and all(o["strength"] > 0 for o in doc["onsets"])
    assert {"decode", "tempo", "segments", "loudness"} <= set(doc["timings"])


def test_synthesized_music_tempo_key_and_downbeats(tmp_path):
    y = music.render_music(12, 128, rate=48000, key="A minor", seed=4, beat_offset_s=0.25)
    media.write_audio(tmp_path / "groove.m4a", y, 48000)
    doc = audio_section(str(tmp_path / "groove.m4a"), transcriber=None)
    assert doc["tempo_bpm"] == pytest.approx(128, rel=0.02)
    assert doc["key"] == "A minor"  # through AAC and the 22.05 kHz decode, not the relative C major
    bars = 0.25 + np.arange(0, 12, 4 * 60 / 128)
    assert np.abs(np.asarray(doc["downbeats_s"])[:, None] - bars[None, :]).min(axis=1).max() < 0.04
    assert doc["lufs"] == pytest.approx(-16.0, abs=1.0)
    assert {s["kind"] for s in doc["segments"]} <= {"music", "silence"}


def test_speech_is_sent_to_the_recognizer_with_track_times(tmp_path):
    """jfk.flac (11 s of speech) placed after 3 s of silence: word times come back in track time."""
    y, rate = media.read_audio(str(MEDIA / "speech" / "jfk.flac"), rate=48000)
    media.write_audio(tmp_path / "talk.m4a", np.concatenate([np.zeros(3 * rate, np.float32), y]), rate)
    rec = Scripted()
    doc = audio_section(str(tmp_path / "talk.m4a"), transcriber=rec)
    kinds = [s["kind"] for s in doc["segments"]]
    assert kinds[0] == "silence" and "speech" in kinds and "music" not in kinds
    assert len(rec.clips) == 1 and rec.clips[0].rate == 16000
    start = rec.clips[0].offset_s
    assert start == pytest.approx(3.0 - 0.2, abs=0.15)
    (entry,) = doc["transcript"]
    assert entry["text"] == "hello there" and doc["transcript_provider"] == "scripted"
    assert entry["words"][0]["start_s"] == pytest.approx(start + 0.3, abs=1e-3)
    assert entry["start_s"] == entry["words"][0]["start_s"] and entry["end_s"] == entry["words"][-1]["end_s"]


def test_a_failed_transcription_keeps_the_rest_of_the_section():
    rec = Scripted(fail=ProviderError("OpenAI speech-to-text failed: HTTP 401", transient=False))
    doc = audio_section(str(MEDIA / "speech" / "jfk.flac"), transcriber=rec)
    assert doc["transcript"] == [] and "HTTP 401" in doc["transcript_error"]
    assert doc["lufs"] is not None and doc["segments"][0]["kind"] == "speech"


def test_no_audio_and_silent_audio(tmp_path):
    synth.make_clip(tmp_path / "mute.mp4", [(12, (200, 40, 40), 0.0)], bpm=None)
    doc = audio_section(str(tmp_path / "mute.mp4"))
    assert doc["has_audio"] is False and doc["segments"] == [] and doc["transcript"] == []
    media.write_audio(tmp_path / "silent.m4a", np.zeros(48000 * 2, np.float32), 48000)
    doc = audio_section(str(tmp_path / "silent.m4a"))
    assert doc["has_audio"] and doc["tempo_bpm"] is None and doc["lufs"] is None
    assert [s["kind"] for s in doc["segments"]] == ["silence"]


def test_speech_spans_join_close_segments():
    segs = [
        {"start_s": 0.0, "end_s": 0.45, "kind": "speech"},
        {"start_s": 0.45, "end_s": 1.05, "kind": "silence"},
        {"start_s": 1.05, "end_s": 1.5, "kind": "speech"},
        {"start_s": 1.5, "end_s": 4.0, "kind": "music"},
        {"start_s": 4.0, "end_s": 5.0, "kind": "speech"},
    ]
    assert speech_spans(segs) == [
        {"start_s": 0.0, "end_s": 1.5, "kind": "speech"},
        {"start_s": 4.0, "end_s": 5.0, "kind": "speech"},
    ]
