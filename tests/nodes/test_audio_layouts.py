"""Audio of any layout through the analysis: mono to 7.1, any rate, several tracks, a track shorter
or longer than the picture; and BS.1770-4 loudness of known-level surround signals.

Every clip is synthesized here with PyAV: a short x264 picture (a grey ramp) and audio tracks of a
chosen layout, codec and rate whose samples the test knows.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from lookalike.kernels import audio_features as af
from lookalike.nodes import analysis, audio_analysis, media
from lookalike.nodes.runtime import NodeRuntime

from lookalike.store import open_store

FPS = 24
TONE_HZ = 1000.0
RMS = 0.1  # -20 dBFS RMS


def tone(seconds: float, rate: int, rms: float = RMS, hz: float = TONE_HZ) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (rms * math.sqrt(2) * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def clicks(seconds: float, rate: int, bpm: float = 120.0) -> np.ndarray:
    """A 1 kHz click every beat: something for tempo, onsets and segments to find."""
    y = np.zeros(int(round(seconds * rate)), np.float32)
    n = int(0.03 * rate)
    burst = tone(0.03, rate, 0.3)[:n] * np.hanning(n).astype(np.float32)
    for start in np.arange(0.0, seconds - 0.05, 60.0 / bpm):
        i = int(start * rate)
        y[i : i + n] += burst[: len(y) - i]
    return y


def on(channel: int, signal: np.ndarray, channels: int) -> np.ndarray:
    x = np.zeros((channels, len(signal)), np.float32)
    x[channel] = signal
    return x


def write_clip(
    path: Path,
    tracks: list[dict],
    *,
    video_s: float | None = 2.0,
) -> Path:
    """A file with an optional picture of `video_s` seconds and one audio stream per entry of
    `tracks`: {samples (channels, n), layout, rate, codec, default (bool, optional)}."""
    with av.open(str(path), "w") as c:
        vs = None
        if video_s:
            vs = c.add_stream("libx264", rate=FPS)
            vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
            vs.options = {"preset": "ultrafast"}
        streams = []
        for t in tracks:
            s = c.add_stream(t["codec"], rate=t["rate"], layout=t["layout"])
            if "default" in t:
                s.disposition = av.stream.Disposition.default if t["default"] else av.stream.Disposition(0)
            streams.append(s)
        if vs is not None:
            for i in range(int(round(video_s * FPS))):
                img = np.full((48, 64, 3), (i * 7) % 256, np.uint8)
                for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
            for p in vs.encode():
                c.mux(p)
        for t, s in zip(tracks, streams, strict=True):
            x, rate, layout = np.asarray(t["samples"], np.float32), t["rate"], t["layout"]
            fmt = s.codec_context.format.name
            resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
            for i in range(0, x.shape[1], 1024):
                # Packed input: PyAV 18 cannot fill an 8-plane frame from an array.
                block = np.ascontiguousarray(x[:, i : i + 1024].T).reshape(1, -1)
                fr = av.AudioFrame.from_ndarray(block, format="flt", layout=layout)
                fr.sample_rate, fr.pts, fr.time_base = rate, i, Fraction(1, rate)
                for rf in resampler.resample(fr):
                    for p in s.encode(rf):
                        c.mux(p)
            for rf in resampler.resample(None):
                for p in s.encode(rf):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    return path


def track(layout: str, rate: int, seconds: float, codec: str = "aac", **kw) -> dict:
    n = len(av.AudioLayout(layout).channels)
    y = clicks(seconds, rate)
    return {
        "samples": np.stack([y] + [0.5 * y] * (n - 1)),
        "layout": layout,
        "rate": rate,
        "codec": codec,
        **kw,
    }


CASES = {
    "mono/44.1k": ("a.mp4", [track("mono", 44100, 2.0)], 2.0),
    "stereo/48k": ("a.mp4", [track("stereo", 48000, 2.0)], 2.0),
    "stereo/22.05k": ("a.mp4", [track("stereo", 22050, 2.0)], 2.0),
    "5.1/aac": ("a.mp4", [track("5.1", 48000, 2.0)], 2.0),
    "5.1(side)/aac-mkv": ("a.mkv", [track("5.1(side)", 48000, 2.0)], 2.0),  # Matroska drops this layout
    "7.1/aac": ("a.mp4", [track("7.1", 48000, 2.0)], 2.0),
    "7.1/pcm-mkv": ("a.mkv", [track("7.1", 48000, 2.0, codec="pcm_s16le")], 2.0),
    "two-tracks": ("a.mkv", [track("stereo", 48000, 2.0), track("5.1", 44100, 2.0)], 2.0),
    "audio-shorter": ("a.mp4", [track("5.1", 48000, 0.8)], 2.0),
    "audio-longer": ("a.mp4", [track("5.1", 48000, 3.5)], 2.0),
}


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_analysis_succeeds_on_any_layout(tmp_path, name):
    filename, tracks, video_s = CASES[name]
    path = write_clip(tmp_path / filename, tracks, video_s=video_s)
    doc = analysis.analyze(str(path), transcribe=False)
    audio = doc["audio"]
    assert audio["has_audio"] and audio["lufs"] is not None
    assert audio["track"] == 0
    listed = audio["tracks"]
    assert [t["index"] for t in listed] == list(range(len(tracks)))
    for t, want in zip(listed, tracks, strict=True):
        assert t["channels"] == want["samples"].shape[0]
        assert t["rate"] == want["rate"]
        assert set(t) == {"index", "channels", "layout", "rate", "codec", "default"}
    # The click track's level: the first channel's clicks, loudest channel of the layout.
    assert -45.0 < audio["lufs"] < -10.0
    if name != "audio-shorter":  # 0.8 s holds two clicks: too few for a tempo
        assert audio["tempo_bpm"] == pytest.approx(120.0, rel=0.05)


def test_the_default_track_is_analysed_and_the_others_listed(tmp_path):
    quiet = {
        "samples": on(0, tone(2.0, 48000, 0.01), 2),
        "layout": "stereo",
        "rate": 48000,
        "codec": "aac",
        "default": False,
    }
    loud = {
        "samples": on(0, tone(2.0, 48000, RMS), 6),
        "layout": "5.1",
        "rate": 48000,
        "codec": "aac",
        "default": True,
    }
    path = write_clip(tmp_path / "two.mkv", [quiet, loud])
    audio = audio_analysis.audio_section(str(path), transcriber=None)
    assert audio["track"] == 1
    assert [(t["channels"], t["default"]) for t in audio["tracks"]] == [(2, False), (6, True)]
    assert audio["lufs"] == pytest.approx(-20.0, abs=0.1)
    assert media.read_audio(str(path), rate=48000, mono=False)[0].shape[0] == 6
    assert media.read_audio(str(path), rate=48000, mono=False, track=0)[0].shape[0] == 2


# BS.1770-4 by hand: a sine of RMS r in channel i gives z_i = r^2 K^2 (K: the K-weighting's gain
# at 1 kHz, cancelled by the -0.691 constant), so L_K = -0.691 + 10 log10(G_i r^2) + 0.691 =
# 20 log10(r) + 10 log10(G_i). G = 1 for L, R, C; 1.41 (+1.49 dB) for the surrounds; the LFE is
# not measured at all.
L, R, C, LFE, LS, RS = range(6)
SURROUND_DB = 10 * math.log10(1.41)
EXPECTED = {
    "L": ([L], 20 * math.log10(RMS)),
    "C": ([C], 20 * math.log10(RMS)),
    "Ls": ([LS], 20 * math.log10(RMS) + SURROUND_DB),
    "L+R": ([L, R], 20 * math.log10(RMS) + 10 * math.log10(2)),
    "L+LFE": ([L, LFE], 20 * math.log10(RMS)),
    "all five": ([L, R, C, LS, RS], 20 * math.log10(RMS) + 10 * math.log10(3 + 2 * 1.41)),
}


def five_one(channels: list[int], seconds: float, rate: int) -> np.ndarray:
    y = tone(seconds, rate)
    x = np.zeros((6, len(y)), np.float32)
    for ch in channels:
        # Different phases: the same sine everywhere would read as dual mono.
        x[ch] = np.roll(y, 7 * ch)
    return x


@pytest.mark.parametrize("case", list(EXPECTED), ids=list(EXPECTED))
def test_bs1770_loudness_of_a_known_5_1_signal(tmp_path, case):
    channels, expected = EXPECTED[case]
    x = five_one(channels, 4.0, 48000)
    # The kernel on the samples, and the whole path through an AAC 5.1 file.
    assert af.integrated_loudness(x, 48000, ("FL", "FR", "FC", "LFE", "BL", "BR")) == pytest.approx(
        expected, abs=0.1
    )
    path = write_clip(tmp_path / "51.mp4", [{"samples": x, "layout": "5.1", "rate": 48000, "codec": "aac"}])
    assert audio_analysis.audio_section(str(path), transcriber=None)["lufs"] == pytest.approx(
        expected, abs=0.1
    )


def test_lfe_alone_is_not_measured():
    assert af.integrated_loudness(five_one([LFE], 4.0, 48000), 48000) is None


@pytest.mark.parametrize("rate", [22050, 44100, 48000, 96000])
def test_bs1770_loudness_at_any_rate(tmp_path, rate):
    x = five_one([L, LS], 3.0, rate)
    expected = 20 * math.log10(RMS) + 10 * math.log10(1 + 1.41)
    assert af.integrated_loudness(x, rate) == pytest.approx(expected, abs=0.1)
    path = write_clip(
        tmp_path / "r.mkv", [{"samples": x, "layout": "5.1", "rate": rate, "codec": "pcm_f32le"}]
    )
    assert audio_analysis.audio_section(str(path), transcriber=None)["lufs"] == pytest.approx(
        expected, abs=0.1
    )


def test_7_1_weights_back_and_side_pairs_as_surrounds(tmp_path):
    names = ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR")
    y = tone(3.0, 48000)
    x = np.zeros((8, len(y)), np.float32)
    for ch in (0, 4, 6):  # FL, BL, SL
        x[ch] = np.roll(y, 5 * ch)
    expected = 20 * math.log10(RMS) + 10 * math.log10(1 + 2 * 1.41)
    assert af.integrated_loudness(x, 48000, names) == pytest.approx(expected, abs=0.1)
    path = write_clip(tmp_path / "71.mp4", [{"samples": x, "layout": "7.1", "rate": 48000, "codec": "aac"}])
    assert media.read_audio(str(path), rate=48000, mono=False)[0].shape[0] == 8
    assert audio_analysis.audio_section(str(path), transcriber=None)["lufs"] == pytest.approx(
        expected, abs=0.1
    )


def test_gating_leaves_out_silence_and_quiet_stretches():
    rate = 48000
    loud = tone(3.0, rate)
    quiet = tone(3.0, rate, RMS * 10 ** (-30 / 20))  # 30 LU under: below the relative gate
    x = np.concatenate([loud, np.zeros(rate * 3, np.float32), quiet])
    # Kept: the 27 blocks wholly in the tone and the 3 that straddle its end (3/4, 1/2, 1/4 of its
    # power, above the relative gate); the silence is under -70 LUFS, the quiet tone under the
    # relative gate.
    expected = 20 * math.log10(RMS) + 10 * math.log10((27 + 0.75 + 0.5 + 0.25) / 30)
    assert af.integrated_loudness(x, rate) == pytest.approx(expected, abs=0.02)


def test_channel_names_fall_back_to_the_usual_layout_for_the_count():
    assert af.channel_names(6, ["NONE"] * 6) == ("FL", "FR", "FC", "LFE", "BL", "BR")
    assert af.channel_names(2, ["FL", "FR"]) == ("FL", "FR")
    assert af.channel_names(10)[8:] == ("NONE", "NONE")
    assert af.channel_weights(("FL", "FR", "FC", "LFE", "SL", "SR")).tolist() == [1, 1, 1, 0, 1.41, 1.41]
    # As FFmpeg's ebur128 filter weights them: back and top-back count as surrounds, front pairs not.
    assert af.channel_weights(("BC", "TBL", "FLC", "TFL", "LFE2")).tolist() == [1.41, 1.41, 1, 1, 0]


def test_mono_downmix_leaves_out_the_lfe(tmp_path):
    x = five_one([LFE], 2.0, 48000)
    path = write_clip(tmp_path / "lfe.mp4", [{"samples": x, "layout": "5.1", "rate": 48000, "codec": "aac"}])
    y, _ = media.read_audio(str(path), rate=48000)
    assert float(np.abs(y).max()) < 1e-3


def test_runtime_audio_analysis_on_a_5_1_sample(tmp_path):
    x = five_one([L, C, LS], 3.0, 48000)
    path = write_clip(tmp_path / "s.mp4", [{"samples": x, "layout": "5.1", "rate": 48000, "codec": "aac"}])
    store = open_store(str(tmp_path / "store"))
    store.put_file("samples/s.mp4", path)
    rt = NodeRuntime(store, cache_dir=str(tmp_path / "cache"))
    doc = rt.analyze_audio("samples/s.mp4", transcribe=False)
    expected = 20 * math.log10(RMS) + 10 * math.log10(2 + 1.41)
    assert doc["lufs"] == pytest.approx(expected, abs=0.1)
    assert doc["tracks"][0]["channels"] == 6 and doc["tracks"][0]["layout"] == "5.1"


def ffmpeg_lufs(x: np.ndarray, rate: int, layout: str) -> float:
    """Integrated loudness by FFmpeg's own ebur128 filter (through PyAV): an independent meter."""
    graph = av.filter.Graph()
    src = graph.add_abuffer(format="flt", sample_rate=rate, layout=layout, time_base=Fraction(1, rate))
    meter = graph.add("ebur128", "metadata=1")
    sink = graph.add("abuffersink")
    src.link_to(meter)
    meter.link_to(sink)
    graph.configure()
    last = None

    def drain() -> None:
        nonlocal last
        while True:
            try:
                frame = sink.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            last = frame.metadata.get("lavfi.r128.I", last)

    for i in range(0, x.shape[1], 1024):
        block = np.ascontiguousarray(x[:, i : i + 1024].T, dtype=np.float32).reshape(1, -1)
        fr = av.AudioFrame.from_ndarray(block, format="flt", layout=layout)
        fr.sample_rate, fr.pts, fr.time_base = rate, i, Fraction(1, rate)
        src.push(fr)
        drain()
    src.push(None)
    drain()
    assert last is not None
    return float(last)


