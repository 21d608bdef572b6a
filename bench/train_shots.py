"""Make weights for the learned shot detector (nodes.shots_learned) on this machine, from synthesized
sequences only: nothing is downloaded.

Trains the TransNetV2-style network on fresh synthesized clips every step (random textured shots
with moving content, hard cuts at random frames, flashes and fast pans as negatives), saves a
lookalike-shots-v1 file at --out, then scores the learned detector alone on a held-out synthesized
sequence and prints one JSON line: the training summary and the held-out precision, recall, F1,
flashes fired on and inference time per frame.

    python bench/train_shots.py --out shots.pt [--steps 800] [--seed 0] [--tiny]

Point a node (or `lookalike analyze --shot-weights`) at the file with LOOKALIKE_SHOT_WEIGHTS=shots.pt.
Deterministic for a seed on one machine. About 0.1-0.3 s a step on one CPU core for the default
network; --tiny trains the small network the tests use.
"""

from __future__ import annotations

import argparse
import json
import sys

from lookalike.nodes import shots_learned

# The network and schedule tests/nodes/test_shots_learned.py trains in seconds.
TINY = {"config": {"filters": [4, 4], "hidden": 16, "grid": 1}, "batch": 4, "clip_frames": 32}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="where to write the weights (lookalike-shots-v1)")
    ap.add_argument("--steps", type=int, default=800, help="training steps (default 800)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="the small network the tests train")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads while training (default 1: this network is too small to gain from more)",
    )
    ap.add_argument("--eval-frames", type=int, default=720, help="length of the held-out sequence")
    args = ap.parse_args(argv)
    if not shots_learned.torch_available():
        print("train_shots: torch is not installed (pip install 'lookalike[ml]')", file=sys.stderr)
        return 3
    if args.steps < 1:
        print("train_shots: --steps must be at least 1", file=sys.stderr)
        return 2
    extra = dict(TINY) if args.tiny else {}
    every = max(1, args.steps // 10)
    recent: list[float] = []

    def progress(step: int, loss: float) -> None:
        recent.append(loss)
        if step % every == 0 or step == args.steps:
            print(
                f"step {step}/{args.steps} loss {sum(recent) / len(recent):.4f}", file=sys.stderr, flush=True
            )
            recent.clear()

    summary = shots_learned.train(
        args.out,
        steps=args.steps,
        seed=args.seed,
        threads=args.threads,
        progress=progress,
        **extra,
    )
    model, why = shots_learned.load_shot_model(args.out)
    if model is None:  # the file just written does not load back: a bug, say so plainly
        print(f"train_shots: {why}", file=sys.stderr)
        return 1
    held_out = shots_learned.evaluate(model, n_frames=args.eval_frames)
    print(json.dumps({"train": summary, "held_out": held_out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
