"""A sample whose timestamps declare far more than its frames hold is refused before any work."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from lookalike.nodes import media

from lookalike.errors import InputError


def _clip(path, stamps_s, fps=25):
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        s.codec_context.time_base = Fraction(1, fps)
        for t in stamps_s:
            f = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            f.pts, f.time_base = round(t * fps), Fraction(1, fps)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_two_frames_250_s_apart_are_refused(tmp_path):
    path = _clip(tmp_path / "long.mp4", [0.0, 250.0])
    info = media.probe(str(path))
    assert info.duration_s > 249 and info.n_frames == 2 and path.stat().st_size < 4096
    with pytest.raises(InputError, match="lasts 250.0 s by its timestamps but holds only 2 frames"):
        media.validate_sample(info)


def test_a_hole_in_an_otherwise_normal_clip_is_refused(tmp_path):
    stamps = [k / 25 for k in range(50)] + [60.0 + k / 25 for k in range(50)]
    with pytest.raises(InputError, match="longest gap between two is 58"):
        media.validate_sample(media.probe(str(_clip(tmp_path / "hole.mp4", stamps))))


def test_ordinary_and_slow_clips_pass(tmp_path):
    media.validate_sample(media.probe(str(_clip(tmp_path / "ok.mp4", [k / 25 for k in range(30)]))))
    # A slideshow at one frame a second is still a video.
    media.validate_sample(media.probe(str(_clip(tmp_path / "slides.mp4", [float(k) for k in range(6)]))))
