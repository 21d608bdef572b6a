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
    assert all(np.array_equal(a, b) for a, b in zip(whole, parts, strict=True))
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


def test_video_to_video_scene_is_generated_from_the_sample_scene_and_rendered_from_the_store(tmp_path):
    """generate_scene cuts the scene from the sample, sends it to Runway's video-to-video (a fake of its
    API), stores the result; render_range then conforms that stored clip, with no provider call."""
    import base64
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "providers"))
    from lookalike.nodes.providers import ProviderSettings
    from provider_fakes import FakeAPI, reply_json, write_clip
    from synth import make_clip

    api = FakeAPI()
    clip = write_clip(tmp_path / "clip.mp4").read_bytes()
    api.route("POST", r"^/v1/video_to_video$", lambda r: reply_json({"id": "t1"}))
    api.route("GET", r"^/v1/tasks/t1$", lambda r: reply_json(
        {"id": "t1", "status": "SUCCEEDED", "createdAt": "2026-01-01T00:00:00Z", "cost": {"credits": 10},
         "output": [f"{api.url}/out.mp4"]}))
    api.route("GET", r"^/out.mp4$", lambda r: (200, {"content-type": "video/mp4"}, clip))
    try:
        store = open_store(str(tmp_path / "store"))
        make_clip(tmp_path / "sample.mp4", [(10, (200, 120, 60), 1.0), (14, (60, 120, 200), -1.0)])
        store.put_file("uploads/sample.mp4", tmp_path / "sample.mp4")
        rt = NodeRuntime(store, cache_dir=str(tmp_path / "cache"))
        rt.provider_settings = ProviderSettings(runway_api_key="key-1", runway_base_url=api.url, poll_s=0.01)
        scene = dict(SCENE, index=1, start_frame=10, end_frame=24, provider="runway", model="aleph2")
        fmt = Format(96, 54, Fraction(24))
        r = rt.generate_scene(scene, fmt, "clips/s1.mp4", seed=5, sample_key="uploads/sample.mp4")
        assert r["key"] == "clips/s1.mp4" and r["provider"] == "runway" and store.exists("clips/s1.mp4")
        sent = api.requests[0].json()
        (tmp_path / "sent.mp4").write_bytes(base64.b64decode(sent["videoUri"].split(",", 1)[1]))
        assert media.probe(str(tmp_path / "sent.mp4")).n_frames == 14  # the scene, not the whole sample
        calls = len(api.requests)
        clip_scene = dict(scene, clip_key="clips/s1.mp4")
        seg = rt.render_range(clip_scene, 12, 20, fmt, "seg.mp4", seed=5)
        assert seg.n_frames == 8 and len(api.requests) == calls
        # Effects and transitions apply over a provider clip as over the compositor.
        rt.render_range(dict(clip_scene, effects=[{"name": "vignette", "strength": 1.0}]), 12, 20, fmt, "fx.mp4",
                        seed=5)
        plain, fx = _decoded(rt, "seg.mp4").astype(float), _decoded(rt, "fx.mp4").astype(float)
        assert fx[:, :6, :6].mean() < plain[:, :6, :6].mean() - 10
        assert abs(fx[:, 22:32, 40:56].mean() - plain[:, 22:32, 40:56].mean()) < 6
        prev = dict(SCENE, index=0, start_frame=0, end_frame=10)
        faded = dict(clip_scene, transition_in={"kind": "dissolve", "start_frame": 10, "end_frame": 14})
        rt.render_range(faded, 10, 14, Format(96, 54, Fraction(24), crf=0, preset="ultrafast"), "dis.mp4", seed=5,
                        prev_scene=prev)
        lossless = Format(96, 54, Fraction(24), crf=0, preset="ultrafast")
        rt.render_range(clip_scene, 10, 14, lossless, "nodis.mp4", seed=5)
        held = generate.SceneRenderer(prev, 96, 54, generate.synth_subject(0), 5).frame(9).astype(float)
        d, nd = _decoded(rt, "dis.mp4").astype(float), _decoded(rt, "nodis.mp4").astype(float)
        # The dissolve's first frame is mostly the held outgoing frame, its last mostly the clip.
        assert np.abs(d[0] - held).mean() < np.abs(nd[0] - held).mean() / 2
        assert np.abs(d[3] - nd[3]).mean() < np.abs(d[0] - nd[0]).mean() / 2
    finally:
        api.close()


def test_a_vertical_delivery_follows_the_subject_of_each_planned_scene(tmp_path):
    """deliver() hands the plan's scenes to the exporter: a 9:16 final keeps each scene's subject."""
    import shutil

    from synth import orange_share, two_subject_clip

    rt = NodeRuntime(open_store(str(tmp_path / "store")), cache_dir=str(tmp_path / "cache"))
    final = tmp_path / "final.mp4"
    shutil.copy(two_subject_clip(tmp_path), final)
    plan = {"format": {"fps_num": 24, "fps_den": 1},
            "scenes": [{"index": 0, "start_frame": 0, "end_frame": 16}, {"index": 1, "start_frame": 16, "end_frame": 32}]}
    analysis = {"source": {"fps": 24.0}, "scenes": plan["scenes"]}
    outputs = rt.deliver(str(final), "p/final.mp4", plan=plan, analysis_doc=analysis, formats=[], resolution="",
                         aspect="9:16")
    assert "timeline.otio" in outputs
    frames = [f for _, _, f in media.iter_frames(str(final))]
    assert frames[0].shape == (180, 102, 3)
    assert min(orange_share(f) for f in frames) > 0.13
