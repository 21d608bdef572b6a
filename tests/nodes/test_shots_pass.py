"""The fast shot pass: frames scaled by one reformatter per size (nodes.media.iter_scaled_frames),
shot features a block of frames at a time (kernels.shots.frame_features) at SHOT_LONG_SIDE.

What must hold for it to be a drop-in: the same pixels as `iter_frames`, the same features whatever
the blocking or the range split, the same shot features in the full analysis as in the shot pass,
and the shot pass decoding nothing bigger than it needs.

Clips: a synthesized one with cuts, a dissolve and a fade (tests/shot_media.py, 192x108 H.264),
and the shared rotated and VFR clips (../shared/media), read in short ranges to stay fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from lookalike.kernels import features as kf
from lookalike.kernels import shots as ks
from lookalike.nodes import analysis, media

from lookalike.errors import InputError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import shot_media  # noqa: E402

MEDIA = Path(__file__).resolve().parents[2] / ".." / "shared" / "media"
ROTATED = MEDIA / "shots" / "issue-134-rotate.mp4"
VFR = MEDIA / "shots" / "goldeneye-vfr-drop3.mp4"
needs_media = pytest.mark.skipif(not ROTATED.exists() or not VFR.exists(), reason="shared media not present")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> shot_media.Clip:
    """synth-mixed: a cut, two dissolves, a fade through white, every shot panning (215 frames)."""
    return shot_media.make_named("synth-mixed", tmp_path_factory.mktemp("pass"))


def _same_as_iter_frames(path: str, start: int, end: int, sizes: list[tuple[int, int]]) -> None:
    got = list(media.iter_scaled_frames(path, start, end, sizes=sizes))
    assert [i for i, _, _ in got] == list(range(start, end))
    for k, size in enumerate(sizes):
        want = list(media.iter_frames(path, start, end, size=size))
        assert [t for _, t, _ in got] == [t for _, t, _ in want]
        for (_, _, imgs), (_, _, rgb) in zip(got, want, strict=True):
            assert imgs[k].shape == rgb.shape
            assert np.array_equal(imgs[k], rgb)


def test_scaled_frames_equal_iter_frames(mixed):
    # Down- and upscaling, and a range that starts after a seek.
    _same_as_iter_frames(str(mixed.path), 100, 130, [(64, 36), (256, 144)])


@needs_media
def test_scaled_frames_equal_iter_frames_rotated_and_vfr():
    """The portrait clip carries a -90 degree display matrix: sizes are after rotation. The VFR
    clip drops frames: indices and times come from its own index."""
    _same_as_iter_frames(str(ROTATED), 110, 125, [(28, 64), (108, 256)])
    _same_as_iter_frames(str(VFR), 60, 75, [(64, 28)])


def test_scaled_frames_need_a_size(mixed):
    with pytest.raises(InputError):
        next(media.iter_scaled_frames(str(mixed.path), 0, 5, sizes=[]))
    with pytest.raises(InputError):
        next(media.iter_scaled_frames(str(mixed.path), 0, 5, sizes=[(0, 36)]))


def test_frame_features_match_the_per_frame_definitions_whatever_the_blocking(mixed):
    size = analysis._shot_size(analysis._analysis_size(analysis._probe(str(mixed.path))))
    rgb = np.stack(
        [imgs[0] for _, _, imgs in media.iter_scaled_frames(str(mixed.path), 20, 80, sizes=[size])]
    )
    runs = []
    for block in (1, 7, 24, len(rgb)):
        prev, parts = None, []
        for a in range(0, len(rgb), block):
            ff = ks.frame_features(rgb[a : a + block], prev)
            prev = ff.last
            parts.append(ff)
        runs.append(
            {
                k: np.concatenate([getattr(p, k) for p in parts])
                for k in ("score", "hist", "hist_dist", "thumbs", "luma_mean")
            }
        )
    for other in runs[1:]:
        for k, v in runs[0].items():
            assert np.array_equal(v, other[k], equal_nan=True), k

    import cv2

    f = runs[0]
    hsv = [cv2.cvtColor(kf.to_float(x), cv2.COLOR_RGB2HSV) for x in rgb]
    hist = [kf.hsv_histogram(x) for x in hsv]
    assert np.isnan(f["score"][0]) and np.isnan(f["hist_dist"][0])  # no predecessor in the block
    for j in range(1, len(rgb)):
        assert f["score"][j] == pytest.approx(kf.content_score(hsv[j - 1], hsv[j]), rel=1e-5, abs=1e-4)
        assert f["hist_dist"][j] == pytest.approx(kf.histogram_distance(hist[j - 1], hist[j]), abs=1e-6)
    for j in range(len(rgb)):
        assert np.array_equal(f["hist"][j], hist[j])
        assert np.array_equal(f["thumbs"][j], ks.thumbnail(rgb[j]))
        assert f["luma_mean"][j] == pytest.approx(float(kf.luma(kf.to_float(rgb[j])).mean()), rel=1e-5)
    cuts = [c for c in mixed.cut_frames if 20 < c < 80]
    assert cuts and all(f["score"][c - 20] > 30 for c in cuts)


SHOT_KEYS = ("index", "t", "score", "hist_dist", "hist", "thumb")


def test_shot_pass_and_full_analysis_agree_and_any_split_is_the_same(mixed):
    """detect_shots must find what analyze finds: the same shot features in both modes. Split
    points off the block grid (24 frames from the lead frame) and one frame ranges included."""
    path = str(mixed.path)
    n = mixed.n_frames
    whole = analysis.analyze_range(path, 0, None, shots_only=True)
    bounds = [0, 25, 49, 50, 97, 160, n]
    parts = [
        analysis.analyze_range(path, a, b, shots_only=True) for a, b in zip(bounds, bounds[1:], strict=False)
    ]
    assert json.loads(json.dumps([f for p in parts for f in p["frames"]])) == whole["frames"]
    full = analysis.analyze_range(path, 40, 90)
    assert [{k: f[k] for k in SHOT_KEYS} for f in full["frames"]] == [
        {k: f[k] for k in SHOT_KEYS} for f in whole["frames"][40:90]
    ]
    assert analysis.scene_boundaries(whole["frames"]) == analysis.detect_shots(path)


def test_shot_pass_decodes_only_at_the_shot_size(mixed, monkeypatch):
    seen = []
    real = media.iter_scaled_frames

    def spy(*args, **kwargs):
        seen.append(list(kwargs["sizes"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(media, "iter_scaled_frames", spy)
    analysis.detect_shots(str(mixed.path))
    assert seen == [[(64, 36)]]
    analysis.analyze_range(str(mixed.path), 0, 30)
    assert seen[-1] == [(64, 36), (256, 144)]
