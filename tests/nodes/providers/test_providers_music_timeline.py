"""The remake's music bed from the plan's music provider: ElevenLabs through the real SDK against the
fake of its API (POST /v1/music answering a 997 Hz tone: no note of any key, so its peak is the
provider's and nothing else's), the fallback to the procedural music (no key, 429, 500, unusable
audio), and the conform of a provider's piece to the timeline (rate, tempo, length, loudness)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
from lookalike.coordinator import plan_ops, planner
from lookalike.nodes import media, music
from lookalike.nodes.providers import (
    AudioResult,
    CallRecord,
    MockProvider,
    MusicRequest,
    Providers,
    ProviderSettings,
    conform_music,
    music_track,
)
from lookalike.nodes.providers.audio import measure_tempo
from lookalike.nodes.providers.elevenlabs import RATE as XI_RATE
from lookalike.nodes.providers.local import LocalMusic
from lookalike.nodes.runtime import NodeRuntime
from provider_fakes import FakeAPI, Request, reply_json
from synth import tiny_analysis

from lookalike.errors import ProviderError
from lookalike.store import open_store

RATE = 48000
TONE_HZ = 997.0
DURATION_S = 6.0


def _tone_reply(req: Request):
    """A 997 Hz tone exactly as long as the request asks (one section or a composition plan)."""
    body = req.json()
    ms = body.get("music_length_ms") or sum(s["duration_ms"] for s in body["composition_plan"]["sections"])
    t = np.arange(int(ms / 1000 * XI_RATE)) / XI_RATE
    return (
        200,
        {"content-type": "audio/pcm"},
        (np.sin(2 * np.pi * TONE_HZ * t) * 12000).astype("<i2").tobytes(),
    )


def _analysis() -> dict:
    """Two 3 s scenes at 24 fps; the sample measured 120 BPM in A minor at -16 LUFS."""
    return tiny_analysis({"tempo_bpm": 120.0, "key": "A minor", "lufs": -16.0})


def _plan(provider: str | None) -> dict:
    plan = planner.make_plan(_analysis(), seed=3)
    return plan_ops.apply(plan, [plan_ops.SetMusic(provider=provider)]) if provider else plan


def _runtime(tmp_path: Path, name: str, **settings) -> NodeRuntime:
    s = ProviderSettings(max_attempts=2, backoff_s=0.0, cache_dir=tmp_path / f"{name}-providers", **settings)
    return NodeRuntime(
        open_store(str(tmp_path / "store")), cache_dir=str(tmp_path / name), provider_settings=s
    )


def _render(rt: NodeRuntime, plan: dict, key: str) -> tuple[np.ndarray, dict]:
    got = rt.render_audio(plan, _analysis(), key, duration_s=DURATION_S, seed=3)
    decoded = media.read_audio(rt.local(key), rate=RATE, mono=False)
    assert decoded is not None
    return decoded[0], got


def _tone_share(x: np.ndarray) -> float:
    """The share of the track's power within 7 Hz of the provider's tone."""
    mono = np.atleast_2d(x).mean(axis=0)
    spec = np.abs(np.fft.rfft(mono * np.hanning(len(mono)))) ** 2
    f = np.fft.rfftfreq(len(mono), 1 / RATE)
    return float(spec[np.abs(f - TONE_HZ) < 7].sum() / spec.sum())


@pytest.fixture(scope="module")
def local_render(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Today's bed: the plan left to the local procedural music, decoded from the stored m4a."""
    tmp = tmp_path_factory.mktemp("local")
    return _render(_runtime(tmp, "local"), _plan(None), "local.m4a")[0]


def test_the_remakes_audio_is_the_providers_music(api: FakeAPI, tmp_path: Path) -> None:
    api.route("POST", r"^/v1/music$", _tone_reply)
    rt = _runtime(tmp_path, "xi", elevenlabs_api_key="xi-key", elevenlabs_base_url=api.url)
    audio, got = _render(rt, _plan("elevenlabs"), "xi.m4a")
    assert got["music"]["provider"] == "elevenlabs" and got["music"]["fallback_from"] == []
    assert got["music"]["conform"]["resampled_from"] == XI_RATE
    assert audio.shape[-1] / RATE == pytest.approx(DURATION_S, abs=0.05)
    assert _tone_share(audio) > 0.95  # the bed is the provider's tone
    assert got["lufs"] == pytest.approx(-14.0, abs=0.5)  # mastered to the default -14 LUFS
    (req,) = [r for r in api.requests if r.path.startswith("/v1/music")]
    assert req.headers["xi-api-key"] == "xi-key" and "output_format=pcm_44100" in req.path
    styles = req.json()["composition_plan"]["positive_global_styles"][0]
    assert "120 BPM in A minor" in styles  # the plan's tempo and key, one section per scene
    assert [s["duration_ms"] for s in req.json()["composition_plan"]["sections"]] == [3000, 3000]


