"""The edit stage on a node: effects, grades and transitions over frame ranges, seams, whole files.

Clips are synthesized per test module (tests/synth.py: textured shots panning at known speeds, a
click track), plus one with a known camera jitter for stabilization. The seam tests split renders at
awkward places (1-frame ranges, inside a stabilization window, inside a retimed stretch, mid
transition) and require the frames to equal a one-piece render bit for bit; after encoding each
range as its own segment and concatenating, every frame must stay within 50 dB PSNR of the
one-piece render.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from lookalike.kernels import effects as kfx
from lookalike.kernels import lut as klut
from lookalike.nodes import edit, media
from synth import make_clip, psnr, texture

from lookalike.errors import InputError, NotFoundError

N_FRAMES = 40
SPLITS = [(0, 1), (1, 2), (2, 9), (9, 10), (10, 23), (23, N_FRAMES)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """40 frames, 192x108 at 24 fps: two shots (cut at 22) panning at 2 and 5 px/frame, with audio."""
    p = tmp_path_factory.mktemp("edit") / "clip.mp4"
    make_clip(p, [(22, (255, 200, 150), 2.0), (18, (120, 180, 255), 5.0)], size=(192, 108), bpm=120.0)
    return p


@pytest.fixture(scope="module")
def other(tmp_path_factory) -> Path:
    """A cool-toned 24-frame clip (the reference look / the incoming scene)."""
    p = tmp_path_factory.mktemp("edit") / "other.mp4"
    make_clip(p, [(24, (80, 140, 255), 3.0)], size=(192, 108), bpm=None)
    return p


@pytest.fixture(scope="module")
def jitter_clip(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A static textured shot shaken by a known random jitter (px per frame), 30 frames, lossless-ish."""
    p = tmp_path_factory.mktemp("edit") / "jitter.mp4"
    rng = np.random.default_rng(3)
    offsets = rng.integers(-6, 7, (30, 2))
    tex = texture(9, 160, 256, (230, 210, 180))
    with av.open(str(p), "w") as c:
        vs = c.add_stream("libx264", rate=24)
        vs.width, vs.height, vs.pix_fmt = 192, 108, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "10"}
        for dx, dy in offsets:
            frame = np.ascontiguousarray(tex[40 + dy : 40 + dy + 108, 40 + dx : 40 + dx + 192])
            for pk in vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(pk)
        for pk in vs.encode():
            c.mux(pk)
    return p, offsets


def _warm_cube(tmp_path: Path) -> Path:
    lut = klut.from_function(
        lambda c: np.clip(c ** np.float32(0.85) * np.array([1.08, 1.0, 0.9], np.float32), 0, 1), 17
    )
    path = tmp_path / "warm.cube"
    edit.write_cube(path, lut)
    return path


def _spec(tmp_path: Path) -> dict:
    return {
        "schema": edit.SPEC_SCHEMA,
        "seed": 42,
        "effects": [
            {"name": "stabilize", "radius": 4},
            {"name": "motion_blur", "shutter": 0.5},
            {"name": "retime", "ramp": [[0, 1.0], [20, 0.5], [40, 1.5]]},
            {"name": "lut", "path": str(_warm_cube(tmp_path))},
            {"name": "grain", "sigma": 0.03},
            {"name": "particles", "kind": "dust", "count": 30},
            {"name": "vignette", "strength": 0.4},
        ],
    }


def _concat(frames_by_range: list[list[np.ndarray]], tmp: Path, name: str, crf: int) -> list[np.ndarray]:
    """Encode each range as its own segment (as nodes do), concatenate, decode."""
    h, w = frames_by_range[0][0].shape[:2]
    segs = []
    for i, frames in enumerate(frames_by_range):
        seg = tmp / f"{name}-{i}.mp4"
        with media.SegmentWriter(seg, width=w, height=h, fps=Fraction(24), crf=crf) as wr:
            for f in frames:
                wr.write(f)
        segs.append(seg)
    out = tmp / f"{name}.mp4"
    media.concat_segments(segs, out)
    return [f for _, _, f in media.iter_frames(str(out))]


