"""Tests for lookalike.nodes.media against the shared clips' ground truth and synthetic media.

Shared clips (../shared/media, see its README.md and ground_truth.json):
  shots/counter.mp4                 30 frames at 10 fps, 1920x1080 H.264 with B-frames, one GOP.
  shots/goldeneye-vfr-drop3.mp4     160 frames, variable frame rate (frames dropped), keyframes 0/60/140.
  shots/issue-134-rotate.mp4        240 frames, display matrix -90 deg, AAC audio: shows in portrait.
  shots/testvideo.mp4, fades.mp4    long-GOP H.264 and MPEG-4 Part 2 clips.
  samples/big_buck_bunny_0_30.webm  720 frames VP8 + Vorbis (frame times start at 3 ms).
Synthetic media is written into tmp_path with known truth: frames whose grey blocks spell their own
index (robust to compression), a 440 Hz sine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from lookalike.nodes import media
from PIL import Image

from lookalike.errors import InputError, JobError, NotFoundError

MEDIA = Path(__file__).resolve().parents[2] / ".." / "shared" / "media"
TRUTH = json.loads((MEDIA / "ground_truth.json").read_text()) if MEDIA.is_dir() else {}
VIDEOS = [name for name, truth in TRUTH.items() if isinstance(truth, dict) and "n_frames" in truth]

pytestmark = pytest.mark.skipif(not MEDIA.is_dir(), reason="shared test media not present")


def clip(name: str) -> str:
    return str(MEDIA / name)


def digest(rgb: np.ndarray) -> str:
    """Bit-exact fingerprint of a frame (shape, dtype and every byte), so full decodes stay small."""
    return hashlib.sha256(f"{rgb.shape}{rgb.dtype}".encode() + rgb.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def full_decode():
    """Full decodes as (index, seconds, digest), computed once per clip and shared by the range tests."""
    cache: dict[str, list[tuple[int, float, str]]] = {}

    def get(name: str) -> list[tuple[int, float, str]]:
        if name not in cache:
            cache[name] = [(i, t, digest(rgb)) for i, t, rgb in media.iter_frames(clip(name))]
        return cache[name]

    return get


# ---------------------------------------------------------------------------------------------
# probe on real clips


@pytest.mark.parametrize("name", VIDEOS)
def test_probe_matches_ground_truth(name: str) -> None:
    truth = TRUTH[name]
    info = media.probe(clip(name))
    assert info.has_video
    assert info.n_frames == truth["n_frames"]
    assert len(info.frame_times) == info.n_frames
    assert list(info.frame_times) == sorted(info.frame_times)
    if "fps" in truth:
        assert info.fps == Fraction(str(truth["fps"]))
    assert info.rotation_deg == truth.get("rotation_deg", 0)
    assert info.variable_frame_rate is truth.get("variable_frame_rate", False)
    if "has_audio" in truth:
        assert info.has_audio is truth["has_audio"]
    if "size" in truth:
        assert f"{info.width}x{info.height}" == truth["size"]
    media.validate_sample(info)


@pytest.mark.parametrize("name", VIDEOS)
def test_packet_index_equals_full_decode(name: str) -> None:
    """The frame index comes from packets; it must match what the decoder actually outputs."""
    info = media.probe(clip(name))
    with av.open(clip(name)) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        times = [float(f.pts * vs.time_base) for f in c.decode(vs)]
    assert len(times) == info.n_frames
    assert tuple(times) == info.frame_times


@pytest.mark.parametrize("name", ["shots/goldeneye-vfr-drop3.mp4", "shots/issue-134-rotate.mp4"])
def test_frame_times_at_known_cuts(name: str) -> None:
    """VFR-correct times: the frame shown at each known cut time is the one where the picture jumps.

    (ground_truth.json's cuts_frame_decoded says 141 for the VFR clip's second cut; decoding shows
    frames 139 and 140 are different shots and 140 is at 8.759 s, the cut time, so times are used.)
    """
    info = media.probe(clip(name))
    for t in TRUTH[name]["cuts_time"]:
        cut = min(range(info.n_frames), key=lambda i: abs(info.frame_times[i] - t))
        assert info.frame_times[cut] == pytest.approx(t, abs=0.001)
        frames = [
            rgb.astype(np.int16)
            for _, _, rgb in media.iter_frames(clip(name), cut - 2, cut + 2, size=(64, 64))
        ]
        jumps = [np.abs(b - a).mean() for a, b in zip(frames, frames[1:], strict=False)]
        assert jumps[1] > 20 > 5 > max(jumps[0], jumps[2]), jumps


def test_vfr_clip_fps_and_duration() -> None:
    info = media.probe(clip("shots/goldeneye-vfr-drop3.mp4"))
    assert info.duration_s == pytest.approx(239239 / 24000)
    assert float(info.fps) == pytest.approx(info.n_frames / info.duration_s, abs=0.001)


def test_rotated_clip_is_portrait() -> None:
    info = media.probe(clip("shots/issue-134-rotate.mp4"))
    assert (info.coded_width, info.coded_height) == (1280, 544)
    assert (info.width, info.height) == (544, 1280)
    _, _, rgb = next(media.iter_frames(clip("shots/issue-134-rotate.mp4"), 0, 1))
    assert rgb.shape == (1280, 544, 3)
    _, _, small = next(media.iter_frames(clip("shots/issue-134-rotate.mp4"), 5, 6, size=(136, 320)))
    assert small.shape == (320, 136, 3)


def test_source_dict_is_the_analysis_source() -> None:
    info = media.probe(clip("samples/big_buck_bunny_0_30.webm"))
    src = info.source_dict()
    assert set(src) == {
        "path",
        "duration_s",
        "fps",
        "fps_num",
        "fps_den",
        "variable_frame_rate",
        "n_frames",
        "width",
        "height",
        "rotation_deg",
        "has_audio",
    }
    assert src["fps"] == 24.0 and isinstance(src["fps"], float)
    assert (src["n_frames"], src["width"], src["height"], src["has_audio"]) == (720, 1280, 720, True)
    assert src["duration_s"] == pytest.approx(30.0, abs=0.01)
    json.dumps(src)


# ---------------------------------------------------------------------------------------------
# frame-exact decoding


def _keyframes(name: str) -> list[int]:
    with av.open(clip(name)) as c:
        return [i for i, f in enumerate(c.decode(video=0)) if f.key_frame]


@pytest.mark.parametrize(
    "name", ["shots/counter.mp4", "shots/goldeneye-vfr-drop3.mp4", "shots/issue-134-rotate.mp4"]
)
def test_ranges_equal_full_decode(name: str, full_decode) -> None:
    full = full_decode(name)
    n = len(full)
    assert [i for i, _, _ in full] == list(range(n))
    keys = _keyframes(name)
    late_key = keys[-1]
    ranges = [
        (0, 1),  # first frame
        (late_key + 3, min(n, late_key + 9)),  # starts mid-GOP after the last keyframe
        (n // 2, n // 2 + 1),  # one frame
        (n - 1, n),  # last frame
        (max(0, late_key - 2), min(n, late_key + 2)),  # across a keyframe
    ]
    for start, end in ranges:
        part = list(media.iter_frames(clip(name), start, end))
        assert [i for i, _, _ in part] == list(range(start, end)), (start, end)
        for i, t, rgb in part:
            assert t == full[i][1]
            assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous
            assert digest(rgb) == full[i][2], f"frame {i} differs from the full decode"


@pytest.mark.parametrize("name", ["shots/goldeneye-vfr-drop3.mp4", "shots/issue-134-rotate.mp4",
                                  "shots/testvideo.mp4", "samples/big_buck_bunny_0_30.webm"])
def test_a_range_decodes_from_the_keyframe_just_before_it(name: str) -> None:
    """The first seek lands on the last keyframe at or before the range, not a GOP earlier (MP4 with
    B-frames lands a keyframe early when sought by dts) and not from frame 0."""
    import av

    index = media._probe_cached(clip(name)).index
    assert index is not None
    keys = sorted(index.index_of_pts[p] for p in index.key_pts)
    assert len(keys) > 2
    for frame in (keys[-1] + 1, keys[-2] + 1, len(index.pts) - 1):
        target = index.seek_targets(frame)[0]
        assert target is not None and target > 0
        with av.open(clip(name)) as c:
            vs = c.streams.video[0]
            c.seek(target, stream=vs, backward=True, any_frame=False)
            landed = next(index.index_of_pts[p.pts] for p in c.demux(vs) if p.pts is not None)
        assert landed == max(k for k in keys if k <= frame), (frame, landed)


def test_sized_frames_scale_whole_frame() -> None:
    full = {i: rgb for i, _, rgb in media.iter_frames(clip("shots/counter.mp4"), 10, 12)}
    sized = list(media.iter_frames(clip("shots/counter.mp4"), 10, 12, size=(192, 108)))
    assert [i for i, _, _ in sized] == [10, 11]
    for i, _, rgb in sized:
        assert rgb.shape == (108, 192, 3)
        big = full[i].reshape(108, 10, 192, 10, 3).mean(axis=(1, 3))
        assert np.abs(rgb.astype(float) - big).mean() < 4.0


def test_iter_frames_rejects_out_of_range() -> None:
    with pytest.raises(InputError, match="30 frames"):
        list(media.iter_frames(clip("shots/counter.mp4"), 25, 31))
    assert list(media.iter_frames(clip("shots/counter.mp4"), 5, 5)) == []


def test_corrupt_data_mid_stream_names_the_frame(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.mp4"
    data = bytearray((MEDIA / "shots/goldeneye-vfr-drop3.mp4").read_bytes())
    mid = len(data) // 2
    data[mid : mid + 20000] = np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    bad.write_bytes(bytes(data))
    assert media.probe(bad).n_frames == 160  # the packets are intact, their contents are not
    with pytest.raises(InputError, match=r"frame \d+ cannot be decoded"):
        for _ in media.iter_frames(str(bad)):
            pass


# ---------------------------------------------------------------------------------------------
# segments and concatenation

W, H = 128, 96
BITS = 8


def index_frame(i: int) -> np.ndarray:
    """A frame whose 8 vertical bars are black or white by the bits of i (LSB first)."""
    a = np.full((H, W, 3), 64, np.uint8)
    bar = W // BITS
    for b in range(BITS):
        a[:, b * bar : (b + 1) * bar] = 255 if (i >> b) & 1 else 0
    return a


def read_index(rgb: np.ndarray) -> int:
    bar = rgb.shape[1] // BITS
    return sum(1 << b for b in range(BITS) if rgb[:, b * bar + 3 : (b + 1) * bar - 3].mean() > 127)


def write_segments(tmp_path: Path, lengths: list[int], fps: Fraction) -> list[Path]:
    paths, k = [], 0
    for j, n in enumerate(lengths):
        p = tmp_path / f"seg{j:03d}.mp4"
        with media.SegmentWriter(p, width=W, height=H, fps=fps) as w:
            for _ in range(n):
                w.write(index_frame(k))
                k += 1
        assert w.n_frames == n
        paths.append(p)
    return paths


def test_segment_is_closed_gop_with_exact_times(tmp_path: Path) -> None:
    fps = Fraction(24000, 1001)
    (p,) = write_segments(tmp_path, [24], fps)
    seg = media.verify_segment(p, expected_frames=24, fps=fps)
    assert seg == media.SegmentInfo(n_frames=24, first_is_keyframe=True, duration_s=float(24 / fps))
    info = media.probe(p)
    assert info.n_frames == 24 and info.fps == fps
    assert info.frame_times == tuple(float(i / fps) for i in range(24))
    assert [read_index(rgb) for _, _, rgb in media.iter_frames(str(p))] == list(range(24))
    assert not list(tmp_path.glob("*.part")), "the temporary file must be gone"


def test_verify_segment_rejects_wrong_count_fps_and_start(tmp_path: Path) -> None:
    fps = Fraction(25)
    (p,) = write_segments(tmp_path, [7], fps)
    with pytest.raises(JobError, match="holds 7 frames, expected 8"):
        media.verify_segment(p, expected_frames=8, fps=fps)
    with pytest.raises(JobError, match="frame 1 is at"):
        media.verify_segment(p, expected_frames=7, fps=Fraction(30))
    # The same packets without the first (the keyframe): a segment that starts mid-GOP.
    headless = tmp_path / "headless.mp4"
    with av.open(str(p)) as src, av.open(str(headless), "w", format="mp4") as dst:
        ivs = src.streams.video[0]
        ovs = dst.add_stream_from_template(ivs)
        packets = [pk for pk in src.demux(ivs) if pk.size]
        for pk in sorted(packets, key=lambda pk: pk.dts)[1:]:
            pk.stream = ovs
            dst.mux(pk)
    with pytest.raises(JobError, match="keyframe"):
        media.verify_segment(headless, expected_frames=6, fps=fps)
    with pytest.raises(JobError, match="does not exist"):
        media.verify_segment(tmp_path / "missing.mp4", expected_frames=1, fps=fps)


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(30000, 1001)], ids=["24", "29.97"])
def test_concat_awkward_segments_recovers_every_frame(tmp_path: Path, fps: Fraction) -> None:
    lengths = [1, 7, 24, 2, 13, 1]
    segments = write_segments(tmp_path, lengths, fps)
    for p, n in zip(segments, lengths, strict=True):
        media.verify_segment(p, expected_frames=n, fps=fps)
    total = sum(lengths)
    t = np.arange(int(48000 * 3.0)) / 48000  # longer than the video: must be trimmed
    media.write_audio(tmp_path / "mix.m4a", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000)

    out = tmp_path / "final.mp4"
    info = media.concat_segments(segments, out, audio_path=tmp_path / "mix.m4a")
    assert info.n_frames == total and info.fps == fps and info.has_audio
    assert info.frame_times == tuple(float(i / fps) for i in range(total))
    decoded = list(media.iter_frames(str(out)))
    assert [read_index(rgb) for _, _, rgb in decoded] == list(range(total))
    # faststart: the index (moov) comes before the media data (mdat).
    head = out.read_bytes()
    assert 0 < head.find(b"moov") < head.find(b"mdat")
    samples, rate = media.read_audio(str(out), rate=48000)
    video_s = total / fps
    assert abs(len(samples) / rate - float(video_s)) < 1024 / 48000 + 1e-9
    assert not list(tmp_path.glob("*.part"))


def test_concat_without_audio_and_middle_ranges(tmp_path: Path) -> None:
    fps = Fraction(10)
    segments = write_segments(tmp_path, [5, 5, 5], fps)
    out = tmp_path / "plain.mp4"
    info = media.concat_segments(segments, out, faststart=False)
    assert info.n_frames == 15 and not info.has_audio
    assert [read_index(rgb) for _, _, rgb in media.iter_frames(str(out), 6, 9)] == [6, 7, 8]


def test_concat_rejects_mismatched_segments(tmp_path: Path) -> None:
    fps = Fraction(24)
    (a,) = write_segments(tmp_path, [3], fps)
    b = tmp_path / "other_size.mp4"
    with media.SegmentWriter(b, width=64, height=48, fps=fps) as w:
        for _ in range(3):
            w.write(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(JobError, match="does not match"):
        media.concat_segments([a, b], tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()
    with pytest.raises(JobError, match="no segments"):
        media.concat_segments([], tmp_path / "out.mp4")


def test_segment_writer_rejects_odd_size_and_bad_frames(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="odd"):
        media.SegmentWriter(tmp_path / "odd.mp4", width=101, height=50, fps=Fraction(24))
    with pytest.raises(InputError, match="uint8"):
        with media.SegmentWriter(tmp_path / "bad.mp4", width=64, height=48, fps=Fraction(24)) as w:
            w.write(np.zeros((48, 64, 3), np.float32))
    assert list(tmp_path.iterdir()) == [], "a failed segment leaves no file behind"


# ---------------------------------------------------------------------------------------------
# audio


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(x)


@pytest.mark.parametrize("channels", [1, 2])
def test_audio_round_trip_keeps_frequency_and_duration(tmp_path: Path, channels: int) -> None:
    rate, seconds = 44100, 1.5
    t = np.arange(int(rate * seconds)) / rate
    sine = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    path = tmp_path / "sine.m4a"
    media.write_audio(path, np.stack([sine] * channels) if channels == 2 else sine, rate)
    info = media.probe(path)
    assert (info.has_video, info.has_audio, info.audio_codec, info.audio_channels) == (
        False,
        True,
        "aac",
        channels,
    )

    mono, got_rate = media.read_audio(str(path), rate=rate)
    assert got_rate == rate and mono.dtype == np.float32 and mono.ndim == 1
    assert abs(len(mono) / rate - seconds) < 1 / 24
    assert _peak_hz(mono, rate) == pytest.approx(440.0, abs=1.0)
    assert np.sqrt(np.mean(mono[rate // 10 : -rate // 10] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)

    both, _ = media.read_audio(str(path), rate=22050, mono=False)
    assert both.shape[0] == channels and abs(both.shape[1] / 22050 - seconds) < 1 / 24
    assert _peak_hz(both[0], 22050) == pytest.approx(440.0, abs=1.0)


def test_read_audio_of_real_clips() -> None:
    assert media.read_audio(clip("shots/counter.mp4")) is None
    samples, rate = media.read_audio(clip("samples/big_buck_bunny_0_30.webm"))
    assert rate == 22050 and samples.ndim == 1
    assert len(samples) / rate == pytest.approx(30.0, abs=0.1)
    assert 0.001 < np.abs(samples).mean() < 1.0


def test_write_audio_rejects_bad_samples(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="shape"):
        media.write_audio(tmp_path / "a.m4a", np.zeros((9, 100), np.float32), 44100)
    with pytest.raises(InputError, match="NaN"):
        media.write_audio(tmp_path / "a.m4a", np.full(100, np.nan, np.float32), 44100)


# ---------------------------------------------------------------------------------------------
# bad inputs


def test_probe_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file"):
        media.probe(tmp_path / "nope.mp4")


def test_probe_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        media.probe(tmp_path)


def test_probe_zero_bytes(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        media.probe(tmp_path / "empty.mp4")


def test_probe_text_renamed_mp4(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("these are my notes, not a video\n" * 20)
    with pytest.raises(InputError, match="not a video or audio file") as err:
        media.probe(tmp_path / "notes.mp4")
    assert "MP4" in str(err.value)  # says what to upload instead


@pytest.mark.parametrize(
    "name", ["shots/goldeneye-vfr-drop3.mp4", "shots/counter.mp4", "samples/big_buck_bunny_0_30.webm"]
)
def test_probe_truncated_copy(tmp_path: Path, name: str) -> None:
    data = (MEDIA / name).read_bytes()
    cut = tmp_path / ("cut" + Path(name).suffix)
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated|incomplete") as err:
        media.probe(cut)
    assert "upload" in str(err.value)


def test_probe_truncated_faststart_mp4(tmp_path: Path) -> None:
    segments = write_segments(tmp_path, [12, 12], Fraction(24))
    whole = tmp_path / "whole.mp4"
    media.concat_segments(segments, whole)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    with pytest.raises(InputError, match="truncated: the header lists 24 video frames"):
        media.probe(cut)


def test_validate_audio_only(tmp_path: Path) -> None:
    media.write_audio(tmp_path / "song.m4a", np.zeros(44100, np.float32), 44100)
    with pytest.raises(InputError, match="song.m4a is an audio-only file") as err:
        media.validate_sample(media.probe(tmp_path / "song.m4a"))
    assert "add the video" in str(err.value)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_validate_still_image(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(np.full((64, 80, 3), 120, np.uint8)).save(path)
    with pytest.raises(InputError, match="is an image, not a video"):
        media.validate_sample(media.probe(path))


def test_validate_one_frame_video(tmp_path: Path) -> None:
    (p,) = write_segments(tmp_path, [1], Fraction(24))
    info = media.probe(p)
    assert info.n_frames == 1
    with pytest.raises(InputError, match="single frame"):
        media.validate_sample(info)


def test_validate_zero_frames_size_and_codec() -> None:
    good = media.probe(clip("shots/counter.mp4"))
    media.validate_sample(good)
    with pytest.raises(InputError, match="no frames"):
        media.validate_sample(dataclasses.replace(good, n_frames=0, frame_times=()))
    with pytest.raises(InputError, match="8192 px") as err:
        media.validate_sample(dataclasses.replace(good, width=16384))
    assert "counter.mp4 is 16384x1080" in str(err.value)
    with pytest.raises(InputError, match="cannot decode") as err:
        media.validate_sample(dataclasses.replace(good, video_codec="nosuchcodec"))
    assert "H.264" in str(err.value)


def test_truncated_copy_of_real_clip_is_rejected_not_crashing(tmp_path: Path) -> None:
    """A copy cut at a quarter still opens as WebM (its header is intact) but must not pass as whole."""
    src = MEDIA / "samples/big_buck_bunny_0_30.webm"
    cut = tmp_path / "bbb.webm"
    shutil.copyfile(src, cut)
    with open(cut, "r+b") as f:
        f.truncate(src.stat().st_size // 4)
    with pytest.raises(InputError, match="truncated: the header says 30.00 s"):
        media.probe(cut)


@pytest.mark.parametrize(
    ("rotation", "corner"), [(90, "bottom_left"), (-90, "top_right"), (180, "bottom_right")]
)
def test_display_rotation_turns_the_picture(tmp_path: Path, rotation: int, corner: str) -> None:
    """A white block in the coded top-left corner lands where a player shows it after the turn.

    The display matrix angle is counterclockwise: +90 moves the top-left corner to the bottom-left.
    """
    path = tmp_path / f"rot{rotation}.mp4"
    coded = np.zeros((48, 64, 3), np.uint8)
    coded[:12, :12] = 255
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(rotation)
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(coded, format="rgb24")
            frame.pts = i
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    info = media.probe(path)
    assert info.rotation_deg == rotation
    quarter = rotation % 180 != 0
    assert (info.width, info.height) == ((48, 64) if quarter else (64, 48))
    _, _, rgb = next(media.iter_frames(str(path), 1, 2))
    assert rgb.shape == (info.height, info.width, 3)
    h, w = rgb.shape[:2]
    corners = {
        "top_left": rgb[:6, :6],
        "top_right": rgb[:6, w - 6 :],
        "bottom_left": rgb[h - 6 :, :6],
        "bottom_right": rgb[h - 6 :, w - 6 :],
    }
    assert {name for name, px in corners.items() if px.mean() > 200} == {corner}


def test_segments_encode_to_the_same_bits_every_time(tmp_path) -> None:
    """A retried range must be identical to its first try: the same frames give the same segment,
    whatever the process did before (x264's AVX-512 code made this vary with heap contents)."""
    import hashlib

    rng = np.random.default_rng(7)
    base = rng.integers(0, 255, (27, 48, 3), dtype=np.uint8)
    frames = [
        np.ascontiguousarray(np.kron(np.roll(base, i, axis=1), np.ones((4, 4, 1), np.uint8)))
        for i in range(8)
    ]
    digests = set()
    for k in range(6):
        junk = [rng.bytes(1 << (10 + (k + j) % 10)) for j in range(50)]  # stir the heap between encodes
        path = tmp_path / f"seg{k}.mp4"
        with media.SegmentWriter(path, width=192, height=108, fps=Fraction(24)) as w:
            for f in frames:
                w.write(f)
        del junk
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
