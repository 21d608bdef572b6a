"""OpenAI speech-to-text (`whisper-1`, `gpt-4o-transcribe`, `gpt-4o-mini-transcribe`) via the `openai` SDK.

whisper-1 is asked for `verbose_json` with word timestamps; the gpt-4o models accept only `json`
(text without times), so their transcript has no words and analysis places the text over the
speech segment it came from.
"""

from __future__ import annotations

from typing import Any

from lookalike.errors import ConfigError, ProviderError

from .base import SpeechAudio, Transcript, Word, status_error

WORD_TIMED_MODELS = frozenset({"whisper-1"})


class OpenAITranscriber:
    name = "openai"

    def __init__(
        self,
        api_key: str,
        *,
        model: str = "whisper-1",
        base_url: str | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        if not api_key:
            raise ConfigError(
                "no OpenAI API key", hint="set OPENAI_API_KEY or leave OpenAI out of the recognizers"
            )
        self.model = model
        self._api_key = api_key
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._client: Any = None

    def _sdk(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError as exc:
                raise ConfigError(
                    "the openai package is not installed", hint="pip install 'lookalike[providers]'"
                ) from exc
            # Retries belong to the fallback chain, not to the SDK (its own back-off would hide them).
            self._client = openai.OpenAI(
                api_key=self._api_key, base_url=self._base_url, timeout=self._timeout_s, max_retries=0
            )
        return self._client

    def transcribe(self, audio: SpeechAudio) -> Transcript:
        import openai

        client = self._sdk()
        timed = self.model in WORD_TIMED_MODELS
        kwargs: dict[str, Any] = {
            "model": self.model,
            "file": ("speech.wav", audio.wav_bytes(), "audio/wav"),
            "response_format": "verbose_json" if timed else "json",
        }
        if timed:
            kwargs["timestamp_granularities"] = ["word"]
        if audio.language:
            kwargs["language"] = audio.language
        try:
            resp = client.audio.transcriptions.create(**kwargs)
        except openai.APITimeoutError as exc:
            raise ProviderError(
                f"OpenAI speech-to-text timed out after {self._timeout_s:g} s",
                transient=True,
                hint="retry later",
            ) from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(
                f"could not reach OpenAI speech-to-text: {exc}",
                transient=True,
                hint="check the network and retry",
            ) from exc
        except openai.APIStatusError as exc:
            raise status_error("OpenAI", exc.status_code, _message(exc), dict(exc.response.headers)) from exc
        words = tuple(
            Word(str(w.word).strip(), round(float(w.start), 3), round(float(w.end), 3))
            for w in (getattr(resp, "words", None) or ())
        )
        text = str(getattr(resp, "text", "") or "").strip()
        return Transcript(
            text, words, self.name, self.model, getattr(resp, "language", None) or audio.language
        )


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(exc, "message", exc))
