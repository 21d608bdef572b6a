"""The stems on the timeline: the music bed conformed to it, each plan voice line at its time, each
effect at its onset.

The mix (ducking, loudness of the sum) is the assembly stage's; these return one float32 stem each,
exactly round(duration_s * rate) samples long, plus the records of the calls that made it.

Music from any provider is conformed to the timeline (`conform_music`), inside the provider choice,
so a result that cannot be used (silent, not finite, a second long) falls back like a failed call:

- rate: resampled to the timeline's;
- tempo: the piece's tempo (as the provider reports it, else measured like the sample's) brought to
  the plan's by a phase vocoder, when they differ by more than TEMPO_TOLERANCE and at most
  MAX_TEMPO_STRETCH after folding octaves (half and double time already fit the cuts); further
  than that a stretch is heard, and the piece keeps its own tempo;
- length: cut with a 50 ms fade-out, or looped a whole number of beats at a time with a crossfade;
- loudness: mastered as nodes.mix does (target LUFS, true peak <= -1 dBTP) when any of the above
  changed it, or when it arrived more than LOUDNESS_TOLERANCE_LU off or over the ceiling.

The local synthesis knows its tempo and is made at the timeline's rate, length and loudness, so it
passes through untouched: the same samples as nodes.music.render_music.

With the plan's arrangement (`music_track(arrangement=...)`: its style, sections and loudness
envelope) the local synthesis is the arranged piece (nodes.music), and any other provider's
conformed music gets the same gain automation (`music.follow_envelope`) and mastering, so every
bed has the sample's loudness shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import pyloudnorm
from lookalike.kernels import audio_features as af
from lookalike.nodes import mix, music
from scipy import signal

from lookalike.errors import InputError, ProviderError
from lookalike.obs import get_logger

from .base import AudioResult, CallRecord, MusicRequest, SfxRequest, VoiceRequest
from .hub import LOCAL, Providers

log = get_logger("providers")

MAX_SPEEDUP = 1.6
_FADE_S = 0.01
TEMPO_TOLERANCE = 0.01
MAX_TEMPO_STRETCH = 0.08
LOUDNESS_TOLERANCE_LU = 1.0
MIN_MUSIC_S = 1.0  # shorter than this, a provider's music is not a piece to loop but a failure
_TEMPO_RATE = 22050  # the analysis's rate: the piece's tempo is measured as the sample's was
_SILENT_LEAD_DB = -30.0  # an effect that starts at its onset starts where it first reaches this (re peak)


def resample(x: np.ndarray, rate: int, to: int) -> np.ndarray:
    if rate == to:
        return x.astype(np.float32, copy=False)
    g = gcd(rate, to)
    return signal.resample_poly(x, to // g, rate // g, axis=-1).astype(np.float32)


def _place(track: np.ndarray, at_s: float, x: np.ndarray, rate: int, gain: float = 1.0) -> None:
    at = int(round(at_s * rate))
    if at >= len(track) or len(x) == 0:
        return
    seg = x[: len(track) - at] * gain
    if at < 0:
        seg, at = seg[-at:], 0
    track[at : at + len(seg)] += seg


def _stereo(samples: np.ndarray, provider: str) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1 or (x.ndim == 2 and x.shape[0] == 1):
        x = np.vstack([x.reshape(-1)] * 2)
    if x.ndim != 2 or x.shape[0] != 2:
        raise ProviderError(
            f"{provider} returned music of shape {np.shape(samples)}, neither mono nor stereo",
            transient=False,
        )
    if not np.isfinite(x).all():
        raise ProviderError(f"{provider} returned broken music (NaN or infinite samples)", transient=False)
    if not np.abs(x).max(initial=0.0) > 0.0:
        raise ProviderError(f"{provider} returned silence for music", transient=False)
    return x


def measure_tempo(x: np.ndarray, rate: int) -> float | None:
    """The tempo (BPM) of a (channels, n) piece as the analysis measures a sample's, or None."""
    mono = resample(np.asarray(x, dtype=np.float64).mean(axis=0), rate, _TEMPO_RATE)
    bpm, beats = af.tempo_and_beats(mono, _TEMPO_RATE)
    return bpm if bpm and len(beats) >= 4 else None


