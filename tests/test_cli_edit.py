"""`lookalike grade` and `lookalike effects` through the CLI module (a parser of our own until the
main CLI registers them): outputs, exit codes of bad input, nothing written on error."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from lookalike.kernels import lut as klut
from lookalike.nodes import edit, media
from synth import make_clip

from lookalike import cli_edit
from lookalike.errors import LookalikeError


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """Parse and run like lookalike.cli.main: LookalikeError -> its exit code and message."""
    ap = argparse.ArgumentParser(prog="lookalike")
    cli_edit.add_commands(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(argv)
    try:
        code = args.fn(args)
    except LookalikeError as exc:
        print(f"lookalike: error: {exc}", file=__import__("sys").stderr)
        code = exc.exit_code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("cli_edit")
    a, b = d / "warm.mp4", d / "cool.mp4"
    make_clip(a, [(16, (255, 190, 140), 2.0)], size=(128, 72), bpm=120.0)
    make_clip(b, [(12, (90, 150, 255), 3.0)], size=(128, 72), bpm=None)
    return a, b


def test_grade_match_writes_video_and_lut(clips, tmp_path, capsys) -> None:
    a, b = clips
    out, cube = tmp_path / "graded.mp4", tmp_path / "look.cube"
    code, stdout, _ = run(
        ["grade", str(a), "--match", str(b), "--out", str(out), "--save-lut", str(cube)], capsys
    )
    assert code == 0
    assert json.loads(stdout)["frames"] == 16
    info = media.probe(out)
    assert info.n_frames == 16 and info.has_audio and edit.read_cube(cube).size == 33


def test_grade_with_lut_and_effects(clips, tmp_path, capsys) -> None:
    a, _ = clips
    cube = tmp_path / "id.cube"
    cube.write_text(klut.format_cube(klut.identity(5)))
    out = tmp_path / "lut.mp4"
    assert run(["grade", str(a), "--lut", str(cube), "--out", str(out)], capsys)[0] == 0
    spec = tmp_path / "fx.json"
    spec.write_text(
        json.dumps(
            {"seed": 5, "effects": [{"name": "lut", "path": "id.cube"}, {"name": "grain", "sigma": 0.02}]}
        )
    )
    out2 = tmp_path / "fx.mp4"
    code, stdout, _ = run(
        ["effects", str(a), "--spec", str(spec), "--out", str(out2), "--chunk-frames", "5"], capsys
    )
    assert code == 0 and json.loads(stdout)["effects"] == ["lut", "grain"]
    assert media.probe(out2).n_frames == 16


@pytest.mark.parametrize(
    "make_args, code, words",
    [
        (
            lambda d, a, b: ["grade", str(a), "--match", str(d / "nope.mp4"), "--out", str(d / "o.mp4")],
            2,
            "no such reference",
        ),
        (
            lambda d, a, b: ["grade", str(a), "--lut", str(d / "bad.cube"), "--out", str(d / "o.mp4")],
            2,
            "needs 8 table rows",
        ),
        (
            lambda d, a, b: [
                "grade",
                str(a),
                "--match",
                str(b),
                "--strength",
                "3",
                "--out",
                str(d / "o.mp4"),
            ],
            2,
            "--strength",
        ),
        (
            lambda d, a, b: ["grade", str(a), "--match", str(b), "--out", str(d / "no_dir" / "o.mp4")],
            2,
            "no such folder",
        ),
        (
            lambda d, a, b: ["effects", str(a), "--spec", str(d / "bad.json"), "--out", str(d / "o.mp4")],
            2,
            "no effect named 'blur9000'",
        ),
        (
            lambda d, a, b: ["effects", str(a), "--spec", str(d / "range.json"), "--out", str(d / "o.mp4")],
            2,
            "vignette.strength",
        ),
        (
            lambda d, a, b: ["effects", str(a), "--spec", str(d / "nojson.json"), "--out", str(d / "o.mp4")],
            2,
            "not valid JSON",
        ),
        (
            lambda d, a, b: [
                "effects",
                str(d / "bad.cube"),
                "--spec",
                str(d / "ok.json"),
                "--out",
                str(d / "o.mp4"),
            ],
            2,
            "bad.cube",
        ),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(clips, tmp_path, capsys, make_args, code, words) -> None:
    a, b = clips
    (tmp_path / "bad.cube").write_text("LUT_3D_SIZE 2\n0 0 0\n")
    (tmp_path / "bad.json").write_text(json.dumps({"effects": [{"name": "blur9000"}]}))
    (tmp_path / "range.json").write_text(json.dumps({"effects": [{"name": "vignette", "strength": 7}]}))
    (tmp_path / "nojson.json").write_text("{effects: [")
    (tmp_path / "ok.json").write_text(json.dumps({"effects": []}))
    before = sorted(p.name for p in tmp_path.iterdir())
    got, _, err = run(make_args(tmp_path, a, b), capsys)
    assert got == code and words in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
