"""Word error rate and speed of each available speech recognizer on ../shared/media/speech.

    python bench/speech.py [--recognizers pocketsphinx,openai,elevenlabs,faster-whisper]
                           [--whisper-model DIR] [--sphinx-lw 10]

Providers run only when their key is in the environment (OPENAI_API_KEY, ELEVENLABS_API_KEY) and
faster-whisper only with a model folder; the rest are reported as skipped, with the reason.
Prints one line per (recognizer, clip): WER against ground_truth.json, seconds, real-time factor,
and the words heard; then each recognizer's WER over all clips (errors / reference words).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from lookalike.nodes import media
from lookalike.nodes.transcribe import (
    ElevenLabsTranscriber,
    FasterWhisper,
    OpenAITranscriber,
    PocketSphinx,
    SpeechAudio,
    word_errors,
)

from lookalike.errors import ConfigError, ProviderError

MEDIA = Path(__file__).resolve().parents[1] / ".." / "shared" / "media"


def recognizers(names: list[str], args: argparse.Namespace) -> list[tuple[str, object | str]]:
    out: list[tuple[str, object | str]] = []
    for name in names:
        if name == "pocketsphinx":
            opts = {"lw": args.sphinx_lw} if args.sphinx_lw else {}
            out.append((name + (f"(lw={args.sphinx_lw:g})" if opts else ""), PocketSphinx(opts)))
        elif name == "openai":
            key = os.environ.get("OPENAI_API_KEY")
            out.append((name, OpenAITranscriber(key) if key else "skipped: OPENAI_API_KEY is not set"))
        elif name == "elevenlabs":
            key = os.environ.get("ELEVENLABS_API_KEY")
            out.append(
                (name, ElevenLabsTranscriber(key) if key else "skipped: ELEVENLABS_API_KEY is not set")
            )
        elif name == "faster-whisper":
            out.append(
                (
                    name,
                    FasterWhisper(args.whisper_model)
                    if args.whisper_model
                    else "skipped: no --whisper-model DIR",
                )
            )
        else:
            raise SystemExit(f"unknown recognizer {name!r}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recognizers", default="pocketsphinx,openai,elevenlabs,faster-whisper")
    ap.add_argument("--whisper-model", default=None)
    ap.add_argument(
        "--sphinx-lw", type=float, default=None, help="pocketsphinx language weight (default 6.5)"
    )
    args = ap.parse_args()
    truth = json.loads((MEDIA / "ground_truth.json").read_text())
    clips = sorted(k for k in truth if k.startswith("speech/"))
    print(f"{'recognizer':<20} {'clip':<22} {'WER':>6} {'sec':>6} {'RTF':>5}  heard")
    for name, rec in recognizers(args.recognizers.split(","), args):
        if isinstance(rec, str):
            print(f"{name:<20} {rec}")
            continue
        errors = words = 0
        for clip in clips:
            y, rate = media.read_audio(str(MEDIA / clip), rate=16000)
            audio = SpeechAudio(y, rate)
            t0 = time.perf_counter()
            try:
                tr = rec.transcribe(audio)  # type: ignore[attr-defined]
            except (ProviderError, ConfigError) as exc:
                print(f"{name:<20} {clip:<22} failed: {exc}")
                continue
            dt = time.perf_counter() - t0
            e, n = word_errors(truth[clip]["text"], tr.text)
            errors, words = errors + e, words + n
            print(
                f"{name:<20} {Path(clip).name:<22} {e / n:6.3f} {dt:6.2f} {dt / audio.duration_s:5.2f}  {tr.text}"
            )
        if words:
            print(
                f"{name:<20} {'ALL':<22} {errors / words:6.3f}  ({errors} errors / {words} reference words)"
            )


if __name__ == "__main__":
    main()
