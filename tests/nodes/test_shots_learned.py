"""nodes.shots_learned, the optional learned hard-cut detector, and how analysis runs it beside the
classic one: weights that are absent or unusable are reported, never raised; a tiny network trained
here on synthesized sequences (nothing is downloaded) finds their cuts and not their flashes; long
videos run in windows without changing the result; learned cuts join the classic ones only where no
gradual transition, flash or nearby boundary explains the change; without a model the analysis
document is the classic one plus its `shot_detector` note.

Clips are synthesized with known truth: `shots_learned.synthesize` (random textured shots, moving
content, hard cuts, flashes, fast pans) and small pans over smooth random textures built below.
"""

from __future__ import annotations

import json
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from lookalike.kernels import shots as kt
from lookalike.nodes import analysis
from lookalike.nodes import shots_learned as sl
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synth import make_clip  # noqa: E402

# The small network bench/train_shots.py --tiny trains: a few thousand parameters, some seconds.
TINY = {"config": {"filters": [4, 4], "hidden": 16, "grid": 1}, "batch": 4, "clip_frames": 32}
TINY_STEPS = 150
SIZE = 48  # synthesized frames are SIZE x SIZE, a multiple of the thumbnail


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny network trained for TINY_STEPS steps on synthesized clips, loaded back from its file."""
    pytest.importorskip("torch")
    path = tmp_path_factory.mktemp("shots") / "tiny.pt"
    summary = sl.train(path, steps=TINY_STEPS, seed=0, **TINY)
    model, why = sl.load_shot_model(path)
    assert model is not None, why
    return model, summary


def untrained(torch, config: dict | None = None, seed: int = 0) -> sl.ShotModel:
    """A freshly initialised network (seeded) in eval mode: enough for properties of the plumbing."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = sl.build_net(config)
    net.eval()
    return sl.ShotModel(net=net, config=sl._check_config(config or {}), path="untrained")


def texture(seed: int, side: int = 2 * SIZE, contrast: float = 1.0) -> np.ndarray:
    """A smooth random RGB picture in [0, 1], periodic, different for every seed."""
    rng = np.random.default_rng(seed)
    img = np.stack([ndimage.gaussian_filter(rng.random((side, side)), 6, mode="wrap") for _ in range(3)], -1)
    img = (img - img.min()) / (img.max() - img.min())
    return np.clip(0.5 + contrast * (img - 0.5), 0, 1)


def pan(img: np.ndarray, n: int, v: tuple[float, float], start: tuple[int, int] = (0, 0)) -> np.ndarray:
    """n SIZE x SIZE views of `img` moving by v (rows, columns) pixels a frame, wrapping around."""
    side = img.shape[0]
    ar = np.arange(SIZE)
    out = []
    for t in range(n):
        oy, ox = (np.array(start) + np.array(v) * t).astype(int)
        out.append(img[np.ix_((ar + oy) % side, (ar + ox) % side)])
    return np.array(out)


def to_rgb(frames: np.ndarray, seed: int = 0) -> np.ndarray:
    """Float frames in [0, 1] as uint8, with a grey level of sensor noise."""
    noise = np.random.default_rng(seed).normal(0, 1.0, frames.shape)
    return np.clip(np.round(frames * 255 + noise), 0, 255).astype(np.uint8)


def shot_frames(rgb: np.ndarray) -> list[dict]:
    """The per-frame shot features analysis keeps (score, hist, thumb), from `kernels.shots.frame_features`."""
    ff = kt.frame_features(rgb)
    return [
        {
            "index": i,
            "score": None if np.isnan(ff.score[i]) else round(float(ff.score[i]), 4),
            "hist": np.round(ff.hist[i].astype(np.float64), 5).tolist(),
            "thumb": ff.thumbs[i].ravel().tolist(),
        }
        for i in range(len(rgb))
    ]


# --- (a) loading: absent, foreign or broken weights are a reason, never an exception --------------


@pytest.mark.parametrize("path", [None, ""], ids=["None", "empty"])
def test_no_weights_configured_is_reported(path):
    assert sl.load_shot_model(path) == (None, sl.NO_WEIGHTS)
    assert "LOOKALIKE_SHOT_WEIGHTS" in sl.NO_WEIGHTS


