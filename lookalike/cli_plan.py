"""`lookalike plan show DIR` and `lookalike plan edit DIR "request"`: the plan of an output folder.

Works on DIR/plan.json locally (no farm needed): `edit` turns the request into plan operations
(an LLM provider when ANTHROPIC_API_KEY or OPENAI_API_KEY is set, else the local parser), shows
them and the changes they make, asks on a terminal (`--yes` does not ask, `--dry-run` writes
nothing), applies them and writes plan.json atomically, keeping the previous version as
plan.v{N}.json, then shows what changed. "undo that" or `--undo` takes the last edit back, "and
scene 4 too" repeats it elsewhere (the conversation lives in the versions), `--diff` shows what
changed between versions.
Re-rendering the affected scenes is the farm's job (the ChatPlan/UpdateScenes RPCs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from lookalike.errors import InputError


def add_commands(subparsers: Any) -> None:
    """Register `plan show` and `plan edit` on the CLI's subparsers."""
    p = subparsers.add_parser("plan", help="show or edit the plan of an output folder")
    sub = p.add_subparsers(dest="plan_command", required=True)

    s = sub.add_parser("show", help="print the plan of an output folder readably")
    s.add_argument("dir", help="an output folder (holds plan.json)")
    s.add_argument("--version", type=int, default=None, help="an earlier version (default: the current one)")
    s.add_argument("--json", action="store_true", help="print the plan as JSON")
    s.set_defaults(fn=cmd_plan_show)

    e = sub.add_parser("edit", help='edit the plan in words: lookalike plan edit DIR "make scene 3 warmer"')
    e.add_argument("dir", help="an output folder (holds plan.json)")
    e.add_argument("request", nargs="?", help="what to change, in words")
    e.add_argument("--undo", action="store_true", help="take back the last edit (kept as a new version)")
    e.add_argument(
        "--diff",
        nargs="?",
        const="",
        default=None,
        metavar="A[:B]",
        help="show the changes between versions A and B (default: the previous and the current)",
    )
    e.add_argument("--ops", help="apply these operations (a JSON list) instead of a request in words")
    e.add_argument("--dry-run", action="store_true", help="show the operations and changes, write nothing")
    e.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="apply without asking (asked only on a terminal; the changes are always shown first)",
    )
    e.add_argument(
        "--provider",
        choices=("auto", "local", "anthropic", "openai"),
        default="auto",
        help="who turns words into operations (auto: an LLM when its key is set, else local)",
    )
    e.add_argument("--model", help="the LLM model (default: the provider's default)")
    e.add_argument("--api-base", help="the LLM API's base URL (a gateway or proxy)")
    e.set_defaults(fn=cmd_plan_edit)


def _history(folder: str):
    from lookalike.coordinator.plan_history import FolderHistory

    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"{folder} is not a folder", hint="give the output folder of a remake (--out)")
    if not (d / "plan.json").exists():
        raise InputError(f"{folder} has no plan.json", hint="give the output folder of a remake (--out)")
    return FolderHistory(d)


def _fmt_grade(g: dict) -> str:
    parts = []
    for key, label, neutral in (
        ("exposure", "exp", 0.0),
        ("contrast", "con", 1.0),
        ("saturation", "sat", 1.0),
        ("temperature", "temp", 0.0),
    ):
        if key in g and g[key] is not None:
            v = float(g[key])
            parts.append(f"{label} {v:+.2f}" if neutral == 0.0 else f"{label} {v:.2f}")
    return " ".join(parts) or "-"


def format_source(src: dict) -> str:
    """A scene's source in one line: "clips/beach.mp4 frames 120-210 x0.8 synth-move mirrored", or
    "generated (no media fits: ...)"."""
    if src.get("kind") != "media":
        why = src.get("why") or "no media item was chosen"
        return f"generated ({why})"
    if src.get("photo"):
        parts = [f"{src.get('media')} (photo)"]
    else:
        parts = [f"{src.get('media')} frames {src.get('in_frame')}-{src.get('out_frame')}"]
        speed = float(src.get("speed") or 1.0)
        if speed != 1.0:
            parts.append(f"x{speed:g}")
        if src.get("extend") not in (None, "none"):
            parts.append(f"then {src['extend']}")
    if src.get("move") == "synth":
        parts.append("synth-move")
    if src.get("mirror"):
        parts.append("mirrored")
    return " ".join(parts)


