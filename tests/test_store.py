"""The segment store against a real folder and a real S3 HTTP server (moto, on loopback)."""

from __future__ import annotations

import errno
import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from lookalike.errors import ConfigError, InputError, NotFoundError, StoreError
from lookalike.store import FileStore, S3Store, SegmentStore, open_store, validate_key

S3_KEYS = {"access_key": "testing", "secret_key": "testing"}  # moto accepts any


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SegmentStore:
    """An empty store of each kind: a folder under tmp_path, or a fresh bucket on the moto server."""
    if request.param == "file":
        return open_store((tmp_path / "store").as_uri())
    endpoint = request.getfixturevalue("s3_server")
    return open_store(f"s3://seg-{uuid.uuid4().hex[:12]}?endpoint={endpoint}", **S3_KEYS)


def test_put_get_roundtrip(store: SegmentStore, tmp_path: Path) -> None:
    payload = os.urandom(3 * (1 << 20) + 17)  # several copy chunks, not a multiple of one
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    store.put_file("p1/attempts/a1/seg-0000.mp4", src)
    store.put_bytes("p1/plan.json", b'{"schema": "lookalike.plan/1"}')

    dest = tmp_path / "out" / "seg.mp4"
    dest.parent.mkdir()
    store.get_file("p1/attempts/a1/seg-0000.mp4", dest)
    assert dest.read_bytes() == payload
    assert store.get_bytes("p1/plan.json") == b'{"schema": "lookalike.plan/1"}'
    assert store.size("p1/attempts/a1/seg-0000.mp4") == len(payload)
    assert store.exists("p1/plan.json") and not store.exists("p1/nothing.json")
    assert [p.name for p in dest.parent.iterdir()] == ["seg.mp4"]  # no temp file left beside dest


def test_put_replaces(store: SegmentStore) -> None:
    store.put_bytes("k/v.bin", b"first")
    store.put_bytes("k/v.bin", b"second, longer")
    assert store.get_bytes("k/v.bin") == b"second, longer"
    assert store.list("k/") == ["k/v.bin"]


def test_list_prefix_sorted(store: SegmentStore) -> None:
    for key in ["p2/x.bin", "p1/b/2.bin", "p1/a.bin", "p10/z.bin", "p1/b/1.bin"]:
        store.put_bytes(key, key.encode())
    assert store.list("") == ["p1/a.bin", "p1/b/1.bin", "p1/b/2.bin", "p10/z.bin", "p2/x.bin"]
    assert store.list("p1/") == ["p1/a.bin", "p1/b/1.bin", "p1/b/2.bin"]
    assert store.list("p1") == ["p1/a.bin", "p1/b/1.bin", "p1/b/2.bin", "p10/z.bin"]  # string prefix
    assert store.list("p1/b/") == ["p1/b/1.bin", "p1/b/2.bin"]
    assert store.list("nothing/") == []


def test_copy_delete(store: SegmentStore) -> None:
    store.put_bytes("attempts/a1/seg.mp4", b"attempt one")
    store.copy("attempts/a1/seg.mp4", "segments/job1.mp4")
    assert store.get_bytes("segments/job1.mp4") == b"attempt one"
    store.delete("attempts/a1/seg.mp4")
    store.delete("attempts/a1/seg.mp4")  # idempotent
    assert store.list("") == ["segments/job1.mp4"]
    with pytest.raises(NotFoundError, match="attempts/a1/seg.mp4"):
        store.copy("attempts/a1/seg.mp4", "segments/job2.mp4")


def test_missing_key(store: SegmentStore, tmp_path: Path) -> None:
    dest = tmp_path / "dest.bin"
    for call in (
        lambda: store.get_bytes("no/such.bin"),
        lambda: store.get_file("no/such.bin", dest),
        lambda: store.size("no/such.bin"),
    ):
        with pytest.raises(NotFoundError, match="no/such.bin") as info:
            call()
        assert store.url in str(info.value)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "store"])  # no partial file


