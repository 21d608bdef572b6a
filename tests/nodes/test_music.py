"""Local music: tempo, beat grid, loudness and true peak measured on the rendered audio itself."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
from lookalike.nodes.music import parse_key, render_music
from scipy import signal

from lookalike.errors import InputError

RATE = 48000
HOP = 240  # 5 ms onset-envelope frames


def onset_envelope(x: np.ndarray, rate: int = RATE, hop: int = HOP) -> np.ndarray:
    """Half-wave rectified rise of log energy per hop (a plain spectral-flux stand-in)."""
    mono = x.mean(axis=0).astype(np.float64)
    n = len(mono) // hop
    energy = (mono[: n * hop].reshape(n, hop) ** 2).sum(axis=1)
    return np.maximum(np.diff(np.log(energy + 1e-9), prepend=0.0), 0.0)


def measured_tempo(x: np.ndarray) -> float:
    env = onset_envelope(x)
    env = env - env.mean()
    ac = np.correlate(env, env, mode="full")[len(env) - 1 :]
    fps = RATE / HOP
    lo, hi = int(fps * 60 / 180), int(fps * 60 / 60)  # 60..180 BPM
    lag = lo + int(np.argmax(ac[lo : hi + 1]))
    a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
    lag_f = lag + 0.5 * (a - c) / (a - 2 * b + c)  # parabolic peak
    return 60.0 * fps / lag_f


def kick_onsets(x: np.ndarray, beats_s: np.ndarray) -> np.ndarray:
    """Onset near each beat: where the low band (< 150 Hz, zero-phase filtered) first reaches half its
    peak within [beat - 50 ms, beat + 100 ms], on a 1 ms envelope."""
    sos = signal.butter(4, 150, "low", fs=RATE, output="sos")
    low = signal.sosfiltfilt(sos, x.mean(axis=0).astype(np.float64))
    hop = 48  # 1 ms
    n = len(low) // hop
    energy = np.sqrt((low[: n * hop].reshape(n, hop) ** 2).mean(axis=1))
    out = []
    for b in beats_s:
        i0, i1 = max(0, int((b - 0.05) * 1000)), min(n, int((b + 0.1) * 1000))
        window = energy[i0:i1]
        out.append((i0 + int(np.argmax(window >= 0.5 * window.max()))) / 1000.0)
    return np.array(out)


def true_peak_db(x: np.ndarray) -> float:
    up = signal.resample_poly(x.astype(np.float64), 4, 1, axis=-1)
    return 20 * np.log10(np.abs(up).max())


@pytest.fixture(scope="module")
def groove() -> np.ndarray:
    """12 s at 128 BPM in C# minor with a section change at 7.5 s."""
    return render_music(12.0, 128.0, key="C# minor", seed=3, section_starts_s=(7.5,))


def test_duration_is_exact_to_the_sample() -> None:
    x = render_music(1.2345, 100.0, rate=RATE, seed=0)
    assert x.shape == (2, round(1.2345 * RATE)) and x.dtype == np.float32


@pytest.mark.parametrize(
    ("tempo", "offset"), [(128.0, 0.0), (97.0, 0.3), (150.0, 0.0)], ids=["128", "97+offset", "150"]
)
def test_tempo_and_kicks_on_the_grid(tempo: float, offset: float) -> None:
    x = render_music(10.0, tempo, seed=1, beat_offset_s=offset)
    assert measured_tempo(x) == pytest.approx(tempo, rel=0.02)
    beats = offset + np.arange(0, 10.0 - offset - 0.1, 60.0 / tempo)
    errors = np.abs(kick_onsets(x, beats) - beats)
    assert errors.max() <= 0.010, f"worst kick is {errors.max() * 1000:.1f} ms off the grid"


def test_loudness_and_true_peak(groove: np.ndarray) -> None:
    loudness = pyloudnorm.Meter(RATE).integrated_loudness(groove.T.astype(np.float64))
    assert loudness == pytest.approx(-16.0, abs=0.5)
    assert true_peak_db(groove) <= -1.0


def test_other_loudness_target() -> None:
    x = render_music(6.0, 110.0, seed=2, target_lufs=-23.0)
    assert pyloudnorm.Meter(RATE).integrated_loudness(x.T.astype(np.float64)) == pytest.approx(-23.0, abs=0.5)
    assert true_peak_db(x) <= -1.0


def test_deterministic_in_seed(groove: np.ndarray) -> None:
    again = render_music(12.0, 128.0, key="C# minor", seed=3, section_starts_s=(7.5,))
    assert np.array_equal(groove, again)
    other = render_music(12.0, 128.0, key="C# minor", seed=4, section_starts_s=(7.5,))
    assert not np.array_equal(groove, other)


def test_section_start_is_heard(groove: np.ndarray) -> None:
    """A crash (high-band energy) right after the section start that the plain groove does not have."""
    plain = render_music(12.0, 128.0, key="C# minor", seed=3)
    sos = signal.butter(4, 6000, "high", fs=RATE, output="sos")

    def high_energy(x: np.ndarray, t0: float, t1: float) -> float:
        hi = signal.sosfilt(sos, x.mean(axis=0).astype(np.float64))
        return float((hi[int(t0 * RATE) : int(t1 * RATE)] ** 2).mean())

    # The loudness normalization differs a little between the two; a crash is far more than that.
    assert high_energy(groove, 7.5, 8.3) > 2.0 * high_energy(plain, 7.5, 8.3)


def test_no_tempo_means_default_120() -> None:
    x = render_music(8.0, None, seed=0)
    assert measured_tempo(x) == pytest.approx(120.0, rel=0.02)
    assert np.array_equal(x, render_music(8.0, 0, seed=0))


def test_keys() -> None:
    assert parse_key("A minor") == (9, True)
    assert parse_key("C# major") == (1, False)
    assert parse_key("Bb") == (10, False)
    assert parse_key("F#m") == (6, True)
    assert parse_key(None) == (9, True)
    with pytest.raises(InputError, match="key"):
        parse_key("H dorian")


def test_bad_requests() -> None:
    with pytest.raises(InputError):
        render_music(0.0, 120.0)
    with pytest.raises(InputError):
        render_music(2.0, 1000.0)


@pytest.mark.parametrize("bpm", [76.0, 100.0, 120.0, 140.0])
def test_the_analysis_hears_the_tempo_it_was_asked_for(bpm):
    """The remake's music must read back, through the same analysis that measured the sample, at the
    sample's tempo (not at twice or half of it)."""
    from lookalike.kernels.audio_features import tempo_and_beats
    from scipy.signal import resample_poly

    x = render_music(20.0, bpm, rate=48000, seed=3)
    y = resample_poly(x.mean(axis=0), 147, 320).astype(np.float32)
    tempo, _ = tempo_and_beats(y, 22050)
    assert tempo == pytest.approx(bpm, rel=0.02)
