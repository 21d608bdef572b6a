"""A scene's look beyond the four grade numbers: a fitted 3D LUT, lighting key, and a mood.

- **LUT**: the scene's colour distribution as a transfer in CIELAB (Reinhard et al. 2001): every
  colour's L*, a*, b* are standardised against a neutral reference look (NEUTRAL_LAB_MEAN/STD:
  mid-grey L* 50 with the tonal spread of grade.py's contrast 1.0 and the chroma of its saturation
  1.0, no cast) and rescaled to the scene's own means and spreads. A picture with the neutral
  statistics comes out with the scene's; `lut_table` samples that map on an N^3 lattice and
  `cube_text` writes it as an Adobe/Resolve `.cube`.
- **Lighting key**: high key (bright, few shadows), low key (mostly dark, some highlights) or normal,
  from the share of dark and bright pixels.
- **Mood**: a few words and two numbers (valence, energy in [0, 1]) from brightness, saturation,
  warmth, camera speed, cutting rate, tempo and loudness. A heuristic, documented term by term.

Pure numpy functions on small arrays (statistics, a 17^3 lattice): no device work to speak of.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from lookalike.kernels import features as kf

NEUTRAL_LAB_MEAN = (50.0, 0.0, 0.0)
NEUTRAL_LAB_STD = (20.0, 14.0, 14.0)
LUT_SIZE = 17

DARK_LEVEL = 0.25
BRIGHT_LEVEL = 0.75


def lab_moments(bins: np.ndarray, counts: np.ndarray, levels: int = kf.COLOR_LEVELS) -> tuple[list, list]:
    """(mean, std) of L*, a*, b* over a sparse RGB histogram (`features.frame_colour_stats` bins)."""
    if len(bins) == 0:
        return list(NEUTRAL_LAB_MEAN), list(NEUTRAL_LAB_STD)
    lab = kf.rgb_to_lab(kf.histogram_bin_colours(np.asarray(bins), levels) / 255.0).astype(np.float64)
    w = np.asarray(counts, np.float64)
    w = w / w.sum()
    mean = (lab * w[:, None]).sum(axis=0)
    std = np.sqrt(((lab - mean) ** 2 * w[:, None]).sum(axis=0))
    return [float(v) for v in mean], [float(v) for v in std]


def lab_transfer(lab: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """Move Lab values with the neutral statistics to (mean, std), channel by channel."""
    m0, s0 = np.asarray(NEUTRAL_LAB_MEAN), np.asarray(NEUTRAL_LAB_STD)
    return (lab - m0) / s0 * np.maximum(np.asarray(std), 1e-3) + np.asarray(mean)


def lut_table(mean: list[float], std: list[float], size: int = LUT_SIZE) -> np.ndarray:
    """(size, size, size, 3) float32 table indexed [r, g, b]: sRGB in [0, 1] after the scene's transfer."""
    axis = np.linspace(0.0, 1.0, size, dtype=np.float32)
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")
    rgb = np.stack([r, g, b], axis=-1)
    out = kf.lab_to_rgb(lab_transfer(kf.rgb_to_lab(rgb).astype(np.float64), mean, std).astype(np.float32))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def apply_table(rgb01: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Apply a lut_table to sRGB in [0, 1] by trilinear interpolation (reference for tests)."""
    n = table.shape[0]
    x = np.clip(rgb01, 0.0, 1.0) * (n - 1)
    i0 = np.minimum(np.floor(x).astype(np.int64), n - 2)
    f = x - i0
    out = np.zeros(rgb01.shape, np.float64)
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                w = (
                    (f[..., 0] if dr else 1 - f[..., 0])
                    * (f[..., 1] if dg else 1 - f[..., 1])
                    * (f[..., 2] if db else 1 - f[..., 2])
                )
                out += w[..., None] * table[i0[..., 0] + dr, i0[..., 1] + dg, i0[..., 2] + db]
    return out.astype(np.float32)


def cube_text(table: np.ndarray, title: str) -> str:
    """The `.cube` text of a lut_table (red changes fastest, then green, then blue)."""
    n = table.shape[0]
    lines = [f'TITLE "{title}"', f"LUT_3D_SIZE {n}", "DOMAIN_MIN 0.0 0.0 0.0", "DOMAIN_MAX 1.0 1.0 1.0"]
    for b in range(n):
        for g in range(n):
            for r in range(n):
                v = table[r, g, b]
                lines.append(f"{v[0]:.6f} {v[1]:.6f} {v[2]:.6f}")
    return "\n".join(lines) + "\n"


def lighting_key(luma_mean: float, dark_share: float, bright_share: float) -> str:
    """ "high_key" (bright, shadows under 15 %), "low_key" (over half the picture in shadow, mean luma
    under 0.3) or "normal"."""
    if luma_mean >= 0.55 and dark_share < 0.15:
        return "high_key"
    if luma_mean <= 0.3 and dark_share >= 0.5:
        return "low_key"
    return "normal"


def mood(
    *,
    luma_mean: float,
    saturation: float,
    temperature: float,
    camera_speed: float,
    cuts_per_minute: float,
    tempo_bpm: float | None,
    lufs: float | None,
) -> dict[str, Any]:
    """Valence and energy in [0, 1] with the words that describe them.

    valence: brighter, more saturated (grade saturation 1.0 = ordinary) and warmer pictures read as
    happier: 0.45 * luma + 0.3 * min(saturation / 2, 1) + 0.25 * (temperature mapped from [-0.2, 0.2]).
    energy: camera speed (frame widths per second, 0.5 = fast), cutting rate (30 per minute = fast),
    tempo (160 bpm = fast) and loudness (-10 LUFS = loud), each mapped to [0, 1]; absent terms drop out.
    """

    def unit(v: float, lo: float, hi: float) -> float:
        return float(min(max((v - lo) / (hi - lo), 0.0), 1.0))

    valence = (
        0.45 * unit(luma_mean, 0.1, 0.7)
        + 0.3 * unit(saturation, 0.0, 2.0)
        + 0.25 * unit(temperature, -0.2, 0.2)
    )
    terms = [unit(camera_speed, 0.0, 0.5), unit(cuts_per_minute, 0.0, 30.0)]
    if tempo_bpm:
        terms.append(unit(tempo_bpm, 60.0, 160.0))
    if lufs is not None and math.isfinite(lufs):
        terms.append(unit(lufs, -35.0, -10.0))
    energy = float(np.mean(terms))
    words = [
        "bright" if luma_mean > 0.55 else "dark" if luma_mean < 0.25 else "mid-toned",
        "vivid" if saturation > 1.3 else "muted" if saturation < 0.6 else "natural-coloured",
        "warm" if temperature > 0.08 else "cool" if temperature < -0.05 else "neutral",
        "energetic" if energy > 0.6 else "calm" if energy < 0.3 else "steady",
    ]
    tone = "cheerful" if valence > 0.6 else "sombre" if valence < 0.35 else "even"
    return {
        "valence": round(valence, 4),
        "energy": round(energy, 4),
        "words": words + [tone],
        "description": f"{tone}, {words[3]}: {words[0]}, {words[1]}, {words[2]} pictures",
    }
