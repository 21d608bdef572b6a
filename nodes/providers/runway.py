"""Runway image-to-video and video-to-video through the official `runwayml` SDK (POST
/v1/image_to_video or /v1/video_to_video, then GET /v1/tasks/{id} until SUCCEEDED, then the output URL
downloaded).

Image-to-video: the reference image (the user's subject, the same for every scene) goes as a base64
data URI; the ratio is the supported one nearest the plan's aspect, the duration the shortest the
model offers that covers the scene (the clip is retimed to the exact frame count afterwards).
Video-to-video (Aleph): the sample scene's own footage is restyled by the prompt, keeping its camera
moves and timing; it goes as a data URI up to Runway's 5 MB limit, and through an ephemeral upload
(POST /v1/uploads, then the form post to the returned URL) above it. Cost is Runway's own figure:
`cost.credits` of the finished task at $0.01 a credit.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from lookalike.errors import ProviderError

from .base import CallRecord, VideoRequest, VideoResult, missing_key, retry_after, status_error
from .conform import check_clip
from .download import fetch
from .middleware import poll

KEY_SETTING = "LOOKALIKE_RUNWAY_API_KEY"
USD_PER_CREDIT = 0.01
# model -> (ratios, durations in seconds)
MODELS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "gen4_turbo": (("1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"), (5, 10)),
    "gen4.5": (("1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672"), (5, 10)),
    "gen3a_turbo": (("1280:768", "768:1280"), (5, 10)),
}
# Video-to-video models: the output follows the input video's length and aspect.
VIDEO_MODELS = ("aleph2",)
DATA_URI_LIMIT = 5 * 1024 * 1024
_RETRYABLE_FAILURES = ("INTERNAL", "THROTTLED", "TIMEOUT", "ASSET.TIMEOUT")


def nearest_ratio(ratios: tuple[str, ...], width: int, height: int) -> str:
    import math

    aspect = width / height

    def off(r: str) -> float:
        w, h = (int(v) for v in r.split(":"))
        return abs(math.log((w / h) / aspect))

    return min(ratios, key=off)


def pick_duration(durations: tuple[int, ...], seconds: float) -> int:
    return next((d for d in sorted(durations) if d >= seconds - 1e-6), max(durations))


class RunwayVideo:
    name = "runway"
    models = (*MODELS, *VIDEO_MODELS)

    def __init__(
        self,
        api_key: str | None,
        *,
        base_url: str | None = None,
        http_timeout_s: float = 60.0,
        poll_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_key, self.base_url = api_key, base_url
        self.http_timeout_s, self.poll_s = http_timeout_s, poll_s
        self.sleep, self.clock = sleep, clock
        self._client: Any = None

    def client(self) -> Any:
        if not self.api_key:
            raise missing_key(self.name, KEY_SETTING)
        if self._client is None:
            try:
                import runwayml
            except ImportError as exc:
                raise ProviderError(
                    "the runway provider needs the runwayml package",
                    transient=False,
                    hint="pip install 'lookalike[providers]'",
                ) from exc
            # The SDK's own retries are off: the Retry middleware owns backoff, counted in metrics.
            self._client = runwayml.RunwayML(
                api_key=self.api_key, base_url=self.base_url, timeout=self.http_timeout_s, max_retries=0
            )
        return self._client

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        import runwayml

        try:
            return fn()
        except runwayml.APIStatusError as exc:
            raise status_error(
                self.name,
                exc.status_code,
                f"{what}: {exc.message}",
                key_setting=KEY_SETTING,
                retry_after_s=retry_after(exc.response.headers),
            ) from exc
        except runwayml.APITimeoutError as exc:
            raise ProviderError(f"runway did not answer {what} in time", transient=True) from exc
        except runwayml.APIConnectionError as exc:
            raise ProviderError(f"runway could not be reached for {what}: {exc}", transient=True) from exc

    def _video_uri(self, client: Any, path) -> str:
        data = path.read_bytes()
        if len(data) <= DATA_URI_LIMIT:
            return "data:video/mp4;base64," + base64.b64encode(data).decode()
        with open(path, "rb") as fh:
            return self._call("uploading the source video", lambda: client.uploads.create_ephemeral(file=fh)).uri

    def _create(self, client: Any, request: VideoRequest, model: str) -> Any:
        if model in VIDEO_MODELS:
            if request.source_video is None:
                raise ProviderError(
                    f"runway {model} is video-to-video and needs the sample scene's footage",
                    transient=False,
                    hint="render it through a farm (the node cuts the scene from the sample) or pick gen4_turbo",
                )
            body: dict[str, Any] = {"model": model, "video_uri": self._video_uri(client, request.source_video),
                                    "seed": int(request.seed) % 4294967295}
            if request.full_prompt:
                body["prompt_text"] = request.full_prompt[:1000]
            return self._call("creating the task", lambda: client.video_to_video.create(**body))
        if request.image_png is None:
            raise ProviderError(
                "runway image-to-video needs a reference image",
                transient=False,
                hint="pass the subject picture (--subject) or use the veo or local provider",
            )
        ratios, durations = MODELS[model]
        data_uri = "data:image/png;base64," + base64.b64encode(request.image_png).decode()
        body = {
            "model": model,
            "prompt_image": data_uri,
            "ratio": nearest_ratio(ratios, request.width, request.height),
            "duration": pick_duration(durations, request.duration_s),
            "seed": int(request.seed) % 4294967295,
        }
        if request.full_prompt:
            body["prompt_text"] = request.full_prompt[:1000]
        return self._call("creating the task", lambda: client.image_to_video.create(**body))

    def generate(self, request: VideoRequest) -> VideoResult:
        model = request.model if request.model in self.models else self.models[0]
        client = self.client()
        created = self._create(client, request, model)
        task = poll(
            lambda: self._call("polling the task", lambda: client.tasks.retrieve(created.id)),
            lambda t: t.status in ("SUCCEEDED", "FAILED", "CANCELLED"),
            what=f"runway task {created.id}",
            interval_s=self.poll_s,
            deadline=request.deadline,
            clock=self.clock,
            sleep=self.sleep,
        )
        credits = float(getattr(getattr(task, "cost", None), "credits", 0) or 0)
        if task.status != "SUCCEEDED":
            code = getattr(task, "failure_code", None) or ""
            reason = getattr(task, "failure", None) or task.status.lower()
            transient = task.status == "FAILED" and code.upper().startswith(_RETRYABLE_FAILURES)
            raise ProviderError(
                f"runway task {created.id} {task.status.lower()}: {reason}" + (f" [{code}]" if code else ""),
                transient=transient,
                hint=None if transient else "change the prompt or reference image, or pick another provider",
            )
        if not task.output:
            raise ProviderError(f"runway task {created.id} succeeded with no output", transient=True)
        dest = request.out_dir / f"runway-{created.id}.mp4"
        fetch(task.output[0], dest, provider=self.name, timeout_s=self.http_timeout_s)
        check_clip(dest, self.name)
        record = CallRecord(
            self.name,
            "video",
            model=model,
            cost_usd=credits * USD_PER_CREDIT,
            units=credits,
            unit="credits",
            task_id=created.id,
        )
        return VideoResult(dest, record)
