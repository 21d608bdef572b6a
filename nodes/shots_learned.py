"""An optional learned hard-cut detector: a small TransNetV2-style network on the shot thumbnails.

It sits beside the classic detector of `nodes.analysis` (adaptive change-score spikes, fades,
dissolves, wipes), never instead of it, and is never required: without torch or without weights
`load_shot_model` returns (None, why) and analysis runs the classic detector alone, saying so in the
document (`shot_detector`).

The network (after Souček & Lokoč, "TransNet V2", 2020) reads the THUMB x THUMB RGB thumbnail every
frame already has (`kernels.shots.THUMB`), so it decodes nothing more and, like every shot feature,
works on the merged frames of any range split. It is:

- two DDCNN cells, each a 1x3x3 spatial convolution followed by parallel 3x1x1 temporal
  convolutions with dilations 1, 2, 4 and 8 (concatenated, batch-normalised), then 2x2 spatial
  average pooling;
- per frame, the last cell's features pooled to a `grid` x `grid` map, plus the cosine similarity of
  the frame's pooled feature vector with its `sim` neighbours on either side (TransNetV2's
  frame-similarity branch: a cut is where the similarity to the past drops and stays low);
- fixed (not learned) log distances between the thumbnails around the frame, as TransNetV2 adds
  colour-histogram similarities: they let a network of a few thousand parameters learn in seconds;
- a two-layer head giving the logit that the frame starts a new shot.

Default network (DEFAULT_CONFIG): about 21,000 parameters; the tests train a 3,200-parameter one.

Every output depends only on frames within `radius` of it, so `cut_probabilities` runs a long video
in windows that overlap by that much and keeps each window's centre: the result is the one-window
result up to float noise, wherever the windows fall.

Weights file (`torch.save`, loaded with weights_only=True, so a file cannot run code):
{"format": "lookalike-shots-v1", "config": {filters, dilations, grid, sim, hidden},
"state_dict": ..., "trained": {...}}. `train` makes one from synthesized sequences (bench/train_shots.py
is the command line): nothing is downloaded.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lookalike.kernels import shots as kt
from lookalike.nodes.score_nets import torch_available  # noqa: F401 - part of this module's interface

FORMAT = "lookalike-shots-v1"
NO_WEIGHTS = "no weights configured (LOOKALIKE_SHOT_WEIGHTS)"
THRESHOLD = 0.5
DEFAULT_CONFIG: dict[str, Any] = {
    "filters": [6, 12],
    "dilations": [1, 2, 4, 8],
    "grid": 2,
    "sim": 4,
    "hidden": 48,
}
# Frames per window of `cut_probabilities` (plus `radius` of context on either side): large enough
# that the context is a small overhead, small enough that a long video never holds all its
# activations at once.
WINDOW = 256


def _positive_ints(v: Any) -> bool:
    return isinstance(v, list | tuple) and len(v) > 0 and all(isinstance(x, int) and x > 0 for x in v)


def _check_config(config: Any) -> dict[str, Any]:
    """The architecture hyper-parameters as plain ints; ValueError naming what is wrong."""
    if not isinstance(config, dict):
        raise ValueError(f"config is a {type(config).__name__}, not a dict")
    unknown = set(config) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}")
    c = {**DEFAULT_CONFIG, **config}
    if not _positive_ints(c["filters"]) or not _positive_ints(c["dilations"]):
        raise ValueError("filters and dilations must be non-empty lists of positive ints")
    for k, least in (("grid", 1), ("sim", 0), ("hidden", 1)):
        if not isinstance(c[k], int) or c[k] < least:
            raise ValueError(f"{k} must be an int of at least {least}, not {c[k]!r}")
    # Each cell halves the thumbnail; the grid pooled from the last one must fit in what is left.
    if c["grid"] > kt.THUMB >> len(c["filters"]):
        raise ValueError(
            f"grid {c['grid']} is larger than the {kt.THUMB >> len(c['filters'])} px left after pooling"
        )
    return {
        "filters": [int(x) for x in c["filters"]],
        "dilations": [int(x) for x in c["dilations"]],
        "grid": int(c["grid"]),
        "sim": int(c["sim"]),
        "hidden": int(c["hidden"]),
    }


@functools.cache
def _net_class(torch: Any) -> type:
    """The network's class, made on first use so that importing this module never imports torch."""
    nn, F = torch.nn, torch.nn.functional

    class DDCNN(nn.Module):
        """TransNetV2's dilated DCNN cell, its spatial convolution shared by the temporal branches."""

        def __init__(self, cin: int, filters: int, dilations: list[int]) -> None:
            super().__init__()
            self.spatial = nn.Conv3d(cin, 2 * filters, (1, 3, 3), padding=(0, 1, 1))
            self.temporal = nn.ModuleList(
                nn.Conv3d(2 * filters, filters, (3, 1, 1), padding=(d, 0, 0), dilation=(d, 1, 1))
                for d in dilations
            )
            self.norm = nn.BatchNorm3d(filters * len(dilations))

        def forward(self, x: Any) -> Any:
            s = F.relu(self.spatial(x))
            return F.relu(self.norm(torch.cat([t(s) for t in self.temporal], dim=1)))

    class ShotNet(nn.Module):
        """(B, 3, T, THUMB, THUMB) thumbnails in [-0.5, 0.5] -> (B, T) hard-cut logits."""

        def __init__(
            self, filters: list[int], dilations: list[int], grid: int, sim: int, hidden: int
        ) -> None:
            super().__init__()
            cells, cin = [], 3
            for f in filters:
                cells.append(DDCNN(cin, f, dilations))
                cin = f * len(dilations)
            self.cells = nn.ModuleList(cells)
            self.grid, self.sim = grid, sim
            self.head = nn.Sequential(
                nn.Linear(cin * grid * grid + 10 * sim + 2 * (sim > 0), hidden),
                nn.ReLU(),
                nn.Linear(hidden, 1),
            )
            # Frames either side an output depends on: each cell's widest dilation, then the similarities.
            self.radius = max(len(filters) * max(dilations) + sim, sim + 1)

        def forward(self, x: Any) -> Any:
            b, _, t, _, _ = x.shape
            feats = []
            if self.sim:
                # Fixed distances between the thumbnails themselves (TransNetV2 feeds colour-histogram
                # similarities the same way), pixel by pixel and between the 2x2 mean colours, which
                # a fast pan barely moves: from each frame to its `sim` neighbours, and each
                # neighbour's distance to its predecessor (how much the picture moves around here).
                # As logarithms, so that "much more change than around it" is a difference, the
                # classic detector's adaptive ratio, whatever the contrast of the shots. With them
                # the cut/flash/motion distinction is learnt in a few hundred steps.
                fine = x.transpose(1, 2).reshape(b, t, -1)
                coarse = F.adaptive_avg_pool3d(x, (t, 2, 2)).transpose(1, 2).reshape(b, t, -1)
                for a in (fine, coarse):
                    d = self._neighbours(a, lambda u, w: (u - w).abs().mean(2))
                    step = d[..., self.sim - 1]  # to the previous frame (offset -1)
                    feats += [_log_distance(d), _log_distance(self._around(step))]
            for cell in self.cells:
                x = F.avg_pool3d(cell(x), (1, 2, 2))
            feats.append(
                F.adaptive_avg_pool3d(x, (t, self.grid, self.grid)).transpose(1, 2).reshape(b, t, -1)
            )
            if self.sim:
                v = F.normalize(x.mean(dim=(3, 4)).transpose(1, 2), dim=2)  # (B, T, C) unit vectors
                feats.append(self._neighbours(v, lambda u, w: (u * w).sum(2)))
            return self.head(torch.cat(feats, dim=2)).squeeze(2)

        def _neighbours(self, a: Any, measure: Any) -> Any:
            """(B, T, 2 * sim): `measure` of each frame's row of `a` (B, T, D) against the rows
            sim..1 frames before and 1..sim after it (zeros past the ends: outside every kept output)."""
            t = a.shape[1]
            ap = F.pad(a, (0, 0, self.sim, self.sim))
            offsets = [k for k in range(-self.sim, self.sim + 1) if k]
            return torch.stack([measure(a, ap[:, self.sim + k : self.sim + k + t]) for k in offsets], 2)

        def _around(self, a: Any) -> Any:
            """(B, T, 2 * sim + 1): `a` (B, T) at each frame and its `sim` neighbours either side."""
            t = a.shape[1]
            ap = F.pad(a, (self.sim, self.sim))
            return torch.stack([ap[:, k : k + t] for k in range(2 * self.sim + 1)], 2)

    def _log_distance(d: Any) -> Any:
        # Half a grey level keeps log() finite on still frames; the shift and scale put the usual
        # range (a still shot to a cut) near [-1, 1].
        return (torch.log(d + 0.002) + 4.0) / 2.0

    return ShotNet