def test_without_torch_the_reason_says_so(tmp_path, monkeypatch):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"anything")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    model, why = sl.load_shot_model(weights)
    assert model is None
    assert "torch is not installed" in why and "lookalike[ml]" in why


def _write(torch, path: Path, case: str) -> None:
    if case == "folder":
        path.mkdir()
    elif case == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "pickled-object":  # weights_only loading refuses anything but tensors and plain data
        torch.save({"format": sl.FORMAT, "config": {}, "state_dict": Fraction(1, 3)}, str(path))
    elif case == "wrong-format":
        torch.save({"format": "lookalike-shots-v0", "config": {}, "state_dict": {}}, str(path))
    elif case == "bare-state-dict":
        torch.save(sl.build_net().state_dict(), str(path))
    elif case == "tensor":
        torch.save(torch.zeros(3), str(path))
    elif case == "unknown-config-key":
        torch.save(
            {"format": sl.FORMAT, "config": {"filters": [4], "layers": 3}, "state_dict": {}}, str(path)
        )
    elif case == "bad-config-value":
        torch.save({"format": sl.FORMAT, "config": {"filters": [4, -1]}, "state_dict": {}}, str(path))
    elif case == "wrong-shapes":
        blob = {"format": sl.FORMAT, "config": {"filters": [4, 4]}, "state_dict": sl.build_net().state_dict()}
        torch.save(blob, str(path))
    elif case == "no-state-dict":
        torch.save({"format": sl.FORMAT, "config": {}}, str(path))
    elif case != "missing":
        raise AssertionError(case)


@pytest.mark.parametrize(
    "case,says",
    [
        ("missing", "not found"),
        ("folder", "not found"),
        ("garbage", "cannot read"),
        ("empty", "cannot read"),
        ("pickled-object", "cannot read"),
        ("wrong-format", "not a lookalike-shots-v1 file"),
        ("bare-state-dict", "not a lookalike-shots-v1 file"),
        ("tensor", "not a lookalike-shots-v1 file"),
        ("unknown-config-key", "do not fit"),
        ("bad-config-value", "do not fit"),
        ("wrong-shapes", "do not fit"),
        ("no-state-dict", "do not fit"),
    ],
)
def test_unusable_weights_give_none_and_a_reason(torch, tmp_path, case, says):
    path = tmp_path / "shots.pt"
    _write(torch, path, case)
    model, why = sl.load_shot_model(path)
    assert model is None
    assert says in why and str(path) in why


def test_saved_weights_load_back_to_the_same_network(torch, tmp_path):
    config = {"filters": [4, 4], "hidden": 16, "grid": 1}
    model = untrained(torch, config, seed=3)
    path = sl.save_shot_model(model.net, config, tmp_path / "w.pt")
    loaded, why = sl.load_shot_model(path)
    assert why == "" and loaded is not None
    assert loaded.path == str(path) and loaded.config == sl._check_config(config)
    assert 1_000 < loaded.parameters < 100_000
    thumbs = sl.synthesize(60, 1).thumbs
    assert np.array_equal(sl.cut_probabilities(loaded, thumbs), sl.cut_probabilities(model, thumbs))


def test_the_default_network_is_small():
    pytest.importorskip("torch")
    n = sum(p.numel() for p in sl.build_net().parameters())
    assert 10_000 <= n < 100_000  # "tens of thousands"


# --- (c) windows: the result does not depend on where they fall ---------------------------------


@pytest.mark.parametrize("window", [1, 37, 100, 299])
def test_windowed_probabilities_equal_one_window(torch, window):
    model = untrained(torch)
    thumbs = sl.synthesize(300, 3).thumbs
    whole = sl.cut_probabilities(model, thumbs, window=10**6)
    assert whole.shape == (300,) and whole.std() > 1e-3  # not a constant: the comparison means something
    assert np.abs(sl.cut_probabilities(model, thumbs, window=window) - whole).max() < 1e-5


