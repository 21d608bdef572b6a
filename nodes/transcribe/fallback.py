"""Recognizers in a fallback order, with a retry budget for transient failures."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lookalike.errors import ConfigError, ProviderError

from .base import SpeechAudio, Transcriber, Transcript


class FallbackTranscriber:
    """Try each recognizer in order; the first transcript wins.

    A transient ProviderError is retried up to `retries` more times on the same recognizer (after
    `backoff(attempt)` seconds, through `sleep`), then the chain moves on; a permanent one, or a
    ConfigError (a recognizer that cannot start), moves on at once. When every recognizer fails the
    ProviderError names each failure; it is transient if any failure was.
    """

    name = "fallback"

    def __init__(
        self,
        transcribers: Sequence[Transcriber],
        *,
        retries: int = 1,
        backoff: Callable[[int], float] = lambda attempt: 2.0**attempt,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not transcribers:
            raise ConfigError(
                "no speech recognizer configured", hint="install pocketsphinx or set a provider key"
            )
        self.transcribers = list(transcribers)
        self.retries = retries
        self.backoff = backoff
        if sleep is None:
            import time

            sleep = time.sleep
        self.sleep = sleep
        self.attempts: list[tuple[str, str]] = []  # (recognizer, outcome) of the last call, for reports

    def transcribe(self, audio: SpeechAudio) -> Transcript:
        failures: list[str] = []
        any_transient = False
        self.attempts = []
        for t in self.transcribers:
            for attempt in range(self.retries + 1):
                try:
                    result = t.transcribe(audio)
                except ProviderError as exc:
                    self.attempts.append((t.name, f"{'transient' if exc.transient else 'permanent'}: {exc}"))
                    if exc.transient and attempt < self.retries:
                        self.sleep(self.backoff(attempt))
                        continue
                    any_transient |= exc.transient
                    failures.append(f"{t.name}: {exc}")
                    break
                except ConfigError as exc:
                    self.attempts.append((t.name, f"config: {exc}"))
                    failures.append(f"{t.name}: {exc}")
                    break
                self.attempts.append((t.name, "ok"))
                tried = tuple(f.split(":", 1)[0] for f in failures)
                return Transcript(
                    result.text, result.words, result.provider, result.model, result.language, tried
                )
        raise ProviderError(
            "every speech recognizer failed: " + "; ".join(failures),
            transient=any_transient,
            hint="fix the first recognizer's problem, or add pocketsphinx as the last fallback",
        )
