"""report.html in a real headless browser (Debian's chromium), and the JSON report."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from lookalike.coordinator.report import render_report, report_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nodes"))
import score_media as sm  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    """A 2-scene sample and a warmer, recut output scored against it: (analysis, similarity)."""
    from lookalike.nodes.analysis import analyze
    from lookalike.nodes.score import score

    d = tmp_path_factory.mktemp("report")
    short = sm.variant(shots=sm.SAMPLE.shots[:2])
    a, b = short.shots
    sample = sm.make(d / "s.mp4", short)
    recut = (dataclasses.replace(a, n=a.n - 6), dataclasses.replace(b, n=b.n + 6))
    output = sm.make(d / "o.mp4", sm.variant(short, gain=(1.25, 1.0, 0.7), shots=recut))
    analysis = analyze(str(sample))
    return analysis, score(str(sample), str(output), analysis, None)


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _class(tag_attrs: list[tuple[str, dict]], tag: str, cls: str) -> list[dict]:
    return [a for t, a in tag_attrs if t == tag and cls in (a.get("class") or "").split()]


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def test_report_is_self_contained(docs):
    analysis, sim = docs
    page = render_report(analysis, {}, sim)
    # Nothing to fetch: no remote or relative resources, no scripts.
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_in_headless_chromium(docs, tmp_path):
    analysis, sim = docs
    page = tmp_path / "report.html"
    page.write_text(render_report(analysis, {"version": 1}, sim))
    dom = _chromium(["--dump-dom", page.as_uri()], tmp_path).stdout
    p = _Elements()
    p.feed(dom)
    tags = p.tags
    ids = {a.get("id") for _, a in tags if a.get("id")}
    for fam in ("overall", "visual", "audio", "pacing", "colour", "texture", "perceptual", "motion"):
        assert f"score-{fam}" in ids
    overall_text = re.search(r'id="score-overall"[^>]*><b>([\d.]+)</b>', dom)
    assert overall_text and float(overall_text.group(1)) == pytest.approx(sim["overall"], abs=0.05)
    # One block per scene, each with a sample and an output keyframe (inline PNG), two palettes and a motion plot.
    scenes = _class(tags, "section", "scene")
    assert len(scenes) == len(sim["scenes"]) == 2
    imgs = [a for t, a in tags if t == "img"]
    assert len(imgs) == 4 and all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    assert len(_class(tags, "div", "pal")) == 4 and len(_class(tags, "span", "sw")) >= 8
    assert {"motion-0", "motion-1"} <= ids and _class(tags, "polyline", "motion-sample")
    # The timeline shows the cut of each side over the beat grid; loudness has both curves.
    assert len(_class(tags, "line", "cut-sample")) == 1 and len(_class(tags, "line", "cut-output")) == 1
    assert len(_class(tags, "line", "beat")) >= 4
    assert _class(tags, "polyline", "loudness-sample") and _class(tags, "polyline", "loudness-output")
    sugg = _class(tags, "li", "suggestion")
    assert {a["data-op"] for a in sugg} >= {"adjust_grade", "set_duration"}
    assert "lpips" in dom and "fid" in dom  # listed as not measured

    shot = tmp_path / "report.png"
    _chromium([f"--screenshot={shot}", "--window-size=1100,1800", page.as_uri()], tmp_path)
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1800, 1100)
    assert float(img.std()) > 20  # drawn, not a blank page


def test_json_report_has_scores_scenes_and_suggestions_without_pictures(docs):
    analysis, sim = docs
    rep = report_json(analysis, {"version": 2}, sim)
    assert rep["schema"] == "lookalike.report/1" and rep["plan_version"] == 2
    assert rep["scores"]["overall"] == sim["overall"] and len(rep["scenes"]) == 2
    assert rep["suggestions"] and "data:image" not in str(rep)


def _footage_docs():
    """The footage plan of footage_plans.py (scene 3 made generated) and a similarity document with
    an inline keyframe per side and scene, as the score node writes them."""
    from footage_plans import footage_plan

    plan = footage_plan()
    plan["scenes"][2]["source"] = {"kind": "generated", "why": "no media fits: IMG_0042.jpg is excluded"}
    png = "data:image/png;base64,iVBORw0KGgo="
    sim = {
        "overall": 70.0,
        "scenes": [{"index": i, "overall": 70.0, "aligned": {"start_frame": 0, "end_frame": 100, "by": "cuts"}}
                   for i in range(3)],
        "figures": {"scenes": [{"index": i, "thumbs": {"sample": [png], "output": [png], "source": [png]}}
                               for i in range(3)]},
    }
    return plan, sim


def test_report_shows_sample_chosen_source_output_and_why_it_won():
    plan, sim = _footage_docs()
    page = render_report({"scenes": []}, plan, sim)
    p = _Elements()
    p.feed(page)
    panels = _class(p.tags, "div", "source")
    assert [a["id"] for a in panels] == ["source-0", "source-1", "source-2"]
    first = page[page.index('id="scene-0"') : page.index('id="scene-1"')]
    # sample | chosen source | output, in that order.
    assert (first.index('class="kf sample"') < first.index('class="kf source"') < first.index('id="source-0"')
            < first.index('class="kf output"'))
    assert "clips/beach.mp4" in first and "frames 120–220 (shot 0)" in first and "speed ×0.8" in first
    assert "mirrored" in first and "move none" in first and "focus (0.50, 0.45)" in first
    assert "camera pan_right like the sample&#x27;s" in first  # the matcher's why
    assert 'data-term="palette"' in first and ">0.41<" in first  # cost total and terms
    assert first.count('class="runner-up"') == 2 and "IMG_0042.jpg frames 0–1 (shot 0), cost 0.55" in first
    third = page[page.index('id="scene-2"') :]
    assert 'class="source generated"' in third and "no media fits: IMG_0042.jpg is excluded" in third
    rep = report_json({}, plan, sim)
    assert [s["media"] if s["kind"] == "media" else s["kind"] for s in rep["sources"]] == [
        "clips/beach.mp4",
        "IMG_0042.jpg",
        "generated",
    ]


def test_report_of_a_plan_without_sources_has_no_source_panel():
    plan, sim = _footage_docs()
    for s in plan["scenes"]:
        del s["source"]
    page = render_report({"scenes": []}, plan, sim)
    assert 'class="source' not in page and page.count('class="kf ') == 6
    assert "sources" not in report_json({}, plan, sim)
