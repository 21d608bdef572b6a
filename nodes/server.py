"""The node's gRPC adapter: the Node service over NodeRuntime, plus registration and heartbeats."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from fractions import Fraction

import grpc
from lookalike.nodes.runtime import Format, NodeRuntime
from lookalike.v1 import common_pb2, coordinator_pb2, coordinator_pb2_grpc, node_pb2, node_pb2_grpc

from lookalike.errors import InputError
from lookalike.grpcutil import (
    NodeTokenGuard,
    channel,
    make_server,
    mapped,
    read_pem,
    server_tls,
    wait_ready,
)
from lookalike.obs import get_logger, init_node_metrics

log = get_logger("node")
REFLECTION_SERVICE = "grpc.reflection.v1alpha.ServerReflection"
CONTROL_PORT_KEY = "lookalike-control-port"  # the coordinator's Register reply says where heartbeats go


def _fmt(f: common_pb2.VideoFormat) -> Format:
    if f.width <= 0 or f.height <= 0 or f.fps.num <= 0 or f.fps.den <= 0:
        raise InputError(f"bad video format {f.width}x{f.height} @ {f.fps.num}/{f.fps.den}")
    return Format(
        width=f.width, height=f.height, fps=Fraction(f.fps.num, f.fps.den), codec=f.codec or "libx264",
        crf=f.crf or 20, preset=f.preset or "veryfast",
    )


def _segment_reply(r) -> node_pb2.SegmentReply:
    return node_pb2.SegmentReply(key=r.key, n_frames=r.n_frames, bytes=r.bytes, sha256=r.sha256, seconds=r.seconds)


def _loads(text: str, what: str) -> dict:
    try:
        return json.loads(text) if text else {}
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser's stack
        raise InputError(f"{what} is not valid JSON: {str(exc)[:200]}") from None


@mapped("Node")
class NodeServicer(node_pb2_grpc.NodeServicer):
    def __init__(self, runtime: NodeRuntime) -> None:
        self.rt = runtime
        self.busy = 0
        self._lock = threading.Lock()

    def _track(self, delta: int) -> None:
        with self._lock:
            self.busy += delta

    def Probe(self, request, context):
        return node_pb2.ProbeReply(info_json=json.dumps(self.rt.probe(request.key, request.check)))

    def Analyze(self, request, context):
        self._track(1)
        try:
            if request.vision:
                doc = self.rt.analyze_vision(request.sample_key, _loads(request.analysis_json, "analysis"))
            elif request.range_features_json:
                doc = self.rt.merge_analysis(
                    request.sample_key,
                    [_loads(t, "range features") for t in request.range_features_json],
                    _loads(request.audio_features_json, "audio features"),
                )
            elif request.audio:
                doc = self.rt.analyze_audio(request.sample_key, transcribe=not request.skip_transcription)
            else:
                doc = self.rt.analyze_range(request.sample_key, request.range.start_frame, request.range.end_frame)
            return node_pb2.AnalyzeReply(features_json=json.dumps(doc))
        finally:
            self._track(-1)

    def Decode(self, request, context):
        size = (request.width, request.height) if request.width and request.height else None
        for index, pts, frame in self.rt.decode(request.key, request.range.start_frame, request.range.end_frame or None, size):
            yield node_pb2.DecodedFrame(
                index=index, pts_s=pts, width=frame.shape[1], height=frame.shape[0], rgb24=frame.tobytes()
            )

    def Grade(self, request, context):
        return _segment_reply(
            self.rt.grade(request.input_key, _loads(request.grade_json, "grade"), _fmt(request.format), request.output_key)
        )

    def ApplyEffects(self, request, context):
        self._track(1)
        try:
            spec = _loads(request.effects_json, "effects")
            start, end = request.range.start_frame, request.range.end_frame
            if end <= start:
                from lookalike.nodes import edit, media

                n_src = media.probe(self.rt.local(request.input_key)).n_frames
                start, end = 0, edit.Pipeline.from_spec(spec).n_out(n_src)
            return _segment_reply(
                self.rt.apply_effects(request.input_key, spec, start, end, _fmt(request.format), request.output_key)
            )
        finally:
            self._track(-1)

    def Encode(self, request_iterator, context):
        import numpy as np

        first = next(request_iterator, None)
        if first is None:
            raise InputError("Encode needs a header message first")
        fmt = _fmt(first.format)
        frame_bytes = fmt.width * fmt.height * 3

        def frames():
            for msg in request_iterator:
                if len(msg.rgb24) != frame_bytes:
                    raise InputError(f"a frame of {len(msg.rgb24)} bytes where {fmt.width}x{fmt.height} rgb24 needs {frame_bytes}")
                yield np.frombuffer(msg.rgb24, dtype=np.uint8).reshape(fmt.height, fmt.width, 3)

        return _segment_reply(self.rt.encode(frames(), fmt, first.output_key, expected=None))

    def Score(self, request, context):
        self._track(1)
        try:
            doc = self.rt.score(
                request.sample_key, request.output_key, _loads(request.analysis_json, "analysis"),
                _loads(request.plan_json, "plan"),
                output_analysis=_loads(request.output_analysis_json, "output analysis") or None,
            )
            return node_pb2.ScoreReply(similarity_json=json.dumps(doc))
        finally:
            self._track(-1)

    def GenerateScene(self, request, context):
        self._track(1)
        try:
            r = self.rt.generate_scene(
                _loads(request.scene_json, "scene"), _fmt(request.format), request.output_key,
                subject_key=request.subject_key, seed=request.seed, subject_seed=request.subject_seed,
                sample_key=request.sample_key,
            )
            return node_pb2.GenerateSceneReply(key=r["key"], provider=r["provider"], record_json=json.dumps(r["record"]))
        finally:
            self._track(-1)

    def RenderRange(self, request, context):
        self._track(1)
        try:
            r = self.rt.render_range(
                _loads(request.scene_json, "scene"),
                request.range.start_frame,
                request.range.end_frame,
                _fmt(request.format),
                request.output_key,
                subject_key=request.subject_key,
                seed=request.seed,
                subject_seed=request.subject_seed,
                keep_video=request.keep_video,
                sample_key=request.sample_key,
                should_stop=lambda: not context.is_active(),
                prev_scene=_loads(request.prev_scene_json, "previous scene") or None,
                next_scene=_loads(request.next_scene_json, "next scene") or None,
            )
            return _segment_reply(r)
        finally:
            self._track(-1)

    def RenderAudio(self, request, context):
        self._track(1)
        try:
            r = self.rt.render_audio(
                _loads(request.plan_json, "plan"), _loads(request.analysis_json, "analysis"), request.output_key,
                duration_s=request.duration_s, seed=request.seed, keep_audio=request.keep_audio,
                sample_key=request.sample_key,
            )
            return node_pb2.AudioReply(key=r["key"], lufs=r["lufs"], true_peak_db=r["peak_db"], duration_s=r["duration_s"])
        finally:
            self._track(-1)

    def Assemble(self, request, context):
        self._track(1)
        try:
            r = self.rt.assemble(
                list(request.segment_keys), request.audio_key, request.output_key, request.expected_frames,
                plan=_loads(request.plan_json, "plan"), analysis_doc=_loads(request.analysis_json, "analysis"),
                formats=tuple(request.formats), resolution=request.resolution, aspect=request.aspect,
            )
            return node_pb2.AssembleReply(key=r["key"], n_frames=r["n_frames"], bytes=r["bytes"],
                                          info_json=json.dumps(r["info"]), outputs=r["outputs"])
        finally:
            self._track(-1)


class NodeProcess:
    """A running node: its gRPC server, its registration with a coordinator, and heartbeats.

    Security comes from `settings` (default: Settings.from_env()): with node_token set, the node
    presents it to the NodeRegistry and requires it on every Node call; with tls_ca set, it verifies
    the coordinator's certificate; with tls_cert/tls_key set, its own Node service speaks TLS.
    """

    def __init__(
        self, coordinator: str, *, listen: str = "127.0.0.1:0", advertise_host: str | None = None,
        node_id: str | None = None, capabilities: tuple[str, ...] = ("cpu",), slots: int = 1,
        s3_access_key: str | None = None, s3_secret_key: str | None = None, cache_dir: str | None = None,
        register_timeout_s: float = 30.0, settings=None,
    ) -> None:
        from lookalike.settings import Settings
        from lookalike.store import open_store

        settings = settings or Settings.from_env()
        self.node_id = node_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.coordinator = coordinator
        ca = read_pem(settings.tls_ca, "TLS CA") if settings.tls_ca else None
        self._ch = channel(coordinator, ca=ca, token=settings.node_token, server_name=settings.tls_server_name)
        wait_ready(self._ch, coordinator, register_timeout_s)
        self._registry = coordinator_pb2_grpc.NodeRegistryStub(self._ch)
        self._security = (ca, settings.node_token, settings.tls_server_name)
        self._control: grpc.Channel | None = None
        self.control_address = coordinator
        self._stop = threading.Event()
        self._info_args = (capabilities, slots)
        # The store is the coordinator's: learn it at registration, before serving anything.
        self.runtime = NodeRuntime(None, node_id=self.node_id, cache_dir=cache_dir)
        self.servicer = NodeServicer(self.runtime)
        init_node_metrics(self.node_id, slots=slots, busy=lambda: self.servicer.busy)
        self.server, self.port = make_server(
            listen, [(node_pb2_grpc.add_NodeServicer_to_server, self.servicer, "lookalike.v1.Node")], workers=16,
            # Reflection is behind the node token like the Node service; with a token set, nobody else can
            # open a stream here at all.
            interceptors=[NodeTokenGuard(settings.node_token, ("lookalike.v1.Node", REFLECTION_SERVICE))],
            tls=server_tls(settings),
        )
        host = advertise_host or listen.rsplit(":", 1)[0]
        self.address = f"{host}:{self.port}"
        try:
            reply = self._register()
        except grpc.RpcError as exc:
            self.server.stop(0)
            self._ch.close()
            if self._control is not None:
                self._control.close()
            from lookalike.errors import ConfigError, UnreachableError

            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise ConfigError(f"the coordinator at {coordinator} refused this node: {exc.details()}",
                                  hint="set LOOKALIKE_NODE_TOKEN to the coordinator's node token") from None
            raise UnreachableError(f"cannot register with the coordinator at {coordinator}: {exc.details()}") from None
        self.runtime.store = open_store(reply.store_url, access_key=s3_access_key, secret_key=s3_secret_key)
        self.heartbeat_s = reply.heartbeat_s or 1.0
        self._beat = threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True)
        self._beat.start()
        log.info("node_started", node=self.node_id, address=self.address, coordinator=coordinator,
                 control=self.control_address)

    def _register(self) -> coordinator_pb2.RegisterReply:
        caps, slots = self._info_args
        reply, call = self._registry.Register.with_call(
            coordinator_pb2.NodeInfo(node_id=self.node_id, address=self.address, capabilities=list(caps), slots=slots),
            timeout=10,
        )
        port = dict(call.trailing_metadata() or ()).get(CONTROL_PORT_KEY)
        if port and port.isdigit() and self._control is None:
            # Heartbeats (and registering again) go to the coordinator's control port from now on: a
            # server of its own that public traffic cannot starve. Same host as --coordinator.
            address = f"{self.coordinator.rsplit(':', 1)[0]}:{port}"
            self._control = channel(address, ca=self._security[0], token=self._security[1],
                                    server_name=self._security[2])
            self._registry = coordinator_pb2_grpc.NodeRegistryStub(self._control)
            self.control_address = address
        return reply

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                reply = self._registry.Heartbeat(
                    coordinator_pb2.NodeHeartbeat(node_id=self.node_id, busy=self.servicer.busy), timeout=5
                )
                if not reply.known:
                    self._register()
            except grpc.RpcError as exc:
                log.warning("heartbeat_failed", node=self.node_id, code=str(exc.code()), to=self.control_address)
                if self._control is not None and exc.code() == grpc.StatusCode.UNAVAILABLE:
                    # The control port does not answer: a coordinator restarted (on a new control port), or
                    # a firewall or a Service that exposes only the public port. Go back to the public
                    # port: the next beat there registers again if needed, and learns the control port anew.
                    self._control.close()
                    self._control = None
                    self._registry = coordinator_pb2_grpc.NodeRegistryStub(self._ch)
                    self.control_address = self.coordinator

    def wait(self) -> None:
        self.server.wait_for_termination()

    def stop(self, grace: float = 1.0) -> None:
        self._stop.set()
        self.server.stop(grace).wait()
        self._ch.close()
        if self._control is not None:
            self._control.close()
