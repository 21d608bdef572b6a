"""report.html and the JSON report: how alike the remake is, and why not.

The page is self-contained (inline PNG thumbnails and SVG plots, inline CSS, no script, no network)
so it opens offline from the output folder. Everything it draws comes from the documents:
similarity.json (scores, raw figures, suggestions, and its "figures": thumbnails, palettes, motion
curves, cuts, beats, loudness curves, made by the score node) and analysis.json. For a footage plan
(docs/footage.md) each scene shows sample | chosen source | output: the user's frame the scene
starts from (the score node's "source" thumbnail) and the source as text (the item, its range,
speed, move, mirror, the matcher's cost terms, why and runner-ups).
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

REPORT_SCHEMA = "lookalike.report/1"
FAMILIES = ("overall", "visual", "audio", "pacing", "colour", "texture", "perceptual", "motion")
SCENE_FAMILIES = ("overall", "visual", "colour", "texture", "perceptual", "motion", "pacing", "audio")
SAMPLE_COLOUR, OUTPUT_COLOUR = "#1f6feb", "#d9480f"


def _num(v: Any) -> str:
    return "–" if not isinstance(v, (int, float)) or not math.isfinite(v) else f"{v:.1f}"


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _grade_class(v: Any) -> str:
    if not isinstance(v, (int, float)):
        return "na"
    return "good" if v >= 85 else "fair" if v >= 60 else "poor"


def _swatches(palette: list[dict], label: str) -> str:
    cells = "".join(
        f'<span class="sw" title="#{p["rgb"][0]:02x}{p["rgb"][1]:02x}{p["rgb"][2]:02x} {p.get("weight", 0):.2f}" '
        f'style="background:rgb({int(p["rgb"][0])},{int(p["rgb"][1])},{int(p["rgb"][2])});'
        f'flex:{max(float(p.get("weight", 0.0)), 0.02):.3f}"></span>'
        for p in palette
    )
    return f'<div class="pal" data-side="{label}" aria-label="{label} palette">{cells}</div>'


def _polyline(xs: list[float], ys: list[float], colour: str, dash: bool = False, cls: str = "") -> str:
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=False))
    d = ' stroke-dasharray="4 3"' if dash else ""
    return f'<polyline class="{cls}" fill="none" stroke="{colour}" stroke-width="1.5"{d} points="{pts}"/>'


def _motion_svg(sample: list, output: list, index: int) -> str:
    """x, y and log-zoom of both camera paths over the scene's normalised time."""
    w, h, pad = 260, 90, 6
    series = [(sample, SAMPLE_COLOUR), (output, OUTPUT_COLOUR)]
    vals = [v for rows, _ in series for r in rows for v in r[:3]]
    span = max(max((abs(v) for v in vals), default=0.0), 0.05)
    lines = []
    for rows, colour in series:
        if not rows:
            continue
        n = len(rows)
        xs = [pad + (w - 2 * pad) * i / max(1, n - 1) for i in range(n)]
        for comp, dash in ((0, False), (1, True), (2, False)):
            ys = [h / 2 - (h / 2 - pad) * r[comp] / span for r in rows]
            if comp == 2 and all(abs(r[2]) < 1e-4 for r in rows):
                continue
            lines.append(
                _polyline(
                    xs, ys, colour, dash, cls=f"motion-{'sample' if colour == SAMPLE_COLOUR else 'output'}"
                )
            )
    return (
        f'<svg class="motion" id="motion-{index}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="camera path, scene {index}">'
        f'<line x1="0" x2="{w}" y1="{h / 2}" y2="{h / 2}" stroke="#ccc"/>{"".join(lines)}</svg>'
    )


