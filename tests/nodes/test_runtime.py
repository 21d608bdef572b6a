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


def test_scene_effects_render_without_seams(tmp_path):
    """A scene with temporal effects, rendered in awkward ranges, equals the whole scene (before encoding)."""
    rt = NodeRuntime(open_store(str(tmp_path / "store")), cache_dir=str(tmp_path / "cache"))
    scene = dict(SCENE, effects=[{"name": "film_grain", "strength": 0.6}, {"name": "stabilization", "strength": 0.3},
                                 {"name": "vignette", "strength": 0.5}])
    r = generate.SceneRenderer(scene, 96, 54, generate.synth_subject(0), 5)
    whole = rt._with_effects(scene, scene["effects"], r, 0, 12, 5)
    parts = [f for a, b in ((0, 1), (1, 5), (5, 11), (11, 12)) for f in rt._with_effects(scene, scene["effects"], r, a, b, 5)]
    assert len(whole) == len(parts) == 12
    assert all(np.array_equal(a, b) for a, b in zip(whole, parts))
    plain = [r.frame(i) for i in range(12)]
    assert not np.array_equal(whole[3], plain[3])  # the effects did something


def test_apply_effects_on_a_stored_video(tmp_path):
    rt = NodeRuntime(open_store(str(tmp_path / "store")), cache_dir=str(tmp_path / "cache"))
    fmt = Format(96, 54, Fraction(24))
    rt.render_range(SCENE, 0, 12, fmt, "src.mp4", seed=5)
    spec = {"schema": "lookalike.effects/1", "seed": 3, "effects": [{"name": "grain", "sigma": 0.05}]}
    a = rt.apply_effects("src.mp4", spec, 0, 12, fmt, "fx.mp4")
    b = rt.apply_effects("src.mp4", spec, 4, 9, fmt, "fx2.mp4")
    assert (a.n_frames, b.n_frames) == (12, 5)
    src, fx = _decoded(rt, "src.mp4").astype(int), _decoded(rt, "fx.mp4").astype(int)
    assert np.abs(src - fx).mean() > 1.0
