"""Uploads no project uses go after a grace period; those a project uses, or young ones, stay."""

from __future__ import annotations

import json

from lookalike.coordinator.uploads import UploadSweeper, referenced_keys

from lookalike.store import open_store


def _upload(store, upload_id: str, kind: str, created: float | None) -> str:
    key = f"uploads/{upload_id}/{kind}.mp4"
    store.put_bytes(key, b"x")
    meta = {"filename": "a.mp4", "kind": kind, "bytes": 1, "tenant": "t"}
    if created is not None:
        meta["created"] = created
    store.put_bytes(f"uploads/{upload_id}/meta.json", json.dumps(meta).encode())
    return key


def test_only_old_unused_uploads_are_removed(tmp_path):
    store = open_store(str(tmp_path / "store"))
    now = [1000.0]
    used_sample = _upload(store, "a" * 32, "sample", 0.0)
    used_media = _upload(store, "b" * 32, "media", 0.0)
    _upload(store, "c" * 32, "sample", 0.0)  # old, unused: goes
    _upload(store, "d" * 32, "media", 990.0)  # unused but young: stays
    _upload(store, "e" * 32, "music", None)  # no creation time: counts from first sight
    store.put_bytes(f"uploads/{'f' * 32}/sample.mp4", b"x")  # cut short before its meta.json
    options = [{"sample_key": used_sample, "subject_key": "", "media": [{"key": used_media, "name": "m"}]}]
    sweeper = UploadSweeper(store, lambda: options, grace_s=100.0, clock=lambda: now[0])
    assert sweeper.sweep() == ["c" * 32]
    left = {k.split("/")[1] for k in store.list("uploads/")}
    assert left == {"a" * 32, "b" * 32, "d" * 32, "e" * 32, "f" * 32}
    now[0] = 1200.0  # past the grace for the young one and for those first seen at 1000
    assert sweeper.sweep() == ["d" * 32, "e" * 32, "f" * 32]
    assert {k.split("/")[1] for k in store.list("uploads/")} == {"a" * 32, "b" * 32}


def test_referenced_keys_cover_every_kind():
    keys = referenced_keys([{"sample_key": "s", "subject_key": "", "music_key": "m",
                             "media": [{"key": "k1"}, {"key": "k2"}, "junk"]}])
    assert keys == {"s", "m", "k1", "k2"}