def _format_media(items: list[dict]) -> list[str]:
    out = [f"media: {len(items)} items" + (f", {sum(1 for m in items if m.get('excluded'))} excluded" if any(m.get("excluded") for m in items) else "")]
    for k, m in enumerate(items, 1):
        size = f"{m.get('width')}x{m.get('height')}"
        what = (
            f"photo, {size}"
            if m.get("kind") == "photo"
            else f"video, {size}, {m.get('n_frames')} frames at {float(m.get('fps') or 0):g} fps "
            f"({float(m.get('duration_s') or 0):.2f} s)"
        )
        out.append(f"  {k}. {m.get('name')}: {what}" + (" [excluded]" if m.get("excluded") else ""))
    return out


def format_plan(plan: dict) -> str:
    """The plan as lines a person reads: the format, the music, then one block per scene."""
    fmt = plan.get("format") or {}
    music = plan.get("music") or {}
    fps = float(fmt.get("fps") or 24.0)
    out = [
        f"plan version {plan.get('version', 1)}: {len(plan.get('scenes') or [])} scenes, {fmt.get('n_frames')} frames "
        f"({float(fmt.get('duration_s') or 0):.2f} s) at {fmt.get('width')}x{fmt.get('height')}, {fps:g} fps",
        "music: "
        + ", ".join(
            f"{k} {v}"
            for k, v in (
                ("tempo", music.get("tempo_bpm") and f"{music['tempo_bpm']:g} BPM"),
                ("key", music.get("key")),
                ("loudness", music.get("lufs") is not None and f"{music['lufs']:.1f} LUFS"),
                ("from", (music.get("provider") or "the node's music provider")
                 + (f" ({music['model']})" if music.get("model") else "")),
            )
            if v
        )
        or "music: -",
    ]
    if plan.get("media"):
        out.extend(_format_media(plan["media"]))
    edit = plan.get("edit") or {}
    if edit.get("request"):
        out.append(f"last edit: {edit['request']!r} (from version {edit.get('base_version')})")
    elif edit.get("undo_of"):
        out.append(f"last edit: undo of version {edit['undo_of']} (restored version {edit.get('restored')})")
    for i, s in enumerate(plan.get("scenes") or []):
        n = s.get("n_frames") or s["end_frame"] - s["start_frame"]
        t = s.get("transition_in") or {}
        tr = t.get("kind", "cut")
        if tr in ("dissolve", "fade") and "end_frame" in t:
            tr += f" {t['end_frame'] - t['start_frame']}f"
        cam = s.get("camera") or {}
        move = cam.get("motion", "static") + (f" {cam['speed']:g}/s" if cam.get("speed") else "")
        out.append(
            f"scene {i + 1}: frames {s['start_frame']}-{s['end_frame']} ({n} frames, {n / fps:.2f} s), "
            f"in: {tr}, camera: {move}"
        )
        out.append(
            f"    grade: {_fmt_grade(s.get('grade') or {})}; {s.get('provider', 'local')}/{s.get('model', '-')}"
            f", seed {s.get('seed')}"
        )
        out.append(f"    prompt: {s.get('prompt', '')}")
        if isinstance(s.get("source"), dict):
            out.append(f"    source: {format_source(s['source'])}")
        effects = s.get("effects") or []
        if effects:
            out.append(
                "    effects: " + ", ".join(f"{e['name']} {e.get('strength', 0.5):g}" for e in effects)
            )
        audio = s.get("audio") or {}
        for line in audio.get("voice_lines") or []:
            out.append(f"    voice at +{float(line.get('offset_s', 0)):.2f} s: {line.get('text')!r}")
        for fx in audio.get("sfx") or []:
            out.append(f"    sfx at +{float(fx.get('offset_s', 0)):.2f} s: {fx.get('sound')}")
    return "\n".join(out)


def cmd_plan_show(args) -> int:
    plan = _history(args.dir).get(args.version)
    print(json.dumps(plan, indent=2) if args.json else format_plan(plan))
    return 0


def _provider(args):
    from lookalike.coordinator import chat

    # The CLI is where configuration is read; library code takes the keys as arguments.
    return chat.provider_from_keys(
        anthropic_api_key=os.environ.get("ANTHROPIC_API_KEY") or None,
        openai_api_key=os.environ.get("OPENAI_API_KEY") or None,
        prefer=args.provider,
        anthropic_base_url=args.api_base,
        openai_base_url=args.api_base,
        model=args.model,
    )


