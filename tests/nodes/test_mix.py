"""nodes.mix: ducking depth and timing, loudness, true peak, lengths, silence, and A/V sync in the final file."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyloudnorm
import pytest
from lookalike.nodes import media
from lookalike.nodes.mix import duck_gain, master, mix_timeline
from lookalike.nodes.music import render_music, true_peak_db

from lookalike.errors import InputError

RATE = 48000


def _tone(freq: float, seconds: float, amp: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _level_db(x: np.ndarray, freq: float, start_s: float, end_s: float, rate: int = RATE) -> float:
    """Amplitude (dB) of the `freq` component of channel 0 in [start_s, end_s): a lock-in measurement."""
    a, b = int(start_s * rate), int(end_s * rate)
    seg = np.atleast_2d(x)[0, a:b].astype(np.float64)
    t = np.arange(a, b) / rate
    i = 2 * np.mean(seg * np.sin(2 * np.pi * freq * t))
    q = 2 * np.mean(seg * np.cos(2 * np.pi * freq * t))
    return float(20 * np.log10(np.hypot(i, q) + 1e-12))


@pytest.mark.parametrize("duck_db", [-6.0, -10.0, -18.0])
def test_music_drops_by_duck_db_while_the_voice_speaks(duck_db: float) -> None:
    """A 100 Hz bed under a 2 kHz 'voice' in [2, 4) s: the bed's own level drops by duck_db there."""
    music = np.vstack([_tone(100, 6, 0.1)] * 2)
    voice = _tone(2000, 6, 0.1)
    voice[: 2 * RATE] = 0
    voice[4 * RATE :] = 0
    out = mix_timeline(music, voice, rate=RATE, duck_db=duck_db)
    before = _level_db(out, 100, 0.5, 1.5)
    during = _level_db(out, 100, 2.5, 3.5)
    after = _level_db(out, 100, 5.0, 6.0)
    assert during - before == pytest.approx(duck_db, abs=0.5)
    assert after == pytest.approx(before, abs=0.2)  # released again once the voice has gone


def test_duck_starts_before_the_voice_and_releases_after_the_hold() -> None:
    voice = np.zeros(4 * RATE, np.float32)
    voice[RATE : 2 * RATE] = _tone(300, 1, 0.2)
    g_db = 20 * np.log10(duck_gain(voice, RATE, duck_db=-10, attack_s=0.05, release_s=0.4, hold_s=0.25))
    assert g_db[int(0.9 * RATE)] == pytest.approx(0.0)
    assert g_db[RATE + int(0.005 * RATE)] < -9.0  # already (nearly) down when the voice lands
    assert g_db[int(1.5 * RATE)] == pytest.approx(-10.0)
    assert g_db[int(2.2 * RATE)] == pytest.approx(-10.0)  # held over the pause
    assert -10.0 < g_db[int(2.45 * RATE)] < 0.0  # releasing
    assert g_db[int(2.8 * RATE)] == pytest.approx(0.0)
    assert np.all(np.diff(g_db[: int(1.5 * RATE)]) <= 1e-9)  # a monotone fade down, no pumping


def test_short_pauses_between_words_do_not_pump_the_music() -> None:
    voice = np.zeros(3 * RATE, np.float32)
    for s in (0.5, 0.9, 1.3):  # 0.3 s words, 0.1 s gaps
        voice[int(s * RATE) : int((s + 0.3) * RATE)] = _tone(300, 0.3, 0.2)
    g_db = 20 * np.log10(duck_gain(voice, RATE, duck_db=-10))
    assert g_db[int(0.55 * RATE) : int(1.6 * RATE)].max() == pytest.approx(-10.0)


@pytest.mark.parametrize("target", [-14.0, -20.0, -9.0])
def test_loudness_lands_on_target_and_true_peak_under_ceiling(target: float) -> None:
    music = render_music(8.0, 128, rate=RATE, target_lufs=-16.0)
    voice = np.zeros(8 * RATE, np.float32)
    rng = np.random.default_rng(3)
    voice[2 * RATE : 5 * RATE] = 0.3 * rng.standard_normal(3 * RATE) * _tone(4, 3, 1.0) ** 2
    sfx = np.zeros(8 * RATE, np.float32)
    sfx[6 * RATE : 6 * RATE + 200] = 0.9  # a hard click: a true-peak hazard
    out = mix_timeline(music, voice, sfx, rate=RATE, target_lufs=target)
    assert out.dtype == np.float32 and out.shape == (2, 8 * RATE)
    assert pyloudnorm.Meter(RATE).integrated_loudness(out.T.astype(np.float64)) == pytest.approx(
        target, abs=0.5
    )
    assert true_peak_db(out) <= -1.0


