"""Tempo and beats on recorded music: Lookalike's tracker against librosa.beat.beat_track, side by side.

For every recording under ../shared/media/music (see its README):

- annotated/ (a tempo stated by the source; both are loops cut on the beat, so their beats are
  k x 60 / tempo from 0): tempo error in percent (within 4 % is right; a half, double or 2:3 answer
  is wrong however close its ratio) and beat F-measure within +-70 ms (mir_eval's definition, the
  first 5 s not skipped: the loops are that short);
- tracks/ (no annotation): stability, the tempo of each 10 s window (5 s hop) against the whole
  track's: the share of windows within 4 % of it, and the worst window's ratio.

    .venv/bin/python bench/tempo.py [--json OUT]

librosa is a dev dependency for this benchmark and the test that checks the same table; it is not
used by the project's own tracker.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MUSIC = ROOT / ".." / "shared" / "media" / "music"

from lookalike.kernels import audio_features as af  # noqa: E402
from lookalike.nodes import media  # noqa: E402
from lookalike.nodes.audio_analysis import AUDIO_RATE  # noqa: E402

TEMPO_TOL = 0.04
BEAT_TOL_S = 0.07
WINDOW_S = 10.0
WINDOW_HOP_S = 5.0


def f_measure(found: np.ndarray, truth: np.ndarray, tol: float = BEAT_TOL_S) -> float:
    """Beat F-measure: each true beat matches at most one found beat within `tol` (greedy by distance)."""
    found, truth = np.asarray(found, float), np.asarray(truth, float)
    if len(found) == 0 or len(truth) == 0:
        return 0.0
    pairs = sorted(
        (abs(f - t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth) if abs(f - t) <= tol
    )
    used_f, used_t, hits = set(), set(), 0
    for _, i, j in pairs:
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
            hits += 1
    p, r = hits / len(found), hits / len(truth)
    return 0.0 if hits == 0 else 2 * p * r / (p + r)


def ours(y: np.ndarray, rate: int) -> tuple[float | None, np.ndarray]:
    bpm, beats = af.tempo_and_beats(y, rate)
    return bpm, np.asarray(beats)


def theirs(y: np.ndarray, rate: int) -> tuple[float | None, np.ndarray]:
    import librosa

    tempo, frames = librosa.beat.beat_track(y=y, sr=rate)
    bpm = float(np.atleast_1d(tempo)[0])
    return (bpm or None), librosa.frames_to_time(frames, sr=rate)


TRACKERS = {"lookalike": ours, "librosa": theirs}


def tempo_error(bpm: float | None, truth: float) -> float:
    return float("inf") if not bpm else abs(bpm - truth) / truth


def windows(y: np.ndarray, rate: int) -> list[np.ndarray]:
    n, w, h = len(y), int(WINDOW_S * rate), int(WINDOW_HOP_S * rate)
    return [y[a : a + w] for a in range(0, max(n - w, 0) + 1, h)] if n >= w else []


def annotated_rows() -> list[dict]:
    rows = []
    for meta in sorted((MUSIC / "annotated").glob("*.json")):
        info = json.loads(meta.read_text())
        audio = next(p for p in meta.parent.glob(meta.stem + ".*") if p.suffix != ".json")
        y, rate = media.read_audio(str(audio), rate=AUDIO_RATE)
        truth_bpm = float(info["tempo_bpm"])
        duration = len(y) / rate
        truth_beats = np.arange(0, duration - 1e-3, 60.0 / truth_bpm)
        row: dict = {"recording": audio.name, "truth_bpm": truth_bpm}
        for name, fn in TRACKERS.items():
            t0 = time.perf_counter()
            bpm, beats = fn(y, rate)
            row[name] = {
                "bpm": None if bpm is None else round(bpm, 2),
                "tempo_error": round(tempo_error(bpm, truth_bpm), 4),
                "tempo_ok": tempo_error(bpm, truth_bpm) <= TEMPO_TOL,
                "f_measure": round(f_measure(beats, truth_beats), 3),
                "seconds": round(time.perf_counter() - t0, 3),
            }
        rows.append(row)
    return rows


def track_rows() -> list[dict]:
    rows = []
    for audio in sorted((MUSIC / "tracks").iterdir()):
        y, rate = media.read_audio(str(audio), rate=AUDIO_RATE)
        row: dict = {"recording": audio.name, "seconds": round(len(y) / rate, 1)}
        for name, fn in TRACKERS.items():
            whole, _ = fn(y, rate)
            ratios = [(fn(w, rate)[0] or 0.0) / whole for w in windows(y, rate)] if whole else []
            ok = [abs(r - 1) <= TEMPO_TOL for r in ratios]
            worst = max(ratios, key=lambda r: abs(np.log(max(r, 1e-9)))) if ratios else None
            row[name] = {
                "bpm": None if whole is None else round(whole, 2),
                "windows": len(ratios),
                "stable_share": round(float(np.mean(ok)), 3) if ok else None,
                "worst_ratio": None if worst is None else round(worst, 3),
            }
        rows.append(row)
    return rows


def report(ann: list[dict], tracks: list[dict]) -> None:
    print(
        f"{'annotated recording':40s} {'truth':>6s} | {'ours bpm':>8s} {'err%':>6s} {'F':>5s} | "
        f"{'librosa':>8s} {'err%':>6s} {'F':>5s}"
    )
    for r in ann:
        a, b = r["lookalike"], r["librosa"]
        print(
            f"{r['recording']:40s} {r['truth_bpm']:6.1f} | {a['bpm'] or 0:8.2f} {100 * a['tempo_error']:6.1f} "
            f"{a['f_measure']:5.2f} | {b['bpm'] or 0:8.2f} {100 * b['tempo_error']:6.1f} {b['f_measure']:5.2f}"
        )
    print()
    print(
        f"{'unannotated track':52s} {'s':>5s} | {'ours bpm':>8s} {'win ok':>7s} {'worst':>6s} | "
        f"{'librosa':>8s} {'win ok':>7s} {'worst':>6s}"
    )
    for r in tracks:
        cells = []
        for name in TRACKERS:
            c = r[name]
            share = "-" if c["stable_share"] is None else f"{c['stable_share']:.2f}"
            worst = "-" if c["worst_ratio"] is None else f"{c['worst_ratio']:.3f}"
            cells.append(f"{c['bpm'] or 0:8.2f} {share:>7s} {worst:>6s}")
        print(f"{r['recording']:52s} {r['seconds']:5.1f} | " + " | ".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    try:
        import librosa  # noqa: F401
    except ImportError:
        print("librosa is not installed: pip install -e '.[dev]'", file=sys.stderr)
        TRACKERS.pop("librosa")
    ann, tracks = annotated_rows(), track_rows()
    report(ann, tracks)
    if args.json:
        Path(args.json).write_text(json.dumps({"annotated": ann, "tracks": tracks}, indent=1))


if __name__ == "__main__":
    main()
