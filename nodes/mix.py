"""The whole-timeline audio mix: music ducked under voice, effects on top, mastered once.

Audio is never split by video ranges (DESIGN.md): the music bed, the voice-over and the effects
track each cover the whole timeline, and `mix_timeline` sums them once and masters the sum:

- ducking: a sidechain envelope of the voice (RMS over 10 ms blocks, gated at VOICE_GATE_DB) drives
  the music gain down by `duck_db` with an attack and a release, and a short hold so the bed does not
  pump between words. The duck starts `attack_s` before the voice (the voice track is known ahead, so
  the sidechain can look ahead) and the music is already down when the first syllable lands.
- loudness: integrated loudness (ITU-R BS.1770 via pyloudnorm) to `target_lufs`: -14 LUFS, the
  streaming norm, unless the caller passes the sample's measured loudness.
- true peak: a linked-stereo look-ahead limiter on the 4x oversampled envelope keeps the true peak
  at or below `true_peak_db` (-1 dBTP, the delivery ceiling). Limiting lowers loudness a little, so
  gain and limiter alternate for a few rounds until both hold.
"""

from __future__ import annotations

import numpy as np
import pyloudnorm
from lookalike.nodes.music import true_peak_db
from scipy import ndimage, signal

from lookalike.errors import InputError

__all__ = ["VOICE_GATE_DB", "duck_gain", "limit_true_peak", "master", "mix_timeline"]

VOICE_GATE_DB = -45.0
"""RMS level (dBFS, 10 ms blocks) above which the voice track counts as speaking."""

_BLOCK_S = 0.010
_LIMIT_MARGIN_DB = 0.3  # the limiter aims under the ceiling: resampling overshoots by ~0.1 dB
_MIN_MEASURABLE_S = 0.4  # BS.1770 gating blocks are 400 ms: shorter audio has no integrated loudness


def _as_stereo(x: np.ndarray | None, n: int | None, what: str) -> np.ndarray | None:
    if x is None:
        return None
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = np.vstack([a, a])
    elif a.ndim == 2 and a.shape[0] == 1:
        a = np.vstack([a[0], a[0]])
    if a.ndim != 2 or a.shape[0] != 2:
        raise InputError(
            f"{what} track of shape {np.shape(x)} cannot be mixed",
            hint="pass float samples shaped (n,) mono or (2, n) stereo",
        )
    if not np.isfinite(a).all():
        raise InputError(f"{what} track holds NaN or infinity", hint="render that track again")
    if n is not None and a.shape[1] != n:
        if a.shape[1] > n:
            raise InputError(
                f"{what} track is {a.shape[1]} samples, longer than the {n}-sample timeline",
                hint="render every track for the same duration as the music bed",
            )
        a = np.pad(a, ((0, 0), (0, n - a.shape[1])))
    return a