BAD_KEYS = [
    "../escape.bin",
    "a/../../escape.bin",
    "..",
    ".",
    "a/./b",
    "/etc/passwd",
    "a\\b",
    "..\\escape",
    "a//b",
    "a/",
    "",
    "a/b c",
    "a/b\x00",
    "ä/b",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_validate_key_rejects(key: str) -> None:
    with pytest.raises(InputError):
        validate_key(key)


def test_traversal_impossible(store: SegmentStore, tmp_path: Path) -> None:
    outside = tmp_path / "escape.bin"
    src = tmp_path / "src.bin"
    src.write_bytes(b"x")
    for key in BAD_KEYS:
        calls = [
            (store.put_bytes, (key, b"x")),
            (store.put_file, (key, src)),
            (store.get_bytes, (key,)),
            (store.get_file, (key, tmp_path / "dest.bin")),
            (store.exists, (key,)),
            (store.size, (key,)),
            (store.delete, (key,)),
            (store.copy, ("ok.bin", key)),
            (store.copy, (key, "ok.bin")),
            (store.local_path, (key,)),
        ]
        for method, args in calls:
            with pytest.raises(InputError):
                method(*args)
    with pytest.raises(InputError):
        store.list("../")
    assert not outside.exists()
    assert store.list("") == []


def test_local_path(store: SegmentStore, tmp_path: Path) -> None:
    store.put_bytes("a/b.bin", b"in place")
    path = store.local_path("a/b.bin")
    if isinstance(store, FileStore):
        assert path is not None and Path(path).read_bytes() == b"in place"
        assert Path(path).is_relative_to(tmp_path / "store")
    else:
        assert path is None


def test_file_put_disk_full_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk filling up mid-copy: StoreError naming store and key, the old object intact, no temp file."""
    store = FileStore(tmp_path / "store")
    store.put_bytes("p/seg.bin", b"old")
    src = tmp_path / "src.bin"
    src.write_bytes(b"new content " * 1000)

    def copy_then_fill_disk(fsrc, fdst, length=0):
        fdst.write(fsrc.read(100))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("lookalike.store.shutil.copyfileobj", copy_then_fill_disk)
    with pytest.raises(StoreError, match="'p/seg.bin'") as info:
        store.put_file("p/seg.bin", src)
    assert store.url in str(info.value) and "disk" in str(info.value)
    assert store.get_bytes("p/seg.bin") == b"old"
    assert sorted(p.name for p in (tmp_path / "store" / "p").iterdir()) == ["seg.bin"]
    with pytest.raises(StoreError):
        store.copy("p/seg.bin", "q/seg.bin")
    assert store.list("") == ["p/seg.bin"]


def test_put_file_missing_source(store: SegmentStore, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.bin"):
        store.put_file("k.bin", tmp_path / "nope.bin")
    with pytest.raises(InputError):
        store.put_file("k.bin", tmp_path)  # a folder is not a file
    assert not store.exists("k.bin")


def test_file_put_disk_error_is_store_error(tmp_path: Path) -> None:
    """An OS error on write (here: the key's folder is a file) is a StoreError naming the key."""
    store = FileStore(tmp_path / "store")
    store.put_bytes("a", b"a file where a folder is needed")
    with pytest.raises(StoreError, match="'a/b.bin'") as info:
        store.put_bytes("a/b.bin", b"x")
    assert store.url in str(info.value) and "writable" in str(info.value)


def test_get_file_atomic_when_download_fails(s3_server: str, tmp_path: Path) -> None:
    """A download cut off mid-stream leaves dest as it was, with no temp file beside it."""
    store = open_store(f"s3://seg-{uuid.uuid4().hex[:12]}?endpoint={s3_server}", **S3_KEYS)
    assert isinstance(store, S3Store)
    store.put_bytes("big.bin", os.urandom(3 << 20))
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"previous")

    real = store._stream

    class Broken:
        def __init__(self, response) -> None:
            self._response = response

        def stream(self, n: int):
            yield next(self._response.stream(n))
            raise OSError("connection reset by peer")

        def close(self) -> None:
            self._response.close()

        def release_conn(self) -> None:
            self._response.release_conn()

    store._stream = lambda key: Broken(real(key))  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="big.bin"):
        store.get_file("big.bin", dest)
    assert dest.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["dest.bin"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_s3_endpoint_down(tmp_path: Path) -> None:
    port = _closed_port()
    t0 = time.perf_counter()
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}") as info:
        open_store(f"s3://bucket?endpoint=http://127.0.0.1:{port}", timeout_s=1, retries=1, **S3_KEYS)
    assert "reachable" in str(info.value)
    assert time.perf_counter() - t0 < 5


def test_s3_prefix(s3_server: str) -> None:
    bucket = f"seg-{uuid.uuid4().hex[:12]}"
    store = open_store(f"s3://{bucket}/tenant-a?endpoint={s3_server}", **S3_KEYS)
    store.put_bytes("p/x.bin", b"x")
    plain = open_store(f"s3://{bucket}?endpoint={s3_server}", **S3_KEYS)
    assert plain.list("") == ["tenant-a/p/x.bin"]
    assert store.list("") == ["p/x.bin"]


@pytest.mark.parametrize(
    "url",
    ["ftp://host/x", "s3://?endpoint=http://127.0.0.1:1", "s3://b?endpoint=127.0.0.1:9000", "file://host/x"],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)


def test_plain_path(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "plain"))
    store.put_bytes("x.bin", b"1")
    assert (tmp_path / "plain" / "x.bin").read_bytes() == b"1"
    assert store.url == (tmp_path / "plain").as_uri()


def test_read_range_reads_only_what_is_asked(store: SegmentStore) -> None:
    """Download streams an output in 1 MiB reads: every backend returns exactly the range asked for,
    b"" past the end, and NotFoundError for a missing key."""
    data = bytes(range(256)) * 4096  # 1 MiB
    store.put_bytes("projects/p/out/final.mp4", data)
    assert store.read_range("projects/p/out/final.mp4", 0, 10) == data[:10]
    assert store.read_range("projects/p/out/final.mp4", 1000, 5000) == data[1000:6000]
    assert store.read_range("projects/p/out/final.mp4", len(data) - 3, 100) == data[-3:]
    assert store.read_range("projects/p/out/final.mp4", len(data), 100) == b""
    chunks, offset = [], 0
    while chunk := store.read_range("projects/p/out/final.mp4", offset, 300_000):
        chunks.append(chunk)
        offset += len(chunk)
    assert b"".join(chunks) == data and [len(c) for c in chunks] == [300_000] * 3 + [len(data) - 900_000]
    with pytest.raises(NotFoundError):
        store.read_range("projects/p/out/none.mp4", 0, 10)
