"""How alike an output is to its sample: visual (palette, grade, camera), audio (tempo, loudness) and
pacing (cuts), each 0-100, per scene and overall, in the similarity.json format.

The output is analyzed the same way as the sample; what a remake keeps is compared, not pixels.
"""

from __future__ import annotations

import math

import numpy as np

from lookalike.kernels.metrics import cut_f1, palette_distance

SCHEMA = "lookalike.similarity/1"


def _closeness(diff: float, scale: float) -> float:
    """100 when diff is 0, falling smoothly: 50 at diff == scale."""
    if diff is None or not math.isfinite(diff):
        return float("nan")
    return 100.0 * 2.0 ** (-abs(diff) / scale)


def _lab(palette: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    from lookalike.kernels.grade import rgb_to_lab

    if not palette:
        return np.zeros((0, 3)), np.zeros(0)
    rgb = np.array([p["rgb"] for p in palette], dtype=np.float32).reshape(1, -1, 3) / 255.0
    lab = np.asarray(rgb_to_lab(rgb), dtype=float).reshape(-1, 3)
    return lab, np.array([p.get("weight", 1.0) for p in palette], dtype=float)


def _scene_at(scenes: list[dict], start: int, end: int) -> dict | None:
    """The output scene that overlaps [start, end) the most."""
    best, overlap = None, 0
    for s in scenes:
        o = min(end, s["end_frame"]) - max(start, s["start_frame"])
        if o > overlap:
            best, overlap = s, o
    return best


def _mean(values) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def compare(sample: dict, output: dict) -> dict:
    """similarity.json from two analysis documents."""
    s_cuts = [s["start_frame"] for s in sample["scenes"][1:]]
    o_cuts = [s["start_frame"] for s in output["scenes"][1:]]
    precision, recall, f1 = cut_f1(s_cuts, o_cuts, tolerance=1)
    frame_ratio = output["source"]["n_frames"] / max(1, sample["source"]["n_frames"])
    pacing = 100.0 * f1 * min(frame_ratio, 1 / frame_ratio)

    scenes, suggestions, deltas = [], [], []
    for s in sample["scenes"]:
        o = _scene_at(output["scenes"], s["start_frame"], s["end_frame"])
        if o is None:
            scenes.append({"index": s["index"], "visual": 0.0, "audio": float("nan"), "pacing": 0.0})
            continue
        de = palette_distance(*_lab(s.get("palette", [])), *_lab(o.get("palette", [])))
        deltas.append(de)
        sg, og = s.get("grade", {}), o.get("grade", {})
        grade_parts = [
            _closeness(og.get("exposure", 0) - sg.get("exposure", 0), 0.5),
            _closeness(og.get("temperature", 0) - sg.get("temperature", 0), 0.1),
            _closeness(math.log(max(og.get("saturation", 1), 1e-3) / max(sg.get("saturation", 1), 1e-3)), 0.3),
        ]
        motion_same = s.get("camera", {}).get("motion") == o.get("camera", {}).get("motion")
        visual = 0.5 * _closeness(de, 12.0) + 0.3 * _mean(grade_parts) + 0.2 * (100.0 if motion_same else 40.0)
        boundary = 100.0 if (abs(o["start_frame"] - s["start_frame"]) <= 1 and abs(o["end_frame"] - s["end_frame"]) <= 1) else 50.0
        scenes.append({"index": s["index"], "visual": visual, "audio": float("nan"), "pacing": boundary,
                       "palette_delta_e": de})
        if de > 12:
            suggestions.append({"scene": s["index"], "operation": {"op": "set_grade", "palette": s.get("palette", [])},
                                "reason": f"palette ΔE2000 {de:.1f} from the sample scene"})
        if not motion_same:
            suggestions.append({"scene": s["index"], "operation": {"op": "set_camera", "motion": s.get("camera", {}).get("motion")},
                                "reason": f"camera reads as {o.get('camera', {}).get('motion')}, sample is {s.get('camera', {}).get('motion')}"})

    sa, oa = sample.get("audio") or {}, output.get("audio") or {}
    audio_parts, metrics, missing = [], {}, []
    if sa.get("tempo_bpm") and oa.get("tempo_bpm"):
        ratio = oa["tempo_bpm"] / sa["tempo_bpm"]
        # Half or double time is the same pulse read at another level (estimators disagree on it):
        # a small penalty, not the cost of an unrelated tempo.
        octaves = abs(math.log2(ratio))
        err = min(octaves, abs(octaves - 1) + 0.02)
        audio_parts.append(_closeness(err, 0.05))
        metrics["tempo_sample_bpm"], metrics["tempo_output_bpm"] = sa["tempo_bpm"], oa["tempo_bpm"]
    else:
        missing.append("tempo")
    if sa.get("lufs") is not None and oa.get("lufs") is not None:
        audio_parts.append(_closeness(oa["lufs"] - sa["lufs"], 3.0))
        metrics["lufs_sample"], metrics["lufs_output"] = sa["lufs"], oa["lufs"]
    else:
        missing.append("loudness")
    audio = _mean(audio_parts)
    for sc in scenes:
        sc["audio"] = audio
    visual = _mean(sc["visual"] for sc in scenes)
    parts = [v for v in (visual, audio, pacing) if math.isfinite(v)]
    overall = float(np.average(parts, weights=[0.45, 0.25, 0.3][: len(parts)])) if parts else float("nan")
    metrics.update({
        "cut_precision": precision, "cut_recall": recall, "cut_f1": f1,
        "palette_delta_e_mean": _mean(deltas), "frame_count_ratio": frame_ratio,
    })
    missing += ["lpips (no weights configured)", "fid (no weights configured)"]

    def clean(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return {
        "schema": SCHEMA,
        "overall": clean(overall), "visual": clean(visual), "audio": clean(audio), "pacing": clean(pacing),
        "scenes": [{k: clean(v) for k, v in sc.items()} for sc in scenes],
        "metrics": {k: clean(v) for k, v in metrics.items()},
        "missing": missing,
        "suggestions": suggestions,
    }


def score(sample_path: str, output_path: str, sample_analysis: dict | None, plan: dict | None) -> dict:
    """Analyze the output (and the sample unless its analysis is given) and compare them."""
    from lookalike.nodes.analysis import analyze

    sample = sample_analysis or analyze(sample_path)
    output = analyze(output_path)
    return compare(sample, output)
