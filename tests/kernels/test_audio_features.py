"""Tests for kernels.audio_features on synthesized signals with known tempo, level, key and silence."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest
from lookalike.kernels import audio_features as af

RATE = 22050


def click_track(bpm: float, seconds: float = 12.0, rate: int = RATE, offset: float = 0.25) -> np.ndarray:
    """Short decaying 2 kHz clicks every beat, starting at `offset` seconds."""
    y = np.zeros(int(seconds * rate), dtype=np.float32)
    n = int(0.03 * rate)
    t = np.arange(n) / rate
    click = (np.sin(2 * np.pi * 2000 * t) * np.exp(-t / 0.005)).astype(np.float32)
    for beat in np.arange(offset, seconds - 0.05, 60.0 / bpm):
        i = int(beat * rate)
        y[i : i + n] += click[: len(y) - i]
    return y


@pytest.mark.parametrize("bpm", [90.0, 120.0, 140.0])
def test_tempo_of_click_tracks(bpm):
    y = click_track(bpm)
    tempo, beats = af.tempo_and_beats(y, RATE)
    assert tempo == pytest.approx(bpm, rel=0.02)
    expected = np.arange(0.25, 12.0 - 0.05, 60.0 / bpm)
    # Every tracked beat sits on a click (within one envelope frame and the click's own attack).
    err = np.abs(np.asarray(beats)[:, None] - expected[None, :]).min(axis=1)
    assert err.max() < 0.03
    assert len(beats) >= len(expected) - 2


def test_no_tempo_in_silence_or_a_steady_tone():
    assert af.tempo_and_beats(np.zeros(RATE * 4, dtype=np.float32), RATE) == (None, [])
    tone = np.sin(2 * np.pi * 440 * np.arange(RATE * 4) / RATE).astype(np.float32)
    assert af.tempo_and_beats(tone, RATE)[0] is None


@pytest.mark.parametrize("amplitude", [0.5, 0.1])
def test_loudness_of_a_sine_matches_pyloudnorm_and_theory(amplitude):
    rate = 48000
    y = (amplitude * np.sin(2 * np.pi * 997 * np.arange(rate * 5) / rate)).astype(np.float32)
    lufs = af.integrated_loudness(y, rate)
    reference = pyloudnorm.Meter(rate).integrated_loudness(y.astype(np.float64))
    assert lufs == pytest.approx(reference, abs=0.02)
    # BS.1770: a full-scale 997 Hz sine in one channel reads -3.01 LUFS.
    assert lufs == pytest.approx(-3.01 + 20 * math.log10(amplitude), abs=0.5)
    # A mono track decoded as two identical channels is still measured as mono.
    assert af.integrated_loudness(np.stack([y, y]), rate) == pytest.approx(lufs, abs=0.01)
    # A real stereo pair (two sines) sums power over channels: +3 dB.
    assert af.integrated_loudness(np.stack([y, -y * 0.999]), rate) == pytest.approx(lufs + 3.0, abs=0.1)


def test_loudness_of_silence_is_none():
    assert af.integrated_loudness(np.zeros(48000 * 2, dtype=np.float32), 48000) is None
    assert af.integrated_loudness(np.zeros(100, dtype=np.float32), 48000) is None


def test_silence_segments():
    y = np.concatenate(
        [
            np.zeros(RATE, dtype=np.float32),
            0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * RATE) / RATE).astype(np.float32),
            np.zeros(RATE, dtype=np.float32),
        ]
    )
    segs = af.loudness_segments(y, RATE)
    assert [s["kind"] for s in segs] == ["silence", "music", "silence"]
    assert segs[1]["start_s"] == pytest.approx(1.0, abs=0.06)
    assert segs[1]["end_s"] == pytest.approx(3.0, abs=0.06)
    assert segs[-1]["end_s"] == pytest.approx(4.0, abs=1e-3)


@pytest.mark.parametrize(("notes", "key"), [([60, 64, 67, 72], "C major"), ([57, 60, 64, 69], "A minor")])
def test_key_of_a_held_triad(notes, key):
    t = np.arange(RATE * 3) / RATE
    y = sum(np.sin(2 * np.pi * 440 * 2 ** ((m - 69) / 12) * t) for m in notes).astype(np.float32) * 0.1
    assert af.estimate_key(y, RATE) == key