def _parameters(net: Any) -> int:
    return sum(int(p.numel()) for p in net.parameters())


def build_net(config: dict[str, Any] | None = None) -> Any:
    """A fresh (untrained) network for `config` (DEFAULT_CONFIG where keys are missing)."""
    import torch

    return _net_class(torch)(**_check_config(config or {}))


@dataclass(frozen=True)
class ShotModel:
    """A loaded learned detector: the network in eval mode, its config and where it came from."""

    net: Any
    config: dict[str, Any]
    path: str

    @property
    def parameters(self) -> int:
        return _parameters(self.net)

    def cut_probabilities(self, thumbs: np.ndarray, window: int = WINDOW) -> np.ndarray:
        return cut_probabilities(self, thumbs, window=window)


def load_shot_model(path: str | Path | None) -> tuple[ShotModel | None, str]:
    """(ShotModel, "") or (None, why the learned detector is unavailable); never raises for a bad file."""
    if not path:
        return None, NO_WEIGHTS
    try:
        import torch
    except ImportError:
        return None, f"shot weights {path}: torch is not installed (pip install 'lookalike[ml]')"
    p = Path(path)
    if not p.is_file():
        return None, f"shot weights file not found: {p}"
    try:
        blob = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: analysis goes on with the classic detector
        return None, f"cannot read shot weights {p}: {str(exc)[:160]}"
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        return None, f"{p}: not a {FORMAT} file (format {found!r}); make one with bench/train_shots.py"
    try:
        config = _check_config(blob.get("config"))
        net = _net_class(torch)(**config)
        net.load_state_dict(blob.get("state_dict"))
    except Exception as exc:  # a config or state dict that does not fit: report it, do not fail analysis
        return None, f"{p}: weights do not fit their {FORMAT} config ({str(exc)[:160]})"
    net.eval()
    return ShotModel(net=net, config=config, path=str(p)), ""


