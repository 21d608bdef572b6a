"""gRPC plumbing shared by the coordinator and nodes: servers with health and reflection, and the one
place where LookalikeError becomes a gRPC status."""

from __future__ import annotations

import functools
import inspect
import traceback
from collections.abc import Callable, Iterable
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lookalike.errors import LookalikeError
from lookalike.obs import RPCS, get_logger

log = get_logger("grpc")

MAX_MESSAGE = 64 << 20
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
]


def _abort(context: grpc.ServicerContext, service: str, method: str, exc: BaseException) -> None:
    if isinstance(exc, LookalikeError):
        code = getattr(grpc.StatusCode, exc.grpc_code)
        message = str(exc)
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


def make_server(
    listen: str,
    registrations: Iterable[tuple[Callable[[Any, grpc.Server], None], Any, str]],
    *,
    workers: int = 32,
    interceptors: Iterable[grpc.ServerInterceptor] = (),
) -> tuple[grpc.Server, int]:
    """A started server on `listen` (HOST:PORT, port 0 picks one) with health and reflection.

    `registrations` are (add_XServicer_to_server, servicer, full service name). Returns (server, port).
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=CHANNEL_OPTIONS,
        interceptors=list(interceptors),
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
    port = server.add_insecure_port(listen)
    if port == 0:
        from lookalike.errors import ConfigError

        raise ConfigError(f"cannot listen on {listen}: the address is taken or not local", hint="pick another --listen")
    server.start()
    return server, port


def channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)


def wait_ready(ch: grpc.Channel, address: str, timeout: float) -> None:
    from lookalike.errors import UnreachableError

    try:
        grpc.channel_ready_future(ch).result(timeout=timeout)
    except grpc.FutureTimeoutError as exc:
        raise UnreachableError(
            f"nothing answers at {address} after {timeout:.0f} s",
            hint="check the address, and that `lookalike coordinator` (or the node) is running there",
        ) from exc