def _timeline_svg(fig: dict) -> str:
    """Sample cuts (top) and output cuts (bottom) over the sample's beat grid."""
    dur = max(float(fig.get("duration_sample_s") or 0), float(fig.get("duration_output_s") or 0), 1e-3)
    w, h = 900, 90
    x = lambda t: 10 + (w - 20) * float(t) / dur  # noqa: E731
    beats = "".join(
        f'<line class="beat" x1="{x(b):.1f}" x2="{x(b):.1f}" y1="8" y2="{h - 8}" stroke="#ddd"/>'
        for b in fig.get("beats_sample_s", [])
    )
    cs = "".join(
        f'<line class="cut-sample" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="8" y2="{h / 2 - 2}" stroke="{SAMPLE_COLOUR}" '
        f'stroke-width="3"><title>sample cut {t:.2f} s</title></line>'
        for t in fig.get("cuts_sample_s", [])
    )
    co = "".join(
        f'<line class="cut-output" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{h / 2 + 2}" y2="{h - 8}" stroke="{OUTPUT_COLOUR}" '
        f'stroke-width="3"><title>output cut {t:.2f} s</title></line>'
        for t in fig.get("cuts_output_s", [])
    )
    ticks = "".join(
        f'<text x="{x(t):.1f}" y="{h}" font-size="9" fill="#666">{t:.0f}s</text>'
        for t in range(0, int(dur) + 1, max(1, int(dur) // 10))
    )
    return (
        f'<svg id="timeline" width="{w}" height="{h + 4}" viewBox="0 0 {w} {h + 4}" xmlns="http://www.w3.org/2000/svg" '
        f'role="img" aria-label="cut timeline over the beat grid"><rect x="10" y="8" width="{w - 20}" height="{h - 16}" '
        f'fill="#fafafa" stroke="#eee"/>{beats}{cs}{co}{ticks}</svg>'
    )


def _loudness_svg(fig: dict) -> str:
    w, h, pad = 900, 140, 10
    curves = [
        (fig.get("loudness_sample") or {}, SAMPLE_COLOUR, "sample"),
        (fig.get("loudness_output") or {}, OUTPUT_COLOUR, "output"),
    ]
    ts = [t for c, _, _ in curves for t in c.get("t", [])]
    ls = [v for c, _, _ in curves for v in c.get("lufs", [])]
    if not ts:
        return '<p id="loudness" class="empty">No audio to draw.</p>'
    t_max = max(max(ts), 1e-3)
    lo, hi = min(min(ls), -40.0), max(max(ls), -5.0)
    lines = []
    for c, colour, name in curves:
        if not c.get("t"):
            continue
        xs = [pad + (w - 2 * pad) * t / t_max for t in c["t"]]
        ys = [h - pad - (h - 2 * pad) * (v - lo) / (hi - lo) for v in c["lufs"]]
        lines.append(_polyline(xs, ys, colour, cls=f"loudness-{name}"))
    labels = "".join(
        f'<text x="0" y="{h - pad - (h - 2 * pad) * (v - lo) / (hi - lo):.1f}" font-size="9" fill="#666">{v:.0f}</text>'
        for v in (lo, (lo + hi) / 2, hi)
    )
    return (
        f'<svg id="loudness" width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg" '
        f'role="img" aria-label="short-term loudness, LUFS">{labels}{"".join(lines)}</svg>'
    )


def _range(c: dict) -> str:
    shot = f" (shot {c['shot']})" if c.get("shot") is not None else ""
    return f"frames {_esc(c.get('in_frame', '?'))}–{_esc(c.get('out_frame', '?'))}{shot}"


def _source_panel(src: dict, i: int) -> str:
    """Why the scene shows what it shows: the chosen item, its range and treatment, the matcher's
    cost terms and reasons, and the runner-ups (its picture is the "source" thumbnail beside it)."""
    if src.get("kind") != "media":
        return (
            f'<div class="source generated" id="source-{i}"><div class="lbl">source</div>'
            f'<b class="src-name">generated</b><p class="why">{_esc(src.get("why") or "no media item fits")}</p></div>'
        )
    treat = [_range(src) if not src.get("photo") else "photo"]
    speed = src.get("speed")
    if isinstance(speed, (int, float)) and speed != 1:
        treat.append(f"speed ×{speed:g}")
    if src.get("extend") not in (None, "none"):
        treat.append(f"then {_esc(src['extend'])}")
    treat.append(f"move {_esc(src.get('move') or 'none')}")
    if src.get("mirror"):
        treat.append("mirrored")
    if src.get("focus"):
        treat.append("focus (" + ", ".join(f"{float(v):.2f}" for v in src["focus"]) + ")")
    if src.get("reused"):
        treat.append(f"also in {int(src['reused'])} earlier scene(s)")
    cost = src.get("cost") or {}
    terms = sorted(((k, v) for k, v in cost.items() if k != "total"), key=lambda kv: -(kv[1] or 0))
    cost_rows = (
        f'<table class="cost"><tr><th>cost</th><th>{_num3(cost.get("total"))}</th></tr>'
        + "".join(f'<tr><td>{_esc(k)}</td><td data-term="{_esc(k)}">{_num3(v)}</td></tr>' for k, v in terms)
        + "</table>"
        if cost
        else '<p class="lbl">no cost: the user chose it</p>'
    )
    runner_ups = "".join(
        f'<li class="runner-up">{_esc(r.get("media"))} {_range(r)}, cost {_num3(r.get("cost"))}'
        + (" (chosen before)" if r.get("was_chosen") else "")
        + "</li>"
        for r in src.get("runner_ups") or []
    )
    return (
        f'<div class="source" id="source-{i}"><div class="lbl">chosen source</div>'
        f'<b class="src-name">{_esc(src.get("media"))}</b> <span class="treat">{", ".join(treat)}</span>'
        f'<p class="why">{_esc(src.get("why") or "")}</p>{cost_rows}'
        f'<div class="lbl">runner-ups</div><ol class="runner-ups">{runner_ups or "<li>none</li>"}</ol></div>'
    )


def _num3(v: Any) -> str:
    return "–" if not isinstance(v, (int, float)) or not math.isfinite(v) else f"{v:.2f}"


def _scene_block(sc: dict, fig: dict | None, analysis_scene: dict | None, plan_scene: dict | None = None) -> str:
    i = sc["index"]
    fig = fig or {}
    thumbs = fig.get("thumbs") or {}

    def keyframes(side: str) -> str:
        return "".join(
            f'<figure class="kf {side}"><img alt="{side} keyframe, scene {i}" src="{_esc(src)}"><figcaption>{side}</figcaption></figure>'
            for src in (thumbs.get(side) or [])
            if src.startswith("data:image/")
        )

    source = (plan_scene or {}).get("source")
    middle = _source_panel(source, i) if isinstance(source, dict) else ""
    pictures = keyframes("sample") + keyframes("output")
    if middle:
        # sample | chosen source | output
        strip = (
            (keyframes("sample") or '<p class="empty">No sample keyframe.</p>')
            + keyframes("source")
            + middle
            + (keyframes("output") or '<p class="empty">No output keyframe.</p>')
        )
    else:
        strip = pictures or '<p class="empty">No keyframes (score run without media).</p>'
    pal_s = fig.get("palette_sample") or (analysis_scene or {}).get("palette", [])
    pal_o = fig.get("palette_output") or []
    scores = "".join(
        f'<td class="{_grade_class(sc.get(k))}" data-family="{k}">{_num(sc.get(k))}</td>'
        for k in SCENE_FAMILIES
    )
    al = sc.get("aligned") or {}
    frames = f"{al.get('start_frame', '?')}–{al.get('end_frame', '?')} ({_esc(al.get('by', ''))})"
    return f"""<section class="scene" id="scene-{i}">
<h3>Scene {i} <small>camera: sample {_esc(sc.get("camera_sample") or "–")}, output {_esc(sc.get("camera_output") or "–")};
output frames {frames}</small></h3>
<div class="strip">{strip}</div>
<div class="row"><div><div class="lbl">palette: sample / output</div>{_swatches(pal_s, "sample")}{_swatches(pal_o, "output")}</div>
<div><div class="lbl">camera path (x solid, y dashed, zoom): <span style="color:{SAMPLE_COLOUR}">sample</span> /
<span style="color:{OUTPUT_COLOUR}">output</span></div>{_motion_svg(fig.get("motion_sample") or [], fig.get("motion_output") or [], i)}</div></div>
<table class="scene-scores"><tr>{"".join(f"<th>{k}</th>" for k in SCENE_FAMILIES)}</tr><tr>{scores}</tr></table>
</section>"""


def render_report(analysis: dict, plan: dict, similarity: dict) -> str:
    """The report page (a complete HTML document as a string)."""
    fig = similarity.get("figures") or {}
    fig_scenes = {s["index"]: s for s in fig.get("scenes", [])}
    an_scenes = {s["index"]: s for s in analysis.get("scenes", [])}
    cards = "".join(
        f'<div class="score {_grade_class(similarity.get(k))}" id="score-{k}"><b>{_num(similarity.get(k))}</b><br>{k}</div>'
        for k in FAMILIES
        if k in similarity
    )
    plan_scenes = {s.get("index", k): s for k, s in enumerate((plan or {}).get("scenes", []))}
    blocks = "".join(
        _scene_block(sc, fig_scenes.get(sc["index"]), an_scenes.get(sc["index"]), plan_scenes.get(sc["index"]))
        for sc in similarity.get("scenes", [])
    )
    sugg = (
        "".join(
            f'<li class="suggestion" data-op="{_esc((s.get("operation") or {}).get("op", ""))}">{_esc(s.get("reason", ""))} '
            f"<code>{_esc(json.dumps({k: v for k, v in (s.get('operation') or {}).items() if k != 'trajectory' and k != 'palette'}))}</code></li>"
            for s in similarity.get("suggestions", [])
        )
        or '<li class="none">No suggestions: nothing measured is far from the sample.</li>'
    )
    missing = "".join(f"<li>{_esc(m)}</li>" for m in similarity.get("missing", [])) or "<li>none</li>"
    metrics = "".join(
        f"<tr><td>{_esc(k)}</td><td>{_esc(_fmt(v))}</td></tr>"
        for k, v in sorted(similarity.get("metrics", {}).items())
    )
    src = analysis.get("source", {})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lookalike report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1000px}}
