"""Media I/O on a node: probe, frame-exact decode, segment encode/verify, concat and audio (PyAV).

Everything here goes through PyAV (FFmpeg inside its wheel); nothing shells out to an `ffmpeg` binary.

Frame numbering is the one DESIGN.md fixes: 0-based indices of decoded frames in display order, times
are presentation times in seconds (never index x 1/fps: variable frame rate is real). The frame index
of a file comes from demuxing its packets (no decode), cached per file version, so `iter_frames` can
seek to the keyframe before any range and still say which index each decoded frame has.

Errors: bad or unsupported user media raises `InputError` (`NotFoundError` for a missing path), with a
message that names the file and what to do; a segment or concatenation that our own encoder got wrong
raises `JobError` (the job failed, the user's input is fine).
"""

from __future__ import annotations

import bisect
import functools
import os
import statistics
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
from av.video.reformatter import VideoReformatter

from lookalike.errors import InputError, JobError, NotFoundError

__all__ = [
    "MAX_SIDE_PX",
    "MediaInfo",
    "SegmentInfo",
    "SegmentWriter",
    "concat_segments",
    "iter_frames",
    "iter_scaled_frames",
    "probe",
    "read_audio",
    "validate_sample",
    "verify_segment",
    "write_audio",
]

MAX_SIDE_PX = 8192
"""Largest display width or height a sample may have (8K); larger frames do not fit a node's memory plan."""

# Container formats FFmpeg uses for single still images: a sample in one of these is a picture.
_IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif_pipe"}
_IMAGE_FORMATS |= {"jpegxl_pipe", "qoi_pipe", "ppm_pipe", "pgm_pipe", "psd_pipe", "svg_pipe", "dpx_pipe"}
# A video shorter than the container says by more than this is cut short (not just a longer audio tail
# or rounding): max(seconds, fraction of the stated duration).
_TRUNCATION_SLACK_S = 0.5
_TRUNCATION_SLACK_FRACTION = 0.02


@dataclass(frozen=True)
class MediaInfo:
    """What `probe` learns about a media file. Sizes are display sizes (rotation applied).

    `n_frames` and `frame_times` describe the decoded video frames in display order; `fps` is the
    stream's average rate (for variable frame rate: n_frames / duration, rounded to a millihertz).
    `rotation_deg` is the display rotation counterclockwise in degrees (FFmpeg's display matrix
    convention, as ffprobe prints it): a phone clip shot upright usually reads -90.
    """

    path: str
    container: str
    duration_s: float
    fps: Fraction
    n_frames: int
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation_deg: int
    has_video: bool
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None
    video_codec: str | None
    audio_codec: str | None
    variable_frame_rate: bool
    frame_times: tuple[float, ...]

    def source_dict(self) -> dict[str, Any]:
        """The `source` object of analysis.json."""
        return {
            "path": self.path,
            "duration_s": round(self.duration_s, 6),
            "fps": float(self.fps),
            # The exact rate, so a remake's timeline has the sample's frame rate, not a rounding of it.
            "fps_num": self.fps.numerator,
            "fps_den": self.fps.denominator,
            "variable_frame_rate": self.variable_frame_rate,
            "n_frames": self.n_frames,
            "width": self.width,
            "height": self.height,
            "rotation_deg": self.rotation_deg,
            "has_audio": self.has_audio,
        }


@dataclass(frozen=True)
class SegmentInfo:
    """What `verify_segment` found in a segment it accepted."""

    n_frames: int
    first_is_keyframe: bool
    duration_s: float


# --------------------------------------------------------------------------------------------------
# Opening and indexing


def _check_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"{p}: no such file", hint="check the path, or upload the video again")
    if p.is_dir():
        raise InputError(f"{p} is a directory, not a video file", hint="pass the path of a video file")
    if p.stat().st_size == 0:
        raise InputError(
            f"{p} is empty (0 bytes)",
            hint="the upload or copy did not finish; upload or export the video again",
        )
    return p


