"""The remake's music follows the sample: its short-term loudness envelope (3 s windows, fades
included), its sections and its sound, and the mix lands on the loudness target under -1 dBTP.

The envelope is measured on both sides with the one function the analysis uses
(`audio_analysis.loudness_envelope`: kernels.audio_metrics.loudness_curve, mono, 22.05 kHz) and
compared window by window after the constant offset between the two (the target level) is taken
out. Real media: the shared 30 s Big Buck Bunny sample (a fade-in from silence, a loud middle, a
quiet close); synthetic samples with known envelopes: a fade-in and a loud-quiet-loud.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
from lookalike.coordinator import planner
from lookalike.nodes import audio_analysis as aa
from lookalike.nodes import media, music
from lookalike.nodes.runtime import NodeRuntime
from synth import tiny_analysis

from lookalike.store import open_store

RATE = 48000
SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "media" / "samples" / "big_buck_bunny_0_30.webm"
WITHIN_LU = 3.0


def _curve_of(path: str) -> np.ndarray:
    y, rate = media.read_audio(path, rate=aa.AUDIO_RATE)
    return np.asarray(aa.loudness_envelope(y, rate)["lufs"])


def envelope_errors(sample: np.ndarray, remake: np.ndarray) -> np.ndarray:
    """Per 3 s window (every 1 s), the remake's short-term loudness minus the sample's, less the
    median difference (the level change from mastering). Windows where both are silent count 0."""
    m = min(len(sample), len(remake))
    d = remake[:m] - sample[:m]
    d = d - float(np.median(d[sample[:m] > -69.0]))
    return np.where((sample[:m] <= -69.0) & (remake[:m] <= -60.0), 0.0, d)


def _runtime(tmp_path: Path) -> NodeRuntime:
    return NodeRuntime(open_store(str(tmp_path / "store")), cache_dir=str(tmp_path / "cache"))


def _render(tmp_path: Path, analysis: dict, **plan_kw) -> tuple[dict, np.ndarray, str]:
    rt = _runtime(tmp_path)
    plan = planner.make_plan(analysis, **plan_kw)
    got = rt.render_audio(plan, analysis, "audio.m4a", duration_s=float(analysis["source"]["duration_s"]))
    return got, plan, rt.local("audio.m4a")


def _decoded(path: str) -> np.ndarray:
    return np.asarray(media.read_audio(path, rate=RATE, mono=False)[0], dtype=np.float64)


def _written(tmp_path: Path, name: str, x: np.ndarray, rate: int = RATE) -> str:
    path = str(tmp_path / name)
    media.write_audio(path, np.vstack([x, x]).astype(np.float32), rate)
    return path


def _synth_sample(levels_db: list[tuple[float, float]], seconds: float, *, tempo: float, seed: int) -> np.ndarray:
    """A drum-and-pad loop (the local groove) shaped by a gain curve through (time_s, dB) points."""
    x = music.render_music(seconds, tempo, rate=RATE, key="E minor", seed=seed).mean(axis=0).astype(np.float64)
    t = np.arange(len(x)) / RATE
    pts = np.array(levels_db)
    return x * 10 ** (np.interp(t, pts[:, 0], pts[:, 1]) / 20)


def _analysis_of(path: str, cuts: tuple[int, ...], n: int) -> dict:
    return tiny_analysis(aa.audio_section(path, transcriber=None), cuts=cuts, n=n)


@pytest.fixture(scope="module")
def bunny(tmp_path_factory) -> dict:
    """The shared sample's audio section, in a 30 s, 24 fps analysis cut at its scene changes."""
    audio = aa.audio_section(str(SAMPLE), transcriber=None)
    n = int(round(30.0 * 24))
    return tiny_analysis(audio, cuts=(8 * 24, 15 * 24, 22 * 24), n=n)


