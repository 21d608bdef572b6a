"""gRPC plumbing shared by the coordinator and nodes: servers with health and reflection (and TLS when
given a certificate), channels between farm processes (TLS and the node token when configured), and
the one place where LookalikeError becomes a gRPC status (by the table `lookalike.errors.WIRE`).

Servers are asyncio servers (`make_server`) so that a long-lived call holds no thread: streaming
handlers are coroutines on the server's own event loop; plain (sync) unary handlers run in a bounded
thread pool. `Limits` puts a cap on the streams per peer, per tenant and in all, ends a stream idle
for `idle_s` (no message from the client, or a reply the client does not take), caps the unary calls
a tenant may have in flight (each holds a pool thread), and refuses a request over its method's
size before it is decoded. A node's registry calls go to a plain threaded server of their own
(`make_control_server`), which public traffic never reaches.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import inspect
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lookalike.errors import KIND_KEY, InputError, LookalikeError, wire_of
from lookalike.obs import RPCS, get_logger

log = get_logger("grpc")

MAX_MESSAGE = 64 << 20
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
]
# Every server: find dead peers (a client that vanished without a FIN) and drop connections that
# carry no call; a peer that pings more often than this is told to go away, not served.
SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.max_connection_idle_ms", 300_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 3),
    ("grpc.max_concurrent_streams", 128),  # per connection; a client opens more connections for more
]


def _status(service: str, method: str, exc: BaseException) -> tuple[grpc.StatusCode, str, str | None]:
    """(code, message, error kind for the trailing metadata) of an exception a handler raised."""
    if isinstance(exc, _Idle):  # the stream's idle timeout, raised where the handler awaited its next message
        RPCS.labels(service, method, "DEADLINE_EXCEEDED").inc()
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(exc), None
    if isinstance(exc, LookalikeError):
        wire = wire_of(exc)
        RPCS.labels(service, method, wire.code).inc()
        return getattr(grpc.StatusCode, wire.code), str(exc), wire.kind
    log.error("rpc_crashed", service=service, method=method, error=repr(exc), tb=traceback.format_exc())
    RPCS.labels(service, method, "INTERNAL").inc()
    return (grpc.StatusCode.INTERNAL,
            f"internal error in {service}.{method}: {type(exc).__name__}: {exc} (see the server log)", None)


async def _abort_async(context, service: str, method: str, exc: BaseException) -> None:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    code, message, kind = _status(service, method, exc)
    if kind is not None:
        context.set_trailing_metadata(((KIND_KEY, kind),))
    await context.abort(code, message)


def _abort(context: grpc.ServicerContext, service: str, method: str, exc: BaseException) -> None:
    if isinstance(exc, (grpc.aio.AbortError, _Aborted)):  # the handler aborted itself
        raise exc
    code_set = context.code() if hasattr(context, "code") else None
    if code_set is not None and code_set != grpc.StatusCode.OK and not isinstance(exc, LookalikeError):
        # The handler aborted with its own status (e.g. UNIMPLEMENTED): keep it.
        RPCS.labels(service, method, code_set.name).inc()
        raise exc
    code, message, kind = _status(service, method, exc)
    if kind is not None:
        context.set_trailing_metadata(((KIND_KEY, kind),))
    context.abort(code, message)


def mapped(service: str) -> Callable[[type], type]:
    """Class decorator: every public RPC method maps LookalikeError to its status, once, here."""

    def wrap_method(name: str, fn: Callable) -> Callable:
        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen(self, request, context):
                try:
                    async for item in fn(self, request, context):
                        yield item
                    RPCS.labels(service, name, "OK").inc()
                except Exception as exc:  # noqa: BLE001 - mapped to a status right here
                    await _abort_async(context, service, name, exc)

            return agen
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def coro(self, request, context):
                try:
                    reply = await fn(self, request, context)
                    RPCS.labels(service, name, "OK").inc()
                    return reply
                except Exception as exc:  # noqa: BLE001
                    await _abort_async(context, service, name, exc)

            return coro
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen(self, request, context):
                try:
                    yield from fn(self, request, context)
                    RPCS.labels(service, name, "OK").inc()
                except Exception as exc:  # noqa: BLE001 - mapped to a status right here
                    _abort(context, service, name, exc)

            return gen

        @functools.wraps(fn)
        def unary(self, request, context):
            try:
                reply = fn(self, request, context)
                RPCS.labels(service, name, "OK").inc()
                return reply
            except Exception as exc:  # noqa: BLE001
                _abort(context, service, name, exc)

        return unary

    def deco(cls: type) -> type:
        for name, fn in list(vars(cls).items()):
            if name[:1].isupper() and callable(fn):
                setattr(cls, name, wrap_method(name, fn))
        return cls

    return deco


def bearer_token(metadata) -> str | None:
    """The TOKEN of an `authorization: Bearer TOKEN` entry in call metadata, or None."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def tokens_equal(a: str, b: str) -> bool:
    """Constant-time comparison (how long it takes says nothing about where the strings differ)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def deny(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that only refuses the call with `code`."""

    def refuse(request, context):
        context.abort(code, message)

    refuse.refusal = (code, message)  # type: ignore[attr-defined] - an asyncio server refuses in a coroutine
    return _shaped(handler, refuse)


