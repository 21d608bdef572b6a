"""gRPC plumbing shared by the coordinator and nodes: servers with health and reflection (and TLS when
given a certificate), channels between farm processes (TLS and the node token when configured), and
the one place where LookalikeError becomes a gRPC status (by the table `lookalike.errors.WIRE`)."""

from __future__ import annotations

import functools
import hmac
import inspect
import traceback
from collections.abc import Callable, Iterable
from concurrent import futures
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


def _abort(context: grpc.ServicerContext, service: str, method: str, exc: BaseException) -> None:
    code_set = context.code() if hasattr(context, "code") else None
    if code_set is not None and code_set != grpc.StatusCode.OK and not isinstance(exc, LookalikeError):
        # The handler aborted with its own status (e.g. UNIMPLEMENTED): keep it.
        RPCS.labels(service, method, code_set.name).inc()
        raise exc
    if isinstance(exc, LookalikeError):
        wire = wire_of(exc)
        code = getattr(grpc.StatusCode, wire.code)
        message = str(exc)
        context.set_trailing_metadata(((KIND_KEY, wire.kind),))
    else:
        code = grpc.StatusCode.INTERNAL
        message = f"internal error in {service}.{method}: {type(exc).__name__}: {exc} (see the server log)"
        log.error("rpc_crashed", service=service, method=method, error=repr(exc), tb=traceback.format_exc())
    RPCS.labels(service, method, code.name).inc()
    context.abort(code, message)


def mapped(service: str) -> Callable[[type], type]:
    """Class decorator: every public RPC method maps LookalikeError to its status, once, here."""

    def wrap_method(name: str, fn: Callable) -> Callable:
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

        if handler.request_streaming:
            inner = handler.stream_stream if handler.response_streaming else handler.stream_unary

            def streamed(raw_iter, context):
                # Raised inside the handler, where `mapped` turns InputError into INVALID_ARGUMENT.
                return inner((decoded(raw) for raw in raw_iter), context)

            field = "stream_stream" if handler.response_streaming else "stream_unary"
        else:
            inner = handler.unary_stream if handler.response_streaming else handler.unary_unary

            def streamed(raw, context):
                try:
                    request = decoded(raw)
                except InputError as exc:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                return inner(request, context)

            field = "unary_stream" if handler.response_streaming else "unary_unary"
        return handler._replace(request_deserializer=None, **{field: streamed})


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


def make_server(
    listen: str,
    registrations: Iterable[tuple[Callable[[Any, grpc.Server], None], Any, str]],
    *,
    workers: int = 32,
    interceptors: Iterable[grpc.ServerInterceptor] = (),
    tls: tuple[bytes, bytes] | None = None,
) -> tuple[grpc.Server, int]:
    """A started server on `listen` (HOST:PORT, port 0 picks one) with health and reflection; TLS with
    `tls` = (certificate chain PEM, private key PEM).

    `registrations` are (add_XServicer_to_server, servicer, full service name). Returns (server, port).
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=CHANNEL_OPTIONS,
        interceptors=[*interceptors, _DecodeGuard()],
    )
    health_servicer = health.HealthServicer()
    names = [reflection.SERVICE_NAME, health.SERVICE_NAME]
    for add, servicer, full_name in registrations:
        add(servicer, server)
        names.append(full_name)
        health_servicer.set(full_name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(names, server)
    if tls is not None:
        port = server.add_secure_port(listen, grpc.ssl_server_credentials([(tls[1], tls[0])]))
    else:
        port = server.add_insecure_port(listen)
    if port == 0:
        from lookalike.errors import ConfigError

        raise ConfigError(f"cannot listen on {listen}: the address is taken or not local", hint="pick another --listen")
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