@pytest.mark.parametrize(
    "layout,rate",
    [("mono", 22050), ("stereo", 44100), ("5.1", 48000), ("5.1(side)", 44100), ("7.1", 48000)],
    ids=["mono/22.05k", "stereo/44.1k", "5.1/48k", "5.1(side)/44.1k", "7.1/48k"],
)
def test_loudness_agrees_with_ffmpeg_ebur128(layout, rate):
    names = tuple(ch.name for ch in av.AudioLayout(layout).channels)
    rng = np.random.default_rng(len(names))
    # Noise at a different level in each channel, with a quiet stretch for the gates to act on.
    x = rng.normal(0.0, 1.0, (len(names), rate * 6)) * np.linspace(0.02, 0.1, len(names))[:, None]
    x[:, rate * 2 : rate * 3] *= 0.01
    x = x.astype(np.float32)
    assert af.integrated_loudness(x, rate, names) == pytest.approx(ffmpeg_lufs(x, rate, layout), abs=0.1)


def test_downmix_stereo_follows_bs775():
    """5.1 to stereo: fronts as is, centre and surrounds at -3 dB, LFE dropped; no clipping."""
    from lookalike.kernels.audio_features import downmix_stereo

    n = 480
    x = np.zeros((6, n), np.float32)
    x[0], x[2], x[3], x[4] = 0.5, 0.2, 0.9, 0.1  # FL, FC, LFE, BL
    out = downmix_stereo(x)
    assert out.shape == (2, n)
    g = 1 / np.sqrt(2)
    np.testing.assert_allclose(out[0], 0.5 + g * 0.2 + g * 0.1, rtol=1e-5)
    np.testing.assert_allclose(out[1], g * 0.2, rtol=1e-5)
    loud = np.full((6, n), 0.9, np.float32)
    assert float(np.max(np.abs(downmix_stereo(loud)))) <= 1.0 + 1e-6
    mono = np.full((1, n), 0.3, np.float32)
    np.testing.assert_array_equal(downmix_stereo(mono), np.vstack([mono, mono]))