def test_the_analysis_holds_the_envelope_and_the_descriptors(bunny) -> None:
    audio = bunny["audio"]
    env = audio["loudness_envelope"]
    assert env["hop_s"] == 1.0 and env["window_s"] == 3.0 and len(env["lufs"]) == 31
    lufs = np.asarray(env["lufs"])
    # The sample fades in from silence, plays loud and closes quietly.
    assert lufs[:2].max() < -45.0 and lufs[10:20].min() > -30.0 and lufs[24:].max() < -38.0
    d = audio["descriptors"]
    assert set(d) == {"centroid_hz", "percussiveness", "bass_share", "onset_rate_per_s", "beat_strength",
                      "loudness_range_lu"}
    assert 500.0 < d["centroid_hz"] < 4000.0 and 0.0 < d["percussiveness"] < 1.0 and 0.0 < d["bass_share"] < 1.0
    assert d["loudness_range_lu"] > 10.0


def test_the_plan_has_the_sections_style_and_prompt(bunny) -> None:
    m = planner.make_plan(bunny)["music"]
    assert "loudness_target" not in m  # the default, -14 LUFS
    roles = [s["role"] for s in m["sections"]]
    assert roles[0] == "intro" and roles[-1] == "outro" and "drop" in roles
    drop = next(s for s in m["sections"] if s["role"] == "drop")
    assert 8.0 <= drop["start_s"] <= 10.5 and 20.5 <= drop["end_s"] <= 23.0
    assert m["style"]["groove"] in music.GROOVES
    assert "BPM" in m["prompt"] and "structure: intro" in m["prompt"] and "quiet outro" in m["prompt"]


def test_the_shared_samples_envelope_is_followed_at_minus_14_lufs(tmp_path, bunny) -> None:
    got, plan, path = _render(tmp_path, bunny)
    out = _decoded(path)
    assert got["lufs"] == pytest.approx(-14.0, abs=0.5)
    assert pyloudnorm.Meter(RATE).integrated_loudness(out.T) == pytest.approx(-14.0, abs=0.5)
    assert music.true_peak_db(out) <= -1.0  # decoded from the delivered AAC
    err = envelope_errors(np.asarray(bunny["audio"]["loudness_envelope"]["lufs"]), _curve_of(path))
    assert np.abs(err).max() <= WITHIN_LU, np.round(err, 1).tolist()


@pytest.mark.parametrize(
    "name, levels, tempo",
    [
        ("fade_in", [(0.0, -60.0), (10.0, 0.0), (16.0, 0.0)], 124.0),
        ("loud_quiet_loud", [(0.0, 0.0), (5.0, 0.0), (5.5, -20.0), (10.5, -20.0), (11.0, 0.0), (16.0, 0.0)], 96.0),
    ],
    ids=["fade-in", "loud-quiet-loud"],
)
def test_synthesized_envelopes_are_followed(tmp_path, name, levels, tempo) -> None:
    x = _synth_sample(levels, 16.0, tempo=tempo, seed=3)
    x = x * 10 ** ((-16.0 - pyloudnorm.Meter(RATE).integrated_loudness(np.vstack([x, x]).T)) / 20)
    analysis = _analysis_of(_written(tmp_path, f"{name}.m4a", x), cuts=(8 * 24,), n=16 * 24)
    assert analysis["audio"]["lufs"] == pytest.approx(-16.0, abs=0.5)
    got, plan, path = _render(tmp_path, analysis)
    assert got["lufs"] == pytest.approx(-14.0, abs=0.5)
    assert music.true_peak_db(_decoded(path)) <= -1.0
    err = envelope_errors(np.asarray(analysis["audio"]["loudness_envelope"]["lufs"]), _curve_of(path))
    assert np.abs(err).max() <= WITHIN_LU, np.round(err, 1).tolist()


@pytest.mark.parametrize("loudness, want", [("sample", -16.0), (-20.0, -20.0), (None, -14.0)],
                         ids=["sample", "minus-20", "default"])
def test_the_loudness_target_of_a_minus_16_sample(tmp_path, loudness, want) -> None:
    x = _synth_sample([(0.0, 0.0), (12.0, 0.0)], 12.0, tempo=110.0, seed=1)
    x = x * 10 ** ((-16.0 - pyloudnorm.Meter(RATE).integrated_loudness(np.vstack([x, x]).T)) / 20)
    analysis = _analysis_of(_written(tmp_path, "s.m4a", x), cuts=(6 * 24,), n=12 * 24)
    got, _, path = _render(tmp_path, analysis, loudness=planner.parse_loudness(loudness) if isinstance(
        loudness, str) else loudness)
    out = _decoded(path)
    assert pyloudnorm.Meter(RATE).integrated_loudness(out.T) == pytest.approx(want, abs=0.5)
    assert music.true_peak_db(out) <= -1.0


