"""nodes.timeline: timeline.otio reads back with one clip per scene, ranges tiling the final, dissolves."""

from __future__ import annotations

import copy
from pathlib import Path

import opentimelineio as otio
import pytest
from lookalike.coordinator.planner import make_plan
from lookalike.nodes.timeline import write_otio

from lookalike.errors import InputError


def _analysis() -> dict:
    """Three sample scenes at 24000/1001 fps: 40, 30 and 50 frames; a dissolve into the third."""
    bounds = [(0, 40), (40, 70), (70, 120)]
    scenes = []
    for i, (a, b) in enumerate(bounds):
        kind = "dissolve" if i == 2 else ("none" if i == 0 else "cut")
        t = {"kind": kind, "start_frame": a - 6, "end_frame": a + 6} if kind == "dissolve" else {"kind": kind}
        scenes.append(
            {
                "index": i,
                "start_frame": a,
                "end_frame": b,
                "start_s": a * 1001 / 24000,
                "end_s": b * 1001 / 24000,
                "transition_in": t,
                "palette": [],
                "grade": {"exposure": 0.0},
                "camera": {"motion": "pan_left", "trajectory": [[0.0, 0.0, 1.0, 0.0]] * (b - a)},
            }
        )
    source = {"path": "s.mp4", "duration_s": 120 * 1001 / 24000, "fps": 23.976, "fps_num": 24000}
    source |= {"fps_den": 1001, "n_frames": 120, "width": 64, "height": 36}
    return {
        "schema": "lookalike.analysis/1",
        "source": source,
        "scenes": scenes,
        "audio": {"beats_s": [0.5, 1.0, 9.0]},
    }


def test_reads_back_with_one_clip_per_scene_tiling_the_final(tmp_path: Path) -> None:
    analysis = _analysis()
    plan = make_plan(analysis)
    write_otio(plan, analysis, "final.mp4", tmp_path / "timeline.otio")
    tl = otio.adapters.read_from_file(str(tmp_path / "timeline.otio"))
    video, audio = tl.video_tracks()[0], tl.audio_tracks()[0]
    clips = list(video.find_clips())
    assert [c.name for c in clips] == ["Scene 1", "Scene 2", "Scene 3"]
    assert sum(c.source_range.duration.to_frames() for c in clips) == 120
    assert [c.source_range.start_time.to_frames() for c in clips] == [0, 40, 70]
    assert clips[0].source_range.duration.rate == pytest.approx(24000 / 1001)
    assert all(c.media_reference.target_url == "final.mp4" for c in clips)
    assert clips[1].metadata["lookalike"]["prompt"] == plan["scenes"][1]["prompt"]
    assert clips[2].metadata["lookalike"]["sample_scene"]["index"] == 2
    assert tl.duration().to_frames() == 120

    transitions = [t for t in video if isinstance(t, otio.schema.Transition)]
    assert len(transitions) == 1
    assert video.index(transitions[0]) == 2  # between scene 2 and scene 3
    assert transitions[0].transition_type == otio.schema.TransitionTypes.SMPTE_Dissolve
    assert (transitions[0].in_offset.to_frames(), transitions[0].out_offset.to_frames()) == (6, 6)

    (mix,) = list(audio.find_clips())
    assert mix.source_range.duration.to_frames() == 120
    assert [round(m.marked_range.start_time.to_seconds(), 2) for m in mix.markers] == [0.5, 1.0]


def test_gaps_or_a_wrong_length_are_refused(tmp_path: Path) -> None:
    analysis = _analysis()
    plan = make_plan(analysis)
    broken = copy.deepcopy(plan)
    broken["scenes"][1]["start_frame"] = 42
    with pytest.raises(InputError, match="previous scene ends at frame 40"):
        write_otio(broken, analysis, "final.mp4", tmp_path / "t.otio")
    short = copy.deepcopy(plan)
    short["format"]["n_frames"] = 130
    with pytest.raises(InputError, match="130 frames"):
        write_otio(short, analysis, "final.mp4", tmp_path / "t.otio")
    empty = copy.deepcopy(plan)
    empty["scenes"] = []
    with pytest.raises(InputError, match="no scenes"):
        write_otio(empty, analysis, "final.mp4", tmp_path / "t.otio")
    assert not list(tmp_path.iterdir())
