"""The sound of a footage remake (docs/footage.md, "Text, music, voice"), rendered by NodeRuntime:
the user's track instead of the generated bed, fitted to the timeline at the target loudness, and
with keep_media_audio the clips' own sound under it, at the right time and level.

Real media is read in place: the store folder holds symbolic links to ../shared/media, never copies.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyloudnorm
import pytest
from lookalike.coordinator import planner
from lookalike.nodes import media
from lookalike.nodes.runtime import CLIP_UNDER_MUSIC_DB, NodeRuntime
from synth import tiny_analysis

from lookalike.store import open_store

RATE = 48000
MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"
VIBE_ACE = MEDIA / "music" / "tracks" / "librosa_Kevin_MacLeod_-_Vibe_Ace.hq.ogg"
TRUMPET = MEDIA / "music" / "annotated" / "sorohan_trumpet_loop_90bpm.ogg"
PARTY = MEDIA / "footage" / "clips" / "openmpf_video_01.mp4"
RUNNERS = MEDIA / "footage" / "clips" / "openmpf_runners.mp4"  # no audio track
PHOTO = MEDIA / "footage" / "photos" / "skimage_coffee.png"
TARGET = -14.0  # the default integrated loudness (the sample in _analysis measures -16)


def _analysis(n: int = 144) -> dict:
    """Two scenes of n / 2 frames at 24 fps; the sample measured 120 BPM at -16 LUFS."""
    return tiny_analysis({"tempo_bpm": 120.0, "key": "A minor", "lufs": -16.0}, cuts=(n // 2,), n=n)


def _runtime(tmp_path: Path) -> NodeRuntime:
    return NodeRuntime(open_store(str(tmp_path / "store")), cache_dir=str(tmp_path / "cache"))


def _link(tmp_path: Path, key: str, target: Path) -> str:
    """`key` in the test's store folder, a link to `target` read in place."""
    dest = tmp_path / "store" / key
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, dest)
    return key


def _chord(duration_s: float, bpm: float = 120.0) -> np.ndarray:
    """A synthesized track: an A minor triad (220, 261.6, 329.6 Hz) pulsing on each beat, stereo."""
    t = np.arange(int(duration_s * RATE)) / RATE
    pulse = 0.4 + 0.6 * np.exp(-((t * bpm / 60.0) % 1.0) * 4.0)
    x = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 261.63, 329.63)) * pulse * 0.2
    return np.stack([x, x]).astype(np.float32)


def _wav_track(tmp_path: Path, key: str, x: np.ndarray) -> str:
    """`x` written into the store as PCM in a WAV (exact samples back)."""
    path = tmp_path / "store" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="wav") as c:
        st = c.add_stream("pcm_s16le", rate=RATE, layout="stereo")
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout="stereo")
        fr.sample_rate, fr.pts, fr.time_base = RATE, 0, Fraction(1, RATE)
        for p in [*st.encode(fr), *st.encode()]:
            c.mux(p)
    return key


def _tone_clip(tmp_path: Path, key: str, *, seconds: float = 5.0, fps: int = 30, sound: bool = True) -> str:
    """A clip of `seconds` at `fps`: grey frames, and (with sound) a 660 Hz tone before 1.5 s and a
    990 Hz tone from 1.5 s on, at 0.3 amplitude."""
    path = tmp_path / "store" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * fps)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 64, 36, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        ast = c.add_stream("aac", rate=RATE, layout="stereo") if sound else None
        for _ in range(n):
            for p in vs.encode(
                av.VideoFrame.from_ndarray(np.full((36, 64, 3), 128, np.uint8), format="rgb24")
            ):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if ast is not None:
            t = np.arange(int(seconds * RATE)) / RATE
            tone = 0.3 * np.sin(2 * np.pi * np.where(t < 1.5, 660.0, 990.0) * t)
            x = np.stack([tone, tone]).astype(np.float32)
            for i in range(0, x.shape[1], 1024):
                fr = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(x[:, i : i + 1024]), format="fltp", layout="stereo"
                )
                fr.sample_rate, fr.pts, fr.time_base = RATE, i, Fraction(1, RATE)
                for p in ast.encode(fr):
                    c.mux(p)
            for p in ast.encode():
                c.mux(p)
    return key


