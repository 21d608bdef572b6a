"""Bad input gets a clear message and a documented exit code, never a traceback, and nothing is left
half-written in the output folder."""

from __future__ import annotations

import os
import shutil

import pytest
from farm import MEDIA, Farm, cli
from lookalike.nodes import media
from synth import make_clip


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    f = Farm(tmp_path_factory.mktemp("farm"), nodes=1)
    yield f
    f.close()


def _bad_files(d):
    """Each a file a user might hand in by mistake, with the words the error must contain."""
    (d / "notes.mp4").write_text("this is not a video\n" * 50)
    (d / "empty.mp4").write_bytes(b"")
    real = (MEDIA / "shots" / "counter.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(real[: len(real) // 3])
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 30, 30)).save(d / "still.png")
    media.write_audio(str(d / "audio_only.m4a"), __import__("numpy").zeros((2, 48000), "float32"), 48000)
    make_clip(d / "one_frame.mp4", [(1, (200, 100, 50), 0.0)], bpm=None)
    _sixteen_k(d / "huge.mkv")
    return {
        "notes.mp4": ["notes.mp4"],
        "empty.mp4": ["empty"],
        "truncated.mp4": ["truncated"],
        "still.png": ["image"],
        "audio_only.m4a": ["video"],
        "one_frame.mp4": ["frame"],
        "huge.mkv": ["16384", "8192"],
    }


def _sixteen_k(path):
    """A real 16384-px-wide video (FFV1 takes any size), three frames."""
    import av
    import numpy as np

    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = 16384, 16, "yuv420p"
        for i in range(3):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((16, 16384, 3), i * 40, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _assert_clean_error(r, code, *words):
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    msg = r.stderr.lower()
    for w in words:
        assert w.lower() in msg, (w, r.stderr[-2000:])


def test_missing_sample_fails_before_anything_starts(tmp_path):
    r = cli("remake", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "out"), "--quiet")
    _assert_clean_error(r, 2, "no such file")


def test_folder_as_sample(tmp_path):
    r = cli("remake", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet")
    _assert_clean_error(r, 2, "folder")


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = cli("remake", str(MEDIA / "shots" / "counter.mp4"), "--out", str(blocker / "out"), "--quiet")
    _assert_clean_error(r, 2, "output folder")


def test_coordinator_that_does_not_answer(tmp_path):
    r = cli("remake", str(MEDIA / "shots" / "counter.mp4"), "--out", str(tmp_path / "out"), "--cluster",
            "127.0.0.1:1", "--quiet")
    _assert_clean_error(r, 7, "127.0.0.1:1")


@pytest.mark.parametrize("name", ["notes.mp4", "empty.mp4", "truncated.mp4", "still.png", "audio_only.m4a",
                                  "one_frame.mp4", "huge.mkv"])
def test_bad_samples_are_refused_with_a_reason(tmp_path, farm, name):
    words = _bad_files(tmp_path)[name]
    out = tmp_path / "out"
    r = cli("remake", str(tmp_path / name), "--out", str(out), "--cluster", farm.address, "--quiet")
    _assert_clean_error(r, 2, *words)
    assert not out.exists() or not os.listdir(out), "something was written for a refused sample"


def test_subject_that_is_not_an_image(tmp_path, farm):
    (tmp_path / "subject.png").write_text("not an image")
    r = cli("remake", str(MEDIA / "shots" / "counter.mp4"), "--subject", str(tmp_path / "subject.png"), "--out",
            str(tmp_path / "out"), "--cluster", farm.address, "--quiet")
    _assert_clean_error(r, 2, "image")


def test_bad_manifest(tmp_path, farm):
    (tmp_path / "m.json").write_text("{not json")
    r = cli("submit", str(tmp_path / "m.json"), "--cluster", farm.address)
    _assert_clean_error(r, 2, "manifest")
    shutil.rmtree(tmp_path / "m.json", ignore_errors=True)
