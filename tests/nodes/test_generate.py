"""The local generator: subjects, frame-exact sub-range renders, grade and palette, camera motion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from lookalike.kernels import grade as G
from lookalike.kernels.compose import render_background
from lookalike.nodes.generate import SceneRenderer, load_subject, render_frames, synth_subject
from PIL import Image

from lookalike.errors import InputError, NotFoundError

W, H = 192, 108
PALETTE = [
    {"rgb": [200, 120, 60], "weight": 0.5},
    {"rgb": [40, 60, 90], "weight": 0.3},
    {"rgb": [230, 220, 200], "weight": 0.2},
]


def make_scene(
    start: int, end: int, step: tuple[float, float, float, float], grade: dict | None = None, palette=PALETTE
) -> dict:
    """A plan scene whose camera moves by `step` (dx, dy, dzoom, droll) per frame."""
    n = end - start
    traj = [[step[0] * i, step[1] * i, 1.0 + step[2] * i, step[3] * i] for i in range(n)]
    scene = {
        "index": 2,
        "start_frame": start,
        "end_frame": end,
        "palette": palette,
        "camera": {"motion": "pan_right", "trajectory": traj},
        "prompt": "a mascot",
        "seed": 9,
    }
    if grade is not None:
        scene["grade"] = grade
    return scene


@pytest.fixture(scope="module")
def subject() -> np.ndarray:
    return synth_subject(4, size=128)


def test_synth_subject(subject: np.ndarray) -> None:
    assert subject.shape == (128, 128, 4) and subject.dtype == np.uint8
    assert np.array_equal(subject, synth_subject(4, size=128))
    assert not np.array_equal(subject, synth_subject(5, size=128))
    alpha = subject[..., 3]
    assert alpha[0, 0] == 0 and alpha[64, 64] == 255
    assert 0.2 < (alpha > 127).mean() < 0.6  # a figure, not a box
    opaque = subject[alpha == 255][:, :3].astype(float).mean(axis=1)
    assert opaque.std() > 20  # shaded, eyes and belly: not a flat silhouette


def test_load_subject(tmp_path, subject: np.ndarray) -> None:
    Image.fromarray(subject).save(tmp_path / "s.png")
    assert np.array_equal(load_subject(tmp_path / "s.png"), subject)
    Image.fromarray(subject[..., :3]).save(tmp_path / "s.jpg")
    jpg = load_subject(str(tmp_path / "s.jpg"))
    # Without alpha the mascot (on the black its transparent pixels held) is cut out, not a rectangle.
    assert jpg.shape == (128, 128, 4) and jpg[0, 0, 3] == 0 and jpg[64, 64, 3] == 255
    cut, truth = jpg[..., 3] >= 128, subject[..., 3] >= 128
    assert (cut & truth).sum() / (cut | truth).sum() > 0.9
    with pytest.raises(NotFoundError, match="not found"):
        load_subject(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(InputError, match="not a readable image"):
        load_subject(tmp_path / "notes.png")


def test_sub_ranges_are_bit_identical_to_the_whole_scene(subject: np.ndarray) -> None:
    scene = make_scene(40, 57, (0.011, -0.004, 0.006, 0.3), grade={"exposure": -0.3, "temperature": 0.1})
    whole = list(render_frames(scene, 40, 57, width=W, height=H, subject_rgba=subject, seed=9))
    assert len(whole) == 17 and all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in whole)
    for a, b in [(40, 41), (56, 57), (47, 48), (43, 52), (51, 57)]:
        part = list(render_frames(scene, a, b, width=W, height=H, subject_rgba=subject, seed=9))
        assert all(np.array_equal(p, whole[a - 40 + i]) for i, p in enumerate(part)), (a, b)
    # A fresh renderer (no cache) gives the same pixels too.
    fresh = SceneRenderer(scene, W, H, subject, 9)
    assert np.array_equal(fresh.frame(49), whole[9])
    assert not np.array_equal(whole[0], whole[-1])
    other = next(render_frames(scene, 40, 41, width=W, height=H, subject_rgba=subject, seed=10))
    assert not np.array_equal(other, whole[0])


def test_ranges_outside_the_scene_are_refused(subject: np.ndarray) -> None:
    scene = make_scene(10, 20, (0.0, 0.0, 0.0, 0.0))
    for a, b in [(9, 12), (15, 21), (12, 12)]:
        with pytest.raises(InputError, match="not inside scene"):
            next(render_frames(scene, a, b, width=W, height=H, subject_rgba=subject, seed=0))
    with pytest.raises(InputError, match="outside the scene"):
        SceneRenderer(scene, W, H, subject, 0).frame(20)


@pytest.mark.parametrize(
    "target",
    [
        {"exposure": -1.0, "contrast": 0.9, "saturation": 0.9, "temperature": 0.2},
        {"exposure": 0.8, "contrast": 1.1, "saturation": 0.9, "temperature": -0.15},
    ],
    ids=["dark-warm", "bright-cool"],
)
def test_frames_follow_the_scene_grade(subject: np.ndarray, target: dict) -> None:
    scene = make_scene(0, 30, (0.02, 0.0, 0.0, 0.0), grade=target)
    frames = list(render_frames(scene, 0, 30, width=W, height=H, subject_rgba=subject, seed=1))
    for f in frames[::5]:
        m = G.measure_grade(f)
        assert m["exposure"] == pytest.approx(target["exposure"], abs=0.25)
        assert np.sign(m["temperature"]) == np.sign(target["temperature"])
    mean = G.measure_grade(np.concatenate(frames[::5], axis=1))
    assert mean["saturation"] == pytest.approx(target["saturation"], abs=0.2)
    assert mean["contrast"] == pytest.approx(target["contrast"], abs=0.2)


def test_frames_respect_the_palette(subject: np.ndarray) -> None:
    """With the grade a sample in this palette would have, the frames' mean colour is the palette's."""
    pal_rgb = np.array([p["rgb"] for p in PALETTE], np.float32)
    weights = [p["weight"] for p in PALETTE]
    sample_like = render_background(np, H, W, pal_rgb, weights, 0.0, 77)
    scene = make_scene(0, 12, (0.01, 0.005, 0.0, 0.0), grade=G.measure_grade(sample_like))
    frames = list(render_frames(scene, 0, 12, width=W, height=H, subject_rgba=subject, seed=2))
    mean_lab = G.rgb_to_lab(np.stack(frames)).reshape(-1, 3).mean(axis=0)
    palette_lab = (G.rgb_to_lab(pal_rgb / 255.0) * np.array(weights, np.float32)[:, None]).sum(axis=0)
    delta_e = float(np.linalg.norm(mean_lab - palette_lab))
    assert delta_e < 10.0, f"mean colour is ΔE {delta_e:.1f} from the palette's"
    # And a different palette moves it: the test can tell palettes apart.
    green = [{"rgb": [40, 160, 70], "weight": 1.0}]
    other = next(
        render_frames(
            make_scene(0, 12, (0, 0, 0, 0), palette=green),
            0,
            1,
            width=W,
            height=H,
            subject_rgba=subject,
            seed=2,
        )
    )
    assert np.linalg.norm(G.rgb_to_lab(other).reshape(-1, 3).mean(0) - palette_lab) > 25


@pytest.mark.parametrize(
    ("step", "expected"),
    [((0.02, 0.0), (-0.02 * W, 0.0)), ((0.0, -0.03), (0.0, 0.03 * H))],
    ids=["pan_right", "tilt_up"],
)
def test_camera_motion_is_measurable(subject: np.ndarray, step: tuple, expected: tuple) -> None:
    scene = make_scene(0, 10, (step[0], step[1], 0.0, 0.0))
    frames = list(render_frames(scene, 3, 5, width=W, height=H, subject_rgba=subject, seed=3))
    a, b = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float64) for f in frames)
    (dx, dy), _ = cv2.phaseCorrelate(a, b, cv2.createHanningWindow((W, H), cv2.CV_64F))
    assert dx == pytest.approx(expected[0], abs=0.35)
    assert dy == pytest.approx(expected[1], abs=0.35)


def test_scene_without_camera_palette_or_grade_still_renders(subject: np.ndarray) -> None:
    scene = {"index": 0, "start_frame": 0, "end_frame": 3}
    frames = list(render_frames(scene, 0, 3, width=W, height=H, subject_rgba=None, seed=0))
    assert len(frames) == 3 and np.array_equal(frames[0], frames[2])
    with pytest.raises(InputError, match="empty"):
        SceneRenderer({"start_frame": 5, "end_frame": 5}, W, H, subject, 0)