def test_effects_chunks_equal_the_whole_and_survive_encoding(clip, tmp_path) -> None:
    pipe = edit.Pipeline.from_spec(_spec(tmp_path))
    n = pipe.n_out(N_FRAMES)
    assert n > N_FRAMES  # the ramp slows the middle down
    whole = edit.effects_range(clip, pipe, 0, n)
    cuts = [0, 1, 2, 9, 10, n // 2, n // 2 + 1, n - 3, n]  # 1-frame ranges, inside the slow-down and windows
    parts = [edit.effects_range(clip, pipe, a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
    flat = [f for part in parts for f in part]
    assert len(flat) == len(whole) == n
    for k, (a, b) in enumerate(zip(whole, flat, strict=True)):
        assert np.array_equal(a, b), f"frame {k} differs between chunked and whole renders"
    # Lossless x264 (crf 0): the chunked encode decodes to exactly the one-piece encode, so the
    # segment boundaries add nothing (PSNR infinite, >= 50 dB asked).
    decoded = _concat(parts, tmp_path, "chunked0", 0)
    reference = _concat([whole], tmp_path, "whole0", 0)
    assert len(decoded) == n
    worst = min(psnr(a, b) for a, b in zip(decoded, reference, strict=True))
    assert worst >= 50.0, f"worst frame PSNR between chunked and whole encodes is {worst:.1f} dB"
    # At the nodes' default quality (crf 18) the codec's own loss dominates (grained 4:2:0 video is
    # ~30 dB from its RGB frames either way); the chunked encode must be no worse near the seams.
    chunked = [psnr(a, b) for a, b in zip(_concat(parts, tmp_path, "chunked18", 18), whole, strict=True)]
    one = [psnr(a, b) for a, b in zip(_concat([whole], tmp_path, "whole18", 18), whole, strict=True)]
    assert np.mean(chunked) >= np.mean(one) - 0.3
    assert min(chunked) >= min(one) - 0.5


def test_effects_range_is_repeatable_and_seeded(clip, tmp_path) -> None:
    spec = {"seed": 1, "effects": [{"name": "grain", "sigma": 0.05}]}
    a = edit.effects_range(clip, spec, 5, 8)
    assert all(np.array_equal(x, y) for x, y in zip(a, edit.effects_range(clip, spec, 5, 8), strict=True))
    b = edit.effects_range(clip, {"seed": 2, "effects": spec["effects"]}, 5, 8)
    assert not np.array_equal(a[0], b[0])


def test_stabilize_removes_known_jitter(jitter_clip) -> None:
    path, offsets = jitter_clip
    spec = {"effects": [{"name": "stabilize", "radius": 6, "zoom": 1.1}]}
    out = edit.effects_range(path, spec, 0, 30)
    raw = [f for _, _, f in media.iter_frames(str(path))]

    def wobble(frames: list[np.ndarray]) -> float:
        d = np.array([kfx.global_shift(a, b, width=192) for a, b in zip(frames, frames[1:], strict=False)])
        return float(np.abs(d).mean())

    before, after = wobble(raw), wobble(out)
    assert before > 3.0  # the jitter is there and measurable
    assert after < 0.45 * before
    # Seams inside the smoothing window.
    parts = [f for a, b in ((0, 1), (1, 7), (7, 8), (8, 30)) for f in edit.effects_range(path, spec, a, b)]
    assert all(np.array_equal(x, y) for x, y in zip(out, parts, strict=True))


def test_retime_counts_and_blends(clip) -> None:
    half = edit.Pipeline.from_spec({"effects": [{"name": "retime", "speed": 0.5}]})
    assert half.n_out(N_FRAMES) == 2 * N_FRAMES - 1
    out = edit.effects_range(clip, half, 0, 5)
    src = [f for _, _, f in media.iter_frames(str(clip), 0, 3)]
    assert np.array_equal(out[0], src[0]) and np.array_equal(out[2], src[1])
    want = np.round((src[0].astype(int) + src[1].astype(int)) / 2).astype(np.uint8)
    assert np.array_equal(out[1], want)
    double = edit.Pipeline.from_spec({"effects": [{"name": "retime", "speed": 2.0}]})
    assert double.n_out(N_FRAMES) == N_FRAMES // 2


def test_motion_compensated_retime_tracks_a_pan() -> None:
    """A pan of 6 px/frame slowed to half speed: the in-between frame is the texture shifted 3 px."""
    tex = texture(4, 140, 320, (240, 200, 160))
    frames = [np.ascontiguousarray(tex[10:118, 6 * k : 6 * k + 192]) for k in range(8)]
    truth = np.ascontiguousarray(tex[10:118, 3:195])
    blend = edit.Pipeline.from_spec({"effects": [{"name": "retime", "speed": 0.5}]}).render_frames(
        frames, 0, 4
    )
    motion = edit.Pipeline.from_spec({"effects": [{"name": "retime", "speed": 0.5, "mode": "motion"}]})
    out = motion.render_frames(frames, 0, 4)
    inner = (slice(8, -8), slice(16, -16))  # away from the replicated edges
    assert psnr(out[1][inner], truth[inner]) > psnr(blend[1][inner], truth[inner]) + 6.0
    assert np.array_equal(out[2], frames[1])  # whole source frames pass through untouched
    parts = (
        motion.render_frames(frames, 0, 1)
        + motion.render_frames(frames, 1, 2)
        + motion.render_frames(frames, 2, 4)
    )
    assert all(np.array_equal(x, y) for x, y in zip(out, parts, strict=True))


def test_transition_chunks_and_known_middle(clip, other) -> None:
    tr = {"kind": "dissolve", "frames": 9}
    whole = edit.transition_range(clip, other, tr, 0, 9, outgoing_first=31)
    parts = [
        f
        for a, b in ((0, 1), (1, 4), (4, 5), (5, 9))
        for f in edit.transition_range(clip, other, tr, a, b, outgoing_first=31)
    ]
    assert all(np.array_equal(x, y) for x, y in zip(whole, parts, strict=True))
    a = next(media.iter_frames(str(clip), 35, 36))[2]
    b = next(media.iter_frames(str(other), 4, 5))[2]
    assert np.array_equal(whole[4], np.round((a.astype(int) + b.astype(int)) / 2).astype(np.uint8))
    for kind, extra in (
        ("wipe", {"direction": "right"}),
        ("fade", {"colour": [1, 1, 1]}),
        ("zoom", {}),
        ("whip", {}),
        ("cut", {}),
    ):
        frames = edit.transition_range(clip, other, {"kind": kind, "frames": 6, **extra}, 2, 4)
        assert len(frames) == 2 and frames[0].shape == (108, 192, 3)


def test_transition_video_joins_two_clips(clip, other, tmp_path) -> None:
    out = tmp_path / "joined.mp4"
    summary = edit.transition_video(
        clip, other, {"kind": "dissolve", "frames": 8}, out, chunk_frames=3, crf=0
    )
    assert summary["frames"] == N_FRAMES + 24 - 8
    got = [f for _, _, f in media.iter_frames(str(out))]
    assert len(got) == N_FRAMES + 24 - 8
    want = edit.transition_range(
        clip, other, {"kind": "dissolve", "frames": 8}, 0, 8, outgoing_first=N_FRAMES - 8
    )
    head = [f for _, _, f in media.iter_frames(str(clip), 0, N_FRAMES - 8)]
    tail = [f for _, _, f in media.iter_frames(str(other), 8, 24)]
    expected = _concat([head + want + tail], tmp_path, "expected", 0)
    assert all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True))
    assert edit.transition_from_analysis({"kind": "dissolve", "start_frame": 10, "end_frame": 16}) == {
        "kind": "dissolve",
        "frames": 6,
    }
    assert edit.transition_from_analysis({"kind": "cut", "start_frame": 10, "end_frame": 10}) is None
    with pytest.raises(InputError, match="longer than a clip"):
        edit.transition_video(clip, other, {"kind": "dissolve", "frames": 30}, tmp_path / "no.mp4")
    assert not (tmp_path / "no.mp4").exists()


def test_grade_match_is_the_same_lut_for_every_chunk(clip, other) -> None:
    whole = edit.grade_range(clip, 0, 22, reference=other, scene=(0, 22))
    parts = [
        f
        for a, b in ((0, 1), (1, 13), (13, 22))
        for f in edit.grade_range(clip, a, b, reference=other, scene=(0, 22))
    ]
    assert all(np.array_equal(x, y) for x, y in zip(whole, parts, strict=True))
    # The warm scene moves toward the cool reference: blue up, red down.
    src = [f for _, _, f in media.iter_frames(str(clip), 0, 22)]
    ref = [f for _, _, f in media.iter_frames(str(other))]
    mean = lambda fs: np.mean([f.reshape(-1, 3).mean(0) for f in fs], axis=0)  # noqa: E731
    s, r, g = mean(src), mean(ref), mean(whole)
    assert np.abs(g - r).sum() < 0.35 * np.abs(s - r).sum()


def test_grade_with_a_cube_file(clip, tmp_path) -> None:
    cube = _warm_cube(tmp_path)
    out = edit.grade_range(clip, 3, 6, lut=cube)
    src = [f for _, _, f in media.iter_frames(str(clip), 3, 6)]
    lut = edit.read_cube(cube)
    assert all(np.array_equal(o, klut.apply_lut(s, lut)) for o, s in zip(out, src, strict=True))


def test_whole_file_helpers_keep_frames_and_audio(clip, other, tmp_path) -> None:
    out = tmp_path / "graded.mp4"
    cube_out = tmp_path / "fitted.cube"
    summary = edit.grade_video(clip, other, out, save_lut=cube_out)
    info = media.probe(out)
    assert info.n_frames == N_FRAMES and info.has_audio and summary["frames"] == N_FRAMES
    assert edit.read_cube(cube_out).size == 33
    out2 = tmp_path / "fx.mp4"
    spec_path = tmp_path / "fx.json"
    spec_path.write_text(
        json.dumps({"seed": 3, "effects": [{"name": "grain", "sigma": 0.02}, {"name": "vignette"}]})
    )
    summary = edit.effects_video(clip, spec_path, out2, chunk_frames=7)
    assert media.probe(out2).n_frames == N_FRAMES and media.probe(out2).has_audio
    assert summary["effects"] == ["grain", "vignette"]
    slow = tmp_path / "slow.mp4"
    edit.effects_video(clip, {"effects": [{"name": "retime", "speed": 0.5}]}, slow)
    assert media.probe(slow).n_frames == 2 * N_FRAMES - 1 and not media.probe(slow).has_audio


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"effects": [{"name": "sparkle"}]}, "effects[0]: there is no effect named 'sparkle'"),
        (
            {"effects": [{"name": "grain", "sigma": 0.9}]},
            "effects[0].grain: grain.sigma: must be in [0, 0.25], got 0.9",
        ),
        ({"effects": [{"name": "grain", "sigmaa": 0.1}]}, "effects[0].grain: unknown parameter(s) sigmaa"),
        (
            {"effects": [{"name": "vignette"}, {"name": "stabilize", "radius": 0}]},
            "effects[1].stabilize.radius",
        ),
        ({"effects": [{"name": "retime", "speed": 0}]}, "effects[0].retime.speed"),
        ({"effects": [{"name": "retime", "mode": "optical"}]}, "effects[0].retime.mode"),
        ({"effects": [{"name": "particles", "kind": "rain"}]}, "particles.kind"),
        ({"effects": [{"name": "lut"}]}, "effects[0].lut.path"),
        ({"effects": [{"name": "curves", "points": "s-curve"}]}, "effects[0].curves.points: must be a list"),
        ({"schema": "other/2", "effects": []}, "schema"),
        ({"effects": {"name": "grain"}}, "effects must be a list"),
        ({"seed": "x", "effects": []}, "seed must be a whole number"),
    ],
)
def test_bad_specs_name_the_parameter(spec, words) -> None:
    with pytest.raises(InputError) as err:
        edit.Pipeline.from_spec(spec)
    assert words in str(err.value)


