"""Media I/O on a node: probe, frame-exact decode, segment encode/verify, concat and audio (PyAV).

INTERIM VERSION: the signatures below are the contract; the media helper replaces the bodies with
frame-exact, VFR- and rotation-correct implementations and adds the rest of the module.
"""

from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np


def iter_frames(
    path: str, start: int = 0, end: int | None = None, *, size: tuple[int, int] | None = None
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield (frame_index, pts_seconds, rgb24 HxWx3 uint8) for frames start..end-1 in display order.

    `size` is (width, height) to scale to; rotation metadata is applied (portrait stays portrait).
    """
    with av.open(path) as c:
        s = c.streams.video[0]
        for i, fr in enumerate(c.decode(s)):
            if end is not None and i >= end:
                break
            if i < start:
                continue
            if size is not None:
                fr = fr.reformat(width=size[0], height=size[1])
            yield i, float(fr.time or 0.0), fr.to_ndarray(format="rgb24")


def read_audio(path: str, *, rate: int = 22050, mono: bool = True) -> tuple[np.ndarray, int] | None:
    """The whole audio track as float32 samples in [-1, 1] (shape (n,) mono or (channels, n)); None if silent/absent track."""
    with av.open(path) as c:
        if not c.streams.audio:
            return None
        layout = "mono" if mono else "stereo"
        rs = av.AudioResampler(format="flt", layout=layout, rate=rate)
        chunks = []
        for fr in c.decode(c.streams.audio[0]):
            for o in rs.resample(fr):
                chunks.append(o.to_ndarray())
        for o in rs.resample(None):
            chunks.append(o.to_ndarray())
    if not chunks:
        return None
    a = np.concatenate(chunks, axis=1).astype(np.float32)
    return (a[0] if mono else a), rate