def save_shot_model(
    net: Any, config: dict[str, Any], path: str | Path, trained: dict[str, Any] | None = None
) -> Path:
    """Write `net` as a lookalike-shots-v1 file (what `load_shot_model` reads)."""
    import torch

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": FORMAT,
        "config": _check_config(config),
        "state_dict": net.state_dict(),
        "trained": trained or {},
    }
    torch.save(blob, str(p))
    return p


def _to_input(torch: Any, thumbs: np.ndarray) -> Any:
    """(n, THUMB, THUMB, 3) uint8 -> (3, n, THUMB, THUMB) float32 in [-0.5, 0.5]."""
    t = np.asarray(thumbs)
    if t.ndim != 4 or t.shape[1:] != (kt.THUMB, kt.THUMB, 3):
        raise ValueError(f"thumbnails must be (n, {kt.THUMB}, {kt.THUMB}, 3), not {t.shape}")
    # A read-only buffer (analysis hands np.frombuffer thumbnails) must be copied: torch warns on it.
    t = np.ascontiguousarray(t, dtype=np.uint8)
    if not t.flags.writeable:
        t = t.copy()
    x = torch.from_numpy(t).permute(3, 0, 1, 2).float()
    return x / 255.0 - 0.5


def _pad_edges(torch: Any, x: Any, r: int) -> Any:
    """(..., T, H, W) with the first and last frame repeated r times: the video holds still past its ends."""
    if r == 0:
        return x
    return torch.cat(
        [
            x[..., :1, :, :].expand(*x.shape[:-3], r, *x.shape[-2:]),
            x,
            x[..., -1:, :, :].expand(*x.shape[:-3], r, *x.shape[-2:]),
        ],
        dim=-3,
    )


