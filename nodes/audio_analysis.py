"""The audio section of analysis.json: tempo, beats, downbeats, key, loudness, sound-effect onsets,
music/speech/silence segments, a transcript with word times, and what the remake's music follows:
the short-term loudness envelope (`loudness_envelope`) and the sound's descriptors (`descriptors`).

The envelope is `audio_metrics.loudness_curve` (BS.1770 K-weighted mean square over 3 s, the
short-term loudness) every ENVELOPE_HOP_S on the mono analysis signal, the same function the score
and the tests measure a remake with. The descriptors (`music_descriptors`) are whole-track figures
the planner picks a groove and instruments from: brightness (energy-weighted spectral centroid),
percussiveness (the percussive share of a median-filter harmonic/percussive split), bass share
(energy under BASS_HZ), onset density and the envelope's loudness range.

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
from lookalike.kernels import audio_metrics as am
from lookalike.nodes import media
from lookalike.nodes.onset_spectrum import onset_details
from lookalike.nodes.transcribe import SPEECH_RATE, SpeechAudio, Transcriber, build_transcriber
from scipy import ndimage, signal

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

ENVELOPE_HOP_S = 1.0
ENVELOPE_WINDOW_S = 3.0
BASS_HZ = 150.0
ONSET_FLUX = 0.5
_LOUD_FRAME_DB = -30.0  # frames this far under the loudest are the noise floor, not the sound

_DEFAULT = object()


def empty_section(has_audio: bool) -> dict[str, Any]:
    return {
        "has_audio": has_audio,
        "tempo_bpm": None,
        # The tempo's share of the pulse strength over it and its metrical relatives (half, 2:3,
        # 3:2, double), and those relatives strongest first: a low confidence says a listener
        # might well count the alternative (kernels.audio_features.tempo_candidates).
        "tempo_confidence": None,
        "tempo_alternatives": [],
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
        "loudness_envelope": None,
        "descriptors": None,
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
        tempo = af.tempo_analysis(y, rate)
    doc["tempo_bpm"] = None if tempo["bpm"] is None else round(tempo["bpm"], 2)
    doc["tempo_confidence"], doc["tempo_alternatives"] = tempo["confidence"], tempo["alternatives"]
    doc["beats_s"] = tempo["beats_s"]
    with clock("downbeats"):
        doc["beats_per_bar"], doc["downbeats_s"] = af.downbeats(y, rate, doc["beats_s"])
    with clock("key"):
        # The downbeats let the key estimator find the opening bar (the tonic chord, past any pickup).
        doc["key"] = af.estimate_key(y, rate, downbeats_s=doc["downbeats_s"])
    with clock("onsets"):
        doc["onsets"] = onset_details(y, rate, af.onsets(y, rate))  # + attack_s, centroid_hz
    with clock("segments"):
        doc["segments"] = af.sound_segments(y, rate)
    with clock("envelope"):
        doc["loudness_envelope"] = loudness_envelope(y, rate)
        doc["descriptors"] = music_descriptors(y, rate, beats_s=doc["beats_s"])
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


def loudness_envelope(y: np.ndarray, rate: int, *, hop_s: float = ENVELOPE_HOP_S) -> dict[str, Any]:
    """Short-term loudness of a mono signal every `hop_s`: {hop_s, window_s, lufs: [...]} (-70 floor).

    Value i is the loudness of the 3 s window centred on i * hop_s (clipped at the ends)."""
    _, lufs = am.loudness_curve(np.asarray(y, np.float64), rate, window_s=ENVELOPE_WINDOW_S, hop_s=hop_s)
    return {"hop_s": hop_s, "window_s": ENVELOPE_WINDOW_S, "lufs": [round(float(v), 2) for v in lufs]}


def music_descriptors(y: np.ndarray, rate: int, *, beats_s: list[float] | None = None) -> dict[str, float]:
    """What a mono signal sounds like, as the planner picks music from it (module doc).

    {centroid_hz, percussiveness 0..1, bass_share 0..1, onset_rate_per_s, beat_strength, loudness_range_lu}
    over the frames within 30 dB of the loudest (a fade's tail and the silences say nothing of timbre).
    """
    hop = 2 * af.HOP  # descriptors are whole-track averages: half the frames cost half the median filters
    mag = np.asarray(af.stft_magnitude(np.asarray(y, np.float32), hop=hop), dtype=np.float64)
    power = mag**2
    freqs = np.linspace(0.0, rate / 2, mag.shape[0])
    energy = power.sum(axis=0)
    loud = energy > max(float(energy.max(initial=0.0)) * 10 ** (_LOUD_FRAME_DB / 10), 1e-12)
    out = {"centroid_hz": 0.0, "percussiveness": 0.0, "bass_share": 0.0, "onset_rate_per_s": 0.0,
           "beat_strength": 0.0, "loudness_range_lu": 0.0}
    if not loud.any():
        return out
    frame_s = hop / rate
    # Harmonic/percussive split (Fitzgerald 2010): a tone is steady along time, a hit is broad across
    # frequency; each bin goes to whichever median is larger (soft masks, power-2 Wiener weights).
    harm = ndimage.median_filter(mag, size=(1, max(3, int(0.25 / frame_s) | 1)), mode="nearest")
    perc = ndimage.median_filter(mag, size=(max(3, int(250.0 / (rate / af.N_FFT)) | 1), 1), mode="nearest")
    mask = perc**2 / (harm**2 + perc**2 + 1e-20)
    p = power[:, loud]
    w = energy[loud] / energy[loud].sum()
    centroid = (freqs[:, None] * mag[:, loud]).sum(axis=0) / (mag[:, loud].sum(axis=0) + 1e-12)
    out["centroid_hz"] = round(float((centroid * w).sum()), 1)
    out["percussiveness"] = round(float((mask[:, loud] * p).sum() / p.sum()), 4)
    out["bass_share"] = round(float(p[freqs < BASS_HZ].sum() / p.sum()), 4)
    env = np.asarray(af.onset_envelope(np.asarray(y, np.float32), rate), dtype=np.float64)
    frame_s = af.HOP / rate
    if env.size and env.max() > 0:
        # Onsets: local maxima of the flux (at least 50 ms apart) over ONSET_FLUX; a held chord's flux
        # wanders to ~0.25 (framing and beating partials), a drum hit reaches 2 to 4.
        height = max(ONSET_FLUX, 3.0 * float(np.median(env)))
        peaks, _ = signal.find_peaks(env, height=height, distance=max(1, int(0.05 / frame_s)))
        sounding = max(float(loud.sum()) * frame_s, 1.0)
        out["onset_rate_per_s"] = round(len(peaks) / sounding, 3)
        if beats_s and len(beats_s) >= 4:
            # The flux on the beats over the flux anywhere: ~1 for no pulse, 2+ for a clear one.
            idx = np.clip(np.round(np.asarray(beats_s) / frame_s).astype(int), 0, env.size - 1)
            near = ndimage.maximum_filter1d(env, size=5)[idx]
            out["beat_strength"] = round(float(near.mean() / (env.mean() + 1e-12)), 3)
    curve = np.asarray(loudness_envelope(y, rate)["lufs"])
    sounding_curve = curve[curve > -69.0]
    if sounding_curve.size:
        out["loudness_range_lu"] = round(float(np.percentile(sounding_curve, 95) - np.percentile(sounding_curve, 10)), 2)
    return out


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
