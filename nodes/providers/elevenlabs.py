"""ElevenLabs through the official `elevenlabs` SDK: text-to-speech (POST /v1/text-to-speech/{voice}),
instant voice cloning (POST /v1/voices/add), music (POST /v1/music) and sound effects
(POST /v1/sound-generation). Audio is asked for as pcm_44100 (16-bit little-endian mono), so no
decoder sits between the API and the samples.

One client serves the three providers (`ElevenLabsVoice`, `ElevenLabsMusic`, `ElevenLabsSfx`).
Cost is estimated from the billed units (characters for speech, seconds for music and effects)
with a configurable price table.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyloudnorm
from lookalike.nodes import music

from lookalike.errors import InputError, ProviderError

from .base import (
    AudioResult,
    CallRecord,
    MusicRequest,
    SfxRequest,
    VoiceRequest,
    http_errors,
    missing_key,
    retry_after,
    status_error,
)
from .local import _SFX_LENGTH_S, check_line

KEY_SETTING = "LOOKALIKE_ELEVENLABS_API_KEY"
RATE = 44100
DEFAULT_VOICE = "JBFqnCBsd6RMkjVDRZzb"  # a premade voice ("George") every account has
# estimated list prices in USD: per character of speech, per second of music or effect
PRICES = {"voice": 0.00018, "music": 0.0083, "sfx": 0.0033}
# emotion -> (stability, style): lower stability and more style read as more expressive
_VOICE_EMOTION = {
    "neutral": (0.5, 0.0),
    "calm": (0.75, 0.0),
    "happy": (0.4, 0.45),
    "excited": (0.3, 0.7),
    "sad": (0.55, 0.35),
    "serious": (0.7, 0.15),
    "angry": (0.3, 0.8),
}
MIN_SECTION_MS = 3000


def pcm16(chunks: Iterable[bytes], provider: str, what: str) -> np.ndarray:
    data = b"".join(chunks)
    if not data:
        raise ProviderError(f"{provider} returned no audio for {what}", transient=True)
    if len(data) % 2:
        raise ProviderError(
            f"{provider} returned broken audio for {what} (odd byte count for 16-bit PCM)", transient=True
        )
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


class ElevenLabsClient:
    """The SDK client and its error translation, shared by the three providers."""

    def __init__(
        self, api_key: str | None, *, base_url: str | None = None, http_timeout_s: float = 120.0
    ) -> None:
        self.api_key, self.base_url, self.http_timeout_s = api_key, base_url, http_timeout_s
        self._client: Any = None
        self._lock = threading.Lock()
        self._clones: dict[str, str] = {}

    def get(self) -> Any:
        if not self.api_key:
            raise missing_key("elevenlabs", KEY_SETTING)
        if self._client is None:
            try:
                from elevenlabs.client import ElevenLabs
            except ImportError as exc:
                raise ProviderError(
                    "the elevenlabs provider needs the elevenlabs package",
                    transient=False,
                    hint="pip install 'lookalike[providers]'",
                ) from exc
            self._client = ElevenLabs(
                api_key=self.api_key, base_url=self.base_url, timeout=self.http_timeout_s
            )
        return self._client

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        from elevenlabs.core.api_error import ApiError

        timeouts, transport = http_errors()
        try:
            return fn()
        except ApiError as exc:
            detail = exc.body.get("detail") if isinstance(exc.body, dict) else exc.body
            raise status_error(
                "elevenlabs",
                int(exc.status_code or 500),
                f"{what}: {detail}",
                key_setting=KEY_SETTING,
                retry_after_s=retry_after(exc.headers),
            ) from exc
        except timeouts as exc:
            raise ProviderError(f"elevenlabs did not answer {what} in time", transient=True) from exc
        except transport as exc:
            raise ProviderError(f"elevenlabs could not be reached for {what}: {exc}", transient=True) from exc

    def clone(self, recording: Path, name: str = "lookalike-sample") -> str:
        """The voice id of an instant clone of `recording` (cloned once per distinct file content)."""
        p = Path(recording)
        if not p.is_file() or p.stat().st_size == 0:
            raise InputError(
                f"voice sample to clone not found or empty: {p}", hint="pass the sample's speech as audio"
            )
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        with self._lock:
            if digest in self._clones:
                return self._clones[digest]
        client = self.get()

        def add() -> Any:
            with open(p, "rb") as f:
                return client.voices.ivc.create(name=f"{name}-{digest[:8]}", files=[(p.name, f.read())])

        voice_id = self.call("cloning the voice", add).voice_id
        with self._lock:
            self._clones[digest] = voice_id
        return voice_id


class ElevenLabsVoice:
    name = "elevenlabs"
    models = ("eleven_multilingual_v2", "eleven_turbo_v2_5", "eleven_flash_v2_5")

    def __init__(self, client: ElevenLabsClient, *, price_per_char: float = PRICES["voice"]) -> None:
        self.client, self.price = client, price_per_char

    def clone(self, recording: Path) -> str:
        return self.client.clone(recording)

    def speak(self, request: VoiceRequest) -> AudioResult:
        from elevenlabs import VoiceSettings

        text = check_line(request)
        sdk = self.client.get()
        voice = request.voice or (
            self.client.clone(request.clone_from) if request.clone_from else DEFAULT_VOICE
        )
        stability, style = _VOICE_EMOTION[request.emotion]
        settings = VoiceSettings(
            stability=stability,
            style=style,
            similarity_boost=0.75,
            speed=float(np.clip(request.pace, 0.7, 1.2)),
        )
        model = request.model if request.model in self.models else self.models[0]
        samples = self.client.call(
            "text-to-speech",
            lambda: pcm16(
                sdk.text_to_speech.convert(
                    voice,
                    text=text,
                    model_id=model,
                    output_format="pcm_44100",
                    voice_settings=settings,
                    seed=int(request.seed) % 4294967295,
                ),
                self.name,
                "text-to-speech",
            ),
        )
        record = CallRecord(
            self.name,
            "voice",
            model=model,
            cost_usd=len(text) * self.price,
            cost_estimated=True,
            units=len(text),
            unit="characters",
            task_id=voice,
        )
        return AudioResult(samples, RATE, record)


def _sections(request: MusicRequest) -> list[tuple[float, float]]:
    """(start, end) seconds of each music section, short ones merged into their neighbour."""
    bounds = (
        [0.0]
        + sorted(s for s in request.section_starts_s if 0 < s < request.duration_s)
        + [request.duration_s]
    )
    out: list[list[float]] = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if out and (b - a) * 1000 < MIN_SECTION_MS:
            out[-1][1] = b
        else:
            out.append([a, b])
    if len(out) > 1 and (out[0][1] - out[0][0]) * 1000 < MIN_SECTION_MS:
        out[1][0] = out[0][0]
        out.pop(0)
    return [(a, b) for a, b in out]


def style_prompt(request: MusicRequest) -> str:
    """The global style: the plan's prompt (coordinator.planner.music_prompt: genre, mood, instruments,
    tempo, key and structure from the sample's descriptors) and "instrumental", with the tempo and
    key added where the prompt does not name them."""
    tempo = f"{request.tempo_bpm:.0f} BPM" if request.tempo_bpm else "moderate tempo"
    key = f" in {request.key}" if request.key else ""
    tail = "instrumental" if "BPM" in request.prompt else f"instrumental, {tempo}{key}"
    return ", ".join(p for p in (request.prompt, tail) if p)


def master(stereo: np.ndarray, rate: int, target_lufs: float) -> np.ndarray:
    """Gain to `target_lufs` integrated, then down until the true peak is at or under -1 dBTP."""
    x = stereo.astype(np.float64)
    if x.shape[-1] >= int(0.4 * rate) and np.abs(x).max() > 0:
        lufs = pyloudnorm.Meter(rate).integrated_loudness(x.T)
        if np.isfinite(lufs):
            x *= 10 ** ((target_lufs - lufs) / 20)
    for _ in range(4):
        tp = music.true_peak_db(x)
        if tp <= music.TRUE_PEAK_CEILING_DB:
            break
        x *= 10 ** ((music.TRUE_PEAK_CEILING_DB - 0.1 - tp) / 20)
    return x.astype(np.float32)


class ElevenLabsMusic:
    name = "elevenlabs"
    models = ("music_v1",)

    def __init__(self, client: ElevenLabsClient, *, price_per_s: float = PRICES["music"]) -> None:
        self.client, self.price = client, price_per_s

    def compose(self, request: MusicRequest) -> AudioResult:
        from elevenlabs.types import MusicPrompt, SongSection

        if not 3.0 <= request.duration_s <= 300.0:
            raise ProviderError(
                f"elevenlabs music takes 3 s to 300 s, not {request.duration_s:.1f} s",
                transient=False,
                hint="use the local music provider for this length",
            )
        sdk = self.client.get()
        sections = _sections(request)
        style = style_prompt(request)
        kwargs: dict[str, Any] = {
            "output_format": "pcm_44100",
            "model_id": self.models[0],
            "seed": request.seed,
        }
        if len(sections) > 1:
            kwargs["composition_plan"] = MusicPrompt(
                positive_global_styles=[style],
                negative_global_styles=["vocals"],
                sections=[
                    SongSection(
                        section_name=f"section {i + 1}",
                        positive_local_styles=[],
                        negative_local_styles=[],
                        duration_ms=int(round((b - a) * 1000)),
                        lines=[],
                    )
                    for i, (a, b) in enumerate(sections)
                ],
            )
            kwargs["respect_sections_durations"] = True
        else:
            kwargs["prompt"] = style
            kwargs["music_length_ms"] = int(round(request.duration_s * 1000))
            kwargs["force_instrumental"] = True
        mono = self.client.call(
            "composing music", lambda: pcm16(sdk.music.compose(**kwargs), self.name, "music")
        )
        # Never longer than asked; a shorter piece is left as it is (no trailing silence), and the
        # timeline's conform (providers.music_track) loops it to length on the beat.
        mono = mono[: int(round(request.duration_s * RATE))]
        stereo = master(np.vstack([mono, mono]), RATE, request.target_lufs)
        record = CallRecord(
            self.name,
            "music",
            model=self.models[0],
            cost_usd=request.duration_s * self.price,
            cost_estimated=True,
            units=request.duration_s,
            unit="seconds",
        )
        return AudioResult(stereo, RATE, record)


_SFX_PROMPTS = {
    "whoosh": "a fast cinematic whoosh, air swoosh passing by",
    "hit": "a deep cinematic impact hit, boom",
    "riser": "a tension riser building up, cinematic",
    "click": "a short sharp bright click, crisp snap",
}


class ElevenLabsSfx:
    name = "elevenlabs"
    models = ("eleven_text_to_sound_v2",)

    def __init__(self, client: ElevenLabsClient, *, price_per_s: float = PRICES["sfx"]) -> None:
        self.client, self.price = client, price_per_s

    def effect(self, request: SfxRequest) -> AudioResult:
        sdk = self.client.get()
        seconds = float(np.clip(request.duration_s or _SFX_LENGTH_S.get(request.kind, 1.0), 0.5, 30.0))
        text = request.prompt or _SFX_PROMPTS.get(request.kind, request.kind)
        samples = self.client.call(
            "generating a sound effect",
            lambda: pcm16(
                sdk.text_to_sound_effects.convert(
                    text=text,
                    output_format="pcm_44100",
                    duration_seconds=seconds,
                    prompt_influence=0.5,
                    model_id=self.models[0],
                ),
                self.name,
                "a sound effect",
            ),
        )
        record = CallRecord(
            self.name,
            "sfx",
            model=self.models[0],
            cost_usd=seconds * self.price,
            cost_estimated=True,
            units=seconds,
            unit="seconds",
        )
        return AudioResult(samples, RATE, record)