def _shaped(handler: grpc.RpcMethodHandler, refuse: Callable) -> grpc.RpcMethodHandler:
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


class NodeTokenGuard(grpc.ServerInterceptor):
    """Calls to `services` need `authorization: Bearer NODE_TOKEN` (UNAUTHENTICATED otherwise); None: open."""

    def __init__(self, token: str | None, services: tuple[str, ...] = ("lookalike.v1.Node",)) -> None:
        self.token = token or None
        self.services = services

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or self.token is None:
            return handler
        if details.method.lstrip("/").split("/", 1)[0] not in self.services:
            return handler
        given = bearer_token(details.invocation_metadata)
        if given and tokens_equal(given, self.token):
            return handler
        return deny(handler, grpc.StatusCode.UNAUTHENTICATED,
                    ("a wrong node token" if given else "a call without the farm's node token")
                    + " (start coordinator and nodes with the same LOOKALIKE_NODE_TOKEN)")


class _DecodeGuard(grpc.ServerInterceptor):
    """Requests that are not the message the method takes get INVALID_ARGUMENT naming the message,
    not gRPC's bare INTERNAL "Exception deserializing request"."""

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None or not details.method.startswith("/lookalike."):
            return handler
        parse = handler.request_deserializer
        method = details.method

        def decoded(raw):
            try:
                return parse(raw)
            except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's bytes
                raise InputError(f"{method}: the request is not a valid message of this method "
                                 f"({type(exc).__name__}); send the message the .proto declares") from None

        return self.rewrap(handler, method, decoded)

    @staticmethod
    def rewrap(handler, method: str, decoded: Callable):
        """The (sync) handler with `decoded` run inside its behavior, where errors become statuses."""
        if handler.request_streaming:
            inner = handler.stream_stream if handler.response_streaming else handler.stream_unary

            def streamed(raw_iter, context):
                # Raised inside the handler, where `mapped` turns InputError into INVALID_ARGUMENT.
                return inner((decoded(raw) for raw in raw_iter), context)

            field = "stream_stream" if handler.response_streaming else "stream_unary"
        else:
            inner = handler.unary_stream if handler.response_streaming else handler.unary_unary

            def streamed(raw, context):
                from lookalike.errors import LimitError

                try:
                    request = decoded(raw)
                except LookalikeError as exc:
                    code = grpc.StatusCode.RESOURCE_EXHAUSTED if isinstance(exc, LimitError) else grpc.StatusCode.INVALID_ARGUMENT
                    context.abort(code, str(exc))
                return inner(request, context)

            field = "unary_stream" if handler.response_streaming else "unary_unary"
        return handler._replace(request_deserializer=None, **{field: streamed})


