"""Similarity measures on arrays (xp-generic where it matters): colour difference, palette and
histogram distances, SSIM/MS-SSIM, texture statistics, camera-path agreement, cut and beat alignment,
shot-length distributions, FID/KID on feature sets, and the 0-100 closeness curve scores use."""

from __future__ import annotations

import math

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
        xp.where(
            xp.abs(h1p - h2p) <= 180, hsum / 2, xp.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2)
        ),
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
            if (
                i not in used
                and abs(f - t) <= tolerance
                and (best is None or abs(f - t) < abs(found[best] - t))
            ):
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


# --- scores ---------------------------------------------------------------------------------------


def closeness(diff: float | None, half: float, power: float = 2.0) -> float:
    """100 at diff 0, 50 at |diff| == half, falling toward 0; NaN for a missing diff.

    power 2 keeps the curve flat near zero, so measurement noise (a re-encode, a jittered motion
    estimate) costs almost nothing while a real difference of `half` costs half the score.
    """
    if diff is None or not math.isfinite(diff):
        return float("nan")
    return float(100.0 * 2.0 ** (-((abs(diff) / half) ** power)))


# --- pictures: structural similarity -------------------------------------------------------------

_SSIM_C1 = (0.01 * 1.0) ** 2
_SSIM_C2 = (0.03 * 1.0) ** 2
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gauss_taps(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img, taps):
    """Separable 'valid' correlation of (..., H, W) with the 1-D taps on both axes (xp-generic)."""
    k = len(taps)
    h, w = img.shape[-2], img.shape[-1]
    rows = sum(float(t) * img[..., i : h - k + 1 + i, :] for i, t in enumerate(taps))
    return sum(float(t) * rows[..., :, i : w - k + 1 + i] for i, t in enumerate(taps))


def _ssim_parts(a, b, taps):
    mu_a, mu_b = _filter_valid(a, taps), _filter_valid(b, taps)
    saa = _filter_valid(a * a, taps) - mu_a * mu_a
    sbb = _filter_valid(b * b, taps) - mu_b * mu_b
    sab = _filter_valid(a * b, taps) - mu_a * mu_b
    lum = (2 * mu_a * mu_b + _SSIM_C1) / (mu_a**2 + mu_b**2 + _SSIM_C1)
    cs = (2 * sab + _SSIM_C2) / (saa + sbb + _SSIM_C2)
    return lum, cs


def ssim(a, b) -> float:
    """Mean SSIM (Wang et al. 2004: 11-tap Gaussian, sigma 1.5) of two greyscale images in [0, 1]."""
    xp = _xp(a)
    a, b = xp.asarray(a, dtype=xp.float64), xp.asarray(b, dtype=xp.float64)
    if a.shape != b.shape:
        raise ValueError(f"ssim needs equal shapes, got {a.shape} and {b.shape}")
    lum, cs = _ssim_parts(a, b, _gauss_taps(min(11, min(a.shape[-2:]))))
    return float((lum * cs).mean())


def _half(img, xp):
    h, w = img.shape[-2] // 2 * 2, img.shape[-1] // 2 * 2
    x = img[..., :h, :w]
    return 0.25 * (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2])


def ms_ssim(a, b, *, weights=MS_SSIM_WEIGHTS) -> float:
    """Multi-scale SSIM (Wang et al. 2003) of greyscale images in [0, 1].

    Uses as many of the five scales as the picture allows (the coarsest must still hold the 11-tap
    window) and renormalises their weights; negative contrast-structure terms are clipped to 0 so a
    scale that disagrees zeroes the product instead of making it undefined.
    """
    xp = _xp(a)
    a, b = xp.asarray(a, dtype=xp.float64), xp.asarray(b, dtype=xp.float64)
    taps = _gauss_taps()
    n = 1
    while n < len(weights) and min(a.shape[-2:]) // (2**n) >= len(taps):
        n += 1
    w = np.asarray(weights[:n], dtype=np.float64)
    w = w / w.sum()
    out = 1.0
    for i in range(n):
        lum, cs = _ssim_parts(a, b, taps)
        if i == n - 1:
            out *= max(float((lum * cs).mean()), 0.0) ** w[i]
        else:
            out *= max(float(cs.mean()), 0.0) ** w[i]
            a, b = _half(a, xp), _half(b, xp)
    return float(out)


# --- colour distributions --------------------------------------------------------------------------

LAB_RANGES = ((0.0, 100.0), (-100.0, 100.0), (-100.0, 100.0))


def lab_histograms(lab, bins: int = 64):
    """Per-channel histograms (3, bins) of Lab pixels (..., 3) over LAB_RANGES, each summing to 1."""
    xp = _xp(lab)
    px = lab.reshape(-1, 3)
    out = []
    for c, (lo, hi) in enumerate(LAB_RANGES):
        h, _ = xp.histogram(xp.clip(px[:, c], lo, hi), bins=bins, range=(lo, hi))
        out.append(h / max(float(h.sum()), 1.0))
    return xp.stack(out)


