"""The coordinator process: the public Coordinator API and the NodeRegistry, as thin gRPC adapters over
the Engine, the state store and the segment store."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
import uuid

import grpc

from lookalike.coordinator.engine import OUTPUT_NAMES, Engine
from lookalike.errors import InputError, LookalikeError, NotFoundError
from lookalike.grpcutil import make_server, mapped
from lookalike.obs import get_logger, init_coordinator_metrics, serve_metrics
from lookalike.v1 import common_pb2, coordinator_pb2, coordinator_pb2_grpc

log = get_logger("coordinator")
TENANT = "default"
CHUNK = 1 << 20
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def _project_msg(p) -> coordinator_pb2.Project:
    state = getattr(p.state, "value", p.state)
    return coordinator_pb2.Project(
        project_id=p.id, name=p.name or "", state=state, stage=p.stage or "", progress=p.progress or 0.0,
        error=p.error or "", outputs=list(OUTPUT_NAMES) if state == "done" else [], created=p.created_at,
        updated=p.updated_at,
    )


@mapped("Coordinator")
class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServicer):
    def __init__(self, engine: Engine, settings) -> None:
        self.engine = engine
        self.state = engine.state
        self.store = engine.store
        self.settings = settings

    # -- uploads and downloads ----------------------------------------------------------------
    def UploadSample(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InputError("an upload starts with a header message (filename, kind, size)")
        h = first.header
        if h.kind not in ("sample", "subject"):
            raise InputError(f"upload kind must be 'sample' or 'subject', not {h.kind!r}")
        if h.size > self.settings.max_upload_bytes:
            raise InputError(f"the file is {h.size} bytes; this farm takes at most {self.settings.max_upload_bytes}")
        suffix = os.path.splitext(os.path.basename(h.filename.replace("\\", "/")))[1].lower()
        if not _SUFFIX.match(suffix or ""):
            suffix = ".bin"
        upload_id = uuid.uuid4().hex
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                for msg in request_iterator:
                    size += len(msg.data)
                    if size > self.settings.max_upload_bytes:
                        raise InputError(f"the upload passed the limit of {self.settings.max_upload_bytes} bytes")
                    digest.update(msg.data)
                    f.write(msg.data)
            if h.size and size != h.size:
                raise InputError(f"the upload ended after {size} of {h.size} bytes: send it again")
            self.store.put_file(f"uploads/{upload_id}/{h.kind}{suffix}", tmp)
            meta = {"filename": os.path.basename(h.filename.replace("\\", "/"))[:255], "kind": h.kind, "bytes": size}
            self.store.put_bytes(f"uploads/{upload_id}/meta.json", json.dumps(meta).encode())
        finally:
            os.unlink(tmp)
        return coordinator_pb2.UploadReply(upload_id=upload_id, bytes=size, sha256=digest.hexdigest())

    def _upload_key(self, upload_id: str, kind: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id or ""):
            raise InputError(f"{kind} upload id {upload_id!r} is not one this coordinator gave out")
        keys = [k for k in self.store.list(f"uploads/{upload_id}/") if not k.endswith("/meta.json")]
        if not keys:
            raise NotFoundError(f"no {kind} upload {upload_id}: upload it first")
        return keys[0]

    def _user_words(self, exc: LookalikeError, key: str) -> LookalikeError:
        """The error with the store's path of an upload replaced by the name the user gave the file."""
        try:
            name = json.loads(self.store.get_bytes(key.rsplit("/", 1)[0] + "/meta.json"))["filename"]
        except (LookalikeError, ValueError, KeyError):
            return exc
        pattern = re.compile(r"[^\s'\"()]*" + re.escape(key))
        exc.message = pattern.sub(name, exc.message)
        exc.args = (exc.message,)
        return exc

    def _check(self, key: str, check: str) -> dict:
        try:
            return self.engine.probe(key, check=check)
        except LookalikeError as exc:
            raise self._user_words(exc, key) from None

    def Download(self, request, context):
        key = self.engine.output(self._project(request.project_id).id, request.name)
        if not self.store.exists(key):
            raise NotFoundError(f"{request.name} of project {request.project_id} is not there (yet)")
        data = self.store.get_bytes(key)
        for i in range(0, max(1, len(data)), CHUNK):
            yield common_pb2.Chunk(data=data[i : i + CHUNK])

    # -- projects -----------------------------------------------------------------------------
    def _project(self, project_id: str):
        if not re.fullmatch(r"[0-9a-f]{32}", project_id or ""):
            raise NotFoundError(f"no project {project_id!r}")
        p = self.state.get_project(project_id)
        if p.tenant != TENANT:
            raise NotFoundError(f"no project {project_id!r}")
        return p

    def _create(self, req: coordinator_pb2.RemakeRequest):
        sample_key = self._upload_key(req.sample_upload_id, "sample")
        subject_key = self._upload_key(req.subject_upload_id, "subject") if req.subject_upload_id else ""
        # Refuse what cannot be remade now, with the node's own words, before any project exists.
        info = self._check(sample_key, "sample")
        if info["duration_s"] > self.settings.max_duration_s:
            raise InputError(f"the sample lasts {info['duration_s']:.0f} s; the limit is {self.settings.max_duration_s:.0f} s")
        if subject_key:
            self._check(subject_key, "subject")
        o = req.options
        if o.chunk_frames < 0 or o.crf < 0 or o.crf > 51:
            raise InputError("chunk_frames must be >= 0 and crf between 0 and 51")
        options = {"keep_audio": o.keep_audio, "keep_video": o.keep_video, "chunk_frames": o.chunk_frames or None,
                   "seed": o.seed, "codec": o.codec or "libx264", "crf": o.crf or 20, "sample_name": req.name or "",
                   "priority": req.priority, "require": [str(r) for r in o.require]}
        return self.engine.submit(TENANT, req.name or "remake", sample_key, subject_key, options)

    def Remake(self, request, context):
        return _project_msg(self._create(request))

    def SubmitBatch(self, request, context):
        return coordinator_pb2.BatchReply(projects=[_project_msg(self._create(r)) for r in request.projects])

    def GetProject(self, request, context):
        return _project_msg(self._project(request.project_id))

    def ListProjects(self, request, context):
        return coordinator_pb2.ListProjectsReply(projects=[_project_msg(p) for p in self.state.list_projects(TENANT)])

    def WatchProject(self, request, context):
        p = self._project(request.project_id)
        for ev in self.engine.watch(p.id):
            if not context.is_active():
                return
            yield coordinator_pb2.ProgressEvent(**ev)

    def Cancel(self, request, context):
        return _project_msg(self.engine.cancel(self._project(request.project_id).id))

    # -- the platform's stage endpoints -------------------------------------------------------
    def _doc(self, project_id: str, kind: str) -> coordinator_pb2.Document:
        p = self._project(project_id)
        versions = self.state.document_versions(p.id, kind)
        doc = self.state.get_document(p.id, kind)
        if doc is None:
            raise NotFoundError(f"project {project_id} has no {kind} yet (state: {p.state})")
        return coordinator_pb2.Document(project_id=p.id, kind=kind, version=max(versions) if versions else 1,
                                        json=json.dumps(doc))

    def AnalyzeComprehensive(self, request, context):
        if request.project_id:
            p = self._project(request.project_id)
        else:
            p = self._create(coordinator_pb2.RemakeRequest(sample_upload_id=request.sample_upload_id, name="analysis"))
        deadline = time.time() + 3600
        while self.state.get_document(p.id, "analysis") is None:
            q = self.state.get_project(p.id)
            if q.state.value in ("failed", "cancelled") or time.time() > deadline or not context.is_active():
                raise InputError(f"analysis did not finish: {q.error or q.state}")
            time.sleep(0.2)
        return self._doc(p.id, "analysis")

    def GetScenes(self, request, context):
        return self._doc(request.project_id, "plan")

    def UpdateScenes(self, request, context):
        p = self._project(request.project_id)
        try:
            plan = json.loads(request.plan_json)
        except json.JSONDecodeError as exc:
            raise InputError(f"plan_json is not valid JSON: {exc}") from exc
        if not isinstance(plan, dict) or plan.get("schema") != "lookalike.plan/1" or not isinstance(plan.get("scenes"), list):
            raise InputError('a plan is a JSON object with "schema": "lookalike.plan/1" and a "scenes" list')
        self.state.put_document(p.id, "plan", plan)
        return self._doc(p.id, "plan")

    def GetSceneStatus(self, request, context):
        p = self._project(request.project_id)
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
        p = self._project(request.project_id)
        self.engine.start(p.id)
        return _project_msg(self.state.get_project(p.id))

    ProcessAudio = GenerateScenes

    def AssembleFinal(self, request, context):
        p = self._project(request.project_id)
        self.engine.start(p.id)
        return _project_msg(self.state.get_project(p.id))

    def ValidateSimilarity(self, request, context):
        return self._doc(request.project_id, "similarity")

    GetSimilarityReport = ValidateSimilarity

    def ChatPlan(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "plan chat is not available in this version: edit plan.json and "
                      "send it with UpdateScenes")

    def GenerateVoiceover(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "voice-over is not available in this version")

    def ApplyEffects(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "effects are not available in this version")

    def AddTransitions(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "transitions other than the sample's cuts are not available yet")


