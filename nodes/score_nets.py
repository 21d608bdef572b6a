"""Learned perceptual measures for the score, optional: LPIPS (AlexNet) and FID/KID features.

Both need torch and weights from a local path (nothing is downloaded). When torch is not installed
or a path is not given or not readable, `load_lpips` / `load_feature_net` return (None, reason) and
the score reports the measure as missing instead of failing.

Weight formats:
- LPIPS: a `torch.save` state dict holding the five linear heads as the lpips package names them
  (`lin0.model.1.weight` .. `lin4.model.1.weight`, shapes (C, 1... ) i.e. 1x1 convs) and, in the same
  file or in `backbone`, torchvision's AlexNet convolutions (`features.{0,3,6,8,10}.{weight,bias}`;
  a whole torchvision alexnet state dict works, its classifier is ignored).
- FID/KID: a feature network saved with `torch.export.save` (.pt2) or TorchScript (.pt/.pth,
  e.g. an Inception-v3 export with its classifier removed). It takes float32 (N, 3, S, S) RGB in
  [0, 1], S = `input_size` (299 unless given), and returns (N, D) features (extra 1x1 axes are
  flattened).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

ALEX_CHANNELS = (64, 192, 384, 256, 256)
# lpips' ScalingLayer: inputs in [-1, 1] are shifted and scaled to ImageNet statistics.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _alex_features(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
    )


class Lpips:
    """LPIPS distance (Zhang et al. 2018, AlexNet variant) between RGB uint8 pictures."""

    # Indices after which the five ReLU taps sit in the AlexNet feature stack above.
    TAPS = (1, 4, 7, 9, 11)

    def __init__(self, state: dict, torch: Any) -> None:
        self.torch = torch
        self.features = _alex_features(torch).eval()
        feats = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        self.features.load_state_dict(feats)
        self.lins = [
            state[f"lin{i}.model.1.weight"].reshape(1, c, 1, 1).float() for i, c in enumerate(ALEX_CHANNELS)
        ]

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-pair LPIPS of two stacks of HxWx3 uint8 pictures (same shapes): (N,) float."""
        torch = self.torch
        with torch.no_grad():
            ta, tb = self._prep(a), self._prep(b)
            out = torch.zeros(ta.shape[0])
            fa, fb = ta, tb
            for i, layer in enumerate(self.features):
                fa, fb = layer(fa), layer(fb)
                if i in self.TAPS:
                    k = self.TAPS.index(i)
                    na = fa / (fa.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
                    nb = fb / (fb.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
                    out += ((na - nb) ** 2 * self.lins[k]).sum(dim=1).mean(dim=(1, 2))
            return out.numpy().astype(np.float64)

    def _prep(self, imgs: np.ndarray) -> Any:
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(imgs)[..., :3])).float().permute(0, 3, 1, 2)
        x = x / 127.5 - 1.0
        shift = torch.tensor(_SHIFT).reshape(1, 3, 1, 1)
        scale = torch.tensor(_SCALE).reshape(1, 3, 1, 1)
        return (x - shift) / scale


def load_lpips(weights: str | Path | None, backbone: str | Path | None = None) -> tuple[Lpips | None, str]:
    """(Lpips, "") or (None, why it is unavailable)."""
    if not weights:
        return None, "lpips: no weights configured (set the LPIPS weights path)"
    try:
        import torch
    except ImportError:
        return None, "lpips: torch is not installed"
    state: dict = {}
    for p in (backbone, weights):
        if not p:
            continue
        if not Path(p).is_file():
            return None, f"lpips: weights file not found: {p}"
        try:
            state.update(torch.load(str(p), map_location="cpu", weights_only=True))
        except Exception as exc:  # a corrupt or foreign file: report, do not fail the score
            return None, f"lpips: cannot read {p}: {exc}"
    try:
        return Lpips(state, torch), ""
    except (KeyError, RuntimeError) as exc:
        return None, f"lpips: weights at {weights} do not fit AlexNet-LPIPS ({str(exc)[:120]})"


class FeatureNet:
    """A feature extractor for FID/KID: pictures in, (N, D) float64 features out."""

    def __init__(self, module: Any, torch: Any, input_size: int) -> None:
        self.module, self.torch, self.input_size = module, torch, input_size

    def features(self, imgs: np.ndarray, batch: int = 16) -> np.ndarray:
        torch = self.torch
        out = []
        with torch.no_grad():
            for i in range(0, len(imgs), batch):
                x = torch.from_numpy(np.ascontiguousarray(np.asarray(imgs[i : i + batch])[..., :3]))
                x = x.float().permute(0, 3, 1, 2) / 255.0
                x = torch.nn.functional.interpolate(
                    x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
                )
                y = self.module(x)
                out.append(y.reshape(y.shape[0], -1).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0))


def load_feature_net(path: str | Path | None, input_size: int = 299) -> tuple[FeatureNet | None, str]:
    """(FeatureNet, "") or (None, why FID/KID are unavailable)."""
    if not path:
        return None, "fid/kid: no feature-network weights configured (set the Inception weights path)"
    try:
        import torch
    except ImportError:
        return None, "fid/kid: torch is not installed"
    p = Path(path)
    if not p.is_file():
        return None, f"fid/kid: weights file not found: {p}"
    try:
        if p.suffix == ".pt2":
            module = torch.export.load(str(p)).module()
        else:
            with warnings.catch_warnings():
                # TorchScript loading is deprecated upstream; published Inception exports still use it.
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(p), map_location="cpu")
                module.eval()
    except Exception as exc:  # a corrupt or foreign file: report, do not fail the score
        return None, f"fid/kid: cannot load {p}: {str(exc)[:160]}"
    return FeatureNet(module, torch, int(getattr(module, "input_size", input_size))), ""
