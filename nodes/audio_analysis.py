"""The audio section of analysis.json: tempo, beats, downbeats, key, loudness, sound-effect onsets,
music/speech/silence segments and a transcript with word times.

`audio_section(path)` is the one call analysis needs. Transcription runs only on the stretches the
classifier calls speech (music is not sent to a recognizer), through a `Transcriber` (default: the
local pocketsphinx; pass `lookalike.nodes.transcribe.build_transcriber(...)` for the providers). A
transcription that fails leaves the rest of the section intact and says why in
`transcript_error`: analysis of the picture and the music must not die because a speech provider did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from lookalike.kernels import audio_features as af
from lookalike.nodes import media
from lookalike.nodes.onset_spectrum import onset_details
from lookalike.nodes.transcribe import SPEECH_RATE, SpeechAudio, Transcriber, build_transcriber

from lookalike.errors import ConfigError, ProviderError

AUDIO_RATE = 22050
LOUDNESS_RATE = 48000
SILENT_PEAK = 1e-4
# Speech shorter than this is not worth a recognizer call (a word or two misread as speech).
MIN_TRANSCRIBE_S = 0.5
# Context added either side of a speech segment so word edges are not clipped.
TRANSCRIBE_PAD_S = 0.2
# Speech segments closer than this are sent as one stretch: a recognizer reads a word alone, cut
# out between two pauses, far worse than the same word in its sentence.
JOIN_GAP_S = 1.5

_DEFAULT = object()


def empty_section(has_audio: bool) -> dict[str, Any]:
    return {
        "has_audio": has_audio,
        "tempo_bpm": None,
        "beats_s": [],
        "beats_per_bar": None,
        "downbeats_s": [],
        "key": None,
        "lufs": None,
        "track": None,
        "tracks": [],
        "segments": [],
        "onsets": [],
        "transcript": [],
        "transcript_provider": None,
        "transcript_error": None,
        "timings": {},
    }


def audio_section(path: str, *, transcriber: Transcriber | None | Any = _DEFAULT) -> dict[str, Any]:
    """The whole `audio` section of analysis.json for the media file at `path`.

    `transcriber=None` skips transcription; the default is pocketsphinx alone. A file with several
    audio tracks is analysed on its default one (else the first), named in `track`; `tracks` lists
    them all. Loudness is BS.1770-4 over the track's own layout (`audio_features.integrated_loudness`).
    """
    timings: dict[str, float] = {}
    clock = _Clock(timings)
    with clock("decode"):
        mono = media.read_audio(path, rate=AUDIO_RATE)
        if mono is None:
            return empty_section(False)
        tracks = audio_tracks(path)
    # read_audio's own choice, named so the later reads and the meter take the same track
    used = next((t for t in tracks if t["default"]), tracks[0])
    y, rate = mono
    doc = empty_section(True)
    doc["timings"] = timings
    doc["track"], doc["tracks"] = (
        used["index"],
        [{k: v for k, v in t.items() if k != "names"} for t in tracks],
    )
    if float(np.max(np.abs(y), initial=0.0)) < SILENT_PEAK:
        doc["segments"] = af.loudness_segments(y, rate)
        return doc  # a silent track: no tempo, key, loudness or words to speak of
    with clock("tempo"):
        bpm, beats = af.tempo_and_beats(y, rate)
    doc["tempo_bpm"] = None if bpm is None else round(bpm, 2)
    doc["beats_s"] = beats
    with clock("downbeats"):
        doc["beats_per_bar"], doc["downbeats_s"] = af.downbeats(y, rate, beats)
    with clock("key"):
        # The downbeats let the key estimator find the opening bar (the tonic chord, past any pickup).
        doc["key"] = af.estimate_key(y, rate, downbeats_s=doc["downbeats_s"])
    with clock("onsets"):
        doc["onsets"] = onset_details(y, rate, af.onsets(y, rate))  # + attack_s, centroid_hz
    with clock("segments"):
        doc["segments"] = af.sound_segments(y, rate)
    with clock("loudness"):
        full = media.read_audio(path, rate=LOUDNESS_RATE, mono=False, track=used["index"])
        if full is not None:
            doc["lufs"] = af.integrated_loudness(full[0], full[1], used["names"])
    speech = [
        s for s in doc["segments"] if s["kind"] == "speech" and s["end_s"] - s["start_s"] >= MIN_TRANSCRIBE_S
    ]
    if speech and transcriber is not None:
        with clock("transcription"):
            if transcriber is _DEFAULT:
                transcriber = build_transcriber(("pocketsphinx",))
            y16 = media.read_audio(path, rate=SPEECH_RATE, track=used["index"])
            assert y16 is not None  # the track decoded at AUDIO_RATE a moment ago
            entries, provider, error = transcribe_segments(y16[0], speech, transcriber)
            doc["transcript"], doc["transcript_provider"], doc["transcript_error"] = entries, provider, error
    return doc


def audio_tracks(path: str) -> list[dict[str, Any]]:
    """The file's audio streams: [{index, channels, layout, rate, codec, default, names}].

    `index` is the position among the audio streams (`media.read_audio`'s `track`); `names` the
    channels in decoding order as PyAV names them (FL FR FC LFE BL BR ...; "NONE" where the
    container does not say), which the loudness meter weights.
    """
    with av.open(path, metadata_errors="ignore") as c:
        return [
            {
                "index": i,
                "channels": s.codec_context.channels or len(s.layout.channels),
                "layout": s.layout.name,
                "rate": s.rate,
                "codec": s.codec_context.name,
                "default": bool(s.disposition & av.stream.Disposition.default),
                "names": [ch.name for ch in s.layout.channels],
            }
            for i, s in enumerate(c.streams.audio)
        ]


def speech_spans(segments: list[dict[str, Any]], *, join_gap_s: float = JOIN_GAP_S) -> list[dict[str, Any]]:
    """The speech segments with those less than `join_gap_s` apart joined into one span."""
    spans: list[dict[str, Any]] = []
    for s in segments:
        if s["kind"] != "speech":
            continue
        if spans and s["start_s"] - spans[-1]["end_s"] < join_gap_s:
            spans[-1]["end_s"] = s["end_s"]
        else:
            spans.append({"start_s": s["start_s"], "end_s": s["end_s"], "kind": "speech"})
    return spans


def transcribe_segments(
    y16: np.ndarray, speech: list[dict[str, Any]], transcriber: Transcriber
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """(transcript entries, provider that answered, error or None) for the speech segments of a 16 kHz track.

    One entry per speech segment: {start_s, end_s, text, words: [{text, start_s, end_s, confidence}]}
    with times in the whole track. A failure stops at the first segment that fails, keeping the
    entries already transcribed.
    """
    entries: list[dict[str, Any]] = []
    provider = None
    total = len(y16) / SPEECH_RATE
    for seg in speech:
        a = max(0.0, seg["start_s"] - TRANSCRIBE_PAD_S)
        b = min(total, seg["end_s"] + TRANSCRIBE_PAD_S)
        clip = y16[int(a * SPEECH_RATE) : int(b * SPEECH_RATE)]
        try:
            tr = transcriber.transcribe(SpeechAudio(clip, SPEECH_RATE, offset_s=a)).shifted(a)
        except (ProviderError, ConfigError) as exc:
            return entries, provider, str(exc)
        provider = tr.provider
        if not tr.text:
            continue
        words = [
            {"text": w.text, "start_s": w.start_s, "end_s": w.end_s, "confidence": w.confidence}
            for w in tr.words
        ]
        entries.append(
            {
                "start_s": words[0]["start_s"] if words else seg["start_s"],
                "end_s": words[-1]["end_s"] if words else seg["end_s"],
                "text": tr.text,
                "words": words,
            }
        )
    return entries, provider, None


class _Clock:
    def __init__(self, out: dict[str, float]) -> None:
        self.out = out

    def __call__(self, stage: str) -> _Stage:
        return _Stage(self.out, stage)


class _Stage:
    def __init__(
        self, out: dict[str, float], stage: str, now: Callable[[], float] = time.perf_counter
    ) -> None:
        self.out, self.stage, self.now = out, stage, now

    def __enter__(self) -> None:
        self.t0 = self.now()

    def __exit__(self, *exc: object) -> None:
        self.out[self.stage] = round(self.out.get(self.stage, 0.0) + self.now() - self.t0, 4)
