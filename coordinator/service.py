"""The coordinator process: the public Coordinator API and the NodeRegistry, as thin gRPC adapters over
the Engine, the state store and the segment store.

Every call acts for the caller's tenant (coordinator/auth.py): projects and uploads of other tenants
do not exist for it (NOT_FOUND, the same answer as for an id never given out)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import uuid

import grpc
from lookalike.coordinator.auth import (
    PUBLIC_SERVICE,
    REFLECTION_SERVICE,
    Auth,
    AuthInterceptor,
    LimitError,
    RateLimiter,
    check_id,
    clean_label,
)
from lookalike.coordinator.engine import EXTRA_FORMATS, OUTPUT_NAMES, Engine, output_names
from lookalike.coordinator.planner import parse_loudness
from lookalike.v1 import common_pb2, coordinator_pb2, coordinator_pb2_grpc

from lookalike.errors import InputError, LookalikeError, NotFoundError
from lookalike.grpcutil import KIB, MIB, Limits, make_control_server, make_server, mapped, server_tls
from lookalike.obs import get_logger, init_coordinator_metrics, serve_metrics

log = get_logger("coordinator")
CHUNK = 1 << 20
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")
_CAPABILITY = re.compile(r"[a-z0-9_-]{1,32}")
CODECS = ("libx264", "libx265", "libvpx-vp9", "libaom-av1")
MAX_PLAN_BYTES = 8 << 20
MAX_BATCH = 256
UPLOAD_KINDS = ("sample", "subject", "media", "music")
MAX_JSON_DEPTH = 64  # effects, transitions, plans: far shallower; deeper is an attack on the parser
CONTROL_PORT_KEY = "lookalike-control-port"  # Register's trailing metadata: where heartbeats go
TERMINAL = ("done", "failed", "cancelled")
# The largest request message of each method, checked before it is decoded (a message is decoded
# whole, so this bounds the memory a request can take). Uploads come in 1 MiB chunks.
_C = "/lookalike.v1.Coordinator/"
REQUEST_BYTES = {
    _C + "UploadSample": CHUNK + 64 * KIB,
    _C + "Remake": 256 * KIB,
    _C + "SubmitBatch": 4 * MIB,
    _C + "UpdateScenes": MAX_PLAN_BYTES + 2 * MIB,  # past MAX_PLAN_BYTES the handler says why, in plan words
    _C + "ApplyEffects": 256 * KIB,
    _C + "AddTransitions": 256 * KIB,
    _C + "ChatPlan": 64 * KIB,
}
DEFAULT_REQUEST_BYTES = 16 * KIB  # ids, names, small options


def request_json(text: str, what: str, *, max_depth: int = MAX_JSON_DEPTH):
    """JSON from a request: malformed, too deeply nested (which would exhaust the parser's stack, or
    any code that walks it) or holding NUL is InputError (INVALID_ARGUMENT), never a crash."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{what} is not valid JSON: {str(exc)[:200]}") from None
    stack = [(doc, 1)]
    while stack:
        x, depth = stack.pop()
        if depth > max_depth:
            raise InputError(f"{what} is nested more than {max_depth} levels deep: send a flat document")
        if isinstance(x, dict):
            stack.extend((v, depth + 1) for v in x.values())
        elif isinstance(x, list):
            stack.extend((v, depth + 1) for v in x)
    return doc


def _check_repeated(req: coordinator_pb2.RemakeRequest, max_media: int) -> None:
    """Repeated fields capped before anything walks them (the message size alone allows ~100k entries)."""
    o = req.options
    for name, n, cap in (("formats", len(o.formats), 8), ("require", len(o.require), 16), ("text", len(o.text), 200),
                         ("media", len(req.media), max_media)):
        if n > cap:
            raise LimitError(f"{n} entries in {name}; a remake takes at most {cap}")


def _project_msg(p) -> coordinator_pb2.Project:
    state = getattr(p.state, "value", p.state)
    return coordinator_pb2.Project(
        project_id=p.id, name=p.name or "", state=state, stage=p.stage or "", progress=p.progress or 0.0,
        error=p.error or "", outputs=output_names(p.options) if state == "done" else [], created=p.created_at,
        updated=p.updated_at,
    )


