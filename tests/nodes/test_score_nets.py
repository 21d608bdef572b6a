"""LPIPS and FID/KID code paths with tiny weights built here (no download); skipped without torch."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from lookalike.nodes import score_nets

sys.path.insert(0, str(Path(__file__).resolve().parent))
import score_media as sm  # noqa: E402


def test_missing_torch_or_weights_is_reported_not_raised(tmp_path):
    net, why = score_nets.load_lpips(None)
    assert net is None and "no weights" in why
    net, why = score_nets.load_feature_net(tmp_path / "absent.pt2")
    assert net is None and ("not found" in why or "torch is not installed" in why)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    net, why = score_nets.load_lpips(tmp_path / "junk.pt")
    assert net is None and ("cannot read" in why or "torch is not installed" in why)


def _lpips_weights(path: Path) -> Path:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    feats = score_nets._alex_features(torch)
    state = {f"features.{k}": v for k, v in feats.state_dict().items()}
    for i, c in enumerate(score_nets.ALEX_CHANNELS):
        state[f"lin{i}.model.1.weight"] = torch.rand(1, c, 1, 1) / c
    torch.save(state, str(path))
    return path


def _feature_net(path: Path) -> Path:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    ).eval()
    batch = torch.export.Dim("batch", min=1)
    ep = torch.export.export(net, (torch.zeros(2, 3, 299, 299),), dynamic_shapes=({0: batch},))
    torch.export.save(ep, str(path))
    return path


def test_lpips_is_zero_for_equal_pictures_and_grows_with_damage(tmp_path):
    net, why = score_nets.load_lpips(_lpips_weights(tmp_path / "lpips.pth"))
    assert net is not None, why
    rng = np.random.default_rng(0)
    a = (rng.random((2, 96, 128, 3)) * 255).astype(np.uint8)
    d = [
        float(net.distance(a, np.clip(a + rng.normal(0, sd, a.shape), 0, 255).astype(np.uint8)).mean())
        for sd in (0, 10, 60)
    ]
    assert d[0] == pytest.approx(0, abs=1e-6) and d[0] < d[1] < d[2]


def test_score_uses_lpips_and_fid_when_weights_exist(tmp_path):
    from lookalike.nodes.score import ScoreConfig, score

    cfg = ScoreConfig(
        lpips_weights=str(_lpips_weights(tmp_path / "lpips.pth")),
        fid_weights=str(_feature_net(tmp_path / "feat.pt2")),
        thumbnails=False,
    )
    short = sm.variant(shots=sm.SAMPLE.shots[:2], bpm=None)
    sample = sm.make(tmp_path / "s.mp4", short)
    shifted = sm.make(tmp_path / "o.mp4", sm.variant(short, gain=(1.3, 1.0, 0.6)))
    same = score(str(sample), str(sample), None, None, config=cfg)
    other = score(str(sample), str(shifted), None, None, config=cfg)
    assert not any(m.startswith(("lpips", "fid")) for m in same["missing"])
    assert same["metrics"]["lpips_mean"] == pytest.approx(0, abs=1e-6)
    assert other["metrics"]["lpips_mean"] > 0
    assert same["metrics"]["fid"] == pytest.approx(0, abs=1e-6) and other["metrics"]["fid"] > 0
    assert "kid" in other["metrics"]
