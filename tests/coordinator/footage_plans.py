"""A small footage plan (docs/footage.md) for the plan-side tests: no media files, only the documents."""

from __future__ import annotations

import copy

from lookalike.coordinator import planner
from test_plan_ops import _analysis

MEDIA = [
    {
        "name": "clips/beach.mp4",
        "media_id": "3f2a00000000000000000001",
        "key": "uploads/p/3f2a00000000000000000001",
        "kind": "video",
        "width": 1280,
        "height": 720,
        "fps": 30.0,
        "n_frames": 270,
        "duration_s": 9.0,
        "has_audio": True,
        "excluded": False,
    },
    {
        "name": "IMG_0042.jpg",
        "media_id": "9b1c00000000000000000002",
        "key": "uploads/p/9b1c00000000000000000002",
        "kind": "photo",
        "width": 4000,
        "height": 3000,
        "fps": 1.0,
        "n_frames": 1,
        "duration_s": 0.0,
        "has_audio": False,
        "excluded": False,
    },
    {
        "name": "pets/cat photo.png",
        "media_id": "c4e700000000000000000003",
        "key": "uploads/p/c4e700000000000000000003",
        "kind": "photo",
        "width": 1080,
        "height": 1080,
        "fps": 1.0,
        "n_frames": 1,
        "duration_s": 0.0,
        "has_audio": False,
        "excluded": False,
    },
]


def _clip(item: dict, shot: int, a: int, b: int, cost: float) -> dict:
    return {"media": item["name"], "media_id": item["media_id"], "shot": shot, "in_frame": a, "out_frame": b, "cost": cost}


def _source(item: dict, a: int, b: int, cost: float, why: str, runner_ups: list[dict], reused: int = 0) -> dict:
    photo = item["kind"] == "photo"
    return {
        "kind": "media",
        "media": item["name"],
        "media_id": item["media_id"],
        "key": item["key"],
        "photo": photo,
        "shot": 0,
        "in_frame": a,
        "out_frame": b,
        "fps": item["fps"],
        "speed": 0.8 if not photo else 1.0,
        "extend": "hold" if photo else "none",
        "mirror": not photo,
        "move": "synth" if photo else "none",
        "focus": [0.5, 0.45],
        "cost": {"total": cost, "motion": 0.1, "scale": 0.0, "people": 0.0, "lighting": 0.05,
                 "palette": 0.12, "duration": 0.0, "reuse": 0.0, "neighbour": 0.0},
        "why": why,
        "runner_ups": runner_ups,
        "reused": reused,
    }


def footage_plan() -> dict:
    """Three scenes of 100 frames at 24 fps with distinct grades. Scene 1 shows beach.mp4 frames
    120-220 (runner-ups: IMG_0042.jpg, then the cat photo); scene 2 the IMG_0042.jpg photo
    (runner-ups: beach.mp4 frames 0-90, then the cat photo); scene 3 IMG_0042.jpg too, with the
    cat photo as its only runner-up."""
    plan = planner.make_plan(_analysis([100, 200], 300), seed=2)
    beach, img, cat = (copy.deepcopy(m) for m in MEDIA)
    plan["media"] = [beach, img, cat]
    s0, s1, s2 = plan["scenes"]
    s0["source"] = _source(
        beach, 120, 220, 0.41, "camera pan_right like the sample's; wide like the sample's",
        [_clip(img, 0, 0, 1, 0.55), _clip(cat, 0, 0, 1, 0.7)],
    )
    s1["source"] = _source(
        img, 0, 1, 0.3, "a still for a static scene", [_clip(beach, 2, 0, 90, 0.5), _clip(cat, 0, 0, 1, 0.62)]
    )
    s2["source"] = _source(img, 0, 1, 0.35, "close like the sample's", [_clip(cat, 0, 0, 1, 0.6)], reused=1)
    return plan
