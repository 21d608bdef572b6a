"""The footage remake end to end (docs/footage.md): the sample cut from the user's own clips and photos.

One farm serves the module; the CLI test starts its own embedded farm as a user's run does."""

from __future__ import annotations

import json
import random
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from farm import MEDIA, Farm, cli
from lookalike.client import Client
from lookalike.nodes import media
from synth import make_clip, psnr, texture

from lookalike.errors import InputError, LookalikeError


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    f = Farm(tmp_path_factory.mktemp("footage-farm"), env={"LOOKALIKE_MAX_MEDIA_ITEMS": "6"})
    yield f
    f.close()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """Three shots (cuts at 40 and 70) of textured colour fields panning at known speeds."""
    path = tmp_path_factory.mktemp("sample") / "sample.mp4"
    truth = make_clip(path, [(40, (255, 200, 120), 2.0), (30, (120, 160, 255), -3.0), (34, (200, 255, 160), 0.0)])
    return path, truth


def _frames(path, start=0, end=None):
    return [f for _, _, f in media.iter_frames(str(path), start, end)]


def _write(path: Path, frames, fps=24, *, crf="4", pix_fmt="yuv420p", codec="libx264", rotate=None):
    """An MP4 of `frames` (near-lossless by default, as a camera's high-bitrate file is)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.options = {"preset": "ultrafast", "crf": crf}
        if rotate is not None:
            vs.metadata["rotate"] = str(rotate)
        for f in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
    return path


def _split_shuffled(sample_path: Path, truth: dict, folder: Path) -> dict[str, int]:
    """The sample's shots as separate files under shuffled, meaningless names: {name: shot index}."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = _frames(sample_path)
    bounds = [0, *truth["cuts"], truth["n_frames"]]
    names = [f"clip_{c}.mp4" for c in "qxk"]
    random.Random(7).shuffle(names)
    owner = {}
    for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        _write(folder / names[k], frames[a:b], fps=truth["fps"])
        owner[names[k]] = k
    return owner


def _remake(farm, sample_path, out, **options):
    with Client(farm.address) as c:
        p = c.remake(sample_path, out=out, **options)
    return p, json.loads((out / "plan.json").read_text())


def test_reassembly_gives_every_scene_its_own_shot_back(farm, sample, tmp_path):
    path, truth = sample
    owner = _split_shuffled(path, truth, tmp_path / "media")
    out = tmp_path / "out"
    _, plan = _remake(farm, path, out, media=[tmp_path / "media"])
    bounds = [0, *truth["cuts"], truth["n_frames"]]
    for k, s in enumerate(plan["scenes"]):
        src = s["source"]
        assert src["kind"] == "media", src
        assert owner[src["media"]] == k, (k, src["media"], src["why"])
        assert (src["in_frame"], src["speed"], src["mirror"], src["move"]) == (0, 1.0, False, "none"), src
        assert (s["start_frame"], s["end_frame"]) == (bounds[k], bounds[k + 1])
    sample_frames, new = _frames(path), _frames(out / "final.mp4")
    assert len(new) == truth["n_frames"]
    for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        per_scene = float(np.mean([psnr(x, y) for x, y in zip(sample_frames[a:b], new[a:b], strict=True)]))
        assert per_scene > 35, (k, per_scene)


def test_photos_only_follow_the_sample_camera(farm, sample, tmp_path):
    path, truth = sample
    photos = tmp_path / "photos"
    photos.mkdir()
    for k, tint in enumerate(((250, 120, 90), (90, 140, 250), (140, 230, 120))):
        from PIL import Image

        Image.fromarray(texture(k + 11, 360, 640, tint)).save(photos / f"photo{k}.png")
    out = tmp_path / "out"
    _, plan = _remake(farm, path, out, media=[photos])
    assert all(s["source"]["kind"] == "media" and s["source"]["photo"] for s in plan["scenes"])
    moving = [s for s in plan["scenes"] if s["camera"]["motion"] != "static"]
    assert moving and all(s["source"]["move"] == "synth" for s in moving)
    sim = json.loads((out / "similarity.json").read_text())
    assert sim["motion"] >= 90, [(sc["camera_sample"], sc["camera_output"], sc["motion"]) for sc in sim["scenes"]]


def test_single_item_is_reused_and_the_plan_says_so(farm, sample, tmp_path):
    path, truth = sample
    one = _write(tmp_path / "only.mp4", [texture(5, 108, 192, (200, 180, 160))] * 30, fps=24)
    _, plan = _remake(farm, path, tmp_path / "out", media=[one])
    sources = [s["source"] for s in plan["scenes"]]
    assert {s["media"] for s in sources} == {"only.mp4"}
    assert [s["reused"] for s in sources] == [0, 1, 2]
    # 30 frames of footage for scenes of 40, 30 and 34 frames: the long ones are slowed or extended.
    assert sources[0]["speed"] < 1.0 or sources[0]["extend"] != "none"
    assert media.probe(str(tmp_path / "out" / "final.mp4")).n_frames == truth["n_frames"]


