"""`lookalike grade` and `lookalike effects`: the edit stage on one file, run locally on the node library.

    lookalike grade INPUT --match REFERENCE --out OUT [--method reinhard|histogram] [--strength S]
                          [--save-lut LOOK.cube]
    lookalike grade INPUT --lut LOOK.cube --out OUT
    lookalike effects INPUT --spec effects.json --out OUT

Like `lookalike score`, these need no farm. Errors are lookalike.errors types (the main CLI prints
them and exits with their code); the output appears atomically and nothing is written on error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lookalike.errors import InputError, NotFoundError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `grade` and `effects` to the CLI's subparsers."""
    p = subparsers.add_parser("grade", help="match INPUT's colour to a reference video, or apply a .cube LUT")
    p.add_argument("input")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--match", metavar="REFERENCE", help="video whose look to match")
    src.add_argument("--lut", metavar="CUBE", help="a 3D LUT (.cube) to apply instead")
    p.add_argument("--out", required=True, help="output video (.mp4)")
    p.add_argument(
        "--method",
        choices=("reinhard", "histogram"),
        default="reinhard",
        help="colour transfer: mean/spread in Lab (reinhard) or full distribution (histogram)",
    )
    p.add_argument("--strength", type=float, default=1.0, help="0..1, how far to move toward the reference")
    p.add_argument("--save-lut", metavar="CUBE", help="also write the fitted LUT as a .cube file")
    p.add_argument("--crf", type=int, default=18)
    p.set_defaults(fn=cmd_grade)

    p = subparsers.add_parser("effects", help="apply an effects spec (JSON) to INPUT")
    p.add_argument("input")
    p.add_argument("--spec", required=True, help="effects.json (schema lookalike.effects/1)")
    p.add_argument("--out", required=True, help="output video (.mp4)")
    p.add_argument("--chunk-frames", type=int, default=48, help="frames rendered per range (as nodes do)")
    p.add_argument("--crf", type=int, default=18)
    p.set_defaults(fn=cmd_effects)


def _check_file(path: str, what: str) -> None:
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"{p}: no such {what} file", hint="check the path")
    if p.is_dir():
        raise InputError(f"{p} is a folder, not a {what} file")


def cmd_grade(args: argparse.Namespace) -> int:
    from lookalike.nodes import edit

    _check_file(args.input, "input")
    if args.match:
        _check_file(args.match, "reference")
    else:
        _check_file(args.lut, "LUT")
    if not 0.0 <= args.strength <= 1.0:
        raise InputError(f"--strength must be in [0, 1], got {args.strength}")
    summary = edit.grade_video(
        args.input,
        args.match,
        args.out,
        lut=args.lut,
        method=args.method,
        strength=args.strength,
        save_lut=args.save_lut,
        crf=args.crf,
    )
    print(json.dumps(summary))
    return 0


def cmd_effects(args: argparse.Namespace) -> int:
    from lookalike.nodes import edit

    _check_file(args.input, "input")
    pipe = edit.load_spec(args.spec)
    summary = edit.effects_video(args.input, pipe, args.out, chunk_frames=args.chunk_frames, crf=args.crf)
    print(json.dumps(summary))
    return 0
