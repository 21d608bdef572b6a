"""nodes.formats: every container/codec, resolutions and aspects, stream copy, faststart, bad requests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from lookalike.nodes import media
from lookalike.nodes.formats import export, output_size
from synth import orange_share, two_subject_clip

from lookalike.errors import InputError

RATE = 48000


def _final(
    tmp_path: Path, *, width: int = 64, height: int = 36, n: int = 12, fps: Fraction = Fraction(24)
) -> Path:
    """A final like assemble writes it: H.264 segment + AAC audio, concat'ed with faststart.

    Frame i has luma ~ 20 * i, with a white vertical stripe 4 px wide at the horizontal centre.
    """
    seg = tmp_path / "seg.mp4"
    with media.SegmentWriter(seg, width=width, height=height, fps=fps) as w:
        for i in range(n):
            f = np.full((height, width, 3), 20 * i % 200, np.uint8)
            f[:, width // 2 - 2 : width // 2 + 2] = 255
            w.write(f)
    t = np.arange(int(round(float(n / fps) * RATE))) / RATE
    media.write_audio(tmp_path / "a.m4a", np.vstack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2), RATE)
    final = tmp_path / "final.mp4"
    media.concat_segments([seg], final, audio_path=tmp_path / "a.m4a")
    return final


@pytest.mark.parametrize(
    ("container", "codec", "video", "audio"),
    [
        ("mp4", "h264", "h264", "aac"),
        ("mp4", "h265", "hevc", "aac"),
        ("webm", "vp9", "vp9", "opus"),
        ("webm", "av1", "av1", "opus"),
    ],
    ids=["mp4/h264", "mp4/h265", "webm/vp9", "webm/av1"],
)
def test_every_codec_keeps_frames_duration_and_content(
    tmp_path: Path, container: str, codec: str, video: str, audio: str
) -> None:
    final = _final(tmp_path)
    out = tmp_path / f"out.{container}"
    info = export(final, out, container=container, codec=codec, crf=20)
    src = media.probe(final)
    assert info.container.startswith("mov" if container == "mp4" else "matroska")
    assert (info.n_frames, info.width, info.height) == (src.n_frames, 64, 36)
    assert info.duration_s == pytest.approx(src.duration_s, abs=1 / 24)
    assert (info.video_codec or "").replace("libdav1d", "av1") == video
    assert info.audio_codec == audio
    lumas = [float(f[:, :20].mean()) for _, _, f in media.iter_frames(str(out))]
    expected = [20 * i % 200 for i in range(12)]
    assert np.allclose(lumas, expected, atol=8)  # the frames in order, none dropped or repeated
    assert not list(tmp_path.glob(".out*.part"))


def test_same_codec_and_size_is_a_stream_copy(tmp_path: Path) -> None:
    final = _final(tmp_path)
    export(final, tmp_path / "copy.mp4", container="mp4", codec="h264")
    with av.open(str(final)) as a, av.open(str(tmp_path / "copy.mp4")) as b:
        pa = [bytes(p) for p in a.demux(video=0) if p.size]
        pb = [bytes(p) for p in b.demux(video=0) if p.size]
    assert pa == pb  # the very same packets: no generation loss


def test_mp4_is_faststart_and_h265_is_tagged_hvc1(tmp_path: Path) -> None:
    final = _final(tmp_path)
    export(final, tmp_path / "hevc.mp4", container="mp4", codec="h265")
    data = (tmp_path / "hevc.mp4").read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")
    assert b"hvc1" in data and b"hev1" not in data


@pytest.mark.parametrize(
    ("size", "resolution", "aspect", "expected"),
    [
        ((1280, 720), "720p", None, (1280, 720)),
        ((1280, 720), "1080p", None, (1920, 1080)),
        ((1280, 720), "4k", None, (3840, 2160)),
        ((1920, 1080), "source", None, (1920, 1080)),
        ((1920, 1080), None, "9:16", (608, 1080)),
        ((1920, 1080), "1080p", "9:16", (1080, 1920)),
        ((1920, 1080), "720p", "1:1", (720, 720)),
        ((1080, 1920), "1080p", "16:9", (1920, 1080)),
        ((1080, 1920), "720p", None, (720, 1280)),
        ((853, 480), "720p", None, (1280, 720)),
    ],
)
def test_output_sizes_are_even_with_the_short_side_named(
    size: tuple[int, int], resolution: str | None, aspect: str | None, expected: tuple[int, int]
) -> None:
    (cw, ch, cx, cy), out = output_size(*size, resolution, aspect)
    assert out == expected and out[0] % 2 == 0 and out[1] % 2 == 0
    assert cx == (size[0] - cw) // 2 and cy == (size[1] - ch) // 2  # centred


@pytest.mark.parametrize(("aspect", "w", "h"), [("9:16", 20, 36), ("1:1", 36, 36), ("16:9", 64, 36)])
def test_aspect_crops_the_centre(tmp_path: Path, aspect: str, w: int, h: int) -> None:
    final = _final(tmp_path)
    info = export(final, tmp_path / "v.mp4", container="mp4", codec="h264", aspect=aspect)
    assert (info.width, info.height, info.n_frames) == (w, h, 12)
    _, _, frame = next(media.iter_frames(str(tmp_path / "v.mp4"), 0, 1))
    column = frame.astype(float).mean(axis=(0, 2))
    assert abs(int(np.argmax(column)) - w / 2) <= 2  # the centre stripe is still in the middle


def test_resolution_scales_a_small_clip_up(tmp_path: Path) -> None:
    final = _final(tmp_path, n=4)
    info = export(final, tmp_path / "hd.mp4", container="mp4", codec="h264", resolution="720p")
    assert (info.width, info.height, info.n_frames) == (1280, 720, 4)


def test_fractional_frame_rate_keeps_every_timestamp(tmp_path: Path) -> None:
    final = _final(tmp_path, n=10, fps=Fraction(30000, 1001))
    info = export(final, tmp_path / "x.webm", container="webm", codec="vp9")
    src = media.probe(final)
    assert info.n_frames == 10
    assert np.allclose(info.frame_times, src.frame_times, atol=0.0015)  # WebM keeps milliseconds


def test_bad_requests_name_what_to_use(tmp_path: Path) -> None:
    final = _final(tmp_path, n=2)
    out = tmp_path / "x.mp4"
    with pytest.raises(InputError, match="does not go in mp4"):
        export(final, out, container="mp4", codec="vp9")
    with pytest.raises(InputError, match="container 'avi'"):
        export(final, out, container="avi", codec="h264")
    with pytest.raises(InputError, match="resolution '8k'"):
        export(final, out, container="mp4", codec="h264", resolution="8k")
    with pytest.raises(InputError, match="aspect '4:3'"):
        export(final, out, container="mp4", codec="h264", aspect="4:3")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(InputError):
        export(tmp_path / "junk.mp4", out, container="mp4", codec="h264")
    assert not out.exists()


def test_an_av1_export_leaves_the_process_scheduling_alone(tmp_path):
    """libsvtav1 switches the thread that opens it to real-time priority when run as root; every
    process started afterwards would inherit it. The export must restore the policy."""
    import os

    src = _final(tmp_path)
    before = os.sched_getscheduler(0)
    export(src, tmp_path / "out.webm", container="webm", codec="av1")
    assert os.sched_getscheduler(0) == before


def test_a_vertical_crop_follows_each_scenes_subject(tmp_path: Path) -> None:
    from lookalike.nodes.formats import follow_subject

    final = two_subject_clip(tmp_path)
    scenes = [(0, 16), (16, 32)]
    info = export(final, tmp_path / "v.mp4", container="mp4", codec="h264", aspect="9:16", scenes=scenes)
    centred = export(final, tmp_path / "c.mp4", container="mp4", codec="h264", aspect="9:16")
    assert (info.width, info.height, info.n_frames) == (centred.width, centred.height, 32) == (102, 180, 32)
    followed = [f for _, _, f in media.iter_frames(str(tmp_path / "v.mp4"))]
    still = [f for _, _, f in media.iter_frames(str(tmp_path / "c.mp4"))]
    # The whole disc is in the narrow window in every frame (pi 30^2 / (102 x 180) = 0.154 of it), and
    # the centred crop misses it.
    assert min(orange_share(f) for f in followed) > 0.13
    assert max(orange_share(f) for f in still) < 0.01
    # The window holds still within a scene (no reframing mid-shot) and moves at the cut.
    assert all(np.abs(followed[i].astype(int) - followed[i + 1].astype(int)).mean() < 6 for i in range(15))
    xs, ys = follow_subject(str(final), media.probe(str(final)), (102, 180, 109, 0), scenes)
    # Clamped at both edges (each disc sits nearer its edge than half a window), stepping at the cut.
    assert (xs, ys) == (f"0+({320 - 102})*gte(n,16)", "0")


def test_a_crop_with_nothing_standing_out_stays_centred(tmp_path: Path) -> None:
    from lookalike.nodes.formats import follow_subject, subject_centre

    rng = np.random.default_rng(3)
    assert subject_centre(np.full((90, 160, 3), 120, np.uint8)) is None
    assert subject_centre(rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)) is None
    final = _final(tmp_path)  # a flat frame with a thin centre stripe
    crop, _ = output_size(64, 36, None, "9:16")
    moves = follow_subject(str(final), media.probe(str(final)), crop, [(0, 12)])
    assert moves is None or moves[0] == str(crop[2])
    whole, _ = output_size(64, 36, None, None)
    assert follow_subject(str(final), media.probe(str(final)), whole, [(0, 12)]) is None