def _plan(
    track_key: str | None, n: int = 144, *, keep_media_audio: bool = False, sources=(None, None)
) -> dict:
    plan = planner.make_plan(_analysis(n), seed=3)
    if track_key:
        plan["music"]["track"] = {"name": "my song", "key": track_key, "media_id": "0" * 24}
    plan["music"]["keep_media_audio"] = keep_media_audio
    for s, src in zip(plan["scenes"], sources, strict=True):
        if src is not None:
            s["source"] = src
    return plan


def _media(
    key: str,
    *,
    in_frame: int = 0,
    out_frame: int = 1000,
    fps: float = 30.0,
    speed: float = 1.0,
    photo: bool = False,
) -> dict:
    return {
        "kind": "media",
        "media": key,
        "media_id": "1" * 24,
        "key": key,
        "photo": photo,
        "shot": 0,
        "in_frame": in_frame,
        "out_frame": out_frame,
        "fps": fps,
        "speed": speed,
        "extend": "hold",
    }


def _render(rt: NodeRuntime, plan: dict, key: str, n: int = 144) -> tuple[np.ndarray, dict]:
    got = rt.render_audio(plan, _analysis(n), key, duration_s=n / 24, seed=3)
    decoded = media.read_audio(rt.local(key), rate=RATE, mono=False)
    assert decoded is not None
    return decoded[0].astype(np.float64), got


def _corr(a: np.ndarray, b: np.ndarray, max_lag: int = 2048) -> float:
    """The best normalized correlation of two mono signals over lags up to `max_lag` samples (AAC's
    encoder delay, if the container does not trim it)."""
    a, b = np.atleast_2d(a).mean(axis=0), np.atleast_2d(b).mean(axis=0)
    n = min(len(a), len(b)) - max_lag
    best = 0.0
    for lag in range(0, max_lag + 1, 1):
        x, y = a[lag : lag + n], b[:n]
        c = float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12))
        best = max(best, c)
        if best > 0.95:
            break
    return best


def _band_rms(x: np.ndarray, f0: float, a_s: float, b_s: float, width: float = 8.0) -> float:
    """RMS (amplitude) of `x` within `width` Hz of f0 between a_s and b_s."""
    mono = np.atleast_2d(x).mean(axis=0)[int(a_s * RATE) : int(b_s * RATE)]
    spec = np.fft.rfft(mono * np.hanning(len(mono)))
    f = np.fft.rfftfreq(len(mono), 1 / RATE)
    power = np.sum(np.abs(spec[np.abs(f - f0) < width]) ** 2)  # Parseval, one-sided, Hann-corrected
    return float(np.sqrt(2 * power / (len(mono) * np.sum(np.hanning(len(mono)) ** 2))))


def _lufs(x: np.ndarray) -> float:
    return float(pyloudnorm.Meter(RATE).integrated_loudness(np.atleast_2d(x).T))


# ---------------------------------------------------------------- the user's track


def test_a_real_track_longer_than_the_timeline_is_what_plays(tmp_path):
    """Vibe Ace (61.5 s, a real recording) on a 6 s timeline: cut, at the target loudness, and its
    own content, not the generated groove."""
    rt = _runtime(tmp_path)
    key = _link(tmp_path, "uploads/vibe_ace.ogg", VIBE_ACE)
    audio, got = _render(rt, _plan(key), "mix.m4a")
    assert got["duration_s"] == 6.0  # exactly the timeline's samples before encoding
    assert audio.shape[-1] / RATE == pytest.approx(6.0, abs=0.05)
    assert got["music"]["provider"] == "user" and got["music"]["conform"]["fit"] == "cut"
    assert got["lufs"] == pytest.approx(TARGET, abs=1.0)
    assert _lufs(audio) == pytest.approx(TARGET, abs=1.0)
    track = media.read_audio(str(VIBE_ACE), rate=RATE, mono=False)[0][:, : audio.shape[-1]]
    head = slice(0, int(5.5 * RATE))  # before the 50 ms fade-out
    assert _corr(audio[:, head], track[:, head]) > 0.9
    generated, _ = _render(rt, _plan(None), "groove.m4a")
    assert _corr(generated[:, head], track[:, head]) < 0.3