def test_windows_need_their_context(torch):
    """Running chunks as separate videos (no shared context) changes frames near the seams: the
    context `cut_probabilities` adds is what makes windows invisible."""
    model = untrained(torch)
    thumbs = sl.synthesize(200, 3).thumbs
    whole = sl.cut_probabilities(model, thumbs)
    chunks = np.concatenate([sl.cut_probabilities(model, thumbs[a : a + 50]) for a in range(0, 200, 50)])
    assert np.abs(chunks - whole).max() > 1e-3


def test_thumbnails_of_the_wrong_shape_are_refused(torch):
    with pytest.raises(ValueError, match="thumbnails must be"):
        sl.cut_probabilities(untrained(torch), np.zeros((10, 8, 8, 3), np.uint8))
    assert sl.cut_probabilities(untrained(torch), np.zeros((0, 16, 16, 3), np.uint8)).shape == (0,)


def test_peaks_are_local_maxima_above_the_threshold():
    p = np.array([0.9, 0.1, 0.7, 0.7, 0.2, 0.4, 0.6, 0.55, 0.3, 0.8])
    # frame 0 is never a cut; a plateau counts once (its first frame); 0.55 is not a peak.
    assert sl.cut_peaks(p) == [2, 6, 9]


# --- (b) a tiny network trained here ---------------------------------------------------------------


@pytest.mark.slow
def test_a_tiny_trained_network_finds_the_cuts_of_unseen_sequences(trained):
    model, summary = trained
    assert summary["steps"] == TINY_STEPS and summary["parameters"] < 10_000
    hits = found = truth = 0
    for seed in (101, 102):  # training with seed 0 draws its clips from seeds 0 .. steps * batch
        s = sl.synthesize(480, seed + 10**6)
        peaks = sl.cut_peaks(sl.cut_probabilities(model, s.thumbs))
        p, r, _ = kt.boundary_f1(peaks, s.cuts, 1)
        hits += round(r * len(s.cuts))
        found += len(peaks)
        truth += len(s.cuts)
    precision, recall = hits / found, hits / truth
    f1 = 2 * precision * recall / (precision + recall)
    assert truth >= 30
    assert f1 >= 0.9, (precision, recall)


@pytest.mark.slow
def test_a_tiny_trained_network_does_not_fire_on_flashes(trained):
    model, _ = trained
    for seed in (7, 8, 9):
        s = sl.synthesize(100, seed, shot_frames=(100, 100), flash_share=0.0)  # one shot, no cut
        frames = s.frames.astype(np.float64) / 255
        frames[30] = 1.0  # a white frame
        frames[60:62] = 0.2 * frames[60:62] + 0.8  # two frames washed out toward white
        frames[85] = 0.3 * frames[85] + 0.7 * np.array([1.0, 0.95, 0.6])  # a warm flash
        thumbs = sl.thumbs_of(np.round(frames * 255).astype(np.uint8))
        step = np.abs(np.diff(thumbs.astype(np.float64), axis=0)).mean(axis=(1, 2, 3))
        assert min(step[29], step[59], step[84]) > 4 * np.median(step)  # each flash is a big change
        probs = sl.cut_probabilities(model, thumbs)
        near = [p for p in sl.cut_peaks(probs) if any(abs(p - f) <= 2 for f in (30, 31, 60, 61, 62, 85, 86))]
        assert near == [], (seed, near, probs[[30, 31, 60, 62, 85, 86]].round(3))


# --- (d) beside the classic detector ---------------------------------------------------------------


@pytest.mark.slow
def test_learned_finds_a_cut_out_of_a_fast_pan_that_the_classic_misses(trained):
    """A fast pan cut to a still shot: the cut's change score barely beats the pan's, and the
    classic detector's adaptive test (three times the median of the neighbours, which the pan
    raises) refuses it. The learned detector sees the motion stop and the picture change."""
    model, _ = trained
    rgb = to_rgb(np.concatenate([pan(texture(1), 30, (0, 9)), pan(texture(2), 30, (0, 0))]))
    frames = shot_frames(rgb)
    scores = [f["score"] for f in frames]
    assert scores[30] < 3 * np.median(scores[27:30] + scores[31:34])  # why the classic misses it
    assert analysis.scene_boundaries(frames) == [(0, {"kind": "none", "start_frame": 0, "end_frame": 0})]
    both = analysis.scene_boundaries(frames, learned=model)
    assert both == [
        (0, {"kind": "none", "start_frame": 0, "end_frame": 0}),
        (30, {"kind": "cut", "start_frame": 30, "end_frame": 30}),
    ]


