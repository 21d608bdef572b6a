"""Audio statistics for the similarity score: spectral shape, chroma, MFCC, a short-term loudness
curve and a speech/music balance, each from a mono signal; plus distances between them.

Pure NumPy on float32 samples in [-1, 1]; no I/O. The STFT is the analysis' own
(`audio_features.stft_magnitude`), so both sides of a comparison see the same framing.
"""

from __future__ import annotations

import math

import numpy as np
from lookalike.kernels.audio_features import HOP, N_FFT, k_weight, stft_magnitude

N_MELS = 40
N_MFCC = 13


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, float) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, float) / 2595.0) - 1.0)


def mel_filterbank(rate: int, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = 30.0) -> np.ndarray:
    """Triangular mel filters (n_mels, n_fft // 2 + 1), HTK mel scale, area-normalised (Slaney)."""
    fmax = rate / 2
    mels = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
    hz = _mel_to_hz(mels)
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, mid, hi = hz[i], hz[i + 1], hz[i + 2]
        up = (freqs - lo) / max(mid - lo, 1e-9)
        down = (hi - freqs) / max(hi - mid, 1e-9)
        fb[i] = np.maximum(0, np.minimum(up, down)) * 2.0 / (hi - lo)
    return fb


def _dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return m


def spectral_features(y: np.ndarray, rate: int) -> dict:
    """Per-track statistics: spectral centroid/bandwidth/rolloff/flatness (mean, std), mean chroma
    (12, C first), MFCC means and stds (13 each), over frames that are not silent."""
    mag = stft_magnitude(np.asarray(y, np.float32))
    power = mag.astype(np.float64) ** 2
    freqs = np.linspace(0, rate / 2, mag.shape[0])
    energy = power.sum(axis=0)
    # Frames 30 dB under the loudest are the codec's noise floor between notes, not the sound.
    loud = energy > max(float(energy.max(initial=0.0)) * 1e-3, 1e-10)
    if not loud.any():
        return {}
    p, m = power[:, loud], mag[:, loud].astype(np.float64)
    w = energy[loud] / energy[loud].sum()
    tot = m.sum(axis=0) + 1e-12
    centroid = (freqs[:, None] * m).sum(axis=0) / tot
    bandwidth = np.sqrt(((freqs[:, None] - centroid[None, :]) ** 2 * m).sum(axis=0) / tot)
    cum = np.cumsum(p, axis=0)
    rolloff = freqs[np.argmax(cum >= 0.85 * cum[-1:, :], axis=0)]
    flatness = np.exp(np.log(p + 1e-12).mean(axis=0)) / (p.mean(axis=0) + 1e-12)

    def stat(v: np.ndarray) -> list[float]:
        mean = float((v * w).sum())  # energy-weighted: loud frames carry the timbre
        return [mean, float(np.sqrt(((v - mean) ** 2 * w).sum()))]

    # Chroma: energy of bins between 55 Hz and 5 kHz folded onto pitch classes (A4 = 440 Hz).
    band = (freqs >= 55) & (freqs <= 5000)
    pc = (np.round(12 * np.log2(freqs[band] / 440.0)).astype(int) + 9) % 12
    chroma = np.zeros((12, p.shape[1]))
    np.add.at(chroma, pc, p[band])
    chroma /= chroma.sum(axis=0, keepdims=True) + 1e-12

    mel = mel_filterbank(rate, (mag.shape[0] - 1) * 2) @ p
    logmel = 10 * np.log10(mel + 1e-10)
    mfcc = _dct_matrix(N_MFCC, logmel.shape[0]) @ logmel
    return {
        "centroid_hz": stat(centroid),
        "bandwidth_hz": stat(bandwidth),
        "rolloff_hz": stat(rolloff),
        "flatness": stat(flatness),
        "chroma": chroma.mean(axis=1).tolist(),
        "mfcc_mean": mfcc.mean(axis=1).tolist(),
        "mfcc_std": mfcc.std(axis=1).tolist(),
    }


def loudness_curve(
    y: np.ndarray, rate: int, *, window_s: float = 3.0, hop_s: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """(times_s, LUFS) short-term loudness of a mono signal: K-weighted mean square over window_s,
    every hop_s (window centres); -70 LUFS floor for silence."""
    x = k_weight(y, rate) ** 2
    n = len(x)
    win, hop = max(1, int(window_s * rate)), max(1, int(hop_s * rate))
    c = np.concatenate([[0.0], np.cumsum(x)])
    centres = np.arange(0, max(n, 1), hop)
    lo = np.clip(centres - win // 2, 0, n)
    hi = np.clip(centres + win // 2, 0, n)
    ms = (c[hi] - c[lo]) / np.maximum(hi - lo, 1)
    lufs = -0.691 + 10 * np.log10(np.maximum(ms, 1e-7))
    return centres / rate, np.maximum(lufs, -70.0)


def speech_music_balance(y: np.ndarray, rate: int) -> dict[str, float]:
    """Fractions of time that are silence, speech-like and music-like (2-s windows).

    A heuristic, not a classifier: speech alternates syllables with gaps, so a window whose 20 ms
    energies dip below a third of their mean in more than 30 % of the frames and whose envelope
    fluctuates strongly reads as speech, unless the envelope repeats (autocorrelation peak > 0.5
    at 0.2-1.2 s: a beat), which reads as music, like steady sound.
    """
    y = np.asarray(y, np.float64)
    fr = max(1, int(0.02 * rate))
    n = len(y) // fr
    if n == 0:
        return {"silence": 1.0, "speech": 0.0, "music": 0.0}
    e = (y[: n * fr].reshape(n, fr) ** 2).mean(axis=1)
    per = 100
    counts = {"silence": 0, "speech": 0, "music": 0}
    windows = max(1, n // per)
    for w in range(windows):
        seg = e[w * per : (w + 1) * per]
        if seg.size == 0 or 10 * math.log10(max(float(seg.mean()), 1e-12)) < -50:
            counts["silence"] += 1
            continue
        low = float((seg < seg.mean() / 3).mean())
        cv = float(np.sqrt(seg).std() / (np.sqrt(seg).mean() + 1e-12))
        env = np.sqrt(seg) - np.sqrt(seg).mean()
        ac = np.correlate(env, env, "full")[len(env) - 1 :] / (float((env**2).sum()) + 1e-12)
        periodic = float(ac[10:60].max(initial=0.0)) > 0.5
        counts["speech" if low > 0.3 and cv > 0.8 and not periodic else "music"] += 1
    return {k: v / windows for k, v in counts.items()}


def chroma_similarity(a, b) -> float:
    """Cosine similarity of two mean chroma vectors (1 same, 0 orthogonal)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def mfcc_distance(mean_a, std_a, mean_b, std_b) -> float:
    """RMS difference of MFCC means and stds over coefficients 1..12 (dB-like units; c0 is level)."""
    d = np.concatenate(
        [np.asarray(mean_a)[1:] - np.asarray(mean_b)[1:], np.asarray(std_a)[1:] - np.asarray(std_b)[1:]]
    )
    return float(np.sqrt((d**2).mean()))


def curve_correlation(a, b) -> float:
    """Pearson correlation of two curves resampled to a common length; NaN when either is flat."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = min(len(a), len(b))
    if n < 3:
        return float("nan")
    a = np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(a)), a)
    b = np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(b)), b)
    if a.std() < 1e-6 or b.std() < 1e-6:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


__all__ = [
    "HOP",
    "chroma_similarity",
    "curve_correlation",
    "k_weight",
    "loudness_curve",
    "mel_filterbank",
    "mfcc_distance",
    "spectral_features",
    "speech_music_balance",
]
