"""nodes.analysis end to end: synthesized clips with known cuts, camera moves and tempo, and the
shared real clips with their ground truth (../shared/media/ground_truth.json)."""

from __future__ import annotations

import functools
import json
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from lookalike.nodes import analysis
from scipy import ndimage

MEDIA = Path(__file__).resolve().parents[2] / ".." / "shared" / "media"
TRUTH = (
    json.loads((MEDIA / "ground_truth.json").read_text()) if (MEDIA / "ground_truth.json").exists() else {}
)
FPS = 24
W, H = 160, 90


@functools.lru_cache(maxsize=8)
def texture(seed: int, h: int = 400, w: int = 700) -> np.ndarray:
    """A colourful smooth random RGB texture in [0, 1], different for every seed."""
    rng = np.random.default_rng(seed)
    img = np.stack([ndimage.gaussian_filter(rng.random((h, w)), 4) for _ in range(3)], axis=-1)
    img = (img - img.min()) / (img.max() - img.min())
    tint = rng.random(3) * 0.6 + 0.2
    return np.clip(0.7 * img + 0.3 * tint, 0, 1)


def camera(img: np.ndarray, cx: float, cy: float, scale: float = 1.0) -> np.ndarray:
    """The W x H view of `img` centred at (cx, cy) and zoomed by `scale`, as RGB uint8."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    X, Y = (xs - (W - 1) / 2) / scale + cx, (ys - (H - 1) / 2) / scale + cy
    out = np.stack([ndimage.map_coordinates(img[..., c], [Y, X], order=1) for c in range(3)], axis=-1)
    return (out * 255).round().astype(np.uint8)


def write_clip(
    path: Path, frames: list[np.ndarray], audio: np.ndarray | None = None, rate: int = 22050
) -> Path:
    """Near-lossless H.264 at 24 fps (Matroska), with an optional mono PCM track."""
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.options = {"crf": "4", "bf": "0"}
        ast = None
        if audio is not None:
            ast = c.add_stream("pcm_s16le", rate=rate)
            ast.layout = "mono"
        for f in frames:
            c.mux(vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(vs.encode(None))
        if ast is not None:
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None, :]
            for i in range(0, pcm.shape[1], 4096):
                fr = av.AudioFrame.from_ndarray(pcm[:, i : i + 4096], format="s16", layout="mono")
                fr.sample_rate = rate
                fr.pts = i
                fr.time_base = Fraction(1, rate)
                c.mux(ast.encode(fr))
            c.mux(ast.encode(None))
    return path


def shots_clip(path: Path, cuts: list[int], n: int, flash: int | None = None, audio=None) -> Path:
    """Shots of different textures, each panning slowly, changing at `cuts`; a white frame at `flash`."""
    starts = [0, *cuts]
    frames = []
    for i in range(n):
        k = sum(1 for s in starts if s <= i) - 1
        img = texture(10 + k)
        frames.append(camera(img, 300 + 0.7 * (i - starts[k]), 200))
    if flash is not None:
        frames[flash] = np.full_like(frames[flash], 250)
    return write_clip(path, frames, audio)


def cut_frames(doc: dict) -> list[int]:
    return [s["start_frame"] for s in doc["scenes"] if s["transition_in"]["kind"] == "cut"]


@pytest.fixture(scope="module")
def cuts_clip(tmp_path_factory) -> Path:
    """90 frames, cuts at 20, 45 and 70, a one-frame white flash at 32 (not a cut); no audio."""
    return shots_clip(tmp_path_factory.mktemp("clips") / "cuts.mkv", [20, 45, 70], 90, flash=32)


def test_cuts_are_frame_exact_and_flash_is_not_a_cut(cuts_clip):
    seen: list[tuple[int, int]] = []
    doc = analysis.analyze(str(cuts_clip), progress=lambda d, t: seen.append((d, t)))
    assert doc["schema"] == "lookalike.analysis/1"
    assert cut_frames(doc) == [20, 45, 70]
    scenes = doc["scenes"]
    assert [(s["start_frame"], s["end_frame"]) for s in scenes] == [(0, 20), (20, 45), (45, 70), (70, 90)]
    assert scenes[0]["transition_in"]["kind"] == "none"
    assert scenes[1]["start_s"] == pytest.approx(20 / FPS, abs=1e-3)
    assert scenes[-1]["end_s"] == pytest.approx(90 / FPS, abs=1e-3)
    for s in scenes:
        assert len(s["camera"]["trajectory"]) == s["end_frame"] - s["start_frame"]
        assert sum(p["weight"] for p in s["palette"]) == pytest.approx(1.0, abs=1e-6)
        assert len(s["palette"]) == 5
        assert s["objects"] == [] and s["faces"] == [] and s["text"] == []
        assert {"valence", "energy", "words", "description"} <= set(s["mood"])
        assert s["lighting"]["key"] in ("high_key", "low_key", "normal")
        assert s["texture"]["sharpness"] > 0 and s["texture"]["grain"] >= 0
    assert seen[-1] == (90, 90)
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:], strict=False))
    # No audio track: the audio section is there, empty, and says so.
    assert doc["audio"]["has_audio"] is False
    assert doc["audio"]["tempo_bpm"] is None and doc["audio"]["lufs"] is None
    assert doc["pacing"]["shot_lengths_s"] == pytest.approx([20 / 24, 25 / 24, 25 / 24, 20 / 24], abs=1e-3)
    assert doc["pacing"]["cuts_per_minute"] == pytest.approx(3 / (90 / 24) * 60, rel=1e-3)
    assert doc["pacing"]["cuts_on_beat_ratio"] is None
    curve = doc["pacing"]["rhythm_curve"]
    assert len(curve["cuts_per_minute"]) == 4  # t = 0, 1, 2, 3 s of a 3.75 s clip
    assert max(curve["cuts_per_minute"]) > 0
    assert set(doc["timings"]) == {"video_s", "audio_s", "merge_s", "total_s"}
    json.dumps(doc, allow_nan=False)


@pytest.mark.parametrize(
    "bounds",
    [[0, 90], [0, 45, 90], [0, 13, 20, 21, 44, 46, 89, 90], [0, 32, 33, 70, 71, 90]],
    ids=["one", "at-cut", "awkward", "around-flash"],
)
def test_any_range_split_gives_the_same_document(cuts_clip, bounds):
    path = str(cuts_clip)
    info = analysis._probe(path)
    size = analysis._analysis_size(info)
    audio = analysis.analyze_audio(path)
    whole = analysis.merge_ranges(info, [analysis.analyze_range(path, 0, 90, size=size)], audio)
    parts = [analysis.analyze_range(path, a, b, size=size) for a, b in zip(bounds, bounds[1:], strict=False)]
    # Ranges may arrive in any order, as JSON.
    parts = [json.loads(json.dumps(p)) for p in reversed(parts)]
    assert analysis.merge_ranges(path, parts, audio) == whole


def test_missing_range_is_an_error(cuts_clip):
    path = str(cuts_clip)
    parts = [analysis.analyze_range(path, 0, 20), analysis.analyze_range(path, 30, 90)]
    with pytest.raises(analysis.JobError, match="expected frame 20"):
        analysis.merge_ranges(path, parts, analysis._empty_audio(False))


MOVES = {
    # name: (per-frame camera step (dx px, dy px, zoom factor), expected speed)
    "pan_right": ((2.0, 0.0, 1.0), 2.0 * FPS / W),
    "pan_left": ((-2.5, 0.0, 1.0), 2.5 * FPS / W),
    "tilt_down": ((0.0, 1.5, 1.0), 1.5 * FPS / H),
    "tilt_up": ((0.0, -1.5, 1.0), 1.5 * FPS / H),
    "zoom_in": ((0.0, 0.0, 1.01), math.log(1.01) * FPS),
    "zoom_out": ((0.0, 0.0, 1 / 1.012), math.log(1.012) * FPS),
    "static": ((0.0, 0.0, 1.0), 0.0),
}


@pytest.mark.parametrize("name", list(MOVES))
def test_camera_moves_label_and_speed(tmp_path, name):
    (dx, dy, zoom), speed = MOVES[name]
    img = texture(3)
    frames = [camera(img, 350 + dx * i, 200 + dy * i, zoom**i) for i in range(48)]
    doc = analysis.analyze(str(write_clip(tmp_path / f"{name}.mkv", frames)))
    assert len(doc["scenes"]) == 1
    cam = doc["scenes"][0]["camera"]
    assert cam["motion"] == name
    assert cam["speed"] == pytest.approx(speed, rel=0.15, abs=1e-9)
    last = cam["trajectory"][-1]
    assert last[0] == pytest.approx(dx * 47 / W, abs=0.01)
    assert last[1] == pytest.approx(dy * 47 / H, abs=0.01)
    assert last[2] == pytest.approx(zoom**47, rel=0.01)


def test_clicks_give_tempo_loudness_and_cuts_on_beat(tmp_path):
    rate = 22050
    n = 96
    y = np.zeros(int(n / FPS * rate), dtype=np.float32)
    t = np.arange(int(0.03 * rate)) / rate
    click = 0.8 * np.sin(2 * np.pi * 2000 * t) * np.exp(-t / 0.005)
    for beat in np.arange(0.0, n / FPS - 0.05, 0.5):  # 120 bpm
        i = int(beat * rate)
        y[i : i + len(click)] += click[: len(y) - i]
    doc = analysis.analyze(str(shots_clip(tmp_path / "beats.mkv", [24, 48, 78], n, audio=y)))
    audio = doc["audio"]
    assert audio["has_audio"] is True
    assert audio["tempo_bpm"] == pytest.approx(120.0, rel=0.02)
    assert audio["lufs"] is not None and -40 < audio["lufs"] < 0
    assert {s["kind"] for s in audio["segments"]} <= {"music", "speech", "silence"}
    # Cuts at 1.0 s and 2.0 s land on beats; 3.25 s does not.
    assert cut_frames(doc) == [24, 48, 78]
    assert doc["pacing"]["cuts_on_beat_ratio"] == pytest.approx(2 / 3, abs=1e-3)


def test_silent_track_is_json_safe(tmp_path):
    doc = analysis.analyze(str(shots_clip(tmp_path / "quiet.mkv", [], 24, audio=np.zeros(22050))))
    assert doc["audio"]["tempo_bpm"] is None and doc["audio"]["lufs"] is None
    json.dumps(doc, allow_nan=False)


def test_bad_range_is_an_input_error(cuts_clip):
    with pytest.raises(analysis.InputError):
        analysis.analyze_range(str(cuts_clip), 10, 5)


# --- shared real clips ----------------------------------------------------------------------------

needs_media = pytest.mark.skipif(not TRUTH, reason="shared media not present")


def f1(found: list[int], truth: list[int], tol: int = 1) -> float:
    hits = sum(any(abs(f - t) <= tol for f in found) for t in truth)
    if not found or not truth:
        return float(found == truth)
    p, r = hits / len(found), hits / len(truth)
    return 0.0 if hits == 0 else 2 * p * r / (p + r)


@needs_media
@pytest.mark.parametrize(
    ("clip", "key"),
    [("shots/goldeneye-vfr-drop3.mp4", "cuts_frame_decoded"), ("shots/issue-134-rotate.mp4", "cuts_frame")],
    ids=["vfr", "rotated"],
)
def test_goldeneye_cuts(clip, key):
    """GoldenEye footage (PySceneDetect resources): VFR with dropped frames, and with rotation data."""
    doc = analysis.analyze(str(MEDIA / clip))
    found = cut_frames(doc)
    truth = TRUTH[clip][key]
    assert len(found) == len(truth)
    assert all(abs(f - t) <= 1 for f, t in zip(found, truth, strict=True))
    # Times come from timestamps: the truth's cut times, within one frame.
    starts = [s["start_s"] for s in doc["scenes"][1:]]
    assert starts == pytest.approx(TRUTH[clip]["cuts_time"], abs=0.05)
    if clip.endswith("rotate.mp4"):
        assert doc["source"]["rotation_deg"] in (-90, 90, 270)


@needs_media
def test_goldeneye_range_split_equality():
    path = str(MEDIA / "shots/goldeneye-vfr-drop3.mp4")
    info = analysis._probe(path)
    n = int(info.n_frames)
    audio = analysis.analyze_audio(path)
    whole = analysis.merge_ranges(info, [analysis.analyze_range(path, 0, n)], audio)
    cut = cut_frames(whole)
    bounds = sorted({0, 17, cut[0], cut[0] + 1, cut[1] - 1, 150, n})
    parts = [analysis.analyze_range(path, a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    assert analysis.merge_ranges(info, parts, audio) == whole


@needs_media
@pytest.mark.slow
def test_big_buck_bunny():
    """Big Buck Bunny 0-30 s: fade-in from black, title text at 540-550, cuts at 283, 376, 551."""
    doc = analysis.analyze(str(MEDIA / "samples/big_buck_bunny_0_30.webm"))
    found = cut_frames(doc)
    truth = TRUTH["samples/big_buck_bunny_0_30.webm"]["cuts_frame"]
    assert len(found) == len(truth) and all(abs(f - t) <= 1 for f, t in zip(found, truth, strict=True))
    assert doc["source"]["n_frames"] == 720
    first = doc["scenes"][0]
    assert first["transition_in"]["kind"] in ("none", "fade")
    pal = first["palette"]
    assert sum(p["weight"] for p in pal) == pytest.approx(1.0, abs=1e-6)
    # Sky and grass, not just the black of the fade-in: a bright colour and a green one weigh in.
    assert sum(p["weight"] for p in pal if p["lab"][0] > 60) > 0.3
    assert any(p["lab"][1] < -5 and p["weight"] > 0.05 for p in pal)
    assert doc["audio"]["has_audio"] is True
    assert -40 < doc["audio"]["lufs"] < -10
    assert doc["audio"]["tempo_bpm"] is not None and 50 < doc["audio"]["tempo_bpm"] < 200
    json.dumps(doc, allow_nan=False)


def test_grade_uses_measure_grade_definitions_and_writes_a_lut(tmp_path):
    """A still, warm, textured shot: the scene grade equals kernels.grade.measure_grade of its frames
    (measured at analysis size), and its .cube file parses back to the fitted table."""
    from lookalike.kernels import grade as kg
    from lookalike.kernels import look

    img = texture(7) * np.array([1.0, 0.85, 0.6])
    frames = [camera(img, 350, 200) for _ in range(12)]
    path = write_clip(tmp_path / "warm.mkv", frames)
    doc = analysis.analyze(str(path), lut_dir=tmp_path / "luts")
    grade = doc["scenes"][0]["grade"]
    size = analysis._analysis_size(analysis._probe(str(path)))
    _, _, rgb = next(analysis.media.iter_frames(str(path), 5, 6, size=size))
    h2, w2 = rgb.shape[0] // 2, rgb.shape[1] // 2
    small = rgb.reshape(h2, 2, w2, 2, 3).mean(axis=(1, 3)) / 255.0
    ref = kg.measure_grade(small.astype(np.float32))
    for key in ("exposure", "contrast", "saturation", "temperature"):
        assert grade[key] == pytest.approx(ref[key], abs=0.02), key
    assert grade["temperature"] > 0.05  # it is warm
    cube = (tmp_path / "luts" / grade["lut"]["cube"]).read_text().splitlines()
    table = look.lut_table(grade["lut"]["lab_mean"], grade["lut"]["lab_std"], grade["lut"]["size"])
    assert cube[1] == f"LUT_3D_SIZE {grade['lut']['size']}"
    np.testing.assert_allclose([float(v) for v in cube[-1].split()], table[-1, -1, -1], atol=1e-5)


def test_sharpness_and_grain_rank_clips(tmp_path):
    rng = np.random.default_rng(0)
    blocks = np.kron(rng.integers(0, 256, (H // 6, W // 8, 3)), np.ones((6, 8, 1))).astype(np.uint8)
    sharp = [blocks] * 6
    blurred = [ndimage.uniform_filter(blocks.astype(float), (7, 7, 1)).astype(np.uint8)] * 6
    smooth = [camera(texture(5), 300, 200)] * 6
    noisy = [np.clip(f + rng.normal(0, 14, f.shape), 0, 255).astype(np.uint8) for f in smooth]
    tex = {}
    for name, frames in (("sharp", sharp), ("blurred", blurred), ("smooth", smooth), ("noisy", noisy)):
        tex[name] = analysis.analyze(str(write_clip(tmp_path / f"{name}.mkv", frames)))["scenes"][0][
            "texture"
        ]
    assert tex["sharp"]["sharpness"] > 1.5 * tex["blurred"]["sharpness"]
    assert tex["noisy"]["grain"] > 2 * tex["smooth"]["grain"]


def test_handheld_shake_is_measured(tmp_path):
    """A jittering camera (random steps of ~2 px) is handheld with clear shake; a tripod has none."""
    rng = np.random.default_rng(4)
    img = texture(9)
    jitter = np.cumsum(rng.normal(0, 2.0, (48, 2)), axis=0) * 0.5 + rng.normal(0, 2.0, (48, 2))
    shaky = [camera(img, 350 + dx, 200 + dy) for dx, dy in jitter]
    still = [camera(img, 350, 200)] * 24
    cam = analysis.analyze(str(write_clip(tmp_path / "shaky.mkv", shaky)))["scenes"][0]["camera"]
    calm = analysis.analyze(str(write_clip(tmp_path / "still.mkv", still)))["scenes"][0]["camera"]
    assert cam["motion"] == "handheld"
    assert cam["shake"] > 0.005 and calm["shake"] < 0.001
