"""Delivery formats: the final MP4 re-encoded (or remuxed) to MP4 H.264/H.265 or WebM VP9/AV1.

One call per format: `export(final_mp4, out, container=..., codec=...)`. Sizes: `resolution` names
the short side (720p: 720 px, 1080p, 4k: 2160, source/None: the final's own size) and `aspect`
crops the frame to 9:16, 16:9 or 1:1 first, so a vertical 9:16 at 1080p is 1080x1920. Given the
final's scenes, the crop window is placed on each scene's subject (salient region), held still within
the scene and moved at its cuts; where nothing stands out, and without scenes, it is centred.
Every size is rounded to even numbers (4:2:0 chroma needs them).

The video is stream-copied (remuxed, no generation loss) when the container is MP4, the codec is the
final's and the size does not change; otherwise it is decoded, cropped and scaled in one FFmpeg filter
graph and encoded. Audio is AAC in MP4 (copied when it already is) and Opus in WebM. Every frame keeps
its timestamp, so the frame count and the duration are the final's: `export` checks both and raises
JobError when the encoder dropped or added frames. MP4s get `+faststart` (the index first, so a
browser plays while downloading). Files appear atomically.

Encoders are the ones in PyAV's wheel: libx264, libx265 (tagged hvc1, which Apple players require),
libvpx-vp9 and libsvtav1 (the wheel has no libaom-av1; SVT-AV1 at a high preset is also the fast one).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from lookalike.nodes.media import MediaInfo, probe

from lookalike.errors import InputError, JobError

__all__ = ["ASPECTS", "CODECS", "CONTAINERS", "RESOLUTIONS", "export", "output_size"]

RESOLUTIONS = {"720p": 720, "1080p": 1080, "4k": 2160}
"""Short side in pixels per named resolution; "source" (or None) keeps the final's size."""

ASPECTS = {"9:16": (9, 16), "16:9": (16, 9), "1:1": (1, 1)}


@dataclass(frozen=True)
class _Codec:
    encoder: str
    decoder_names: tuple[str, ...]  # what probe reports for a stream of this codec
    crf: int
    options: dict[str, str]
    tag: str | None = None


