"""Choosing providers per scene, falling back, generating in parallel, conforming clips to the plan,
and the middleware (retry, rate limit, metrics) with in-process MockProviders."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import lookalike.nodes.providers as providers
import numpy as np
import pytest
from lookalike.kernels import grade
from lookalike.nodes import generate
from lookalike.nodes.providers import (
    CallRecord,
    ConformedClip,
    Guarded,
    Metered,
    MockProvider,
    Providers,
    ProviderSettings,
    RateLimit,
    Retry,
    VideoResult,
)
from prometheus_client import REGISTRY
from provider_fakes import clip_index, level, write_clip

from lookalike.errors import ProviderError

SCENE = {
    "index": 1,
    "start_frame": 10,
    "end_frame": 58,
    "provider": "runway",
    "model": "gen4_turbo",
    "seed": 5,
    "palette": [{"rgb": [200, 120, 40], "weight": 1.0}],
    "grade": {},
    "camera": {"motion": "static", "trajectory": [[0.0, 0.0, 1.0, 0.0]]},
}


def test_all_is_complete() -> None:
    public = {n for n in dir(providers) if not n.startswith("_") and n[0].isupper() or n in providers.__all__}
    exported = set(providers.__all__)
    assert {n for n in public if not n.islower() and n not in ("annotations",)} - exported <= set()
    for name in providers.__all__:
        assert hasattr(providers, name)


def clip_provider(src: Path, name: str = "runway") -> MockProvider:
    def handler(req):
        req.out_dir.mkdir(parents=True, exist_ok=True)
        out = req.out_dir / f"{name}.mp4"
        shutil.copy(src, out)
        return VideoResult(out, CallRecord(name, "video", model=req.model, cost_usd=0.5))

    return MockProvider("video", handler, name=name, models=("gen4_turbo",))


def test_conform_size_length_and_grade(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "c.mp4", width=320, height=180, fps=24, n=24)
    scene = {**SCENE, "grade": {"exposure": 1.0}}
    clip = ConformedClip(src, scene, 160, 160, provider="runway")
    frames = list(clip.frames())
    assert len(frames) == 48 and frames[0].shape == (160, 160, 3)
    # retimed: 24 source frames stretched over 48, in order, each shown twice
    plain = ConformedClip(src, SCENE, 160, 160)
    idx = [clip_index(f) for f in plain.frames()]
    assert idx == [k * 24 // 48 for k in range(48)]
    # centre crop of a 16:9 frame to 1:1: the red left third (94 of 284 scaled columns) loses 62
    red = (frames[0][..., 0].astype(int) - frames[0][..., 2] > 100).mean()
    assert red == pytest.approx(32 / 160, abs=0.02)
    # graded toward +1 stop
    assert (
        grade.measure_grade(frames[20])["exposure"]
        > grade.measure_grade(list(plain.frames(30, 31))[0])["exposure"] + 0.5
    )
    # a sub-range is identical to the same frames of the whole
    assert all(np.array_equal(a, b) for a, b in zip(list(clip.frames(40, 45)), frames[30:35], strict=True))


def test_broken_clip_is_a_provider_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 500)
    with pytest.raises(ProviderError, match="runway returned a file that is not a readable video") as e:
        ConformedClip(bad, SCENE, 64, 64, provider="runway")
    assert e.value.transient


def test_plan_provider_used_and_generated_once_for_all_chunks(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "c.mp4", width=256, height=144, n=12)
    mock = clip_provider(src)
    hub = Providers(
        ProviderSettings(cache_dir=tmp_path / "cache"), video={"runway": mock, "local": generate_local()}
    )
    a = list(hub.scene_frames(SCENE, 10, 30, width=128, height=72, fps=24, subject_rgba=None, seed=5))
    b = list(hub.scene_frames(SCENE, 30, 58, width=128, height=72, fps=24, subject_rgba=None, seed=5))
    assert len(a) + len(b) == 48 and len(mock.calls) == 1
    assert mock.calls[0].model == "gen4_turbo" and mock.calls[0].n_frames == 48
    assert level(a[0]) < level(b[-1])


def generate_local():
    from lookalike.nodes.providers import LocalVideo

    return LocalVideo()


def test_missing_key_falls_back_to_local_and_says_so(tmp_path: Path) -> None:
    settings = ProviderSettings(cache_dir=tmp_path, fallback=("local",))
    hub = Providers.from_settings(settings, sleep=lambda s: None)
    clip = hub.scene_clip(SCENE, width=64, height=48, fps=24, subject_rgba=None, seed=5)
    assert clip.provider == "local" and clip.record.fallback_from == ("runway",)
    got = list(clip.frames(10, 14))
    want = list(generate.render_frames(SCENE, 10, 14, width=64, height=48, subject_rgba=None, seed=5))
    assert all(np.array_equal(x, y) for x, y in zip(got, want, strict=True))


def test_missing_key_without_fallback_names_the_setting(tmp_path: Path) -> None:
    hub = Providers.from_settings(ProviderSettings(cache_dir=tmp_path, fallback=()))
    with pytest.raises(ProviderError, match="LOOKALIKE_RUNWAY_API_KEY"):
        hub.scene_clip(SCENE, width=64, height=48, fps=24, subject_rgba=None, seed=5)


def test_transient_retried_permanent_falls_back(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "c.mp4", width=128, height=72, n=6)
    ok = clip_provider(src, "veo")
    calls = {"n": 0}

    def flaky(req):
        calls["n"] += 1
        if calls["n"] < 3:
            raise ProviderError("busy", transient=True)
        raise ProviderError("prompt refused", transient=False)

    sleeps: list[float] = []
    hub = Providers(
        ProviderSettings(
            cache_dir=tmp_path, fallback=("veo",), max_attempts=5, backoff_s=1.0, requests_per_minute=6000
        ),
        video={"runway": MockProvider("video", flaky, name="runway"), "veo": ok},
        sleep=sleeps.append,
    )
    before = (
        REGISTRY.get_sample_value(
            "lookalike_provider_calls_total", {"provider": "runway", "kind": "video", "outcome": "permanent"}
        )
        or 0
    )
    clip = hub.scene_clip(SCENE, width=64, height=36, fps=24, subject_rgba=None, seed=5)
    assert calls["n"] == 3 and len(sleeps) == 2  # two transient retries, the permanent one not retried
    assert clip.provider == "veo" and clip.record.fallback_from == ("runway",)
    after = REGISTRY.get_sample_value(
        "lookalike_provider_calls_total", {"provider": "runway", "kind": "video", "outcome": "permanent"}
    )
    assert after == before + 1
    assert (
        REGISTRY.get_sample_value("lookalike_provider_cost_usd_total", {"provider": "veo", "kind": "video"})
        >= 0.5
    )


def test_parallel_scenes_within_the_concurrency_limit(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "c.mp4", width=64, height=36, n=4)
    live, peak = [0], [0]
    lock = threading.Lock()
    gate = threading.Barrier(2, timeout=10)

    def handler(req):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        try:
            gate.wait()  # two scenes must be in flight together for this to pass
        except threading.BrokenBarrierError:
            pass
        with lock:
            live[0] -= 1
        out = req.out_dir / "c.mp4"
        req.out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, out)
        return VideoResult(out, CallRecord("runway", "video"))

    settings = ProviderSettings(
        cache_dir=tmp_path, parallel_scenes=4, concurrency=2, requests_per_minute=6000
    )
    hub = Providers(
        settings, video={"runway": MockProvider("video", handler, name="runway"), "local": generate_local()}
    )
    scenes = [{**SCENE, "index": i, "start_frame": 8 * i, "end_frame": 8 * i + 8} for i in range(4)]
    clips = hub.generate_scenes(scenes, width=32, height=18, fps=24, subject_rgba=None)
    assert [c.scene_index for c in clips] == [0, 1, 2, 3] and peak[0] == 2


def test_rate_limit_spaces_calls_on_a_fake_clock() -> None:
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    limit = RateLimit(30, burst=1, concurrency=1, clock=lambda: now[0], sleep=sleep)
    starts = []
    p = Guarded(MockProvider("sfx", lambda r: starts.append(now[0]) or r, name="x"), "sfx", [limit])
    for _ in range(3):
        p.effect("req")
    assert starts == pytest.approx([0.0, 2.0, 4.0])


def test_retry_gives_up_after_max_attempts() -> None:
    sleeps: list[float] = []
    p = Guarded(
        MockProvider(
            "music", lambda r: (_ for _ in ()).throw(ProviderError("down", transient=True)), name="m"
        ),
        "music",
        [Metered(), Retry(3, base_s=1.0, max_s=1.5, sleep=sleeps.append, seed=0)],
    )
    with pytest.raises(ProviderError, match="down") as e:
        p.compose("req")
    assert e.value.attempts == 3 and len(sleeps) == 2 and all(0.5 <= s <= 1.5 for s in sleeps)


def test_settings_from_env() -> None:
    s = ProviderSettings.from_env(
        {
            "LOOKALIKE_RUNWAY_API_KEY": "r",
            "LOOKALIKE_PROVIDER_FALLBACK": "veo, local",
            "LOOKALIKE_MAX_ATTEMPTS": "2",
        }
    )
    assert s.runway_api_key == "r" and s.fallback == ("veo", "local") and s.max_attempts == 2