# -- limits on what one peer or tenant may hold ----------------------------------------------
KIB, MIB = 1 << 10, 1 << 20


@dataclass(frozen=True)
class Limits:
    """What a server lets one caller hold, and how big a request may be before it is decoded.

    `tenant_of(metadata)` names the caller's tenant (None: no tenant, e.g. a call without a valid token,
    which the auth interceptor refuses anyway); without it only the per-peer and total caps apply.
    `request_bytes` maps a full method name (/pkg.Service/Method) to its largest request message;
    every other method takes `default_request_bytes`. A stream counts against the caps for its whole
    life; a unary call only while its handler runs (it holds one of the pool's threads)."""

    idle_s: float = 30.0  # a stream with no message from the client (or a reply it does not take)
    streams_per_peer: int = 256  # per client IP: what one NAT or one host may hold
    streams_per_tenant: int = 64
    streams_total: int = 4096
    calls_per_tenant: int | None = None  # unary handlers in flight per tenant (None: no cap)
    tenant_of: Callable[[Any], str | None] | None = None
    tenant_services: tuple[str, ...] = ()  # the services whose calls act for a tenant
    request_bytes: Mapping[str, int] = field(default_factory=dict)
    default_request_bytes: int = MAX_MESSAGE

    @property
    def max_request_bytes(self) -> int:
        return max([self.default_request_bytes, *self.request_bytes.values()])

    def request_limit(self, method: str) -> int:
        return self.request_bytes.get(method, self.default_request_bytes)


def _peer_ip(context) -> str:
    """The client's address without its port: "ipv4:10.0.0.7:51234" -> "ipv4:10.0.0.7"."""
    peer = context.peer() or "?"
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer


class _Counts:
    """Thread-safe counters of held streams and calls by key, each with its own cap."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def take(self, wants: list[tuple[str, str, int]]) -> str | None:
        """Take one of each (kind, key, cap), all or nothing; the refused kind's words, or None when taken."""
        with self._lock:
            for kind, key, cap in wants:
                if self._held.get((kind, key), 0) >= cap:
                    return f"{kind} {key}" if key else kind
            for kind, key, _ in wants:
                self._held[(kind, key)] = self._held.get((kind, key), 0) + 1
        return None

    def give(self, wants: list[tuple[str, str, int]]) -> None:
        with self._lock:
            for kind, key, _ in wants:
                n = self._held.get((kind, key), 0) - 1
                if n > 0:
                    self._held[(kind, key)] = n
                else:
                    self._held.pop((kind, key), None)

    def held(self, kind: str, key: str = "") -> int:
        with self._lock:
            return self._held.get((kind, key), 0)


def _behavior(handler) -> tuple[str, Callable]:
    for name in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        fn = getattr(handler, name)
        if fn is not None:
            return name, fn
    raise ValueError("a handler without a behavior")


def _is_async(fn: Callable) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


class _Idle(Exception):
    pass


async def _within(awaitable, seconds: float):
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        raise _Idle(f"the stream was idle for {seconds:.0f} s (nothing sent, or a reply not read): send the "
                    "next message sooner, or open it again") from None