def test_keep_audio_of_a_5_1_sample_renders_stereo(tmp_path):
    """--keep-audio on a 5.1 sample: the sample's own sound, downmixed, in the stereo output."""
    x = five_one([L, C, LS], 2.0, 48000)
    path = write_clip(tmp_path / "s.mp4", [{"samples": x, "layout": "5.1", "rate": 48000, "codec": "aac"}])
    store = open_store(str(tmp_path / "store"))
    store.put_file("samples/s.mp4", path)
    rt = NodeRuntime(store, cache_dir=str(tmp_path / "cache"))
    plan = {"scenes": [], "music": {}}
    got = rt.render_audio(plan, {"audio": {}}, "out/a.m4a", duration_s=2.0, keep_audio=True, sample_key="samples/s.mp4")
    audio, _ = media.read_audio(rt.local("out/a.m4a"), rate=48000, mono=False)
    assert audio.shape[0] == 2 and np.isfinite(got["lufs"])
    # The left side carries L + 0.707 (C + Ls), the right 0.707 C (the channels' phases differ, so the
    # expected levels come from the same sums of the synthesized signal).
    rms = lambda v: float(np.sqrt(np.mean(v[4800:-4800] ** 2)))  # noqa: E731
    g = 1 / math.sqrt(2)
    want = rms(x[L] + g * x[C] + g * x[LS]) / rms(g * x[C])
    left, right = (rms(c) for c in audio)
    assert left / right == pytest.approx(want, rel=0.1)
