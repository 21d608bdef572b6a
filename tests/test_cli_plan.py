"""`lookalike plan show|edit DIR` on an output folder's plan.json (local parser, no farm)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "coordinator"))
from lookalike.coordinator import planner  # noqa: E402
from test_plan_ops import _analysis  # noqa: E402

from lookalike import cli_plan  # noqa: E402


@pytest.fixture
def out(tmp_path, monkeypatch):
    """An output folder holding the plan.json of a three-scene remake; no LLM keys set."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / "plan.json").write_text(json.dumps(planner.make_plan(_analysis([100, 200], 300), seed=4)))
    return tmp_path


def run(capsys, *argv):
    code = cli_plan.main(["plan", *map(str, argv)])
    got = capsys.readouterr()
    return code, got.out, got.err


def test_show(out, capsys):
    code, text, _ = run(capsys, "show", out)
    assert code == 0
    assert "plan version 1: 3 scenes, 300 frames (12.50 s) at 640x360, 24 fps" in text
    assert "scene 2: frames 100-200 (100 frames, 4.17 s), in: cut, camera: pan_right 0.1/s" in text
    code, text, _ = run(capsys, "show", out, "--json")
    assert json.loads(text)["schema"] == "lookalike.plan/1"


def test_edit_undo_diff(out, capsys):
    code, text, _ = run(capsys, "edit", out, "make scene 3 warmer and slower")
    assert code == 0
    assert "1. adjust_grade(scene=scene 3, temperature=0.1)" in text
    assert "2. set_duration(scene=scene 3, factor=1.25)" in text
    assert "plan.json is version 2 (version 1 kept as plan.v1.json)" in text
    assert "scenes to re-render: 3" in text and "audio to re-render: yes" in text
    plan = json.loads((out / "plan.json").read_text())
    assert plan["scenes"][2]["n_frames"] == 125 and plan["format"]["n_frames"] == 325
    assert json.loads((out / "plan.v1.json").read_text())["format"]["n_frames"] == 300

    code, text, _ = run(capsys, "edit", out, "--diff")
    assert code == 0 and "version 1 -> version 2" in text and "scene 3: n_frames: 100 -> 125" in text

    code, text, _ = run(capsys, "edit", out, "--undo")
    assert code == 0 and "plan.json is version 3" in text
    assert json.loads((out / "plan.json").read_text())["format"]["n_frames"] == 300

    code, text, _ = run(capsys, "edit", out, "swap 1 and 2", "--dry-run")
    assert code == 0 and "dry run" in text and not (out / "plan.v3.json").exists()

    code, text, _ = run(capsys, "edit", out, "--ops", '[{"op": "delete_scene", "scene": 0}]')
    assert code == 0 and len(json.loads((out / "plan.json").read_text())["scenes"]) == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["edit", "{out}", "delete scene 7"], "there is no scene 7"),
        (["edit", "{out}", "make it sing"], "could not understand"),
        (["edit", "{out}", "--undo"], "no edit to undo"),
        (["edit", "{out}"], "give one of"),
        (["show", "{out}/nowhere"], "is not a folder"),
        (["edit", "{out}", "scene 1 warmer", "--provider", "anthropic"], "ANTHROPIC_API_KEY"),
    ],
)
def test_bad_requests_exit_with_a_message(out, capsys, argv, message):
    code, _, err = run(capsys, *[a.format(out=out) for a in argv])
    assert code in (2, 4) and message in err
    assert not (out / "plan.v1.json").exists()


def test_show_a_footage_plan_lists_media_and_each_scenes_source(tmp_path, capsys):
    from footage_plans import footage_plan
    from lookalike.coordinator import plan_ops as po

    plan = po.apply(footage_plan(), [po.ExcludeMedia(media="IMG_0042.jpg"), po.ExcludeMedia(media="cat photo")])
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    code, text, _ = run(capsys, "show", tmp_path)
    assert code == 0
    lines = text.splitlines()
    assert "media: 3 items, 2 excluded" in lines
    assert "  1. clips/beach.mp4: video, 1280x720, 270 frames at 30 fps (9.00 s)" in lines
    assert "  2. IMG_0042.jpg: photo, 4000x3000 [excluded]" in lines
    assert "    source: clips/beach.mp4 frames 120-220 x0.8 mirrored" in lines
    assert "    source: clips/beach.mp4 frames 0-90 x0.72" in lines
    assert any(
        ln.startswith("    source: generated (no media fits: pets/cat photo.png is excluded") for ln in lines
    )


def test_format_source_of_a_photo_with_a_synthesized_move():
    src = {"kind": "media", "media": "IMG_0042.jpg", "photo": True, "in_frame": 0, "out_frame": 1,
           "speed": 1.0, "extend": "hold", "move": "synth", "mirror": True}
    assert cli_plan.format_source(src) == "IMG_0042.jpg (photo) synth-move mirrored"
    clip = {"kind": "media", "media": "a.mp4", "photo": False, "in_frame": 200, "out_frame": 270,
            "speed": 1.0, "extend": "hold", "move": "none", "mirror": False}
    assert cli_plan.format_source(clip) == "a.mp4 frames 200-270 then hold"


def test_show_a_plan_without_media_prints_no_source(out, capsys):
    _, text, _ = run(capsys, "show", out)
    assert "source:" not in text and "media:" not in text


def test_chat_shows_the_diff_first_then_applies_and_undo_that_restores_exactly(out, capsys):
    before = json.loads((out / "plan.json").read_text())
    code, text, _ = run(capsys, "edit", out, "make the first scene darker and more contrasty")
    assert code == 0
    preview, applied = text.split("applied; what changed:")
    assert "operations (local):" in preview and "adjust_grade(scene=scene 1, exposure=-0.3, contrast=0.2)" in preview
    assert "scene 1: grade.exposure: 0.0 -> -0.3" in preview  # the diff, before anything is written
    assert "plan.json is version 2" in preview
    assert "scene 1: grade.exposure: 0.0 -> -0.3" in applied
    code, text, _ = run(capsys, "edit", out, "and scene 2 too")
    assert code == 0 and "note: the same as" in text
    code, text, _ = run(capsys, "edit", out, "undo that")
    assert code == 0 and "undid version 3" in text
    code, text, _ = run(capsys, "edit", out, "undo that")
    assert code == 0 and "plan.json is version 5" in text
    after = json.loads((out / "plan.json").read_text())
    strip = lambda p: {k: v for k, v in p.items() if k not in ("version", "edit")}  # noqa: E731
    assert strip(after) == strip(before)


def test_chat_dry_run_and_a_refusal_that_names_the_words(out, capsys):
    code, text, _ = run(capsys, "edit", out, "make it feel more like a horror movie", "--dry-run")
    assert code == 0 and "'horror' is a preset" in text and "set_music(tempo_factor=0.85" in text
    assert "music.prompt" in text and "dry run: plan.json unchanged" in text
    assert not (out / "plan.v1.json").exists()
    code, _, err = run(capsys, "edit", out, "make it sing")
    assert code == 2 and "does not know the word 'sing'" in err and "did you mean" in err