def duck_gain(
    voice: np.ndarray,
    rate: int,
    *,
    duck_db: float = -10.0,
    attack_s: float = 0.05,
    release_s: float = 0.4,
    hold_s: float = 0.25,
) -> np.ndarray:
    """Linear gain per sample, shape (n,), for the music under `voice` ((n,) or (channels, n)).

    1.0 where the voice is silent, 10 ** (duck_db / 20) while it speaks. The gain moves down over
    `attack_s` (starting that long before the voice: look-ahead) and back up over `release_s` after
    `hold_s` of silence; both moves are linear in dB, so a listener hears an even fade.
    """
    v = np.atleast_2d(np.asarray(voice, dtype=np.float64))
    n = v.shape[-1]
    if n == 0:
        return np.ones(0)
    block = max(1, int(round(_BLOCK_S * rate)))
    n_blocks = -(-n // block)
    padded = np.zeros(n_blocks * block)
    padded[:n] = (v**2).mean(axis=0)
    rms_db = 10 * np.log10(padded.reshape(n_blocks, block).mean(axis=1) + 1e-20)
    active = rms_db > VOICE_GATE_DB
    hold = int(round(hold_s / _BLOCK_S))
    lead = int(round(attack_s / _BLOCK_S))
    # Hold: a block stays active for `hold` blocks after the voice (bridges pauses between words);
    # look-ahead: the duck begins `lead` blocks before the voice, so it is down when the voice lands.
    active = np.convolve(active, np.ones(hold + 1))[:n_blocks] > 0.5
    active = np.convolve(active[::-1], np.ones(lead + 1))[:n_blocks][::-1] > 0.5
    # One pass of a slew-limited follower in dB: at most `down` dB per block while ducking, `up` dB
    # per block while recovering, so each move takes attack_s / release_s whatever its depth.
    target = np.where(active, float(duck_db), 0.0)
    down = abs(duck_db) / max(1, lead)
    up = abs(duck_db) / max(1, int(round(release_s / _BLOCK_S)))
    level = np.empty(n_blocks)
    g = 0.0
    for i, t in enumerate(target):
        g = max(t, g - down) if t < g else min(t, g + up)
        level[i] = g
    centres = (np.arange(n_blocks) + 0.5) * block
    gain_db = np.interp(np.arange(n), centres, level)
    return 10 ** (gain_db / 20)


def limit_true_peak(x: np.ndarray, rate: int, ceiling_db: float = -1.0) -> np.ndarray:
    """A linked-stereo look-ahead peak limiter on the 4x oversampled envelope: (channels, n) in, out.

    The gain each sample needs is taken as a minimum over +-5 ms (the look-ahead and hold) and then
    averaged over 5 ms, so the gain never exceeds what any sample needs and never steps abruptly.
    """
    a = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n = a.shape[-1]
    if n == 0:
        return a
    ceiling = 10 ** ((ceiling_db - _LIMIT_MARGIN_DB) / 20)
    up = np.abs(signal.resample_poly(a, 4, 1, axis=-1)).max(axis=0)
    env = np.maximum(up[: 4 * n].reshape(-1, 4).max(axis=1), np.abs(a).max(axis=0))
    need = np.minimum(1.0, ceiling / np.maximum(env, 1e-12))
    width = max(1, int(0.005 * rate))
    gain = ndimage.uniform_filter1d(ndimage.minimum_filter1d(need, 2 * width + 1), width + 1)
    return a * np.minimum(gain, need)[None, :]


def _integrated(meter: pyloudnorm.Meter, x: np.ndarray) -> float:
    with np.errstate(divide="ignore"):  # all blocks gated out: log10(0) is -inf, which we handle
        return float(meter.integrated_loudness(x.T))


def master(
    x: np.ndarray, rate: int, *, target_lufs: float | None = -14.0, true_peak_ceiling_db: float = -1.0
) -> np.ndarray:
    """Gain to `target_lufs` integrated (None: keep the level) and limit the true peak to the ceiling.

    Silence stays silence; audio shorter than 0.4 s (no integrated loudness) is only peak-limited.
    Returns float32 (channels, n).
    """
    a = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if a.shape[-1] == 0 or not np.abs(a).max() > 0.0:
        return a.astype(np.float32)
    meter = pyloudnorm.Meter(rate)
    measurable = target_lufs is not None and a.shape[-1] >= int(_MIN_MEASURABLE_S * rate)
    for _ in range(8):
        if measurable:
            loudness = _integrated(meter, a)
            if np.isfinite(loudness):
                a = a * 10 ** ((float(target_lufs) - loudness) / 20)  # type: ignore[arg-type]
        if true_peak_db(a) <= true_peak_ceiling_db:
            if not measurable or abs(_integrated(meter, a) - float(target_lufs)) < 0.1:  # type: ignore[arg-type]
                break
        a = limit_true_peak(a, rate, true_peak_ceiling_db)
    tp = true_peak_db(a)
    if tp > true_peak_ceiling_db:  # the last gain step left a peak over: trade a little loudness
        a = a * 10 ** ((true_peak_ceiling_db - _LIMIT_MARGIN_DB - tp) / 20)
    return a.astype(np.float32)


def mix_timeline(
    music: np.ndarray | None,
    voice: np.ndarray | None = None,
    sfx: np.ndarray | None = None,
    *,
    rate: int = 48000,
    target_lufs: float | None = -14.0,
    duck_db: float = -10.0,
    true_peak_db: float = -1.0,
    attack_s: float = 0.05,
    release_s: float = 0.4,
) -> np.ndarray:
    """The mastered stereo mix of the whole timeline: float32 (2, n), n the music bed's length.

    Each track is (n,) mono (centred) or (2, n) stereo; voice and effects shorter than the bed are
    padded with silence, longer ones raise InputError. Without music the timeline is the voice's
    length. `target_lufs` is the integrated loudness (pass the sample's measured LUFS to match it;
    None keeps the mix's own level); the true peak ends at or below `true_peak_db` dBTP.
    """
    first = next((t for t in (music, voice, sfx) if t is not None), None)
    if first is None:
        raise InputError("nothing to mix: no music, voice or effects track", hint="render at least one track")
    n = int(np.shape(first)[-1])
    m = _as_stereo(music, n, "music")
    v = _as_stereo(voice, n, "voice")
    s = _as_stereo(sfx, n, "effects")
    out = np.zeros((2, n))
    if m is not None:
        out += (
            m * duck_gain(v, rate, duck_db=duck_db, attack_s=attack_s, release_s=release_s)[None, :]
            if (v is not None and duck_db != 0.0)
            else m
        )
    if v is not None:
        out += v
    if s is not None:
        out += s
    return master(out, rate, target_lufs=target_lufs, true_peak_ceiling_db=true_peak_db)