.scores{{display:flex;flex-wrap:wrap;gap:.6em}} .score{{border:1px solid #ccc;border-radius:8px;padding:.6em;text-align:center;min-width:5.5em}}
.score b{{font-size:1.8em}} .good{{background:#e6f4ea}} .fair{{background:#fff4e5}} .poor{{background:#fde8e8}}
table{{border-collapse:collapse}} td,th{{border-bottom:1px solid #eee;padding:3px 8px;text-align:left}}
.pal{{display:flex;width:220px;height:16px;margin:3px 0;border:1px solid #ddd}} .sw{{display:block;height:100%}}
.strip{{display:flex;gap:8px}} .kf{{margin:0}} .kf img{{width:160px;display:block;border:1px solid #ccc}}
.kf figcaption{{font-size:.8em;color:#666}} .row{{display:flex;gap:2em;align-items:flex-start;margin:.5em 0}}
.lbl{{font-size:.8em;color:#666}} .scene{{border-top:1px solid #ddd;padding:.5em 0}} h3 small{{font-weight:normal;color:#666}}
code{{font-size:.8em;color:#555}}
.source{{border:1px solid #ccc;border-radius:6px;padding:.4em .6em;font-size:.85em;max-width:320px}}
.source .why{{margin:.3em 0;color:#444}} .source table.cost td,.source table.cost th{{padding:1px 6px}}
.source ol{{margin:.2em 0;padding-left:1.4em}}
</style></head><body>
<h1>How alike is the remake?</h1>
<p id="source">Sample: {_esc(src.get("path", ""))} — {_esc(src.get("width"))}×{_esc(src.get("height"))},
{_esc(src.get("n_frames"))} frames, {_num(src.get("fps"))} fps, {len(analysis.get("scenes", []))} scenes.</p>
<div class="scores" id="scores">{cards}</div>
<h2>Suggestions</h2><ol id="suggestions">{sugg}</ol>
<h2>Cuts over the beat grid</h2>
<p class="lbl"><span style="color:{SAMPLE_COLOUR}">sample cuts (top)</span>, <span style="color:{OUTPUT_COLOUR}">output cuts (bottom)</span>, sample beats in grey</p>
{_timeline_svg(fig)}
<h2>Loudness</h2>
<p class="lbl">short-term loudness (LUFS, 3 s window): <span style="color:{SAMPLE_COLOUR}">sample</span> / <span style="color:{OUTPUT_COLOUR}">output</span></p>
{_loudness_svg(fig)}
<h2>Scenes</h2>
<div id="scenes">{blocks}</div>
<h2>Measures</h2>
<p>Not measured:</p><ul id="missing">{missing}</ul>
<table id="metrics">{metrics}</table>
</body></html>
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return str(v)


def report_json(analysis: dict, plan: dict, similarity: dict) -> dict:
    """The JSON report: the scores, per-scene scores, raw figures, missing measures and suggestions,
    without the pictures."""
    return {
        "schema": REPORT_SCHEMA,
        "sample": (analysis.get("source") or {}).get("path"),
        "plan_version": (plan or {}).get("version"),
        "scores": {k: similarity.get(k) for k in FAMILIES if k in similarity},
        "scenes": [{k: v for k, v in sc.items()} for sc in similarity.get("scenes", [])],
        "metrics": similarity.get("metrics", {}),
        "missing": similarity.get("missing", []),
        "suggestions": similarity.get("suggestions", []),
        **_sources(plan),
    }


def _sources(plan: dict | None) -> dict:
    """{"sources": [...]} of a footage plan (each scene's source without its pictures), else {}."""
    scenes = (plan or {}).get("scenes") or []
    if not any(isinstance(s.get("source"), dict) for s in scenes):
        return {}
    return {
        "sources": [
            {"index": s.get("index", k), **{f: v for f, v in (s.get("source") or {}).items() if f != "displaced"}}
            for k, s in enumerate(scenes)
        ]
    }
