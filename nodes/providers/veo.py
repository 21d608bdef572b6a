"""Google Veo through the official `google-genai` SDK: client.models.generate_videos starts a
long-running operation, client.operations.get polls it, and the finished video arrives inline
(bytesBase64Encoded) or at a URI that is downloaded.

The SDK (3.x) serves Veo through the Vertex AI surface: an API key uses Vertex express mode
(LOOKALIKE_VEO_API_KEY), or a Google Cloud project and location with application-default
credentials (LOOKALIKE_VEO_PROJECT, LOOKALIKE_VEO_LOCATION). Veo reports no cost, so the record
carries an estimate from a per-second price table (`cost_estimated=True`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from lookalike.errors import ProviderError

from .base import CallRecord, VideoRequest, VideoResult, http_errors, missing_key, status_error
from .conform import check_clip
from .download import fetch
from .middleware import poll

KEY_SETTING = "LOOKALIKE_VEO_API_KEY"
# model -> allowed durations (s); list prices in USD per generated second (estimates, video only)
MODELS: dict[str, tuple[int, ...]] = {
    "veo-3.0-fast-generate-001": (4, 6, 8),
    "veo-3.0-generate-001": (4, 6, 8),
    "veo-3.1-generate-001": (4, 6, 8),
    "veo-2.0-generate-001": (5, 6, 7, 8),
}
USD_PER_SECOND: dict[str, float] = {
    "veo-3.0-fast-generate-001": 0.10,
    "veo-3.0-generate-001": 0.20,
    "veo-3.1-generate-001": 0.20,
    "veo-2.0-generate-001": 0.50,
}
# google.rpc.Code values that a new attempt may get past
_TRANSIENT_RPC = {
    4: "DEADLINE_EXCEEDED",
    8: "RESOURCE_EXHAUSTED",
    10: "ABORTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
}


class VeoVideo:
    name = "veo"
    models = tuple(MODELS)

    def __init__(
        self,
        api_key: str | None = None,
        *,
        project: str | None = None,
        location: str | None = None,
        base_url: str | None = None,
        http_timeout_s: float = 120.0,
        poll_s: float = 10.0,
        prices: Mapping[str, float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_key, self.project, self.location, self.base_url = api_key, project, location, base_url
        self.http_timeout_s, self.poll_s = http_timeout_s, poll_s
        self.prices = dict(USD_PER_SECOND if prices is None else prices)
        self.sleep, self.clock = sleep, clock
        self._client: Any = None

    def client(self) -> Any:
        if not self.api_key and not self.project:
            raise missing_key(self.name, KEY_SETTING + " (or LOOKALIKE_VEO_PROJECT with Google credentials)")
        if self._client is None:
            try:
                from google import genai
                from google.genai import types
            except ImportError as exc:
                raise ProviderError(
                    "the veo provider needs the google-genai package",
                    transient=False,
                    hint="pip install 'lookalike[providers]'",
                ) from exc
            http = types.HttpOptions(
                base_url=self.base_url,
                timeout=int(self.http_timeout_s * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),  # the Retry middleware owns backoff
            )
            if self.api_key:
                self._client = genai.Client(vertexai=True, api_key=self.api_key, http_options=http)
            else:
                self._client = genai.Client(
                    vertexai=True,
                    project=self.project,
                    location=self.location or "us-central1",
                    http_options=http,
                )
        return self._client

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from google.genai import errors

        timeouts, transport = http_errors()
        try:
            return fn()
        except errors.APIError as exc:
            raise status_error(
                self.name,
                int(exc.code or 500),
                f"{what}: {exc.message or exc.status}",
                key_setting=KEY_SETTING,
            ) from exc
        except timeouts as exc:
            raise ProviderError(f"veo did not answer {what} in time", transient=True) from exc
        except transport as exc:
            raise ProviderError(f"veo could not be reached for {what}: {exc}", transient=True) from exc

    def generate(self, request: VideoRequest) -> VideoResult:
        from google.genai import types

        model = request.model if request.model in MODELS else self.models[0]
        client = self.client()
        durations = MODELS[model]
        seconds = next((d for d in durations if d >= request.duration_s - 1e-6), max(durations))
        image = (
            types.Image(image_bytes=request.image_png, mime_type="image/png") if request.image_png else None
        )
        source = types.GenerateVideosSource(prompt=request.full_prompt or None, image=image)
        config = types.GenerateVideosConfig(
            number_of_videos=1,
            duration_seconds=seconds,
            aspect_ratio="9:16" if request.height > request.width else "16:9",
            resolution="1080p" if min(request.width, request.height) > 720 else "720p",
            seed=int(request.seed) % 4294967295,
        )
        op = self._call(
            "starting the generation",
            lambda: client.models.generate_videos(model=model, source=source, config=config),
        )
        op = poll(
            lambda: self._call("polling the operation", lambda: client.operations.get(op)),
            lambda o: bool(o.done),
            what=f"veo operation {op.name}",
            interval_s=self.poll_s,
            deadline=request.deadline,
            clock=self.clock,
            sleep=self.sleep,
        )
        if op.error:
            code = int(op.error.get("code", 0) or 0)
            raise ProviderError(
                f"veo operation {op.name} failed: {op.error.get('message', '')} (code {code})",
                transient=code in _TRANSIENT_RPC,
                hint=None
                if code in _TRANSIENT_RPC
                else "change the prompt or image, or pick another provider",
            )
        videos = (op.result.generated_videos if op.result else None) or []
        if not videos or videos[0].video is None:
            filtered = op.result.rai_media_filtered_reasons if op.result else None
            raise ProviderError(
                f"veo returned no video{': filtered (' + '; '.join(filtered) + ')' if filtered else ''}",
                transient=False,
                hint="reword the scene prompt (plan edit) or pick another provider",
            )
        video = videos[0].video
        task_id = op.name.rsplit("/", 1)[-1]
        dest = request.out_dir / f"veo-{task_id}.mp4"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if video.video_bytes:
            dest.write_bytes(video.video_bytes)
        elif video.uri and video.uri.startswith(("http://", "https://")):
            fetch(video.uri, dest, provider=self.name, timeout_s=self.http_timeout_s)
        else:
            raise ProviderError(
                f"veo stored the video at {video.uri!r}, which this provider does not fetch",
                transient=False,
                hint="do not set an output storage URI: the video then comes back inline",
            )
        check_clip(dest, self.name)
        price = self.prices.get(model, 0.0)
        record = CallRecord(
            self.name,
            "video",
            model=model,
            cost_usd=price * seconds,
            cost_estimated=True,
            units=seconds,
            unit="seconds",
            task_id=task_id,
        )
        return VideoResult(dest, record)