def _open_input(path: str | os.PathLike[str]) -> av.container.InputContainer:
    p = _check_path(path)
    try:
        return av.open(str(p), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise _unreadable(p, exc) from exc


def _unreadable(p: Path, exc: Exception) -> InputError:
    detail = str(exc)
    if "moov atom not found" in detail:
        return InputError(
            f"{p} is an incomplete MP4: its index (moov atom) is missing, so the file was cut short "
            "during upload, copy or recording",
            hint="upload the complete file again, or re-export it from the editor",
        )
    return InputError(
        f"{p} is not a video or audio file that can be read ({detail.split(';')[0]})",
        hint="export the video as MP4 (H.264) or WebM and upload that file",
    )


@dataclass(frozen=True)
class _VideoIndex:
    """The frame index of a video stream, from its packets. Display order unless said otherwise."""

    time_base: Fraction
    pts: tuple[int, ...]  # per display frame, ticks of time_base
    durations: tuple[int, ...]  # per display frame, ticks
    decode_pos: tuple[int, ...]  # per display frame, its packet's position in decode order
    key_decode_pos: tuple[int, ...]  # decode positions of keyframe packets, ascending
    key_pts: tuple[int, ...]  # their pts
    key_seek: tuple[int, ...]  # their seek target (dts where known: demuxers index by dts or pts <= it)

    @functools.cached_property
    def index_of_pts(self) -> dict[int, int]:
        return {p: i for i, p in enumerate(self.pts)}

    def seek_targets(self, frame: int) -> list[int | None]:
        """Ticks to seek to so decoding reaches display frame `frame` intact, best first; None: from
        the start. The caller takes the first that decodes `frame` (a seek can land too late).

        The keyframe must come before the frame in decode order AND in display order: a leading
        B-frame of an open GOP is shown before its keyframe and needs the GOP before. Demuxers differ
        in what they index by: MP4's lands on the keyframe for its pts but on the keyframe before for
        its dts (a whole GOP decoded for nothing), others index by dts; so pts first, then dts, then
        the keyframe before (an open GOP), then the start.
        """
        k = bisect.bisect_right(self.key_decode_pos, self.decode_pos[frame]) - 1
        while k >= 0 and self.key_pts[k] > self.pts[frame]:
            k -= 1
        targets: list[int | None] = []
        if k > 0:
            targets += dict.fromkeys((self.key_pts[k], self.key_seek[k]))
        if k > 1:
            targets.append(self.key_seek[k - 1])
        return [*targets, None]


@dataclass(frozen=True)
class _Probe:
    info: MediaInfo
    index: _VideoIndex | None


def _file_key(path: str | os.PathLike[str]) -> tuple[str, int, int, int]:
    # The inode catches a file replaced by os.replace within one mtime tick.
    p = _check_path(path)
    st = p.stat()
    return (str(p.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


def _probe_cached(path: str | os.PathLike[str]) -> _Probe:
    return _probe_key(_file_key(path), str(path))


@functools.lru_cache(maxsize=64)
def _probe_key(key: tuple[str, int, int, int], shown_path: str) -> _Probe:
    return _do_probe(Path(shown_path))


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe a media file from its packets (no full decode; one frame is decoded for rotation).

    Raises InputError (NotFoundError for a missing path) for a directory, an empty, truncated or
    corrupt file, or a file that is not media at all. Does not judge whether the file is a usable
    sample: that is `validate_sample`.
    """
    return _probe_cached(path).info


def _do_probe(p: Path) -> _Probe:
    with _open_input(p) as c:
        vs = c.streams.video[0] if c.streams.video else None
        aus = c.streams.audio[0] if c.streams.audio else None
        # Every audio and video stream counts towards the end of the data (a second, longer audio
        # track must not read as truncation).
        wanted = [*c.streams.video, *c.streams.audio]
        if not wanted:
            raise InputError(
                f"{p} holds neither video nor audio (format {c.format.name})",
                hint="upload a video file such as MP4 or WebM",
            )
        vpk: list[tuple[int | None, int | None, bool, int, bool]] = []
        ends: list[float] = []
        starts: list[float] = []
        raw_video_packets = 0
        try:
            for pkt in c.demux(wanted):
                if pkt.size == 0:
                    continue
                tb = pkt.time_base
                if pkt.pts is not None and tb is not None:
                    starts.append(float(pkt.pts * tb))
                    ends.append(float((pkt.pts + (pkt.duration or 0)) * tb))
                if vs is not None and pkt.stream.index == vs.index:
                    raw_video_packets += 1
                    vpk.append((pkt.pts, pkt.dts, pkt.is_keyframe, pkt.duration or 0, pkt.is_discard))
        except av.error.FFmpegError as exc:
            raise InputError(
                f"{p} is corrupt: reading it failed after {raw_video_packets} video packets ({exc})",
                hint="re-export the video, or upload it again if the copy was damaged",
            ) from exc

        if vs is not None and vs.frames and raw_video_packets < vs.frames:
            raise _truncated(
                p, f"the header lists {vs.frames} video frames, the file holds {raw_video_packets}"
            )
        stated = c.duration / 1e6 if c.duration else None
        if stated and ends:
            held = max(ends) - min(starts)
            if held < stated - max(_TRUNCATION_SLACK_S, _TRUNCATION_SLACK_FRACTION * stated):
                raise _truncated(p, f"the header says {stated:.2f} s, the data ends after {held:.2f} s")

        index = _build_index(vs, vpk) if vs is not None else None
        rotation = 0
        video_codec = None
        if vs is not None:
            video_codec = vs.codec_context.name if vs.codec_context is not None else None
            if video_codec is not None and _has_decoder(video_codec) and index is not None and index.pts:
                rotation = _first_frame_rotation(p)

        container_name = c.format.name
        audio_rate = aus.codec_context.sample_rate if aus is not None else None
        audio_channels = aus.codec_context.channels if aus is not None else None
        audio_codec = aus.codec_context.name if aus is not None else None

        if vs is not None and index is not None:
            tb = index.time_base
            n = len(index.pts)
            times = tuple(float(t * tb) for t in index.pts)
            if n:
                duration_s = float((index.pts[-1] + index.durations[-1] - index.pts[0]) * tb)
            else:
                duration_s = 0.0
            vfr = _is_vfr(index)
            fps = _frame_rate(vs, n, duration_s, vfr)
            cw, ch = vs.codec_context.width, vs.codec_context.height
            w, h = (ch, cw) if rotation % 180 else (cw, ch)
        else:
            n, times, vfr, fps, cw, ch, w, h = 0, (), False, Fraction(0), 0, 0, 0, 0
            duration_s = c.duration / 1e6 if c.duration else (max(ends) - min(starts) if ends else 0.0)

    info = MediaInfo(
        path=str(p),
        container=container_name,
        duration_s=duration_s,
        fps=fps,
        n_frames=n,
        width=w,
        height=h,
        coded_width=cw,
        coded_height=ch,
        rotation_deg=rotation,
        has_video=vs is not None,
        has_audio=aus is not None,
        audio_rate=audio_rate,
        audio_channels=audio_channels,
        video_codec=video_codec,
        audio_codec=audio_codec,
        variable_frame_rate=vfr,
        frame_times=times,
    )
    return _Probe(info=info, index=index)


def _truncated(p: Path, detail: str) -> InputError:
    return InputError(
        f"{p} is truncated: {detail}",
        hint="the upload or copy was cut short; upload the complete file again",
    )


def _build_index(vs: av.video.stream.VideoStream, vpk: list) -> _VideoIndex:
    tb = vs.time_base or Fraction(1, 1)
    # Packets before the first keyframe (in decode order) decode to nothing: the decoder waits for a
    # keyframe. Discarded packets (edit lists) are decoded for reference but never output.
    first_key = next((i for i, pk in enumerate(vpk) if pk[2]), len(vpk))
    kept = [(pos, pk) for pos, pk in enumerate(vpk[first_key:]) if not pk[4]]
    if any(pk[0] is None for _, pk in kept):
        # No timestamps on packets (raw elementary streams): number them in decode order, which is
        # display order for the codecs that ship that way without reordering.
        kept = [(pos, (pos, pos, pk[2], 1, pk[4])) for pos, pk in kept]
    display = sorted(kept, key=lambda item: item[1][0])
    pts = tuple(pk[0] for _, pk in display)
    deltas = [b - a for a, b in zip(pts, pts[1:], strict=False)]
    typical = int(statistics.median(deltas)) if deltas else 1
    # The last frame lasts until the stream's stated end where there is one: packet durations in MP4
    # are decode-order (dts) steps, not how long the last frame is shown.
    last = typical
    if pts:
        stream_end = (vs.start_time or 0) + vs.duration if vs.duration else None
        if stream_end is not None and stream_end > pts[-1]:
            last = stream_end - pts[-1]
        elif display[-1][1][3]:
            last = display[-1][1][3]
    durations = tuple(deltas) + ((last,) if pts else ())
    keys = [(pos, pk) for pos, pk in enumerate(vpk[first_key:]) if pk[2]]
    return _VideoIndex(
        time_base=Fraction(tb),
        pts=pts,
        durations=durations,
        decode_pos=tuple(pos for pos, _ in display),
        key_decode_pos=tuple(pos for pos, _ in keys),
        key_pts=tuple(pk[0] if pk[0] is not None else pos for pos, pk in keys),
        key_seek=tuple(
            min(x for x in (pk[0], pk[1]) if x is not None) if pk[0] is not None else pos for pos, pk in keys
        ),
    )


def _is_vfr(index: _VideoIndex) -> bool:
    """Frame durations that differ by more than timestamp rounding (1 tick, or 1 %)."""
    deltas = [b - a for a, b in zip(index.pts, index.pts[1:], strict=False)]
    if len(deltas) < 2:
        return False
    typical = statistics.median(deltas)
    return max(deltas) - min(deltas) > max(1, 0.01 * typical)


# Rates a VFR average snaps to when it is this close (relative): cameras that drop a frame now and
# then are still "29.97 fps" to the user.
_COMMON_RATES = [Fraction(r) for r in (24, 25, 30, 48, 50, 60, 120)] + [
    Fraction(r * 1000, 1001) for r in (24, 30, 60)
]


def _frame_rate(vs: av.video.stream.VideoStream, n: int, duration_s: float, vfr: bool) -> Fraction:
    measured = Fraction(n / duration_s) if duration_s > 0 and n else None
    if not vfr:
        for rate in (vs.average_rate, vs.guessed_rate):
            if rate and (measured is None or abs(float(rate) / float(measured) - 1) < 0.01):
                return Fraction(rate)
    if measured is None:
        return Fraction(vs.average_rate or vs.guessed_rate or 0)
    for rate in _COMMON_RATES:
        if abs(float(rate) / float(measured) - 1) < 0.001:
            return rate
    return Fraction(round(measured * 1000), 1000)


def _has_decoder(codec_name: str) -> bool:
    try:
        return av.codec.Codec(codec_name, "r") is not None
    except (av.error.FFmpegError, ValueError, KeyError):
        return False


def _first_frame_rotation(p: Path) -> int:
    """Rotation from the display matrix FFmpeg attaches to decoded frames (PyAV has no stream getter)."""
    with av.open(str(p), metadata_errors="ignore") as c:
        try:
            for frame in c.decode(c.streams.video[0]):
                return _quarter_turns(frame.rotation) * 90 if frame.rotation else 0
        except av.error.FFmpegError as exc:
            raise InputError(
                f"{p} is corrupt: its first video frame cannot be decoded ({exc})",
                hint="re-export the video, or upload it again if the copy was damaged",
            ) from exc
    return 0


def _quarter_turns(rotation: float) -> int:
    """Display rotation as signed quarter turns, (-2, 2]: -90 -> -1, 270 -> -1, 180 -> 2."""
    q = round(rotation / 90) % 4
    return q - 4 if q > 2 else q


# --------------------------------------------------------------------------------------------------
# Validation


def validate_sample(info: MediaInfo) -> None:
    """Raise InputError unless `info` describes a video that can serve as a sample.

    Rejects: no video stream, a still image, zero or one frame, a display side over MAX_SIDE_PX,
    and a video codec this build has no decoder for.
    """
    name = Path(info.path).name
    if not info.has_video:
        what = "an audio-only file" if info.has_audio else "a file without video"
        raise InputError(
            f"{name} is {what}: a sample needs a video stream",
            hint="add the video this audio belongs to, or pick a video file (MP4, WebM, MOV)",
        )
    if info.container in _IMAGE_FORMATS or (info.container.endswith("_pipe") and info.n_frames <= 1):
        raise InputError(
            f"{name} is an image, not a video",
            hint="use a video clip as the sample; a still image can be the subject instead",
        )
    if info.video_codec is None or not _has_decoder(info.video_codec):
        raise InputError(
            f"{name} uses the video codec {info.video_codec or 'unknown'}, which this build cannot decode",
            hint="convert it to H.264 MP4 or VP9 WebM and upload that",
        )
    if info.n_frames == 0:
        raise InputError(f"{name} has a video stream with no frames", hint="export the video again")
    if info.n_frames == 1:
        raise InputError(
            f"{name} holds a single frame, which is a still picture, not a video",
            hint="use a clip of at least a second",
        )
    if max(info.width, info.height) > MAX_SIDE_PX:
        raise InputError(
            f"{name} is {info.width}x{info.height}; the limit is {MAX_SIDE_PX} px on either side",
            hint=f"scale it down so neither side exceeds {MAX_SIDE_PX} px (4K or 8K works)",
        )
    # The timeline is as long as the frames' timestamps say, and the remake's work (its audio above
    # all) grows with it: a file whose few frames are stamped far apart declares a length its content
    # does not hold (1.6 KB, two frames, 250 s), so it is refused here rather than rendered.
    times = info.frame_times or ()
    gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
    if info.duration_s > 0 and (info.n_frames / info.duration_s < MIN_SAMPLE_FPS or gap > MAX_FRAME_GAP_S):
        raise InputError(
            f"{name} lasts {info.duration_s:.1f} s by its timestamps but holds only {info.n_frames} frames "
            f"(the longest gap between two is {gap:.1f} s): that is not a video to remake",
            hint="export the video again; a slideshow needs at least one frame a second",
        )


MIN_SAMPLE_FPS = 1.0  # frames per second a sample holds on average, at least
MAX_FRAME_GAP_S = 10.0  # the longest a sample may go without a new frame


def validate_media(info: MediaInfo) -> str:
    """"video" or "photo" when `info` is one of the user's clips or photos a footage remake can use;
    else an InputError that says why (no pictures, audio only, too large, a codec this build lacks).

    A still image is a photo; a clip needs at least two frames. Frames are decoded by `check_decodes`."""
    name = Path(info.path).name
    if not info.has_video:
        what = "an audio-only file" if info.has_audio else "not a video or photo"
        raise InputError(f"{name} is {what}", hint="footage is video clips and photos; give music with --music")
    if info.video_codec is None or not _has_decoder(info.video_codec):
        raise InputError(f"{name} uses the video codec {info.video_codec or 'unknown'}, which this build cannot decode",
                         hint="convert it to H.264 MP4 or VP9 WebM")
    if info.n_frames == 0:
        raise InputError(f"{name} has a video stream with no frames", hint="export the clip again")
    if max(info.width, info.height) > MAX_SIDE_PX:
        raise InputError(f"{name} is {info.width}x{info.height}; the limit is {MAX_SIDE_PX} px on either side",
                         hint="scale it down (4K works)")
    return "photo" if info.n_frames <= 1 or info.container in _IMAGE_FORMATS else "video"


def check_decodes(info: MediaInfo) -> None:
    """Decode the first, middle and last frame: a file whose header reads but whose pictures are broken
    (a cut-off download, a damaged card) is found before any analysis job is spent on it."""
    n = int(info.n_frames)
    for i in sorted({0, n // 2, max(0, n - 1)}):
        try:
            got = next(iter_frames(info.path, i, i + 1, size=(64, 64)), None)
        except InputError as exc:
            raise InputError(f"{Path(info.path).name} is damaged: frame {i} does not decode ({exc.message})",
                             hint="export or copy the clip again") from None
        if got is None:
            raise InputError(f"{Path(info.path).name} is damaged: frame {i} of {n} is missing",
                             hint="export or copy the clip again")


# --------------------------------------------------------------------------------------------------
# Decoding


def iter_frames(
    path: str, start: int = 0, end: int | None = None, *, size: tuple[int, int] | None = None
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield (frame_index, pts_seconds, rgb24 HxWx3 uint8) for frames start..end-1 in display order.

    `size` is (width, height) to scale to; rotation metadata is applied (portrait stays portrait),
    and `size` is the size after rotation. The range is frame-exact: decoding seeks to the keyframe
    before `start` and the frames equal those of a full decode bit for bit. Raises InputError for an
    out-of-range request and for data that cannot be decoded (naming the frame).
    """

    def convert(frame: av.VideoFrame, scaled: list[tuple[int, int] | None], turns: int) -> np.ndarray:
        return _to_rgb(frame, scaled[0], turns)

    yield from _iter_converted(path, start, end, [size], convert)


def iter_scaled_frames(
    path: str, start: int = 0, end: int | None = None, *, sizes: Sequence[tuple[int, int]]
) -> Iterator[tuple[int, float, tuple[np.ndarray, ...]]]:
    """Yield (frame_index, pts_seconds, (rgb at each of `sizes`)) for frames start..end-1.

    Each array equals what `iter_frames(path, start, end, size=s)` yields for that size, bit for
    bit (tests compare them), from one decode. It is faster: `VideoFrame.reformat` builds a new
    swscale context, thread pool included, for every frame, which costs more than the scaling at
    analysis sizes; here one `VideoReformatter` per size serves every frame, single-threaded (the
    caller decodes and scales on threads of its own). Same parameters, so the same pixels.
    """
    if not sizes:
        raise InputError("no frame size to scale to", hint="pass at least one (width, height)")
    reformatters = [VideoReformatter() for _ in sizes]

    def convert(
        frame: av.VideoFrame, scaled: list[tuple[int, int] | None], turns: int
    ) -> tuple[np.ndarray, ...]:
        return tuple(_to_rgb(frame, s, turns, r) for s, r in zip(scaled, reformatters, strict=True))

    yield from _iter_converted(path, start, end, list(sizes), convert)


def _iter_converted(
    path: str,
    start: int,
    end: int | None,
    sizes: list[tuple[int, int] | None],
    convert: Callable[[av.VideoFrame, list[tuple[int, int] | None], int], Any],
) -> Iterator[tuple[int, float, Any]]:
    """The frame-exact range decode of `iter_frames`; `convert(frame, scaled, turns)` makes each
    frame's output, `scaled` being `sizes` in coded orientation (None: no scaling)."""
    probed = _probe_cached(path)
    info, index = probed.info, probed.index
    if index is None or not info.has_video:
        raise InputError(f"{path} has no video stream", hint="pass a video file")
    n = len(index.pts)
    stop = n if end is None else end
    if not 0 <= start <= stop <= n:
        raise InputError(
            f"frame range [{start}, {end}) is outside {Path(path).name}, which has {n} frames",
            hint=f"ask for frames within [0, {n})",
        )
    if start == stop:
        return
    turns = _quarter_turns(info.rotation_deg)
    scaled: list[tuple[int, int] | None] = []
    for size in sizes:
        if size is None:
            scaled.append(None)
            continue
        if size[0] <= 0 or size[1] <= 0:
            raise InputError(f"size {size} is not a (width, height) of positive integers")
        # Scale before rotating (fewer pixels to turn); a quarter turn swaps the axes.
        scaled.append((size[1], size[0]) if turns % 2 else (size[0], size[1]))

    for target in index.seek_targets(start):
        frames = _decode_range(Path(path), index, start, stop, target)
        first = next(frames, None)
        if first is None:
            raise InputError(
                f"{Path(path).name}: frame {start} cannot be decoded (the stream ends or breaks before it)",
                hint="the file is corrupt from that point; re-export or upload it again",
            )
        if first[0] == start:
            break
        frames.close()
        if target is None:
            raise _bad_frame(Path(path), start, "the decoder drops it even when decoding from the start")
        # else the seek landed after the frame, or the decoder dropped frames after it (open GOP)
    for i, t, frame in _chain_first(first, frames):
        yield i, t, convert(frame, scaled, turns)


def _chain_first(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _decode_range(
    p: Path, index: _VideoIndex, start: int, stop: int, target: int | None
) -> Iterator[tuple[int, float, av.VideoFrame]]:
    """Decoded frames start..stop-1 as (index, seconds, frame), checked against the frame index.

    The first item is the first frame at or after `start` that decoded (its index may exceed
    `start` when the seek point was too late); after that a missing or corrupt frame raises.
    """
    tb = index.time_base
    start_pts = index.pts[start]
    expected = start
    with av.open(str(p), metadata_errors="ignore") as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        if target is not None:
            c.seek(target, stream=vs, backward=True, any_frame=False)
        try:
            for packet in c.demux(vs):
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as exc:
                    # Name the frame whose packet broke (it may be a reference frame before `start`).
                    bad = index.index_of_pts.get(packet.pts, expected) if packet.pts is not None else expected
                    raise _bad_frame(p, bad, f"decoding failed: {exc}") from exc
                for frame in decoded:
                    pts = frame.pts
                    if pts is None or pts < start_pts:
                        continue
                    i = index.index_of_pts.get(pts)
                    if i is None:
                        raise InputError(
                            f"{p.name}: a frame at pts {pts} near frame {expected} is not in the file's index",
                            hint="the file's timestamps are broken; re-export it (remux with fixed timestamps)",
                        )
                    if i != expected and expected != start:
                        raise _bad_frame(p, expected, "the decoder skipped it")
                    if frame.is_corrupt:
                        raise _bad_frame(p, i, "its data is corrupt")
                    expected = i + 1
                    yield i, float(pts * tb), frame
                    if expected >= stop:
                        return
        except av.error.FFmpegError as exc:
            raise _bad_frame(p, expected, f"reading the file failed: {exc}") from exc
    if expected < stop:
        raise _bad_frame(p, expected, "the stream ended before it")


def _bad_frame(p: Path, i: int, why: str) -> InputError:
    return InputError(
        f"{p.name}: frame {i} cannot be decoded ({why})",
        hint="the file is damaged from that frame on; re-export it or upload it again",
    )


def _to_rgb(
    frame: av.VideoFrame,
    scaled: tuple[int, int] | None,
    turns: int,
    reformatter: VideoReformatter | None = None,
) -> np.ndarray:
    if scaled is None:
        rgb = frame.to_ndarray(format="rgb24")
    elif reformatter is None:
        rgb = frame.reformat(
            width=scaled[0], height=scaled[1], format="rgb24", interpolation="AREA"
        ).to_ndarray()
    else:
        rgb = reformatter.reformat(
            frame, width=scaled[0], height=scaled[1], format="rgb24", interpolation="AREA", threads=1
        ).to_ndarray()
    if turns:
        # np.rot90 turns counterclockwise for k > 0, the display matrix's convention.
        rgb = np.ascontiguousarray(np.rot90(rgb, k=turns))
    return rgb


def read_audio(
    path: str, *, rate: int = 22050, mono: bool = True, track: int | None = None
) -> tuple[np.ndarray, int] | None:
    """The whole audio track as (float32 samples, rate); None when the file has no audio stream.

    Samples are shape (n,) when `mono` else (channels, n) in the stream's channel order (its
    layout's, as PyAV names them: FL FR FC LFE BL BR ...), resampled to `rate`. The mono signal is
    the mean of the channels other than the LFE (a downmix leaves the effects bass out). `track` is
    the position among the audio streams; by default the stream marked default, else the first. A
    stream that decodes to nothing gives an empty array.
    """
    p = _check_path(path)
    with _open_input(p) as c:
        streams = list(c.streams.audio)
        if not streams:
            return None
        if track is None:
            stream = next((s for s in streams if s.disposition & av.stream.Disposition.default), streams[0])
        elif 0 <= track < len(streams):
            stream = streams[track]
        else:
            raise InputError(f"{p.name} has {len(streams)} audio tracks, no track {track}",
                             hint=f"pick a track from 0 to {len(streams) - 1}")
        # Packed samples, split here: PyAV 18 reads an 8-channel planar frame past its last plane
        # (a crash on any 7.1 track).
        resampler = av.AudioResampler(format="flt", rate=rate)
        chunks: list[np.ndarray] = []
        names: tuple[str, ...] = ()
        try:
            for frame in c.decode(stream):
                for o in resampler.resample(frame):
                    names = tuple(ch.name for ch in o.layout.channels)
                    chunks.append(o.to_ndarray().reshape(-1, len(names)).T)
            chunks.extend(o.to_ndarray().reshape(-1, len(names)).T for o in resampler.resample(None))
        except av.error.FFmpegError as exc:
            raise InputError(
                f"{p.name}: the audio track cannot be decoded ({exc})",
                hint="re-export the file, or upload it again if the copy was damaged",
            ) from exc
        channels = len(names) or stream.codec_context.channels or 1
    if chunks:
        samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    else:
        samples = np.zeros((channels, 0), np.float32)
    if mono:
        keep = [i for i, name in enumerate(names) if name not in ("LFE", "LFE2")] or list(range(channels))
        return samples[keep].mean(axis=0, dtype=np.float32), rate
    return samples, rate


# --------------------------------------------------------------------------------------------------
# Writing segments


def _frame_period(fps: Fraction) -> Fraction:
    fps = Fraction(fps)
    if fps <= 0:
        raise InputError(f"frame rate {fps} is not positive")
    return 1 / fps


# x264 instruction sets by /proc/cpuinfo flag (x86 only); AVX-512 deliberately left out.
_X264_ASM = (
    ("mmxext", "MMX2"),
    ("sse", "SSE"),
    ("sse2", "SSE2"),
    ("pni", "SSE3"),
    ("ssse3", "SSSE3"),
    ("sse4_1", "SSE4.1"),
    ("sse4_2", "SSE4.2"),
    ("abm", "LZCNT"),
    ("avx", "AVX"),
    ("fma", "FMA3"),
    ("bmi1", "BMI1"),
    ("bmi2", "BMI2"),
    ("avx2", "AVX2"),
)


@functools.lru_cache(maxsize=1)
def _x264_asm() -> str | None:
    """The x264 `asm=` override for this CPU, or None to let x264 choose.

    Measured: on a CPU with AVX-512, libx264's AVX-512 routines make the same frames encode to
    different bits from one run to the next (it reads memory it did not write), so a retried range
    would differ from its first try. With every other instruction set the CPU has, the output is
    repeatable and as fast within noise.
    """
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        return None
    if "avx512f" not in flags:
        return None
    return ",".join(name for flag, name in _X264_ASM if flag in flags)


class SegmentWriter:
    """Encode RGB frames into one MP4 segment: a closed GOP that starts on a keyframe.

    Frame i gets pts i in time base 1/fps, so every frame time is exact. The file appears at `path`
    only when `close()` succeeds (written to a temporary name first). yuv420p needs an even width
    and height: odd sizes raise InputError rather than being padded, so the segment keeps the exact
    size of the range it renders. `n_frames` counts the frames written so far.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: Fraction,
        codec: str = "libx264",
        crf: int = 18,
        preset: str = "veryfast",
        pix_fmt: str = "yuv420p",
    ) -> None:
        if width <= 0 or height <= 0:
            raise InputError(f"segment size {width}x{height} is not positive")
        if pix_fmt in ("yuv420p", "yuv422p", "nv12") and (width % 2 or height % 2):
            raise InputError(
                f"segment size {width}x{height} is odd, which {pix_fmt} cannot hold",
                hint="render at an even width and height (e.g. round down to a multiple of 2)",
            )
        self.path = Path(path)
        self.width, self.height = width, height
        self.fps = Fraction(fps)
        self.n_frames = 0
        self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.part")
        period = _frame_period(self.fps)
        self._period = period
        self._container = av.open(str(self._tmp), "w", format="mp4")
        try:
            self._stream = self._container.add_stream(codec, rate=self.fps)
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = pix_fmt
            self._stream.time_base = period
            self._stream.codec_context.time_base = period
            if codec in ("libx264", "libx265"):
                params = "open-gop=0" if codec == "libx264" else "open-gop=0:log-level=error"
                key = "x264-params" if codec == "libx264" else "x265-params"
                if codec == "libx264" and _x264_asm():
                    params += f":asm={_x264_asm()}"
                self._stream.options = {"crf": str(crf), "preset": preset, key: params}

        except Exception:
            self._abort()
            raise
        self._closed = False

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def write(self, rgb_frame: np.ndarray) -> None:
        """Append one HxWx3 uint8 RGB frame."""
        if self._closed:
            raise JobError(f"segment {self.path.name} is already closed")
        a = np.asarray(rgb_frame)
        if a.shape != (self.height, self.width, 3) or a.dtype != np.uint8:
            raise InputError(
                f"frame {self.n_frames} for {self.path.name} is {a.dtype} {a.shape}, "
                f"the segment takes uint8 ({self.height}, {self.width}, 3)"
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")
        frame.pts = self.n_frames
        # The codec's time base, not the stream's: the MP4 muxer rewrites the stream's on the first
        # packet (1001/24000 becomes 1/24000) and frame times would then be rescaled to 0.
        frame.time_base = self._period
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.n_frames += 1

    def close(self) -> None:
        """Flush the encoder and move the finished segment to `path`."""
        if self._closed:
            return
        if self.n_frames == 0:
            self._abort()
            raise JobError(f"segment {self.path.name} has no frames", hint="write at least one frame")
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            os.replace(self._tmp, self.path)
        except Exception:
            self._abort()
            raise
        self._closed = True

    def _abort(self) -> None:
        self._closed = True
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - already failing; the original error is the one to see
            pass
        self._tmp.unlink(missing_ok=True)


def _segment_packets(path: Path) -> tuple[av.video.stream.VideoStream, list[av.Packet], Any]:
    """Open a segment and read all its video packets (the container stays open: caller closes)."""
    try:
        c = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise JobError(f"segment {path} cannot be read ({exc})", hint="render the range again") from exc
    if not c.streams.video:
        c.close()
        raise JobError(f"segment {path} has no video stream", hint="render the range again")
    vs = c.streams.video[0]
    try:
        packets = [pk for pk in c.demux(vs) if pk.size > 0]
    except av.error.FFmpegError as exc:
        c.close()
        raise JobError(f"segment {path} is corrupt ({exc})", hint="render the range again") from exc
    return vs, packets, c


def verify_segment(path: str | os.PathLike[str], *, expected_frames: int, fps: Fraction) -> SegmentInfo:
    """Check a rendered segment before it is promoted: frame count, keyframe start, exact timestamps.

    Frame i must be shown at i / fps exactly. Raises JobError naming what is wrong.
    """
    p = Path(path)
    if not p.is_file():
        raise JobError(f"segment {p} does not exist", hint="render the range again")
    vs, packets, c = _segment_packets(p)
    try:
        tb = Fraction(vs.time_base)
        period = _frame_period(Fraction(fps))
        if len(packets) != expected_frames:
            raise JobError(
                f"segment {p.name} holds {len(packets)} frames, expected {expected_frames}",
                hint="render the range again",
            )
        first_key = bool(packets[0].is_keyframe) if packets else False
        if not first_key:
            raise JobError(f"segment {p.name} does not start on a keyframe", hint="render the range again")
        pts = sorted(pk.pts for pk in packets)
        for i, t in enumerate(pts):
            if t is None or t * tb != i * period:
                shown = "none" if t is None else f"{float(t * tb):.6f} s"
                raise JobError(
                    f"segment {p.name}: frame {i} is at {shown}, expected {float(i * period):.6f} s",
                    hint="render the range again; segments must use time base 1/fps and pts 0..n-1",
                )
        duration = float(expected_frames * period)
    finally:
        c.close()
    return SegmentInfo(n_frames=len(packets), first_is_keyframe=first_key, duration_s=duration)


def concat_segments(
    segment_paths: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    *,
    audio_path: str | os.PathLike[str] | None = None,
    faststart: bool = True,
) -> MediaInfo:
    """Join segments into one MP4 by remuxing their packets (no re-encode), with optional audio.

    Segments must share codec, size and time base (as SegmentWriter makes them). The audio stream
    of `audio_path` is remuxed too, cut at the first packet that starts at or after the video's end
    (AAC packets are 1024 samples, so the audio may run up to one packet past the last frame). The
    result appears atomically at `out_path`; its frame count is checked against the segments'.
    Raises JobError when a segment is unreadable or mismatched, or the result is wrong.
    """
    if not segment_paths:
        raise JobError("no segments to concatenate", hint="render at least one range first")
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part")
    options = {"movflags": "+faststart"} if faststart else {}
    expected_total = 0
    opened: list[Any] = []
    try:
        segments = []
        for sp in segment_paths:
            vs, packets, c = _segment_packets(Path(sp))
            opened.append(c)
            if not packets:
                raise JobError(f"segment {sp} is empty", hint="render the range again")
            segments.append((Path(sp), vs, packets))
        first_vs = segments[0][1]
        tb = Fraction(first_vs.time_base)
        extradata = first_vs.codec_context.extradata
        for sp, vs, _ in segments[1:]:
            cc, fc = vs.codec_context, first_vs.codec_context
            if (cc.name, cc.width, cc.height, Fraction(vs.time_base)) != (fc.name, fc.width, fc.height, tb):
                raise JobError(
                    f"segment {sp.name} ({cc.name} {cc.width}x{cc.height}, time base {vs.time_base}) does "
                    f"not match {segments[0][0].name} ({fc.name} {fc.width}x{fc.height}, time base {tb})",
                    hint="render every range of a job with the same encoder settings",
                )
            if cc.extradata != extradata:
                raise JobError(
                    f"segment {sp.name} carries different codec headers than {segments[0][0].name}",
                    hint="render every range of a job with the same encoder settings",
                )
        # Each segment decodes with its own reorder delay (its first dts below 0). Lowering every
        # segment's dts to the largest delay keeps dts strictly increasing across the seams while
        # pts (what is shown) stay untouched.
        delays = [-min(0, min(pk.dts for pk in packets if pk.dts is not None)) for _, _, packets in segments]
        max_delay = max(delays)

        with av.open(str(tmp), "w", format="mp4", options=options) as oc:
            ovs = oc.add_stream_from_template(first_vs)
            ovs.time_base = tb
            audio = None
            if audio_path is not None:
                ac = _open_input(audio_path)
                opened.append(ac)
                if not ac.streams.audio:
                    raise InputError(f"{audio_path} has no audio stream to mux", hint="pass an audio file")
                ias = ac.streams.audio[0]
                oas = oc.add_stream_from_template(ias)
                oas.time_base = ias.time_base
                audio = (ac, ias, oas)
            offset = 0
            last_dts: int | None = None
            for (sp, _, packets), delay in zip(segments, delays, strict=True):
                seg_end = max(pk.pts + (pk.duration or 0) for pk in packets)
                for pk in packets:
                    pts, dts = pk.pts + offset, pk.dts + offset - (max_delay - delay)
                    if last_dts is not None and dts <= last_dts:
                        raise JobError(
                            f"segment {sp.name} overlaps the one before it in decode order",
                            hint="render segments with SegmentWriter so their timestamps start at 0",
                        )
                    last_dts = dts
                    pk.pts, pk.dts = pts, dts
                    pk.stream = ovs
                    oc.mux(pk)
                offset += seg_end
                expected_total += len(packets)
            if audio is not None:
                ac, ias, oas = audio
                video_end = offset * tb
                for pk in ac.demux(ias):
                    if pk.size == 0 or pk.pts is None:
                        continue
                    if pk.pts * Fraction(ias.time_base) >= video_end:
                        break
                    pk.stream = oas
                    oc.mux(pk)
        os.replace(tmp, out)
    except av.error.FFmpegError as exc:
        raise JobError(
            f"concatenating into {out.name} failed ({exc})", hint="retry the assemble job"
        ) from exc
    finally:
        for c in opened:
            c.close()
        tmp.unlink(missing_ok=True)

    info = probe(out)
    if info.n_frames != expected_total:
        raise JobError(
            f"{out.name} holds {info.n_frames} frames after concatenation, expected {expected_total}",
            hint="verify each segment and assemble again",
        )
    return info


# --------------------------------------------------------------------------------------------------
# Writing audio

_LAYOUTS = {
    1: "mono",
    2: "stereo",
    3: "3.0",
    4: "4.0",
    5: "5.0",
    6: "5.1",
    7: "6.1",
}  # PyAV 18 cannot build 8-plane frames


def write_audio(
    path: str | os.PathLike[str],
    samples: np.ndarray,
    rate: int,
    *,
    codec: str = "aac",
    bitrate: int = 192000,
) -> None:
    """Encode float32 samples, shape (n,) or (channels, n), into an AAC .m4a that concat_segments muxes."""
    a = np.asarray(samples, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] not in _LAYOUTS or a.shape[1] == 0:
        raise InputError(
            f"audio samples of shape {np.shape(samples)} cannot be written",
            hint="pass float32 samples shaped (n,) or (channels, n) with 1 to 7 channels",
        )
    if not np.isfinite(a).all():
        raise InputError("audio samples hold NaN or infinity", hint="fix the mix before writing it")
    layout = _LAYOUTS[a.shape[0]]
    out = Path(path)
    fmt = "ipod" if out.suffix.lower() == ".m4a" else None
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with av.open(str(tmp), "w", format=fmt or "mp4") as c:
            stream = c.add_stream(codec, rate=rate, layout=layout)
            stream.bit_rate = bitrate
            stream.time_base = Fraction(1, rate)
            cc = stream.codec_context
            sample_fmt = cc.format.name if cc.format is not None else "fltp"
            resampler = av.AudioResampler(format=sample_fmt, layout=layout, rate=rate)
            chunk = 1024 * 16
            for s in range(0, a.shape[1], chunk):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(a[:, s : s + chunk]), format="fltp", layout=layout
                )
                frame.sample_rate = rate
                frame.pts = s
                frame.time_base = Fraction(1, rate)
                for rf in resampler.resample(frame):
                    for packet in stream.encode(rf):
                        c.mux(packet)
            for rf in resampler.resample(None):
                for packet in stream.encode(rf):
                    c.mux(packet)
            for packet in stream.encode(None):
                c.mux(packet)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
