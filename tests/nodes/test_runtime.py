"""NodeRuntime, called directly: what a node does for a RenderRange, without gRPC."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from lookalike.nodes import generate, media
from lookalike.nodes.runtime import Format, NodeRuntime
from lookalike.store import open_store

SCENE = {"index": 0, "start_frame": 0, "end_frame": 12, "palette": [{"rgb": [200, 120, 60], "weight": 1.0}],
         "grade": {"exposure": -0.3}, "camera": {"motion": "pan_right", "trajectory": [[0.01 * i, 0, 1, 0] for i in range(12)]},
         "provider": "local", "seed": 5}


def _decoded(rt, key):
    return np.stack([f for _, _, f in media.iter_frames(rt.local(key))])


def test_a_provider_without_its_key_falls_back_to_the_compositor(tmp_path):
    rt = NodeRuntime(open_store(str(tmp_path / "store")), cache_dir=str(tmp_path / "cache"))
    fmt = Format(96, 54, Fraction(24))
    local = rt.render_range(SCENE, 0, 12, fmt, "a.mp4", seed=5)
    runway = rt.render_range(dict(SCENE, provider="runway", model="gen4_turbo"), 0, 12, fmt, "b.mp4", seed=5)
    assert local.n_frames == runway.n_frames == 12
    assert np.array_equal(_decoded(rt, "a.mp4"), _decoded(rt, "b.mp4"))


def test_ranges_render_what_the_whole_scene_renders(tmp_path):
    rt = NodeRuntime(open_store(str(tmp_path / "store")), cache_dir=str(tmp_path / "cache"))
    r = generate.SceneRenderer(SCENE, 96, 54, generate.synth_subject(0), 5)
    fmt = Format(96, 54, Fraction(24), crf=0, preset="ultrafast")
    rt.render_range(SCENE, 5, 9, fmt, "c.mp4", seed=5)
    want = np.stack([r.frame(i) for i in range(5, 9)]).astype(int)
    got = _decoded(rt, "c.mp4").astype(int)
    # crf 0 is lossless in yuv420p: only chroma subsampling (sharp subject edges) differs.
    mse = float(np.mean((want - got) ** 2))
    assert 10 * np.log10(255**2 / mse) > 40
