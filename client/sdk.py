"""The Lookalike client: domain words over the gRPC API. Imports neither torch, ray, cupy nor kernels."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from lookalike.v1 import coordinator_pb2, coordinator_pb2_grpc

from lookalike.errors import (
    CancelledError,
    ConfigError,
    InputError,
    LookalikeError,
    StoreError,
    UnreachableError,
    error_kind,
    from_grpc_code,
)

CHUNK = 1 << 20
_OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
TERMINAL = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    state: str
    stage: str
    progress: float
    error: str
    outputs: tuple[str, ...]

    @classmethod
    def _of(cls, m: coordinator_pb2.Project) -> Project:
        return cls(m.project_id, m.name, m.state, m.stage, m.progress, m.error, tuple(m.outputs))


@dataclass(frozen=True)
class ProgressEvent:
    project_id: str
    state: str
    stage: str
    done: int
    total: int
    message: str
    error: str


def _check_batch_item(k: int, item: dict) -> None:
    from lookalike.client.media import PHOTO_SUFFIXES, VIDEO_SUFFIXES

    for field, suffixes, what in (("sample", VIDEO_SUFFIXES, "a video"), ("subject", PHOTO_SUFFIXES, "a picture"),
                                  ("music", None, "a sound file"), ("script", None, "a text file")):
        value = item.get(field)
        if not value:
            continue
        path = Path(value)
        if not path.is_file():
            raise InputError(f"batch entry {k + 1}: {field} {value}: no such file", hint="nothing was uploaded")
        if suffixes is not None and path.suffix.lower() not in suffixes:
            raise InputError(f"batch entry {k + 1}: {field} {path.name} is not {what} (its suffix is "
                             f"{path.suffix or 'none'})", hint="nothing was uploaded; fix the manifest")
    for m in item.get("media") or ():
        if not Path(m).exists():
            raise InputError(f"batch entry {k + 1}: media {m}: no such file or folder", hint="nothing was uploaded")


def _safe_name(name: str) -> str:
    """An output name from the server, used as a file name here: a plain name, never a path."""
    if (not name or len(name) > 255 or name in (".", "..") or name.startswith(".") or not name.isprintable()
            or any(c in name for c in "/\\\x00:")):
        raise InputError(f"the coordinator named an output {name[:80]!r}, which is not a plain file name; "
                         "refusing to write it")
    return name


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
              grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Sends `authorization: Bearer TOKEN` with every call."""

    def __init__(self, token: str) -> None:
        self._md = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(details._replace(metadata=[*(details.metadata or ()), self._md]), request)

    intercept_unary_stream = intercept_unary_unary
    intercept_stream_unary = intercept_unary_unary
    intercept_stream_stream = intercept_unary_unary


def _error_of_project(p: Project) -> LookalikeError:
    """A failed project's error, as the class its message names (so the CLI exits with its code)."""
    import lookalike.errors as errors

    kind, _, message = p.error.partition(": ")
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, LookalikeError) and message:
        if cls is errors.ProviderError:
            return cls(message, transient=False)
        return cls(message)
    return LookalikeError(p.error or f"project {p.id} {p.state}")


