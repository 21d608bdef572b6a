"""report.html: a self-contained page (no network) that says how alike the remake is, and why not."""

from __future__ import annotations

import html


def _swatches(palette: list[dict]) -> str:
    cells = "".join(
        f'<span class="sw" title="{p.get("weight", 0):.2f}" style="background:rgb({p["rgb"][0]},{p["rgb"][1]},{p["rgb"][2]});'
        f'flex:{max(p.get("weight", 0.0), 0.02):.3f}"></span>'
        for p in palette
    )
    return f'<div class="pal">{cells}</div>'


def render_report(analysis: dict, plan: dict, similarity: dict) -> str:
    def num(v) -> str:
        return "–" if v is None else f"{v:.1f}"

    parts = [f'<div class="score" id="score-{k}"><b>{num(similarity.get(k))}</b><br>{k}</div>'
             for k in ("overall", "visual", "audio", "pacing")]
    scene_scores = {s["index"]: s for s in similarity.get("scenes", [])}
    rows = []
    for s in analysis.get("scenes", []):
        sc = scene_scores.get(s["index"], {})
        rows.append(
            f'<tr class="scene"><td>{s["index"]}</td><td>{s["start_frame"]}–{s["end_frame"]}</td>'
            f'<td>{html.escape(s.get("camera", {}).get("motion", ""))}</td><td>{_swatches(s.get("palette", []))}</td>'
            f'<td>{num(sc.get("visual"))}</td><td>{num(sc.get("audio"))}</td><td>{num(sc.get("pacing"))}</td></tr>'
        )
    sugg = "".join(
        f'<li class="suggestion">scene {html.escape(str(s.get("scene")))}: {html.escape(str(s.get("operation")))} '
        f'— {html.escape(str(s.get("reason")))}</li>'
        for s in similarity.get("suggestions", [])
    ) or "<li>none</li>"
    metrics = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in sorted(similarity.get("metrics", {}).items())
    )
    missing = ", ".join(similarity.get("missing", [])) or "none"
    src = analysis.get("source", {})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lookalike report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} .scores{{display:flex;gap:1em}}
.score{{border:1px solid #ccc;border-radius:8px;padding:1em;text-align:center;min-width:6em}}
.score b{{font-size:2em}} table{{border-collapse:collapse}} td,th{{border-bottom:1px solid #eee;padding:4px 8px}}
.pal{{display:flex;width:160px;height:18px}} .sw{{display:block;height:100%}}
</style></head><body>
<h1>How alike is the remake?</h1>
<p>Sample: {html.escape(str(src.get("path", "")))} — {src.get("width")}×{src.get("height")},
{src.get("n_frames")} frames, {num(src.get("fps"))} fps, {len(analysis.get("scenes", []))} scenes.</p>
<div class="scores">{"".join(parts)}</div>
<h2>Scenes</h2>
<table id="scenes"><tr><th>#</th><th>frames</th><th>camera</th><th>palette</th><th>visual</th><th>audio</th><th>pacing</th></tr>
{"".join(rows)}</table>
<h2>Suggestions</h2><ul id="suggestions">{sugg}</ul>
<h2>Measures</h2><p>Measures not available: {html.escape(missing)}</p>
<table id="metrics">{metrics}</table>
</body></html>
"""