def test_true_peak_ceiling_is_a_parameter_and_none_keeps_the_level() -> None:
    music = np.vstack([_tone(997, 2, 0.9)] * 2)
    out = mix_timeline(music, rate=RATE, target_lufs=None, true_peak_db=-3.0)
    assert true_peak_db(out) <= -3.0
    quiet = np.vstack([_tone(997, 2, 0.05)] * 2)
    assert np.allclose(mix_timeline(quiet, rate=RATE, target_lufs=None), quiet, atol=1e-6)


def test_lengths_are_exact_and_mono_tracks_are_centred() -> None:
    n = 3 * RATE + 17
    music = _tone(220, n / RATE, 0.1)[:n]
    voice = _tone(440, 1.0, 0.1)  # shorter than the bed: padded with silence
    out = mix_timeline(music, voice, rate=RATE)
    assert out.shape == (2, n)
    assert np.array_equal(out[0], out[1])
    with pytest.raises(InputError, match="longer than"):
        mix_timeline(music[: RATE // 2], voice, rate=RATE)


def test_silence_and_tiny_inputs_are_safe() -> None:
    silent = mix_timeline(np.zeros((2, RATE)), np.zeros(RATE), np.zeros(RATE), rate=RATE)
    assert silent.shape == (2, RATE) and not silent.any()
    short = mix_timeline(_tone(440, 0.1, 0.99), rate=RATE)  # too short to measure: only limited
    assert short.shape == (2, int(0.1 * RATE)) and true_peak_db(short) <= -1.0
    assert master(np.zeros((2, 0)), RATE).shape == (2, 0)
    with pytest.raises(InputError, match="nothing to mix"):
        mix_timeline(None)
    with pytest.raises(InputError, match="NaN"):
        mix_timeline(np.full(100, np.nan))
    with pytest.raises(InputError, match="shape"):
        mix_timeline(np.zeros((3, 100)))


def _flash_clip(tmp_path: Path, fps: Fraction, n_frames: int, flash: int) -> Path:
    """Frames black except frame `flash` (white): one segment through SegmentWriter."""
    seg = tmp_path / "seg.mp4"
    with media.SegmentWriter(seg, width=64, height=36, fps=fps) as w:
        for i in range(n_frames):
            w.write(np.full((36, 64, 3), 255 if i == flash else 0, np.uint8))
    return seg


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(30000, 1001)], ids=["24", "29.97"])
def test_clap_and_flash_land_within_one_frame_in_the_final_file(tmp_path: Path, fps: Fraction) -> None:
    """A flash frame and a clap at the same instant stay together through mix, AAC and concat."""
    n_frames, flash = 72, 41
    at_s = float(flash / fps)
    seg = _flash_clip(tmp_path, fps, n_frames, flash)
    duration = float(n_frames / fps)
    clap = np.zeros(int(round(duration * RATE)), np.float32)
    i = int(round(at_s * RATE))
    clap[i : i + 480] = np.random.default_rng(0).uniform(-1, 1, 480) * np.exp(-np.arange(480) / 100)
    music = np.zeros((2, clap.size), np.float32)
    mixed = mix_timeline(music, sfx=clap, rate=RATE)
    media.write_audio(tmp_path / "mix.m4a", mixed, RATE)
    final = tmp_path / "final.mp4"
    media.concat_segments([seg], final, audio_path=tmp_path / "mix.m4a")

    with av.open(str(final)) as c:
        lumas = [(float(f.time), float(f.to_ndarray(format="gray").mean())) for f in c.decode(video=0)]
    flash_t = max(lumas, key=lambda x: x[1])[0]
    with av.open(str(final)) as c:
        stream = c.streams.audio[0]
        chunks, start = [], None
        for f in c.decode(stream):
            if start is None:
                start = float(f.time)
            chunks.append(f.to_ndarray().mean(axis=0))
    audio = np.concatenate(chunks)
    onset = int(np.argmax(np.abs(audio) > 0.5 * np.abs(audio).max()))
    clap_t = start + onset / stream.rate
    assert flash_t == pytest.approx(at_s, abs=1e-6)
    assert abs(clap_t - flash_t) < float(1 / fps)