def test_a_track_shorter_than_the_timeline_is_looped_on_its_bars(tmp_path):
    """The trumpet loop (5.33 s, 90 BPM: 2 bars) on a 12 s timeline loops whole bars, with no gap."""
    rt = _runtime(tmp_path)
    key = _link(tmp_path, "uploads/trumpet.ogg", TRUMPET)
    plan = _plan(key, n=288)
    plan["music"]["track"]["tempo_bpm"] = 90.0
    audio, got = _render(rt, plan, "mix.m4a", n=288)
    conform = got["music"]["conform"]
    assert conform["fit"] == "loop" and conform["loop_period_s"] == pytest.approx(4 * 60 / 90, abs=1e-3)
    assert got["duration_s"] == 12.0 and got["lufs"] == pytest.approx(TARGET, abs=1.0)
    # Every second of the timeline sounds: nothing is padded with silence.
    rms = [float(np.sqrt(np.mean(audio[:, int(k * RATE) : int((k + 1) * RATE)] ** 2))) for k in range(12)]
    assert min(rms) > 0.1 * max(rms)
    # After the first seam the loop replays the track's start, one bar (2.667 s) in.
    track = media.read_audio(str(TRUMPET), rate=RATE, mono=False)[0]
    bar = int(round(4 * 60 / 90 * RATE))
    seg = slice(int(0.5 * RATE), int(2.0 * RATE))
    assert _corr(audio[:, bar + seg.start : bar + seg.stop], track[:, seg]) > 0.9


def test_a_synthesized_track_plays_at_the_target_loudness(tmp_path):
    rt = _runtime(tmp_path)
    track = _chord(8.0)
    key = _wav_track(tmp_path, "uploads/chord.wav", track * 0.05)  # brought in far too quiet
    audio, got = _render(rt, _plan(key), "mix.m4a")
    assert got["lufs"] == pytest.approx(TARGET, abs=1.0)
    assert _corr(audio[:, : int(5.5 * RATE)], track[:, : int(5.5 * RATE)]) > 0.95


# ---------------------------------------------------------------- the clips' own sound


def test_a_clips_sound_plays_in_its_scene_under_the_music(tmp_path):
    """Scene 1 (3-6 s) shows the tone clip from 1.5 s: its 990 Hz is heard there, 12 dB under the
    music; its 660 Hz (before in_frame) and anything in scene 0 (generated) is not."""
    rt = _runtime(tmp_path)
    track_key = _wav_track(tmp_path, "uploads/chord.wav", _chord(8.0))
    clip = _tone_clip(tmp_path, "uploads/tone.mp4")
    plan = _plan(track_key, keep_media_audio=True, sources=(None, _media(clip, in_frame=45)))
    audio, got = _render(rt, plan, "mix.m4a")
    assert got["lufs"] == pytest.approx(TARGET, abs=1.0)
    in_scene = _band_rms(audio, 990.0, 3.1, 5.9)
    assert in_scene > 20 * _band_rms(audio, 990.0, 0.1, 2.9)  # not before its scene
    assert in_scene > 20 * _band_rms(audio, 660.0, 3.1, 5.9)  # from in_frame on, not before
    # Ducked: the tone's loudness is CLIP_UNDER_MUSIC_DB under the music's (a pure tone near 1 kHz
    # reads about its RMS level in LUFS + 0.7).
    music = (
        _band_rms(audio, 220.0, 3.1, 5.9, 20) ** 2
        + _band_rms(audio, 261.63, 3.1, 5.9, 20) ** 2
        + _band_rms(audio, 329.63, 3.1, 5.9, 20) ** 2
    )
    under = 20 * np.log10(in_scene) - 10 * np.log10(music)
    assert under == pytest.approx(CLIP_UNDER_MUSIC_DB, abs=2.5)