def _print_changes(old: dict, new: dict) -> None:
    from lookalike.coordinator import plan_ops as po

    changes = po.diff(old, new)
    print("changes:" if changes else "changes: none")
    for c in changes:
        print(f"  {c.describe()}")
    affected = sorted(po.affected_scenes(old, new))
    print("scenes to re-render: " + (", ".join(str(i + 1) for i in affected) if affected else "none"))
    print(f"audio to re-render: {'yes' if po.audio_affected(old, new) else 'no'}")


def _versions(spec: str, history) -> tuple[int, int]:
    latest = history.latest_version()
    if not spec:
        if latest < 2:
            raise InputError("the plan has only one version: nothing to compare")
        return latest - 1, latest
    a, _, b = spec.partition(":")
    try:
        return int(a), int(b) if b else latest
    except ValueError as exc:
        raise InputError(f"--diff takes VERSION or A:B, got {spec!r}") from exc


def cmd_plan_edit(args) -> int:
    from lookalike.coordinator import plan_ops as po

    history = _history(args.dir)
    chosen = [x for x in (args.request, args.ops, args.undo or None, args.diff is not None or None) if x]
    if len(chosen) != 1:
        raise InputError(
            "give one of: a request in words, --ops JSON, --undo or --diff",
            hint='e.g. lookalike plan edit DIR "make scene 3 warmer"',
        )
    if args.diff is not None:
        a, b = _versions(args.diff, history)
        print(f"version {a} -> version {b}")
        _print_changes(history.get(a), history.get(b))
        return 0
    if args.undo:
        before = history.get()
        if args.dry_run:
            raise InputError("--dry-run does not apply to --undo; --diff shows versions")
        version, after = history.undo()
        print(
            f"undid version {after['edit']['undo_of']}: plan.json is version {version} "
            f"(the plan of version {after['edit']['restored']})"
        )
        _print_changes(before, after)
        return 0
    plan = history.get()
    if args.request:
        return _chat(args, history)
    ops, source = po.ops_from_json(args.ops), "--ops"
    print(f"operations ({source}):")
    for k, op in enumerate(ops, 1):
        print(f"  {k}. {op.describe()}")
    new = po.apply(plan, ops)
    if args.dry_run:
        _print_changes(plan, new)
        print("dry run: plan.json unchanged")
        return 0
    base = history.latest_version()
    version, after = history.edit(ops, request=args.request or args.ops)
    print(f"plan.json is version {version} (version {base} kept as plan.v{base}.json)")
    _print_changes(plan, after)
    return 0


def _analysis(folder: str) -> dict | None:
    """DIR/analysis.json when the remake left one: its captions and objects name scenes in chat."""
    path = Path(folder) / "analysis.json"
    try:
        doc = json.loads(path.read_text()) if path.exists() else None
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _chat(args, history) -> int:
    """A request in words: the operations and their diff first, then (unless --dry-run, or a
    terminal user says no) the new version and what it changed."""
    from lookalike.coordinator import chat
    from lookalike.coordinator import plan_ops as po

    def confirm(preview) -> bool:
        print(preview.reply())
        if args.dry_run or args.yes or not sys.stdin.isatty():
            return True
        return input("apply these changes? [y/N] ").strip().lower() in ("y", "yes")

    result = chat.chat_edit(
        history,
        args.request,
        provider=_provider(args),
        analysis=_analysis(args.dir),
        dry_run=False,
        confirm=lambda preview: confirm(preview) and not args.dry_run,
    )
    if result.version is None:
        affected = sorted(po.affected_scenes(result.before, result.after))
        print("scenes to re-render: " + (", ".join(str(i + 1) for i in affected) if affected else "none"))
        print("dry run: plan.json unchanged" if args.dry_run else "not applied: plan.json unchanged")
        return 0
    if result.proposal.undo:
        edit = result.after["edit"]
        print(f"undid version {edit['undo_of']}: plan.json is version {result.version} "
              f"(the plan of version {edit['restored']})")
    else:
        print(f"plan.json is version {result.version} (version {result.version - 1} kept as "
              f"plan.v{result.version - 1}.json)")
    print("applied; what changed:")
    _print_changes(result.before, result.after)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m lookalike.cli_plan plan ...` for use before the lead wires it into `lookalike`."""
    from lookalike.errors import LookalikeError

    ap = argparse.ArgumentParser(prog="lookalike")
    add_commands(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except LookalikeError as exc:
        print(f"lookalike: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
