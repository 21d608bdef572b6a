"""Speech to text with word times behind one interface, with fallback (see base.py for the contract)."""

from .base import SPEECH_RATE, SpeechAudio, Transcriber, Transcript, Word, status_error
from .elevenlabs_stt import ElevenLabsTranscriber
from .fallback import FallbackTranscriber
from .openai_stt import OpenAITranscriber
from .sphinx import PocketSphinx
from .wer import normalize, wer, word_errors
from .whisper_local import FasterWhisper

__all__ = [
    "SPEECH_RATE",
    "ElevenLabsTranscriber",
    "FallbackTranscriber",
    "FasterWhisper",
    "OpenAITranscriber",
    "PocketSphinx",
    "SpeechAudio",
    "Transcriber",
    "Transcript",
    "Word",
    "build_transcriber",
    "normalize",
    "status_error",
    "wer",
    "word_errors",
]


def build_transcriber(
    order: tuple[str, ...] | list[str] = ("openai", "elevenlabs", "faster-whisper", "pocketsphinx"),
    *,
    openai_api_key: str | None = None,
    openai_model: str = "whisper-1",
    openai_base_url: str | None = None,
    elevenlabs_api_key: str | None = None,
    elevenlabs_model: str = "scribe_v1",
    elevenlabs_base_url: str | None = None,
    whisper_model_path: str | None = None,
    retries: int = 1,
) -> FallbackTranscriber:
    """A FallbackTranscriber over the recognizers in `order` that have what they need.

    A provider without a key, or faster-whisper without a model path, is left out (not an error):
    the default chain degrades to the local pocketsphinx. Values come from the caller's settings;
    nothing here reads the environment.
    """
    chain: list[Transcriber] = []
    for name in order:
        if name == "openai" and openai_api_key:
            chain.append(OpenAITranscriber(openai_api_key, model=openai_model, base_url=openai_base_url))
        elif name == "elevenlabs" and elevenlabs_api_key:
            kw = {"base_url": elevenlabs_base_url} if elevenlabs_base_url else {}
            chain.append(ElevenLabsTranscriber(elevenlabs_api_key, model=elevenlabs_model, **kw))
        elif name == "faster-whisper" and whisper_model_path:
            chain.append(FasterWhisper(whisper_model_path))
        elif name == "pocketsphinx":
            chain.append(PocketSphinx())
        elif name not in ("openai", "elevenlabs", "faster-whisper"):
            from lookalike.errors import ConfigError

            raise ConfigError(
                f"unknown speech recognizer {name!r}",
                hint="choose from openai, elevenlabs, faster-whisper, pocketsphinx",
            )
    return FallbackTranscriber(chain, retries=retries)
