"""Load: 20 projects submitted at once through `lookalike submit` to a loopback cluster (PostgreSQL, the
S3 server, three node processes) all complete correctly."""

from __future__ import annotations

import json
import uuid

import pytest
from farm import Farm, cli
from lookalike.nodes import media
from synth import make_clip

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def test_twenty_projects_at_once(tmp_path, pg_url, pg_schema, s3_server):
    clips = []
    for i in range(4):  # four different samples, five projects each
        path = tmp_path / f"s{i}.mp4"
        truth = make_clip(path, [(12 + 2 * i, (200, 60 * i % 255, 90), 1.0), (10, (70, 90, 220), 0.0)],
                          size=(96, 54), bpm=100 + 10 * i)
        clips.append((path, truth))
    manifest = [{"sample": str(clips[k % 4][0]), "name": f"load-{k}", "out": f"out{k}"} for k in range(20)]
    (tmp_path / "batch.json").write_text(json.dumps(manifest))
    farm = Farm(tmp_path / "farm", nodes=3, db=f"{pg_url}?schema={pg_schema}",
                store=f"s3://load-{uuid.uuid4().hex[:8]}?endpoint={s3_server}",
                env={"LOOKALIKE_S3_ACCESS_KEY": "testing", "LOOKALIKE_S3_SECRET_KEY": "testing"})
    try:
        r = cli("submit", str(tmp_path / "batch.json"), "--cluster", farm.address, "--wait", timeout=900)
    finally:
        farm.close()
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    done = [json.loads(x) for x in r.stdout.splitlines() if '"done"' in x]
    assert len(done) == 20
    for k in range(20):
        path, truth = clips[k % 4]
        info = media.probe(str(tmp_path / f"out{k}" / "final.mp4"))
        assert info.n_frames == truth["n_frames"], k
        analysis = json.loads((tmp_path / f"out{k}" / "analysis.json").read_text())
        assert [s["start_frame"] for s in analysis["scenes"][1:]] == truth["cuts"], k
