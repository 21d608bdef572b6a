"""ElevenLabs speech-to-text (Scribe) through its documented HTTP API: POST /v1/speech-to-text.

Multipart form with `model_id`, `file`, `timestamps_granularity=word`, optional `language_code`;
header `xi-api-key`. The reply's `words` mix kinds: "word", "spacing" and "audio_event"; only words
are kept. httpx talks to it directly (the SDK adds its own retries, which belong to the chain).
"""

from __future__ import annotations

from typing import Any

from lookalike.errors import ConfigError, ProviderError

from .base import SpeechAudio, Transcript, Word, status_error

DEFAULT_BASE_URL = "https://api.elevenlabs.io"


class ElevenLabsTranscriber:
    name = "elevenlabs"

    def __init__(
        self,
        api_key: str,
        *,
        model: str = "scribe_v1",
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 120.0,
    ) -> None:
        if not api_key:
            raise ConfigError(
                "no ElevenLabs API key",
                hint="set ELEVENLABS_API_KEY or leave ElevenLabs out of the recognizers",
            )
        self.model = model
        self._api_key = api_key
        self._url = base_url.rstrip("/") + "/v1/speech-to-text"
        self._timeout_s = timeout_s

    def transcribe(self, audio: SpeechAudio) -> Transcript:
        import httpx

        data = {"model_id": self.model, "timestamps_granularity": "word", "tag_audio_events": "false"}
        if audio.language:
            data["language_code"] = audio.language
        try:
            r = httpx.post(
                self._url,
                headers={"xi-api-key": self._api_key},
                data=data,
                files={"file": ("speech.wav", audio.wav_bytes(), "audio/wav")},
                timeout=self._timeout_s,
            )
        except httpx.TimeoutException as exc:
            raise ProviderError(
                f"ElevenLabs speech-to-text timed out after {self._timeout_s:g} s",
                transient=True,
                hint="retry later",
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderError(
                f"could not reach ElevenLabs speech-to-text: {exc}",
                transient=True,
                hint="check the network and retry",
            ) from exc
        if r.status_code != 200:
            raise status_error("ElevenLabs", r.status_code, _detail(r), dict(r.headers))
        try:
            body = r.json()
            words = tuple(
                Word(str(w["text"]).strip(), round(float(w["start"]), 3), round(float(w["end"]), 3), _prob(w))
                for w in body.get("words") or ()
                if w.get("type", "word") == "word"
            )
            text = str(body.get("text", "")).strip()
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(
                f"ElevenLabs returned a reply that is not a transcript: {r.text[:200]!r}",
                transient=True,
                hint="retry; if it persists the API may have changed",
            ) from exc
        return Transcript(text, words, self.name, self.model, body.get("language_code") or audio.language)


def _detail(r: Any) -> str:
    try:
        detail = r.json().get("detail")
    except ValueError:
        return r.text[:200]
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("status") or detail)
    return str(detail)


def _prob(w: dict) -> float | None:
    import math

    lp = w.get("logprob")
    return None if lp is None else round(math.exp(float(lp)), 3)
