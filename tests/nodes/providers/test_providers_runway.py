"""The runway provider through the real `runwayml` SDK against a fake of Runway's documented API:
POST /v1/image_to_video -> {"id"}, GET /v1/tasks/{id} -> PENDING/RUNNING/SUCCEEDED|FAILED with
`output` URLs (served by the same fake), 429 with Retry-After, 401, and a server that never answers."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from lookalike.nodes.providers import Guarded, Retry, TimeLimit, VideoRequest
from lookalike.nodes.providers.runway import RunwayVideo, nearest_ratio, pick_duration
from provider_fakes import FakeAPI, reply_json

from lookalike.errors import ProviderError

SCENE = {"index": 2, "start_frame": 0, "end_frame": 48, "grade": {}}


def request(tmp_path: Path, **kw) -> VideoRequest:
    base = dict(
        scene=SCENE,
        prompt="a red fox",
        n_frames=48,
        fps=24.0,
        width=1280,
        height=720,
        seed=7,
        out_dir=tmp_path,
        image_png=b"\x89PNG fake",
        style_prompt="warm film look",
    )
    return VideoRequest(**{**base, **kw})


def runway_api(
    api: FakeAPI, clip: bytes, *, statuses=("PENDING", "RUNNING", "SUCCEEDED"), failure=None
) -> None:
    polls = iter(statuses)

    api.route("POST", r"^/v1/image_to_video$", lambda r: reply_json({"id": "task-1"}))
    api.route("POST", r"^/v1/video_to_video$", lambda r: reply_json({"id": "task-1"}))

    def task(r):
        status = next(polls)
        body = {"id": "task-1", "status": status, "createdAt": "2025-01-01T00:00:00Z"}
        if status in ("PENDING", "RUNNING", "THROTTLED"):
            body["estimatedCost"] = {"credits": 25}
        if status == "RUNNING":
            body["progress"] = 0.5
        if status == "SUCCEEDED":
            body.update(cost={"credits": 25}, output=[f"{api.url}/out/task-1.mp4"])
        if status == "FAILED":
            body.update(cost={"credits": 0}, failure=failure[0], failureCode=failure[1])
        return reply_json(body)

    api.route("GET", r"^/v1/tasks/task-1$", task)
    api.route("GET", r"^/out/task-1.mp4$", lambda r: (200, {"content-type": "video/mp4"}, clip))


def provider(api: FakeAPI, sleeps: list[float], **kw) -> RunwayVideo:
    return RunwayVideo("key-123", base_url=api.url, poll_s=5.0, sleep=sleeps.append, **kw)


def test_image_to_video_task_polled_and_downloaded(api: FakeAPI, clip_bytes: bytes, tmp_path: Path) -> None:
    runway_api(api, clip_bytes)
    sleeps: list[float] = []
    result = provider(api, sleeps).generate(request(tmp_path))
    assert result.path.read_bytes() == clip_bytes
    assert result.record.cost_usd == pytest.approx(0.25) and result.record.units == 25
    assert result.record.task_id == "task-1" and result.record.model == "gen4_turbo"
    create = api.requests[0]
    assert create.headers["authorization"] == "Bearer key-123"
    assert create.headers["x-runway-version"] == "2024-11-06"
    body = create.json()
    assert body["model"] == "gen4_turbo" and body["ratio"] == "1280:720" and body["duration"] == 5
    assert body["seed"] == 7 and body["promptText"] == "a red fox, warm film look"
    assert base64.b64decode(body["promptImage"].split(",", 1)[1]) == b"\x89PNG fake"
    assert [r.path for r in api.requests[1:4]] == ["/v1/tasks/task-1"] * 3
    assert sleeps == [5.0, 7.5]  # two polls not yet done, growing interval


def test_failed_task_is_permanent_unless_runway_says_retry(
    api: FakeAPI, clip_bytes: bytes, tmp_path: Path
) -> None:
    runway_api(api, clip_bytes, statuses=("FAILED",), failure=("The prompt was flagged", "SAFETY.INPUT.TEXT"))
    with pytest.raises(ProviderError, match="flagged") as e:
        provider(api, []).generate(request(tmp_path))
    assert not e.value.transient

    api2 = FakeAPI()
    try:
        runway_api(api2, clip_bytes, statuses=("FAILED",), failure=("internal error", "INTERNAL.BAD_OUTPUT"))
        with pytest.raises(ProviderError) as e2:
            provider(api2, []).generate(request(tmp_path))
        assert e2.value.transient
    finally:
        api2.close()


def test_rate_limit_429_is_retried_after_retry_after(api: FakeAPI, clip_bytes: bytes, tmp_path: Path) -> None:
    runway_api(api, clip_bytes, statuses=("SUCCEEDED",))
    first = {"n": 0}
    original = api.routes[0]

    def limited(r):
        first["n"] += 1
        if first["n"] == 1:
            return reply_json({"error": "Too many requests"}, 429, {"retry-after": "3"})
        return original[2](r)

    api.routes[0] = ("POST", original[1], limited)
    sleeps: list[float] = []
    retry = Retry(3, base_s=1.0, sleep=sleeps.append)
    guarded = Guarded(provider(api, sleeps), "video", [retry])
    result = guarded.generate(request(tmp_path))
    assert result.record.attempts == 2
    assert sleeps[0] == 3.0  # the Retry-After, not the exponential guess
    assert result.path.exists()


def test_bad_key_401_is_permanent_and_names_the_setting(api: FakeAPI, tmp_path: Path) -> None:
    api.route("POST", r"^/v1/image_to_video$", lambda r: reply_json({"error": "Invalid API key"}, 401))
    retry_sleeps: list[float] = []
    guarded = Guarded(provider(api, []), "video", [Retry(4, sleep=retry_sleeps.append)])
    with pytest.raises(ProviderError, match="HTTP 401") as e:
        guarded.generate(request(tmp_path))
    assert not e.value.transient and "LOOKALIKE_RUNWAY_API_KEY" in str(e.value)
    assert retry_sleeps == [] and len(api.requests) == 1


def test_missing_key_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="no API key") as e:
        RunwayVideo(None).generate(request(tmp_path))
    assert "LOOKALIKE_RUNWAY_API_KEY" in str(e.value) and not e.value.transient


def test_unanswered_request_times_out_as_transient(api: FakeAPI, tmp_path: Path) -> None:
    api.route("POST", r"^/v1/image_to_video$", api.hang)
    with pytest.raises(ProviderError, match="in time") as e:
        RunwayVideo("k", base_url=api.url, http_timeout_s=0.3).generate(request(tmp_path))
    assert e.value.transient


def test_task_still_running_at_the_time_limit(api: FakeAPI, clip_bytes: bytes, tmp_path: Path) -> None:
    runway_api(api, clip_bytes, statuses=["RUNNING"] * 50)
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    p = RunwayVideo("k", base_url=api.url, poll_s=5.0, sleep=sleep, clock=lambda: now[0])
    guarded = Guarded(p, "video", [TimeLimit(60.0, clock=lambda: now[0])])
    with pytest.raises(ProviderError, match="time limit") as e:
        guarded.generate(request(tmp_path))
    assert e.value.transient and sum(sleeps) <= 60.0


def test_broken_output_file_is_a_clear_transient_error(api: FakeAPI, tmp_path: Path) -> None:
    runway_api(api, b"this is not an mp4 at all" * 10, statuses=("SUCCEEDED",))
    with pytest.raises(ProviderError, match="not a readable video") as e:
        provider(api, []).generate(request(tmp_path))
    assert e.value.transient


def test_ratio_and_duration_choice() -> None:
    ratios = ("1280:720", "720:1280", "960:960")
    assert nearest_ratio(ratios, 1920, 1080) == "1280:720"
    assert nearest_ratio(ratios, 1080, 1920) == "720:1280"
    assert nearest_ratio(ratios, 1000, 1000) == "960:960"
    assert (
        pick_duration((5, 10), 2.0) == 5
        and pick_duration((5, 10), 7.5) == 10
        and pick_duration((5, 10), 30) == 10
    )


def test_video_to_video_sends_the_scene_footage_as_a_data_uri(api: FakeAPI, clip_bytes: bytes, tmp_path: Path) -> None:
    runway_api(api, clip_bytes)
    source = tmp_path / "scene.mp4"
    source.write_bytes(clip_bytes)
    result = provider(api, []).generate(request(tmp_path, model="aleph2", source_video=source, image_png=None))
    assert result.path.read_bytes() == clip_bytes and result.record.model == "aleph2"
    create = api.requests[0]
    assert create.path == "/v1/video_to_video"
    body = create.json()
    assert body["model"] == "aleph2" and body["promptText"] == "a red fox, warm film look" and body["seed"] == 7
    head, data = body["videoUri"].split(",", 1)
    assert head == "data:video/mp4;base64" and base64.b64decode(data) == clip_bytes


def test_video_to_video_over_the_data_uri_limit_goes_through_an_upload(
    api: FakeAPI, clip_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lookalike.nodes.providers import runway

    monkeypatch.setattr(runway, "DATA_URI_LIMIT", 1000)
    runway_api(api, clip_bytes)
    api.route("POST", r"^/v1/uploads$", lambda r: reply_json(
        {"uploadUrl": f"{api.url}/bucket", "fields": {"key": "u/1"}, "runwayUri": "runway://uploads/1"}))
    api.route("POST", r"^/bucket$", lambda r: (204, {}, b""))
    source = tmp_path / "scene.mp4"
    source.write_bytes(clip_bytes)
    provider(api, []).generate(request(tmp_path, model="aleph2", source_video=source))
    paths = [r.path for r in api.requests]
    assert paths[:3] == ["/v1/uploads", "/bucket", "/v1/video_to_video"]
    assert clip_bytes in api.requests[1].body  # the form post carries the file itself
    assert api.requests[2].json()["videoUri"] == "runway://uploads/1"


def test_video_to_video_without_footage_is_a_permanent_error(api: FakeAPI, tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="needs the sample scene's footage") as info:
        provider(api, []).generate(request(tmp_path, model="aleph2"))
    assert not info.value.transient and not api.requests
