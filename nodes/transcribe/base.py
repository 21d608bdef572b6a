"""The transcription interface: audio in, words with times out, one protocol for every recognizer.

    Transcriber.transcribe(SpeechAudio) -> Transcript

Implementations: `PocketSphinx` (local, its English model ships in the pocketsphinx wheel),
`OpenAITranscriber` (whisper-1 / gpt-4o-transcribe through the official `openai` SDK),
`ElevenLabsTranscriber` (Scribe through ElevenLabs' documented HTTP API), `FasterWhisper` (a
CTranslate2 Whisper model from a local folder). `FallbackTranscriber` tries them in order.

Errors are `lookalike.errors.ProviderError`: `transient=True` (rate limit, timeout, 5xx, a dropped
connection) may succeed on a retry; `transient=False` (bad key, bad request, no credit) never
will, so the chain moves straight on. A recognizer that cannot start (missing model, missing
package) raises `ConfigError`, which the chain treats as permanent for that recognizer.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lookalike.errors import ProviderError

SPEECH_RATE = 16000


@dataclass(frozen=True)
class Word:
    """One recognized word: its text as the recognizer spelled it, start and end in seconds."""

    text: str
    start_s: float
    end_s: float
    confidence: float | None = None


@dataclass(frozen=True)
class Transcript:
    """What a recognizer heard: the full text, its words with times, and who heard it."""

    text: str
    words: tuple[Word, ...] = ()
    provider: str = ""
    model: str = ""
    language: str | None = None
    fallback_from: tuple[str, ...] = ()  # recognizers that failed before this one, in order

    def shifted(self, offset_s: float) -> Transcript:
        """The same transcript with every word time moved by `offset_s` (a clip cut from a longer track)."""
        words = tuple(
            Word(w.text, round(w.start_s + offset_s, 3), round(w.end_s + offset_s, 3), w.confidence)
            for w in self.words
        )
        return Transcript(self.text, words, self.provider, self.model, self.language, self.fallback_from)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "provider": self.provider,
            "model": self.model,
            "language": self.language,
            "fallback_from": list(self.fallback_from),
            "words": [
                {"text": w.text, "start_s": w.start_s, "end_s": w.end_s, "confidence": w.confidence}
                for w in self.words
            ],
        }


@dataclass(frozen=True)
class SpeechAudio:
    """Mono float32 samples in [-1, 1] at `rate` Hz; `offset_s` is where they start in the source."""

    samples: np.ndarray = field(repr=False)
    rate: int = SPEECH_RATE
    offset_s: float = 0.0
    language: str | None = "en"

    @property
    def duration_s(self) -> float:
        return len(self.samples) / float(self.rate)

    def pcm16(self) -> bytes:
        return (np.clip(np.asarray(self.samples, np.float32), -1.0, 1.0) * 32767.0).astype("<i2").tobytes()

    def wav_bytes(self) -> bytes:
        """A 16-bit PCM WAV file of the samples: what the HTTP providers upload."""
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(self.rate))
            w.writeframes(self.pcm16())
        return buf.getvalue()


@runtime_checkable
class Transcriber(Protocol):
    """Anything that turns speech into a Transcript. `name` is what analysis.json reports."""

    name: str

    def transcribe(self, audio: SpeechAudio) -> Transcript: ...


# HTTP statuses that a later attempt may get past: timeouts, rate limits, server trouble.
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


def status_error(
    provider: str, status: int, detail: str, headers: Mapping[str, str] | None = None
) -> ProviderError:
    """The ProviderError for an HTTP error status from `provider`, with a hint that says what to do."""
    transient = status in TRANSIENT_STATUSES
    if status in (401, 403):
        hint = f"check the {provider} API key (it was refused)"
    elif status == 429:
        after = (headers or {}).get("retry-after")
        hint = f"rate limited; retry later{f' (after {after} s)' if after else ''} or use another recognizer"
    elif transient:
        hint = "the provider is having trouble; the call can be retried"
    else:
        hint = f"the request was refused; check the {provider} model name and audio"
    return ProviderError(
        f"{provider} speech-to-text failed: HTTP {status}: {detail}", transient=transient, hint=hint
    )