def test_without_a_key_the_bed_is_the_procedural_music_as_before(
    tmp_path: Path, local_render: np.ndarray
) -> None:
    audio, got = _render(_runtime(tmp_path, "nokey"), _plan("elevenlabs"), "nokey.m4a")
    assert got["music"]["provider"] == "local" and got["music"]["fallback_from"] == ["elevenlabs"]
    assert np.array_equal(audio, local_render)
    assert _tone_share(local_render) < 0.01
    # and the samples under the AAC are exactly what the procedural generator made before providers
    hub = Providers.from_settings(ProviderSettings(cache_dir=tmp_path / "hub"))
    req = MusicRequest(
        duration_s=DURATION_S,
        out_dir=tmp_path,
        tempo_bpm=120.0,
        key="A minor",
        section_starts_s=(3.0,),
        seed=3,
        target_lufs=-16.0,
    )
    bed, record, done = music_track(hub, req, rate=RATE, provider="elevenlabs")
    before = music.render_music(
        DURATION_S, 120.0, rate=RATE, key="A minor", target_lufs=-16.0, seed=3, section_starts_s=(3.0,)
    )
    assert np.array_equal(bed, before) and record.fallback_from == ("elevenlabs",) and "mastered" not in done


@pytest.mark.parametrize("status", [429, 500])
def test_a_failing_provider_falls_back_and_the_audio_is_complete(
    api: FakeAPI, tmp_path: Path, local_render: np.ndarray, status: int
) -> None:
    api.route("POST", r"^/v1/music$", lambda r: reply_json({"detail": "try later"}, status))
    rt = _runtime(tmp_path, f"fail{status}", elevenlabs_api_key="xi-key", elevenlabs_base_url=api.url)
    audio, got = _render(rt, _plan("elevenlabs"), f"fail{status}.m4a")
    assert len([r for r in api.requests if r.path.startswith("/v1/music")]) == 2  # retried once: transient
    assert got["music"]["provider"] == "local" and got["music"]["fallback_from"] == ["elevenlabs"]
    assert got["duration_s"] == pytest.approx(DURATION_S)
    assert np.array_equal(audio, local_render)


def _mock(samples: np.ndarray, rate: int, tempo: float | None = None) -> MockProvider:
    return MockProvider(
        "music", lambda r: AudioResult(samples, rate, CallRecord("mock", "music"), tempo), name="mock"
    )