class WatchHub:
    """Fans progress events out to every watch of the coordinator from one thread.

    A watch used to be a thread blocked in Engine.watch, which notices a client that left only when it
    next has an event to send: 200 watches of one quiet project held 200 threads for good. Here a watch
    is an asyncio queue; this thread copies each watched project's new events (Engine.emit's list, read
    under its lock) into the queues every POLL_S, and asks the state store every STATE_S whether a
    quiet project has ended. A watch whose client goes is cancelled where it awaits its queue, at once."""

    POLL_S = 0.1
    STATE_S = 1.0
    MAX_BACKLOG = 1000  # events a watch may have unread before it is ended (its client is not reading)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._subs: dict[str, set] = {}
        self._seen: dict[str, int] = {}
        self._checked: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self) -> int:
        with self._lock:
            return sum(map(len, self._subs.values()))

    def _join(self, project_id: str, sub) -> None:
        with self._lock:
            if project_id not in self._subs:
                w = self.engine._w(project_id)  # noqa: SLF001 - the engine has no subscription API (yet)
                with w.cond:
                    self._seen[project_id] = len(w.events)
                self._subs[project_id] = set()
                self._checked[project_id] = time.monotonic()
            self._subs[project_id].add(sub)
            if self._thread is None:
                self._thread = threading.Thread(target=self._pump, name="watch-hub", daemon=True)
                self._thread.start()

    def _leave(self, project_id: str, sub) -> None:
        with self._lock:
            subs = self._subs.get(project_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[project_id], self._seen[project_id], self._checked[project_id]

    async def follow(self, project_id: str):
        """The project's present state, then its events until it ends."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        sub = (loop, queue)
        self._join(project_id, sub)
        try:
            p = await asyncio.to_thread(self.engine.state.get_project, project_id)
            yield {"project_id": project_id, "stage": p.stage or p.state.value, "done": 0, "total": 0, "message": "",
                   "state": p.state.value, "time": time.time(), "error": p.error or ""}
            if p.state.value in TERMINAL:
                yield _final(p)
                return
            while True:
                ev = await queue.get()
                if ev is None:
                    raise LimitError(f"over {self.MAX_BACKLOG} events went unread: watch again and read them")
                yield ev
                if ev["state"] in TERMINAL:
                    return
        finally:
            self._leave(project_id, sub)

    def _pump(self) -> None:
        while not self._stop.wait(self.POLL_S):
            with self._lock:
                watched = {pid: list(subs) for pid, subs in self._subs.items()}
            now = time.monotonic()
            for pid, subs in watched.items():
                w = self.engine._w(pid)  # noqa: SLF001
                with self._lock, w.cond:
                    if pid not in self._seen:
                        continue
                    new = w.events[self._seen[pid]:]
                    self._seen[pid] = len(w.events)
                    due = not new and now - self._checked[pid] >= self.STATE_S
                    if new or due:
                        self._checked[pid] = now
                if due:
                    try:
                        p = self.engine.state.get_project(pid)
                    except LookalikeError:  # an outage pauses the watch; it does not end it
                        continue
                    if p.state.value in TERMINAL:
                        new = [_final(p)]
                for ev in new:
                    for loop, queue in subs:
                        loop.call_soon_threadsafe(self._put, queue, ev)

    def _put(self, queue: asyncio.Queue, ev: dict) -> None:
        queue.put_nowait(None if queue.qsize() >= self.MAX_BACKLOG else ev)

    def stop(self) -> None:
        self._stop.set()


def _final(p) -> dict:
    return {"project_id": p.id, "stage": p.state.value, "done": 1, "total": 1, "message": "",
            "state": p.state.value, "time": time.time(), "error": p.error or ""}


@mapped("Coordinator")
class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServicer):
    def __init__(self, engine: Engine, settings, auth: Auth | None = None) -> None:
        self.engine = engine
        self.state = engine.state
        self.store = engine.store
        self.settings = settings
        self.auth = auth or Auth.from_settings(settings)
        self.watches = WatchHub(engine)

    # -- uploads and downloads ----------------------------------------------------------------
    async def UploadSample(self, request_iterator, context):
        """A header, then data chunks: read on the server's event loop (an upload that sends nothing holds
        no thread, and ends after settings.stream_idle_s); disk and store writes in the I/O pool."""
        tenant = self.auth.tenant(context)
        first = await anext(request_iterator, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InputError("an upload starts with a header message (filename, kind, size)")
        h = first.header
        if h.kind not in UPLOAD_KINDS:
            raise InputError(f"upload kind must be one of {', '.join(UPLOAD_KINDS)}, not {clean_label(h.kind, 40)!r}")
        if h.size < 0:
            raise InputError(f"the header announces {h.size} bytes: send the file's size (or 0 if unknown)")
        if h.size > self.settings.max_upload_bytes:
            raise LimitError(f"the file is {h.size} bytes; this farm takes at most {self.settings.max_upload_bytes}",
                             hint="trim or re-encode the clip")
        # The user's filename is a label only: its suffix (checked) names the stored file, nothing else.
        name = clean_label(os.path.basename(h.filename.replace("\\", "/")), 255) or f"{h.kind} upload"
        suffix = os.path.splitext(name)[1].lower()
        if not _SUFFIX.fullmatch(suffix or ""):
            suffix = ".bin"
        upload_id = uuid.uuid4().hex
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                async for msg in request_iterator:
                    size += len(msg.data)
                    if msg.WhichOneof("part") != "data":
                        raise InputError("an upload sends one header, then data chunks only")
                    if size > self.settings.max_upload_bytes:
                        raise LimitError(f"the upload passed the limit of {self.settings.max_upload_bytes} bytes",
                                         hint="trim or re-encode the clip")
                    digest.update(msg.data)
                    await asyncio.to_thread(f.write, msg.data)
            if h.size and size != h.size:
                raise InputError(f"the upload ended after {size} of {h.size} bytes: send it again")
            if size == 0:
                raise InputError(f"{name} is empty (0 bytes): pick the file again")
            await asyncio.to_thread(self.store.put_file, f"uploads/{upload_id}/{h.kind}{suffix}", tmp)
            # meta.json last: an upload without it (cut short) is never usable.
            meta = {"filename": name, "kind": h.kind, "bytes": size, "tenant": tenant, "sha256": digest.hexdigest(),
                    "created": time.time()}
            await asyncio.to_thread(self.store.put_bytes, f"uploads/{upload_id}/meta.json", json.dumps(meta).encode())
        finally:
            os.unlink(tmp)
        return coordinator_pb2.UploadReply(upload_id=upload_id, bytes=size, sha256=digest.hexdigest())

    def _upload_key(self, upload_id: str, kind: str, tenant: str) -> str:
        """The store key of the caller's own finished upload of this kind; NotFoundError for anything else."""
        return self._upload(upload_id, kind, tenant)[0]

    def _upload(self, upload_id: str, kind: str, tenant: str) -> tuple[str, dict]:
        """(store key, meta.json) of the caller's own finished upload of this kind (see _upload_key)."""
        missing = NotFoundError(f"no {kind} upload {clean_label(upload_id, 80)!r}: upload it first")
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id or ""):
            raise missing
        try:
            meta = json.loads(self.store.get_bytes(f"uploads/{upload_id}/meta.json"))
        except (NotFoundError, ValueError):
            raise missing from None
        if not isinstance(meta, dict) or meta.get("tenant", "default") != tenant or meta.get("kind") != kind:
            raise missing
        keys = [k for k in self.store.list(f"uploads/{upload_id}/") if not k.endswith("/meta.json")]
        if not keys:
            raise missing
        return keys[0], meta

    def _user_words(self, exc: LookalikeError, key: str) -> LookalikeError:
        """The error with the store's path of an upload replaced by the name the user gave the file."""
        try:
            name = json.loads(self.store.get_bytes(key.rsplit("/", 1)[0] + "/meta.json"))["filename"]
        except (LookalikeError, ValueError, KeyError):
            return exc
        pattern = re.compile(r"[^\s'\"()]*" + re.escape(key))
        exc.message = pattern.sub(lambda _: name, exc.message)  # a function: the name is never a template
        exc.args = (exc.message,)
        return exc

    def _check(self, key: str, check: str) -> dict:
        try:
            return self.engine.probe(key, check=check)
        except LookalikeError as exc:
            raise self._user_words(exc, key) from None

    def _output_key(self, request, context) -> tuple[str, int]:
        p = self._project(request.project_id, context)
        if request.name not in (*OUTPUT_NAMES, *filter(None, EXTRA_FORMATS.values())):
            raise InputError(f"no output named {clean_label(request.name, 80)!r}; outputs are {', '.join(OUTPUT_NAMES)}")
        key = self.engine.output(p.id, request.name)
        if not self.store.exists(key):
            raise NotFoundError(f"{request.name} of project {p.id} is not there (yet)")
        return key, self.store.size(key)

    async def Download(self, request, context):
        """The output in 1 MiB chunks read from the store one at a time: memory per download is one chunk,
        whatever the file's size; a client that stops reading ends it after settings.stream_idle_s."""
        key, size = await asyncio.to_thread(self._output_key, request, context)
        offset = 0
        while True:
            data = await asyncio.to_thread(self.store.read_range, key, offset, CHUNK)
            if data or offset == 0:
                yield common_pb2.Chunk(data=data)
            offset += len(data)
            if len(data) < CHUNK or offset >= size:
                return

    # -- projects -----------------------------------------------------------------------------
    def _project(self, project_id: str, context):
        """The caller's project; another tenant's is NotFoundError, exactly like one that never existed."""
        check_id(project_id, "project")
        tenant = self.auth.tenant(context)
        try:
            p = self.state.get_project(project_id)
        except NotFoundError:
            raise NotFoundError(f"no project {project_id}", hint="`lookalike status` lists yours") from None
        if p.tenant != tenant:
            raise NotFoundError(f"no project {project_id}", hint="`lookalike status` lists yours")
        return p

    def _validate(self, req: coordinator_pb2.RemakeRequest, tenant: str) -> tuple[str, str, str, dict]:
        """Everything about a remake request checked before any project exists (a batch is all or nothing)."""
        o = req.options
        if o.chunk_frames < 0 or o.chunk_frames > 100_000 or o.crf < 0 or o.crf > 51:
            raise InputError("chunk_frames must be between 0 and 100000 and crf between 0 and 51")
        if o.codec and o.codec not in CODECS:
            raise InputError(f"codec {clean_label(o.codec, 40)!r} is not one of {', '.join(CODECS)}")
        if abs(req.priority) > 1000:
            raise InputError(f"priority {req.priority} is out of range: use -1000..1000")
        formats = [str(f) for f in o.formats if f != "mp4"]
        bad = [f for f in formats if f not in EXTRA_FORMATS]
        if bad or o.resolution not in ("", "source", "720p", "1080p", "4k") or o.aspect not in ("", "9:16", "16:9", "1:1"):
            raise InputError("formats are mp4, webm, webm:av1, mp4:h265; resolution source, 720p, 1080p or 4k; "
                             "aspect 9:16, 16:9 or 1:1")
        if not 0 <= o.target <= 100 or not 0 <= o.max_rounds <= 20:
            raise InputError("target is a similarity between 0 and 100 and max_rounds between 0 and 20")
        require = [str(r) for r in o.require]
        if len(require) > 16 or not all(_CAPABILITY.fullmatch(r) for r in require):
            raise InputError("require lists at most 16 capabilities, each 1-32 of a-z, 0-9, '_', '-' (e.g. gpu,nvenc)")
        sample_key = self._upload_key(req.sample_upload_id, "sample", tenant)
        subject_key = self._upload_key(req.subject_upload_id, "subject", tenant) if req.subject_upload_id else ""
        # Refuse what cannot be remade now, with the node's own words, before any project exists.
        info = self._check(sample_key, "sample")
        if info["duration_s"] > self.settings.max_duration_s:
            raise InputError(f"the sample lasts {info['duration_s']:.0f} s; the limit is {self.settings.max_duration_s:.0f} s",
                             hint="cut it shorter")
        self._check_size(info, "sample")
        if subject_key:
            self._check_size(self._check(subject_key, "subject"), "subject image")
        name = clean_label(req.name, 200)
        footage = self._footage_options(req, tenant)
        options = {"keep_audio": o.keep_audio, "keep_video": o.keep_video, "chunk_frames": o.chunk_frames or None,
                   "seed": o.seed, "codec": o.codec or "libx264", "crf": o.crf or 20, "sample_name": name,
                   "priority": req.priority, "require": require, "target": o.target or None,
                   "max_rounds": o.max_rounds, "formats": formats, "resolution": o.resolution or "source",
                   "aspect": o.aspect, "loudness": parse_loudness(o.loudness), **footage}
        return name or "remake", sample_key, subject_key, options

    def _footage_options(self, req: coordinator_pb2.RemakeRequest, tenant: str) -> dict:
        """The options of a footage remake (docs/footage.md): each media item probed on a node; one that
        is no usable picture (corrupt, audio only, ...) is left out with its reason, which the project
        reports; when none is usable the request is refused before any project exists."""
        o = req.options
        text = [clean_label(t, 500) for t in o.text]
        if len(text) > 200 or sum(map(len, text)) + len(o.script) > self.settings.max_text_chars:
            raise LimitError(f"text lines and script hold at most {self.settings.max_text_chars} characters "
                             "(200 lines)", hint="shorten the text")
        out: dict = {"text": [t for t in text if t], "script": o.script[: self.settings.max_text_chars],
                     "keep_media_audio": bool(o.keep_media_audio)}
        if not req.media:
            if req.music_upload_id or o.keep_media_audio:
                raise InputError("--music and --keep-media-audio go with --media (the user's footage)")
            return out
        if len(req.media) > self.settings.max_media_items:
            raise LimitError(f"{len(req.media)} media items; this farm takes at most {self.settings.max_media_items} "
                             "per remake", hint="pick the clips and photos you want, or a smaller folder")
        items, skipped, names = [], [], set()
        for m in req.media:
            label = clean_label(m.name, 255) or "media item"
            key, meta = self._upload(m.upload_id, "media", tenant)
            try:
                info = self._check(key, "media")
            except LookalikeError as exc:
                if isinstance(exc, LimitError):
                    raise
                skipped.append({"name": label, "reason": str(exc.message).replace(key, label)})
                continue
            while label in names:  # two files of one name in different folders
                label += "'"
            names.add(label)
            items.append({"key": key, "name": label, "sha256": meta["sha256"], "info": info})
        if not items:
            reasons = "; ".join(f"{s['name']}: {s['reason']}" for s in skipped[:10])
            raise InputError(f"none of the {len(req.media)} media items is a usable clip or photo ({reasons})",
                             hint="give video files (MP4, MOV, MKV, WebM) or photos (JPEG, PNG, WebP)")
        out.update(media=items, media_skipped=skipped)
        if req.music_upload_id:
            music_key, meta = self._upload(req.music_upload_id, "music", tenant)
            info = self._check(music_key, "music")
            out.update(music_key=music_key, music_name=meta.get("filename") or "music", music_sha256=meta["sha256"],
                       music_info=info)
        return out

    def _check_size(self, info: dict, what: str) -> None:
        w, h = int(info.get("width") or 0), int(info.get("height") or 0)
        if max(w, h) > self.settings.max_side_px or w * h > self.settings.max_pixels:
            raise InputError(f"the {what} is {w}x{h}; this farm takes at most {self.settings.max_side_px} px a side "
                             f"and {self.settings.max_pixels} pixels", hint="scale it down first")

    def Remake(self, request, context):
        tenant = self.auth.tenant(context)
        _check_repeated(request, self.settings.max_media_items)
        return _project_msg(self.engine.submit(tenant, *self._validate(request, tenant)))

    def SubmitBatch(self, request, context):
        tenant = self.auth.tenant(context)
        if len(request.projects) > MAX_BATCH:
            raise LimitError(f"a batch of {len(request.projects)} remakes; send at most {MAX_BATCH} per call")
        for r in request.projects:
            _check_repeated(r, self.settings.max_media_items)
        checked = [self._validate(r, tenant) for r in request.projects]
        return coordinator_pb2.BatchReply(projects=[_project_msg(self.engine.submit(tenant, *c)) for c in checked])

    def GetProject(self, request, context):
        return _project_msg(self._project(request.project_id, context))

    def ListProjects(self, request, context):
        tenant = self.auth.tenant(context)
        return coordinator_pb2.ListProjectsReply(projects=[_project_msg(p) for p in self.state.list_projects(tenant)])

    async def WatchProject(self, request, context):
        """Events until the project ends. Each watch is a queue fed by one WatchHub thread, not a thread of
        its own; a client that cancels ends it at once (its task is cancelled where it waits)."""
        p = await asyncio.to_thread(self._project, request.project_id, context)
        async for ev in self.watches.follow(p.id):
            yield coordinator_pb2.ProgressEvent(**ev)

    def Cancel(self, request, context):
        return _project_msg(self.engine.cancel(self._project(request.project_id, context).id))

    # -- the platform's stage endpoints -------------------------------------------------------
    def _doc(self, project_id: str, kind: str, context) -> coordinator_pb2.Document:
        p = self._project(project_id, context)
        versions = self.state.document_versions(p.id, kind)
        doc = self.state.get_document(p.id, kind)
        if doc is None:
            raise NotFoundError(f"project {project_id} has no {kind} yet (state: {p.state})")
        return coordinator_pb2.Document(project_id=p.id, kind=kind, version=max(versions) if versions else 1,
                                        json=json.dumps(doc))

    async def AnalyzeComprehensive(self, request, context):
        """Waits for the analysis without holding a thread (the wait can be long); ends when the client goes."""
        def begin():
            if request.project_id:
                return self._project(request.project_id, context)
            tenant = self.auth.tenant(context)
            req = coordinator_pb2.RemakeRequest(sample_upload_id=request.sample_upload_id, name="analysis")
            name, sample_key, subject_key, options = self._validate(req, tenant)
            # An analysis, not a remake: the engine stops once analysis.json is stored.
            return self.engine.submit(tenant, name, sample_key, subject_key, {**options, "analysis_only": True})

        p = await asyncio.to_thread(begin)
        deadline = time.time() + 3600
        while await asyncio.to_thread(self.state.get_document, p.id, "analysis") is None:
            q = await asyncio.to_thread(self.state.get_project, p.id)
            if q.state.value in ("failed", "cancelled") or time.time() > deadline:
                raise InputError(f"analysis did not finish: {q.error or q.state}")
            await asyncio.sleep(0.2)
        return await asyncio.to_thread(self._doc, p.id, "analysis", context)

    def GetScenes(self, request, context):
        return self._doc(request.project_id, "plan", context)

    def UpdateScenes(self, request, context):
        p = self._project(request.project_id, context)
        if len(request.plan_json.encode()) > MAX_PLAN_BYTES:
            raise LimitError(f"plan_json is over {MAX_PLAN_BYTES >> 20} MiB; a plan is far smaller")
        plan = request_json(request.plan_json, "plan_json")
        if _holds_nul(plan):
            raise InputError("plan_json holds a NUL character (\\u0000): remove it")
        if not isinstance(plan, dict) or plan.get("schema") != "lookalike.plan/1" or not isinstance(plan.get("scenes"), list):
            raise InputError('a plan is a JSON object with "schema": "lookalike.plan/1" and a "scenes" list')
        if not all(isinstance(sc, dict) for sc in plan["scenes"]):
            raise InputError("every entry of the plan's scenes is a JSON object")
        # Each edit is a new version (the state store serializes them), so concurrent edits lose nothing.
        version = self.state.put_document(p.id, "plan", plan)
        return coordinator_pb2.Document(project_id=p.id, kind="plan", version=version, json=json.dumps(plan))

    def GetSceneStatus(self, request, context):
        p = self._project(request.project_id, context)
        by_scene: dict[int, list] = {}
        for j in self.state.jobs(p.id, kind="render_range"):
            by_scene.setdefault(j.scene_index, []).append(j)
        out = []
        for idx, jobs in sorted(by_scene.items()):
            done = sum(j.state == "succeeded" for j in jobs)
            failed = sum(j.state in ("dead", "failed") for j in jobs)
            state = "done" if done == len(jobs) else ("failed" if any(j.state == "dead" for j in jobs) else "rendering")
            out.append(coordinator_pb2.SceneStatus(index=idx, jobs_total=len(jobs), jobs_done=done, jobs_failed=failed,
                                                   state=state))
        return coordinator_pb2.SceneStatusReply(scenes=out)

    def GenerateScenes(self, request, context):
        """Render the latest plan: only the scenes an edit changed render again; with a target, the fix
        loop runs after it."""
        p = self._project(request.project_id, context)
        if not 0 <= request.target <= 100 or not 0 <= request.max_rounds <= 20:
            raise InputError("target is a similarity between 0 and 100 and max_rounds between 0 and 20")
        overrides = {"target": request.target, "max_rounds": request.max_rounds} if request.target else {}
        self.engine.start(p.id, overrides)
        return _project_msg(self.state.get_project(p.id))

    def ProcessAudio(self, request, context):
        p = self._project(request.project_id, context)
        self.engine.start(p.id)
        return _project_msg(self.state.get_project(p.id))

    def AssembleFinal(self, request, context):
        p = self._project(request.project_id, context)
        self.engine.start(p.id)
        return _project_msg(self.state.get_project(p.id))

    def ValidateSimilarity(self, request, context):
        return self._doc(request.project_id, "similarity", context)

    GetSimilarityReport = ValidateSimilarity

    def ChatPlan(self, request, context):
        """A request in words becomes typed plan operations (an LLM with tool calling when a key is
        configured, else the offline parser), applied as a new plan version. GenerateScenes then
        re-renders only the scenes the edit touched."""
        from lookalike.coordinator import chat, plan_history, plan_ops

        p = self._project(request.project_id, context)
        message = (request.message or "").strip()
        if not message or len(message) > 4000 or "\x00" in message:
            raise InputError("a chat request is 1 to 4000 characters of text, e.g. 'make scene 3 warmer'")
        history = plan_history.StoreHistory(self.state, p.id)
        if not history.versions():
            raise NotFoundError(f"project {p.id} has no plan yet (state: {p.state.value})")
        provider = chat.provider_from_keys(anthropic_api_key=self.settings.anthropic_api_key,
                                           openai_api_key=self.settings.openai_api_key)
        # The analysis lets a request name a scene by what it shows ("the scene with the cat").
        turn = chat.chat_edit(history, message, provider=provider, analysis=self.state.get_document(p.id, "analysis"),
                              dry_run=request.dry_run)
        proposal = turn.proposal
        return coordinator_pb2.ChatPlanReply(
            operations_json=plan_ops.ops_to_json(proposal.ops), plan=self._doc(p.id, "plan", context),
            changes_json=json.dumps([c.to_dict() for c in turn.changes], default=str), reply=turn.reply(),
            source=proposal.source or "", fallback_reason=proposal.fallback_reason or "",
            undone=bool(proposal.undo), version=int(turn.version or 0),
        )

    def GenerateVoiceover(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "voice-over is not available in this version")

    def ApplyEffects(self, request, context):
        """Effects on scenes, as plan operations: [{"effect": "film_grain", "strength": 0.4, "scene": 2}]
        (no "scene": every scene). The project then re-renders the scenes that changed."""
        from lookalike.coordinator import plan_history, plan_ops

        p = self._project(request.project_id, context)
        items = request_json(request.effects_json or "[]", "effects_json")
        if not isinstance(items, list) or not all(isinstance(i, dict) and "effect" in i for i in items) or not items:
            raise InputError('effects_json is a list like [{"effect": "film_grain", "strength": 0.4, "scene": 2}]')
        ops = [plan_ops.op_from_dict(dict(i, op="set_effect")) for i in items]
        history = plan_history.StoreHistory(self.state, p.id)
        if not history.versions():
            raise NotFoundError(f"project {p.id} has no plan yet (state: {p.state.value})")
        history.edit(ops, request="ApplyEffects")
        self.engine.start(p.id)
        return _project_msg(self.state.get_project(p.id))

    def AddTransitions(self, request, context):
        """Transitions at scene starts, as plan operations: [{"scene": 2, "kind": "dissolve", "n_frames": 12}].
        The scenes on both sides of each changed boundary render again."""
        from lookalike.coordinator import plan_history, plan_ops

        p = self._project(request.project_id, context)
        items = request_json(request.transitions_json or "[]", "transitions_json")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) and "scene" in i for i in items):
            raise InputError('transitions_json is a list like [{"scene": 2, "kind": "dissolve", "n_frames": 12}]')
        ops = [plan_ops.op_from_dict(dict(i, op="set_transition")) for i in items]
        history = plan_history.StoreHistory(self.state, p.id)
        if not history.versions():
            raise NotFoundError(f"project {p.id} has no plan yet (state: {p.state.value})")
        history.edit(ops, request="AddTransitions")
        self.engine.start(p.id)
        return _project_msg(self.state.get_project(p.id))


