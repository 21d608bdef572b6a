"""nodes.score calibration on synthesized pairs with a known relation (tests/nodes/score_media.py)
and on the shared clips."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import score_media as sm  # noqa: E402

MEDIA = Path(__file__).resolve().parents[2] / ".." / "shared" / "media"
FAMILIES = ("overall", "visual", "audio", "pacing", "colour", "texture", "perceptual", "motion")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The sample clip, its analysis, and a scorer of variants against it (results cached by name)."""
    from lookalike.nodes.analysis import analyze
    from lookalike.nodes.score import ScoreConfig, score

    d = tmp_path_factory.mktemp("score")
    sample = sm.make(d / "sample.mp4")
    analysis = analyze(str(sample))
    cache: dict[str, dict] = {}

    def run(name: str, spec: sm.Spec) -> dict:
        if name not in cache:
            out = sm.make(d / f"{name}.mp4", spec)
            cache[name] = score(str(sample), str(out), analysis, None, config=ScoreConfig(thumbnails=False))
        return cache[name]

    return run


def _others_barely_move(doc: dict, base: dict, changed: set[str], tol: float = 4.0) -> None:
    for k in ("colour", "texture", "motion", "audio", "pacing"):
        if k not in changed:
            assert abs(doc[k] - base[k]) <= tol, (k, doc[k], base[k])


def test_identical_video_scores_at_least_99(lab):
    doc = lab("identical", sm.SAMPLE)
    for k in FAMILIES:
        assert doc[k] >= 99, (k, doc[k])
    assert all(sc["overall"] >= 99 for sc in doc["scenes"])
    assert doc["schema"] == "lookalike.similarity/1" and len(doc["scenes"]) == 3


def test_low_bitrate_reencode_stays_at_least_90(lab):
    doc = lab("lowbit", sm.low_bitrate())
    assert doc["overall"] >= 90, doc["overall"]
    assert doc["metrics"]["ssim_mean"] < 0.99  # it really is degraded


def test_colour_shift_drops_colour_only(lab):
    base, doc = lab("identical", sm.SAMPLE), lab("colour1", sm.colour_shift(1.0))
    assert doc["colour"] < 60
    _others_barely_move(doc, base, {"colour"})
    ops = [s["operation"]["op"] for s in doc["suggestions"]]
    assert "adjust_grade" in ops
    # The shift made the output warmer: the suggestion is to cool it down.
    grade_ops = [s["operation"] for s in doc["suggestions"] if s["operation"]["op"] == "adjust_grade"]
    assert all(op["delta"].get("temperature", 0) < 0 for op in grade_ops)


def test_moved_cuts_drop_pacing_only(lab):
    base, doc = lab("identical", sm.SAMPLE), lab("cuts10", sm.cuts_moved(10))
    assert doc["pacing"] < 60
    _others_barely_move(doc, base, {"pacing", "motion"}, tol=5.0)
    assert doc["motion"] >= 85
    ops = {s["operation"]["op"] for s in doc["suggestions"]}
    assert "set_duration" in ops


def test_swapped_music_drops_audio_only(lab):
    base, doc = lab("identical", sm.SAMPLE), lab("music", sm.music_swapped())
    assert doc["audio"] < 60
    _others_barely_move(doc, base, {"audio"})
    assert any(s["operation"]["op"] == "set_tempo" for s in doc["suggestions"])


def test_remake_with_other_content_scores_high_and_unrelated_low(lab):
    remake, unrelated = lab("remake", sm.remake()), lab("unrelated", sm.unrelated())
    assert remake["overall"] >= 85, remake["overall"]
    assert remake["perceptual"] < 30  # the pixels differ; the look, rhythm and sound do not
    assert unrelated["overall"] <= 40, unrelated["overall"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "family,levels,make",
    [
        ("colour", (0.0, 0.2, 0.5, 1.0), sm.colour_shift),
        ("pacing", (0, 2, 5, 10), sm.cuts_moved),
    ],
    ids=["colour-shift", "cut-shift"],
)
def test_monotonic_in_degradation(lab, family, levels, make):
    scores = [lab(f"{family}{lv}", make(lv))[family] for lv in levels]
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), scores
    overall = [lab(f"{family}{lv}", make(lv))["overall"] for lv in levels]
    assert all(a > b for a, b in zip(overall, overall[1:], strict=False)), overall


def test_analyses_only_compare_reports_missing(tmp_path):
    from lookalike.nodes.analysis import analyze
    from lookalike.nodes.score import compare

    p = sm.make(tmp_path / "s.mp4", sm.variant(shots=sm.SAMPLE.shots[:2]))
    a = analyze(str(p))
    doc = compare(a, a)
    assert doc["overall"] == pytest.approx(100.0)
    assert doc["texture"] is None and doc["perceptual"] is None
    assert any("keyframe" in m for m in doc["missing"])


def test_plan_alignment_uses_plan_ranges(tmp_path):
    from lookalike.coordinator.planner import make_plan
    from lookalike.nodes.analysis import analyze
    from lookalike.nodes.score import align_scenes

    p = sm.make(tmp_path / "s.mp4", sm.variant(shots=sm.SAMPLE.shots[:2]))
    a = analyze(str(p))
    plan = make_plan(a)
    plan["scenes"][0]["end_frame"] -= 4
    plan["scenes"][1]["start_frame"] -= 4
    al = align_scenes(a, a, plan)
    assert [(x["start"], x["end"], x["by"]) for x in al] == [(0, 36, "plan"), (36, 70, "plan")]
    assert [x["by"] for x in align_scenes(a, a)] == ["match", "match"]


@pytest.mark.slow
def test_shared_clips_identical_and_unrelated():
    """Big Buck Bunny (30 s) against itself, and against the GoldenEye clip (nothing alike)."""
    from lookalike.nodes.score import ScoreConfig, score

    bbb = str(MEDIA / "samples" / "big_buck_bunny_0_30.webm")
    other = str(MEDIA / "shots" / "issue-134-rotate.mp4")
    cfg = ScoreConfig(thumbnails=False, keyframes_per_scene=1)
    same = score(bbb, bbb, None, None, config=cfg)
    assert same["overall"] >= 99
    diff = score(bbb, other, None, None, config=cfg)
    assert diff["overall"] <= 40, diff["overall"]