def rule_clip() -> list[dict]:
    """150 frames: shot A pans, hard cut at 30 to shot B (a white flash at 50), a 24-frame dissolve
    from B to C over frames 70-93, C to the end."""
    a = pan(texture(11), 30, (1, 1))
    b = pan(texture(12), 64, (0, 1))
    c = pan(texture(13), 80, (0, 1), start=(5, 5))
    b[20] = 1.0
    alpha = np.linspace(0, 1, 26)[1:-1, None, None, None]
    dissolve = (1 - alpha) * b[-24:] + alpha * c[:24]
    frames = np.concatenate([a, b[:-24], dissolve, c[24:]])
    return shot_frames(to_rgb(frames))


def test_learned_cuts_never_replace_classic_ones_nor_land_in_transitions_flashes_or_beside_cuts(monkeypatch):
    """The rules of the union, with learned probabilities set by hand (no network): peaks beside
    the classic cut, on the flash and inside the dissolve (far enough from its boundary that only
    its span excludes it) are dropped, a clean peak is added, one under the threshold is not, and
    every classic boundary stays as it was."""
    frames = rule_clip()
    classic = analysis.scene_boundaries(frames)
    starts = [s for s, _ in classic]
    assert starts[:2] == [0, 30] and classic[1][1]["kind"] == "cut"
    dissolve = [(s, tr) for s, tr in classic if tr["kind"] == "dissolve"]
    assert len(dissolve) == 1 and 66 <= dissolve[0][1]["start_frame"] < dissolve[0][1]["end_frame"] <= 97
    assert len(classic) == 3  # the flash at 50 is not a boundary
    inside = dissolve[0][0] - analysis.LEARNED_MIN_GAP  # in the dissolve, far enough from its boundary
    assert dissolve[0][1]["start_frame"] <= inside

    probs = np.zeros(len(frames))
    probs[[33, 50, inside, 120, 135]] = [0.9, 0.95, 0.9, 0.8, 0.45]
    seen = []

    def fake(model, thumbs):
        seen.append(thumbs.shape)
        return probs

    monkeypatch.setattr(sl, "cut_probabilities", fake)
    both = analysis.scene_boundaries(frames, learned=sl.ShotModel(net=None, config={}, path="fake.pt"))
    assert seen == [(len(frames), kt.THUMB, kt.THUMB, 3)]
    assert [b for b in both if b not in classic] == [
        (120, {"kind": "cut", "start_frame": 120, "end_frame": 120})
    ]
    assert [b for b in both if b[0] != 120] == classic


# --- (e) the analysis document ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "two_shots.mp4"
    truth = make_clip(path, [(30, (250, 180, 80), 2.0), (26, (80, 120, 250), 0.0)], bpm=None)
    return str(path), truth


def test_without_a_model_the_document_only_gains_its_shot_detector_note(clip):
    path, truth = clip
    info = analysis._probe(path)
    ranges = [analysis.analyze_range(path, 0, None)]
    audio = analysis._empty_audio(False)
    doc = analysis.merge_ranges(info, ranges, audio)
    assert list(doc) == ["schema", "source", "scenes", "audio", "pacing", "shot_detector"]
    assert doc["shot_detector"] == {"classic": True, "learned": None, "learned_note": sl.NO_WEIGHTS}
    assert [s["start_frame"] for s in doc["scenes"][1:]] == truth["cuts"]
    frames = ranges[0]["frames"]
    bounds = analysis.scene_boundaries(frames)
    assert bounds == analysis.scene_boundaries(frames, learned=None)
    assert [(s["start_frame"], s["transition_in"]) for s in doc["scenes"]] == bounds
    # A node that could not load its weights says why; nothing else changes.
    noted = analysis.merge_ranges(info, ranges, audio, learned_note="shot weights file not found: /x.pt")
    assert noted["shot_detector"]["learned_note"] == "shot weights file not found: /x.pt"
    strip = lambda d: json.dumps({k: v for k, v in d.items() if k != "shot_detector"})  # noqa: E731
    assert strip(noted) == strip(doc)


