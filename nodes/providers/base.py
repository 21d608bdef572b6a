"""The provider interfaces: one small protocol per medium, the request and result values, and the
in-process fakes that tests pass straight in (like httpx's MockTransport).

    VideoProvider.generate(VideoRequest) -> VideoResult   a downloaded, checked clip on local disk
    VoiceProvider.speak(VoiceRequest)    -> AudioResult   mono speech
    MusicProvider.compose(MusicRequest)  -> AudioResult   a stereo bed
    SfxProvider.effect(SfxRequest)       -> AudioResult   one mono effect

Every provider has `name` (what plan.json's `provider` field says) and `models` (the first is its
default). Errors are `lookalike.errors.ProviderError`: `transient=True` is retried by the Retry
middleware, `transient=False` never is (it moves straight on to the next provider in the fallback
order). SDK and HTTP errors are translated at the boundary with `raise ProviderError(...) from exc`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lookalike.errors import ProviderError

KINDS = ("video", "voice", "music", "sfx")


@dataclass(frozen=True)
class CallRecord:
    """What one provider call cost and how long it took: returned with every result and counted in
    the lookalike_provider_* metrics. `cost_usd` is the provider's own figure where it reports one
    (Runway credits), else an estimate from the configured price table (`cost_estimated`)."""

    provider: str
    kind: str
    model: str = ""
    seconds: float = 0.0
    attempts: int = 1
    cost_usd: float = 0.0
    cost_estimated: bool = False
    units: float = 0.0  # what the provider bills in: credits, characters, seconds
    unit: str = ""
    task_id: str = ""
    fallback_from: tuple[str, ...] = ()  # providers tried before this one, in order

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["fallback_from"] = list(self.fallback_from)
        return d


@dataclass(frozen=True)
class VideoRequest:
    """One scene's footage. `scene` is the plan entry (palette, grade, camera); `image_png` the
    reference picture every scene shares (style consistency), `style_prompt` the shared style text."""

    scene: Mapping[str, Any]
    prompt: str
    n_frames: int
    fps: float
    width: int
    height: int
    seed: int
    out_dir: Path
    model: str = ""
    image_png: bytes | None = None
    style_prompt: str = ""
    timeout_s: float = 900.0
    deadline: float | None = None  # set by TimeLimit: an absolute time on the provider's clock
    source_video: Path | None = None  # the sample scene's own footage, for video-to-video models

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    @property
    def full_prompt(self) -> str:
        return ", ".join(p for p in (self.prompt.strip(), self.style_prompt.strip()) if p)


@dataclass(frozen=True)
class VideoResult:
    path: Path
    record: CallRecord


@dataclass(frozen=True)
class VoiceRequest:
    """One voice line. `pace` multiplies the speaking rate (1.0 normal); `emotion` is one of
    EMOTIONS; `clone_from` a recording of the voice to clone (the sample's speech)."""

    text: str
    out_dir: Path
    voice: str = ""
    emotion: str = "neutral"
    pace: float = 1.0
    seed: int = 0
    model: str = ""
    clone_from: Path | None = None
    language: str = "en"
    timeout_s: float = 120.0
    deadline: float | None = None


EMOTIONS = ("neutral", "calm", "happy", "excited", "sad", "serious", "angry")


@dataclass(frozen=True)
class MusicRequest:
    duration_s: float
    out_dir: Path
    tempo_bpm: float | None = None
    key: str | None = None
    section_starts_s: tuple[float, ...] = ()
    prompt: str = ""
    seed: int = 0
    target_lufs: float = -16.0
    model: str = ""
    timeout_s: float = 600.0
    deadline: float | None = None


SFX_KINDS = ("whoosh", "hit", "riser", "click")


@dataclass(frozen=True)
class SfxRequest:
    kind: str
    out_dir: Path
    duration_s: float = 0.0  # 0: the effect's natural length
    prompt: str = ""
    seed: int = 0
    model: str = ""
    timeout_s: float = 120.0
    deadline: float | None = None


@dataclass(frozen=True)
class AudioResult:
    """float32 samples: shape (n,) for voice and SFX, (2, n) for music; `rate` in Hz. `tempo_bpm`: the
    music's tempo where the provider knows it exactly (local synthesis); None: measure it."""

    samples: np.ndarray = field(repr=False)
    rate: int
    record: CallRecord
    tempo_bpm: float | None = None

    @property
    def duration_s(self) -> float:
        return self.samples.shape[-1] / self.rate


@runtime_checkable
class VideoProvider(Protocol):
    name: str
    models: tuple[str, ...]

    def generate(self, request: VideoRequest) -> VideoResult: ...


@runtime_checkable
class VoiceProvider(Protocol):
    name: str
    models: tuple[str, ...]

    def speak(self, request: VoiceRequest) -> AudioResult: ...


@runtime_checkable
class MusicProvider(Protocol):
    name: str
    models: tuple[str, ...]

    def compose(self, request: MusicRequest) -> AudioResult: ...


@runtime_checkable
class SfxProvider(Protocol):
    name: str
    models: tuple[str, ...]

    def effect(self, request: SfxRequest) -> AudioResult: ...


METHODS = {"video": "generate", "voice": "speak", "music": "compose", "sfx": "effect"}


class MockProvider:
    """A provider of any medium whose work is `handler(request)`: the in-process fake for tests.

    `MockProvider("video", handler, name="flaky")` has `generate`; the handler returns a result or
    raises ProviderError. `calls` lists every request it saw.
    """

    def __init__(
        self,
        kind: str,
        handler: Callable[[Any], Any],
        *,
        name: str = "mock",
        models: tuple[str, ...] = ("mock-1",),
    ) -> None:
        if kind not in METHODS:
            raise ValueError(f"kind must be one of {KINDS}")
        self.kind, self.name, self.models = kind, name, models
        self.handler = handler
        self.calls: list[Any] = []
        setattr(self, METHODS[kind], self._call)

    def _call(self, request: Any) -> Any:
        self.calls.append(request)
        return self.handler(request)


def missing_key(provider: str, setting: str) -> ProviderError:
    """The error for a chosen provider with no API key: permanent, naming the setting."""
    return ProviderError(
        f"provider {provider!r} is chosen but has no API key",
        transient=False,
        hint=f"set {setting}, or list 'local' in LOOKALIKE_PROVIDER_FALLBACK to fall back to the offline provider",
    )


def status_error(
    provider: str, status: int, detail: str, *, key_setting: str = "", retry_after_s: float | None = None
) -> ProviderError:
    """A provider's HTTP status as a ProviderError: 408, 409, 425, 429 and 5xx are transient."""
    detail = (detail or "").strip()[:300]
    if status in (401, 403):
        err = ProviderError(
            f"{provider} refused the API key (HTTP {status}): {detail}",
            transient=False,
            hint=f"check {key_setting}" if key_setting else "check the provider's API key",
        )
    elif status == 429:
        err = ProviderError(
            f"{provider} is rate limiting requests (HTTP 429): {detail}",
            transient=True,
            hint="lower the provider's rate limit setting or wait; the request is retried with backoff",
        )
    elif status in (408, 409, 425) or status >= 500:
        err = ProviderError(f"{provider} failed with HTTP {status}: {detail}", transient=True)
    else:
        err = ProviderError(
            f"{provider} rejected the request (HTTP {status}): {detail}",
            transient=False,
            hint="the request itself is wrong for this provider (model, size or prompt); it is not retried",
        )
    err.retry_after_s = retry_after_s  # type: ignore[attr-defined]
    err.status = status  # type: ignore[attr-defined]
    return err


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form), or None."""
    if not headers:
        return None
    for k, v in headers.items():
        if k.lower() == "retry-after":
            try:
                return max(0.0, float(v))
            except (TypeError, ValueError):
                return None
    return None


def http_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(timeout errors, transport errors) of httpx and of httpx2 (the fork google-genai uses)."""
    timeouts: list[type[BaseException]] = []
    transport: list[type[BaseException]] = []
    for name in ("httpx", "httpx2"):
        try:
            mod = __import__(name)
        except ImportError:
            continue
        timeouts.append(mod.TimeoutException)
        transport.append(mod.TransportError)
    return tuple(timeouts), tuple(transport)
