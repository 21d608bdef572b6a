"""CMU PocketSphinx: an offline recognizer whose US English model ships inside the pip wheel."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from lookalike.errors import ConfigError, ProviderError

from .base import SPEECH_RATE, SpeechAudio, Transcript, Word

# Fillers the decoder emits between words: sentence marks, silence, noise classes.
_FILLER = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+\+.*\+\+)$")
_VARIANT = re.compile(r"\(\d+\)$")


class PocketSphinx:
    """Local recognizer: no network, no key, modest accuracy (see bench/speech.py for its WER).

    `options` go to pocketsphinx's Config (e.g. {"lw": 10.0} for a heavier language model weight,
    {"hmm": path, "lm": path, "dict": path} for another model). Each call gets a fresh decoder
    (about a second to load): a reused one carries its cepstral-mean estimate from the previous
    utterance into the next, so the same clip would read differently depending on what came before.
    """

    name = "pocketsphinx"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def _load(self) -> Any:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise ConfigError(
                "pocketsphinx is not installed",
                hint="pip install pocketsphinx (its English model ships with it)",
            ) from exc
        try:
            return Decoder(samprate=SPEECH_RATE, **self.options)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ConfigError(f"pocketsphinx could not start: {exc}", hint="check the model options") from exc

    def transcribe(self, audio: SpeechAudio) -> Transcript:
        if audio.rate != SPEECH_RATE:
            raise ProviderError(
                f"pocketsphinx needs {SPEECH_RATE} Hz audio, got {audio.rate} Hz",
                transient=False,
                hint="resample the speech to 16 kHz first (media.read_audio(path, rate=16000))",
            )
        # The decode runs in a child interpreter: pocketsphinx holds the GIL for seconds at a time (7 s
        # on a 10 s clip here), which would starve a node's heartbeat thread until the coordinator
        # declared the node dead. Same decoder, same settings, so the same words.
        segs, frate = _decode_in_child(self.options, audio.pcm16())
        words: list[Word] = []
        for word, start, end, prob in segs:
            if _FILLER.match(word):
                continue
            words.append(
                Word(
                    _VARIANT.sub("", word),
                    round(start / frate, 3),
                    round((end + 1) / frate, 3),
                    round(float(np.clip(prob, 0.0, 1.0)), 3),
                )
            )
        return Transcript(" ".join(w.text for w in words), tuple(words), self.name, "en-us", "en")


def _decode_in_child(options: dict[str, Any], pcm: bytes) -> tuple[list, float]:
    import json
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "lookalike.nodes.transcribe.sphinx", json.dumps(options)],
        input=pcm, capture_output=True, timeout=600,
    )
    if r.returncode != 0:
        message = r.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise ConfigError(f"pocketsphinx failed: {message[0]}", hint="check the model options")
    out = json.loads(r.stdout)
    return [tuple(seg) for seg in out["segs"]], float(out["frate"])


def _decode(options: dict[str, Any], pcm: bytes) -> tuple[list[tuple[str, int, int, float]], float]:
    """A fresh decoder over the whole utterance; (word, start, end frame, prob) per segment."""
    d = PocketSphinx(options)._load()
    d.start_utt()
    d.process_raw(pcm, no_search=False, full_utt=True)
    d.end_utt()
    segs = [(s.word, int(s.start_frame), int(s.end_frame), float(s.prob)) for s in d.seg()] if d.hyp() is not None else []
    return segs, float(d.config["frate"])


if __name__ == "__main__":  # the child: options as JSON in argv, 16 kHz pcm16 on stdin, JSON out
    import json
    import sys

    segs, frate = _decode(json.loads(sys.argv[1]), sys.stdin.buffer.read())
    sys.stdout.write(json.dumps({"segs": segs, "frate": frate}))
