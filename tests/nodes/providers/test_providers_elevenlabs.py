"""ElevenLabs through the real `elevenlabs` SDK against a fake of its documented API:
POST /v1/text-to-speech/{voice_id}, POST /v1/voices/add (multipart), POST /v1/music,
POST /v1/sound-generation, each answering pcm_44100 audio; 401, 429 and broken audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lookalike.nodes.providers import MusicRequest, SfxRequest, VoiceRequest
from lookalike.nodes.providers.elevenlabs import (
    RATE,
    ElevenLabsClient,
    ElevenLabsMusic,
    ElevenLabsSfx,
    ElevenLabsVoice,
)
from provider_fakes import FakeAPI, reply_json

from lookalike.errors import InputError, ProviderError


def tone(seconds: float, hz: float = 220.0) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * hz * t) * 12000).astype("<i2").tobytes()


def pcm(data: bytes):
    return lambda r: (200, {"content-type": "audio/pcm"}, data)


@pytest.fixture
def client(api: FakeAPI) -> ElevenLabsClient:
    return ElevenLabsClient("xi-key", base_url=api.url, http_timeout_s=5)


def test_tts_with_a_cloned_voice(api: FakeAPI, client: ElevenLabsClient, tmp_path: Path) -> None:
    api.route(
        "POST",
        r"^/v1/voices/add$",
        lambda r: reply_json({"voice_id": "clone-42", "requires_verification": False}),
    )
    api.route("POST", r"^/v1/text-to-speech/clone-42$", pcm(tone(1.5)))
    sample = tmp_path / "speech.wav"
    sample.write_bytes(b"RIFF....WAVEfake speech")
    voice = ElevenLabsVoice(client)
    req = VoiceRequest(
        text="Hello there.", out_dir=tmp_path, emotion="excited", pace=1.1, clone_from=sample, seed=3
    )
    got = voice.speak(req)
    again = voice.speak(req)
    assert got.rate == RATE and got.duration_s == pytest.approx(1.5)
    assert np.abs(got.samples).max() == pytest.approx(12000 / 32768, abs=1e-3)
    assert got.record.units == len("Hello there.") and got.record.task_id == "clone-42"
    adds = [r for r in api.requests if r.path == "/v1/voices/add"]
    assert len(adds) == 1  # cloned once for both lines
    assert (
        adds[0].headers["content-type"].startswith("multipart/form-data") and b"fake speech" in adds[0].body
    )
    tts = [r for r in api.requests if r.path.startswith("/v1/text-to-speech/")]
    assert "output_format=pcm_44100" in tts[0].path and tts[0].headers["xi-api-key"] == "xi-key"
    body = tts[0].json()
    assert (
        body["text"] == "Hello there." and body["model_id"] == "eleven_multilingual_v2" and body["seed"] == 3
    )
    assert (
        body["voice_settings"]["speed"] == pytest.approx(1.1) and body["voice_settings"]["stability"] == 0.3
    )
    assert again.samples.shape == got.samples.shape


def test_empty_line_is_an_input_error(client: ElevenLabsClient, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty"):
        ElevenLabsVoice(client).speak(VoiceRequest(text="   ", out_dir=tmp_path))


def test_401_429_and_broken_audio(api: FakeAPI, client: ElevenLabsClient, tmp_path: Path) -> None:
    replies = iter(
        [
            reply_json({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, 401),
            reply_json({"detail": "too_many_concurrent_requests"}, 429, {"retry-after": "2"}),
            (200, {"content-type": "audio/pcm"}, b"\x01\x02\x03"),
        ]
    )
    api.route("POST", r"^/v1/text-to-speech/", lambda r: next(replies))
    voice = ElevenLabsVoice(client)
    req = VoiceRequest(text="Hi", out_dir=tmp_path)
    with pytest.raises(ProviderError, match="HTTP 401") as e:
        voice.speak(req)
    assert not e.value.transient and "LOOKALIKE_ELEVENLABS_API_KEY" in str(e.value)
    with pytest.raises(ProviderError, match="HTTP 429") as e:
        voice.speak(req)
    assert e.value.transient and e.value.retry_after_s == 2.0
    with pytest.raises(ProviderError, match="broken audio") as e:
        voice.speak(req)
    assert e.value.transient


def test_music_follows_plan_sections_and_is_mastered(
    api: FakeAPI, client: ElevenLabsClient, tmp_path: Path
) -> None:
    api.route("POST", r"^/v1/music$", pcm(tone(12.3, 110.0)))
    got = ElevenLabsMusic(client).compose(
        MusicRequest(
            duration_s=12.0, out_dir=tmp_path, tempo_bpm=128, key="A minor", section_starts_s=(4.0, 5.0, 8.0)
        )
    )
    assert got.samples.shape == (2, 12 * RATE)
    body = api.requests[0].json()
    plan = body["composition_plan"]
    assert [s["duration_ms"] for s in plan["sections"]] == [5000, 3000, 4000]  # the 1 s section merged
    assert "128 BPM in A minor" in plan["positive_global_styles"][0]
    assert body["respect_sections_durations"] is True
    import pyloudnorm

    assert pyloudnorm.Meter(RATE).integrated_loudness(got.samples.T.astype(np.float64)) == pytest.approx(
        -16.0, abs=0.5
    )


def test_sound_effect(api: FakeAPI, client: ElevenLabsClient, tmp_path: Path) -> None:
    api.route("POST", r"^/v1/sound-generation$", pcm(tone(0.8, 900.0)))
    got = ElevenLabsSfx(client).effect(SfxRequest(kind="whoosh", out_dir=tmp_path))
    assert got.duration_s == pytest.approx(0.8)
    body = api.requests[0].json()
    assert "whoosh" in body["text"] and body["duration_seconds"] == pytest.approx(0.8)


def test_missing_key(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="LOOKALIKE_ELEVENLABS_API_KEY"):
        ElevenLabsSfx(ElevenLabsClient(None)).effect(SfxRequest(kind="hit", out_dir=tmp_path))
