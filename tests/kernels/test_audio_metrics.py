import numpy as np
import pytest
from lookalike.kernels import audio_metrics as am

RATE = 22050


def _tone(hz, seconds=2.0, rate=RATE, amp=0.3):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_loudness_curve_agrees_with_bs1770_integrated_loudness():
    import pyloudnorm

    rng = np.random.default_rng(0)
    y = (rng.standard_normal(48000 * 8) * 0.05).astype(np.float32)
    _, lufs = am.loudness_curve(y, 48000)
    assert np.median(lufs) == pytest.approx(pyloudnorm.Meter(48000).integrated_loudness(y), abs=0.3)
    _, quieter = am.loudness_curve(y * 0.5, 48000)
    assert np.median(lufs) - np.median(quieter) == pytest.approx(6.02, abs=0.1)


def test_chroma_of_a440_is_on_a_and_mfcc_distance_zero_for_the_same_track():
    f = am.spectral_features(_tone(440.0), RATE)
    assert int(np.argmax(f["chroma"])) == 9  # C=0 ... A=9
    assert f["centroid_hz"][0] == pytest.approx(440, rel=0.05)
    g = am.spectral_features(_tone(660.0), RATE)
    assert am.chroma_similarity(f["chroma"], f["chroma"]) == pytest.approx(1.0)
    assert am.chroma_similarity(f["chroma"], g["chroma"]) < 0.5
    assert am.mfcc_distance(f["mfcc_mean"], f["mfcc_std"], f["mfcc_mean"], f["mfcc_std"]) == 0.0
    assert am.mfcc_distance(f["mfcc_mean"], f["mfcc_std"], g["mfcc_mean"], g["mfcc_std"]) > 1.0
    assert am.spectral_features(np.zeros(RATE, np.float32), RATE) == {}


def test_balance_reads_silence_steady_tone_and_a_beat_as_not_speech():
    silence = np.zeros(RATE * 4, np.float32)
    assert am.speech_music_balance(silence, RATE)["silence"] == 1.0
    assert am.speech_music_balance(_tone(300, 4.0), RATE)["music"] == 1.0
    beat = np.zeros(RATE * 4, np.float32)
    for k in range(8):
        i = int(k * 0.5 * RATE)
        beat[i : i + 2000] = _tone(800, 2000 / RATE)
    assert am.speech_music_balance(beat, RATE)["speech"] == 0.0


def test_curve_correlation():
    a = np.sin(np.linspace(0, 6, 50))
    assert am.curve_correlation(a, a[::2]) == pytest.approx(1.0, abs=0.01)
    assert am.curve_correlation(a, -a) == pytest.approx(-1.0)
    assert np.isnan(am.curve_correlation(a, np.ones(50)))
