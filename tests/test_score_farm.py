"""Scoring on a farm: the remake's output is analysed by frame range on several nodes (score_range,
score_audio, score_merge jobs, as the sample's analysis is), and the similarity it reports is exactly what
`lookalike.nodes.score.score` makes of the same final.mp4 in one process."""

from __future__ import annotations

import json

import pytest
from farm import cli
from lookalike.coordinator.state import open_state
from lookalike.nodes.score import ScoreConfig, score
from synth import make_clip

from lookalike.settings import Settings

pytestmark = pytest.mark.slow


def test_two_nodes_score_by_range_and_match_the_single_process_score(tmp_path):
    # 248 frames: enough for two analysis ranges (planner.analysis_ranges: at least 120 frames each).
    sample = tmp_path / "sample.mp4"
    make_clip(sample, [(96, (240, 180, 110), 2.0), (80, (110, 150, 240), -2.0), (72, (190, 240, 150), 0.0)])
    out, home = tmp_path / "out", tmp_path / "home"
    r = cli("remake", str(sample), "--out", str(out), "--home", str(home), "--nodes", "2", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    project_id = json.loads((out / "project.json").read_text())["id"]
    with open_state(f"sqlite:///{(home / 'state.db').resolve()}") as st:
        jobs = [j for j in st.jobs(project_id) if j.kind.startswith("score")]
        nodes = {
            a.node_id
            for j in jobs
            if j.kind in ("score_range", "score_audio")
            for a in st.attempts(j.id)
            if a.state == "succeeded"
        }
    kinds = sorted(j.kind for j in jobs)
    assert kinds == ["score", "score_audio", "score_merge", "score_range", "score_range"], kinds
    assert all(j.state == "succeeded" and (j.spec or {}).get("v") == 1 for j in jobs)
    ranges = sorted((j.start_frame, j.end_frame) for j in jobs if j.kind == "score_range")
    assert ranges[0][0] == 0 and ranges[0][1] == ranges[1][0] and ranges[1][1] == 248
    assert len(nodes) == 2, nodes

    farm_doc = json.loads((out / "similarity.json").read_text())
    assert farm_doc.pop("plan_version") == 1
    s = Settings.from_env()
    cfg = ScoreConfig(
        lpips_weights=s.lpips_weights, lpips_backbone=s.lpips_backbone, fid_weights=s.fid_weights
    )
    analysis = json.loads((out / "analysis.json").read_text())
    plan = json.loads((out / "plan.json").read_text())
    single = score(str(sample), str(out / "final.mp4"), analysis, plan, config=cfg)
    assert farm_doc == json.loads(json.dumps(single))
    assert farm_doc["metrics"]["ssim_mean"] is not None and len(farm_doc["scenes"]) == 3