def test_bad_cube_files(tmp_path) -> None:
    bad = tmp_path / "bad.cube"
    bad.write_text("LUT_3D_SIZE 3\n0 0 0\n")
    with pytest.raises(InputError, match="bad.cube: LUT_3D_SIZE 3 needs 27 table rows, the file has 1"):
        edit.read_cube(bad)
    with pytest.raises(InputError, match=r"effects\[0\].lut"):
        edit.Pipeline.from_spec({"effects": [{"name": "lut", "path": str(bad)}]})
    with pytest.raises(NotFoundError):
        edit.read_cube(tmp_path / "missing.cube")
    bad.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(InputError, match="cannot be read as a .cube"):
        edit.read_cube(bad)


def test_bad_transitions(clip, tmp_path) -> None:
    small = tmp_path / "small.mp4"
    make_clip(small, [(12, (200, 200, 200), 1.0)], size=(96, 54), bpm=None)
    with pytest.raises(InputError, match="transition.incoming: small.mp4 is 96x54"):
        edit.transition_range(clip, small, {"kind": "dissolve", "frames": 4}, 0, 4)
    with pytest.raises(InputError, match="transition.kind"):
        edit.transition_range(clip, clip, {"kind": "spin", "frames": 4}, 0, 4)
    with pytest.raises(InputError, match="transition.frames"):
        edit.transition_range(clip, clip, {"kind": "dissolve", "frames": 0}, 0, 0)
    with pytest.raises(InputError, match="transition.direction"):
        edit.transition_range(clip, clip, {"kind": "wipe", "frames": 4, "direction": "up-ish"}, 0, 4)
    with pytest.raises(InputError, match="transition.incoming: frames"):
        edit.transition_range(clip, small, {"kind": "dissolve", "frames": 20}, 0, 20, size=(96, 54))


def test_errors_write_nothing(clip, tmp_path) -> None:
    out = tmp_path / "never.mp4"
    with pytest.raises(InputError):
        edit.effects_video(clip, {"effects": [{"name": "grain", "sigma": -1}]}, out)
    with pytest.raises(InputError, match="outside the result"):
        edit.effects_range(clip, {"effects": []}, 30, 41)
    with pytest.raises(InputError, match="overwrite the input"):
        edit.effects_video(clip, {"effects": []}, clip)
    with pytest.raises(InputError, match="give a reference"):
        edit.grade_video(clip, None, out)
    assert list(tmp_path.iterdir()) == []