def test_a_corrupt_clip_is_left_out_by_name_and_the_rest_used(farm, sample, tmp_path):
    path, truth = sample
    folder = tmp_path / "media"
    owner = _split_shuffled(path, truth, folder)
    good = folder / next(iter(owner))
    data = good.read_bytes()
    (folder / "broken.mp4").write_bytes(data[: len(data) // 3] + bytes(4096))
    (folder / "notes.txt").write_text("not a clip")
    (folder / "empty.mp4").write_bytes(b"")
    skipped = []
    out = tmp_path / "out"
    with Client(farm.address) as c:
        c.remake(path, out=out, media=[folder], on_skip=lambda n, r: skipped.append((n, r)))
    plan = json.loads((out / "plan.json").read_text())
    assert {n for n, _ in skipped} == {"notes.txt", "empty.mp4"}
    left = {s["name"]: s["reason"] for s in plan["media_skipped"]}
    assert "broken.mp4" in left and "broken.mp4" in left["broken.mp4"] or "damaged" in left["broken.mp4"], left
    assert {s["source"]["media"] for s in plan["scenes"]} == set(owner)


def test_nothing_usable_is_refused_before_any_work(farm, sample, tmp_path):
    path, _ = sample
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "README.md").write_text("hello")
    (folder / "zero.mov").write_bytes(b"")
    sr = 22050
    # An audio-only MP4 (a phone's voice memo): its suffix says video, so the node's probe decides.
    with av.open(str(folder / "voice.mp4"), "w") as c:
        a = c.add_stream("aac", rate=sr)
        a.layout = "mono"
        tone = (0.2 * np.sin(np.arange(sr) * 2 * np.pi * 440 / sr)).astype(np.float32)[None, :]
        fr = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        fr.sample_rate, fr.pts, fr.time_base = sr, 0, Fraction(1, sr)
        for p in [*a.encode(fr), *a.encode()]:
            c.mux(p)
    out = tmp_path / "out"
    with Client(farm.address) as c:
        before = len(c.projects())
        with pytest.raises(InputError) as exc:
            c.remake(path, out=out, media=[folder])
        assert "voice.mp4" in str(exc.value) and "audio-only" in str(exc.value), exc.value
        assert len(c.projects()) == before
        with pytest.raises(InputError) as exc:
            c.remake(path, out=out, media=[folder / "README.md", folder / "zero.mov"])
        assert "zero.mov" in str(exc.value)
    assert not out.exists() or not any(out.iterdir())


def test_more_items_than_the_limit_are_refused(farm, sample, tmp_path):
    path, _ = sample
    folder = tmp_path / "many"
    folder.mkdir()
    for k in range(7):
        from PIL import Image

        Image.fromarray(texture(k, 36, 64, (100 + 20 * k, 120, 140))).save(folder / f"p{k}.png")
    with Client(farm.address) as c, pytest.raises(LookalikeError) as exc:
        c.remake(path, out=tmp_path / "out", media=[folder])
    assert "at most 6" in str(exc.value)


def test_awkward_clips_are_used_upright(farm, sample, tmp_path):
    """A 4K vertical clip, a 10-bit clip and a clip with rotation metadata all conform to the sample."""
    path, truth = sample
    folder = tmp_path / "awkward"
    folder.mkdir()
    tall = texture(21, 3840, 2160, (230, 150, 90))[:3840, :2160]
    _write(folder / "vertical_4k.mp4", [tall] * 12, fps=30, crf="30")
    _write(folder / "ten_bit.mp4", [texture(22, 216, 384, (90, 200, 230))[:216, :384]] * 40, pix_fmt="yuv420p10le")
    # Coded 1280x544 with a -90 degree display matrix: shown 544x1280 (a phone clip held upright).
    (folder / "rotated.mp4").symlink_to(MEDIA / "shots" / "issue-134-rotate.mp4")
    out = tmp_path / "out"
    _, plan = _remake(farm, path, out, media=[folder])
    assert {m["name"] for m in plan["media"]} == {"vertical_4k.mp4", "ten_bit.mp4", "rotated.mp4"}
    assert not plan["media_skipped"]
    info = media.probe(str(out / "final.mp4"))
    assert (info.width, info.height, info.n_frames) == (*truth["size"], truth["n_frames"])
    dims = {m["name"]: (m["width"], m["height"]) for m in plan["media"]}
    assert dims == {"vertical_4k.mp4": (2160, 3840), "ten_bit.mp4": (384, 216), "rotated.mp4": (544, 1280)}


def test_cli_footage_remake(sample, tmp_path):
    """`lookalike remake SAMPLE --media DIR --text ...` as a user runs it: the embedded farm, warnings
    for what was left out, the plan listing each scene's source."""
    path, truth = sample
    folder = tmp_path / "media"
    _split_shuffled(path, truth, folder)
    (folder / "licence.txt").write_text("CC0")
    out = tmp_path / "out"
    r = cli("remake", str(path), "--media", str(folder), "--out", str(out), "--home", str(tmp_path / "home"),
            "--text", "Hello there")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "1 file(s) in the media folders are not videos or photos and were left out: licence.txt" in r.stderr
    assert "footage: 3 of 3 scenes cut from 3 of 3 media items" in r.stderr
    shown = cli("plan", "show", str(out))
    assert shown.returncode == 0, shown.stderr
    assert "clip_" in shown.stdout


@pytest.mark.slow
def test_real_footage_remake_of_the_shared_sample(tmp_path):
    """The README's job: the shared sample cut from ../shared/media/footage (read in place)."""
    sample_path = MEDIA / "samples" / "big_buck_bunny_0_30.webm"
    truth = json.loads((MEDIA / "ground_truth.json").read_text())["samples/big_buck_bunny_0_30.webm"]
    out = tmp_path / "out"
    r = cli("remake", str(sample_path), "--media", str(MEDIA / "footage"), "--out", str(out),
            "--home", str(tmp_path / "home"), "--quiet", timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    info = media.probe(str(out / "final.mp4"))
    assert (info.width, info.height, info.n_frames) == (1280, 720, truth["n_frames"])
    assert float(info.fps) == pytest.approx(truth["fps"])
    plan = json.loads((out / "plan.json").read_text())
    assert all(s["source"]["kind"] == "media" for s in plan["scenes"])
    out_analysis = json.loads((out / "similarity.json").read_text())
    # Every boundary kept (±1 frame), measured on the output itself by the scoring's analysis. (Not
    # precision: real footage can hold a change the detector reads as a cut, a passer-by filling the frame.)
    assert out_analysis["metrics"]["cut_recall"] == 1.0
    assert out_analysis["metrics"]["cut_mean_error_s"] <= 1.0 / truth["fps"]
    src = _frames(sample_path, 300, 310)
    new = _frames(out / "final.mp4", 300, 310)
    assert max(psnr(a, b) for a, b in zip(src, new, strict=True)) < 20
    # The project's own palette distance (symmetric weighted nearest-colour CIEDE2000) per scene.
    for sc in out_analysis["scenes"]:
        assert sc["metrics"]["palette_delta_e"] <= 6.0, (sc["index"], sc["metrics"]["palette_delta_e"])
    shutil.rmtree(tmp_path / "home", ignore_errors=True)


def test_music_script_text_and_clip_sound(farm, sample, tmp_path):
    """--music, --script, --text and --keep-media-audio through the farm: the user's track under the
    cut (its beats analysed), the script's lines as voice lines, the text in place, the clips' sound mixed."""
    path, truth = sample
    folder = tmp_path / "media"
    _split_shuffled(path, truth, folder)
    track = MEDIA / "music" / "tracks" / "librosa_Kevin_MacLeod_-_Vibe_Ace.hq.ogg"
    script = tmp_path / "words.txt"
    script.write_text("Welcome to the show.\nThis is our footage.\n")
    out = tmp_path / "out"
    _, plan = _remake(farm, path, out, media=[folder], music=track, script=script, text=["Hello"],
                      keep_media_audio=True)
    music = plan["music"]
    assert music["track"]["name"] == track.name and music["track"]["beats_s"] and music["keep_media_audio"]
    # The sample (a click track) has no speech: the script's lines start the first scenes, in order.
    lines = [(s["index"], v["text"], v["source"]) for s in plan["scenes"] for v in s["audio"]["voice_lines"]]
    assert lines == [(0, "Welcome to the show.", "script"), (1, "This is our footage.", "script")], lines
    # The sample shows no text, so the line goes lower-third on the first scene.
    assert plan["scenes"][0]["overlays"][0]["text"] == "Hello" and plan["text_unplaced"] == []
    # The output's sound is the user's track (not a generated groove): it correlates with the track.
    got, _ = media.read_audio(str(out / "final.mp4"), rate=22050)
    ref, _ = media.read_audio(str(track), rate=22050)
    n = min(len(got), len(ref)) - 4096
    best = max(abs(float(np.corrcoef(ref[:n], got[lag : lag + n])[0, 1])) for lag in range(0, 4096, 128))
    assert best > 0.5, best
