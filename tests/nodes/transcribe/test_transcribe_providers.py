"""Speech-to-text providers against loopback servers that speak their documented APIs.

OpenAI: POST {base}/v1/audio/transcriptions, multipart (model, file, response_format,
timestamp_granularities[]), `Authorization: Bearer KEY`; verbose_json replies carry
words [{word, start, end}]; errors are {"error": {"message", "type", "param", "code"}}.
ElevenLabs: POST {base}/v1/speech-to-text, multipart (model_id, file, timestamps_granularity...),
`xi-api-key: KEY`; replies carry words [{text, start, end, type: word|spacing|audio_event, logprob}];
errors are {"detail": {"status", "message"}}.
"""

from __future__ import annotations

import numpy as np
import pytest
from fake_stt import FakeServer, Request
from lookalike.nodes.transcribe import (
    ElevenLabsTranscriber,
    FallbackTranscriber,
    FasterWhisper,
    OpenAITranscriber,
    PocketSphinx,
    SpeechAudio,
    Transcript,
    Word,
    build_transcriber,
)

from lookalike.errors import ConfigError, ProviderError

AUDIO = SpeechAudio(np.sin(np.arange(16000) / 5.0).astype(np.float32) * 0.1, 16000)

OPENAI_VERBOSE = {
    "task": "transcribe",
    "language": "english",
    "duration": 1.0,
    "text": "Hello world.",
    "words": [{"word": "Hello", "start": 0.1, "end": 0.42}, {"word": "world", "start": 0.5, "end": 0.9}],
    "segments": [],
}


def openai_error(status: int, message: str, type_: str, code: str | None) -> tuple[int, dict, dict]:
    return status, {}, {"error": {"message": message, "type": type_, "param": None, "code": code}}


def test_openai_whisper_request_and_word_times():
    def handler(req: Request):
        return 200, {}, OPENAI_VERBOSE

    with FakeServer(handler) as srv:
        t = OpenAITranscriber("sk-test", base_url=srv.url + "/v1", timeout_s=5)
        tr = t.transcribe(AUDIO)
    req = srv.requests[0]
    assert req.path == "/v1/audio/transcriptions"
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.fields["model"] == ["whisper-1"]
    assert req.fields["response_format"] == ["verbose_json"]
    assert req.fields["timestamp_granularities[]"] == ["word"]
    assert req.fields["language"] == ["en"]
    name, wav = req.files["file"]
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE" and name.endswith(".wav")
    assert tr.text == "Hello world."
    assert tr.words == (Word("Hello", 0.1, 0.42), Word("world", 0.5, 0.9))
    assert (tr.provider, tr.model) == ("openai", "whisper-1")


def test_openai_gpt4o_transcribe_asks_for_json_and_has_no_word_times():
    with FakeServer(lambda req: (200, {}, {"text": "Hello world."})) as srv:
        tr = OpenAITranscriber("sk-test", model="gpt-4o-transcribe", base_url=srv.url + "/v1").transcribe(
            AUDIO
        )
    assert srv.requests[0].fields["response_format"] == ["json"]
    assert "timestamp_granularities[]" not in srv.requests[0].fields
    assert tr.text == "Hello world." and tr.words == ()


@pytest.mark.parametrize(
    ("reply", "transient", "in_message"),
    [
        (
            openai_error(
                401, "Incorrect API key provided: sk-bad.", "invalid_request_error", "invalid_api_key"
            ),
            False,
            "HTTP 401",
        ),
        (
            openai_error(429, "Rate limit reached for whisper-1.", "requests", "rate_limit_exceeded"),
            True,
            "Rate limit",
        ),
        (
            openai_error(400, "Invalid file format.", "invalid_request_error", None),
            False,
            "Invalid file format",
        ),
        (openai_error(500, "The server had an error.", "server_error", None), True, "HTTP 500"),
    ],
    ids=["401-bad-key", "429-rate-limit", "400-bad-request", "500-server"],
)
def test_openai_errors_are_split_transient_or_permanent(reply, transient, in_message):
    with FakeServer(lambda req: reply) as srv:
        with pytest.raises(ProviderError) as ei:
            OpenAITranscriber("sk-bad", base_url=srv.url + "/v1").transcribe(AUDIO)
    assert ei.value.transient is transient
    assert in_message in str(ei.value)
    assert len(srv.requests) == 1  # the SDK's own retries are off: retrying is the chain's job