class LimitsInterceptor(grpc.aio.ServerInterceptor):
    """Applies `Limits` to every call of an asyncio server (see Limits)."""

    def __init__(self, limits: Limits, workers: int, pool: futures.ThreadPoolExecutor | None = None) -> None:
        self.limits = limits
        self.pool = pool
        # A stream served by a plain (sync) handler holds a pool thread, like a unary call: a quarter
        # of the pool at most, whoever opens them.
        self.sync_streams = max(1, workers // 4)
        self.counts = _Counts()

    def _wants(self, details, context, streaming: bool, sync: bool) -> list[tuple[str, str, int]]:
        lim = self.limits
        service = details.method.lstrip("/").split("/", 1)[0]
        tenant = None
        if lim.tenant_of is not None and service in lim.tenant_services:
            tenant = lim.tenant_of(details.invocation_metadata)
        if not streaming:
            if lim.calls_per_tenant is None or tenant is None:
                return []
            return [("calls of tenant", tenant, lim.calls_per_tenant)]
        wants = [("streams from", _peer_ip(context), lim.streams_per_peer), ("streams in all", "", lim.streams_total)]
        if tenant is not None:
            wants.append(("streams of tenant", tenant, lim.streams_per_tenant))
        if sync:
            wants.append(("threaded streams", "", self.sync_streams))
        return wants

    @staticmethod
    def _refusal(what: str) -> str:
        return (f"too many open calls ({what} is at its limit): close some streams or retry later "
                "(a watch or upload you no longer need still counts until it is cancelled)")

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None
        kind, fn = _behavior(handler)
        streaming = handler.request_streaming or handler.response_streaming
        counts, idle = self.counts, self.limits.idle_s
        wants_of = functools.partial(self._wants, details, streaming=streaming, sync=not _is_async(fn))

        if not _is_async(fn) and not streaming:
            pool = self.pool

            async def in_thread(request, context):
                # A plain unary handler runs in the pool with a context whose is_active() follows the call
                # (gRPC's own sync context on an asyncio server has none): work nobody awaits stops.
                wants = wants_of(context)
                refused = counts.take(wants)
                if refused:
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self._refusal(refused))
                shim = _SyncContext(context)
                try:
                    return await asyncio.get_running_loop().run_in_executor(pool, fn, request, shim)
                except _Aborted:
                    await context.abort(shim.aborted[0], shim.aborted[1])
                except asyncio.CancelledError:  # the client went (or the deadline passed): the call task ends
                    shim.gone = True
                    raise
                finally:
                    counts.give(wants)

            return handler._replace(**{kind: in_thread})
        if not _is_async(fn):

            def sync_guarded(request, context):
                wants = wants_of(context)
                refused = counts.take(wants)
                if refused:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self._refusal(refused))
                if not handler.response_streaming:
                    try:
                        return fn(request, context)
                    finally:
                        counts.give(wants)
                return _released(fn(request, context), lambda: counts.give(wants))

            return handler._replace(**{kind: sync_guarded})

        async def guarded(request, context):
            wants = wants_of(context)
            refused = counts.take(wants)
            if refused:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self._refusal(refused))
            try:
                if handler.request_streaming:
                    request = _idle_reader(request, idle)
                if not handler.response_streaming:
                    return await fn(request, context)
                out = fn(request, context)
                if not inspect.isasyncgen(out):
                    await out  # a handler that writes with context.write itself
                    return None
                async for msg in out:
                    await _within(context.write(msg), idle)
                return None
            except _Idle as exc:
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc))
            finally:
                counts.give(wants)

        return handler._replace(**{kind: guarded})


class _Aborted(Exception):
    pass


