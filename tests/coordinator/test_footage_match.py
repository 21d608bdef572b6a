"""The footage matcher (coordinator/footage.py) on synthesized analyses with known truth.

Every document here is built in the test: a sample whose scenes differ in camera move, scale,
people, lighting and palette, and media items made to fit one scene each (with small measurement
noise) among distractors that each get one thing wrong. The analyses follow docs/footage.md and
the analysis.json schema of nodes/analysis.py.
"""

from __future__ import annotations

import copy
import json
import math
import random

import numpy as np
import pytest
from lookalike.coordinator import footage

from lookalike.errors import InputError

FPS = 24.0

# Lab palettes (three colours, heaviest first) with the lighting they go with.
LOOKS = {
    "warm": {
        "palette": [([55, 30, 45], 0.5), ([30, 10, -35], 0.3), ([80, 5, 20], 0.2)],
        "luma": 0.5,
        "key": "normal",
    },
    "green": {
        "palette": [([50, -40, 30], 0.6), ([70, -20, 50], 0.25), ([25, -10, 10], 0.15)],
        "luma": 0.45,
        "key": "normal",
    },
    "cool": {
        "palette": [([85, -5, -15], 0.6), ([70, -10, -25], 0.3), ([95, 0, -5], 0.1)],
        "luma": 0.8,
        "key": "high_key",
    },
    "red": {
        "palette": [([45, 60, 40], 0.5), ([20, 20, 10], 0.3), ([75, 20, 15], 0.2)],
        "luma": 0.4,
        "key": "normal",
    },
    "purple": {
        "palette": [([15, 30, -35], 0.6), ([30, 40, -40], 0.25), ([8, 5, -5], 0.15)],
        "luma": 0.15,
        "key": "low_key",
    },
    "yellow": {
        "palette": [([85, -5, 75], 0.5), ([70, 10, 60], 0.3), ([95, 0, 20], 0.2)],
        "luma": 0.78,
        "key": "high_key",
    },
    "teal": {
        "palette": [([55, -35, -10], 0.5), ([35, -25, -15], 0.3), ([80, -15, 0], 0.2)],
        "luma": 0.5,
        "key": "normal",
    },
    "night": {
        "palette": [([12, 10, -30], 0.6), ([25, 5, -40], 0.3), ([5, 0, 0], 0.1)],
        "luma": 0.12,
        "key": "low_key",
    },
    "brown": {
        "palette": [([40, 15, 30], 0.5), ([25, 10, 20], 0.3), ([65, 10, 35], 0.2)],
        "luma": 0.35,
        "key": "normal",
    },
    "pink": {
        "palette": [([80, 35, 5], 0.5), ([90, 15, 5], 0.3), ([65, 50, 0], 0.2)],
        "luma": 0.75,
        "key": "high_key",
    },
    "orange": {
        "palette": [([65, 35, 65], 0.5), ([45, 25, 45], 0.3), ([85, 10, 30], 0.2)],
        "luma": 0.55,
        "key": "normal",
    },
    "grey": {
        "palette": [([50, 0, 1], 0.5), ([25, 1, 0], 0.3), ([80, 0, -1], 0.2)],
        "luma": 0.5,
        "key": "normal",
    },
}

# (camera move, speed, people, scale, look, frames): one sample scene each, no two alike.
SCENES = [
    ("pan_right", 0.15, 0, None, "warm", 48),
    ("pan_left", 0.12, 2, "medium", "green", 60),
    ("tilt_up", 0.10, 0, None, "cool", 40),
    ("tilt_down", 0.12, 1, "close", "red", 50),
    ("zoom_in", 0.10, 1, "medium", "purple", 45),
    ("zoom_out", 0.12, 8, "wide", "yellow", 55),
    ("static", 0.0, 1, "close", "teal", 36),
    ("static", 0.0, 0, None, "night", 42),
    ("handheld", 0.08, 3, "medium", "brown", 50),
    ("pan_right", 0.40, 0, None, "night", 30),
    ("static", 0.0, 2, "medium", "pink", 44),
    ("zoom_in", 0.04, 1, "close", "orange", 64),
]


