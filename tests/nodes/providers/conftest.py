"""Fixtures for the provider tests: a fake API server per test and a small test clip.

`api`: a FakeAPI on 127.0.0.1 (stopped after the test). `clip_bytes`: a 320x180, 24 fps, 24-frame
H.264 MP4 (frame i a flat grey of level 40 + 6 i with a red band on the left third), made once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from provider_fakes import FakeAPI, write_clip


@pytest.fixture
def api() -> Iterator[FakeAPI]:
    server = FakeAPI()
    yield server
    server.close()


@pytest.fixture(scope="session")
def clip_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4").read_bytes()
