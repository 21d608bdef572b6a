"""Similarity measures on arrays (xp-generic where it matters): colour difference, palette distance,
cut alignment."""

from __future__ import annotations

import numpy as np


def delta_e2000(lab1, lab2):
    """CIEDE2000 colour difference between Lab arrays of shape (..., 3) (Sharma et al. 2005)."""
    xp = _xp(lab1)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    C1 = xp.sqrt(a1**2 + b1**2)
    C2 = xp.sqrt(a2**2 + b2**2)
    Cm = (C1 + C2) / 2
    G = 0.5 * (1 - xp.sqrt(Cm**7 / (Cm**7 + 25.0**7)))
    a1p, a2p = (1 + G) * a1, (1 + G) * a2
    C1p, C2p = xp.sqrt(a1p**2 + b1**2), xp.sqrt(a2p**2 + b2**2)
    h1p = xp.degrees(xp.arctan2(b1, a1p)) % 360
    h2p = xp.degrees(xp.arctan2(b2, a2p)) % 360
    dLp = L2 - L1
    dCp = C2p - C1p
    dh = h2p - h1p
    dh = xp.where(dh > 180, dh - 360, xp.where(dh < -180, dh + 360, dh))
    dh = xp.where(C1p * C2p == 0, 0.0, dh)
    dHp = 2 * xp.sqrt(C1p * C2p) * xp.sin(xp.radians(dh / 2))
    Lpm = (L1 + L2) / 2
    Cpm = (C1p + C2p) / 2
    hsum = h1p + h2p
    hpm = xp.where(
        C1p * C2p == 0,
        hsum,
        xp.where(xp.abs(h1p - h2p) <= 180, hsum / 2, xp.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2)),
    )
    T = (
        1
        - 0.17 * xp.cos(xp.radians(hpm - 30))
        + 0.24 * xp.cos(xp.radians(2 * hpm))
        + 0.32 * xp.cos(xp.radians(3 * hpm + 6))
        - 0.20 * xp.cos(xp.radians(4 * hpm - 63))
    )
    dtheta = 30 * xp.exp(-(((hpm - 275) / 25) ** 2))
    Rc = 2 * xp.sqrt(Cpm**7 / (Cpm**7 + 25.0**7))
    Sl = 1 + 0.015 * (Lpm - 50) ** 2 / xp.sqrt(20 + (Lpm - 50) ** 2)
    Sc = 1 + 0.045 * Cpm
    Sh = 1 + 0.015 * Cpm * T
    Rt = -xp.sin(xp.radians(2 * dtheta)) * Rc
    return xp.sqrt((dLp / Sl) ** 2 + (dCp / Sc) ** 2 + (dHp / Sh) ** 2 + Rt * (dCp / Sc) * (dHp / Sh))


def palette_distance(lab_a, w_a, lab_b, w_b) -> float:
    """Symmetric weighted nearest-colour ΔE2000 between two palettes (Lab rows with weights)."""
    lab_a, lab_b = np.asarray(lab_a, float), np.asarray(lab_b, float)
    w_a, w_b = np.asarray(w_a, float), np.asarray(w_b, float)
    if len(lab_a) == 0 or len(lab_b) == 0:
        return float("nan")
    d = delta_e2000(lab_a[:, None, :], lab_b[None, :, :])
    ab = float(np.sum(w_a / w_a.sum() * d.min(axis=1)))
    ba = float(np.sum(w_b / w_b.sum() * d.min(axis=0)))
    return (ab + ba) / 2


def cut_f1(truth, found, tolerance: int = 1) -> tuple[float, float, float]:
    """(precision, recall, F1) of cut frames, each truth cut matched at most once within tolerance."""
    truth, found = sorted(truth), sorted(found)
    if not truth and not found:
        return 1.0, 1.0, 1.0
    used: set[int] = set()
    hits = 0
    for t in truth:
        best = None
        for i, f in enumerate(found):
            if i not in used and abs(f - t) <= tolerance and (best is None or abs(f - t) < abs(found[best] - t)):
                best = i
        if best is not None:
            used.add(best)
            hits += 1
    p = hits / len(found) if found else 0.0
    r = hits / len(truth) if truth else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _xp(a):
    try:
        import cupy

        return cupy.get_array_module(a)
    except ImportError:
        return np
