"""Plan sound effects rendered by the ElevenLabs provider when a node is configured for it (the real
SDK against the fake of POST /v1/sound-generation): one call per kind, and each effect's attack on
its time in the remake's audio, although the provider's answer starts with 120 ms of near-silence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lookalike.coordinator import plan_ops, planner
from lookalike.nodes import audio_analysis
from lookalike.nodes.providers import ProviderSettings, synth_sfx
from lookalike.nodes.providers.elevenlabs import RATE as XI_RATE
from lookalike.nodes.runtime import NodeRuntime
from provider_fakes import FakeAPI, Request
from synth import tiny_analysis

from lookalike.store import open_store

LEAD_S = 0.12


def _effect(req: Request):
    kind = "click" if "click" in req.json()["text"] else "hit"
    x = synth_sfx(kind, XI_RATE, seed=5)
    lead = np.random.default_rng(0).standard_normal(int(LEAD_S * XI_RATE)) * 1e-4  # room tone, -80 dBFS
    pcm = (np.concatenate([lead, x]) * 32767).astype("<i2").tobytes()
    return 200, {"content-type": "audio/pcm"}, pcm


def test_elevenlabs_effects_land_on_their_times(api: FakeAPI, tmp_path: Path) -> None:
    api.route("POST", r"^/v1/sound-generation$", _effect)
    settings = ProviderSettings(
        elevenlabs_api_key="xi-key",
        elevenlabs_base_url=api.url,
        sfx_provider="elevenlabs",
        cache_dir=tmp_path / "p",
    )
    rt = NodeRuntime(
        open_store(str(tmp_path / "store")), cache_dir=str(tmp_path / "cache"), provider_settings=settings
    )
    analysis = tiny_analysis({"tempo_bpm": 50.0, "lufs": -20.0})
    # At the sample's quiet -20 LUFS (the -14 default lifts the plain groove's fill at 1.8 s over the
    # onset threshold, and this test is about where the effects land, not the level).
    bare = planner.make_plan(analysis, loudness="sample")
    # between the beats of the 50 BPM music (every 1.2 s), where a drum cannot mask the effect
    plan = plan_ops.apply(
        bare,
        [
            plan_ops.AddSfx(scene=0, sound="hit", offset_s=1.8),
            plan_ops.AddSfx(scene=1, sound="click", offset_s=0.85),
            plan_ops.AddSfx(scene=1, sound="hit", offset_s=2.4),
        ],
    )
    onsets = {}
    for name, p in (("fx", plan), ("bare", bare)):
        rt.render_audio(p, analysis, f"{name}.m4a", duration_s=6.0)
        out = audio_analysis.audio_section(rt.local(f"{name}.m4a"), transcriber=None)
        onsets[name] = [o["attack_s"] for o in out["onsets"]]
    calls = [r.json() for r in api.requests if r.path.startswith("/v1/sound-generation")]
    assert len(calls) == 2 and any("click" in c["text"] for c in calls)  # one call per kind
    for t in (1.8, 3.85, 5.4):
        assert min(abs(u - t) for u in onsets["fx"]) < 0.020, (t, onsets)
        assert min(abs(u - t) for u in onsets["bare"]) > 0.020, (t, onsets)  # the effect's, not a drum's