def cut_probabilities(model: ShotModel, thumbs: np.ndarray, *, window: int = WINDOW) -> np.ndarray:
    """(n,) float64: the probability that each frame starts a new shot (hard cut), frame 0 included.

    Runs windows of `window` frames with `model.net.radius` frames of context either side (the
    video's first and last frames repeated past its ends), so the result does not depend on where
    the windows fall, beyond float noise.
    """
    import torch

    n = len(thumbs)
    if n == 0:
        return np.zeros(0)
    net = model.net
    r = int(net.radius)
    window = max(1, int(window))
    x = _pad_edges(torch, _to_input(torch, thumbs), r)
    out = np.empty(n)
    with torch.no_grad():
        full = [a for a in range(0, n, window) if a + window <= n]
        # Windows of the same length go through in batches of a few: fewer calls, bounded memory.
        for i in range(0, len(full), 8):
            batch = torch.stack([x[:, a : a + window + 2 * r] for a in full[i : i + 8]])
            logits = net(batch)[:, r : r + window]
            for a, row in zip(full[i : i + 8], logits, strict=True):
                out[a : a + window] = torch.sigmoid(row).double().numpy()
        tail = len(full) * window
        if tail < n:
            logits = net(x[None, :, tail : n + 2 * r])[0, r : r + n - tail]
            out[tail:] = torch.sigmoid(logits).double().numpy()
    return out


def cut_peaks(probs: np.ndarray, threshold: float = THRESHOLD) -> list[int]:
    """Frames (never frame 0) whose probability is above `threshold` and a local maximum: the first
    of a plateau, so a cut the network smears over two frames counts once."""
    p = np.asarray(probs, dtype=np.float64)
    out = []
    for i in range(1, len(p)):
        if p[i] > threshold and p[i] > p[i - 1] and (i + 1 >= len(p) or p[i] >= p[i + 1]):
            out.append(i)
    return out


# --- synthesized training data --------------------------------------------------------------------


@dataclass(frozen=True)
class Synth:
    """A synthesized sequence: RGB frames (n, size, size, 3) uint8, their thumbnails, the hard cuts
    (first frames of new shots) and the flash frames (inside shots: not cuts)."""

    frames: np.ndarray
    thumbs: np.ndarray
    cuts: list[int]
    flashes: list[int]


