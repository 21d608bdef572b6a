"""The per-scene fields a user's footage is matched by (docs/footage.md, "Media items"): `usable`
(nodes.analysis: frame ranges with no black, frozen or badly blurred frame), `scale` and `salient`
(nodes.vision: from the key frame's faces and saliency). Synthesized clips with known defects, and
the real clips and photos of ../shared/media/footage."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from lookalike.nodes import analysis, vision

FOOTAGE = Path(__file__).resolve().parents[2] / ".." / "shared" / "media" / "footage"
W, H, FPS = 320, 180, 24

needs_footage = pytest.mark.skipif(not FOOTAGE.is_dir(), reason="shared footage not present")


def write_clip(path: Path, frames: list[np.ndarray]) -> Path:
    """H.264 (crf 18, no B-frames) at 24 fps, the frames' own size."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "18", "bf": "0"}
        for f in frames:
            c.mux(vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        c.mux(vs.encode(None))
    return path


def coffee_view(t: int) -> np.ndarray:
    """A W x H window on scikit-image's coffee photo, `t` pixels right of its start (a slow pan)."""
    from skimage import data

    return np.ascontiguousarray(data.coffee()[100 : 100 + H, 40 + t : 40 + t + W])


@pytest.fixture(scope="module")
def defects_clip(tmp_path_factory) -> Path:
    """100 frames of one panning shot (1 px a frame): black frames 0-3 (the shot comes up from
    black), frames 41-48 repeat frame 40 (the picture freezes, then the pan goes on where it
    stopped), frames 70-75 blurred (Gaussian, sigma 3 px). Usable: [4, 41), [49, 70), [76, 100)."""
    frames: list[np.ndarray] = []
    t = 0
    for i in range(100):
        if 41 <= i < 49:
            frames.append(frames[-1].copy())
            continue
        f = coffee_view(t)
        t += 1
        if i < 4:
            f = np.full_like(f, 3)
        if 70 <= i < 76:
            f = cv2.GaussianBlur(f, (0, 0), 3)
        frames.append(f)
    return write_clip(tmp_path_factory.mktemp("fields") / "defects.mp4", frames)


def close_ranges(found: list[list[int]], truth: list[list[int]], tol: int = 1) -> bool:
    return len(found) == len(truth) and all(
        abs(a - ta) <= tol and abs(b - tb) <= tol for (a, b), (ta, tb) in zip(found, truth, strict=True)
    )


def test_black_frozen_and_blurred_frames_are_not_usable(defects_clip):
    doc = analysis.analyze(str(defects_clip), transcribe=False)
    (scene,) = doc["scenes"]
    assert close_ranges(scene["usable"], [[4, 41], [49, 70], [76, 100]]), scene["usable"]
    # Each stretch's own camera move, measured on its part of the path: the shot pans throughout.
    assert len(scene["usable_camera"]) == len(scene["usable"])
    assert {c["motion"] for c in scene["usable_camera"]} == {scene["camera"]["motion"]}, scene["usable_camera"]
    assert all(c["speed"] > 0 for c in scene["usable_camera"])
    # Vision has not run: scale and salient are there, null.
    assert scene["scale"] is None and scene["salient"] is None
    json.dumps(doc, allow_nan=False)


def test_usable_is_the_same_whatever_the_range_split(defects_clip):
    """Ranges cut through the black lead-in, the freeze and the blur merge to the same document."""
    path = str(defects_clip)
    info = analysis._probe(path)
    size = analysis._analysis_size(info)
    audio = analysis._empty_audio(False)
    whole = analysis.merge_ranges(info, [analysis.analyze_range(path, 0, 100, size=size)], audio)
    bounds = [0, 2, 42, 45, 72, 100]
    parts = [analysis.analyze_range(path, a, b, size=size) for a, b in zip(bounds, bounds[1:], strict=False)]
    parts = [json.loads(json.dumps(p)) for p in reversed(parts)]
    assert analysis.merge_ranges(info, parts, audio) == whole


@pytest.mark.parametrize("grain", [1.0, 3.0], ids=["fine-grain", "coarse-grain"])
def test_a_still_tripod_shot_with_grain_is_not_frozen(tmp_path, grain):
    """48 frames of one still picture with fresh sensor-like noise (sigma `grain` levels) in each.
    Frames differ by grain alone, and the encoder codes less and less of it (with fine grain most
    change scores are under FROZEN_SCORE, as a repeated frame's are), but nothing moves to stall.
    All usable."""
    rng = np.random.default_rng(3)
    still = coffee_view(0).astype(np.float64)
    frames = [np.clip(still + rng.normal(0, grain, still.shape), 0, 255).astype(np.uint8) for _ in range(48)]
    doc = analysis.analyze(str(write_clip(tmp_path / "tripod.mp4", frames)), transcribe=False)
    assert [s["usable"] for s in doc["scenes"]] == [[[0, 48]]]


def test_a_photo_is_one_usable_frame_unless_black(tmp_path):
    picture = tmp_path / "picture.png"
    black = tmp_path / "black.png"
    cv2.imwrite(str(picture), cv2.cvtColor(coffee_view(0), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(black), np.full((H, W, 3), 2, np.uint8))
    assert analysis.analyze(str(picture), transcribe=False)["scenes"][0]["usable"] == [[0, 1]]
    assert analysis.analyze(str(black), transcribe=False)["scenes"][0]["usable"] == []


def test_short_stretches_between_bad_frames_are_dropped():
    """Frames as merge_ranges sees them: a 3-frame stretch between black frames is too short to
    use; a 3-frame shot with nothing wrong is kept whole."""

    def frame(luma: float, sharp: float = 0.1, score: float | None = 5.0) -> dict:
        return {"luma_mean": luma, "sharpness": sharp, "score": score}

    frames = [frame(0.4)] * 10 + [frame(0.01)] * 2 + [frame(0.4)] * 3 + [frame(0.01)] * 2 + [frame(0.4)] * 8
    assert analysis.usable_ranges(frames, 100) == [[100, 110], [117, 125]]
    assert analysis.usable_ranges([frame(0.4)] * 3, 7) == [[7, 10]]


# --- scale and salient (nodes.vision) -------------------------------------------------------------


def one_scene_doc(path: Path, start: int, end: int) -> dict:
    """A document with the one scene [start, end) (key frame: its middle), sized as the item displays."""
    info = analysis._probe(str(path))
    return {
        "source": {"width": int(info.width), "height": int(info.height)},
        "scenes": [{"index": 0, "start_frame": start, "end_frame": end}],
    }


@needs_footage
def test_the_astronaut_portrait_is_medium_or_close_and_salient_at_her():
    """skimage_astronaut.png: Eileen Collins from the waist up, face at about x 0.34-0.49, y 0.12-0.29."""
    path = FOOTAGE / "photos" / "skimage_astronaut.png"
    doc = vision.analyze_vision(str(path), analysis.analyze(str(path), transcribe=False), text=False)
    (scene,) = doc["scenes"]
    assert scene["usable"] == [[0, 1]]
    assert scene["scale"] in ("medium", "close")
    cx, cy = scene["salient"]
    assert 0.3 < cx < 0.55 and 0.1 < cy < 0.4


@needs_footage
def test_the_runners_are_wide():
    """openmpf_runners.mp4: sprinters small on a track meet's field, then the pan around the bend."""
    path = FOOTAGE / "clips" / "openmpf_runners.mp4"
    doc = vision.analyze_vision(str(path), one_scene_doc(path, 0, 235), text=False)
    assert doc["scenes"][0]["scale"] == "wide"


@needs_footage
def test_the_selfie_close_ups_are_close():
    """openmpf_new_face_video-90.mp4 frames 70-88: a woman's face filling the frame's height, hair
    blowing (the file's display matrix turns it upright). Frame 461: the cyclist in glasses."""
    path = FOOTAGE / "clips" / "openmpf_new_face_video-90.mp4"
    for start, end in ((70, 89), (452, 471)):
        (scene,) = vision.analyze_vision(str(path), one_scene_doc(path, start, end), text=False)["scenes"]
        assert scene["scale"] == "close", (start, scene["faces"])
        fx, fy, fw, fh = scene["faces"][0]["box"]
        cx, cy = scene["salient"]
        assert fx - 0.1 < cx < fx + fw + 0.1 and fy - 0.1 < cy < fy + fh + 0.1


def test_scale_follows_the_largest_face():
    def face(h: float) -> dict:
        return {"box": [0.4, 0.1, h * 0.75, h], "skin": 0.8}

    assert vision.shot_scale([]) == "wide"
    assert vision.shot_scale([face(0.1)]) == "wide"
    assert vision.shot_scale([face(0.05), face(0.2)]) == "medium"
    assert vision.shot_scale([face(0.45)]) == "close"


def test_salient_is_the_off_centre_object_and_null_on_a_flat_frame(tmp_path):
    """Two shots: a bright red disc at (0.75, 0.3) of a grey frame, then the grey frame alone."""
    flat = np.full((360, 640, 3), (120, 120, 120), np.uint8)
    disc = cv2.circle(flat.copy(), (480, 108), 40, (235, 40, 30), -1)
    path = write_clip(tmp_path / "disc.mp4", [disc] * 12 + [flat] * 12)
    doc = {
        "source": {"width": 640, "height": 360},
        "scenes": [
            {"index": 0, "start_frame": 0, "end_frame": 12},
            {"index": 1, "start_frame": 12, "end_frame": 24},
        ],
    }
    first, second = vision.analyze_vision(str(path), doc, text=False)["scenes"]
    assert first["salient"] == pytest.approx([0.75, 0.3], abs=0.03)
    assert second["salient"] is None
    assert first["scale"] == second["scale"] == "wide"  # faces ran, nobody there
    off = vision.analyze_vision(str(path), doc, faces=False, people=False, text=False)["scenes"]
    assert [s["scale"] for s in off] == [None, None]
    assert off[0]["salient"] == pytest.approx([0.75, 0.3], abs=0.03)


def test_a_face_pulls_the_salient_centre_toward_it():
    """A red disc at (0.75, 0.3) and a face at (0.25, 0.5): the centre lies FACE_PULL of the way
    from the disc to the face."""
    rgb = cv2.circle(np.full((360, 640, 3), 120, np.uint8), (480, 108), 40, (235, 40, 30), -1)
    face = {"box": [0.2, 0.4, 0.1, 0.2], "skin": 0.9}
    cx, cy = vision.salient_point(rgb, [face])
    assert abs(cx - 0.25) < abs(cx - 0.75) and abs(cy - 0.5) < abs(cy - 0.3)  # nearer the face
    p = vision.FACE_PULL
    assert cx == pytest.approx(p * 0.25 + (1 - p) * 0.75, abs=0.02)
    assert cy == pytest.approx(p * 0.5 + (1 - p) * 0.3, abs=0.02)
    assert vision.salient_point(np.full((360, 640, 3), 120, np.uint8), [face]) == [0.25, 0.5]
