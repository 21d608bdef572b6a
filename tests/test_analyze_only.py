"""`lookalike analyze` analyses and nothing more: the project it makes stops after the analysis
(no render, assemble or score jobs), offers analysis.json alone, and a run that succeeds is quiet.

The sample is synthesized here: two flat shots (a cut at frame 30) with a 5.1 AAC click track, the
layout that once failed the whole analysis in the loudness meter.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from farm import cli
from lookalike.coordinator.engine import OUTPUT_NAMES, output_names
from lookalike.coordinator.state import open_state

ANALYSIS_KINDS = {"analyze_range", "analyze_audio", "analyze_merge", "analyze_vision"}


def surround_clip(path: Path, *, cut: int = 30, n: int = 56, fps: int = 24, rate: int = 48000) -> Path:
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 128, 72, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        au = c.add_stream("aac", rate=rate, layout="5.1")
        for i in range(n):
            img = np.full((72, 128, 3), (230, 160, 60) if i < cut else (40, 90, 220), np.uint8)
            img[:, (i * 3) % 128] = 255  # a moving line, so neither shot is a still
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        total = int(n / fps * rate)
        y = np.zeros(total, np.float32)
        k = int(0.02 * rate)
        burst = 0.4 * np.sin(2 * np.pi * 1000 * np.arange(k) / rate) * np.hanning(k)
        for start in range(0, total - k, rate // 2):  # 120 bpm
            y[start : start + k] += burst
        x = np.stack([y, y * 0.7, y * 0.5, y * 0.2, y * 0.3, y * 0.3])  # FL FR FC LFE BL BR
        resampler = av.AudioResampler(format=au.codec_context.format.name, layout="5.1", rate=rate)
        for i in range(0, total, 1024):
            block = np.ascontiguousarray(x[:, i : i + 1024].T, dtype=np.float32).reshape(1, -1)
            fr = av.AudioFrame.from_ndarray(block, format="flt", layout="5.1")
            fr.sample_rate, fr.pts, fr.time_base = rate, i, Fraction(1, rate)
            for rf in resampler.resample(fr):
                for p in au.encode(rf):
                    c.mux(p)
        for p in au.encode():
            c.mux(p)
    return path


def test_analyze_runs_the_analysis_alone_and_quietly(tmp_path):
    clip = surround_clip(tmp_path / "sample.mp4")
    home, out = tmp_path / "home", tmp_path / "a.json"
    r = cli("analyze", str(clip), "--out", str(out), "--home", str(home))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr == "", r.stderr[-3000:]  # no warnings: nothing was started only to be torn down

    doc = json.loads(out.read_text())
    assert doc["schema"] == "lookalike.analysis/1"
    assert [s["start_frame"] for s in doc["scenes"][1:]] == [30]
    audio = doc["audio"]
    assert audio["lufs"] is not None and audio["tempo_bpm"] is not None
    assert [(t["channels"], t["layout"]) for t in audio["tracks"]] == [(6, "5.1")]

    state = open_state(f"sqlite:///{home / 'state.db'}")
    try:
        (project,) = state.list_projects("default")
        assert project.state.value == "done" and project.stage == "done"
        assert project.options["analysis_only"] is True
        kinds = {j.kind for j in state.jobs(project.id)}
        assert kinds <= ANALYSIS_KINDS, kinds
        assert state.get_document(project.id, "analysis")["scenes"] == doc["scenes"]
        assert state.get_document(project.id, "plan") is None
    finally:
        state.close()
    outs = sorted(p.name for p in (home / "store" / "projects" / project.id / "out").iterdir())
    assert outs == ["analysis.json"]
    assert (
        json.loads((home / "store" / "projects" / project.id / "out" / "analysis.json").read_text())["audio"][
            "lufs"
        ]
        == audio["lufs"]
    )


def test_an_analysis_only_project_offers_analysis_json_alone():
    assert output_names({"analysis_only": True, "formats": ["webm"]}) == ["analysis.json"]
    assert output_names({}) == list(OUTPUT_NAMES)