def test_a_slowed_clip_sounds_slowed(tmp_path):
    """At speed 0.5 scene 1 hears 1.5 s of the clip spread over its 3 s: the 990 Hz tone at 495 Hz."""
    rt = _runtime(tmp_path)
    track_key = _wav_track(tmp_path, "uploads/chord.wav", _chord(8.0))
    clip = _tone_clip(tmp_path, "uploads/tone.mp4")
    plan = _plan(track_key, keep_media_audio=True, sources=(None, _media(clip, in_frame=45, speed=0.5)))
    audio, _ = _render(rt, plan, "mix.m4a")
    assert _band_rms(audio, 495.0, 3.1, 5.9) > 10 * _band_rms(audio, 990.0, 3.1, 5.9)


def test_a_real_clips_sound_is_mixed_at_its_time(tmp_path):
    """openmpf_video_01.mp4 (a banquet hall, sound about -17.5 dBFS) from its start in scene 0: the
    remake minus the music-only remake is the clip's sound there, about 12 LU under the music."""
    rt = _runtime(tmp_path)
    track_key = _wav_track(tmp_path, "uploads/chord.wav", _chord(8.0))
    clip = _link(tmp_path, "uploads/party.mp4", PARTY)
    sources = (_media(clip, in_frame=0, out_frame=90, fps=29.97), None)
    with_clip, got = _render(rt, _plan(track_key, keep_media_audio=True, sources=sources), "with.m4a")
    music_only, _ = _render(rt, _plan(track_key, sources=sources), "without.m4a")
    n = min(with_clip.shape[-1], music_only.shape[-1])
    residual = with_clip[:, :n] - music_only[:, :n]
    clip_sound = media.read_audio(str(PARTY), rate=RATE, mono=False)[0].astype(np.float64)
    scene0 = slice(int(0.1 * RATE), int(2.9 * RATE))
    assert _corr(residual[:, scene0], clip_sound[:, scene0], max_lag=64) > 0.8
    assert _lufs(residual[:, scene0]) - _lufs(music_only[:, scene0]) == pytest.approx(
        CLIP_UNDER_MUSIC_DB, abs=1.5
    )
    # Scene 1 (generated) has only the music, at a level changed by the remaster alone.
    scene1 = slice(int(3.1 * RATE), int(5.9 * RATE))
    assert np.sqrt(np.mean(residual[:, scene1] ** 2)) < 0.1 * np.sqrt(np.mean(music_only[:, scene1] ** 2))
    assert got["lufs"] == pytest.approx(TARGET, abs=1.0)


def test_a_photo_and_a_clip_without_sound_add_silence(tmp_path):
    """A photo (scene 0) and openmpf_runners.mp4, which has no audio track (scene 1): the remake with
    keep_media_audio is the music alone, sample for sample."""
    rt = _runtime(tmp_path)
    track_key = _wav_track(tmp_path, "uploads/chord.wav", _chord(8.0))
    photo = _link(tmp_path, "uploads/coffee.png", PHOTO)
    runners = _link(tmp_path, "uploads/runners.mp4", RUNNERS)
    silent = _tone_clip(tmp_path, "uploads/mute.mp4", sound=False)
    for i, clip in enumerate((runners, silent)):
        sources = (_media(photo, in_frame=0, out_frame=1, photo=True), _media(clip, fps=29.97))
        kept, _ = _render(rt, _plan(track_key, keep_media_audio=True, sources=sources), f"kept{i}.m4a")
        plain, _ = _render(rt, _plan(track_key, sources=sources), f"plain{i}.m4a")
        assert np.array_equal(kept, plain)


def test_a_plan_without_a_track_keeps_the_generated_music(tmp_path):
    """No track: the bed is the local music as before (the footage path is not taken)."""
    rt = _runtime(tmp_path)
    _, got = _render(rt, _plan(None), "mix.m4a")
    assert got["music"]["provider"] == "local"