@mapped("NodeRegistry")
class RegistryServicer(coordinator_pb2_grpc.NodeRegistryServicer):
    def __init__(self, engine: Engine, settings, store_url: str) -> None:
        self.engine = engine
        self.settings = settings
        self.store_url = store_url

    def Register(self, request, context):
        if not request.node_id or not request.address:
            raise InputError("a node registers with its id and its address")
        self.engine.dispatcher.register(request.node_id, request.address, tuple(request.capabilities) or ("cpu",),
                                        request.slots or 1)
        return coordinator_pb2.RegisterReply(store_url=self.store_url, heartbeat_s=self.settings.heartbeat_s)

    def Heartbeat(self, request, context):
        return coordinator_pb2.HeartbeatReply(known=self.engine.dispatcher.heartbeat(request.node_id))


class Coordinator:
    """A running coordinator: state, store, Ray dispatcher, engine, gRPC server and /metrics."""

    def __init__(self, settings, *, listen: str = "127.0.0.1:0", metrics_port: int | None = None) -> None:
        from lookalike.coordinator.dispatch import Dispatcher
        from lookalike.coordinator.state import open_state
        from lookalike.store import open_store

        self.settings = settings
        init_coordinator_metrics()
        settings.home.mkdir(parents=True, exist_ok=True)
        self.state = open_state(settings.resolved_db_url)
        self.store = open_store(settings.resolved_store_url, access_key=settings.s3_access_key,
                                secret_key=settings.s3_secret_key)
        self.dispatcher = Dispatcher(self.state, ray_address=settings.ray_address,
                                     node_timeout_s=settings.node_timeout_s, call_timeout_s=settings.call_timeout_s,
                                     discard=self.store.delete)
        self.engine = Engine(settings, self.state, self.store, self.dispatcher)
        self.server, self.port = make_server(listen, [
            (coordinator_pb2_grpc.add_CoordinatorServicer_to_server, CoordinatorServicer(self.engine, settings),
             "lookalike.v1.Coordinator"),
            (coordinator_pb2_grpc.add_NodeRegistryServicer_to_server,
             RegistryServicer(self.engine, settings, self.store.url), "lookalike.v1.NodeRegistry"),
        ])
        host = listen.rsplit(":", 1)[0]
        self.address = f"{host}:{self.port}"
        self.metrics_port = serve_metrics(metrics_port, addr=host) if metrics_port is not None else None
        log.info("coordinator_started", address=self.address, db=_redact(settings.resolved_db_url),
                 store=self.store.url, metrics_port=self.metrics_port)

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
        self.server.stop(grace).wait()


def _redact(url: str) -> str:
    return re.sub(r"//([^:@/]+):[^@/]+@", r"//\1:***@", url)
