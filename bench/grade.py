"""1080p frames per second of the colour kernels beside ffmpeg's `lut3d` filter, in the same run.

    python bench/grade.py [--frames 48] [--sample PATH] [--json]

Rows: 3D LUT apply (a 33^3 .cube, tetrahedral) and colour transfer (statistical Lab transfer fitted
to a reference and baked to a LUT: the per-frame work is the LUT; fitting is timed apart), on CPU
and, where CuPy has a GPU, on GPU (frames stay on the device between kernels; GPU memory printed).

ffmpeg side: the ffmpeg binary shipped in the `imageio-ffmpeg` wheel (the `bench` extra; never
needed by Lookalike itself) reads the same frames as raw rgb24 from a file and runs the filter into
the null muxer (the input looped 10 times). Its filter time is the run minus the same run with
`-vf null` (raw reading alone); both numbers are printed. Our side times the kernel on frames already in memory.

Frames: the shared Big Buck Bunny sample, scaled to 1920x1080 (real picture content, not noise).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "media" / "samples" / "big_buck_bunny_0_30.webm"
W, H = 1920, 1080


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        sys.exit("bench needs imageio-ffmpeg for its ffmpeg binary: pip install -e '.[bench]'")
    return imageio_ffmpeg.get_ffmpeg_exe()


def check_filters(exe: str, names: list[str]) -> None:
    out = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True, check=True).stdout
    have = {line.split()[1] for line in out.splitlines() if len(line.split()) > 2}
    missing = [n for n in names if n not in have]
    if missing:
        sys.exit(f"the ffmpeg in imageio-ffmpeg lacks the filter(s) {missing}")


def load_frames(n: int, sample: Path, start: int = 0) -> list[np.ndarray]:
    """n frames of the sample from `start`, scaled to 1080p RGB uint8."""
    import cv2
    from lookalike.nodes import media

    out = []
    for _, _, f in media.iter_frames(str(sample), start, start + n):
        out.append(cv2.resize(f, (W, H), interpolation=cv2.INTER_LINEAR))
    return out


def write_raw(frames: list[np.ndarray], path: Path) -> None:
    with open(path, "wb") as fh:
        for f in frames:
            fh.write(np.ascontiguousarray(f).tobytes())


LOOPS = 9
"""ffmpeg reads its inputs 1 + LOOPS times (-stream_loop), so its start-up is amortized over
enough frames for the subtraction of the read-only run to mean something."""


def time_ffmpeg(
    exe: str, inputs: list[Path], graph: list[str], *, pix_fmt: str = "rgb24", repeats: int = 2
) -> float:
    """Best wall seconds per pass over the inputs of an ffmpeg run reading raw frames (looped
    1 + LOOPS times) into the null muxer."""
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-nostdin"]
    for p in inputs:
        cmd += [
            "-stream_loop",
            str(LOOPS),
            "-f",
            "rawvideo",
            "-pix_fmt",
            pix_fmt,
            "-s",
            f"{W}x{H}",
            "-r",
            "24",
            "-i",
            str(p),
        ]
    cmd += graph + ["-f", "null", "-"]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        best = min(best, time.perf_counter() - t0)
    return best / (LOOPS + 1)


def time_ours(
    fn: Callable[[int], object], n: int, sync: Callable[[], None] = lambda: None, repeats: int = 2
) -> float:
    """Best seconds for fn(0..n-1) (one warm-up call first)."""
    fn(0)
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for k in range(n):
            fn(k)
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def row(
    name: str, n: int, ours_s: float, ff_total_s: float | None, ff_io_s: float | None, command: str
) -> dict:
    """One result; ffmpeg's filter-alone figure is left out (None) when the filter's share of the
    run is under 10 %, where the subtraction is below the run-to-run noise."""
    r: dict = {"bench": name, "frames": n, "ours_fps": round(n / ours_s, 1)}
    if ff_total_s is not None and ff_io_s is not None:
        net = ff_total_s - ff_io_s
        r.update(
            ffmpeg_fps=round(n / ff_total_s, 1),
            ratio_vs_ffmpeg=round(ff_total_s / ours_s, 2),
            ffmpeg_command=command,
        )
        if net > 0.1 * ff_total_s:
            r.update(ffmpeg_filter_fps=round(n / net, 1), ratio_vs_ffmpeg_filter=round(net / ours_s, 2))
        else:
            r.update(ffmpeg_filter_fps=None, ratio_vs_ffmpeg_filter=None)
    return r


def gpu_module():
    try:
        import cupy as cp

        cp.zeros(1).sum()
        return cp
    except Exception:  # noqa: BLE001 - no cupy or no device: CPU only
        return None


def print_rows(rows: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        line = f"{r['bench']:<34} ours {r['ours_fps']:>8.1f} fps"
        if "ffmpeg_fps" in r:
            alone = r["ffmpeg_filter_fps"]
            line += f"  | ffmpeg {r['ffmpeg_fps']:>7.1f} fps (filter alone "
            line += f"{alone:>7.1f})" if alone else "  below noise)"
            line += f"  | ours/ffmpeg x{r['ratio_vs_ffmpeg']:.2f}"
            line += f" (vs filter alone x{r['ratio_vs_ffmpeg_filter']:.2f})" if alone else ""
        for k in ("note", "gpu_memory_mib"):
            if k in r:
                line += f"  [{k}: {r[k]}]"
        print(line)
    for r in rows:
        if "ffmpeg_command" in r:
            print(f"  {r['bench']}: {r['ffmpeg_command']}")


def main(argv: list[str] | None = None) -> int:
    from lookalike.kernels import lut as klut
    from lookalike.kernels import transfer as ktransfer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--sample", type=Path, default=SAMPLE)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    exe = ffmpeg_exe()
    check_filters(exe, ["lut3d"])
    n = args.frames
    frames = load_frames(n, args.sample, 0)
    reference = load_frames(12, args.sample, 400)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "a.rgb"
        write_raw(frames, raw)
        io_s = time_ffmpeg(exe, [raw], ["-vf", "null"])

        # A 33^3 creative LUT (warm, lifted blacks, softened highlights).
        look = klut.from_function(
            lambda c: np.clip(
                0.04 + 0.92 * c ** np.float32(0.9) * np.array([1.06, 1.0, 0.9], np.float32), 0, 1
            ),
            33,
        )
        cube = Path(tmp) / "look.cube"
        cube.write_text(klut.format_cube(look))
        t0 = time.perf_counter()
        table = klut.bake_table(look)
        bake_s = time.perf_counter() - t0
        graph = ["-vf", f"lut3d=file={cube}:interp=tetrahedral"]
        ff = time_ffmpeg(exe, [raw], graph)
        ours = time_ours(lambda k: klut.apply_table(frames[k], table), n)
        r = row(
            "lut3d apply (baked table)",
            n,
            ours,
            ff,
            io_s,
            " ".join(["ffmpeg -f rawvideo -pix_fmt rgb24 -s 1920x1080 -i a.rgb", *graph, "-f null -"]),
        )
        r["note"] = f"bake once per LUT {bake_s:.2f} s"
        rows.append(r)
        direct = time_ours(lambda k: klut.apply_lut(frames[k], look), min(n, 6), repeats=1)
        rows.append(row("lut3d apply (per-pixel tetrahedral)", min(n, 6), direct, None, None, ""))

        t0 = time.perf_counter()
        fitted = ktransfer.match_frames(frames[:: max(1, n // 12)][:12], reference, "reinhard")
        fitted_table = klut.bake_table(fitted)
        fit_s = time.perf_counter() - t0
        fcube = Path(tmp) / "fitted.cube"
        fcube.write_text(klut.format_cube(fitted))
        graph = ["-vf", f"lut3d=file={fcube}:interp=tetrahedral"]
        ff = time_ffmpeg(exe, [raw], graph)
        ours = time_ours(lambda k: klut.apply_table(frames[k], fitted_table), n)
        r = row(
            "colour transfer (Lab, fitted LUT)",
            n,
            ours,
            ff,
            io_s,
            " ".join(["ffmpeg ... -i a.rgb", *graph, "-f null -"]),
        )
        r["note"] = f"fit + bake once per scene {fit_s:.2f} s"
        rows.append(r)

    cp = gpu_module()
    if cp is not None:
        dev = [cp.asarray(f) for f in frames]
        sync = cp.cuda.Device().synchronize
        pool = cp.get_default_memory_pool()
        gl = look.to(cp)
        gt = klut.bake_table(gl, xp=cp)
        s = time_ours(lambda k: klut.apply_table(dev[k], gt), n, sync)
        rows.append(
            {
                "bench": "GPU lut3d apply (baked table)",
                "frames": n,
                "ours_fps": round(n / s, 1),
                "gpu_memory_mib": round(pool.total_bytes() / 2**20),
            }
        )
        s = time_ours(lambda k: klut.apply_lut(dev[k], gl), n, sync)
        rows.append(
            {
                "bench": "GPU lut3d apply (per-pixel)",
                "frames": n,
                "ours_fps": round(n / s, 1),
                "gpu_memory_mib": round(pool.total_bytes() / 2**20),
            }
        )
        st = ktransfer.ColourStats.of(frames[:12])
        rf = ktransfer.ColourStats.of(reference)
        s = time_ours(lambda k: ktransfer.transfer(dev[k], st, rf), n, sync)
        rows.append(
            {
                "bench": "GPU colour transfer (per-pixel Lab)",
                "frames": n,
                "ours_fps": round(n / s, 1),
                "gpu_memory_mib": round(pool.total_bytes() / 2**20),
            }
        )
    print_rows(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