def test_openai_timeout_is_transient():
    with FakeServer(lambda req: (srv.release.wait(30), (200, {}, OPENAI_VERBOSE))[1]) as srv:
        with pytest.raises(ProviderError, match="timed out") as ei:
            OpenAITranscriber("sk-test", base_url=srv.url + "/v1", timeout_s=0.3).transcribe(AUDIO)
    assert ei.value.transient


ELEVEN_REPLY = {
    "language_code": "en",
    "language_probability": 0.98,
    "text": "Hello world",
    "words": [
        {
            "text": "Hello",
            "start": 0.12,
            "end": 0.4,
            "type": "word",
            "speaker_id": "speaker_0",
            "logprob": -0.05,
        },
        {"text": " ", "start": 0.4, "end": 0.5, "type": "spacing", "speaker_id": "speaker_0", "logprob": 0.0},
        {
            "text": "(laughs)",
            "start": 0.5,
            "end": 0.55,
            "type": "audio_event",
            "speaker_id": "speaker_0",
            "logprob": 0.0,
        },
        {
            "text": "world",
            "start": 0.55,
            "end": 0.95,
            "type": "word",
            "speaker_id": "speaker_0",
            "logprob": -0.2,
        },
    ],
}


def test_elevenlabs_request_and_word_times():
    with FakeServer(lambda req: (200, {}, ELEVEN_REPLY)) as srv:
        tr = ElevenLabsTranscriber("xi-test", base_url=srv.url, timeout_s=5).transcribe(AUDIO)
    req = srv.requests[0]
    assert req.path == "/v1/speech-to-text"
    assert req.headers["xi-api-key"] == "xi-test"
    assert req.fields["model_id"] == ["scribe_v1"]
    assert req.fields["timestamps_granularity"] == ["word"]
    assert req.files["file"][1][:4] == b"RIFF"
    assert [(w.text, w.start_s, w.end_s) for w in tr.words] == [("Hello", 0.12, 0.4), ("world", 0.55, 0.95)]
    assert tr.words[0].confidence == pytest.approx(np.exp(-0.05), abs=1e-3)
    assert tr.language == "en"


@pytest.mark.parametrize(
    ("status", "body", "transient"),
    [
        (401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, False),
        (429, {"detail": {"status": "too_many_concurrent_requests", "message": "Too many requests"}}, True),
        (
            422,
            {
                "detail": [
                    {"loc": ["body", "model_id"], "msg": "field required", "type": "value_error.missing"}
                ]
            },
            False,
        ),
        (503, {"detail": {"status": "service_unavailable", "message": "busy"}}, True),
    ],
    ids=["401-bad-key", "429-rate-limit", "422-validation", "503-unavailable"],
)
def test_elevenlabs_errors(status, body, transient):
    with FakeServer(lambda req: (status, {"retry-after": "7"} if status == 429 else {}, body)) as srv:
        with pytest.raises(ProviderError) as ei:
            ElevenLabsTranscriber("xi-bad", base_url=srv.url).transcribe(AUDIO)
    assert ei.value.transient is transient
    assert f"HTTP {status}" in str(ei.value)
    if status == 401:
        assert "Invalid API key" in str(ei.value) and "API key" in ei.value.hint
    if status == 429:
        assert "after 7 s" in ei.value.hint


def test_elevenlabs_timeout_is_transient():
    with FakeServer(lambda req: (srv.release.wait(30), (200, {}, ELEVEN_REPLY))[1]) as srv:
        with pytest.raises(ProviderError, match="timed out") as ei:
            ElevenLabsTranscriber("xi", base_url=srv.url, timeout_s=0.3).transcribe(AUDIO)
    assert ei.value.transient