def trajectory(motion: str, speed: float, n: int, fps: float = FPS, phase: float = 0.0) -> list[list[float]]:
    """Cumulative poses [x, y, zoom, roll] of a camera doing `motion` at `speed` (the analysis units)."""
    t = np.arange(n) / fps
    x, y, z = np.zeros(n), np.zeros(n), np.ones(n)
    sign = -1.0 if motion.endswith(("_left", "_up", "_out")) else 1.0
    if motion.startswith("pan"):
        x = sign * speed * t
    elif motion.startswith("tilt"):
        y = sign * speed * t
    elif motion.startswith("zoom"):
        z = np.exp(sign * speed * t)
    elif motion == "handheld":
        x = 0.02 * np.sin(7.0 * t + phase)
        y = 0.015 * np.sin(5.0 * t + 1.0 + phase)
    return [
        [round(float(a), 6), round(float(b), 6), round(float(c), 6), 0.0]
        for a, b, c in zip(x, y, z, strict=True)
    ]


def people_boxes(count: int, scale: str | None) -> tuple[list, list]:
    """(faces, people) for `count` people at a shot scale (face heights as shot_scale reads them)."""
    if count == 0:
        return [], []
    face_h = {"close": 0.4, "medium": 0.15, "wide": 0.04}[scale or "wide"]
    body_h = {"close": 0.95, "medium": 0.8, "wide": 0.3}[scale or "wide"]
    faces = [{"box": [0.1 + 0.8 * i / count, 0.2, face_h * 0.75, face_h]} for i in range(count)]
    if scale == "wide":
        faces = []  # too small for the detector
    people = [
        {"box": [0.1 + 0.8 * i / count, 0.1, body_h * 0.4, body_h], "share": round(body_h * body_h * 0.4, 4)}
        for i in range(count)
    ]
    return faces, people


def make_scene(
    index, start, n, motion, speed, count, scale, look, *, rng=None, text=(), fps=FPS, lab_shift=None
):
    """One analysis scene; `rng` adds measurement noise (palette, luma, speed) as a real analysis would."""
    noise = (lambda s: rng.uniform(-s, s)) if rng else (lambda s: 0.0)
    spec = LOOKS[look]
    palette = []
    for lab, w in spec["palette"]:
        lab = [lab[0] + noise(3), lab[1] + noise(3), lab[2] + noise(3)]
        if lab_shift is not None:
            lab = [a + b for a, b in zip(lab, lab_shift, strict=True)]
        palette.append({"rgb": [128, 128, 128], "lab": [round(v, 2) for v in lab], "weight": w})
    labs = np.array([p["lab"] for p in palette])
    ws = np.array([p["weight"] for p in palette])
    mean = (labs * ws[:, None]).sum(axis=0)
    std = np.maximum(np.sqrt((ws[:, None] * (labs - mean) ** 2).sum(axis=0)), 1.0) + 4.0
    if look == "grey":
        std[1:] = 1.0  # a black-and-white picture: its chroma is noise
    speed = speed * (1 + noise(0.1))
    faces, people = people_boxes(count, scale)
    traj = trajectory(motion, speed, n, fps, phase=index)
    return {
        "index": index,
        "start_frame": start,
        "end_frame": start + n,
        "start_s": start / fps,
        "end_s": (start + n) / fps,
        "palette": palette,
        "grade": {
            "exposure": 0.0,
            "contrast": 1.0,
            "saturation": 1.0,
            "temperature": 0.1 if look in ("warm", "orange") else 0.0,
            "lut": {
                "kind": "lab_transfer",
                "size": 17,
                "lab_mean": [round(v, 3) for v in mean],
                "lab_std": [round(v, 3) for v in std],
            },
        },
        "lighting": {
            "key": spec["key"],
            "luma_mean": round(spec["luma"] + noise(0.03), 4),
            "dark_share": 0.1,
            "bright_share": 0.1,
        },
        "texture": {"sharpness": 0.2, "grain": 0.01},
        "camera": {"motion": motion, "speed": round(speed, 5), "shake": 0.0, "trajectory": traj},
        "faces": faces,
        "people": people,
        "people_count": count,
        "people_share": round(sum(p["share"] for p in people), 4),
        "text": [{"text": t, "box": [0.1, 0.8, 0.5, 0.1]} for t in text],
        "mood": {
            "valence": 0.5,
            "energy": 0.4,
            "words": ["mid-toned", "natural-coloured", "neutral", "steady", "even"],
        },
    }


def make_analysis(scenes: list[dict], fps: float = FPS, width: int = 1280, height: int = 720) -> dict:
    n = scenes[-1]["end_frame"] if scenes else 0
    return {
        "schema": "lookalike.analysis/1",
        "source": {"fps": fps, "width": width, "height": height, "n_frames": n, "duration_s": n / fps},
        "scenes": scenes,
    }


