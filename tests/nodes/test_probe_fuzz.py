"""Fuzzing the media probe: mutated bytes of real clips either probe or raise InputError, never
anything else, and never hang. Deterministic (derandomized) and short, so it runs in CI every time."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lookalike.nodes import media

from lookalike.errors import InputError

MEDIA = Path(__file__).resolve().parents[2] / ".." / "shared" / "media"
CLIPS = {name: (MEDIA / "shots" / name).read_bytes() for name in ("counter.mp4",)}
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(CLIPS[draw(st.sampled_from(sorted(CLIPS)))])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "zero", "cut", "insert", "dup", "header"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif op == "zero":
            n = draw(st.integers(1, 4096))
            data[at : at + n] = bytes(min(n, len(data) - at))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "dup":
            n = draw(st.integers(1, 2048))
            data[at:at] = data[at : at + n]
        else:  # the box headers at the start, where sizes and counts live
            i = draw(st.integers(0, min(255, len(data) - 1)))
            data[i] = draw(st.integers(0, 255))
        if not data:
            break
    return bytes(data)


def _probe(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.mp4"  # a new name each time: the probe cache never answers
    path.write_bytes(data)
    try:
        info = media.probe(path)
    except InputError as exc:
        assert str(exc)
        return
    finally:
        path.unlink()
    assert info.n_frames >= 0 and info.duration_s >= 0


@pytest.mark.timeout(120)
@FUZZ
@given(data=mutated())
def test_probe_of_mutated_clips_raises_input_error_or_succeeds(tmp_path, data):
    _probe(tmp_path, data)


@pytest.mark.timeout(60)
@FUZZ
@given(data=st.binary(max_size=4096))
def test_probe_of_random_bytes_raises_input_error(tmp_path, data):
    _probe(tmp_path, data)