def chroma_histogram(lab, bins: int = 16):
    """Joint (a, b) histogram (bins * bins,) of Lab pixels, summing to 1."""
    xp = _xp(lab)
    px = lab.reshape(-1, 3)
    (lo, hi) = LAB_RANGES[1]
    q = xp.clip(((px[:, 1:] - lo) / (hi - lo) * bins).astype(xp.int64), 0, bins - 1)
    h = xp.bincount(q[:, 0] * bins + q[:, 1], minlength=bins * bins).astype(xp.float64)
    return h / max(float(h.sum()), 1.0)


def wasserstein_1d(p, q, bin_width: float) -> float:
    """Earth mover's distance between two histograms on the same equal bins (in the bins' units)."""
    xp = _xp(p)
    return float(xp.abs(xp.cumsum(p) - xp.cumsum(q)).sum() * bin_width)


def bhattacharyya(p, q) -> float:
    """Hellinger form of the Bhattacharyya distance of two normalised histograms: 0 same, 1 disjoint."""
    xp = _xp(p)
    bc = float(xp.sqrt(p * q).sum())
    return math.sqrt(max(0.0, 1.0 - bc))


def chi_square(p, q) -> float:
    """Symmetric chi-square distance of two normalised histograms: 0 same, 1 disjoint."""
    xp = _xp(p)
    s = p + q
    return float(0.5 * xp.where(s > 0, (p - q) ** 2 / xp.where(s > 0, s, 1.0), 0.0).sum())


def texture_stats(grey) -> dict[str, float]:
    """Content-free texture figures of a greyscale image in [0, 1]: detail, sharpness, noise."""
    xp = _xp(grey)
    g = xp.asarray(grey, dtype=xp.float64)
    gx, gy = g[:, 1:] - g[:, :-1], g[1:, :] - g[:-1, :]
    lap = g[1:-1, 1:-1] * 4 - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    grad = float(xp.sqrt(gx[:-1, :] ** 2 + gy[:, :-1] ** 2).mean())
    var = float(g.var())
    return {
        "gradient": grad,
        "laplacian_ratio": float(lap.var()) / max(var, 1e-9),
        # Immerkaer's fast noise estimate: median of |Laplacian| over sqrt(pi/2)/6 weights.
        "noise": float(xp.median(xp.abs(lap))) * math.sqrt(math.pi / 2) / 6.0,
    }


# --- motion ---------------------------------------------------------------------------------------