def test_unusable_music_falls_back(tmp_path: Path) -> None:
    req = MusicRequest(duration_s=3.0, out_dir=tmp_path, tempo_bpm=120.0, seed=1)
    local = music.render_music(3.0, 120.0, rate=RATE, target_lufs=-16.0, seed=1)
    for bad, why in [
        (np.full((2, RATE), np.nan, np.float32), "NaN"),
        (np.zeros((2, 3 * RATE), np.float32), "silence"),
        (np.ones((2, RATE // 2), np.float32) * 0.1, "0.50 s of music"),
        (np.ones((3, 3 * RATE), np.float32) * 0.1, "neither mono nor stereo"),
    ]:
        hub = Providers(
            ProviderSettings(cache_dir=tmp_path), music={"mock": _mock(bad, RATE), "local": LocalMusic()}
        )
        bed, record, _ = music_track(hub, req, rate=RATE, provider="mock")
        assert record.provider == "local" and record.fallback_from == ("mock",), why
        assert np.array_equal(bed, local), why


def test_a_providers_piece_is_conformed_to_the_timeline(tmp_path: Path) -> None:
    """A 5 s piece at 126 BPM and 44.1 kHz, 6 LU too loud, for an 8 s timeline at 120 BPM: resampled,
    stretched to 120 BPM, looped on the beat to 8 s, mastered to -16 LUFS under -1 dBTP."""
    piece = music.render_music(5.0, 126.0, rate=44100, target_lufs=-10.0, seed=2)
    x, done = conform_music(
        AudioResult(piece, 44100, CallRecord("mock", "music")),
        rate=RATE,
        duration_s=8.0,
        tempo_bpm=120.0,
        target_lufs=-16.0,
    )
    assert x.shape == (2, 8 * RATE) and x.dtype == np.float32
    assert done["tempo_bpm"] == pytest.approx(126.0, abs=0.5) and done["stretched_by"] == pytest.approx(
        120 / 126, abs=0.005
    )
    assert measure_tempo(x, RATE) == pytest.approx(120.0, abs=0.5)
    assert pyloudnorm.Meter(RATE).integrated_loudness(x.T.astype(np.float64)) == pytest.approx(-16.0, abs=0.3)
    assert music.true_peak_db(x) <= -1.0
    # Half time fits the cuts as well: a 61 BPM piece is left at its tempo, not stretched to 60.
    _, done = conform_music(
        AudioResult(
            music.render_music(4.0, 122.0, rate=RATE, seed=2), RATE, CallRecord("mock", "music"), 122.0
        ),
        rate=RATE,
        duration_s=4.0,
        tempo_bpm=61.5,
        target_lufs=-16.0,
    )
    assert "stretched_by" not in done and "tempo_kept" not in done
    # Further than MAX_TEMPO_STRETCH the piece keeps its tempo (a stretch would be heard).
    _, done = conform_music(
        AudioResult(
            music.render_music(4.0, 100.0, rate=RATE, seed=2), RATE, CallRecord("mock", "music"), 100.0
        ),
        rate=RATE,
        duration_s=4.0,
        tempo_bpm=120.0,
        target_lufs=-16.0,
    )
    assert done["tempo_kept"] is True and "stretched_by" not in done


def test_time_stretch_keeps_the_pitch_and_the_level() -> None:
    t = np.arange(3 * RATE) / RATE
    tone = np.sin(2 * np.pi * TONE_HZ * t)
    out = music.time_stretch(np.vstack([tone, tone]), 0.95)
    assert out.shape == (2, round(3 * RATE / 0.95))
    spec = np.abs(np.fft.rfft(out[0] * np.hanning(out.shape[-1])))
    assert np.fft.rfftfreq(out.shape[-1], 1 / RATE)[np.argmax(spec)] == pytest.approx(TONE_HZ, abs=1.0)
    rms = np.sqrt((out[0, : out.shape[-1] // 480 * 480].reshape(-1, 480) ** 2).mean(axis=1))[5:-5]
    assert rms.min() > 0.6 and rms.max() - rms.min() < 0.02  # steady, no beating between frames


def test_a_loop_keeps_the_beat_across_the_seam() -> None:
    """Clicks every 0.5 s in a 2.3 s piece looped to 6 s: the repeats start on whole beats, so every
    click still falls on the 0.5 s grid."""
    piece = np.zeros((2, int(2.3 * RATE)))
    for k in range(5):
        piece[:, int(k * 0.5 * RATE) : int(k * 0.5 * RATE) + 48] = 1.0
    out = music.fit_length(piece, 6 * RATE, RATE, period_s=0.5, crossfade_s=0.1)
    peaks = np.nonzero(np.abs(out[0]) > 0.5)[0]
    starts = peaks[np.r_[True, np.diff(peaks) > 1]] / RATE
    assert len(starts) == 12
    assert np.allclose(starts, np.round(starts * 2) / 2, atol=1e-3)
    cut = music.fit_length(piece + 0.3, RATE, RATE)
    assert cut.shape == (2, RATE) and abs(cut[0, -1]) < 1e-3  # cut with a fade, no click at the end


def test_a_very_short_timeline_takes_music_a_sample_short_of_it() -> None:
    """A 22-frame (0.917 s) project: the local music comes back a rounding hair short of the timeline,
    which must be fitted, not refused (it failed such projects for good)."""
    duration = 22 / 24
    piece = music.render_music(duration, 120.0, rate=RATE, seed=1)[:, :-3]
    x, _ = conform_music(
        AudioResult(piece, RATE, CallRecord("local", "music"), 120.0),
        rate=RATE,
        duration_s=duration,
        tempo_bpm=120.0,
        target_lufs=-16.0,
    )
    assert x.shape == (2, round(duration * RATE))
    with pytest.raises(ProviderError, match="of music for a"):
        conform_music(AudioResult(piece[:, : RATE // 2], RATE, CallRecord("x", "music")), rate=RATE,
                      duration_s=duration, tempo_bpm=120.0, target_lufs=-16.0)