CODECS = {
    "h264": _Codec("libx264", ("h264",), 20, {"preset": "medium"}),
    "h265": _Codec("libx265", ("hevc",), 24, {"preset": "fast", "x265-params": "log-level=error"}, "hvc1"),
    "vp9": _Codec("libvpx-vp9", ("vp9",), 32, {"b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}),
    "av1": _Codec("libsvtav1", ("av1",), 35, {"preset": "10"}),
}
"""Codec name -> encoder and defaults. Aliases: libx264, hevc/libx265, libvpx-vp9, libsvtav1."""

CONTAINERS = {"mp4": ("h264", "h265"), "webm": ("vp9", "av1")}
"""Container -> the codecs it takes here (MP4: AAC audio; WebM: Opus audio)."""

_ALIASES = {"libx264": "h264", "avc": "h264", "hevc": "h265", "libx265": "h265", "libvpx-vp9": "vp9"}
_ALIASES |= {"libsvtav1": "av1", "libaom-av1": "av1"}
_AUDIO = {"mp4": ("aac", 192000), "webm": ("libopus", 128000)}


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def output_size(
    width: int, height: int, resolution: str | None, aspect: str | None
) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """((crop_w, crop_h, crop_x, crop_y), (out_w, out_h)) for a width x height source.

    The crop is the largest centred window of `aspect` (the whole frame when None; `follow_subject`
    may move it per scene); the output scales
    that window so its short side is the resolution's (unchanged for "source"/None), both even.
    """
    if resolution is not None and resolution != "source" and resolution not in RESOLUTIONS:
        raise InputError(
            f"resolution {resolution!r} is not one this exporter makes",
            hint=f"use one of source, {', '.join(RESOLUTIONS)}",
        )
    if aspect is not None and aspect not in ASPECTS:
        raise InputError(
            f"aspect {aspect!r} is not one this exporter makes", hint=f"use one of {', '.join(ASPECTS)}"
        )
    cw, ch = width, height
    if aspect is not None:
        aw, ah = ASPECTS[aspect]
        if width * ah > height * aw:  # source is wider than the aspect: crop the sides
            cw = min(width, _even(height * aw / ah))
        else:
            ch = min(height, _even(width * ah / aw))
    cx, cy = (width - cw) // 2, (height - ch) // 2
    if resolution in RESOLUTIONS:
        short = RESOLUTIONS[resolution]
        # With an aspect the output is that aspect exactly (1080p 9:16 is 1080x1920), not the crop's
        # rounding of it; without one the short side scales and the long side follows.
        rw, rh = ASPECTS[aspect] if aspect is not None else (cw, ch)
        scale = short / min(rw, rh)
        ow, oh = _even(rw * scale), _even(rh * scale)
    else:
        ow, oh = _even(cw) if cw % 2 else cw, _even(ch) if ch % 2 else ch
    return (cw, ch, cx, cy), (ow, oh)


def saliency_map(rgb: np.ndarray) -> np.ndarray:
    """Frequency-tuned saliency (Achanta et al., 2009) of an RGB uint8 picture, float32 HxW.

    Each pixel's distance, in CIELAB (OpenCV's 8-bit scaling) after a light 5x5 Gaussian blur, from
    the picture's mean colour: high where the picture differs from its overall tone.
    """
    import cv2

    lab = cv2.cvtColor(cv2.GaussianBlur(rgb, (5, 5), 0), cv2.COLOR_RGB2LAB).astype(np.float32)
    return np.linalg.norm(lab - lab.reshape(-1, 3).mean(axis=0), axis=2)


def subject_centre(rgb: np.ndarray) -> tuple[float, float] | None:
    """Where the subject of a frame is, as (x, y) in 0-1, or None when nothing stands out.

    On the frequency-tuned saliency (`saliency_map`): the subject is the pixels more than two
    deviations above the mean saliency; the centre is their saliency-weighted centroid. Nothing stands
    out when there are none, or when they are scattered over the frame rather than gathered in one
    place (noise, an evenly busy frame): their spread must be under 0.25 (a uniform scatter's is 0.41).
    """
    sal = saliency_map(rgb)
    mask = sal > sal.mean() + 2.0 * sal.std()
    if not mask.any() or sal.std() < 1.0:
        return None
    ys, xs = np.nonzero(mask)
    h, w = sal.shape
    u, v, wt = (xs + 0.5) / w, (ys + 0.5) / h, sal[ys, xs]
    cx, cy = float(np.average(u, weights=wt)), float(np.average(v, weights=wt))
    spread = float(np.sqrt(np.average((u - cx) ** 2 + (v - cy) ** 2, weights=wt)))
    return (cx, cy) if spread < 0.25 else None


def follow_subject(
    path: str, info: MediaInfo, crop: tuple[int, int, int, int], scenes: list[tuple[int, int]], samples: int = 3
) -> tuple[str, str] | None:
    """FFmpeg expressions for the crop's x and y over the frame number `n`: in each scene the window is
    centred on the scene's subject (`subject_centre` of `samples` frames across it, their median),
    clamped inside the frame and held still for the whole scene (a cut is where a reframe is not
    seen). A scene where nothing stands out keeps the centred window. None: nothing to move (the
    crop is the whole frame, or every scene stays centred)."""
    from lookalike.nodes.media import iter_frames

    cw, ch, cx, cy = crop
    if (cw, ch) == (info.width, info.height):
        return None
    scale = 160 / max(info.width, info.height)
    small = (max(16, round(info.width * scale)), max(16, round(info.height * scale)))
    xs, ys = [], []
    for start, end in scenes:
        end = min(end, info.n_frames)
        picks = sorted({start + (end - start) * (2 * k + 1) // (2 * samples) for k in range(samples)})
        found = [c for i in picks if i < end for _, _, f in iter_frames(path, i, i + 1, size=small)
                 if (c := subject_centre(f)) is not None]
        if not found:
            xs.append(cx)
            ys.append(cy)
            continue
        fx, fy = float(np.median([c[0] for c in found])), float(np.median([c[1] for c in found]))
        xs.append(min(max(0, round(fx * info.width - cw / 2) // 2 * 2), info.width - cw))
        ys.append(min(max(0, round(fy * info.height - ch / 2) // 2 * 2), info.height - ch))
    if all(x == cx for x in xs) and all(y == cy for y in ys):
        return None
    return _by_frame(scenes, xs), _by_frame(scenes, ys)


def _by_frame(scenes: list[tuple[int, int]], values: list[int]) -> str:
    """The value of the scene holding frame n, as a flat sum of steps at the scene starts:
    "V0+(V1-V0)*gte(n,START1)+..." (nested ifs would nest as deep as there are scenes)."""
    terms = [str(values[0])]
    for (start, _), prev, v in zip(scenes[1:], values, values[1:], strict=False):
        if v != prev:
            terms.append(f"({v - prev})*gte(n,{start})")
    return "+".join(terms)


def _codec(container: str, codec: str) -> str:
    name = _ALIASES.get(codec.lower(), codec.lower())
    if container not in CONTAINERS:
        raise InputError(f"container {container!r} is not one this exporter writes", hint="use mp4 or webm")
    if name not in CONTAINERS[container]:
        raise InputError(
            f"codec {codec!r} does not go in {container}",
            hint=f"use one of {', '.join(CONTAINERS[container])} in {container}",
        )
    return name


class _KeepScheduling:
    """Restore the calling thread's scheduling policy after an encoder changed it.

    Measured: libsvtav1, run as root, switches the thread that opens it to SCHED_FIFO priority 99.
    Every process started from that thread afterwards inherits real-time priority, and one busy thread
    of theirs can then starve the whole machine (it did: a test run stalled for minutes)."""

    def __enter__(self) -> _KeepScheduling:
        self.policy = os.sched_getscheduler(0) if hasattr(os, "sched_getscheduler") else None
        self.param = os.sched_getparam(0) if self.policy is not None else None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.policy is not None and os.sched_getscheduler(0) != self.policy:
            os.sched_setscheduler(0, self.policy, self.param)


def export(
    final_mp4: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    container: str = "mp4",
    codec: str = "h264",
    resolution: str | None = None,
    aspect: str | None = None,
    crf: int | None = None,
    scenes: list[tuple[int, int]] | None = None,
) -> MediaInfo:
    """Write `final_mp4` as `container`/`codec` at `resolution` and `aspect`; returns the output's probe.

    With an `aspect` that crops and `scenes` ([start_frame, end_frame) of each shot), the crop window
    follows each scene's subject (`follow_subject`) instead of staying centred.

    `crf` None takes the codec's default (h264 20, h265 24, vp9 32, av1 35). Raises InputError for an
    unknown container, codec, resolution or aspect (or an unreadable input) and JobError when the
    output's frame count or duration differs from the input's.
    """
    name = _codec(container, codec)
    spec = CODECS[name]
    src = probe(final_mp4)
    if not src.has_video:
        raise InputError(
            f"{Path(final_mp4).name} has no video stream to export", hint="assemble the final first"
        )
    if src.rotation_deg % 360:
        raise InputError(
            f"{Path(final_mp4).name} carries a display rotation of {src.rotation_deg} degrees",
            hint="export from the assembled final (written upright), not from a phone clip",
        )
    crop, (ow, oh) = output_size(src.width, src.height, resolution, aspect)
    moves = follow_subject(str(final_mp4), src, crop, scenes) if scenes else None
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part")
    copy_video = (
        container == "mp4"
        and src.video_codec in spec.decoder_names
        and crop[:2] == (src.width, src.height)
        and (ow, oh) == (src.width, src.height)
        and crf is None
    )
    options = {"movflags": "+faststart"} if container == "mp4" else {}
    try:
        with (
            _KeepScheduling(),
            av.open(str(final_mp4), metadata_errors="ignore") as ic,
            av.open(str(tmp), "w", format=container, options=options) as oc,
        ):
            ivs = ic.streams.video[0]
            ias = ic.streams.audio[0] if ic.streams.audio else None
            if copy_video:
                ovs = oc.add_stream_from_template(ivs)
                if spec.tag:
                    ovs.codec_tag = spec.tag
                graph = None
            else:
                ovs, graph = _video_encoder(oc, ivs, spec, crf, crop, (ow, oh), moves)
            audio_codec, bitrate = _AUDIO[container]
            copy_audio = ias is not None and container == "mp4" and ias.codec_context.name == "aac"
            oas = None
            if ias is not None:
                if copy_audio:
                    oas = oc.add_stream_from_template(ias)
                else:
                    oas = oc.add_stream(audio_codec, rate=48000, layout="stereo")
                    oas.bit_rate = bitrate
            streams = [s for s in (ivs, ias) if s is not None]
            for packet in ic.demux(*streams):
                if packet.stream is ivs:
                    if copy_video:
                        if packet.dts is not None:
                            packet.stream = ovs
                            oc.mux(packet)
                        continue
                    for frame in packet.decode():
                        _encode_video(oc, ovs, graph, frame)
                elif oas is not None:
                    if copy_audio:
                        if packet.dts is not None:
                            packet.stream = oas
                            oc.mux(packet)
                        continue
                    for frame in packet.decode():
                        frame.pts = None  # the encoder's own resampler restamps from the sample count
                        for p in oas.encode(frame):
                            oc.mux(p)
            if not copy_video:
                _encode_video(oc, ovs, graph, None)
            if oas is not None and not copy_audio:
                for p in oas.encode(None):
                    oc.mux(p)
        os.replace(tmp, out)
    except av.error.FFmpegError as exc:
        raise JobError(
            f"exporting {Path(final_mp4).name} to {out.name} ({container}/{name}) failed ({exc})",
            hint="check the final plays, then export again",
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    info = probe(out)
    frame_s = float(1 / src.fps) if src.fps else 0.05
    if info.n_frames != src.n_frames or abs(info.duration_s - src.duration_s) > frame_s + 0.05:
        out.unlink(missing_ok=True)
        raise JobError(
            f"{out.name} holds {info.n_frames} frames over {info.duration_s:.3f} s, but "
            f"{Path(final_mp4).name} holds {src.n_frames} over {src.duration_s:.3f} s",
            hint="export again; if it persists, try another codec",
        )
    return info


def _video_encoder(
    oc: av.container.OutputContainer,
    ivs: av.video.stream.VideoStream,
    spec: _Codec,
    crf: int | None,
    crop: tuple[int, int, int, int],
    size: tuple[int, int],
    moves: tuple[str, str] | None = None,
) -> tuple[av.video.stream.VideoStream, av.filter.Graph]:
    rate = ivs.average_rate or ivs.guessed_rate or Fraction(24)
    ovs = oc.add_stream(spec.encoder, rate=rate)
    ovs.width, ovs.height = size
    ovs.pix_fmt = "yuv420p"
    tb = Fraction(ivs.time_base)
    ovs.time_base = tb
    ovs.codec_context.time_base = tb
    ovs.options = {**spec.options, "crf": str(spec.crf if crf is None else crf)}
    if spec.tag:
        ovs.codec_tag = spec.tag
    cw, ch, cx, cy = crop
    graph = av.filter.Graph()
    chain = [graph.add_buffer(template=ivs)]
    if (cw, ch) != (ivs.codec_context.width, ivs.codec_context.height):
        x, y = moves or (str(cx), str(cy))
        chain.append(graph.add("crop", f"w={cw}:h={ch}:x='{x}':y='{y}'"))
    chain.append(graph.add("scale", f"{size[0]}:{size[1]}:flags=lanczos"))
    chain.append(graph.add("format", "yuv420p"))
    chain.append(graph.add("buffersink"))
    graph.link_nodes(*chain).configure()
    return ovs, graph


def _encode_video(
    oc: av.container.OutputContainer,
    ovs: av.video.stream.VideoStream,
    graph: av.filter.Graph,
    frame: av.VideoFrame | None,
) -> None:
    if frame is not None:
        graph.push(frame)
        while True:
            try:
                out = graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                break
            out.pict_type = av.video.frame.PictureType.NONE
            for p in ovs.encode(out):
                oc.mux(p)
        return
    for p in ovs.encode(None):
        oc.mux(p)