class _SyncContext:
    """What a plain handler gets as its context on an asyncio server: a threaded server's context
    (abort raises, is_active() follows the call) over the call's asyncio context."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.aborted: tuple[grpc.StatusCode, str] | None = None
        self.gone = False

    def is_active(self) -> bool:
        return not (self.gone or self._inner.done())

    def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        self.aborted = (code, details)
        raise _Aborted(details)

    def code(self):
        return self.aborted[0] if self.aborted else None

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def _released(gen, release: Callable[[], None]):
    try:
        yield from gen
    finally:
        release()


async def _idle_reader(requests, idle_s: float):
    it = requests.__aiter__()
    while True:
        try:
            msg = await _within(it.__anext__(), idle_s)
        except StopAsyncIteration:
            return
        yield msg


class _SyncAdapter(grpc.aio.ServerInterceptor):
    """A plain `grpc.ServerInterceptor` (which only picks a handler, never awaits) on an asyncio server."""

    def __init__(self, inner: grpc.ServerInterceptor) -> None:
        self.inner = inner

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        picked = self.inner.intercept_service(lambda _d: handler, details)
        refusal = getattr(_behavior(picked)[1], "refusal", None) if picked is not None else None
        if refusal is None:
            return picked
        code, message = refusal

        async def refuse(request, context):
            await context.abort(code, message)

        return _shaped(picked, refuse)


class _AioDecodeGuard(grpc.aio.ServerInterceptor):
    """_DecodeGuard for an asyncio server, and each method's request size checked before decoding."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method, limit, parse = details.method, self.limits.request_limit(details.method), handler.request_deserializer

        def decoded(raw):
            if len(raw) > limit:
                from lookalike.errors import LimitError

                raise LimitError(f"{method}: a request message of {len(raw)} bytes; this method takes at most "
                                 f"{limit} (uploads go in chunks)")
            try:
                return parse(raw)
            except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's bytes
                raise InputError(f"{method}: the request is not a valid message of this method "
                                 f"({type(exc).__name__}); send the message the .proto declares") from None

        if not method.startswith("/lookalike."):
            # Health, reflection: gRPC's own handling of a bad message, but the size still checked first.
            def sized(raw):
                if len(raw) > limit:
                    raise ValueError(f"a request of {len(raw)} bytes")
                return parse(raw)

            return handler._replace(request_deserializer=sized)
        if not _is_async(_behavior(handler)[1]):
            return _DecodeGuard.rewrap(handler, method, decoded)
        kind, inner = _behavior(handler)

        async def refuse(context, exc):
            from lookalike.errors import LimitError

            code = grpc.StatusCode.RESOURCE_EXHAUSTED if isinstance(exc, LimitError) else grpc.StatusCode.INVALID_ARGUMENT
            await context.abort(code, str(exc))

        if handler.request_streaming:
            async def messages(raw_iter):
                async for raw in raw_iter:
                    yield decoded(raw)  # raised inside the handler, where `mapped` turns it into a status

            if inspect.isasyncgenfunction(inner):
                async def streamed(raw_iter, context):
                    async for item in inner(messages(raw_iter), context):
                        yield item
            else:
                async def streamed(raw_iter, context):
                    return await inner(messages(raw_iter), context)
        elif inspect.isasyncgenfunction(inner):
            async def streamed(raw, context):
                try:
                    request = decoded(raw)
                except LookalikeError as exc:
                    await refuse(context, exc)
                async for item in inner(request, context):
                    yield item
        else:
            async def streamed(raw, context):
                try:
                    request = decoded(raw)
                except LookalikeError as exc:
                    await refuse(context, exc)
                return await inner(request, context)

        return handler._replace(request_deserializer=None, **{kind: streamed})


def read_pem(path: str, what: str) -> bytes:
    from lookalike.errors import ConfigError

    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    if b"-----BEGIN" not in data:
        raise ConfigError(f"the {what} {path} is not a PEM file", hint="pass a PEM (-----BEGIN ...) file")
    return data


def server_tls(settings) -> tuple[bytes, bytes] | None:
    """(certificate chain, private key) PEM from settings.tls_cert/tls_key, or None for plaintext."""
    from lookalike.errors import ConfigError

    if not settings.tls_cert and not settings.tls_key:
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise ConfigError("TLS needs both a certificate and its key",
                          hint="set LOOKALIKE_TLS_CERT and LOOKALIKE_TLS_KEY (or neither)")
    return read_pem(settings.tls_cert, "TLS certificate"), read_pem(settings.tls_key, "TLS key")


