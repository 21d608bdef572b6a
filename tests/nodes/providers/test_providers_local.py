"""The offline providers: espeak-ng voice (needs the Debian package espeak-ng), the synthesized
effects, local music, and the voice/effect stems placed on the timeline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from lookalike.nodes.providers import (
    EspeakVoice,
    LocalMusic,
    LocalSfx,
    MusicRequest,
    Providers,
    ProviderSettings,
    SfxRequest,
    VoiceRequest,
    sfx_track,
    synth_sfx,
    voice_track,
)

from lookalike.errors import InputError, ProviderError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="apt-get install -y espeak-ng")


@needs_espeak
def test_espeak_pace_and_emotion(tmp_path: Path) -> None:
    v = EspeakVoice()
    normal = v.speak(VoiceRequest(text="The quick brown fox jumps over the lazy dog.", out_dir=tmp_path))
    fast = v.speak(
        VoiceRequest(text="The quick brown fox jumps over the lazy dog.", out_dir=tmp_path, pace=1.6)
    )
    assert normal.rate == 22050 and np.abs(normal.samples).max() > 0.05
    assert 1.5 < normal.duration_s < 5.0
    assert fast.duration_s < 0.8 * normal.duration_s
    sad = v.speak(VoiceRequest(text="Hello", out_dir=tmp_path, emotion="sad"))
    assert sad.record.provider == "local" and sad.record.units == 5


def test_espeak_missing_and_bad_lines(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="espeak-ng, which is not installed") as e:
        EspeakVoice(binary="no-such-espeak-ng").speak(VoiceRequest(text="hi", out_dir=tmp_path))
    assert not e.value.transient and "apt-get install -y espeak-ng" in str(e.value)
    with pytest.raises(InputError, match="empty"):
        EspeakVoice().speak(VoiceRequest(text=" \n ", out_dir=tmp_path))
    with pytest.raises(InputError, match="emotion"):
        EspeakVoice().speak(VoiceRequest(text="hi", out_dir=tmp_path, emotion="smug"))


@pytest.mark.parametrize("kind", ["whoosh", "hit", "riser", "click"])
def test_synth_sfx_shapes(kind: str) -> None:
    rate = 48000
    x = synth_sfx(kind, rate)
    assert x.dtype == np.float32 and np.abs(x).max() == pytest.approx(10 ** (-3 / 20), rel=1e-3)
    env = np.abs(x).reshape(-1, 480).max(axis=1)  # 10 ms blocks
    peak_at = int(env.argmax()) / len(env)
    assert {"hit": peak_at < 0.05, "click": peak_at < 0.1, "whoosh": 0.35 < peak_at < 0.8, "riser": peak_at > 0.85}[kind]
    with pytest.raises(InputError):
        synth_sfx("boing", rate)


def test_local_music_and_sfx_provider(tmp_path: Path) -> None:
    m = LocalMusic(rate=22050).compose(
        MusicRequest(duration_s=3.0, out_dir=tmp_path, tempo_bpm=120, key="C major")
    )
    assert m.samples.shape == (2, 3 * 22050)
    s = LocalSfx(rate=22050).effect(SfxRequest(kind="hit", out_dir=tmp_path))
    assert s.rate == 22050 and s.duration_s == pytest.approx(0.6)


def test_sfx_track_onsets(tmp_path: Path) -> None:
    hub = Providers.from_settings(ProviderSettings(cache_dir=tmp_path))
    rate = 8000
    track, records = sfx_track(
        hub,
        [{"kind": "hit", "at_s": 1.0}, {"kind": "hit", "at_s": 2.5, "gain": 0.5}],
        4.0,
        rate=rate,
        out_dir=tmp_path,
    )
    assert len(track) == 4 * rate and len(records) == 1  # one call per kind
    onset = int(np.argmax(np.abs(track) > 0.05))
    assert abs(onset - rate) <= rate * 0.005
    second = track[int(2.4 * rate) : int(2.7 * rate)]
    assert np.abs(second).max() == pytest.approx(0.5 * np.abs(track[: 2 * rate]).max(), rel=0.05)


@needs_espeak
def test_voice_track_timing(tmp_path: Path) -> None:
    hub = Providers.from_settings(ProviderSettings(cache_dir=tmp_path))
    rate = 16000
    lines = [
        {"text": "First line.", "start_s": 0.5},
        {
            "text": "This second line is far too long for the one second slot it has.",
            "start_s": 2.0,
            "end_s": 3.0,
        },
    ]
    track, records = voice_track(hub, lines, 5.0, rate=rate, out_dir=tmp_path)
    assert len(track) == 5 * rate
    loud = np.flatnonzero(np.abs(track) > 0.02)
    assert abs(loud[0] / rate - 0.5) < 0.15  # speech starts on the line's time (espeak leads in briefly)
    assert np.abs(track[int(3.0 * rate) :]).max() < 1e-6  # the long line stops at its slot's end
    assert len(records) == 3  # the long line was asked for again, faster
    with pytest.raises(InputError, match="empty"):
        voice_track(hub, [{"text": "", "start_s": 0.0}], 2.0, rate=rate, out_dir=tmp_path)