def test_with_a_model_any_range_split_gives_the_same_document(torch, clip):
    """The learned detector reads the merged thumbnails, so the range-split identity of analysis
    holds with it too; the document names the weights and the cuts only the network found."""
    path, _ = clip
    model = untrained(torch, seed=1)
    info = analysis._probe(path)
    audio = analysis._empty_audio(False)
    whole = analysis.merge_ranges(info, [analysis.analyze_range(path, 0, None)], audio, learned=model)
    parts = [analysis.analyze_range(path, a, b) for a, b in ((0, 17), (17, 40), (40, 56))]
    assert analysis.merge_ranges(info, parts, audio, learned=model) == whole
    det = whole["shot_detector"]
    assert det["classic"] is True and det["learned"] == "untrained" and det["learned_note"] == ""
    starts = {s["start_frame"]: s["transition_in"]["kind"] for s in whole["scenes"]}
    assert all(starts.get(c) == "cut" for c in det["learned_cuts"])


# --- wiring: settings, node start-up and the analyze command ------------------------------------------


def test_settings_read_the_weights_path():
    from lookalike.settings import Settings

    assert Settings.from_env({}).shot_weights is None
    assert Settings.from_env({"LOOKALIKE_SHOT_WEIGHTS": "/w/shots.pt"}).shot_weights == "/w/shots.pt"


def test_a_node_loads_its_shot_weights_once_and_says_which_detector_runs(torch, tmp_path, clip):
    import structlog
    from lookalike.nodes.runtime import NodeRuntime

    from lookalike.store import open_store

    store = open_store(str(tmp_path / "store"))
    store.put_file("uploads/sample.mp4", clip[0])
    rt = NodeRuntime(store, cache_dir=str(tmp_path / "cache"))
    assert rt.shot_model is None and rt.shot_note == sl.NO_WEIGHTS
    ranges = [rt.analyze_range("uploads/sample.mp4", 0, 56)]
    audio = analysis._empty_audio(False)

    weights = sl.save_shot_model(untrained(torch).net, {}, tmp_path / "shots.pt")
    cases = [
        (None, "info", "classic", None),
        (str(tmp_path / "nope.pt"), "warning", "classic", None),
        (str(weights), "info", "classic+learned", str(weights)),
    ]
    for path, level, detector, learned in cases:
        with structlog.testing.capture_logs() as logs:
            rt.use_shot_weights(path)
        assert [(e["event"], e["log_level"], e["detector"]) for e in logs] == [
            ("node_shot_detector", level, detector)
        ]
        doc = rt.merge_analysis("uploads/sample.mp4", ranges, audio)
        assert doc["shot_detector"]["learned"] == learned
        if learned is None:
            assert doc["shot_detector"]["learned_note"] == rt.shot_note == logs[0]["reason"]
    assert "not found" in sl.load_shot_model(tmp_path / "nope.pt")[1]


def test_analyze_refuses_unusable_shot_weights_before_starting_a_farm(tmp_path, capsys, monkeypatch):
    from lookalike.cli import main

    monkeypatch.delenv("LOOKALIKE_SHOT_WEIGHTS", raising=False)
    sample = tmp_path / "sample.mp4"
    sample.write_bytes(b"not looked at: the weights are checked first")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    out = str(tmp_path / "a.json")
    assert main(["analyze", str(sample), "--out", out, "--shot-weights", str(tmp_path / "none.pt")]) == 2
    assert "--shot-weights: shot weights file not found" in capsys.readouterr().err
    assert main(["analyze", str(sample), "--out", out, "--shot-weights", str(bad)]) == 2
    assert "train_shots.py" in capsys.readouterr().err
    assert (
        main(["analyze", str(sample), "--out", out, "--shot-weights", str(bad), "--cluster", "127.0.0.1:1"])
        == 2
    )
    assert "LOOKALIKE_SHOT_WEIGHTS where the cluster's nodes run" in capsys.readouterr().err
    assert "LOOKALIKE_SHOT_WEIGHTS" not in os.environ
