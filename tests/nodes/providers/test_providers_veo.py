"""The veo provider through the real `google-genai` SDK against a fake of the Vertex AI Veo API:
POST .../models/{model}:predictLongRunning -> {"name"}, POST .../{model}:fetchPredictOperation ->
{"done", "response": {"videos": [{"bytesBase64Encoded"}]}} or {"error"}, plus 429 and 401."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from lookalike.nodes.providers import Guarded, Retry, VideoRequest
from lookalike.nodes.providers.veo import VeoVideo
from provider_fakes import FakeAPI, reply_json

from lookalike.errors import ProviderError

MODEL = "veo-3.0-fast-generate-001"
OP = f"publishers/google/models/{MODEL}/operations/op-9"


def request(tmp_path: Path, **kw) -> VideoRequest:
    base = dict(
        scene={"index": 0, "start_frame": 0, "end_frame": 120},
        prompt="a fox",
        n_frames=120,
        fps=24.0,
        width=1080,
        height=1920,
        seed=11,
        out_dir=tmp_path,
        image_png=b"PNGDATA",
    )
    return VideoRequest(**{**base, **kw})


def veo_api(api: FakeAPI, final: dict, polls_before_done: int = 1) -> None:
    left = {"n": polls_before_done}
    api.route("POST", r":predictLongRunning$", lambda r: reply_json({"name": OP}))

    def fetch(r):
        if left["n"] > 0:
            left["n"] -= 1
            return reply_json({"name": OP, "done": False})
        return reply_json({"name": OP, "done": True, **final})

    api.route("POST", r":fetchPredictOperation$", fetch)


def provider(api: FakeAPI, sleeps: list[float]) -> VeoVideo:
    return VeoVideo("veo-key", base_url=api.url, poll_s=10.0, sleep=sleeps.append)


def test_generate_videos_operation_polled_and_saved(api: FakeAPI, clip_bytes: bytes, tmp_path: Path) -> None:
    veo_api(
        api,
        {
            "response": {
                "videos": [
                    {"bytesBase64Encoded": base64.b64encode(clip_bytes).decode(), "mimeType": "video/mp4"}
                ]
            }
        },
    )
    sleeps: list[float] = []
    result = provider(api, sleeps).generate(request(tmp_path))
    assert result.path.read_bytes() == clip_bytes
    assert result.record.model == MODEL and result.record.task_id == "op-9"
    assert result.record.units == 6 and result.record.cost_estimated  # 5 s asked for -> Veo 3's 6 s
    start = api.requests[0]
    assert start.path.endswith(f"/publishers/google/models/{MODEL}:predictLongRunning")
    assert start.headers["x-goog-api-key"] == "veo-key"
    body = start.json()
    assert body["instances"][0]["prompt"] == "a fox"
    assert base64.b64decode(body["instances"][0]["image"]["bytesBase64Encoded"]) == b"PNGDATA"
    params = body["parameters"]
    assert params["aspectRatio"] == "9:16" and params["durationSeconds"] == 6 and params["seed"] == 11
    assert params["resolution"] == "1080p" and params["sampleCount"] == 1
    assert api.requests[1].json() == {"operationName": OP}
    assert sleeps == [10.0]


def test_operation_error_transient_or_permanent(api: FakeAPI, tmp_path: Path) -> None:
    veo_api(api, {"error": {"code": 3, "message": "image violates usage guidelines"}}, polls_before_done=0)
    with pytest.raises(ProviderError, match="usage guidelines") as e:
        provider(api, []).generate(request(tmp_path))
    assert not e.value.transient
    api.routes.clear()
    veo_api(api, {"error": {"code": 8, "message": "quota exhausted"}}, polls_before_done=0)
    with pytest.raises(ProviderError, match="quota") as e:
        provider(api, []).generate(request(tmp_path))
    assert e.value.transient


def test_filtered_result_is_permanent(api: FakeAPI, tmp_path: Path) -> None:
    veo_api(api, {"response": {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["celebrity"]}}, 0)
    with pytest.raises(ProviderError, match="filtered .celebrity") as e:
        provider(api, []).generate(request(tmp_path))
    assert not e.value.transient


def test_429_retried_then_succeeds(api: FakeAPI, clip_bytes: bytes, tmp_path: Path) -> None:
    veo_api(api, {"response": {"videos": [{"bytesBase64Encoded": base64.b64encode(clip_bytes).decode()}]}}, 0)
    calls = {"n": 0}
    pattern, ok = api.routes[0][1], api.routes[0][2]

    def limited(r):
        calls["n"] += 1
        if calls["n"] == 1:
            return reply_json(
                {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}, 429
            )
        return ok(r)

    api.routes[0] = ("POST", pattern, limited)
    sleeps: list[float] = []
    result = Guarded(
        provider(api, sleeps), "video", [Retry(3, base_s=2.0, sleep=sleeps.append, seed=1)]
    ).generate(request(tmp_path))
    assert result.record.attempts == 2 and 1.0 <= sleeps[0] <= 2.0


def test_401_names_the_setting(api: FakeAPI, tmp_path: Path) -> None:
    api.route(
        "POST",
        r":predictLongRunning$",
        lambda r: reply_json(
            {"error": {"code": 401, "message": "API key not valid", "status": "UNAUTHENTICATED"}}, 401
        ),
    )
    with pytest.raises(ProviderError, match="API key not valid") as e:
        provider(api, []).generate(request(tmp_path))
    assert not e.value.transient and "LOOKALIKE_VEO_API_KEY" in str(e.value)


def test_missing_key(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="LOOKALIKE_VEO_API_KEY"):
        VeoVideo().generate(request(tmp_path))


def test_timeout_is_transient(api: FakeAPI, tmp_path: Path) -> None:
    api.route("POST", r":predictLongRunning$", api.hang)
    with pytest.raises(ProviderError, match="in time") as e:
        VeoVideo("k", base_url=api.url, http_timeout_s=0.3).generate(request(tmp_path))
    assert e.value.transient
