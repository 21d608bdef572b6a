"""faster-whisper (CTranslate2 Whisper) from a local model folder: no download, no network.

The folder is a converted model as published (e.g. Systran/faster-whisper-small): it holds
model.bin, config.json, tokenizer.json and vocabulary files. Weights are never fetched here;
a missing folder is a ConfigError that says where to put them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lookalike.errors import ConfigError, ProviderError

from .base import SPEECH_RATE, SpeechAudio, Transcript, Word

REQUIRED_FILES = ("model.bin", "config.json")


class FasterWhisper:
    name = "faster-whisper"

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: str = "auto",
        compute_type: str = "default",
        beam_size: int = 5,
    ) -> None:
        self.model_path = Path(model_path)
        self.device = device
        self.compute_type = compute_type
        self.beam_size = beam_size
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        missing = [f for f in REQUIRED_FILES if not (self.model_path / f).is_file()]
        if not self.model_path.is_dir() or missing:
            raise ConfigError(
                f"no faster-whisper model at {self.model_path}"
                + (f" (missing {', '.join(missing)})" if self.model_path.is_dir() else ""),
                hint="download a converted model (e.g. Systran/faster-whisper-small) into that folder, "
                "or leave faster-whisper out of the recognizers",
            )
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ConfigError("faster-whisper is not installed", hint="pip install faster-whisper") from exc
        try:
            self._model = WhisperModel(
                str(self.model_path), device=self.device, compute_type=self.compute_type
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ConfigError(
                f"faster-whisper could not load the model at {self.model_path}: {exc}",
                hint="the folder must hold a CTranslate2 conversion of a Whisper model; download it again",
            ) from exc
        return self._model

    def transcribe(self, audio: SpeechAudio) -> Transcript:
        if audio.rate != SPEECH_RATE:
            raise ProviderError(
                f"faster-whisper needs {SPEECH_RATE} Hz audio, got {audio.rate} Hz",
                transient=False,
                hint="resample the speech to 16 kHz first",
            )
        model = self._load()
        segments, info = model.transcribe(
            np.asarray(audio.samples, np.float32),
            language=audio.language,
            word_timestamps=True,
            beam_size=self.beam_size,
        )
        words: list[Word] = []
        texts: list[str] = []
        for seg in segments:
            texts.append(seg.text.strip())
            for w in seg.words or ():
                words.append(
                    Word(
                        w.word.strip(),
                        round(float(w.start), 3),
                        round(float(w.end), 3),
                        round(float(w.probability), 3),
                    )
                )
        return Transcript(
            " ".join(texts).strip(),
            tuple(words),
            self.name,
            self.model_path.name,
            getattr(info, "language", None),
        )
