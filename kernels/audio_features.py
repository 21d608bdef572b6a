"""Audio features for sample analysis: onset envelope, tempo and beats, key, loudness, silence.

Pure NumPy functions on sample arrays (float32 in [-1, 1]); no I/O. Tempo follows the classic
recipe (Ellis 2007, as in librosa): spectral-flux onset envelope, autocorrelation weighted by a
log-normal prior around 120 bpm to settle octave errors, beats by dynamic programming; the reported
tempo is then refitted to the tracked beats so it is not quantised to envelope frames.
"""

from __future__ import annotations

import math

import numpy as np

N_FFT = 1024
HOP = 256

# Krumhansl-Kessler key profiles (major, minor), C first.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_NOTES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def stft_magnitude(y: np.ndarray, *, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """|STFT| of a mono signal, shape (n_fft // 2 + 1, n_frames), Hann window, centred frames."""
    y = np.asarray(y, dtype=np.float32)
    pad = np.pad(y, (n_fft // 2, n_fft // 2))
    n = 1 + max(0, (len(pad) - n_fft) // hop)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    frames = pad[idx] * np.hanning(n_fft).astype(np.float32)[None, :]
    return np.abs(np.fft.rfft(frames, axis=1)).T.astype(np.float32)


def onset_envelope(y: np.ndarray, rate: int, *, hop: int = HOP) -> np.ndarray:
    """Spectral-flux onset strength per STFT frame (rate / hop frames per second), >= 0."""
    mag = stft_magnitude(y, hop=hop)
    if mag.shape[1] < 2:
        return np.zeros(mag.shape[1], dtype=np.float32)
    # Log compression so quiet and loud passages both show their onsets.
    logm = np.log1p(1000.0 * mag)
    flux = np.maximum(0.0, np.diff(logm, axis=1)).mean(axis=0)
    env = np.concatenate([[0.0], flux])
    # Remove the slowly varying part (crescendos are not onsets).
    k = max(1, int(round(0.4 * rate / hop)))
    local = np.convolve(env, np.ones(k) / k, mode="same")
    return np.maximum(0.0, env - local).astype(np.float32)


def estimate_tempo(
    env: np.ndarray, frame_rate: float, *, prior_bpm: float = 120.0, prior_octaves: float = 1.0
) -> float | None:
    """Tempo in bpm from the onset envelope's autocorrelation, or None when there is no pulse."""
    env = np.asarray(env, dtype=np.float64)
    if len(env) < 4 or float(env.std()) < 1e-9:
        return None
    e = env - env.mean()
    n = len(e)
    spec = np.fft.rfft(e, 2 * n)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:n]
    if ac[0] <= 0:
        return None
    ac /= ac[0]
    lags = np.arange(n, dtype=np.float64)
    min_lag = max(1, int(frame_rate * 60.0 / 300.0))
    max_lag = min(n - 2, int(frame_rate * 60.0 / 30.0))
    if max_lag <= min_lag + 1:
        return None
    bpm = 60.0 * frame_rate / np.maximum(lags, 1e-9)
    prior = np.exp(-0.5 * (np.log2(bpm / prior_bpm) / prior_octaves) ** 2)
    weighted = ac * prior
    lag = min_lag + int(np.argmax(weighted[min_lag : max_lag + 1]))
    if ac[lag] < 0.05:
        return None
    # Parabolic interpolation of the raw autocorrelation peak.
    c_m, c_0, c_p = ac[lag - 1], ac[lag], ac[lag + 1]
    den = c_m - 2 * c_0 + c_p
    frac = 0.0 if abs(den) < 1e-12 else float(np.clip(0.5 * (c_m - c_p) / den, -0.5, 0.5))
    return float(60.0 * frame_rate / (lag + frac))


def track_beats(env: np.ndarray, frame_rate: float, bpm: float, *, tightness: float = 100.0) -> np.ndarray:
    """Beat frame indices by dynamic programming (Ellis 2007) at a given tempo."""
    env = np.asarray(env, dtype=np.float64)
    if len(env) == 0 or env.std() <= 0:
        return np.zeros(0, dtype=np.int64)
    period = 60.0 * frame_rate / bpm
    # Smooth the envelope with a Gaussian a fraction of a beat wide.
    half = int(round(period / 2))
    win = np.exp(-0.5 * (np.arange(-half, half + 1) * 32.0 / period) ** 2)
    local = np.convolve(env / env.std(), win, mode="same")
    n = len(local)
    score = np.zeros(n)
    back = -np.ones(n, dtype=np.int64)
    lo_off, hi_off = int(round(2 * period)), max(1, int(round(period / 2)))
    offsets = np.arange(lo_off, hi_off - 1, -1)
    penalty = -tightness * np.log(offsets / period) ** 2
    for i in range(n):
        prev = i - offsets
        ok = prev >= 0
        if ok.any():
            cand = score[prev[ok]] + penalty[ok]
            j = int(np.argmax(cand))
            if cand[j] > 0:
                score[i] = local[i] + cand[j]
                back[i] = prev[ok][j]
                continue
        score[i] = local[i]
    # Last beat: the best-scoring frame in the final beat period.
    tail = max(0, n - int(round(period)))
    i = tail + int(np.argmax(score[tail:]))
    beats = []
    while i >= 0:
        beats.append(i)
        i = int(back[i])
    beats = np.array(beats[::-1], dtype=np.int64)
    # Drop weak beats at the edges (leading/trailing silence).
    strength = local[beats]
    thr = 0.5 * np.sqrt(np.mean(strength**2)) if len(strength) else 0.0
    keep = np.nonzero(strength >= thr)[0]
    if len(keep):
        beats = beats[keep[0] : keep[-1] + 1]
    return beats


def tempo_and_beats(y: np.ndarray, rate: int) -> tuple[float | None, list[float]]:
    """(tempo in bpm or None, beat times in seconds) of a mono signal."""
    env = onset_envelope(y, rate)
    fr = rate / HOP
    bpm = estimate_tempo(env, fr)
    if bpm is None:
        return None, []
    beats = track_beats(env, fr, bpm)
    times = beats / fr
    if len(times) >= 4:
        # Least-squares fit of beat time against beat number: a period free of frame quantisation.
        k = np.arange(len(times))
        period = float(np.polyfit(k, times, 1)[0])
        if period > 0 and abs(60.0 / period - bpm) / bpm < 0.08:
            bpm = 60.0 / period
    return float(bpm), [round(float(t), 4) for t in times]


def estimate_key(y: np.ndarray, rate: int) -> str | None:
    """Key name like "A minor" from a chroma profile correlated with Krumhansl-Kessler profiles."""
    mag = stft_magnitude(y, n_fft=4096, hop=2048)
    if mag.size == 0 or float(mag.sum()) <= 0:
        return None
    freqs = np.fft.rfftfreq(4096, 1.0 / rate)
    ok = (freqs >= 55.0) & (freqs <= 2000.0)
    pitch = np.round(12 * np.log2(freqs[ok] / 440.0) + 9).astype(int) % 12  # 0 = C
    energy = (mag[ok] ** 2).sum(axis=1)
    chroma = np.bincount(pitch, weights=energy, minlength=12)
    if chroma.sum() <= 0:
        return None
    chroma = chroma / chroma.sum()
    best, name = -2.0, None
    for mode, prof in (("major", _MAJOR), ("minor", _MINOR)):
        for tonic in range(12):
            r = float(np.corrcoef(chroma, np.roll(prof, tonic))[0, 1])
            if r > best:
                best, name = r, f"{_NOTES[tonic]} {mode}"
    return name if best > 0.3 else None


def integrated_loudness(samples: np.ndarray, rate: int) -> float | None:
    """ITU-R BS.1770 integrated loudness (LUFS) via pyloudnorm; None for silence or too-short audio.

    `samples` is (n,) mono or (channels, n). Identical channels (dual mono, as a mono track upmixed
    by the decoder) are measured as one channel so a mono source is not reported 3 dB louder.
    """
    import pyloudnorm

    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:
        if x.shape[0] > 1 and np.allclose(x, x[0:1], atol=1e-6):
            x = x[0]
        else:
            x = x.T
    if x.shape[0] < int(0.4 * rate) + 1:
        return None
    meter = pyloudnorm.Meter(rate)
    with np.errstate(divide="ignore"):
        lufs = float(meter.integrated_loudness(x))
    return round(lufs, 2) if math.isfinite(lufs) else None


def loudness_segments(
    y: np.ndarray,
    rate: int,
    *,
    silence_dbfs: float = -50.0,
    hop_s: float = 0.05,
    min_len_s: float = 0.3,
) -> list[dict]:
    """Silence vs sound segments covering the whole signal, [{start_s, end_s, kind}].

    A 50 ms frame is silent below `silence_dbfs` RMS; runs shorter than `min_len_s` are absorbed by
    their neighbours. Sounding runs are labelled "music": telling speech from music needs a
    classifier (a dip-counting heuristic called Big Buck Bunny's score speech), which is later work.
    """
    y = np.asarray(y, dtype=np.float64)
    hop = max(1, int(round(hop_s * rate)))
    n = int(math.ceil(len(y) / hop))
    if n == 0:
        return []
    pad = np.pad(y, (0, n * hop - len(y)))
    rms = np.sqrt((pad.reshape(n, hop) ** 2).mean(axis=1))
    with np.errstate(divide="ignore"):
        db = 20 * np.log10(np.maximum(rms, 1e-12))
    loud = db >= silence_dbfs
    runs: list[list] = []
    for i, v in enumerate(loud):
        if runs and runs[-1][2] == v:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1, bool(v)])
    min_frames = max(1, int(round(min_len_s / hop_s)))
    merged: list[list] = []
    for r in runs:
        if merged and (r[1] - r[0] < min_frames or merged[-1][2] == r[2]):
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    if len(merged) > 1 and merged[0][1] - merged[0][0] < min_frames:
        merged[1][0] = merged[0][0]
        merged.pop(0)
    total = len(y) / rate
    out = []
    for a, b, is_loud in merged:
        kind = "music" if is_loud else "silence"
        out.append({"start_s": round(a * hop_s, 3), "end_s": round(min(b * hop_s, total), 3), "kind": kind})
    return out