class Local:
    """A stand-in for the last, local recognizer in the chain."""

    name = "local"

    def __init__(self) -> None:
        self.calls = 0

    def transcribe(self, audio: SpeechAudio) -> Transcript:
        self.calls += 1
        return Transcript("one two", (Word("one", 0.0, 0.3), Word("two", 0.4, 0.7)), self.name)


def test_fallback_retries_transient_skips_permanent_and_falls_back_in_order():
    slept: list[float] = []
    with (
        FakeServer(
            lambda req: openai_error(429, "Rate limit reached", "requests", "rate_limit_exceeded")
        ) as oa,
        FakeServer(
            lambda req: (401, {}, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}})
        ) as el,
    ):
        local = Local()
        chain = FallbackTranscriber(
            [
                OpenAITranscriber("sk", base_url=oa.url + "/v1"),
                ElevenLabsTranscriber("xi", base_url=el.url),
                local,
            ],
            retries=2,
            backoff=lambda attempt: 0.5 * 2**attempt,
            sleep=slept.append,
        )
        tr = chain.transcribe(AUDIO)
    assert tr.text == "one two" and tr.provider == "local"
    assert tr.fallback_from == ("openai", "elevenlabs")
    assert len(oa.requests) == 3  # transient: first try + 2 retries
    assert len(el.requests) == 1  # permanent: never retried
    assert slept == [0.5, 1.0]
    assert [a[0] for a in chain.attempts] == ["openai"] * 3 + ["elevenlabs", "local"]


def test_fallback_first_success_wins_and_later_ones_are_not_called():
    with FakeServer(lambda req: (200, {}, OPENAI_VERBOSE)) as oa:
        local = Local()
        tr = FallbackTranscriber([OpenAITranscriber("sk", base_url=oa.url + "/v1"), local]).transcribe(AUDIO)
    assert tr.provider == "openai" and tr.fallback_from == () and local.calls == 0


def test_every_recognizer_failing_raises_one_error_naming_each():
    with FakeServer(lambda req: openai_error(503, "overloaded", "server_error", None)) as oa:
        chain = FallbackTranscriber(
            [OpenAITranscriber("sk", base_url=oa.url + "/v1"), FasterWhisper("/nonexistent/model")],
            retries=0,
            sleep=lambda s: None,
        )
        with pytest.raises(ProviderError) as ei:
            chain.transcribe(AUDIO)
    assert ei.value.transient  # the OpenAI failure may pass
    assert "openai" in str(ei.value) and "faster-whisper" in str(ei.value)


def test_faster_whisper_without_weights_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no faster-whisper model at") as ei:
        FasterWhisper(tmp_path / "absent").transcribe(AUDIO)
    assert "download" in ei.value.hint
    (tmp_path / "m").mkdir()
    with pytest.raises(ConfigError, match=r"missing model\.bin, config\.json"):
        FasterWhisper(tmp_path / "m").transcribe(AUDIO)


def test_faster_whisper_loads_through_ctranslate2_and_reports_a_broken_model(tmp_path):
    pytest.importorskip("faster_whisper")
    (tmp_path / "model.bin").write_bytes(b"not a ctranslate2 model")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="could not load the model") as ei:
        FasterWhisper(tmp_path, device="cpu", compute_type="int8").transcribe(AUDIO)
    assert "CTranslate2" in ei.value.hint


def test_missing_keys_are_config_errors_and_build_leaves_keyless_providers_out():
    with pytest.raises(ConfigError, match="OpenAI API key"):
        OpenAITranscriber("")
    with pytest.raises(ConfigError, match="ElevenLabs API key"):
        ElevenLabsTranscriber("")
    chain = build_transcriber()
    assert [t.name for t in chain.transcribers] == ["pocketsphinx"]
    chain = build_transcriber(openai_api_key="sk", elevenlabs_api_key="xi", whisper_model_path="/m")
    assert [t.name for t in chain.transcribers] == ["openai", "elevenlabs", "faster-whisper", "pocketsphinx"]
    with pytest.raises(ConfigError, match="unknown speech recognizer"):
        build_transcriber(("google",))
    assert isinstance(chain.transcribers[-1], PocketSphinx)
