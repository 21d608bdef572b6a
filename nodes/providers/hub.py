"""Choosing providers: per scene by the plan's `provider`/`model`, falling back in a configured order,
scenes generated in parallel within each provider's rate limit, clips conformed to the plan.

    hub = Providers.from_settings(ProviderSettings.from_env())
    frames = hub.scene_frames(scene, start, end, width=1280, height=720, fps=24, subject_rgba=s, seed=7)

The local compositor renders any frame range directly. Any other provider's clip is generated once
per (scene, size, fps, seed, reference image) and kept on disk under `cache_dir`, so the chunks of
one scene rendered on this node share one paid generation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.errors import ConfigError, InputError, ProviderError
from lookalike.obs import get_logger

from .base import (
    AudioResult,
    CallRecord,
    MusicRequest,
    SfxRequest,
    VideoRequest,
    VoiceRequest,
)
from .conform import ConformedClip
from .middleware import PROVIDER_FALLBACKS, Guarded, Metered, RateLimit, Retry, TimeLimit

log = get_logger("providers")
LOCAL = "local"


@dataclass(frozen=True)
class ProviderSettings:
    """Provider keys, endpoints and limits; `from_env` reads LOOKALIKE_* once at start-up."""

    runway_api_key: str | None = None
    runway_base_url: str | None = None
    veo_api_key: str | None = None
    veo_project: str | None = None
    veo_location: str | None = None
    veo_base_url: str | None = None
    elevenlabs_api_key: str | None = None
    elevenlabs_base_url: str | None = None
    voice_provider: str = LOCAL  # local | elevenlabs
    music_provider: str = LOCAL
    sfx_provider: str = LOCAL
    fallback: tuple[str, ...] = (LOCAL,)  # tried in order after the plan's provider fails
    max_attempts: int = 4
    backoff_s: float = 2.0
    max_backoff_s: float = 60.0
    timeout_s: float = 900.0  # one generation, polling included
    http_timeout_s: float = 120.0
    poll_s: float = 5.0
    requests_per_minute: float = 20.0
    concurrency: int = 4  # per provider
    parallel_scenes: int = 4
    style_prompt: str = ""
    cache_dir: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProviderSettings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"LOOKALIKE_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            if f.name == "fallback" or f.name == "provider_fallback":
                continue
            current = getattr(cls(), f.name)
            if isinstance(current, bool):
                values[f.name] = raw.lower() in ("1", "true", "yes")
            elif isinstance(current, int):
                values[f.name] = int(raw)
            elif isinstance(current, float):
                values[f.name] = float(raw)
            elif f.name == "cache_dir":
                values[f.name] = Path(raw)
            else:
                values[f.name] = raw
        order = env.get("LOOKALIKE_PROVIDER_FALLBACK")
        if order is not None:
            values["fallback"] = tuple(p.strip() for p in order.split(",") if p.strip())
        return cls(**values)


@dataclass(frozen=True)
class SceneClip:
    """A scene's generated footage: `frames(start, end)` gives the conformed frames."""

    scene_index: int
    provider: str
    record: CallRecord
    clip: ConformedClip | None = field(default=None, repr=False)  # None: the local compositor
    _local: Callable[[int, int], Iterator[np.ndarray]] | None = field(default=None, repr=False)

    def frames(self, start: int, end: int) -> Iterator[np.ndarray]:
        if self.clip is not None:
            return self.clip.frames(start, end)
        assert self._local is not None
        return self._local(start, end)