class LoopServer:
    """An asyncio gRPC server on an event loop thread of its own, stopped and awaited like a
    `grpc.Server` (`stop(grace).wait()`, `wait_for_termination()`), so callers need no asyncio."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread, server, pools: list) -> None:
        self.loop, self._thread, self._server, self._pools = loop, thread, server, pools
        self.limits_interceptor: LimitsInterceptor | None = None
        self._done = threading.Event()

    def call(self, coro, timeout: float | None = None):
        """Run a coroutine on the server's loop (e.g. a health status change) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, grace: float | None) -> threading.Event:
        if not self._done.is_set():
            try:
                self.call(self._server.stop(grace))
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(10)
                for pool in self._pools:
                    pool.shutdown(wait=False, cancel_futures=True)
                self._done.set()
        return self._done

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


def make_server(
    listen: str,
    registrations: Iterable[tuple[Callable[[Any, grpc.Server], None], Any, str]],
    *,
    workers: int = 32,
    interceptors: Iterable[grpc.ServerInterceptor] = (),
    tls: tuple[bytes, bytes] | None = None,
    limits: Limits | None = None,
    reflection_on: bool = True,
) -> tuple[LoopServer, int]:
    """A started asyncio server on `listen` (HOST:PORT, port 0 picks one) with health and reflection;
    TLS with `tls` = (certificate chain PEM, private key PEM).

    `registrations` are (add_XServicer_to_server, servicer, full service name); a servicer's plain
    methods run in a pool of `workers` threads, its `async def` methods on the loop (streams should be
    those: a plain streaming method holds a thread for its whole life). `interceptors` are plain
    `grpc.ServerInterceptor`s that pick a handler (auth). Returns (server, port).
    """
    limits = limits or Limits()
    loop = asyncio.new_event_loop()
    pool = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc")
    # Short blocking work of the async handlers (state reads, store chunks): a pool apart, so full
    # unary threads never stall a stream's next step, nor the other way round.
    io_pool = futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="rpc-io")
    loop.set_default_executor(io_pool)
    thread = threading.Thread(target=loop.run_forever, name=f"grpc-loop-{listen}", daemon=True)
    thread.start()
    guard = LimitsInterceptor(limits, workers, pool)

    async def build():
        server = grpc.aio.server(
            migration_thread_pool=pool,
            options=[*SERVER_OPTIONS, ("grpc.max_send_message_length", MAX_MESSAGE),
                     ("grpc.max_receive_message_length", limits.max_request_bytes + 64 * KIB)],
            interceptors=[*(_SyncAdapter(i) for i in interceptors), guard, _AioDecodeGuard(limits)],
        )
        health_servicer = health.aio.HealthServicer()
        names = [health.SERVICE_NAME]
        for add, servicer, full_name in registrations:
            add(servicer, server)
            names.append(full_name)
            await health_servicer.set(full_name, health_pb2.HealthCheckResponse.SERVING)
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        if reflection_on:
            reflection.enable_server_reflection([reflection.SERVICE_NAME, *names], server)
        try:
            if tls is not None:
                port = server.add_secure_port(listen, grpc.ssl_server_credentials([(tls[1], tls[0])]))
            else:
                port = server.add_insecure_port(listen)
        except RuntimeError:
            port = 0
        if port:
            await server.start()
        return server, port

    try:
        server, port = asyncio.run_coroutine_threadsafe(build(), loop).result(30)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        raise
    if port == 0:
        from lookalike.errors import ConfigError

        loop.call_soon_threadsafe(loop.stop)
        raise ConfigError(f"cannot listen on {listen}: the address is taken or not local", hint="pick another --listen")
    served = LoopServer(loop, thread, server, [pool, io_pool])
    served.limits_interceptor = guard
    return served, port


