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
        d = self._load()
        d.start_utt()
        d.process_raw(audio.pcm16(), no_search=False, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        frate = float(d.config["frate"])
        words: list[Word] = []
        for seg in d.seg() if hyp is not None else ():
            if _FILLER.match(seg.word):
                continue
            words.append(
                Word(
                    _VARIANT.sub("", seg.word),
                    round(seg.start_frame / frate, 3),
                    round((seg.end_frame + 1) / frate, 3),
                    round(float(np.clip(seg.prob, 0.0, 1.0)), 3),
                )
            )
        return Transcript(" ".join(w.text for w in words), tuple(words), self.name, "en-us", "en")