@mapped("NodeRegistry")
class RegistryServicer(coordinator_pb2_grpc.NodeRegistryServicer):
    def __init__(self, engine: Engine, settings, store_url: str, auth: Auth | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.store_url = store_url
        self.auth = auth or Auth.from_settings(settings)
        self.control_port = 0  # set once the control server listens; told to every node that registers

    def Register(self, request, context):
        self.auth.check_node(context.invocation_metadata())
        if not request.node_id or not request.address:
            raise InputError("a node registers with its id and its address")
        if not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", request.node_id):
            raise InputError("a node id is 1-128 of letters, digits, '.', '_', ':', '-'")
        if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]{1,255}:[0-9]{1,5}", request.address):
            raise InputError(f"node address {clean_label(request.address, 80)!r} is not HOST:PORT")
        if request.slots < 0 or request.slots > 1024:
            raise InputError("slots must be between 0 and 1024")
        self.engine.dispatcher.register(request.node_id, request.address, tuple(request.capabilities) or ("cpu",),
                                        request.slots or 1)
        if self.control_port:
            context.set_trailing_metadata(((CONTROL_PORT_KEY, str(self.control_port)),))
        return coordinator_pb2.RegisterReply(store_url=self.store_url, heartbeat_s=self.settings.heartbeat_s)

    def Heartbeat(self, request, context):
        self.auth.check_node(context.invocation_metadata())
        return coordinator_pb2.HeartbeatReply(known=self.engine.dispatcher.heartbeat(request.node_id))