def conform_music(
    result: AudioResult,
    *,
    rate: int,
    duration_s: float,
    tempo_bpm: float | None,
    target_lufs: float,
    true_peak_db: float = -1.0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """A provider's music fitted to the timeline (module doc): float32 (2, round(duration_s * rate)),
    and what was done to it. Raises ProviderError for music that cannot be used."""
    name = result.record.provider
    x = _stereo(result.samples, name)
    # (a hair short of a very short timeline is rounding, not a failure: the cut and fade fit it)
    if x.shape[-1] / result.rate < min(MIN_MUSIC_S, duration_s) - 0.05:
        raise ProviderError(
            f"{name} returned {x.shape[-1] / result.rate:.2f} s of music for a {duration_s:.2f} s timeline",
            transient=False,
        )
    done: dict[str, Any] = {"provider": name}
    changed = False
    if result.rate != rate:
        x = resample(x, result.rate, rate).astype(np.float64)
        done["resampled_from"] = result.rate
        changed = True
    want = float(tempo_bpm) if tempo_bpm and tempo_bpm > 0 else music.DEFAULT_TEMPO_BPM
    have = result.tempo_bpm or measure_tempo(x, rate)
    period = None
    if have:
        done["tempo_bpm"] = round(have, 2)
        factor = want / have
        while factor > 2**0.5:  # half and double time fit the cuts as well as the tempo itself
            factor /= 2
        while factor < 2**-0.5:
            factor *= 2
        if TEMPO_TOLERANCE < abs(factor - 1.0) <= MAX_TEMPO_STRETCH:
            x = music.time_stretch(x, factor)
            done["stretched_by"] = round(factor, 4)
            changed = True
        elif abs(factor - 1.0) > MAX_TEMPO_STRETCH:
            factor = 1.0
            done["tempo_kept"] = True
        period = 60.0 / (have * factor)
    n = int(round(duration_s * rate))
    if x.shape[-1] != n:
        done["fitted_from_s"] = round(x.shape[-1] / rate, 3)
        x = music.fit_length(x, n, rate, period_s=period)
        changed = True
    if not changed:
        meter = pyloudnorm.Meter(rate)
        with np.errstate(divide="ignore"):
            lufs = float(meter.integrated_loudness(x.T)) if n >= int(0.4 * rate) else float("nan")
        off = np.isfinite(lufs) and abs(lufs - target_lufs) > LOUDNESS_TOLERANCE_LU
        changed = bool(off or music.true_peak_db(x) > true_peak_db + 0.05)
    if changed:
        x = mix.master(x, rate, target_lufs=target_lufs, true_peak_ceiling_db=true_peak_db)
        done["mastered"] = True
    return np.asarray(x, dtype=np.float32), done


def music_track(
    hub: Providers,
    request: MusicRequest,
    *,
    rate: int = 48000,
    provider: str | None = None,
    arrangement: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, CallRecord, dict[str, Any]]:
    """The music bed for the whole timeline: stereo float32 (2, round(request.duration_s * rate)).

    From `provider` (None: the hub's configured music provider), then the fallback order; each
    provider's result is conformed to the timeline inside the choice (module doc), so one that
    cannot be used moves on to the next. Returns the bed, the call's record (its `fallback_from`
    names the providers that failed) and what the conform did. `arrangement`: {style, sections,
    envelope} from the plan's music entry (module doc).
    """
    chosen = provider or hub.settings.music_provider or LOCAL
    notes: dict[str, Any] = {}
    arr = dict(arrangement or {})
    envelope = arr.get("envelope") if (arr.get("envelope") or {}).get("lufs") else None

    def make(p: Any) -> AudioResult:
        if p.name == LOCAL and arr.get("style"):
            got = _arranged_local(p, request, arr, envelope)
        else:
            got = p.compose(request if p.name == chosen else dataclasses.replace(request, model=""))
        x, done = conform_music(
            got,
            rate=rate,
            duration_s=request.duration_s,
            tempo_bpm=request.tempo_bpm,
            target_lufs=request.target_lufs,
        )
        if envelope is not None and not (p.name == LOCAL and arr.get("style")):
            x = mix.master(music.follow_envelope(x, rate, envelope), rate, target_lufs=request.target_lufs)
            done["envelope_followed"] = True
        notes.clear()
        notes.update(done)
        return dataclasses.replace(got, samples=x, rate=rate)

    result: AudioResult = hub.run("music", chosen, make)
    log.info("music_rendered", conform=notes, **result.record.to_dict())
    return result.samples, result.record, dict(notes)


def _arranged_local(p: Any, request: MusicRequest, arr: Mapping[str, Any],
                    envelope: Mapping[str, Any] | None) -> AudioResult:
    """The local provider's arranged piece (nodes.music.render_music with the plan's arrangement)."""
    tempo = request.tempo_bpm if request.tempo_bpm and request.tempo_bpm > 0 else music.DEFAULT_TEMPO_BPM
    rate = int(getattr(p, "rate", 48000))
    samples = music.render_music(
        request.duration_s, request.tempo_bpm, rate=rate, key=request.key, target_lufs=request.target_lufs,
        seed=request.seed, section_starts_s=tuple(request.section_starts_s), style=arr["style"],
        sections=tuple(arr.get("sections") or ()), envelope=envelope,
    )
    record = CallRecord(LOCAL, "music", model=p.models[0],
                        units=request.duration_s, unit="seconds")
    return AudioResult(samples, rate, record, tempo_bpm=float(tempo))


def _from_onset(x: np.ndarray) -> np.ndarray:
    """An effect that starts at its onset without the near-silence a provider may put before it."""
    peak = float(np.abs(x).max(initial=0.0))
    if peak == 0.0:
        return x
    first = int(np.argmax(np.abs(x) >= peak * 10 ** (_SILENT_LEAD_DB / 20)))
    return x[first:]


def voice_track(
    hub: Providers,
    lines: Sequence[Mapping[str, Any]],
    duration_s: float,
    *,
    rate: int = 48000,
    out_dir: Path,
    provider: str | None = None,
    clone_from: Path | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, list[CallRecord]]:
    """Speech for plan voice lines {"text", "start_s", "end_s"?, "emotion"?, "pace"?, "voice"?} placed at
    their start times. A line longer than its slot (to `end_s`, or the next line) is asked for again
    faster (up to MAX_SPEEDUP x its pace), then faded out at the slot's end."""
    n = int(round(duration_s * rate))
    if n <= 0:
        raise InputError(f"voice track duration {duration_s} s is not positive")
    track = np.zeros(n, np.float32)
    records: list[CallRecord] = []
    ordered = sorted(lines, key=lambda ln: float(ln.get("start_s", 0.0)))
    for i, line in enumerate(ordered):
        start = float(line.get("start_s", 0.0))
        nxt = float(ordered[i + 1].get("start_s", duration_s)) if i + 1 < len(ordered) else duration_s
        slot = min(float(line.get("end_s", nxt)), nxt, duration_s) - start
        if slot <= 0:
            raise InputError(f"voice line {i} starts at {start} s, outside the {duration_s:.2f} s timeline")
        req = VoiceRequest(
            text=str(line.get("text", "")),
            out_dir=out_dir,
            voice=str(line.get("voice", "")),
            emotion=str(line.get("emotion", "neutral")),
            pace=float(line.get("pace", 1.0)),
            seed=seed + i,
            clone_from=clone_from,
        )
        got: AudioResult = hub.speak(req, provider)
        records.append(got.record)
        if got.duration_s > slot:
            faster = min(2.0, req.pace * min(MAX_SPEEDUP, got.duration_s / slot * 1.05))
            if faster > req.pace:
                import dataclasses

                got = hub.speak(dataclasses.replace(req, pace=faster), provider)
                records.append(got.record)
        x = resample(got.samples, got.rate, rate)[: int(round(slot * rate))]
        fade = min(len(x), int(_FADE_S * rate))
        if fade:
            x = x.copy()
            x[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        _place(track, start, x, rate)
    return track, records


def sfx_track(
    hub: Providers,
    events: Sequence[Mapping[str, Any]],
    duration_s: float,
    *,
    rate: int = 48000,
    out_dir: Path,
    provider: str | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, list[CallRecord]]:
    """Effects {"kind": whoosh|hit|riser|click, "at_s", "gain"?} on the timeline. A hit or a click
    starts at its onset (any near-silence before its attack dropped); a whoosh peaks at it (60 % into
    the effect); a riser ends on it. One call per distinct kind."""
    n = int(round(duration_s * rate))
    if n <= 0:
        raise InputError(f"effects track duration {duration_s} s is not positive")
    track = np.zeros(n, np.float32)
    cache: dict[str, np.ndarray] = {}
    records: list[CallRecord] = []
    for ev in events:
        kind = str(ev.get("kind", ""))
        if kind not in cache:
            got = hub.effect(SfxRequest(kind=kind, out_dir=out_dir, seed=seed), provider)
            x = resample(got.samples, got.rate, rate)
            cache[kind] = _from_onset(x) if kind in ("hit", "click") else x
            records.append(got.record)
        x = cache[kind]
        length = len(x) / rate
        at = float(ev["at_s"]) - {"whoosh": 0.6 * length, "riser": length}.get(kind, 0.0)
        _place(track, at, x, rate, float(ev.get("gain", 1.0)))
    return track, records
