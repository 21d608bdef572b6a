"""Local music: an honest procedural groove at the sample's tempo and key, loudness-normalized.

Four-on-the-floor kick on every beat, hats on the off-beats, snare on beats 2 and 4, a bass line on
the chord roots and pad chords (one chord per bar, i-VI-III-VII in minor, I-V-vi-IV in major). At
each section start a crash marks the downbeat after a snare fill, and the progression moves on, so
the sample's structure is heard. Beats fall at exactly beat_offset_s + k * 60 / tempo seconds.

The result is normalized to an integrated loudness (ITU-R BS.1770 via pyloudnorm) and limited so
its true peak (4x oversampled) stays at or below -1 dBTP, the streaming delivery ceiling.

With the plan's `style`, `sections` and `envelope` (coordinator.planner's music entry, from the
sample's analysis) the piece follows the sample instead of looping one pattern:

- groove: the drum pattern per bar of sixteenths (`GROOVES`: four on the floor, half time,
  breakbeat, or an ambient bed with no kick), hats per beat, bass voice (sub sine, saw, round) and
  lead (arpeggio, bells, none) as the style names them; the pad's filter opens with the sample's
  brightness, and the chord progression is the groove's own;
- arrangement per section role: an intro or outro has no kick and snare (pads, bass, a soft hat
  late in an intro), a build adds the kick and a rising snare roll into what follows, a break drops
  the kick, a drop plays everything; every section start gets a fill and a crash;
- envelope: gain automation (`follow_envelope`) so the piece's short-term loudness (3 s windows,
  kernels.audio_metrics.loudness_curve) has the sample's shape, fades included; mastering then
  moves the whole curve to the target integrated loudness without changing its shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pyloudnorm
from lookalike.kernels import audio_metrics as am
from scipy import ndimage, signal, sparse

from lookalike.errors import InputError

SLOW_TEMPO_BPM = 95.0
DEFAULT_TEMPO_BPM = 120.0
DEFAULT_KEY = "A minor"
TRUE_PEAK_CEILING_DB = -1.0
_LIMIT_TO_DB = -1.3  # the limiter aims a little under the ceiling: resampling overshoots by ~0.1 dB
_PITCH_CLASSES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_PROGRESSIONS = {  # (semitones above the tonic, minor chord?) per bar
    True: [(0, True), (8, False), (3, False), (10, False)],
    False: [(0, False), (7, False), (9, True), (5, False)],
}


def parse_key(key: str | None) -> tuple[int, bool]:
    """(pitch class of the tonic 0..11, minor?) from e.g. 'A minor', 'C# major', 'Bb', 'F#m'."""
    text = DEFAULT_KEY if not key else key
    m = re.fullmatch(r"\s*([A-Ga-g])\s*([#b♯♭]?)\s*(m|min|minor|maj|major)?\s*", text)
    if not m:
        raise InputError(f"unknown musical key {key!r}", hint="write it like 'A minor', 'C# major' or 'Bb'")
    pc = _PITCH_CLASSES[m.group(1).lower()] + {"#": 1, "♯": 1, "b": -1, "♭": -1, "": 0}[m.group(2)]
    mode = (m.group(3) or "major").lower()
    return pc % 12, mode in ("m", "min", "minor")


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def _kick(rate: int) -> np.ndarray:
    t = np.arange(int(0.35 * rate)) / rate
    freq = 48.0 + 110.0 * np.exp(-t / 0.025)
    body = np.sin(2 * np.pi * np.cumsum(freq) / rate) * np.exp(-t / 0.16)
    click = np.exp(-t / 0.002) * 0.5
    return (body + click) * np.minimum(1.0, t * rate / 8.0 + 1.0 / 8.0)


def _noise_hit(
    rng: np.random.Generator, rate: int, length_s: float, decay_s: float, bright: bool
) -> np.ndarray:
    n = int(length_s * rate)
    x = rng.standard_normal(n)
    if bright:  # a two-zero high-pass: hats and crash live above a few kHz
        x = np.diff(np.diff(x, prepend=0.0), prepend=0.0) * 0.5
    return x * np.exp(-np.arange(n) / rate / decay_s)


def _snare(rng: np.random.Generator, rate: int) -> np.ndarray:
    t = np.arange(int(0.2 * rate)) / rate
    tone = np.sin(2 * np.pi * 185.0 * t) * np.exp(-t / 0.05)
    return 0.6 * tone + 0.5 * _noise_hit(rng, rate, 0.2, 0.06, bright=False)


def _saw(freq: float, n: int, rate: int, phase: float = 0.0) -> np.ndarray:
    return 2.0 * ((phase + freq * np.arange(n) / rate) % 1.0) - 1.0


def _one_pole_lowpass(x: np.ndarray, cutoff_hz: float, rate: int) -> np.ndarray:
    a = np.exp(-2 * np.pi * cutoff_hz / rate)
    return signal.lfilter([1 - a], [1, -a], x)


def _add(buf: np.ndarray, at: int, clip: np.ndarray, gain: float) -> None:
    if at >= buf.shape[-1] or at + clip.shape[-1] <= 0:
        return
    lo = max(0, -at)
    hi = min(clip.shape[-1], buf.shape[-1] - at)
    buf[..., at + lo : at + hi] += gain * clip[..., lo:hi]


def true_peak_db(x: np.ndarray) -> float:
    """True peak in dBTP: the sample peak of the signal 4x oversampled (ITU-R BS.1770-4 annex 2)."""
    up = signal.resample_poly(np.atleast_2d(x), 4, 1, axis=-1)
    return float(20 * np.log10(max(float(np.abs(up).max()), 1e-12)))


def _limit(x: np.ndarray, ceiling_db: float, rate: int) -> np.ndarray:
    """A linked-stereo look-ahead peak limiter on the 4x oversampled envelope."""
    ceiling = 10 ** (ceiling_db / 20)
    up = np.abs(signal.resample_poly(x, 4, 1, axis=-1)).max(axis=0)
    env = np.maximum(up[: 4 * x.shape[-1]].reshape(-1, 4).max(axis=1), np.abs(x).max(axis=0))
    need = np.minimum(1.0, ceiling / np.maximum(env, 1e-12))
    width = max(1, int(0.003 * rate))
    # Min over ±width, then a mean over width: every smoothed gain is <= the gain its sample needs.
    gain = ndimage.uniform_filter1d(ndimage.minimum_filter1d(need, 2 * width + 1), width + 1)
    gain = np.minimum(gain, need)
    return x * gain[None, :]


def render_music(
    duration_s: float,
    tempo_bpm: float | None,
    *,
    rate: int = 48000,
    key: str | None = None,
    target_lufs: float = -16.0,
    seed: int = 0,
    section_starts_s: Sequence[float] = (),
    beat_offset_s: float = 0.0,
    style: Mapping | None = None,
    sections: Sequence[Mapping] = (),
    envelope: Mapping | None = None,
) -> np.ndarray:
    """A stereo groove of exactly round(duration_s * rate) samples: float32 shape (2, n).

    `tempo_bpm` None or <= 0 means DEFAULT_TEMPO_BPM (120): the sample had no measurable beat, and a
    moderate tempo is the least surprising. `key` like 'A minor' (default DEFAULT_KEY). Beats (kick
    onsets) at beat_offset_s + k * 60 / tempo_bpm; bars of four beats start at the first beat. Each
    time in `section_starts_s` gets a crash on the nearest beat, a snare fill in the beat before it
    and the next chord progression. Loudness is `target_lufs` integrated (clips under 0.4 s are too
    short to measure and are only peak-limited); true peak <= -1 dBTP. Deterministic in `seed`.

    `style`, `sections` ([{start_s, end_s, role}]) and `envelope` ({hop_s, lufs}) make the arranged
    piece of the module doc; without `style` the plain groove above.
    """
    if style is not None:
        return _arranged(duration_s, tempo_bpm, rate=rate, key=key, target_lufs=target_lufs, seed=seed,
                         section_starts_s=section_starts_s, beat_offset_s=beat_offset_s, style=style,
                         sections=sections, envelope=envelope)
    n = int(round(float(duration_s) * rate))
    if n <= 0:
        raise InputError(
            f"music duration {duration_s} s is not positive", hint="ask for a duration above 0 s"
        )
    tempo = DEFAULT_TEMPO_BPM if not tempo_bpm or tempo_bpm <= 0 else float(tempo_bpm)
    if not 20.0 <= tempo <= 400.0:
        raise InputError(f"tempo {tempo_bpm} BPM is out of range", hint="use a tempo between 20 and 400 BPM")
    tonic, minor = parse_key(key)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x3C])
    period = 60.0 / tempo
    first = int(np.ceil(-beat_offset_s / period - 1e-9))
    last = int(np.floor((duration_s - beat_offset_s) / period))
    beats = [(k, beat_offset_s + k * period) for k in range(first, last + 1)]
    sections = sorted(float(s) for s in section_starts_s if 0.0 < float(s) < duration_s)
    section_beats = {int(round((s - beat_offset_s) / period)) for s in sections}

    drums = np.zeros((2, n))
    music = np.zeros((2, n))
    kick = _kick(rate)
    for k, t in beats:
        at = int(round(t * rate))
        _add(drums, at, np.vstack([kick, kick]), 0.9)
        if k % 4 in (1, 3):
            sn = _snare(rng, rate)
            _add(drums, at, np.vstack([sn * 0.9, sn]), 0.45)
        hat = _noise_hit(rng, rate, 0.06, 0.018, bright=True)
        # Off-beat hats read as a pulse twice as fast; at slow tempi that doubled pulse is what a
        # listener (and a tempo estimator) locks onto, so there the hats sit on the beat.
        hat_at = t + period / 2 if tempo >= SLOW_TEMPO_BPM else t
        _add(
            drums,
            int(round(hat_at * rate)),
            np.vstack([hat * 0.7, hat]),
            0.35 * rng.uniform(0.8, 1.0),
        )
        if k + 1 in section_beats:  # fill: four sixteenth-note snares leading into the section
            for j in range(4):
                sn = _snare(rng, rate)
                _add(drums, int(round((t + j * period / 4) * rate)), np.vstack([sn, sn]), 0.2 + 0.08 * j)
        if k in section_beats:
            crash = _noise_hit(rng, rate, 1.5, 0.5, bright=True)
            _add(drums, at, np.vstack([crash, crash]), 0.35)

    bar = 4 * period
    progression = _PROGRESSIONS[minor]
    bass_root = 28 + (tonic - 4) % 12  # E1..D#2
    pad_root = 57 + (tonic - 9) % 12  # A3..G#4
    for b in range(int(np.floor(first / 4)), int(np.ceil((last + 1) / 4)) + 1):
        start = beat_offset_s + b * bar
        section = sum(1 for s in sections if s <= start + 1e-6)
        degree, chord_minor = progression[(b + section) % 4]
        # Bass: the chord root on every beat, an octave jump on the last eighth of the bar.
        for q in range(4):
            t = start + q * period
            note = bass_root + degree + (12 if q == 3 and b % 2 else 0)
            length = int(period * 0.9 * rate)
            env = np.minimum(1.0, np.arange(length) / (0.004 * rate)) * np.exp(
                -np.arange(length) / rate / 0.25
            )
            tone = _one_pole_lowpass(_saw(_midi_hz(note), length, rate), 600.0, rate) * env
            _add(music, int(round(t * rate)), np.vstack([tone, tone]), 0.5)
        # Pad: the triad for the whole bar, two detuned saws per note spread left and right.
        length = int(bar * rate)
        ts = np.arange(length) / rate
        env = np.minimum(1.0, ts / 0.25) * np.minimum(1.0, (bar - ts) / 0.2).clip(0.0, 1.0)
        voice = pad_root + degree + (12 if section % 2 else 0)
        chord = [voice, voice + (3 if chord_minor else 4), voice + 7]
        left = sum(_saw(_midi_hz(v) * 0.997, length, rate, rng.uniform()) for v in chord)
        right = sum(_saw(_midi_hz(v) * 1.003, length, rate, rng.uniform()) for v in chord)
        pad = np.vstack([_one_pole_lowpass(left, 1800.0, rate), _one_pole_lowpass(right, 1800.0, rate)]) * env
        _add(music, int(round(start * rate)), pad, 0.06)

    return _master(drums + music, rate, target_lufs)


def _master(x: np.ndarray, rate: int, target_lufs: float) -> np.ndarray:
    """Gain to `target_lufs` integrated and limit to the true-peak ceiling, a few rounds until both hold."""
    peak = float(np.abs(x).max())
    if peak == 0.0:
        return x.astype(np.float32)
    x = x / peak
    meter = pyloudnorm.Meter(rate)
    measurable = x.shape[-1] >= int(0.4 * rate)
    for _ in range(6):
        if measurable:
            loudness = meter.integrated_loudness(x.T)
            if np.isfinite(loudness):
                x = x * 10 ** ((target_lufs - loudness) / 20)
        if true_peak_db(x) <= TRUE_PEAK_CEILING_DB:
            break
        x = _limit(x, _LIMIT_TO_DB, rate)
    tp = true_peak_db(x)
    if tp > TRUE_PEAK_CEILING_DB:  # the last gain step left a peak over: trade a little loudness
        x = x * 10 ** ((_LIMIT_TO_DB - tp) / 20)
    return x.astype(np.float32)


# ---------------------------------------------------------------- the arranged piece

# Sixteenth steps of one bar: kick, snare (2: full, 1: ghost), and the groove's progression
# (semitones above the tonic; minor chord?) for minor and major keys.
GROOVES: dict[str, dict] = {
    "four_on_floor": {"kick": (0, 4, 8, 12), "snare": {4: 2, 12: 2},
                      "prog": {True: [(0, True), (8, False), (3, False), (10, False)],
                               False: [(0, False), (7, False), (9, True), (5, False)]}},
    "half_time": {"kick": (0, 10), "snare": {8: 2, 15: 1},
                  "prog": {True: [(0, True), (5, True), (8, False), (7, False)],
                           False: [(0, False), (9, True), (5, False), (7, False)]}},
    "breakbeat": {"kick": (0, 6, 10), "snare": {4: 2, 7: 1, 12: 2, 15: 1},
                  "prog": {True: [(0, True), (10, False), (8, False), (10, False)],
                           False: [(0, False), (5, False), (9, True), (7, False)]}},
    "ambient": {"kick": (), "snare": {},
                "prog": {True: [(0, True), (8, False), (5, True), (3, False)],
                         False: [(0, False), (4, True), (9, True), (5, False)]}},
}
ENVELOPE_ROUNDS = 200
ENVELOPE_BLOCK_S = 0.25
ENVELOPE_FLOOR_DB = -60.0  # the deepest the automation cuts: the sample's silences, near enough
_ROLE_PARTS = {  # which parts play in each section role
    "intro": {"pad", "bass", "hat_late", "lead"},
    "build": {"pad", "bass", "kick", "hat", "lead", "roll"},
    "drop": {"pad", "bass", "kick", "snare", "hat", "lead"},
    "break": {"pad", "bass", "hat", "lead"},
    "outro": {"pad", "bass"},
}


def _bell(freq: float, rate: int, length_s: float = 1.2) -> np.ndarray:
    t = np.arange(int(length_s * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) + 0.35 * np.sin(2 * np.pi * 2.76 * freq * t) * np.exp(-t / 0.15)) * np.exp(
        -t / 0.45
    ) * np.minimum(1.0, t / 0.002)


def _pluck(freq: float, rate: int, length_s: float, cutoff_hz: float) -> np.ndarray:
    n = int(length_s * rate)
    tone = _one_pole_lowpass(_saw(freq, n, rate), cutoff_hz, rate)
    return tone * np.exp(-np.arange(n) / rate / 0.09) * np.minimum(1.0, np.arange(n) / (0.002 * rate))


def _bass_note(kind: str, freq: float, n: int, rate: int) -> np.ndarray:
    t = np.arange(n) / rate
    attack = np.minimum(1.0, t / 0.005) * np.minimum(1.0, (n / rate - t) / 0.02).clip(0.0, 1.0)
    if kind == "sub":
        return np.sin(2 * np.pi * freq * t) * attack * 1.4
    if kind == "saw":
        return _one_pole_lowpass(_saw(freq, n, rate), 900.0, rate) * attack * np.exp(-t / 0.4)
    tri = 2 * np.abs(_saw(freq, n, rate)) - 1  # "round": a triangle, soft like a finger-played bass
    return _one_pole_lowpass(tri, 500.0, rate) * attack * np.exp(-t / 0.6) * 1.2


def _role_at(sections: Sequence[Mapping], t: float) -> tuple[str, float, float]:
    """(role, start_s, end_s) of the section holding time t ("drop" where none is given)."""
    for sec in sections:
        if float(sec["start_s"]) - 1e-6 <= t < float(sec["end_s"]):
            return str(sec.get("role") or "drop"), float(sec["start_s"]), float(sec["end_s"])
    return "drop", 0.0, float("inf")


def _arranged(
    duration_s: float, tempo_bpm: float | None, *, rate: int, key: str | None, target_lufs: float, seed: int,
    section_starts_s: Sequence[float], beat_offset_s: float, style: Mapping, sections: Sequence[Mapping],
    envelope: Mapping | None,
) -> np.ndarray:
    n = int(round(float(duration_s) * rate))
    if n <= 0:
        raise InputError(f"music duration {duration_s} s is not positive", hint="ask for a duration above 0 s")
    tempo = DEFAULT_TEMPO_BPM if not tempo_bpm or tempo_bpm <= 0 else float(tempo_bpm)
    if not 20.0 <= tempo <= 400.0:
        raise InputError(f"tempo {tempo_bpm} BPM is out of range", hint="use a tempo between 20 and 400 BPM")
    groove_name = str(style.get("groove") or "four_on_floor")
    if groove_name not in GROOVES:
        raise InputError(f"unknown groove {groove_name!r}", hint=f"use one of {', '.join(GROOVES)}")
    groove = GROOVES[groove_name]
    tonic, minor = parse_key(key)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x3D])
    period = 60.0 / tempo
    step = period / 4
    bar = 4 * period
    hats = max(1, min(4, int(style.get("hats_per_beat") or 2)))
    # Section starts: the roles' boundaries and the scene cuts, each marked by a fill and a crash.
    marks = sorted({round(float(t), 3) for t in section_starts_s if 0.0 < float(t) < duration_s}
                   | {round(float(sec["start_s"]), 3) for sec in sections if 0.0 < float(sec["start_s"]) < duration_s})
    mark_beats = {int(round((t - beat_offset_s) / period)) for t in marks}
    drums, tonal = np.zeros((2, n)), np.zeros((2, n))
    kick = _kick(rate)
    b0 = int(np.floor(-beat_offset_s / bar))
    b1 = int(np.ceil((duration_s - beat_offset_s) / bar))
    progression = groove["prog"][minor]
    bass_root = 28 + (tonic - 4) % 12
    pad_root = 57 + (tonic - 9) % 12
    cutoff = float(style.get("pad_cutoff_hz") or 1800.0)
    for b in range(b0, b1 + 1):
        start = beat_offset_s + b * bar
        role, sec_start, sec_end = _role_at(sections, max(0.0, start + 1e-3))
        parts = _ROLE_PARTS.get(role, _ROLE_PARTS["drop"])
        section = sum(1 for t in marks if t <= start + 1e-6)
        degree, chord_minor = progression[(b - b0 + section) % 4]
        for q in range(16):
            t = start + q * step
            at = int(round(t * rate))
            beat_k = int(round((t - beat_offset_s) / period)) if q % 4 == 0 else None
            if "kick" in parts and q in groove["kick"]:
                _add(drums, at, np.vstack([kick, kick]), 0.9 if q % 4 == 0 else 0.7)
            if "snare" in parts and q in groove["snare"]:
                sn = _snare(rng, rate)
                _add(drums, at, np.vstack([sn * 0.9, sn]), 0.45 if groove["snare"][q] == 2 else 0.15)
            late = "hat_late" in parts and t >= sec_start + 0.5 * (sec_end - sec_start)
            if ("hat" in parts or late) and (q % (4 // hats) == (2 if hats == 1 and tempo >= SLOW_TEMPO_BPM else 0)
                                             if hats < 4 else True):
                hat = _noise_hit(rng, rate, 0.05, 0.015, bright=True)
                accent = 1.0 if q % 4 == 2 else 0.6
                _add(drums, at, np.vstack([hat * 0.7, hat]), (0.12 if late else 0.3) * accent * rng.uniform(0.8, 1.0))
            if groove_name == "ambient" and "hat" in parts and q % 2 == 0:
                sh = _noise_hit(rng, rate, 0.08, 0.03, bright=True)
                _add(drums, at, np.vstack([sh, sh * 0.8]), 0.08)
            if "roll" in parts and sec_end - bar <= t < sec_end:  # the build's last bar: a rising roll
                sn = _snare(rng, rate)
                _add(drums, at, np.vstack([sn, sn]), 0.1 + 0.35 * (t - (sec_end - bar)) / bar)
            if beat_k is not None and beat_k + 1 in mark_beats and role not in ("intro", "outro"):
                for j in range(4):  # a fill: four sixteenths into the next section
                    sn = _snare(rng, rate)
                    _add(drums, int(round((t + j * step) * rate)), np.vstack([sn, sn]), 0.18 + 0.07 * j)
            if beat_k is not None and beat_k in mark_beats:
                crash = _noise_hit(rng, rate, 1.5, 0.5, bright=True)
                _add(drums, at, np.vstack([crash, crash]), 0.3)
        # Bass: the chord root, note lengths by voice (sub: half bars, saw: eighths, round: quarters).
        kind = str(style.get("bass") or "round")
        per_bar = {"sub": 2, "saw": 8, "round": 4}.get(kind, 4)
        for q in range(per_bar):
            t = start + q * bar / per_bar
            note = bass_root + degree + (12 if kind == "saw" and q % 4 == 3 else 0)
            tone = _bass_note(kind, _midi_hz(note), int(bar / per_bar * 0.92 * rate), rate)
            _add(tonal, int(round(t * rate)), np.vstack([tone, tone]), 0.45)
        # Pad: the triad for the bar, detuned saws left and right, its filter at the sample's brightness.
        length = int(bar * rate)
        ts = np.arange(length) / rate
        env = np.minimum(1.0, ts / 0.3) * np.minimum(1.0, (bar - ts) / 0.25).clip(0.0, 1.0)
        voice = pad_root + degree
        chord = [voice, voice + (3 if chord_minor else 4), voice + 7]
        left = sum(_saw(_midi_hz(v) * 0.997, length, rate, rng.uniform()) for v in chord)
        right = sum(_saw(_midi_hz(v) * 1.003, length, rate, rng.uniform()) for v in chord)
        pad = np.vstack([_one_pole_lowpass(left, cutoff, rate), _one_pole_lowpass(right, cutoff, rate)]) * env
        _add(tonal, int(round(start * rate)), pad, 0.07 if groove_name != "ambient" else 0.11)
        lead = str(style.get("lead") or "none")
        if "lead" in parts and lead == "arp":
            for q in range(16):
                v = chord[q % 3] + 12 * (1 + (q // 3) % 2)
                tone = _pluck(_midi_hz(v), rate, step * 0.95, min(8000.0, 2.0 * cutoff))
                pan = 0.5 + 0.3 * np.sin(q)
                _add(tonal, int(round((start + q * step) * rate)), np.vstack([tone * (1 - pan), tone * pan]) * 2, 0.12)
        elif "lead" in parts and lead == "bell":
            for q in (0, 6, 8, 14):
                tone = _bell(_midi_hz(chord[(q // 2) % 3] + 12), rate)
                _add(tonal, int(round((start + q * step) * rate)), np.vstack([tone * 0.8, tone]), 0.12)
    x = drums + tonal
    if envelope and envelope.get("lufs"):
        x = follow_envelope(x, rate, envelope)
    return _master(x, rate, target_lufs)


def short_term_curve(x: np.ndarray, rate: int, hop_s: float = 1.0) -> np.ndarray:
    """Short-term loudness (3 s windows) of a (channels, n) or (n,) signal every hop_s: the mono mix's
    `audio_metrics.loudness_curve`, as the analysis measures a sample's envelope."""
    mono = np.atleast_2d(np.asarray(x, dtype=np.float64)).mean(axis=0)
    return am.loudness_curve(mono, rate, window_s=3.0, hop_s=hop_s)[1]