def make_sample(specs=SCENES) -> dict:
    scenes, start = [], 0
    for i, (motion, speed, count, scale, look, n) in enumerate(specs):
        scenes.append(make_scene(i, start, n, motion, speed, count, scale, look))
        start += n
    return make_analysis(scenes)


def make_item(
    name: str, shots: list[dict], *, fps: float = FPS, kind: str = "video", excluded: bool = False
) -> dict:
    """A media item whose analysis holds `shots` (renumbered, laid end to end from frame 0)."""
    start, laid, rate = 0, [], fps or 1.0  # a photo has no rate of its own
    for i, s in enumerate(shots):
        s = copy.deepcopy(s)
        n = s["end_frame"] - s["start_frame"]
        s.update(
            index=i, start_frame=start, end_frame=start + n, start_s=start / rate, end_s=(start + n) / rate
        )
        laid.append(s)
        start += n
    return {
        "name": name,
        "media_id": f"id-{name}",
        "key": f"uploads/{name}",
        "kind": kind,
        "fps": fps,
        "n_frames": start,
        "width": 1280,
        "height": 720,
        "has_audio": False,
        "excluded": excluded,
        "analysis": make_analysis(laid, rate),
    }


def shot(motion="static", speed=0.0, count=0, scale=None, look="warm", n=60, **kw) -> dict:
    return make_scene(0, 0, n, motion, speed, count, scale, look, **kw)


OTHER_AXIS = {
    "pan": "tilt_down",
    "tilt": "zoom_in",
    "zoom": "pan_right",
    "static": "pan_right",
    "handheld": "zoom_out",
}
OPPOSITE = {
    "pan_left": "tilt_up",
    "pan_right": "tilt_down",
    "tilt_up": "tilt_down",
    "tilt_down": "tilt_up",
    "zoom_in": "zoom_out",
    "zoom_out": "zoom_in",
    "static": "pan_left",
    "handheld": "tilt_up",
}
OTHER_KEY_LOOK = {"normal": "cool", "high_key": "night", "low_key": "yellow"}