def _descriptors_of(x: np.ndarray) -> dict:
    return aa.music_descriptors(x.mean(axis=0), RATE)


def test_two_samples_give_different_music(tmp_path, bunny) -> None:
    """A busy 128 BPM groove and Big Buck Bunny's sparse orchestral sound: different grooves and
    instruments, and the rendered music measures differently at the same tempo and key."""
    x = _synth_sample([(0.0, 0.0), (16.0, 0.0)], 16.0, tempo=128.0, seed=2)
    busy = _analysis_of(_written(tmp_path, "busy.m4a", x), cuts=(8 * 24,), n=16 * 24)
    a, b = planner.make_plan(busy)["music"], planner.make_plan(bunny)["music"]
    assert a["style"]["groove"] != b["style"]["groove"] and a["style"] != b["style"]
    ra = music.render_music(16.0, a["tempo_bpm"], key="A minor", style=a["style"], sections=a["sections"])
    rb = music.render_music(16.0, a["tempo_bpm"], key="A minor", style=b["style"],
                            sections=[{"start_s": 0.0, "end_s": 16.0, "role": "drop"}])
    da, db = _descriptors_of(ra), _descriptors_of(rb)
    # Same tempo and key, yet the sound differs: brightness, hits and bass share apart.
    assert abs(da["percussiveness"] - db["percussiveness"]) > 0.03 or abs(da["bass_share"] - db["bass_share"]) > 0.1
    assert abs(np.log2(da["centroid_hz"] / db["centroid_hz"])) > 0.15


def test_an_intro_has_no_drums_and_a_drop_does() -> None:
    style = {"groove": "four_on_floor", "bass": "sub", "lead": "none", "hats_per_beat": 2, "pad_cutoff_hz": 1500.0}
    x = music.render_music(16.0, 120.0, style=style, sections=[{"start_s": 0.0, "end_s": 8.0, "role": "intro"},
                                                                {"start_s": 8.0, "end_s": 16.0, "role": "drop"}])
    intro, drop = _descriptors_of(x[:, : 7 * RATE]), _descriptors_of(x[:, 9 * RATE :])
    assert drop["percussiveness"] > intro["percussiveness"] + 0.1


VIBE_ACE = SAMPLE.parents[1] / "music" / "tracks" / "librosa_Kevin_MacLeod_-_Vibe_Ace.hq.ogg"


@pytest.mark.parametrize("loudness, want", [(None, -14.0), (-18.0, -18.0)], ids=["default", "minus-18"])
def test_a_footage_plans_user_track_lands_on_the_target(tmp_path, loudness, want) -> None:
    """The user's real track (Vibe Ace, read in place through a link) on a 6 s timeline of a -16 LUFS
    sample: mastered to the plan's target, the decoded file's true peak under -1 dBTP."""
    import os

    rt = _runtime(tmp_path)
    dest = tmp_path / "store" / "uploads" / "vibe.ogg"
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(VIBE_ACE, dest)
    analysis = tiny_analysis({"tempo_bpm": 120.0, "key": "A minor", "lufs": -16.0}, cuts=(72,), n=144)
    plan = planner.make_plan(analysis, loudness=loudness)
    plan["music"]["track"] = {"key": "uploads/vibe.ogg", "name": "vibe.ogg"}
    got = rt.render_audio(plan, analysis, "mix.m4a", duration_s=6.0)
    out = _decoded(rt.local("mix.m4a"))
    assert got["music"]["provider"] == "user"
    assert got["lufs"] == pytest.approx(want, abs=0.5)
    assert pyloudnorm.Meter(RATE).integrated_loudness(out.T) == pytest.approx(want, abs=0.5)
    assert music.true_peak_db(out) <= -1.0