def follow_envelope(x: np.ndarray, rate: int, envelope: Mapping, *, rounds: int = ENVELOPE_ROUNDS) -> np.ndarray:
    """`x` ((channels, n)) with gain automation that gives its short-term loudness `envelope`'s shape.

    The gain is one power per ENVELOPE_BLOCK_S block; a 3 s window's mean square is then a sum of
    block energies times those powers, a non-negative deconvolution that Richardson-Lucy updates
    solve (each block's power scaled by the windows' want / have, weighted by its share of them;
    they keep powers positive and converge, where setting each knot to its own window's error
    oscillates). Targets are the envelope in LUFS interpolated onto the windows; the gain moves
    linearly in dB between block centres, and never below ENVELOPE_FLOOR_DB under its largest.
    """
    from lookalike.kernels.audio_features import k_weight

    a = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n = a.shape[-1]
    hop = float(envelope.get("hop_s") or 1.0)
    given = np.maximum(np.asarray(envelope["lufs"], dtype=np.float64), -70.0)
    block = max(1, int(round(ENVELOPE_BLOCK_S * rate)))
    n_blocks = -(-n // block)
    power = np.zeros(n_blocks * block)
    power[:n] = k_weight(a.mean(axis=0), rate) ** 2
    energy = power.reshape(n_blocks, block).sum(axis=1) + 1e-20
    half = int(round(1.5 / ENVELOPE_BLOCK_S))  # the 3 s window, in blocks either side of its centre
    centres = np.arange(n_blocks + 1)
    lo, hi = np.clip(centres - half, 0, n_blocks), np.clip(centres + half, 0, n_blocks)
    # Window c covers blocks lo[c]..hi[c]: a band matrix, sparse so an hour's piece stays small.
    rows = np.repeat(centres, hi - lo)
    cols = np.concatenate([np.arange(a_, b_) for a_, b_ in zip(lo, hi, strict=True)])
    span = np.maximum(hi - lo, 1) * block
    want_lufs = np.interp(centres * ENVELOPE_BLOCK_S, np.arange(len(given)) * hop, given)
    target = 10 ** ((want_lufs + 0.691) / 10) * span
    mat = sparse.csr_matrix((energy[cols], (rows, cols)), shape=(len(centres), n_blocks))  # unit powers
    # Each window's row divided by its target, so quiet and loud windows weigh alike; then the update
    # is w_j *= sum_c A_cj / (A w)_c / sum_c A_cj / T_c.
    col = mat.T @ (1.0 / target) + 1e-30
    w = np.ones(n_blocks)
    for _ in range(rounds):
        w = w * (mat.T @ (1.0 / (mat @ w))) / col
        w = np.maximum(w / w.max(), 10 ** (ENVELOPE_FLOOR_DB / 10))
    gain_db = 10 * np.log10(w)
    at = (np.arange(n_blocks) + 0.5) * block
    return a * 10 ** (np.interp(np.arange(n), at, gain_db) / 20)[None, :]


# ---------------------------------------------------------------- fitting music made elsewhere

_STRETCH_BLOCK = 512  # output frames per block of the phase vocoder


def time_stretch(x: np.ndarray, factor: float, *, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    """`x` ((channels, n) or (n,)) played `factor` times as fast at the same pitch: a phase vocoder.

    Length round(n / factor). Each output frame takes the magnitudes interpolated between the two
    input frames around its position and advances each bin's phase by that bin's measured frequency,
    so tones keep their pitch; drums smear a little (a 2048-point window, 43 ms at 48 kHz), which is
    why callers keep the factor near 1.
    """
    if not factor > 0:
        raise InputError(f"time-stretch factor {factor} is not positive", hint="pass a factor above 0")
    a = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n = a.shape[-1]
    n_out = int(round(n / factor))
    shape = np.shape(x)[:-1] + (n_out,)
    if n_out == 0:
        return np.zeros(shape)
    if n < n_fft:  # shorter than one window: nothing to hear a pitch in, resample it
        return signal.resample(a, n_out, axis=-1).reshape(shape)
    window = np.hanning(n_fft)
    n_frames = 1 + (n + n_fft // 2 * 2 + hop - n_fft) // hop
    # One zero frame past the last, so every step has the frame after it.
    pad = np.pad(a, ((0, 0), (n_fft // 2, n_frames * hop + n_fft - n - n_fft // 2)))
    steps = np.arange(0.0, n_frames, factor)
    expected = 2 * np.pi * hop * np.arange(n_fft // 2 + 1) / n_fft  # each bin's phase advance per hop
    out = np.zeros((a.shape[0], n_fft + hop * (len(steps) - 1)))
    phase = None
    # In blocks of output frames, so a five-minute piece never holds its whole spectrogram at once.
    for b0 in range(0, len(steps), _STRETCH_BLOCK):
        st = steps[b0 : b0 + _STRETCH_BLOCK]
        i = st.astype(np.int64)
        lo = int(i[0])
        idx = np.arange(n_fft)[None, :] + hop * np.arange(lo, int(i[-1]) + 2)[:, None]
        spec = np.fft.rfft(pad[:, idx] * window, axis=-1)  # (channels, frames, bins)
        mag, ang = np.abs(spec), np.angle(spec)
        j = i - lo
        if phase is None:
            phase = ang[:, 0]
        # Each bin's phase advances by its measured frequency between the two frames around a step.
        dphi = ang[:, j + 1] - ang[:, j] - expected
        advance = expected + (dphi - 2 * np.pi * np.round(dphi / (2 * np.pi)))
        run = np.cumsum(advance, axis=1)
        phases = phase[:, None] + np.concatenate([np.zeros_like(run[:, :1]), run[:, :-1]], axis=1)
        phase = phase + run[:, -1]
        frac = (st - i)[None, :, None]
        frames = ((1 - frac) * mag[:, j] + frac * mag[:, j + 1]) * np.exp(1j * phases)
        chunks = np.fft.irfft(frames, n_fft, axis=-1) * window
        for k in range(len(st)):
            at = (b0 + k) * hop
            out[:, at : at + n_fft] += chunks[:, k]
    # Overlap-add normalized by the summed squared window (constant away from the two ends).
    norm = np.zeros(out.shape[-1])
    for k in range(len(steps)):
        norm[k * hop : k * hop + n_fft] += window**2
    out = out / np.maximum(norm, 1e-3 * norm.max())
    out = out[:, n_fft // 2 : n_fft // 2 + n_out]
    if out.shape[-1] < n_out:
        out = np.pad(out, ((0, 0), (0, n_out - out.shape[-1])))
    return out.reshape(shape)


def fit_length(
    x: np.ndarray, n: int, rate: int, *, period_s: float | None = None, crossfade_s: float = 0.25
) -> np.ndarray:
    """`x` ((channels, m) or (m,)) made exactly `n` samples long: cut (with a 50 ms fade-out) or looped.

    A loop repeats the piece's first hop + crossfade samples every hop, each repeat crossfaded into
    the previous one (equal power, `crossfade_s`); with `period_s` (the beat period) the hop is a
    whole number of beats, so the pulse runs on unbroken across the seams.
    """
    a = np.atleast_2d(np.asarray(x, dtype=np.float64))
    m = a.shape[-1]
    if m == 0:
        raise InputError("no music to fit to the timeline", hint="render the music again")
    shape = np.shape(x)[:-1] + (n,)
    if m >= n:
        out = a[:, :n].copy()
        if m > n:
            fade = min(n, int(round(0.05 * rate)))
            out[:, n - fade :] *= np.linspace(1.0, 0.0, fade)
        return out.reshape(shape)
    xf = min(int(round(crossfade_s * rate)), m // 4)
    hop = m - xf
    if period_s and period_s * rate <= hop:
        hop = int(round(np.floor(hop / (period_s * rate)) * period_s * rate))
    ramp = np.linspace(0.0, 0.5 * np.pi, xf)
    out = np.zeros((a.shape[0], n + hop + xf))
    for k, at in enumerate(range(0, n, hop)):
        piece = a[:, : hop + xf].copy()
        if k:
            piece[:, :xf] *= np.sin(ramp)
        piece[:, hop:] *= np.cos(ramp)
        out[:, at : at + hop + xf] += piece
    return out[:, :n].reshape(shape)