class Client:
    """`Client("host:port").remake("sample.webm", out="out/")`.

    `token` is sent as `authorization: Bearer TOKEN` (needed when the farm has a tokens file); `ca` is
    the PEM file of the CA that signed the coordinator's certificate (TLS, verified; `server_name` if
    the certificate names another host). Left out, they come from LOOKALIKE_TOKEN, LOOKALIKE_TLS_CA and
    LOOKALIKE_TLS_SERVER_NAME.
    """

    def __init__(self, address: str, *, connect_timeout: float = 10.0, token: str | None = None,
                 ca: str | os.PathLike | None = None, server_name: str | None = None) -> None:
        from lookalike.settings import Settings

        env = Settings.from_env()
        token = token or env.token
        ca = ca or env.tls_ca
        server_name = server_name or env.tls_server_name
        if token and not (token.isascii() and token.isprintable() and " " not in token):
            raise ConfigError("the token holds spaces or characters that are not printable ASCII",
                              hint="pass the token exactly as the farm's tokens file has it")
        self.address = address
        options = list(_OPTIONS)
        if ca:
            try:
                pem = Path(ca).read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read the CA file {ca}: {exc.strerror or exc}",
                                  hint="pass the PEM file of the CA that signed the coordinator's certificate") from exc
            if server_name:
                options.append(("grpc.ssl_target_name_override", server_name))
            ch = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=pem), options=options)
        else:
            ch = grpc.insecure_channel(address, options=options)
        self._raw_channel = ch
        self._channel = grpc.intercept_channel(ch, _Bearer(token)) if token else ch
        try:
            grpc.channel_ready_future(self._channel).result(timeout=connect_timeout)
        except grpc.FutureTimeoutError as exc:
            self._channel.close()
            hint = "start one with `lookalike coordinator --listen HOST:PORT`, or check the address"
            if ca:
                hint += "; with TLS, also check that the coordinator serves TLS with a certificate your CA signed"
            raise UnreachableError(f"no coordinator answers at {address}", hint=hint) from exc
        self._stub = coordinator_pb2_grpc.CoordinatorStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as exc:
            raise self._mapped(exc) from None

    def _mapped(self, exc: grpc.RpcError) -> LookalikeError:
        """The error the server raised, by the one table (lookalike.errors.WIRE): its class and exit code
        from the kind in the trailing metadata, else from the status code; its message as sent. Two get
        words about this coordinator: a store outage (wait) and a bare UNAVAILABLE (nothing answered)."""
        code = exc.code().name if exc.code() else "UNKNOWN"
        kind = error_kind(exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None)
        details = exc.details() or code
        error = from_grpc_code(code, details, kind)
        if type(error) is StoreError:
            return StoreError(f"the coordinator at {self.address} cannot reach its store: {details}",
                              hint="the store is down or full; the project is paused and resumes by itself "
                                   "when the store is back; try again shortly")
        if type(error) is UnreachableError and kind is None and code == "UNAVAILABLE":
            return UnreachableError(f"the coordinator at {self.address} stopped answering: {details}")
        return error

    # -- files --------------------------------------------------------------------------------
    def upload(self, path: str | os.PathLike, kind: str = "sample") -> str:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file", hint="check the path")
        size = path.stat().st_size

        def chunks():
            yield coordinator_pb2.UploadChunk(
                header=coordinator_pb2.UploadHeader(filename=path.name, kind=kind, size=size)
            )
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(CHUNK), b""):
                    yield coordinator_pb2.UploadChunk(data=block)

        return self._call(self._stub.UploadSample, chunks()).upload_id

    def download(self, project_id: str, name: str, dest: str | os.PathLike) -> Path:
        """Write one output file atomically (a temp file beside dest, then rename)."""
        dest = Path(dest)
        _safe_name(name)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                # Chunk by chunk to the file: memory is one chunk, whatever the output's size.
                stream = self._stub.Download(coordinator_pb2.DownloadRequest(project_id=project_id, name=name))
                try:
                    for chunk in stream:
                        f.write(chunk.data)
                except grpc.RpcError as exc:
                    raise self._mapped(exc) from None
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return dest

    # -- projects -----------------------------------------------------------------------------
    def submit(self, sample: str | os.PathLike, *, subject: str | os.PathLike | None = None, name: str | None = None,
               keep_audio: bool = False, keep_video: bool = False, seed: int = 0, chunk_frames: int = 0,
               priority: int = 0, require: tuple[str, ...] = (), target: float = 0.0,
               max_rounds: int = 0, formats: tuple[str, ...] = (), resolution: str = "", aspect: str = "",
               media: list[str | os.PathLike] | tuple = (), music: str | os.PathLike | None = None,
               script: str | os.PathLike | None = None, text: tuple[str, ...] | list[str] = (),
               keep_media_audio: bool = False, on_skip: Callable[[str, str], None] | None = None,
               loudness: str = "") -> Project:
        """Start a remake and return at once.

        `media`: the user's clips and photos, files or folders (walked recursively; see client.media):
        the remake is cut from them (docs/footage.md). `music`: the user's track; `script`: a text file
        whose lines become the voice-over; `text`: on-screen lines in order. `on_skip(name, reason)`
        hears of every file left out before upload (the coordinator reports the ones it refuses).
        `loudness`: the sound's integrated loudness, "" (-14 LUFS), "sample" or a level like "-16"."""
        skipped: list = []

        def heard(name: str, reason: str) -> None:
            skipped.append(f"{name}: {reason}")
            if on_skip is not None:
                on_skip(name, reason)

        request = self._request(
            sample, subject=subject, name=name, keep_audio=keep_audio, keep_video=keep_video, seed=seed,
            chunk_frames=chunk_frames, priority=priority, require=require, target=target, max_rounds=max_rounds,
            formats=formats, resolution=resolution, aspect=aspect, media=media, music=music, script=script,
            text=text, keep_media_audio=keep_media_audio, on_skip=heard, loudness=loudness)
        try:
            return Project._of(self._call(self._stub.Remake, request))
        except InputError as exc:
            if skipped and request.media:  # the whole story: what the coordinator refused and what never left here
                exc.message = f"{exc.message}; also left out before upload: {'; '.join(skipped[:10])}"
                exc.args = (exc.message,)
            raise

    def _request(self, sample, *, subject=None, name=None, keep_audio=False, keep_video=False, seed=0,
                 chunk_frames=0, priority=0, require=(), target=0.0, max_rounds=0, formats=(), resolution="",
                 aspect="", media=(), music=None, script=None, text=(), keep_media_audio=False,
                 on_skip=None, loudness="") -> coordinator_pb2.RemakeRequest:
        from lookalike.client.media import collect_media

        files, skipped = collect_media(list(media)) if media else ([], [])
        for s in skipped:
            if on_skip is not None:
                on_skip(s.name, s.reason)
        if media and not files:
            reasons = "; ".join(f"{s.name}: {s.reason}" for s in skipped[:10]) or "nothing found"
            raise InputError(f"no clip or photo to use in {', '.join(map(str, media))} ({reasons})",
                             hint="give folders or files of video clips (MP4, MOV, WebM ...) and photos (JPEG, PNG ...)")
        words = ""
        if script is not None:
            try:
                words = Path(script).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"script {script} cannot be read as UTF-8 text: {exc}") from None
        sample_id = self.upload(sample, "sample")
        subject_id = self.upload(subject, "subject") if subject else ""
        items = [coordinator_pb2.MediaItem(upload_id=self.upload(f.path, "media"), name=f.name) for f in files]
        return coordinator_pb2.RemakeRequest(
            sample_upload_id=sample_id, subject_upload_id=subject_id, name=name or Path(sample).name,
            priority=priority, media=items, music_upload_id=self.upload(music, "music") if music else "",
            options=coordinator_pb2.RemakeOptions(keep_audio=keep_audio, keep_video=keep_video, seed=seed,
                                                  chunk_frames=chunk_frames, require=list(require),
                                                  target=target, max_rounds=max_rounds, formats=list(formats),
                                                  resolution=resolution, aspect=aspect, text=list(text),
                                                  script=words, keep_media_audio=keep_media_audio,
                                                  loudness=str(loudness or "")),
        )

    def submit_batch(self, items: list[dict]) -> list[Project]:
        """Submit several remakes at once: each item holds `sample` and optional submit() arguments.

        Every item's files are checked here before the first byte is uploaded (they exist, and a
        sample is a video file, a subject a picture, by suffix), so a bad entry uploads nothing."""
        for k, item in enumerate(items):
            _check_batch_item(k, item)
        reqs = [self._request(**item) for item in items]
        reply = self._call(self._stub.SubmitBatch, coordinator_pb2.BatchRequest(projects=reqs))
        return [Project._of(p) for p in reply.projects]

    def project(self, project_id: str) -> Project:
        return Project._of(self._call(self._stub.GetProject, coordinator_pb2.ProjectRef(project_id=project_id)))

    def projects(self) -> list[Project]:
        return [Project._of(p) for p in self._call(self._stub.ListProjects, coordinator_pb2.ListProjectsRequest()).projects]

    def cancel(self, project_id: str) -> Project:
        return Project._of(self._call(self._stub.Cancel, coordinator_pb2.ProjectRef(project_id=project_id)))

    def watch(self, project_id: str) -> Iterator[ProgressEvent]:
        stream = self._stub.WatchProject(coordinator_pb2.ProjectRef(project_id=project_id))
        try:
            for ev in stream:
                yield ProgressEvent(ev.project_id, ev.state, ev.stage, ev.done, ev.total, ev.message, ev.error)
        except grpc.RpcError as exc:
            raise self._mapped(exc) from None

    def wait(self, project_id: str, on_progress: Callable[[ProgressEvent], None] | None = None,
             *, outage_s: float = 300.0) -> Project:
        """Follow a project to its end. A coordinator that is briefly unavailable (restarting, or its
        state store is) is asked again for up to `outage_s` seconds before the error is raised."""
        import time

        deadline = None
        while True:
            try:
                for ev in self.watch(project_id):
                    deadline = None
                    if on_progress is not None:
                        on_progress(ev)
                    if ev.state in TERMINAL:
                        break
                p = self.project(project_id)
                break
            except (UnreachableError, StoreError):
                deadline = deadline or time.monotonic() + outage_s
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        if p.state == "failed":
            raise _error_of_project(p)
        if p.state == "cancelled":
            raise CancelledError(f"project {project_id} was cancelled")
        return p

    def fetch_outputs(self, project_id: str, out: str | os.PathLike) -> Path:
        """Download every output into `out`. Files land in a staging folder first and move in only when
        all have arrived, so `out` never holds a half-written remake."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        p = self.project(project_id)
        staging = Path(tempfile.mkdtemp(prefix=".lookalike-partial-", dir=out))
        try:
            for name in p.outputs:
                self.download(project_id, name, staging / _safe_name(name))
            for name in p.outputs:
                os.replace(staging / name, out / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return out

    def remake(self, sample, *, out=None, on_progress=None, **options) -> Project:
        """Upload, remake, wait and (with `out`) download every output."""
        p = self.submit(sample, **options)
        p = self.wait(p.id, on_progress)
        if out is not None:
            self.fetch_outputs(p.id, out)
        return p

    def analyze(self, sample) -> dict:
        upload_id = self.upload(sample, "sample")
        doc = self._call(self._stub.AnalyzeComprehensive,
                         coordinator_pb2.AnalyzeProjectRequest(sample_upload_id=upload_id), timeout=3600)
        return json.loads(doc.json)

    def document(self, project_id: str, kind: str) -> dict:
        fn = {"plan": self._stub.GetScenes, "similarity": self._stub.GetSimilarityReport}[kind]
        return json.loads(self._call(fn, coordinator_pb2.ProjectRef(project_id=project_id)).json)
