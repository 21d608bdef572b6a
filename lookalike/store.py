"""The segment store: where nodes and the coordinator put and fetch media by key.

Two backends behind one interface, picked by URL in `open_store`:

    file:///abs/folder  (or a plain path)      embedded mode; nodes read files in place (`local_path`)
    s3://BUCKET[/prefix]?endpoint=http://host:9000   MinIO or any S3 API, through the `minio` SDK

Keys are forward-slash relative paths whose segments use only [A-Za-z0-9._-] ('.' and '..'
excluded), so a key can never leave the store's folder or bucket prefix. Writes are atomic: a
reader sees the old object, the new one, or none, never a partial file. Missing keys raise
NotFoundError; every backend failure (network, permissions, a full disk) raises StoreError naming
the store, the key and what to check.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

from lookalike.errors import ConfigError, InputError, NotFoundError, StoreError

__all__ = ["FileStore", "S3Store", "SegmentStore", "open_store", "validate_key"]

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
_PREFIX_TAIL = re.compile(r"^[A-Za-z0-9._-]*$")
_CHUNK = 1 << 20


def validate_key(key: str) -> str:
    """Return `key` if it is a safe store key, else raise InputError saying why."""
    if not isinstance(key, str) or not key:
        raise InputError(f"store key {key!r} is empty", hint="keys look like 'projects/p1/seg-0001.mp4'")
    if "\\" in key or key.startswith("/") or key.endswith("/"):
        raise InputError(
            f"store key {key!r} is not a relative forward-slash path",
            hint="use 'a/b/c.ext' with no leading or trailing slash and no backslashes",
        )
    for segment in key.split("/"):
        if segment in ("", ".", "..") or not _SEGMENT.match(segment):
            raise InputError(
                f"store key {key!r} has a bad segment {segment!r}",
                hint="segments use letters, digits, '.', '_' and '-' only, and may not be empty, '.' or '..'",
            )
    return key


def _validate_prefix(prefix: str) -> str:
    """A list() prefix: whole key segments, then optionally a partial last one ('' lists all)."""
    if prefix == "":
        return prefix
    head, _, tail = prefix.rpartition("/")
    if head:
        validate_key(head)
    if not _PREFIX_TAIL.match(tail) or tail in (".", ".."):
        raise InputError(f"store prefix {prefix!r} has a bad last segment {tail!r}")
    return prefix


class SegmentStore(ABC):
    """Put and fetch media by key. Required: every abstract method; `local_path` may return None."""

    #: the URL this store was opened with (without credentials)
    url: str

    @abstractmethod
    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        """Store the file at `path` under `key`, replacing any object there, atomically."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_file(self, key: str, dest_path: str | os.PathLike[str]) -> None:
        """Write the object to `dest_path` atomically (no partial file is ever left at dest)."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes of the object from `offset` (b"" past its end), without reading the rest:
        how a download streams a large output in bounded memory. Backends override this default."""
        return self.get_bytes(key)[offset : offset + length]

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every key that starts with `prefix`, sorted."""

    @abstractmethod
    def copy(self, src_key: str, dst_key: str) -> None:
        """Copy an object inside the store (the promotion of an attempt's segment), atomically."""

    def local_path(self, key: str) -> str | None:
        """The object's real file path when nodes can read it in place; None when they must fetch it."""
        validate_key(key)
        return None

    def _missing(self, key: str) -> NotFoundError:
        return NotFoundError(
            f"no object {key!r} in the segment store {self.url}",
            hint="check the key; list(prefix) shows the keys that exist",
        )


@contextmanager
def _atomic_dest(dest: Path, what: str) -> Iterator[IO[bytes]]:
    """A temp file next to `dest`, renamed onto it only when the block completes without error."""
    # The temp name holds '~', which no key may contain, so list() never shows a half-written file.
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp~", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class FileStore(SegmentStore):
    """A folder on a local or shared file system."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._os_error("create the store folder", None, exc) from exc

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _os_error(self, doing: str, key: str | None, exc: OSError) -> StoreError:
        where = f"key {key!r} in " if key else ""
        return StoreError(
            f"could not {doing} ({where}the segment store {self.url}): {exc.strerror or exc}",
            hint=f"check that {self.root} exists, is writable and its disk is not full",
        )

    @contextmanager
    def _writing(self, key: str) -> Iterator[IO[bytes]]:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _atomic_dest(path, key) as fh:
                yield fh
        except OSError as exc:
            raise self._os_error("write", key, exc) from exc

    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        self._path(key)
        _check_source(key, path)
        with open(path, "rb") as src, self._writing(key) as fh:
            shutil.copyfileobj(src, fh, _CHUNK)

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._writing(key) as fh:
            fh.write(data)

    def get_file(self, key: str, dest_path: str | os.PathLike[str]) -> None:
        path = self._path(key)
        dest = Path(dest_path)
        try:
            with open(path, "rb") as src, _atomic_dest(dest, key) as fh:
                shutil.copyfileobj(src, fh, _CHUNK)
        except FileNotFoundError as exc:
            if not path.is_file():
                raise self._missing(key) from exc
            raise StoreError(f"could not write {dest}: {exc}", hint="check that its folder exists") from exc
        except OSError as exc:
            raise self._os_error(f"copy to {dest}", key, exc) from exc

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise self._missing(key) from exc
        except OSError as exc:
            raise self._os_error("read", key, exc) from exc

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                return fh.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise self._missing(key) from exc
        except OSError as exc:
            raise self._os_error("read", key, exc) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise self._missing(key)
        return path.stat().st_size

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise self._os_error("delete", key, exc) from exc

    def list(self, prefix: str = "") -> list[str]:
        _validate_prefix(prefix)
        head = prefix.rpartition("/")[0]
        base = self.root.joinpath(*head.split("/")) if head else self.root
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in files:
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix) and _is_key(key):
                    keys.append(key)
        return sorted(keys)

    def copy(self, src_key: str, dst_key: str) -> None:
        src = self._path(src_key)
        self._path(dst_key)
        try:
            fh_src = open(src, "rb")  # noqa: SIM115 - closed by the with below
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise self._missing(src_key) from exc
        with fh_src, self._writing(dst_key) as fh:
            shutil.copyfileobj(fh_src, fh, _CHUNK)

    def local_path(self, key: str) -> str | None:
        path = self._path(key)
        if not path.is_file():
            raise self._missing(key)
        return str(path)


def _check_source(key: str, path: str | os.PathLike[str]) -> None:
    if not os.path.isfile(path):
        raise InputError(
            f"cannot store {key!r}: {os.fspath(path)!r} is not a file", hint="check the path to upload"
        )


def _is_key(key: str) -> bool:
    try:
        validate_key(key)
    except InputError:
        return False
    return True


class S3Store(SegmentStore):
    """A bucket (and optional key prefix) on MinIO or any S3 API, created if absent."""

    def __init__(
        self,
        bucket: str,
        endpoint: str,
        *,
        access_key: str | None,
        secret_key: str | None,
        prefix: str = "",
        region: str | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
    ) -> None:
        import urllib3
        from minio import Minio

        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"S3 endpoint {endpoint!r} is not an http(s)://host:port address",
                hint="write the store URL as s3://BUCKET?endpoint=http://HOST:PORT",
            )
        self.bucket = bucket
        self.endpoint = endpoint
        self._prefix = prefix
        query = f"?endpoint={endpoint}"
        self.url = f"s3://{bucket}/{prefix.rstrip('/')}{query}" if prefix else f"s3://{bucket}{query}"
        # Short, bounded retries: a store that is down must fail in seconds, not minutes.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
            retries=urllib3.Retry(
                total=retries,
                connect=retries,
                read=retries,
                backoff_factor=0.1,
                status_forcelist=(500, 502, 503, 504),
            ),
            maxsize=16,
        )
        self._client = Minio(
            parts.netloc,
            access_key=access_key,
            secret_key=secret_key,
            secure=parts.scheme == "https",
            region=region or "us-east-1",
            http_client=http,
        )
        with self._errors("create the bucket", None):
            if not self._client.bucket_exists(bucket):
                try:
                    self._client.make_bucket(bucket)
                except Exception as exc:  # another opener may have created it in between
                    if getattr(exc, "code", None) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

    def _name(self, key: str) -> str:
        return self._prefix + validate_key(key)

    @contextmanager
    def _errors(self, doing: str, key: str | None) -> Iterator[None]:
        from minio.error import MinioException, S3Error
        from urllib3.exceptions import HTTPError

        try:
            yield
        except S3Error as exc:
            if key is not None and exc.code in ("NoSuchKey", "NoSuchObject"):
                raise self._missing(key) from exc
            raise self._error(doing, key, f"{exc.code}: {exc.message}") from exc
        except (MinioException, HTTPError, OSError, ValueError) as exc:
            raise self._error(doing, key, f"{type(exc).__name__}: {exc}") from exc

    def _error(self, doing: str, key: str | None, detail: str) -> StoreError:
        where = f"key {key!r} in " if key else ""
        return StoreError(
            f"could not {doing} ({where}the segment store {self.url}): {detail}",
            hint=f"check that {self.endpoint} is up and reachable, the keys are right and bucket "
            f"{self.bucket!r} is writable",
        )

    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        name = self._name(key)
        _check_source(key, path)
        with self._errors("upload", key):
            # An S3 PUT (single or multipart) becomes visible only once complete: atomic for readers.
            self._client.fput_object(self.bucket, name, os.fspath(path))

    def put_bytes(self, key: str, data: bytes) -> None:
        import io

        name = self._name(key)
        with self._errors("upload", key):
            self._client.put_object(self.bucket, name, io.BytesIO(data), len(data))

    def _stream(self, key: str) -> Any:
        return self._client.get_object(self.bucket, self._name(key))

    def get_file(self, key: str, dest_path: str | os.PathLike[str]) -> None:
        dest = Path(dest_path)
        self._name(key)
        with self._errors("download", key):
            response = self._stream(key)
            try:
                with _atomic_dest(dest, key) as fh:
                    for chunk in response.stream(_CHUNK):
                        fh.write(chunk)
            finally:
                response.close()
                response.release_conn()

    def get_bytes(self, key: str) -> bytes:
        self._name(key)
        with self._errors("download", key):
            response = self._stream(key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        self._name(key)
        if length <= 0 or offset >= self.size(key):
            return b""  # S3 refuses a range that starts past the end
        with self._errors("download", key):
            response = self._client.get_object(self.bucket, self._name(key), offset=offset, length=length)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def _stat(self, key: str) -> Any:
        with self._errors("look up", key):
            return self._client.stat_object(self.bucket, self._name(key))

    def exists(self, key: str) -> bool:
        try:
            self._stat(key)
        except NotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._stat(key).size)

    def delete(self, key: str) -> None:
        name = self._name(key)
        with self._errors("delete", key):
            self._client.remove_object(self.bucket, name)

    def list(self, prefix: str = "") -> list[str]:
        _validate_prefix(prefix)
        with self._errors(f"list prefix {prefix!r}", None):
            objects = self._client.list_objects(self.bucket, prefix=self._prefix + prefix, recursive=True)
            names = [obj.object_name for obj in objects]
        return sorted(n[len(self._prefix) :] for n in names if n is not None)

    def copy(self, src_key: str, dst_key: str) -> None:
        from minio.commonconfig import CopySource

        src, dst = self._name(src_key), self._name(dst_key)
        with self._errors(f"copy to {dst_key!r}", src_key):
            # Server-side copy: one request, atomic for readers (single-request limit 5 GiB per object).
            self._client.copy_object(self.bucket, dst, CopySource(self.bucket, src))


def open_store(
    url: str,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    timeout_s: float = 10.0,
    retries: int = 3,
) -> SegmentStore:
    """Open the segment store at `url`: `file:///abs/folder`, a plain path, or
    `s3://BUCKET[/prefix]?endpoint=http://HOST:PORT[&region=R]`.

    Credentials come from the caller (settings), never from the environment. `timeout_s` and
    `retries` bound each S3 request, so a store that is down fails fast with a StoreError."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"file store URL {url!r} names a host", hint="write file:///abs/folder")
        return FileStore(unquote(parts.path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError(f"S3 store URL {url!r} has no bucket", hint="write s3://BUCKET?endpoint=...")
        query = parse_qs(parts.query)
        endpoints = query.get("endpoint", ["https://s3.amazonaws.com"])
        prefix = parts.path.strip("/")
        if prefix:
            validate_key(prefix)
            prefix += "/"
        return S3Store(
            parts.netloc,
            endpoints[0],
            access_key=access_key,
            secret_key=secret_key,
            prefix=prefix,
            region=query.get("region", [None])[0],
            timeout_s=timeout_s,
            retries=retries,
        )
    if parts.scheme == "" or (len(parts.scheme) == 1 and os.name == "nt"):
        return FileStore(url)
    raise ConfigError(
        f"unsupported segment store URL {url!r}",
        hint="use file:///abs/folder, a folder path, or s3://BUCKET?endpoint=http://HOST:PORT",
    )