def make_control_server(
    listen: str,
    registrations: Iterable[tuple[Callable[[Any, grpc.Server], None], Any, str]],
    *,
    workers: int = 8,
    interceptors: Iterable[grpc.ServerInterceptor] = (),
    tls: tuple[bytes, bytes] | None = None,
) -> tuple[grpc.Server, int]:
    """A plain threaded server for short unary calls between farm processes (node registration and
    heartbeats): its own port and threads, no streams at all (no reflection, no health Watch), small
    messages, and calls past `4 * workers` in flight refused at once instead of queued."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="control"),
        options=[*SERVER_OPTIONS, ("grpc.max_receive_message_length", 64 * KIB)],
        interceptors=[*interceptors, _DecodeGuard()],
        maximum_concurrent_rpcs=4 * workers,
    )
    for add, servicer, _full_name in registrations:
        add(servicer, server)
    if tls is not None:
        port = server.add_secure_port(listen, grpc.ssl_server_credentials([(tls[1], tls[0])]))
    else:
        port = server.add_insecure_port(listen)
    if port == 0:
        from lookalike.errors import ConfigError

        raise ConfigError(f"cannot listen on {listen} for node registration: the address is taken or not local",
                          hint="pick another --control-listen (LOOKALIKE_CONTROL_LISTEN)")
    server.start()
    return server, port


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
              grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer TOKEN` to every call."""

    def __init__(self, token: str) -> None:
        self._md = ("authorization", f"Bearer {token}")

    def _details(self, d):
        return d._replace(metadata=[*(d.metadata or ()), self._md]) if hasattr(d, "_replace") else _Details(d, self._md)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    intercept_unary_stream = intercept_unary_unary
    intercept_stream_unary = intercept_unary_unary
    intercept_stream_stream = intercept_unary_unary


class _Details(grpc.ClientCallDetails):
    def __init__(self, d, md) -> None:
        self.method, self.timeout, self.credentials = d.method, d.timeout, d.credentials
        self.metadata = [*(d.metadata or ()), md]
        self.wait_for_ready, self.compression = getattr(d, "wait_for_ready", None), getattr(d, "compression", None)


_INTERNAL: tuple[bytes | None, str | None, str | None] | None = None


def _internal_security() -> tuple[bytes | None, str | None, str | None]:
    """(CA PEM, node token, server name) for calls between farm processes, from LOOKALIKE_TLS_CA,
    LOOKALIKE_NODE_TOKEN and LOOKALIKE_TLS_SERVER_NAME: the node gateway runs in a Ray worker, which
    gets the coordinator's environment and no arguments."""
    global _INTERNAL
    if _INTERNAL is None:
        from lookalike.settings import Settings

        s = Settings.from_env()
        _INTERNAL = (read_pem(s.tls_ca, "TLS CA") if s.tls_ca else None, s.node_token, s.tls_server_name)
    return _INTERNAL


_DEFAULT: Any = object()


def channel(address: str, *, ca: bytes | None = _DEFAULT, token: str | None = _DEFAULT,
            server_name: str | None = _DEFAULT) -> grpc.Channel:
    """A channel to another farm process: TLS verified against `ca` when given, the bearer `token` on
    every call. Left out, they are the farm's own (CA, node token) from the environment."""
    if ca is _DEFAULT or token is _DEFAULT or server_name is _DEFAULT:
        d_ca, d_token, d_name = _internal_security()
        ca = d_ca if ca is _DEFAULT else ca
        token = d_token if token is _DEFAULT else token
        server_name = d_name if server_name is _DEFAULT else server_name
    options: list[tuple[str, Any]] = list(CHANNEL_OPTIONS)
    if ca is not None:
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        ch = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca), options=options)
    else:
        ch = grpc.insecure_channel(address, options=options)
    return grpc.intercept_channel(ch, _Bearer(token)) if token else ch


def wait_ready(ch: grpc.Channel, address: str, timeout: float) -> None:
    from lookalike.errors import UnreachableError

    try:
        grpc.channel_ready_future(ch).result(timeout=timeout)
    except grpc.FutureTimeoutError as exc:
        raise UnreachableError(
            f"nothing answers at {address} after {timeout:.0f} s",
            hint="check the address, and that `lookalike coordinator` (or the node) is running there; a TLS "
            "server needs LOOKALIKE_TLS_CA set to the CA that signed its certificate, a plaintext one needs it unset",
        ) from exc
