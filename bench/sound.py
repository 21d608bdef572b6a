"""The remake's sound of the 30 s sample, stage by stage, beside the floor; and how well it follows.

    python bench/sound.py [--sample PATH] [--json]

Stages (seconds, best of --loops): the analysis' envelope and descriptors, the music bed (arranged
local synthesis with its envelope automation and mastering), the voice and effects tracks, the mix
with its master, the AAC encode with the true-peak check (nodes.runtime), and all of render_audio.
The floor: decode the sample's audio and encode the same length at the same settings (48 kHz
stereo AAC, 192 kb/s, nodes.media.write_audio): what any remake's sound costs at least. Ratios are
stage / floor.

Agreement, measured on the encoded remake as on the sample (nodes.audio_analysis):
- envelope: short-term loudness (3 s windows) every 1 s, the remake minus the sample less the median
  difference, per window and its worst;
- tempo: the analysis' tempo of the remake against the plan's;
- loudness: integrated LUFS against the target, true peak (4x oversampled) of the decoded file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyloudnorm

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "media" / "samples" / "big_buck_bunny_0_30.webm"
RATE = 48000


def _best(fn, loops: int):
    best, out = float("inf"), None
    for _ in range(loops):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", default=str(SAMPLE))
    ap.add_argument("--loops", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from lookalike.coordinator import planner
    from lookalike.nodes import audio_analysis as aa
    from lookalike.nodes import media, mix, music, providers
    from lookalike.nodes.runtime import NodeRuntime, _encoded_under_ceiling, _voice_and_sfx
    from synth import tiny_analysis

    from lookalike.store import open_store

    work = Path(tempfile.mkdtemp(prefix="bench_sound_"))
    audio = aa.audio_section(args.sample, transcriber=None)
    duration = 30.0
    fps = 24
    analysis = tiny_analysis(audio, cuts=(8 * fps, 15 * fps, 22 * fps), n=int(duration * fps))
    plan = planner.make_plan(analysis)
    m = plan["music"]
    target = -14.0
    y, r = media.read_audio(args.sample, rate=aa.AUDIO_RATE)
    rows: dict[str, float] = {}

    def floor():
        x = media.read_audio(args.sample, rate=RATE, mono=False)[0]
        x = x[:, : int(duration * RATE)]
        media.write_audio(work / "floor.m4a", x.astype(np.float32), RATE)

    rows["floor: decode + encode"], _ = _best(floor, args.loops)
    rows["analysis: envelope + descriptors"], _ = _best(
        lambda: (aa.loudness_envelope(y, r), aa.music_descriptors(y, r, beats_s=audio["beats_s"])), args.loops)
    rows["music bed (arranged, automated, mastered)"], bed = _best(lambda: music.render_music(
        duration, m["tempo_bpm"], rate=RATE, key=m["key"], target_lufs=target,
        section_starts_s=[s["start_s"] for s in plan["scenes"][1:]], style=m["style"],
        sections=m["sections"], envelope=m["envelope"]), args.loops)
    lines, events = _voice_and_sfx(plan)
    hub = providers.hub_for(providers.ProviderSettings())
    rows["voice + effects tracks"], (voice, sfx) = _best(lambda: (
        providers.voice_track(hub, lines, duration, rate=RATE, out_dir=work)[0] if lines else None,
        providers.sfx_track(hub, events, duration, rate=RATE, out_dir=work)[0] if events else None), args.loops)
    rows["mix + master + envelope"], mixed = _best(lambda: mix.master(music.follow_envelope(
        mix.mix_timeline(bed, voice, sfx, rate=RATE, target_lufs=target), RATE, m["envelope"]),
        RATE, target_lufs=target), args.loops)

    def encode():
        media.write_audio(work / "mix.m4a", mixed, RATE)
        return _encoded_under_ceiling(str(work / "mix.m4a"), mixed, RATE, target)

    rows["encode + true-peak check"], _ = _best(encode, args.loops)
    rt = NodeRuntime(open_store(str(work / "store")), cache_dir=str(work / "cache"))
    rows["render_audio (all of it)"], got = _best(
        lambda: rt.render_audio(plan, analysis, "audio.m4a", duration_s=duration), args.loops)

    out_path = rt.local("audio.m4a")
    out = np.asarray(media.read_audio(out_path, rate=RATE, mono=False)[0], dtype=np.float64)
    yo, ro = media.read_audio(out_path, rate=aa.AUDIO_RATE)
    want = np.asarray(audio["loudness_envelope"]["lufs"])
    have = np.asarray(aa.loudness_envelope(yo, ro)["lufs"])
    k = min(len(want), len(have))
    d = have[:k] - want[:k]
    d = d - float(np.median(d[want[:k] > -69.0]))
    again = aa.audio_section(out_path, transcriber=None)
    floor_s = rows["floor: decode + encode"]
    report = {
        "sample": Path(args.sample).name,
        "seconds": {k_: round(v, 4) for k_, v in rows.items()},
        "ratio_to_floor": {k_: round(v / floor_s, 2) for k_, v in rows.items()},
        "style": m["style"],
        "sections": m["sections"],
        "envelope": {
            "sample_lufs": want[:k].round(1).tolist(),
            "remake_lufs": have[:k].round(1).tolist(),
            "error_lu": d.round(2).tolist(),
            "worst_lu": round(float(np.abs(d).max()), 2),
            "mean_abs_lu": round(float(np.abs(d).mean()), 2),
        },
        "tempo": {"plan_bpm": m["tempo_bpm"], "remake_bpm": again["tempo_bpm"]},
        "loudness": {
            "target_lufs": target,
            "integrated_lufs": round(float(pyloudnorm.Meter(RATE).integrated_loudness(out.T)), 2),
            "true_peak_dbtp": round(music.true_peak_db(out), 2),
            "render_audio_lufs": round(got["lufs"], 2),
        },
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{report['sample']}: {duration:.0f} s, style {m['style']['groove']}/{m['style']['bass']}/"
          f"{m['style']['lead']}, sections " + ", ".join(f"{s['role']} {s['start_s']:g}-{s['end_s']:g}"
                                                         for s in m["sections"]))
    for name, v in rows.items():
        print(f"  {name:44s} {v:8.3f} s  x{v / floor_s:6.2f}")
    e = report["envelope"]
    print(f"  envelope per 3 s window (LU, remake - sample, offset removed): worst {e['worst_lu']}, "
          f"mean |err| {e['mean_abs_lu']}")
    print("   ", " ".join(f"{v:+.1f}" for v in e["error_lu"]))
    print(f"  tempo: plan {report['tempo']['plan_bpm']} BPM, remake measures {report['tempo']['remake_bpm']} BPM")
    lo = report["loudness"]
    print(f"  loudness: {lo['integrated_lufs']} LUFS (target {target}), true peak {lo['true_peak_dbtp']} dBTP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
