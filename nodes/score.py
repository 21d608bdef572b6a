"""How alike an output is to its sample, in the similarity.json format.

What a remake should keep is the sample's look, motion, rhythm and sound, not its pixels, so the
comparison is scene by scene (sample scene i against plan scene i when a plan is given, else against
the output scene it overlaps most) and mostly on content-free figures:

- colour: palette ΔE2000, mean-colour ("grade") ΔE2000, grade parameters, Lab histogram distances
  (per-channel Wasserstein, chroma Bhattacharyya and chi-square) on keyframes;
- texture: detail, sharpness and noise statistics of keyframes (content-free);
- perceptual: SSIM, MS-SSIM and, when torch and weights are there, LPIPS of keyframe pairs; FID and
  KID of the keyframe sets are reported as raw figures (too few frames to calibrate a score on);
- motion: camera trajectory agreement (pose RMSE, velocity correlation);
- pacing: cut-time alignment, shot-length distribution, duration;
- audio: tempo, beat alignment, loudness (integrated and short-term curve), spectral shape, chroma,
  MFCC statistics, speech/music/silence balance.

Each family is 0-100 (`kernels.metrics.closeness` of its raw figures, which are all reported), per
scene and in total; `visual` combines colour, texture, perceptual and motion; `overall` combines
visual, audio and pacing. Suggestions are plan operations (see coordinator/fix.py).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lookalike.kernels import audio_metrics as am
from lookalike.kernels import metrics as km
from lookalike.kernels.grade import rgb_to_lab

from lookalike.errors import InputError

SCHEMA = "lookalike.similarity/1"
AUDIO_RATE = 22050
KEYFRAMES_PER_SCENE = 3
KEYFRAME_LONG_SIDE = 320
THUMB_WIDTH = 160

# How each family is built from the others (weights renormalise over the measures present).
VISUAL_WEIGHTS = {"colour": 0.40, "motion": 0.30, "texture": 0.15, "perceptual": 0.15}
OVERALL_WEIGHTS = {"visual": 0.45, "audio": 0.25, "pacing": 0.30}
GRADE_HALF = {"exposure": 0.5, "contrast": 0.3, "saturation": 0.3, "temperature": 0.08}
# Below these a family is fine; at or above them a suggestion is made.
SUGGEST_BELOW = {"colour": 90.0, "motion": 80.0}


@dataclass(frozen=True)
class ScoreConfig:
    """Where learned-measure weights live (local paths; nothing is downloaded) and how much to sample."""

    lpips_weights: str | None = None
    lpips_backbone: str | None = None
    fid_weights: str | None = None
    keyframes_per_scene: int = KEYFRAMES_PER_SCENE
    keyframe_long_side: int = KEYFRAME_LONG_SIDE
    thumbnails: bool = True
    # Threads for the Score job's keyframe and audio reads (1: one after the other).
    read_workers: int = 4


# --------------------------------------------------------------------------------------------------
# helpers


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _wmean(parts: dict[str, float], weights: dict[str, float]) -> float:
    """Weighted mean over the parts that are finite; NaN when none is."""
    got = [(v, weights.get(k, 1.0)) for k, v in parts.items() if _finite(v)]
    if not got:
        return float("nan")
    return float(sum(v * w for v, w in got) / sum(w for _, w in got))


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 4) if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        return _clean(v.item())
    return v


def _palette_lab(palette: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    if not palette:
        return np.zeros((0, 3)), np.zeros(0)
    rgb = np.array([p["rgb"] for p in palette], dtype=np.float32).reshape(1, -1, 3) / 255.0
    lab = np.asarray(rgb_to_lab(rgb), dtype=float).reshape(-1, 3)
    return lab, np.array([p.get("weight", 1.0) for p in palette], dtype=float)


def _png_data_uri(rgb: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode() if ok else ""


def _thumb(rgb: np.ndarray) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (THUMB_WIDTH, max(2, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------------------------------
# alignment


def align_scenes(sample: dict, output: dict, plan: dict | None = None) -> list[dict]:
    """For each sample scene, the output frame range it is compared with, and how it was found.

    With a plan, sample scene i is plan scene i (the plan says which output frames remake it).
    Otherwise the output scene with the largest overlap in normalised time, when it covers at least
    half of the sample scene; else the proportional frame range.
    """
    n_s = max(1, sample["source"]["n_frames"])
    n_o = max(1, output["source"]["n_frames"])
    plan_scenes = {s["index"]: s for s in (plan or {}).get("scenes", [])}
    out = []
    for s in sample["scenes"]:
        a, b = s["start_frame"] / n_s, s["end_frame"] / n_s
        p = plan_scenes.get(s["index"])
        if p is not None and p["end_frame"] <= n_o:
            out.append({"index": s["index"], "start": p["start_frame"], "end": p["end_frame"], "by": "plan"})
            continue
        best, overlap = None, 0.0
        for o in output["scenes"]:
            ov = min(b, o["end_frame"] / n_o) - max(a, o["start_frame"] / n_o)
            if ov > overlap:
                best, overlap = o, ov
        if best is not None and overlap >= 0.5 * (b - a):
            out.append(
                {"index": s["index"], "start": best["start_frame"], "end": best["end_frame"], "by": "match"}
            )
        else:
            start = min(n_o - 1, int(round(a * n_o)))
            out.append(
                {
                    "index": s["index"],
                    "start": start,
                    "end": max(start + 1, int(round(b * n_o))),
                    "by": "time",
                }
            )
    return out


def _output_scene_for(output: dict, start: int, end: int) -> dict | None:
    best, overlap = None, 0
    for o in output["scenes"]:
        ov = min(end, o["end_frame"]) - max(start, o["start_frame"])
        if ov > overlap:
            best, overlap = o, ov
    return best


# --------------------------------------------------------------------------------------------------
# media measurements (frames and audio)


def _keyframe_indices(start: int, end: int, k: int) -> list[int]:
    n = max(1, end - start)
    return sorted({min(end - 1, start + int((i + 0.5) * n / k)) for i in range(k)})


def _keyframe_size(path: str, long_side: int) -> tuple[int, int]:
    from lookalike.nodes import media

    info = media.probe(path)
    w, h = int(info.width), int(info.height)
    if int(getattr(info, "rotation_deg", 0)) % 180:
        w, h = h, w
    s = long_side / max(w, h)
    return max(16, int(round(w * s / 2)) * 2), max(16, int(round(h * s / 2)) * 2)


def _decode_runs(indices: Sequence[int]) -> list[list[int]]:
    """`indices` sorted, unique, grouped into runs that one decode reads."""
    want = sorted(set(int(i) for i in indices))
    runs: list[list[int]] = []
    for i in want:
        # Decoding through a gap of < 24 frames is cheaper than seeking again.
        if runs and i - runs[-1][-1] < 24:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _read_run(path: str, run: list[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
    from lookalike.nodes import media

    keep = set(run)
    return {i: rgb for i, _t, rgb in media.iter_frames(path, run[0], run[-1] + 1, size=size) if i in keep}


def read_keyframes(
    path: str, indices: Sequence[int], size: tuple[int, int], *, pool: Executor | None = None
) -> dict[int, np.ndarray]:
    """Frames at `indices` (any order, repeats allowed) as rgb24 at `size`, read with one decode per
    run of nearby frames; with `pool`, the runs are decoded concurrently (PyAV decodes without the
    GIL; every run seeks on its own, so the frames are the same)."""
    runs = _decode_runs(indices)
    parts = (
        pool.map(lambda r: _read_run(path, r, size), runs)
        if pool
        else (_read_run(path, r, size) for r in runs)
    )
    out: dict[int, np.ndarray] = {}
    for part in parts:
        out.update(part)
    return out


def audio_measures(path: str) -> dict | None:
    """Audio figures of one file: spectral statistics, loudness curve, speech/music balance; None
    without an audio track."""
    from lookalike.nodes import media

    got = media.read_audio(path, rate=AUDIO_RATE)
    if got is None:
        return None
    y, rate = got
    if len(y) < rate // 4 or float(np.max(np.abs(y), initial=0.0)) < 1e-4:
        return {"silent": True, "spectral": {}, "loudness_t": [], "loudness": [], "balance": {"silence": 1.0}}
    t, lufs = am.loudness_curve(y, rate)
    return {
        "silent": False,
        "spectral": am.spectral_features(y, rate),
        "loudness_t": t.tolist(),
        "loudness": lufs.tolist(),
        "balance": am.speech_music_balance(y, rate),
    }


# --------------------------------------------------------------------------------------------------
# families


def _colour(s: dict, o: dict | None, kf_s: list, kf_o: list) -> tuple[float, dict]:
    raw: dict[str, float] = {}
    parts: dict[str, float] = {}
    if o is not None:
        de = km.palette_distance(*_palette_lab(s.get("palette", [])), *_palette_lab(o.get("palette", [])))
        raw["palette_delta_e"] = de
        parts["palette"] = km.closeness(de, 10.0)
        sg, og = s.get("grade", {}), o.get("grade", {})
        grade_scores = []
        for key, half in GRADE_HALF.items():
            if key in sg and key in og:
                if key in ("contrast", "saturation"):
                    d = math.log2(max(og[key], 1e-3) / max(sg[key], 1e-3))
                else:
                    d = og[key] - sg[key]
                raw[f"grade_{key}_diff"] = d
                grade_scores.append(km.closeness(d, half))
        parts["grade"] = float(np.mean(grade_scores)) if grade_scores else float("nan")
    if kf_s and kf_o:
        lab_s = np.concatenate([np.asarray(rgb_to_lab(f), np.float64).reshape(-1, 3) for f in kf_s])
        lab_o = np.concatenate([np.asarray(rgb_to_lab(f), np.float64).reshape(-1, 3) for f in kf_o])
        raw["mean_delta_e"] = float(km.delta_e2000(lab_s.mean(axis=0), lab_o.mean(axis=0)))
        hs, ho = km.lab_histograms(lab_s), km.lab_histograms(lab_o)
        widths = [(hi - lo) / hs.shape[1] for lo, hi in km.LAB_RANGES]
        raw["lab_wasserstein"] = float(
            np.mean([km.wasserstein_1d(hs[c], ho[c], widths[c]) for c in range(3)])
        )
        cs, co = km.chroma_histogram(lab_s), km.chroma_histogram(lab_o)
        raw["chroma_bhattacharyya"] = km.bhattacharyya(cs, co)
        raw["chroma_chi2"] = km.chi_square(cs, co)
        parts["mean_colour"] = km.closeness(raw["mean_delta_e"], 6.0)
        parts["histogram"] = 0.7 * km.closeness(raw["lab_wasserstein"], 7.0) + 0.3 * km.closeness(
            raw["chroma_bhattacharyya"], 0.45
        )
    score = _wmean(parts, {"palette": 0.3, "grade": 0.15, "mean_colour": 0.25, "histogram": 0.3})
    return score, raw


def _luma(rgb: np.ndarray) -> np.ndarray:
    f = rgb.astype(np.float64) / 255.0
    return f[..., 0] * 0.2126 + f[..., 1] * 0.7152 + f[..., 2] * 0.0722


def _texture(kf_s: list, kf_o: list) -> tuple[float, dict]:
    if not kf_s or not kf_o:
        return float("nan"), {}
    ts = [km.texture_stats(_luma(f)) for f in kf_s]
    to = [km.texture_stats(_luma(f)) for f in kf_o]
    raw, diffs = {}, []
    # Noise is the figure a codec changes most: it counts for less and has a higher floor.
    weights = {"gradient": 0.4, "laplacian_ratio": 0.4, "noise": 0.2}
    for key, floor in (("gradient", 0.004), ("laplacian_ratio", 0.02), ("noise", 0.004)):
        a = float(np.mean([t[key] for t in ts]))
        b = float(np.mean([t[key] for t in to]))
        raw[f"texture_{key}_sample"], raw[f"texture_{key}_output"] = a, b
        diffs.append(weights[key] * abs(math.log2((b + floor) / (a + floor))))
    raw["texture_log2_diff"] = float(np.sum(diffs))
    return km.closeness(raw["texture_log2_diff"], 0.8), raw


def _perceptual(kf_s: list, kf_o: list, lpips: Any) -> tuple[float, dict]:
    if not kf_s or not kf_o:
        return float("nan"), {}
    pairs = list(zip(kf_s, kf_o, strict=False))
    raw = {
        "ssim": float(np.mean([km.ssim(_luma(a), _luma(b)) for a, b in pairs])),
        "ms_ssim": float(np.mean([km.ms_ssim(_luma(a), _luma(b)) for a, b in pairs])),
    }
    parts = {"ssim": km.closeness(1 - raw["ssim"], 0.35), "ms_ssim": km.closeness(1 - raw["ms_ssim"], 0.3)}
    if lpips is not None:
        raw["lpips"] = float(
            np.mean(lpips.distance(np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])))
        )
        parts["lpips"] = km.closeness(raw["lpips"], 0.35)
    return _wmean(parts, {}), raw


def _motion(s: dict, o_traj: list) -> tuple[float, dict]:
    st = (s.get("camera") or {}).get("trajectory") or []
    if not st or not o_traj:
        return float("nan"), {}
    ag = km.trajectory_agreement(st, o_traj)
    raw = {"trajectory_rmse": ag["rmse"], "trajectory_correlation": ag["correlation"]}
    return km.closeness(ag["rmse"], 0.06 + 0.2 * ag["extent"]), raw


def _output_trajectory(output: dict, start: int, end: int) -> list:
    """The output camera path over frames [start, end), stitched from the output scenes it spans."""
    rows: list = []
    for o in output["scenes"]:
        a, b = max(start, o["start_frame"]), min(end, o["end_frame"])
        if b <= a:
            continue
        traj = (o.get("camera") or {}).get("trajectory") or []
        seg = np.asarray(traj[a - o["start_frame"] : b - o["start_frame"]], dtype=np.float64).reshape(-1, 4)
        if len(seg) == 0:
            continue
        if rows:  # continue from where the previous piece ended (a cut restarts the path at zero)
            last = np.asarray(rows[-1])
            seg = seg.copy()
            seg[:, :2] += last[:2] - seg[0, :2]
        rows.extend(seg.tolist())
    return rows


def _pacing(sample: dict, output: dict) -> tuple[float, dict]:
    fps = float(sample["source"].get("fps") or 24.0)
    s_cuts = [sc["start_s"] for sc in sample["scenes"][1:]]
    o_cuts = [sc["start_s"] for sc in output["scenes"][1:]]
    ca = km.cut_alignment(s_cuts, o_cuts, half_s=2.5 / fps)
    s_len = [sc["end_s"] - sc["start_s"] for sc in sample["scenes"]]
    o_len = [sc["end_s"] - sc["start_s"] for sc in output["scenes"]]
    sl = km.shot_length_distance(s_len, o_len)
    p1, r1, f1 = km.cut_f1(
        [sc["start_frame"] for sc in sample["scenes"][1:]],
        [sc["start_frame"] for sc in output["scenes"][1:]],
        1,
    )
    dur_s, dur_o = sample["source"]["duration_s"], output["source"]["duration_s"]
    dur_log = abs(math.log2(max(dur_o, 1e-3) / max(dur_s, 1e-3)))
    raw = {
        "cut_soft_f1": ca["soft_f1"],
        "cut_mean_error_s": ca["mean_error_s"],
        "cut_precision": p1,
        "cut_recall": r1,
        "cut_f1": f1,
        "shot_length_wasserstein_log2": sl["wasserstein_log2"],
        "shot_length_ks": sl["ks"],
        "cuts_per_minute_sample": (sample.get("pacing") or {}).get("cuts_per_minute"),
        "cuts_per_minute_output": (output.get("pacing") or {}).get("cuts_per_minute"),
        "duration_ratio": dur_o / max(dur_s, 1e-9),
    }
    parts = {
        "cuts": 100.0 * ca["soft_f1"],
        "shots": km.closeness(sl["wasserstein_log2"], 0.35),
        "duration": km.closeness(dur_log, 0.1),
    }
    return _wmean(parts, {"cuts": 0.6, "shots": 0.25, "duration": 0.15}), raw


def _tempo_error(a: float, b: float) -> float:
    # Half or double time is the same pulse read at another level: a small cost, not a wrong tempo.
    octaves = abs(math.log2(b / a))
    return min(octaves, abs(octaves - 1) + 0.02)


def _audio(sample: dict, output: dict, ms: dict | None, mo: dict | None) -> tuple[float, dict, list[str]]:
    sa, oa = sample.get("audio") or {}, output.get("audio") or {}
    s_has, o_has = bool(sa.get("has_audio", ms is not None)), bool(oa.get("has_audio", mo is not None))
    if not s_has and not o_has:
        return float("nan"), {}, ["audio (neither file has an audio track)"]
    if s_has != o_has:
        return 0.0, {"audio_track_sample": s_has, "audio_track_output": o_has}, []
    raw: dict[str, Any] = {}
    parts: dict[str, float] = {}
    missing: list[str] = []
    if sa.get("tempo_bpm") and oa.get("tempo_bpm"):
        raw["tempo_sample_bpm"], raw["tempo_output_bpm"] = sa["tempo_bpm"], oa["tempo_bpm"]
        parts["tempo"] = km.closeness(_tempo_error(sa["tempo_bpm"], oa["tempo_bpm"]), 0.08)
    elif sa.get("tempo_bpm") or oa.get("tempo_bpm"):
        parts["tempo"] = 0.0
    if sa.get("beats_s") or oa.get("beats_s"):
        # The continuity-based convention's window (17.5 % of the beat period): two trackers on the
        # same music disagree by more than MIREX's fixed 70 ms on slow, weakly pulsed scores.
        sb = np.diff(sa.get("beats_s") or [])
        window = max(0.07, 0.175 * float(np.median(sb))) if len(sb) else 0.07
        raw["beat_f_measure"] = km.beat_f_measure(sa.get("beats_s") or [], oa.get("beats_s") or [], window)
        parts["beats"] = 100.0 * raw["beat_f_measure"]
    if sa.get("lufs") is not None and oa.get("lufs") is not None:
        raw["lufs_sample"], raw["lufs_output"] = sa["lufs"], oa["lufs"]
        parts["loudness"] = km.closeness(oa["lufs"] - sa["lufs"], 4.0)
    if ms and mo and not ms["silent"] and not mo["silent"]:
        cs, co = ms["spectral"], mo["spectral"]
        if cs and co:
            raw["spectral_centroid_sample_hz"] = cs["centroid_hz"][0]
            raw["spectral_centroid_output_hz"] = co["centroid_hz"][0]
            spec = [
                abs(math.log2(max(co[k][0], 1e-6) / max(cs[k][0], 1e-6)))
                for k in ("centroid_hz", "bandwidth_hz", "rolloff_hz")
            ]
            raw["spectral_shape_log2_diff"] = float(np.mean(spec))
            raw["spectral_flatness_diff"] = co["flatness"][0] - cs["flatness"][0]
            parts["spectral"] = km.closeness(raw["spectral_shape_log2_diff"], 0.5)
            raw["chroma_similarity"] = am.chroma_similarity(cs["chroma"], co["chroma"])
            parts["chroma"] = km.closeness(1 - raw["chroma_similarity"], 0.05)
            raw["mfcc_distance"] = am.mfcc_distance(
                cs["mfcc_mean"], cs["mfcc_std"], co["mfcc_mean"], co["mfcc_std"]
            )
            parts["mfcc"] = km.closeness(raw["mfcc_distance"], 8.0)
        raw["loudness_curve_correlation"] = am.curve_correlation(ms["loudness"], mo["loudness"])
        parts["dynamics"] = km.closeness(1 - raw["loudness_curve_correlation"], 0.5)
        bs, bo = ms["balance"], mo["balance"]
        raw["balance_sample"], raw["balance_output"] = bs, bo
        tv = 0.5 * sum(abs(bs.get(k, 0.0) - bo.get(k, 0.0)) for k in ("silence", "speech", "music"))
        raw["balance_distance"] = tv
        parts["balance"] = km.closeness(tv, 0.3)
    elif ms is None or mo is None:
        missing.append("audio spectrum/chroma/MFCC/balance (media not given, analyses only)")
    weights = {
        "tempo": 0.25,
        "beats": 0.15,
        "loudness": 0.1,
        "dynamics": 0.1,
        "spectral": 0.1,
        "chroma": 0.1,
        "mfcc": 0.1,
        "balance": 0.1,
    }
    return _wmean(parts, weights), raw, missing


def _window_loudness(m: dict | None, a_s: float, b_s: float) -> float:
    if not m or not m.get("loudness"):
        return float("nan")
    t, lufs = np.asarray(m["loudness_t"]), np.asarray(m["loudness"])
    sel = (t >= a_s) & (t < b_s)
    return float(lufs[sel].mean()) if sel.any() else float("nan")


# --------------------------------------------------------------------------------------------------
# the document


def compare(
    sample: dict,
    output: dict,
    *,
    plan: dict | None = None,
    keyframes: tuple[dict[int, list[np.ndarray]], dict[int, list[np.ndarray]]] | None = None,
    audio: tuple[dict | None, dict | None] | None = None,
    lpips: Any = None,
    feature_sets: tuple[np.ndarray, np.ndarray] | None = None,
    missing: Sequence[str] = (),
    alignment: list[dict] | None = None,
) -> dict:
    """similarity.json from two analysis documents and, when given, keyframes and audio measures.

    `keyframes` is ({scene: [sample frames]}, {scene: [output frames]}), equal sizes per pair;
    `audio` the two `audio_measures`; `lpips` a `score_nets.Lpips`; `feature_sets` the FID/KID
    features of sample and output keyframes. Measures whose inputs are absent are listed in
    "missing" and left out of the weights.
    """
    missing = list(missing)
    alignment = alignment or align_scenes(sample, output, plan)
    kf_s_all, kf_o_all = keyframes or ({}, {})
    if keyframes is None:
        missing.append("keyframe measures: histograms, texture, SSIM/MS-SSIM (media not given)")
    ms, mo = audio or (None, None)
    pacing, pacing_raw = _pacing(sample, output)
    audio_score, audio_raw, audio_missing = _audio(sample, output, ms, mo)
    missing += audio_missing
    fps_o = float(output["source"].get("fps") or 24.0)
    half_s = 2.5 / float(sample["source"].get("fps") or 24.0)

    scenes, suggestions = [], []
    for s, al in zip(sample["scenes"], alignment, strict=True):
        o = _output_scene_for(output, al["start"], al["end"])
        kf_s, kf_o = kf_s_all.get(s["index"], []), kf_o_all.get(s["index"], [])
        colour, c_raw = _colour(s, o, kf_s, kf_o)
        texture, t_raw = _texture(kf_s, kf_o)
        perceptual, p_raw = _perceptual(kf_s, kf_o, lpips)
        o_traj = _output_trajectory(output, al["start"], al["end"])
        motion, m_raw = _motion(s, o_traj)
        visual = _wmean(
            {"colour": colour, "texture": texture, "perceptual": perceptual, "motion": motion}, VISUAL_WEIGHTS
        )
        # Scene pacing: do this scene's boundaries fall where the sample's do?
        if o is not None:
            err = max(abs(o["start_s"] - s["start_s"]), abs(o["end_s"] - s["end_s"]))
            scene_pacing = km.closeness(err, half_s)
        else:
            err, scene_pacing = float("nan"), 0.0
        loud_s = _window_loudness(ms, s["start_s"], s["end_s"])
        loud_o = _window_loudness(mo, al["start"] / fps_o, al["end"] / fps_o)
        local_audio = km.closeness(loud_o - loud_s, 4.0)
        scene_audio = _wmean({"global": audio_score, "local": local_audio}, {})
        overall = _wmean({"visual": visual, "audio": scene_audio, "pacing": scene_pacing}, OVERALL_WEIGHTS)
        raw = {
            **c_raw,
            **t_raw,
            **p_raw,
            **m_raw,
            "boundary_error_s": err,
            "loudness_sample": loud_s,
            "loudness_output": loud_o,
        }
        scenes.append(
            {
                "index": s["index"],
                "overall": overall,
                "visual": visual,
                "audio": scene_audio,
                "pacing": scene_pacing,
                "colour": colour,
                "texture": texture,
                "perceptual": perceptual,
                "motion": motion,
                "aligned": {"start_frame": al["start"], "end_frame": al["end"], "by": al["by"]},
                "camera_sample": (s.get("camera") or {}).get("motion"),
                "camera_output": (o or {}).get("camera", {}).get("motion"),
                "metrics": raw,
            }
        )
        suggestions += _scene_suggestions(s, o, al, colour, motion, raw, fps_o)

    suggestions += _global_suggestions(sample, output, audio_raw)
    fam = {}
    for key in ("visual", "colour", "texture", "perceptual", "motion"):
        vals = [sc[key] for sc in scenes if _finite(sc[key])]
        # Scenes weigh by their length: a long scene that is off matters more than a flash.
        w = [
            s["end_frame"] - s["start_frame"]
            for s, sc in zip(sample["scenes"], scenes, strict=True)
            if _finite(sc[key])
        ]
        fam[key] = float(np.average(vals, weights=w)) if vals else float("nan")
    overall = _wmean({"visual": fam["visual"], "audio": audio_score, "pacing": pacing}, OVERALL_WEIGHTS)

    metrics: dict[str, Any] = {**pacing_raw, **audio_raw}
    for key in (
        "palette_delta_e",
        "mean_delta_e",
        "lab_wasserstein",
        "chroma_bhattacharyya",
        "ssim",
        "ms_ssim",
        "lpips",
        "trajectory_rmse",
        "trajectory_correlation",
        "texture_log2_diff",
    ):
        vals = [sc["metrics"][key] for sc in scenes if _finite(sc["metrics"].get(key))]
        if vals:
            metrics[f"{key}_mean"] = float(np.mean(vals))
    if feature_sets is not None:
        fa, fb = feature_sets
        metrics["fid"] = km.frechet_distance(fa, fb)
        metrics["kid"] = km.kernel_inception_distance(fa, fb)
        metrics["fid_n_frames"] = int(min(len(fa), len(fb)))
    suggestions.sort(key=lambda x: -x.get("gain", 0.0))
    return _clean(
        {
            "schema": SCHEMA,
            "overall": overall,
            "visual": fam["visual"],
            "audio": audio_score,
            "pacing": pacing,
            "colour": fam["colour"],
            "texture": fam["texture"],
            "perceptual": fam["perceptual"],
            "motion": fam["motion"],
            "weights": {"overall": OVERALL_WEIGHTS, "visual": VISUAL_WEIGHTS},
            "scenes": scenes,
            "metrics": metrics,
            "missing": missing,
            "suggestions": suggestions,
        }
    )


def _scene_suggestions(
    s: dict, o: dict | None, al: dict, colour: float, motion: float, raw: dict, fps_o: float
) -> list[dict]:
    out = []
    idx = s["index"]
    if o is None:
        return out
    if _finite(colour) and colour < SUGGEST_BELOW["colour"]:
        sg, og = s.get("grade", {}), o.get("grade", {})
        delta = {
            k: round(sg[k] - og[k], 4)
            for k in GRADE_HALF
            if k in sg and k in og and abs(sg[k] - og[k]) > 0.02 * GRADE_HALF[k] / 0.08
        }
        de = raw.get("mean_delta_e", raw.get("palette_delta_e", float("nan")))
        if delta:
            words = []
            if "temperature" in delta:
                words.append("warmer" if delta["temperature"] > 0 else "cooler")
            if "exposure" in delta:
                words.append("brighter" if delta["exposure"] > 0 else "darker")
            if "saturation" in delta:
                words.append("more saturated" if delta["saturation"] > 0 else "less saturated")
            out.append(
                {
                    "scene": idx,
                    "operation": {"op": "adjust_grade", "scene": idx, "delta": delta},
                    "reason": f"scene {idx}: {', '.join(words) or 'regrade'} grade, {de:.1f} ΔE from the sample",
                    "gain": (100 - colour) * VISUAL_WEIGHTS["colour"],
                }
            )
        if _finite(raw.get("palette_delta_e")) and raw["palette_delta_e"] > 6:
            out.append(
                {
                    "scene": idx,
                    "operation": {"op": "set_palette", "scene": idx, "palette": s.get("palette", [])},
                    "reason": f"scene {idx}: palette {raw['palette_delta_e']:.1f} ΔE from the sample's",
                    "gain": (100 - colour) * VISUAL_WEIGHTS["colour"] * 0.5,
                }
            )
    if _finite(motion) and motion < SUGGEST_BELOW["motion"]:
        cam = s.get("camera") or {}
        out.append(
            {
                "scene": idx,
                "operation": {
                    "op": "set_camera",
                    "scene": idx,
                    "motion": cam.get("motion"),
                    "trajectory": cam.get("trajectory", []),
                },
                "reason": f"scene {idx}: camera reads as {o.get('camera', {}).get('motion')}, "
                f"the sample's is {cam.get('motion')} (path RMSE {raw.get('trajectory_rmse', 0):.2f})",
                "gain": (100 - motion) * VISUAL_WEIGHTS["motion"],
            }
        )
    want = s["end_s"] - s["start_s"]
    have = o["end_s"] - o["start_s"]
    n_frames = int(round(want * fps_o))
    delta_frames = n_frames - (o["end_frame"] - o["start_frame"])
    if abs(delta_frames) >= 1 and al["by"] != "time":
        verb = "lengthen" if delta_frames > 0 else "shorten"
        out.append(
            {
                "scene": idx,
                "operation": {
                    "op": "set_duration",
                    "scene": idx,
                    "n_frames": n_frames,
                    "delta_frames": delta_frames,
                },
                "reason": f"scene {idx}: {verb} by {abs(delta_frames)} frames to match the cut "
                f"({have:.2f} s, the sample's {want:.2f} s)",
                "gain": min(30.0, 3.0 * abs(delta_frames)),
            }
        )
    return out


def _global_suggestions(sample: dict, output: dict, audio_raw: dict) -> list[dict]:
    out = []
    sa, oa = sample.get("audio") or {}, output.get("audio") or {}
    if sa.get("tempo_bpm") and oa.get("tempo_bpm") and _tempo_error(sa["tempo_bpm"], oa["tempo_bpm"]) > 0.01:
        out.append(
            {
                "scene": None,
                "operation": {"op": "set_tempo", "bpm": sa["tempo_bpm"], "from_bpm": oa["tempo_bpm"]},
                "reason": f"music: tempo {oa['tempo_bpm']:.0f} → {sa['tempo_bpm']:.0f} bpm",
                "gain": 25.0 * OVERALL_WEIGHTS["audio"] * 4,
            }
        )
    if sa.get("lufs") is not None and oa.get("lufs") is not None and abs(sa["lufs"] - oa["lufs"]) > 1.5:
        out.append(
            {
                "scene": None,
                "operation": {"op": "set_loudness", "lufs": sa["lufs"], "from_lufs": oa["lufs"]},
                "reason": f"music: loudness {oa['lufs']:.1f} → {sa['lufs']:.1f} LUFS",
                "gain": 3.0 * abs(sa["lufs"] - oa["lufs"]),
            }
        )
    return out


# --------------------------------------------------------------------------------------------------
# the node entry point


def _figures(
    sample: dict, output: dict, alignment: list[dict], thumbs: dict, ms: dict | None, mo: dict | None
) -> dict:
    """What the report draws, small: thumbnails, palettes, motion curves, cuts, beats, loudness."""

    def curve(v: list, n: int = 240) -> list:
        if not v:
            return []
        step = max(1, len(v) // n)
        return [round(float(x), 2) for x in v[::step]]

    scenes = []
    for s, al in zip(sample["scenes"], alignment, strict=True):
        o = _output_scene_for(output, al["start"], al["end"])
        o_traj = _output_trajectory(output, al["start"], al["end"])
        scenes.append(
            {
                "index": s["index"],
                "thumbs": thumbs.get(s["index"], {"sample": [], "output": []}),
                "palette_sample": s.get("palette", []),
                "palette_output": (o or {}).get("palette", []),
                "motion_sample": np.round(
                    km.resample_curve(
                        km._pose_space((s.get("camera") or {}).get("trajectory") or [[0, 0, 1, 0]]), 32
                    )[:, :3],
                    4,
                ).tolist(),
                "motion_output": np.round(
                    km.resample_curve(km._pose_space(o_traj or [[0, 0, 1, 0]]), 32)[:, :3], 4
                ).tolist(),
            }
        )
    return {
        "duration_sample_s": sample["source"]["duration_s"],
        "duration_output_s": output["source"]["duration_s"],
        "cuts_sample_s": [sc["start_s"] for sc in sample["scenes"][1:]],
        "cuts_output_s": [sc["start_s"] for sc in output["scenes"][1:]],
        "beats_sample_s": [round(b, 3) for b in ((sample.get("audio") or {}).get("beats_s") or [])][:2000],
        "beats_output_s": [round(b, 3) for b in ((output.get("audio") or {}).get("beats_s") or [])][:2000],
        "loudness_sample": {
            "t": curve((ms or {}).get("loudness_t", [])),
            "lufs": curve((ms or {}).get("loudness", [])),
        },
        "loudness_output": {
            "t": curve((mo or {}).get("loudness_t", [])),
            "lufs": curve((mo or {}).get("loudness", [])),
        },
        "scenes": scenes,
    }


def _check_analysis_of(doc: dict, path: str) -> None:
    """Refuse an analysis that cannot be of the video at `path` (another file, or ranges missing)."""
    from lookalike.nodes import media
    from lookalike.nodes.analysis import SCHEMA as ANALYSIS_SCHEMA

    n = (doc.get("source") or {}).get("n_frames")
    if doc.get("schema") != ANALYSIS_SCHEMA or not isinstance(n, int):
        raise InputError(
            f"the output analysis is not an {ANALYSIS_SCHEMA} document",
            hint="pass the document nodes.analysis.analyze or merge_ranges made of the output",
        )
    have = media.probe(path).n_frames
    if n != have:
        raise InputError(
            f"the output analysis covers {n} frames, but {Path(path).name} has {have}",
            hint="analyze the output that is being scored (every frame range of it) again",
        )


def score(
    sample_path: str,
    output_path: str,
    sample_analysis: dict | None,
    plan: dict | None,
    *,
    output_analysis: dict | None = None,
    config: ScoreConfig | None = None,
    lpips_weights: str | None = None,
    fid_weights: str | None = None,
    sources: dict[int, tuple[str, int]] | None = None,
) -> dict:
    """similarity.json for `output_path` against `sample_path` (with figures for the report).

    `sources`: for a footage remake, {scene index: (local path of the user's item, frame)}: that
    frame becomes the scene's "source" thumbnail beside the sample's and the output's.

    Analyzes the output unless `output_analysis` is given (a farm merges it from frame-range jobs
    with nodes.analysis.merge_ranges, which gives the same document as `analyze`), and the sample
    unless its analysis is given; reads keyframes of every aligned scene pair and both audio tracks,
    and compares. LPIPS and FID/KID run when torch and their weights (config or the `*_weights`
    paths) are present; otherwise they are listed under "missing".
    """
    from lookalike.nodes import score_nets
    from lookalike.nodes.analysis import analyze

    cfg = config or ScoreConfig()
    if lpips_weights or fid_weights:
        cfg = ScoreConfig(
            **{
                **cfg.__dict__,
                "lpips_weights": lpips_weights or cfg.lpips_weights,
                "fid_weights": fid_weights or cfg.fid_weights,
            }
        )
    sample = sample_analysis or analyze(sample_path)
    output = output_analysis or analyze(output_path, transcribe=False)  # no score compares words
    if output_analysis:
        _check_analysis_of(output_analysis, output_path)
    alignment = align_scenes(sample, output, plan)

    size = _keyframe_size(sample_path, cfg.keyframe_long_side)
    want_s = {
        al["index"]: _keyframe_indices(s["start_frame"], s["end_frame"], cfg.keyframes_per_scene)
        for s, al in zip(sample["scenes"], alignment, strict=True)
    }
    want_o = {
        al["index"]: _keyframe_indices(al["start"], al["end"], cfg.keyframes_per_scene) for al in alignment
    }
    # The Score job's own media reads (keyframe runs of both files, both audio tracks) run at once:
    # seeking and decoding keyframe runs is most of its time (measured on the 30 s 720p sample with
    # the output's analysis given: 9.5 s of 12.6 s), and decoding leaves the GIL.
    with ThreadPoolExecutor(max_workers=max(1, cfg.read_workers), thread_name_prefix="score-read") as pool:
        audio_s, audio_o = pool.submit(audio_measures, sample_path), pool.submit(audio_measures, output_path)
        reads_s = pool.submit(read_keyframes, sample_path, [i for v in want_s.values() for i in v], size)
        frames_o = read_keyframes(output_path, [i for v in want_o.values() for i in v], size, pool=pool)
        frames_s = reads_s.result()
        ms, mo = audio_s.result(), audio_o.result()
    kf_s, kf_o, thumbs = {}, {}, {}
    for k in want_s:
        a = [frames_s[i] for i in want_s[k]]
        b = [frames_o[i] for i in want_o[k]]
        n = min(len(a), len(b))
        # Pair by relative position: keep the same number on both sides.
        pick_a = [a[round(j * (len(a) - 1) / max(1, n - 1))] for j in range(n)] if n else []
        pick_b = [b[round(j * (len(b) - 1) / max(1, n - 1))] for j in range(n)] if n else []
        kf_s[k], kf_o[k] = pick_a, pick_b
        if cfg.thumbnails and n:
            mid = n // 2
            thumbs[k] = {
                "sample": [_png_data_uri(_thumb(pick_a[mid]))],
                "output": [_png_data_uri(_thumb(pick_b[mid]))],
            }
    for k, (path, frame) in (sources or {}).items() if cfg.thumbnails else ():
        from lookalike.nodes import media

        got = next(media.iter_frames(path, frame, frame + 1), None)
        if got is not None and k in thumbs:
            thumbs[k]["source"] = [_png_data_uri(_thumb(got[2]))]

    missing: list[str] = []
    lpips, why = score_nets.load_lpips(cfg.lpips_weights, cfg.lpips_backbone)
    if lpips is None:
        missing.append(why)
    feature_sets = None
    net, why = score_nets.load_feature_net(cfg.fid_weights)
    if net is None:
        missing.append(why)
    else:
        all_s = np.stack([f for v in kf_s.values() for f in v])
        all_o = np.stack([f for v in kf_o.values() for f in v])
        feature_sets = (net.features(all_s), net.features(all_o))
    doc = compare(
        sample,
        output,
        plan=plan,
        keyframes=(kf_s, kf_o),
        audio=(ms, mo),
        lpips=lpips,
        feature_sets=feature_sets,
        missing=missing,
        alignment=alignment,
    )
    doc["figures"] = _clean(_figures(sample, output, alignment, thumbs, ms, mo))
    return doc