def _png(rgba: np.ndarray | None) -> bytes | None:
    if rgba is None:
        return None
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgba, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _file_digest(path: Path | None) -> str:
    return "" if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _key(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


class Providers:
    """Every configured provider of every medium, guarded by the middleware, and the choice between them."""

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        video: Mapping[str, Any] | None = None,
        voice: Mapping[str, Any] | None = None,
        music: Mapping[str, Any] | None = None,
        sfx: Mapping[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.sleep, self.clock = sleep, clock
        self.cache_dir = Path(settings.cache_dir or tempfile.mkdtemp(prefix="lookalike-providers-"))
        self.video = {n: self._guard(p, "video") for n, p in (video or {}).items()}
        self.voice = {n: self._guard(p, "voice") for n, p in (voice or {}).items()}
        self.music = {n: self._guard(p, "music") for n, p in (music or {}).items()}
        self.sfx = {n: self._guard(p, "sfx") for n, p in (sfx or {}).items()}
        self._clips: dict[str, SceneClip] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def _guard(self, provider: Any, kind: str) -> Guarded:
        s = self.settings
        mws: list[Any] = [Metered(), Retry(s.max_attempts, s.backoff_s, s.max_backoff_s, sleep=self.sleep)]
        if provider.name != LOCAL:
            mws.append(
                RateLimit(
                    s.requests_per_minute,
                    burst=s.concurrency,
                    concurrency=s.concurrency,
                    clock=self.clock,
                    sleep=self.sleep,
                )
            )
        mws.append(TimeLimit(s.timeout_s, clock=self.clock))
        return Guarded(provider, kind, mws)

    @classmethod
    def from_settings(
        cls,
        settings: ProviderSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Providers:
        """The local providers always; Runway, Veo and ElevenLabs always too, each failing with an error
        that names its key setting when it is chosen without one."""
        from .elevenlabs import ElevenLabsClient, ElevenLabsMusic, ElevenLabsSfx, ElevenLabsVoice
        from .local import EspeakVoice, LocalMusic, LocalSfx, LocalVideo
        from .runway import RunwayVideo
        from .veo import VeoVideo

        s = settings
        timing = {"http_timeout_s": s.http_timeout_s, "poll_s": s.poll_s, "sleep": sleep, "clock": clock}
        eleven = ElevenLabsClient(
            s.elevenlabs_api_key, base_url=s.elevenlabs_base_url, http_timeout_s=s.http_timeout_s
        )
        return cls(
            s,
            video={
                LOCAL: LocalVideo(),
                "runway": RunwayVideo(s.runway_api_key, base_url=s.runway_base_url, **timing),
                "veo": VeoVideo(
                    s.veo_api_key,
                    project=s.veo_project,
                    location=s.veo_location,
                    base_url=s.veo_base_url,
                    **timing,
                ),
            },
            voice={LOCAL: EspeakVoice(), "elevenlabs": ElevenLabsVoice(eleven)},
            music={LOCAL: LocalMusic(), "elevenlabs": ElevenLabsMusic(eleven)},
            sfx={LOCAL: LocalSfx(), "elevenlabs": ElevenLabsSfx(eleven)},
            sleep=sleep,
            clock=clock,
        )

    # -- choice ---------------------------------------------------------------------------------
    def order(self, kind: str, chosen: str | None) -> list[str]:
        """Providers to try for `kind`, in order: the chosen one, then the fallback order."""
        table = getattr(self, kind)
        first = chosen or LOCAL
        if first not in table:
            raise InputError(
                f"unknown {kind} provider {first!r}", hint=f"use one of {', '.join(sorted(table))}"
            )
        names = [first] + [n for n in self.settings.fallback if n != first]
        unknown = [n for n in names if n not in table]
        if unknown:
            raise ConfigError(
                f"LOOKALIKE_PROVIDER_FALLBACK names unknown providers {unknown}",
                hint=f"list some of {', '.join(sorted(table))}",
            )
        return list(dict.fromkeys(names))

    def run(self, kind: str, chosen: str | None, make: Callable[[Any], Any]) -> Any:
        """`make(provider)` on the chosen provider, then on each fallback after a ProviderError (the
        middleware already retried transient ones). The result's record names the providers that failed."""
        names = self.order(kind, chosen)
        table = getattr(self, kind)
        failed: list[str] = []
        errors: list[ProviderError] = []
        for name in names:
            try:
                result = make(table[name])
            except ProviderError as exc:
                log.warning(
                    "provider_failed", kind=kind, provider=name, error=str(exc), transient=exc.transient
                )
                failed.append(name)
                errors.append(exc)
                PROVIDER_FALLBACKS.labels(name, kind).inc()
                continue
            if failed:
                result = dataclasses.replace(
                    result, record=dataclasses.replace(result.record, fallback_from=tuple(failed))
                )
            return result
        if len(errors) == 1:
            raise errors[0]
        last = errors[-1]
        raise ProviderError(
            "every "
            + kind
            + " provider failed: "
            + "; ".join(f"{n}: {e}" for n, e in zip(failed, errors, strict=True)),
            transient=any(e.transient for e in errors),
            hint=last.hint,
        ) from last

    # -- video ----------------------------------------------------------------------------------
    def scene_clip(
        self,
        scene: Mapping[str, Any],
        *,
        width: int,
        height: int,
        fps: float,
        subject_rgba: np.ndarray | None,
        seed: int,
        source_video: Path | None = None,
    ) -> SceneClip:
        """The scene's footage from its provider (or a fallback), generated once and cached.
        `source_video`: the sample scene's footage, for video-to-video models."""
        provider = scene.get("provider") or LOCAL
        model = scene.get("model") or ""
        png = _png(subject_rgba)
        key = _key(dict(scene), width, height, float(fps), seed, png or b"", self.settings.style_prompt,
                   _file_digest(source_video))
        with self._lock:
            if key in self._clips:
                return self._clips[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # two chunks of one scene on two threads generate it once
            with self._lock:
                if key in self._clips:
                    return self._clips[key]
            start, end = int(scene["start_frame"]), int(scene["end_frame"])
            request = VideoRequest(
                scene=scene,
                prompt=str(scene.get("prompt") or ""),
                n_frames=end - start,
                fps=float(fps),
                width=int(width),
                height=int(height),
                seed=int(seed),
                out_dir=self.cache_dir / "clips" / key,
                model=model,
                image_png=png,
                style_prompt=self.settings.style_prompt,
                timeout_s=self.settings.timeout_s,
                source_video=source_video,
            )

            def make(p: Any) -> SceneClip:
                if p.name == LOCAL:
                    local = p.inner
                    rec = CallRecord(LOCAL, "video", model=local.models[0], units=end - start, unit="frames")
                    return SceneClip(
                        int(scene.get("index", 0)),
                        LOCAL,
                        rec,
                        _local=lambda a, b: local.frames(request, a, b, subject_rgba),
                    )
                result = p.generate(dataclasses.replace(request, model=model if p.name == provider else ""))
                clip = ConformedClip(result.path, scene, width, height, provider=p.name)
                return SceneClip(int(scene.get("index", 0)), p.name, result.record, clip)

            clip = self.run("video", provider, make)
            log.info("scene_generated", scene=scene.get("index"), **clip.record.to_dict())
            with self._lock:
                self._clips[key] = clip
            return clip

    def scene_frames(
        self,
        scene: Mapping[str, Any],
        start: int,
        end: int,
        *,
        width: int,
        height: int,
        fps: float,
        subject_rgba: np.ndarray | None,
        seed: int,
    ) -> Iterator[np.ndarray]:
        """rgb24 HxWx3 uint8 frames for ABSOLUTE indices [start, end) of `scene`, from its provider."""
        s0, s1 = int(scene["start_frame"]), int(scene["end_frame"])
        if not s0 <= start < end <= s1:
            raise InputError(
                f"frame range [{start}, {end}) is not inside scene {scene.get('index')} [{s0}, {s1})",
                hint="ask for a non-empty range within the scene's start_frame and end_frame",
            )
        clip = self.scene_clip(
            scene, width=width, height=height, fps=fps, subject_rgba=subject_rgba, seed=seed
        )
        return clip.frames(start, end)

    def generate_scenes(
        self,
        scenes: Sequence[Mapping[str, Any]],
        *,
        width: int,
        height: int,
        fps: float,
        subject_rgba: np.ndarray | None,
        seeds: Sequence[int] | None = None,
    ) -> list[SceneClip]:
        """Every scene's footage, `parallel_scenes` at a time (each provider's RateLimit still holds).
        Raises the first scene's error after all have finished."""
        seeds = [int(s.get("seed", 0)) for s in scenes] if seeds is None else list(seeds)
        with ThreadPoolExecutor(max_workers=max(1, self.settings.parallel_scenes)) as pool:
            futures = [
                pool.submit(
                    self.scene_clip,
                    s,
                    width=width,
                    height=height,
                    fps=fps,
                    subject_rgba=subject_rgba,
                    seed=seed,
                )
                for s, seed in zip(scenes, seeds, strict=True)
            ]
            errors = [f.exception() for f in futures]
        for err in errors:
            if err is not None:
                raise err
        return [f.result() for f in futures]

    # -- audio ----------------------------------------------------------------------------------
    def speak(self, request: VoiceRequest, provider: str | None = None) -> AudioResult:
        return self.run("voice", provider or self.settings.voice_provider, lambda p: p.speak(request))

    def compose(self, request: MusicRequest, provider: str | None = None) -> AudioResult:
        return self.run("music", provider or self.settings.music_provider, lambda p: p.compose(request))

    def effect(self, request: SfxRequest, provider: str | None = None) -> AudioResult:
        return self.run("sfx", provider or self.settings.sfx_provider, lambda p: p.effect(request))


_HUBS: dict[ProviderSettings, Providers] = {}
_HUBS_LOCK = threading.Lock()


def hub_for(settings: ProviderSettings) -> Providers:
    """One Providers per settings in this process (its clip cache and rate limits are shared)."""
    with _HUBS_LOCK:
        if settings not in _HUBS:
            _HUBS[settings] = Providers.from_settings(settings)
        return _HUBS[settings]


def generate_scene(
    scene: Mapping[str, Any],
    start: int,
    end: int,
    width: int,
    height: int,
    fps: float,
    subject_rgba: np.ndarray | None,
    seed: int,
    settings: ProviderSettings | None = None,
) -> Iterator[np.ndarray]:
    """Frames [start, end) of a plan scene from the provider the plan names (fallbacks configured in
    `settings`; default: the offline settings, where only `local` works)."""
    hub = hub_for(settings or ProviderSettings())
    return hub.scene_frames(
        scene, start, end, width=width, height=height, fps=fps, subject_rgba=subject_rgba, seed=seed
    )