def _texture(rng: np.random.Generator, side: int) -> np.ndarray:
    """A (side, side, 3) picture in [0, 1], periodic (it wraps when the camera pans): smooth noise,
    stripes or a layout of blocks, each in its own colours."""
    from scipy import ndimage

    kind = rng.integers(3)
    if kind == 0:
        sigma = rng.uniform(1.5, side / 10)
        img = np.stack(
            [ndimage.gaussian_filter(rng.random((side, side)), sigma, mode="wrap") for _ in range(3)], -1
        )
    elif kind == 1:
        yy, xx = np.mgrid[0:side, 0:side] / side
        fx, fy = rng.integers(-4, 5, size=2)
        phase = 2 * np.pi * (fx * xx + fy * yy) + rng.uniform(0, 2 * np.pi)
        base = 0.5 + 0.5 * np.sin(phase)[..., None]
        img = base * rng.random(3) + (1 - base) * rng.random(3)
    else:
        img = np.empty((side, side, 3))
        img[:] = rng.random(3)
        for _ in range(rng.integers(2, 7)):
            y, x = rng.integers(0, side, size=2)
            h, w = rng.integers(side // 8, side // 2, size=2)
            ys, xs = np.arange(y, y + h) % side, np.arange(x, x + w) % side
            img[np.ix_(ys, xs)] = rng.random(3)
        img = ndimage.uniform_filter(img, (3, 3, 1), mode="wrap")
    lo, hi = img.min(), img.max()
    return (img - lo) / max(hi - lo, 1e-6)


def _shot(
    rng: np.random.Generator, length: int, size: int, like: tuple[float, np.ndarray] | None
) -> np.ndarray:
    """`length` frames (float, [0, 1]) of one shot: a texture the camera pans over (slowly, fast or
    shaking), sometimes an object crossing it, sometimes light changing; `like` (mean, tint) makes
    a shot of the same colours as the one before (a cut that colour histograms barely see)."""
    side = 2 * size
    px = size / 48  # speeds below are in pixels of a 48-pixel frame
    tex = _texture(rng, side)
    contrast = rng.uniform(0.06, 0.25) if rng.random() < 0.3 else rng.uniform(0.3, 1.0)
    mean, tint = like if like is not None else (rng.uniform(0.15, 0.85), rng.random(3))
    tex = mean + contrast * (0.7 * (tex - tex.mean()) + 0.3 * (tex.mean(axis=2, keepdims=True) - tex.mean()))
    tex = tex + 0.25 * (tint - tint.mean()) * min(mean, 1 - mean) * 2
    motion = rng.random()
    if motion < 0.55:
        v = rng.normal(0, 1.0, 2) * px
    elif motion < 0.85:  # fast pans: large frame-to-frame changes that are not cuts
        ang = rng.uniform(0, 2 * np.pi)
        v = rng.uniform(4, 14) * px * np.array([np.cos(ang), np.sin(ang)])
    else:
        v = np.zeros(2)
    # Handheld shake: a jittery path (each offset pulled back toward the last), not independent
    # jumps, which would be small cuts.
    shake = rng.uniform(0.5, 3) * px if rng.random() < 0.15 else 0.0
    start = rng.uniform(0, side, 2)
    obj = None
    if rng.random() < 0.4:  # an object crossing the frame (it may leave it; it never jumps)
        h, w = rng.integers(size // 6, size // 2, size=2)
        obj = (h, w, rng.random(3), rng.uniform(0, size, 2), rng.normal(0, 4 * px, 2))
    gain_end = rng.uniform(0.7, 1.3) if rng.random() < 0.2 else 1.0
    ar = np.arange(size)
    out = np.empty((length, size, size, 3))
    jitter = np.zeros(2)
    for t in range(length):
        if shake:
            jitter = 0.6 * jitter + rng.normal(0, shake, 2)
        oy, ox = np.floor(start + v * t + jitter).astype(int)
        f = tex[np.ix_((ar + oy) % side, (ar + ox) % side)]
        if obj is not None:
            h, w, colour, pos, ov = obj
            y, x = np.floor(pos + ov * t).astype(int)
            f[max(y, 0) : max(y + h, 0), max(x, 0) : max(x + w, 0)] = colour
        f = f * (1 + (gain_end - 1) * t / max(length - 1, 1))
        out[t] = f
    return out


def synthesize(
    n_frames: int,
    seed: int,
    *,
    size: int = 48,
    shot_frames: tuple[int, int] = (6, 40),
    flash_share: float = 0.35,
) -> Synth:
    """A sequence of random shots with hard cuts at known frames, flashes (one or two bright frames
    that revert: not cuts) and fast pans (not cuts either), deterministic for a seed.

    Frames are `size` x `size`; thumbnails are their box means at THUMB x THUMB, as
    `kernels.shots.thumbnail` makes them from a frame whose side is a multiple of THUMB.
    """
    if size % kt.THUMB:
        raise ValueError(f"size {size} must be a multiple of {kt.THUMB}")
    rng = np.random.default_rng(seed)
    frames = np.empty((n_frames, size, size, 3))
    cuts: list[int] = []
    flashes: list[int] = []
    t, like = 0, None
    while t < n_frames:
        length = min(int(rng.integers(shot_frames[0], shot_frames[1] + 1)), n_frames - t)
        frames[t : t + length] = _shot(rng, length, size, like)
        if t > 0:
            cuts.append(t)
        # Flashes sit inside shots, clear of their ends, so each flash reverts to the same shot.
        if length >= 9 and rng.random() < flash_share:
            k = t + int(rng.integers(3, length - 4))
            span = 1 + int(rng.random() < 0.4)
            colour = np.ones(3) if rng.random() < 0.6 else rng.uniform(0.7, 1.0, 3)
            a = rng.uniform(0.6, 1.0)
            frames[k : k + span] = (1 - a) * frames[k : k + span] + a * colour
            flashes.extend(range(k, k + span))
        last = frames[t + length - 1]
        like = (float(last.mean()), last.mean(axis=(0, 1))) if rng.random() < 0.25 else None
        t += length
    frames += rng.normal(0, 0.01, frames.shape)
    rgb = np.clip(np.round(frames * 255), 0, 255).astype(np.uint8)
    return Synth(frames=rgb, thumbs=thumbs_of(rgb), cuts=cuts, flashes=flashes)


def thumbs_of(frames: np.ndarray) -> np.ndarray:
    """THUMB x THUMB box-mean thumbnails of square frames whose side is a multiple of THUMB."""
    n, s = frames.shape[0], frames.shape[1]
    k = s // kt.THUMB
    box = frames.reshape(n, kt.THUMB, k, kt.THUMB, k, 3).astype(np.float32).mean(axis=(2, 4))
    return np.round(box).astype(np.uint8)


# --- training -------------------------------------------------------------------------------------


def train(
    out: str | Path,
    *,
    steps: int = 800,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    batch: int = 8,
    clip_frames: int = 48,
    shot_frames: tuple[int, int] = (4, 30),
    lr: float = 1e-2,
    pos_weight: float = 3.0,
    flash_weight: float = 3.0,
    threads: int | None = 1,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train a network on synthesized sequences and save it at `out` as a lookalike-shots-v1 file.

    Each step draws `batch` fresh clips (`synthesize`, seeds `seed * 1_000_003 + step * batch + b`),
    so there is no fixed training set to overfit. Clips are synthesized at twice the thumbnail size,
    not 48 px: the thumbnails are alike and synthesis costs a quarter. Labels are 1 on the first
    frame of every new shot; flashes and fast pans are in the clips as negatives. Cuts are rare (one
    frame in seventeen), so they weigh `pos_weight`; flashes and the frames after them, the
    negatives most like cuts, weigh `flash_weight`. Clips get the same repeated-edge context
    `cut_probabilities` gives a video's ends. `threads`: torch threads while training (restored
    after); one is fastest for so small a network, and much faster than two on a busy machine.
    `progress(step, loss)` is called after every step.
    Deterministic for a seed on one machine; torch's global random state is left as it was.

    Returns {"path", "parameters", "steps", "seed", "seconds", "loss"} (the mean loss of the last tenth).
    """
    import torch

    config = _check_config(config or {})
    t0 = time.perf_counter()
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _net_class(torch)(**config)
            net.train()
            r = net.radius
            opt = torch.optim.Adam(net.parameters(), lr=lr)
            # Full rate, then a linear decay over the last fifth: a short run spends most steps learning.
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, 5 * (1 - i / max(steps, 1))))
            with torch.no_grad():
                # Start at the prior rate of cuts (one frame per mean shot length), not at one half:
                # the first steps then learn what a cut is instead of how rare cuts are.
                prior = 2 / (shot_frames[0] + shot_frames[1])
                net.head[-1].bias.fill_(math.log(prior / (1 - prior)))
            losses = []
            for step in range(steps):
                xs, ys, ws = [], [], []
                for b in range(batch):
                    s = synthesize(
                        clip_frames,
                        seed * 1_000_003 + step * batch + b,
                        size=kt.THUMB * 2,
                        shot_frames=shot_frames,
                        flash_share=0.6,
                    )
                    xs.append(_pad_edges(torch, _to_input(torch, s.thumbs), r))
                    y = np.zeros(clip_frames, np.float32)
                    y[s.cuts] = 1.0
                    w = np.ones(clip_frames, np.float32)
                    # A flash and the frame it reverts on look most like cuts: they weigh more.
                    w[[f for k in s.flashes for f in (k, k + 1) if f < clip_frames]] = flash_weight
                    w[s.cuts] = pos_weight
                    ys.append(torch.from_numpy(y))
                    ws.append(torch.from_numpy(w))
                logits = net(torch.stack(xs))[:, r : r + clip_frames]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, torch.stack(ys), torch.stack(ws)
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                if progress is not None:
                    progress(step + 1, losses[-1])
            net.eval()
    finally:
        torch.set_num_threads(before)
    seconds = time.perf_counter() - t0
    tail = losses[-max(1, steps // 10) :] if losses else [float("nan")]
    summary = {
        "path": str(out),
        "parameters": _parameters(net),
        "steps": steps,
        "seed": seed,
        "seconds": round(seconds, 2),
        "loss": round(float(np.mean(tail)), 5),
    }
    save_shot_model(net, config, out, trained={k: v for k, v in summary.items() if k != "path"})
    return summary


def evaluate(model: ShotModel, *, n_frames: int = 720, seed: int = 12345, tol: int = 1) -> dict[str, Any]:
    """How the learned detector alone does on a synthesized sequence it was not trained on:
    precision, recall and F1 of its peaks against the true cuts (within `tol` frames), how many
    flashes it fired on, and the inference time per frame."""
    s = synthesize(n_frames, seed)
    t0 = time.perf_counter()
    probs = cut_probabilities(model, s.thumbs)
    per_frame = (time.perf_counter() - t0) / max(n_frames, 1)
    found = cut_peaks(probs)
    p, r, f1 = kt.boundary_f1(found, s.cuts, tol)
    flash_fires = sum(1 for c in found if any(abs(c - f) <= 1 for f in s.flashes) and c not in s.cuts)
    return {
        "frames": n_frames,
        "cuts": len(s.cuts),
        "flashes": len(s.flashes),
        "found": len(found),
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f1, 4),
        "flash_fires": flash_fires,
        "ms_per_frame": round(per_frame * 1000, 4),
    }
