"""1080p frames per second of film grain and a cross dissolve beside ffmpeg's `noise` and `xfade`.

    python bench/effects.py [--frames 48] [--sample PATH] [--json]

Same method as bench/grade.py (whose helpers this uses): the ffmpeg binary from the `imageio-ffmpeg`
wheel reads the same 1080p frames as raw rgb24 files; its filter time is the run minus a run that
only reads the inputs. `noise` and `xfade` work on planar formats, so ffmpeg converts rgb24 to gbrp
first; rows marked "gbrp in" feed it planar frames instead, leaving the conversion out of its time.

- grain: ours `film_grain(sigma=0.04)` per channel, temporal, seeded per frame; ffmpeg
  `noise=alls=20:allf=t` (per plane, temporal).
- dissolve: ours `transitions.dissolve` over the whole clip pair (t from 0 to 1); ffmpeg
  `xfade=transition=fade` whose duration covers every frame.
On a GPU (CuPy), the same kernels run on frames held on the device; frames/s and GPU memory.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from grade import (
    LOOPS,
    SAMPLE,
    H,
    W,
    check_filters,
    ffmpeg_exe,
    gpu_module,
    load_frames,
    print_rows,
    row,
    time_ffmpeg,
    time_ours,
    write_raw,
)


def to_gbrp(exe: str, src: Path, dst: Path) -> None:
    subprocess.run(
        [
            exe,
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{W}x{H}",
            "-i",
            str(src),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gbrp",
            str(dst),
        ],
        check=True,
    )


def main(argv: list[str] | None = None) -> int:
    from lookalike.kernels import effects as kfx
    from lookalike.kernels import transitions as ktrans

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--sample", type=Path, default=SAMPLE)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    exe = ffmpeg_exe()
    check_filters(exe, ["noise", "xfade"])
    n = args.frames
    a = load_frames(n, args.sample, 0)
    b = load_frames(n, args.sample, 300)
    rows = []
    dur = f"{n * (LOOPS + 1) / 24.0:.4f}"  # the fade spans every frame ffmpeg reads
    with tempfile.TemporaryDirectory() as tmp:
        ra, rb = Path(tmp) / "a.rgb", Path(tmp) / "b.rgb"
        write_raw(a, ra)
        write_raw(b, rb)
        ga, gb = Path(tmp) / "a.gbrp", Path(tmp) / "b.gbrp"
        to_gbrp(exe, ra, ga)
        to_gbrp(exe, rb, gb)

        pool = kfx.grain_pool(np, 7, W * H * 3, 0.04)
        ours = time_ours(lambda k: kfx.film_grain(a[k], k, 7, 0.04, pool=pool), n)
        graph = ["-vf", "noise=alls=20:allf=t"]
        io = time_ffmpeg(exe, [ra], ["-vf", "null"])
        rows.append(
            row(
                "grain",
                n,
                ours,
                time_ffmpeg(exe, [ra], graph),
                io,
                "ffmpeg -f rawvideo -pix_fmt rgb24 -s 1920x1080 -i a.rgb -vf noise=alls=20:allf=t -f null -",
            )
        )
        io_g = time_ffmpeg(exe, [ga], ["-vf", "null"], pix_fmt="gbrp")
        rows.append(
            row(
                "grain (ffmpeg gets gbrp in)",
                n,
                ours,
                time_ffmpeg(exe, [ga], graph, pix_fmt="gbrp"),
                io_g,
                "ffmpeg -f rawvideo -pix_fmt gbrp ... -vf noise=alls=20:allf=t -f null -",
            )
        )

        ours = time_ours(lambda k: ktrans.dissolve(a[k], b[k], ktrans.progress(k, n)), n)
        graph = ["-filter_complex", f"[0][1]xfade=transition=fade:duration={dur}:offset=0"]
        io = time_ffmpeg(exe, [ra, rb], ["-map", "0:v", "-map", "1:v"])
        rows.append(
            row(
                "dissolve",
                n,
                ours,
                time_ffmpeg(exe, [ra, rb], graph),
                io,
                f"ffmpeg -f rawvideo ... -i a.rgb -i b.rgb -filter_complex [0][1]xfade=transition=fade:duration={dur}:offset=0 -f null -",
            )
        )
        io_g = time_ffmpeg(exe, [ga, gb], ["-map", "0:v", "-map", "1:v"], pix_fmt="gbrp")
        rows.append(
            row(
                "dissolve (ffmpeg gets gbrp in)",
                n,
                ours,
                time_ffmpeg(exe, [ga, gb], graph, pix_fmt="gbrp"),
                io_g,
                "ffmpeg -f rawvideo -pix_fmt gbrp ... xfade ...",
            )
        )

    cp = gpu_module()
    if cp is not None:
        da = [cp.asarray(f) for f in a]
        db = [cp.asarray(f) for f in b]
        sync = cp.cuda.Device().synchronize
        mem = cp.get_default_memory_pool()
        gp = kfx.grain_pool(cp, 7, W * H * 3, 0.04)
        s = time_ours(lambda k: kfx.film_grain(da[k], k, 7, 0.04, pool=gp), n, sync)
        rows.append(
            {
                "bench": "GPU grain",
                "frames": n,
                "ours_fps": round(n / s, 1),
                "gpu_memory_mib": round(mem.total_bytes() / 2**20),
            }
        )
        s = time_ours(lambda k: ktrans.dissolve(da[k], db[k], ktrans.progress(k, n)), n, sync)
        rows.append(
            {
                "bench": "GPU dissolve",
                "frames": n,
                "ours_fps": round(n / s, 1),
                "gpu_memory_mib": round(mem.total_bytes() / 2**20),
            }
        )
    print_rows(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