class Coordinator:
    """A running coordinator: state, store, Ray dispatcher, engine, gRPC server and /metrics."""

    def __init__(self, settings, *, listen: str = "127.0.0.1:0", metrics_port: int | None = None) -> None:
        from lookalike.coordinator.dispatch import Dispatcher, ProviderGate
        from lookalike.coordinator.state import open_state

        from lookalike.store import open_store

        self.settings = settings
        init_coordinator_metrics()
        settings.home.mkdir(parents=True, exist_ok=True)
        self.state = open_state(settings.resolved_db_url)
        self.store = open_store(settings.resolved_store_url, access_key=settings.s3_access_key,
                                secret_key=settings.s3_secret_key)
        # The node gateway runs in Ray workers, which inherit this environment and no arguments: calls
        # to nodes take the CA and node token from there (lookalike.grpcutil.channel).
        for name in ("tls_ca", "node_token", "tls_server_name"):
            if getattr(settings, name):
                os.environ.setdefault(f"LOOKALIKE_{name.upper()}", str(getattr(settings, name)))
        # The provider limits the nodes read (LOOKALIKE_REQUESTS_PER_MINUTE, LOOKALIKE_CONCURRENCY) hold
        # for the whole farm too: the dispatcher starts provider jobs within them.
        self.dispatcher = Dispatcher(self.state, ray_address=settings.ray_address,
                                     node_timeout_s=settings.node_timeout_s, call_timeout_s=settings.call_timeout_s,
                                     discard=self.store.delete,
                                     providers=ProviderGate(settings.requests_per_minute, settings.concurrency))
        self.engine = Engine(settings, self.state, self.store, self.dispatcher)
        from lookalike.coordinator.uploads import UploadSweeper

        self.sweeper = UploadSweeper(self.store, self.state.all_project_options, grace_s=settings.upload_grace_s,
                                     every_s=min(600.0, max(5.0, settings.upload_grace_s / 4)))
        self.sweeper.start()
        self.auth = Auth.from_settings(settings)
        limiter = RateLimiter(settings.rate_per_s, settings.rate_burst)
        tls = server_tls(settings)
        host = listen.rsplit(":", 1)[0]
        # Nodes register and beat on a server of their own (threads, port): nothing a client does on
        # the public port can delay a heartbeat. The public port serves the registry too (a node that
        # registers there learns the control port from the reply and beats there).
        registry = RegistryServicer(self.engine, settings, self.store.url, self.auth)
        self.control, self.control_port = make_control_server(
            settings.control_listen or f"{host}:0",
            [(coordinator_pb2_grpc.add_NodeRegistryServicer_to_server, registry, "lookalike.v1.NodeRegistry")],
            interceptors=[AuthInterceptor(self.auth, None)], tls=tls)
        registry.control_port = self.control_port
        self.servicer = CoordinatorServicer(self.engine, settings, self.auth)
        limits = Limits(
            idle_s=settings.stream_idle_s, streams_per_peer=settings.streams_per_peer,
            streams_per_tenant=settings.streams_per_tenant, streams_total=settings.streams_total,
            calls_per_tenant=settings.calls_per_tenant, tenant_of=self._tenant_or_none,
            tenant_services=(PUBLIC_SERVICE, REFLECTION_SERVICE), request_bytes=REQUEST_BYTES,
            default_request_bytes=DEFAULT_REQUEST_BYTES)
        self.server, self.port = make_server(listen, [
            (coordinator_pb2_grpc.add_CoordinatorServicer_to_server, self.servicer, "lookalike.v1.Coordinator"),
            (coordinator_pb2_grpc.add_NodeRegistryServicer_to_server, registry, "lookalike.v1.NodeRegistry"),
        ], interceptors=[AuthInterceptor(self.auth, limiter, public=(PUBLIC_SERVICE, REFLECTION_SERVICE))],
            tls=tls, limits=limits, reflection_on=settings.reflection)
        if (self.auth.enabled or self.auth.node_token) and not settings.tls_cert:
            log.warning("tokens_without_tls", hint="tokens travel in clear text: set LOOKALIKE_TLS_CERT/KEY")
        self.address = f"{host}:{self.port}"
        self.control_address = f"{host}:{self.control_port}"
        self.metrics_port = serve_metrics(metrics_port, addr=host) if metrics_port is not None else None
        log.info("coordinator_started", address=self.address, control_address=self.control_address,
                 db=_redact(settings.resolved_db_url),
                 store=self.store.url, metrics_port=self.metrics_port, auth=self.auth.enabled,
                 node_token=bool(self.auth.node_token), tls=bool(settings.tls_cert))

    def _tenant_or_none(self, metadata) -> str | None:
        try:
            return self.auth.tenant_of(metadata)
        except LookalikeError:
            return None

    def resume(self) -> list[str]:
        """Resume unfinished projects once nodes are there to run them."""
        return self.engine.resume_unfinished()

    def resume_when_nodes(self, count: int = 1, timeout: float = 600) -> threading.Thread:
        def go():
            try:
                self.dispatcher.wait_for_nodes(count, timeout)
                self.resume()
            except Exception as exc:  # noqa: BLE001
                log.error("resume_failed", error=repr(exc))

        t = threading.Thread(target=go, name="resume", daemon=True)
        t.start()
        return t

    def wait(self) -> None:
        self.server.wait_for_termination()

    def stop(self, grace: float = 1.0) -> None:
        self.sweeper.stop()
        self.servicer.watches.stop()
        self.server.stop(grace).wait()
        self.control.stop(grace).wait()


def _holds_nul(doc) -> bool:
    """Whether a JSON document has a NUL in any key or string (PostgreSQL refuses those)."""
    stack = [doc]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            if "\x00" in x:
                return True
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return False


def _redact(url: str) -> str:
    return re.sub(r"//([^:@/]+):[^@/]+@", r"//\1:***@", url)
