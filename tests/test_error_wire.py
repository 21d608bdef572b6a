"""An error's class crosses the wire: UNAVAILABLE alone cannot tell a store outage (wait) from a dead
server (try another), so servers name the class in trailing metadata and clients map it back."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from lookalike.client.sdk import Client

from lookalike.errors import StoreError, UnreachableError, error_kind, from_grpc_code
from lookalike.grpcutil import mapped


@mapped("test")
class _Failing:
    def Store(self, request, context):
        raise StoreError("could not write (the segment store s3://b): connection refused")

    def Crash(self, request, context):
        context.abort(grpc.StatusCode.UNAVAILABLE, "going away")


@pytest.fixture
def failing():
    svc = _Failing()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    handlers = {name: grpc.unary_unary_rpc_method_handler(getattr(svc, name)) for name in ("Store", "Crash")}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Failing", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    server.stop(None)


def _error(ch, method):
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(f"/t.Failing/{method}")(b"", timeout=5)
    return info.value


def test_a_store_error_is_named_on_the_wire_and_mapped_back(failing):
    exc = _error(failing, "Store")
    assert exc.code() is grpc.StatusCode.UNAVAILABLE
    assert error_kind(exc.trailing_metadata()) == "StoreError"
    assert isinstance(from_grpc_code("UNAVAILABLE", exc.details(), error_kind(exc.trailing_metadata())), StoreError)
    client = object.__new__(Client)
    client.address = "127.0.0.1:1"
    mapped_exc = client._mapped(exc)
    assert isinstance(mapped_exc, StoreError) and mapped_exc.exit_code == 6 and "segment store" in str(mapped_exc)


def test_an_unnamed_unavailable_stays_unreachable(failing):
    exc = _error(failing, "Crash")
    assert error_kind(exc.trailing_metadata()) is None
    client = object.__new__(Client)
    client.address = "127.0.0.1:1"
    assert isinstance(client._mapped(exc), UnreachableError)
