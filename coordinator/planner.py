"""From an analysis to a plan: one entry per sample scene, in the plan.json format.

Plain dictionaries in and out (the documents of DESIGN.md); no media work happens here.
"""

from __future__ import annotations

import copy
import hashlib

PLAN_SCHEMA = "lookalike.plan/1"


def scene_seed(project_seed: int, index: int) -> int:
    """A seed per scene that does not depend on which node or attempt renders it."""
    digest = hashlib.sha256(f"{project_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def _prompt(scene: dict) -> str:
    motion = scene.get("camera", {}).get("motion", "static").replace("_", " ")
    palette = scene.get("palette") or []
    colours = ", ".join("#{:02x}{:02x}{:02x}".format(*p["rgb"]) for p in palette[:3])
    return f"the subject, {motion} camera, palette {colours}".strip()


def clean_trajectory(traj: list, *, max_step: float = 0.02, spread: float = 6.0) -> list:
    """The measured camera path without its glitches: a frame-to-frame jump far outside the shot's own
    motion (a fade, a flash, a frame the estimator lost) is replaced by the shot's typical step.

    A remake follows the path literally, so a glitch would become a visible jump (and a false cut)."""
    import numpy as np

    t = np.asarray(traj, dtype=float).reshape(-1, 4)
    if len(t) < 3:
        return [[float(v) for v in r] for r in t]
    work = t.copy()
    work[:, 2] = np.log(np.clip(work[:, 2], 1e-3, None))  # zoom as log scale: steps add up
    steps = np.diff(work, axis=0)
    med = np.median(steps, axis=0)
    dev = np.abs(steps - med)
    mad = np.median(dev, axis=0) + 1e-6
    limits = np.array([max_step, max_step, max_step, 2.0])  # x, y (frame fractions), log zoom, degrees
    bad = np.any((dev > spread * mad) & (dev > limits), axis=1)
    if not bad.any():
        return [[float(v) for v in r] for r in t]
    steps[bad] = med
    work = np.vstack([work[:1], work[:1] + np.cumsum(steps, axis=0)])
    work[:, 2] = np.exp(work[:, 2])
    return [[round(float(v), 6) for v in r] for r in work]


def _camera(scene: dict, n: int) -> dict:
    cam = copy.deepcopy(scene.get("camera") or {"motion": "static"})
    cam["trajectory"] = clean_trajectory(cam.get("trajectory") or [[0.0, 0.0, 1.0, 0.0]] * n)
    return cam


def make_plan(analysis: dict, *, seed: int = 0, provider: str = "local") -> dict:
    """The first plan of a project: every scene keeps the sample's duration, cut, camera and colour."""
    source = analysis["source"]
    scenes = []
    for s in analysis["scenes"]:
        n = s["end_frame"] - s["start_frame"]
        scenes.append(
            {
                "index": s["index"],
                # A stable identity that follows the scene through swaps, inserts and deletes
                # (plan_ops.diff and affected_scenes match scenes by it).
                "id": f"s{s['index']}",
                "source_index": s["index"],
                "start_frame": s["start_frame"],
                "end_frame": s["end_frame"],
                "n_frames": n,
                "start_s": s.get("start_s"),
                "end_s": s.get("end_s"),
                "transition_in": copy.deepcopy(s.get("transition_in", {"kind": "cut"})),
                "camera": _camera(s, n),
                "palette": copy.deepcopy(s.get("palette", [])),
                "grade": copy.deepcopy(s.get("grade", {})),
                "prompt": _prompt(s),
                "provider": provider,
                "model": "compositor-1",
                "seed": scene_seed(seed, s["index"]),
                "effects": [],
                "audio": {"music_section": s["index"], "voice_lines": [], "sfx": []},
            }
        )
    audio = analysis.get("audio") or {}
    return {
        "schema": PLAN_SCHEMA,
        "version": 1,
        "format": {
            "width": source["width"],
            "height": source["height"],
            "fps_num": source.get("fps_num"),
            "fps_den": source.get("fps_den"),
            "fps": source["fps"],
            "n_frames": source["n_frames"],
            "duration_s": source["duration_s"],
        },
        "music": {"tempo_bpm": audio.get("tempo_bpm"), "key": audio.get("key"), "lufs": audio.get("lufs")},
        "scenes": scenes,
        "next_scene_id": len(scenes),
    }


def range_jobs(plan: dict, chunk_frames: int, max_attempts: int) -> list[dict]:
    """Frame-range jobs, scene-aligned: no range crosses a scene boundary."""
    jobs = []
    for s in plan["scenes"]:
        start = s["start_frame"]
        while start < s["end_frame"]:
            end = min(start + chunk_frames, s["end_frame"])
            # Avoid a tiny tail range: fold it into the previous chunk's neighbour.
            if 0 < s["end_frame"] - end < chunk_frames // 4:
                end = s["end_frame"]
            jobs.append(
                {
                    "kind": "render_range",
                    "scene_index": s["index"],
                    "start_frame": start,
                    "end_frame": end,
                    "spec": {},
                    "max_attempts": max_attempts,
                }
            )
            start = end
    return jobs


def analysis_ranges(n_frames: int, n_parts: int, min_frames: int = 120) -> list[tuple[int, int]]:
    """Split [0, n_frames) into at most n_parts ranges of at least min_frames each."""
    parts = max(1, min(n_parts, n_frames // max(1, min_frames)))
    bounds = [round(i * n_frames / parts) for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i + 1] > bounds[i]]