def resample_curve(values, n: int):
    """Rows of `values` (T, D) resampled to n rows by linear interpolation over normalised time."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if len(v) == 0:
        return np.zeros((n, v.shape[1] if v.ndim == 2 else 1))
    if len(v) == 1:
        return np.repeat(v, n, axis=0)
    src = np.linspace(0.0, 1.0, len(v))
    dst = np.linspace(0.0, 1.0, n)
    return np.stack([np.interp(dst, src, v[:, d]) for d in range(v.shape[1])], axis=1)


def _pose_space(traj) -> np.ndarray:
    """[x, y, log zoom, roll / 30 deg] per frame: comparable units (a frame width ~ a doubling ~ 30 deg)."""
    t = np.asarray(traj, dtype=np.float64).reshape(-1, 4)
    return np.stack([t[:, 0], t[:, 1], np.log(np.maximum(t[:, 2], 1e-6)), t[:, 3] / 30.0], axis=1)


def trajectory_agreement(sample_traj, output_traj, n: int = 64) -> dict[str, float]:
    """How alike two camera paths are, over normalised time.

    Returns `rmse` (pose-space distance, frame widths), `correlation` (Pearson of the per-step
    velocities, NaN when either path is still) and `extent` (the sample path's own RMS size).
    The difference is integrated from per-step velocity differences, each clamped to a few times
    the paths' typical step: a motion estimate that glitches on a few frames (a fade through
    black, a flash) would otherwise offset the whole rest of the path.
    """
    a = resample_curve(_pose_space(sample_traj), n)
    b = resample_curve(_pose_space(output_traj), n)
    a, b = a - a[0], b - b[0]
    va, vb = np.diff(a, axis=0), np.diff(b, axis=0)
    typical = np.median(np.abs(va), axis=0) + np.median(np.abs(vb), axis=0)
    limit = 4.0 * typical + 0.002
    dv = np.clip(va - vb, -limit, limit)
    path = np.vstack([np.zeros((1, a.shape[1])), np.cumsum(dv, axis=0)])
    rmse = float(np.sqrt((path**2).sum(axis=1).mean()))
    corr = float("nan")
    fa, fb = va.ravel(), vb.ravel()
    if fa.std() > 1e-6 and fb.std() > 1e-6:
        corr = float(np.corrcoef(fa, fb)[0, 1])
    return {"rmse": rmse, "correlation": corr, "extent": float(np.sqrt((a**2).sum(axis=1).mean()))}


# --- pacing ---------------------------------------------------------------------------------------


def cut_alignment(sample_cuts_s, output_cuts_s, half_s: float, max_s: float = 1.0) -> dict[str, float]:
    """Soft F1 of cut times: each sample cut pairs with the nearest unused output cut within max_s,
    credited closeness(error, half_s) / 100; mean absolute error of the pairs in seconds."""
    s, o = sorted(float(x) for x in sample_cuts_s), sorted(float(x) for x in output_cuts_s)
    if not s and not o:
        return {"soft_f1": 1.0, "matched": 0, "mean_error_s": 0.0}
    pairs = sorted(
        (abs(a - b), i, j) for i, a in enumerate(s) for j, b in enumerate(o) if abs(a - b) <= max_s
    )
    used_s, used_o, credit, errs = set(), set(), 0.0, []
    for err, i, j in pairs:
        if i in used_s or j in used_o:
            continue
        used_s.add(i)
        used_o.add(j)
        credit += closeness(err, half_s) / 100.0
        errs.append(err)
    return {
        "soft_f1": 2.0 * credit / (len(s) + len(o)),
        "matched": len(errs),
        "mean_error_s": float(np.mean(errs)) if errs else float("nan"),
    }


def shot_length_distance(sample_lengths_s, output_lengths_s) -> dict[str, float]:
    """Distances between shot-length distributions in log2 seconds: Wasserstein-1 and Kolmogorov-Smirnov."""
    a = np.sort(np.log2(np.maximum(np.asarray(sample_lengths_s, float), 1e-3)))
    b = np.sort(np.log2(np.maximum(np.asarray(output_lengths_s, float), 1e-3)))
    if len(a) == 0 or len(b) == 0:
        return {"wasserstein_log2": float("nan"), "ks": float("nan")}
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    w = float(np.sum(np.abs(fa - fb)[:-1] * np.diff(grid)))
    return {"wasserstein_log2": w, "ks": float(np.max(np.abs(fa - fb)))}


def beat_f_measure(reference_s, estimate_s, window_s: float = 0.07) -> float:
    """F-measure of beat times within +-window_s (the MIREX beat-tracking convention)."""
    r, e = np.asarray(sorted(reference_s), float), np.asarray(sorted(estimate_s), float)
    if len(r) == 0 and len(e) == 0:
        return 1.0
    if len(r) == 0 or len(e) == 0:
        return 0.0
    used = np.zeros(len(e), bool)
    hits = 0
    for t in r:
        d = np.abs(e - t)
        d[used] = np.inf
        j = int(np.argmin(d))
        if d[j] <= window_s:
            used[j] = True
            hits += 1
    p, rec = hits / len(e), hits / len(r)
    return 2 * p * rec / (p + rec) if p + rec else 0.0


# --- feature distributions (FID / KID) -------------------------------------------------------------


def frechet_distance(feats_a, feats_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) (the FID formula).

    tr(sqrt(Ca Cb)) is taken as the sum of the square roots of the eigenvalues of
    sqrt(Ca) Cb sqrt(Ca), which is symmetric, so no general matrix square root is needed.
    """
    xp = _xp(feats_a)
    a, b = xp.asarray(feats_a, dtype=xp.float64), xp.asarray(feats_b, dtype=xp.float64)
    mu = a.mean(axis=0) - b.mean(axis=0)
    ca = xp.atleast_2d(xp.cov(a, rowvar=False)) if len(a) > 1 else xp.zeros((a.shape[1],) * 2)
    cb = xp.atleast_2d(xp.cov(b, rowvar=False)) if len(b) > 1 else xp.zeros((b.shape[1],) * 2)
    wa, va = xp.linalg.eigh(ca)
    sa = (va * xp.sqrt(xp.clip(wa, 0, None))) @ va.T
    m = sa @ cb @ sa
    tr_sqrt = float(xp.sqrt(xp.clip(xp.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())
    return max(0.0, float(mu @ mu) + float(xp.trace(ca)) + float(xp.trace(cb)) - 2.0 * tr_sqrt)


def kernel_inception_distance(feats_a, feats_b) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel (k(x, y) = (x.y / d + 1)^3), the KID formula."""
    xp = _xp(feats_a)
    a, b = xp.asarray(feats_a, dtype=xp.float64), xp.asarray(feats_b, dtype=xp.float64)
    d = a.shape[1]
    m, n = len(a), len(b)
    if m < 2 or n < 2:
        return float("nan")
    kaa = (a @ a.T / d + 1) ** 3
    kbb = (b @ b.T / d + 1) ** 3
    kab = (a @ b.T / d + 1) ** 3
    saa = (float(kaa.sum()) - float(xp.trace(kaa))) / (m * (m - 1))
    sbb = (float(kbb.sum()) - float(xp.trace(kbb))) / (n * (n - 1))
    return saa + sbb - 2.0 * float(kab.mean())