def known_truth_media(rng: random.Random) -> tuple[list[dict], list[str]]:
    """The intended item for every sample scene, and distractors that each get one thing wrong."""
    media, intended = [], []
    for i, (motion, speed, count, scale, look, n) in enumerate(SCENES):
        length = int(n * rng.uniform(1.1, 2.0))
        good = make_item(f"scene{i}_good.mp4", [shot(motion, speed, count, scale, look, length, rng=rng)])
        intended.append(good["name"])
        media.append(good)
        axis = motion.split("_")[0]
        wrong_move = OPPOSITE[motion] if rng.random() < 0.5 else OTHER_AXIS[axis]
        wrong_people = (0, None) if count else (2, "medium")
        key = LOOKS[look]["key"]
        grey = "grey" if look != "grey" else "red"
        media += [
            make_item(
                f"scene{i}_move.mp4", [shot(wrong_move, max(speed, 0.1), count, scale, look, length, rng=rng)]
            ),
            make_item(f"scene{i}_people.mp4", [shot(motion, speed, *wrong_people, look, length, rng=rng)]),
            make_item(
                f"scene{i}_light.mp4",
                [shot(motion, speed, count, scale, OTHER_KEY_LOOK[key], length, rng=rng)],
            ),
            make_item(f"scene{i}_grey.mp4", [shot(motion, speed, count, scale, grey, length, rng=rng)]),
            make_item(
                f"scene{i}_short.mp4", [shot(motion, speed, count, scale, look, max(4, n // 4), rng=rng)]
            ),
        ]
    rng.shuffle(media)
    return media, intended


def check_source_doc(src: dict) -> None:
    """The fields docs/footage.md promises, with terms that add up."""
    assert src["kind"] in ("media", "generated")
    assert set(src["cost"]) == {"total", *footage.TERMS} or src["cost"] == {}
    if src["cost"]:
        assert sum(src["cost"][k] for k in footage.TERMS) == pytest.approx(src["cost"]["total"], abs=1e-9)
    assert len(src["runner_ups"]) <= 3
    costs = [r["cost"] for r in src["runner_ups"]]
    assert costs == sorted(costs)
    assert isinstance(src["why"], str) and src["why"]
    if src["kind"] == "media":
        for k in (
            "media",
            "media_id",
            "key",
            "photo",
            "shot",
            "in_frame",
            "out_frame",
            "fps",
            "speed",
            "extend",
            "mirror",
            "move",
            "focus",
            "reused",
        ):
            assert k in src, k
        assert src["extend"] in ("none", "hold", "pingpong")
        assert src["move"] in ("none", "synth")
        assert footage.MIN_SPEED <= src["speed"] <= 1.0
        assert src["in_frame"] < src["out_frame"]
        for r in src["runner_ups"]:
            assert (r["media_id"], r["shot"]) != (src["media_id"], src["shot"]) or r["in_frame"] != src[
                "in_frame"
            ]
            assert r["cost"] >= src["cost"]["total"] - src["cost"]["reuse"] - src["cost"]["neighbour"] - 1e-4


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_known_truth_each_scene_gets_its_intended_item(seed, capsys):
    """Twelve scenes, twelve intended items, sixty distractors each wrong in one way (move, people,
    lighting, colour, length): at least 90 % of the scenes get their intended item."""
    media, intended = known_truth_media(random.Random(seed))
    sample = make_sample()
    sources = footage.match(sample, media)
    assert len(sources) == len(SCENES)
    for src in sources:
        check_source_doc(src)
    hits = [src.get("media") == want for src, want in zip(sources, intended, strict=True)]
    accuracy = sum(hits) / len(hits)
    with capsys.disabled():
        print(
            f"\nknown truth, seed {seed}: {sum(hits)}/{len(hits)} scenes ({accuracy:.0%}) got their intended item"
        )
    misses = [
        (i, src.get("media"), src["why"])
        for i, (src, ok) in enumerate(zip(sources, hits, strict=True))
        if not ok
    ]
    assert accuracy >= 0.9, misses


def test_each_term_prefers_the_intended_item_over_its_distractor():
    """Pair costs alone: for every scene the intended item beats each of its one-wrong distractors."""
    media, _ = known_truth_media(random.Random(7))
    sample = make_sample()
    by_name = {c.media: c for c in footage.candidates(media)}
    for i, scene in enumerate(sample["scenes"]):
        good = footage.pair_cost(scene, by_name[f"scene{i}_good.mp4"], output_fps=FPS).total
        for what in ("move", "people", "light", "grey", "short"):
            bad = footage.pair_cost(scene, by_name[f"scene{i}_{what}.mp4"], output_fps=FPS).total
            assert bad > good + 0.1, (i, what, good, bad)


def test_reassembly_gives_every_scene_its_own_footage_back():
    """Items that are the sample's own scenes cut apart and shuffled: each scene gets itself back,
    from its first frame, at real time, unmirrored, with its own camera."""
    sample = make_sample()
    media = [make_item(f"part{i}.mp4", [s]) for i, s in enumerate(sample["scenes"])]
    random.Random(3).shuffle(media)
    sources = footage.match(sample, media)
    for i, (scene, src) in enumerate(zip(sample["scenes"], sources, strict=True)):
        check_source_doc(src)
        assert src["media"] == f"part{i}.mp4"
        assert (src["in_frame"], src["out_frame"]) == (0, scene["end_frame"] - scene["start_frame"])
        assert src["speed"] == 1.0 and src["extend"] == "none"
        assert src["mirror"] is False and src["move"] == "none"
        assert src["reused"] == 0
        assert src["cost"]["total"] == pytest.approx(0.0, abs=1e-6)


def test_a_single_item_is_reused_for_every_scene_from_different_in_points():
    sample = make_sample([("static", 0.0, 0, None, "warm", 40)] * 4)
    media = [make_item("only.mp4", [shot("static", 0.0, 0, None, "warm", 400)])]
    sources = footage.match(sample, media)
    assert [s["media"] for s in sources] == ["only.mp4"] * 4
    assert [s["reused"] for s in sources] == [0, 1, 2, 3]
    assert [s["cost"]["reuse"] for s in sources] == pytest.approx(
        [k * footage.REUSE_PENALTY for k in range(4)]
    )
    assert "also used for" in sources[3]["why"]
    windows = [(s["in_frame"], s["out_frame"]) for s in sources]
    assert len(set(windows)) == 4
    for (a0, b0), (a1, b1) in zip(windows, windows[1:], strict=False):
        assert min(b0, b1) <= max(a0, a1)  # no two windows overlap: a reused shot shows new frames


def test_excluded_items_are_never_chosen():
    media, intended = known_truth_media(random.Random(1))
    sample = make_sample()
    banned = {intended[0], intended[3]}
    flagged = intended[5]
    for m in media:
        if m["name"] == flagged:
            m["excluded"] = True
    by_id = f"id-{intended[7]}"
    sources = footage.match(sample, media, exclude=[*banned, by_id])
    used = {s.get("media") for s in sources} | {r["media"] for s in sources for r in s["runner_ups"]}
    assert not used & (banned | {flagged, intended[7]})


def test_pins_force_the_item_and_the_in_point():
    media, intended = known_truth_media(random.Random(2))
    sample = make_sample()
    sources = footage.match(
        sample, media, pins={3: {"media": "scene5_good.mp4"}, "4": {"media_id": "id-scene4_short.mp4"}}
    )
    assert sources[3]["media"] == "scene5_good.mp4"
    assert "pinned" in sources[3]["why"]
    assert sources[4]["media"] == "scene4_short.mp4"
    assert sources[4]["speed"] < 1.0
    long_item = make_item("long.mp4", [shot("static", 0.0, 0, None, "warm", 500)])
    got = footage.match(
        make_sample([("static", 0.0, 0, None, "warm", 40)]),
        [long_item],
        pins={0: {"media": "long.mp4", "in_frame": 123}},
    )
    assert (got[0]["in_frame"], got[0]["out_frame"]) == (123, 163)
    with pytest.raises(InputError, match="nope.mp4"):
        footage.match(sample, media, pins={0: {"media": "nope.mp4"}})
    with pytest.raises(InputError, match="excluded"):
        footage.match(sample, media, pins={0: {"media": "scene0_good.mp4"}}, exclude=["scene0_good.mp4"])


def test_a_scene_nothing_fits_is_generated_and_says_why():
    # Everything wrong at once: the move, the people, the lighting, the colour and the length.
    sample = make_sample([("pan_left", 0.3, 2, "close", "pink", 120), ("static", 0.0, 0, None, "night", 40)])
    bad = make_item("bad.mp4", [shot("tilt_up", 0.1, 0, None, "grey", 8, lab_shift=[-35, 0, 0])])
    ok = make_item("ok.mp4", [shot("static", 0.0, 0, None, "night", 40)])
    sources = footage.match(sample, [bad, ok])
    gen = sources[0]
    assert gen["kind"] == "generated"
    assert gen["why"].startswith("no media item fits: best was ")
    assert gen["runner_ups"] and gen["cost"]["total"] > footage.MATCH_THRESHOLD
    assert sources[1]["kind"] == "media" and sources[1]["media"] == "ok.mp4"
    # A lower threshold sends the fitting scene to generation too; none: never.
    assert footage.match(sample, [bad, ok], threshold=-1.0)[1]["kind"] == "generated"
    assert all(s["kind"] == "media" for s in footage.match(sample, [bad, ok], threshold=math.inf))
    assert footage.match(sample, [])[1] == {
        "kind": "generated",
        "why": "no media item fits: there are no usable media items",
        "runner_ups": [],
        "cost": {},
    }


def test_an_opposite_pan_is_mirrored_unless_text_is_in_frame():
    sample = make_sample([("pan_right", 0.15, 1, "medium", "warm", 48)])
    left = make_item("left.mp4", [shot("pan_left", 0.15, 1, "medium", "warm", 60)])
    src = footage.match(sample, [left])[0]
    assert src["mirror"] is True and src["move"] == "none"
    assert src["cost"]["motion"] == pytest.approx(footage.MIRROR_COST, abs=0.02)
    face_x = left["analysis"]["scenes"][0]["faces"][0]["box"]
    assert src["focus"][0] == pytest.approx(1 - (face_x[0] + face_x[2] / 2), abs=1e-3)
    assert "mirrored" in src["why"]
    texted = make_item("left_text.mp4", [shot("pan_left", 0.15, 1, "medium", "warm", 60, text=["SALE"])])
    assert footage.match(sample, [texted])[0]["mirror"] is False
    sample_text = make_sample([("pan_right", 0.15, 1, "medium", "warm", 48)])
    sample_text["scenes"][0]["text"] = [{"text": "TITLE", "box": [0.2, 0.1, 0.6, 0.1]}]
    src = footage.match(sample_text, [left])[0]
    assert src["mirror"] is False and src["cost"]["motion"] == pytest.approx(1.0)
    # Mirroring beats nothing: with a same-way pan available, that is chosen and not mirrored.
    right = make_item("right.mp4", [shot("pan_right", 0.15, 1, "medium", "warm", 60)])
    src = footage.match(sample, [left, right])[0]
    assert src["media"] == "right.mp4" and src["mirror"] is False


def test_a_photo_for_a_moving_scene_gets_the_move_synthesized():
    sample = make_sample([("zoom_in", 0.1, 1, "close", "red", 48), ("static", 0.0, 1, "close", "red", 30)])
    photo = make_item("me.jpg", [shot("static", 0.0, 1, "close", "red", 1)], kind="photo", fps=0)
    src = footage.match(sample, [photo])
    assert src[0]["photo"] is True and src[0]["move"] == "synth"
    assert (src[0]["in_frame"], src[0]["out_frame"]) == (0, 1)
    assert src[0]["cost"]["motion"] == pytest.approx(footage.SYNTH_COST + footage.PHOTO_COST)
    assert src[1]["move"] == "none" and src[1]["reused"] == 1
    # A static clip for a moving scene is synthesized too, and costs less than the photo.
    still = make_item("still.mp4", [shot("static", 0.0, 1, "close", "red", 100)])
    got = footage.match(sample, [still])[0]
    assert got["move"] == "synth" and got["cost"]["motion"] == pytest.approx(footage.SYNTH_COST)
    assert footage.match(sample, [photo, still])[0]["media"] == "still.mp4"


def test_a_move_too_slow_to_see_counts_as_a_still_camera():
    """A tripod time-lapse classified tilt_up at 0.008 frame/s is a static shot for a static scene, and
    gets the move synthesized for a moving one; the same label at a visible speed does not."""
    sample = make_sample([("static", 0.0, 1, "wide", "warm", 48)])
    slow = make_item("bud.mp4", [shot("tilt_up", footage.STILL_SPEED / 2, 1, "wide", "warm", 100)])
    fast = make_item("tilt.mp4", [shot("tilt_up", footage.STILL_SPEED * 4, 1, "wide", "warm", 100)])
    assert footage.match(sample, [slow])[0]["cost"]["motion"] == 0.0
    assert footage.match(sample, [fast])[0]["cost"]["motion"] == pytest.approx(0.8)
    moving = make_sample([("pan_right", 0.1, 1, "wide", "warm", 48)])
    assert footage.match(moving, [slow])[0]["move"] == "synth"


def test_a_short_candidate_is_slowed_then_extended():
    sample = make_sample([("static", 0.0, 0, None, "warm", 48)])
    # 36 frames for 48: slowed to 0.75x, nothing to fill.
    src = footage.match(sample, [make_item("a.mp4", [shot("static", 0.0, 0, None, "warm", 36)])])[0]
    assert src["speed"] == pytest.approx(0.75, abs=1e-3) and src["extend"] == "none"
    assert footage.frames_needed(48, FPS, FPS, src["speed"]) <= 36
    assert (src["in_frame"], src["out_frame"]) == (0, 36)
    assert 0 < src["cost"]["duration"] < footage.SLOW_COST + 1e-9
    # 12 frames for 48: slowed to MIN_SPEED, then filled.
    src = footage.match(sample, [make_item("b.mp4", [shot("static", 0.0, 0, None, "warm", 12)])])[0]
    assert src["speed"] == footage.MIN_SPEED and src["extend"] in ("hold", "pingpong")
    assert src["out_frame"] == 12
    # A moving shot is held rather than played back and forth (a reversed move shows).
    sample = make_sample([("pan_right", 0.2, 0, None, "warm", 48)])
    src = footage.match(sample, [make_item("c.mp4", [shot("pan_right", 0.2, 0, None, "warm", 12)])])[0]
    assert src["extend"] == "hold"
    # Longer is free, and a different item rate changes the frames needed.
    fast = make_item("d.mp4", [shot("static", 0.0, 0, None, "warm", 100)], fps=48.0)
    src = footage.match(make_sample([("static", 0.0, 0, None, "warm", 48)]), [fast])[0]
    assert (src["out_frame"] - src["in_frame"], src["speed"], src["cost"]["duration"]) == (96, 1.0, 0.0)
    src = footage.match(make_sample([("static", 0.0, 0, None, "warm", 48)]), [fast], output_fps=12.0)[0]
    assert src["out_frame"] - src["in_frame"] == footage.frames_needed(24, 48.0, 12.0, 1.0) == 96


def test_the_neighbour_penalty_avoids_one_item_twice_in_a_row():
    sample = make_sample([("static", 0.0, 0, None, "warm", 40)] * 2)
    # Two equally good shots in item A, one in B: without the penalty A could fill both scenes.
    a = make_item(
        "a.mp4", [shot("static", 0.0, 0, None, "warm", 40), shot("static", 0.0, 0, None, "warm", 40)]
    )
    b = make_item("b.mp4", [shot("static", 0.0, 0, None, "warm", 40)])
    for media in ([a, b], [b, a]):
        sources = footage.match(sample, media)
        assert {s["media"] for s in sources} == {"a.mp4", "b.mp4"}
        assert all(s["cost"]["neighbour"] == 0.0 for s in sources)
    # With only A, its two shots follow each other and the penalty is charged and said.
    sources = footage.match(sample, [a])
    assert [s["shot"] for s in sources] in ([0, 1], [1, 0])
    assert sources[1]["cost"]["neighbour"] == footage.NEIGHBOUR_PENALTY
    assert sources[1]["reused"] == 1 and sources[1]["cost"]["reuse"] == 0.0


def test_the_in_point_follows_the_scene_camera():
    """A shot that holds still for 100 frames and then pans right: a panning scene starts in the pan."""
    still = trajectory("static", 0.0, 100)
    pan = [[p[0] + still[-1][0], 0.0, 1.0, 0.0] for p in trajectory("pan_right", 0.2, 100)]
    item = make_item("half.mp4", [shot("pan_right", 0.1, 0, None, "warm", 200)])
    item["analysis"]["scenes"][0]["camera"]["trajectory"] = still + pan
    src = footage.match(make_sample([("pan_right", 0.2, 0, None, "warm", 48)]), [item])[0]
    assert src["in_frame"] >= 95 and src["mirror"] is False
    src = footage.match(make_sample([("static", 0.0, 0, None, "warm", 48)]), [item])[0]
    assert src["in_frame"] + 48 <= 105


def test_usable_ranges_and_item_fields_are_respected():
    s = shot("static", 0.0, 1, "close", "warm", 100)
    s["usable"] = [[10, 40], [60, 95]]
    s["salient"] = [0.3, 0.6]
    s["scale"] = "close"
    item = make_item("u.mp4", [s])
    cands = footage.candidates([item])
    assert [(c.start, c.end) for c in cands] == [(10, 40), (60, 95)]
    # 32 frames: only the second range lasts them at real time.
    src = footage.match(make_sample([("static", 0.0, 1, "close", "warm", 32)]), [item])[0]
    assert 60 <= src["in_frame"] and src["out_frame"] <= 95 and src["speed"] == 1.0
    assert src["focus"] == [0.3, 0.6]
    assert footage.shot_scale({"faces": [], "people": []}) is None
    assert footage.shot_focus({}) == [0.5, 0.5]


def test_output_is_deterministic_and_independent_of_item_order():
    media, _ = known_truth_media(random.Random(4))
    sample = make_sample()
    first = json.dumps(footage.match(sample, media), sort_keys=True)
    assert json.dumps(footage.match(sample, copy.deepcopy(media)), sort_keys=True) == first
    assert json.dumps(footage.match(sample, list(reversed(media))), sort_keys=True) == first


def test_describe_scene_says_it_in_words():
    scene = make_scene(0, 0, 48, "pan_right", 0.05, 2, "wide", "warm")
    text = footage.describe_scene(scene)
    assert text.startswith("a wide shot of two people")
    assert "warm" in text and "the camera pans right slowly" in text
    assert "tones" in text and "blue" in text and "orange" in text or "red" in text
    assert "#" not in text and "_" not in text and "[" not in text
    assert "holds still" in footage.describe_scene(make_scene(0, 0, 48, "static", 0.0, 0, None, "night"))
    close = footage.describe_scene(make_scene(0, 0, 48, "zoom_in", 0.3, 1, "close", "red"))
    assert close.startswith("a close-up of a person's face") and "zooms in quickly" in close
    scene["caption"] = "A dog runs along a beach at sunset."
    assert footage.describe_scene(scene).startswith(
        "A dog runs along a beach at sunset; the camera pans right"
    )
    assert footage.colour_name([30, 10, -40]) == "deep blue"
    assert footage.colour_name([65, 35, 65]) == "orange"
    assert footage.colour_name([50, 0, 0]) == "grey"


def test_the_reuse_penalty_spreads_scenes_over_items():
    """Scenes 0 and 2 alike: a second, slightly worse item (slowed a little) beats showing the best
    one twice, since the difference is under REUSE_PENALTY."""
    sample = make_sample(
        [
            ("static", 0.0, 0, None, "warm", 40),
            ("pan_right", 0.2, 0, None, "night", 40),
            ("static", 0.0, 0, None, "warm", 40),
        ]
    )
    best = make_item("best.mp4", [shot("static", 0.0, 0, None, "warm", 40)])
    near = make_item("near.mp4", [shot("static", 0.0, 0, None, "warm", 37)])
    pan = make_item("pan.mp4", [shot("pan_right", 0.2, 0, None, "night", 40)])
    slow = footage.pair_cost(sample["scenes"][2], footage.candidates([near])[0], output_fps=FPS).total
    assert 0 < slow < footage.REUSE_PENALTY
    sources = footage.match(sample, [best, near, pan])
    assert sources[1]["media"] == "pan.mp4"
    assert {sources[0]["media"], sources[2]["media"]} == {"best.mp4", "near.mp4"}
    assert all(s["reused"] == 0 and s["cost"]["reuse"] == 0.0 for s in sources)


def test_colour_is_judged_after_the_grade():
    """A colourful picture of another hue is what the Lab transfer fixes; a grey one (chroma noise
    only, like a black-and-white film) it can only tint, so that costs, also when the scene's
    colour lies in its cast rather than its spread."""
    scene = make_scene(0, 0, 48, "static", 0.0, 0, None, "teal")
    other_hue = shot(look="orange")
    grey = shot(look="grey")
    grey["grade"]["lut"]["lab_std"][1:] = [2.5, 2.5]
    costs = {}
    for name, s in (("same", shot(look="teal")), ("other_hue", other_hue), ("grey", grey)):
        cand = footage.candidates([make_item(f"{name}.mp4", [s])])[0]
        costs[name] = footage.pair_cost(scene, cand, output_fps=FPS).terms["palette"]
    assert costs["same"] < 0.05
    assert costs["other_hue"] < 0.3
    assert costs["grey"] > costs["other_hue"] + 0.25, costs


def test_a_clip_that_must_be_cropped_and_blown_up_loses_to_one_that_fits():
    """A 270x480 portrait clip for a 1280x720 scene loses two thirds of its picture and is enlarged
    4.7x: the same content at 1280x720 wins, and the cost says why."""
    sample = make_sample([("static", 0.0, 0, "wide", "warm", 48)])
    sample["source"].update(width=1280, height=720)
    narrow = dict(make_item("phone.mp4", [shot("static", 0.0, 0, "wide", "warm", 60)]), width=270, height=480)
    wide = dict(make_item("camera.mp4", [shot("static", 0.0, 0, "wide", "warm", 60)]), width=1280, height=720)
    src = footage.match(sample, [narrow, wide])[0]
    assert src["media"] == "camera.mp4" and src["cost"]["framing"] == 0.0
    alone = footage.match(sample, [narrow])[0]
    assert alone["cost"]["framing"] > 0.3 and "cropped by 68%" in alone["why"]
    # Without sizes (an older plan) the term is simply absent from the choice.
    assert footage.pair_cost(sample["scenes"][0], footage.candidates([make_item("x.mp4", [shot()])])[0],
                             output_fps=24.0).terms["framing"] == 0.0


def test_a_usable_stretch_moves_as_the_analysis_measured_it():
    """A shot that is static as a whole but pans in one usable stretch: that stretch is a pan."""
    s = shot("static", 0.0, 0, "wide", "warm", 100)
    s["usable"] = [[0, 40], [50, 100]]
    s["usable_camera"] = [{"motion": "static", "speed": 0.0}, {"motion": "pan_right", "speed": 0.2}]
    cands = footage.candidates([make_item("walk.mp4", [s])])
    assert [c.label for c in cands] == [("static", 0.0), ("pan_right", 0.2)]
    sample = make_sample([("pan_right", 0.2, 0, "wide", "warm", 40)])
    src = footage.match(sample, [make_item("walk.mp4", [s])])[0]
    assert src["in_frame"] >= 50 and src["move"] == "none"
