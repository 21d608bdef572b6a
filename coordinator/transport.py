"""How the dispatcher reaches nodes: unary calls by Node method name, raw message bytes both ways.

A `Transport` starts a call and hands back a handle; the dispatcher waits on handles, reads their
results and cancels calls by id. Every result is `(code, payload)`: code "OK" with the reply bytes, or
a gRPC status code name ("UNAVAILABLE", "INVALID_ARGUMENT", ...), "CANCELLED", or `STORE_DOWN`, with
the error's details as text.

- `RayTransport` (the default): a Ray actor, the gateway, makes the gRPC calls concurrently; handles
  are Ray ObjectRefs. Ray is imported only when one is made, so importing this module (or the
  dispatcher) does not import it.
- `InProcessTransport`: no Ray, no processes, no gRPC. Calls run on a small thread pool against
  Python handlers; handles are `concurrent.futures.Future`s. For unit tests, and for single-process
  runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import CancelledError as _FutureCancelled
from concurrent.futures import wait as _wait_futures
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from lookalike.obs import get_logger

log = get_logger("dispatch")

# What the gateway answers when a node says the segment store failed under it (S3 errors, a full disk):
# nobody's fault on our side, so the attempt is not charged, the node not blamed, and the project pauses.
STORE_DOWN = "STORE_UNAVAILABLE"

Result = tuple[str, bytes | str]


@runtime_checkable
class Transport(Protocol):
    """Unary calls to nodes. Results are `(code, payload)`, never raised (see the module docstring)."""

    def submit(self, address: str, method: str, payload: bytes, timeout: float, call_id: str = "") -> Hashable:
        """Start `method` on the node at `address` with the request bytes; returns a hashable handle.
        `call_id` (an attempt id) names the call for `cancel`."""
        ...

    def wait(self, handles: list, timeout: float) -> list:
        """The handles among `handles` that are done: at least one if any finishes within `timeout`
        seconds, else none."""
        ...

    def result(self, handle: Any, timeout: float | None = None) -> Result:
        """The call's `(code, payload)`, waiting up to `timeout` seconds (None: as long as it takes);
        raises (a TimeoutError of some kind) when it is not there in time."""
        ...

    def cancel(self, call_ids: list[str]) -> None:
        """Cancel calls in flight by their call ids (ids that are not in flight are ignored)."""
        ...

    def forget(self, address: str) -> None:
        """The node at `address` is gone: drop what is kept for it (its channel)."""
        ...

    def close(self) -> None:
        """Release the transport's resources; no call may be submitted afterwards."""
        ...


# -- Ray --------------------------------------------------------------------------------------------


class _NodeGatewayCalls:
    """Makes unary gRPC calls to nodes by method name, with raw message bytes both ways.

    The body of the Ray actor `NodeGateway` (`node_gateway()` makes the actor class, so that Ray is
    imported only when it is used)."""

    def __init__(self) -> None:
        import grpc

        self._grpc = grpc
        self._channels: dict[str, Any] = {}
        self._calls: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _channel(self, address: str):
        with self._lock:
            ch = self._channels.get(address)
            if ch is None:
                from lookalike.grpcutil import channel

                ch = self._channels[address] = channel(address)
            return ch

    def call(self, address: str, method: str, payload: bytes, timeout: float, call_id: str = "") -> tuple[str, bytes | str]:
        ch = self._channel(address)
        fn = ch.unary_unary(f"/lookalike.v1.Node/{method}")
        future = fn.future(payload, timeout=timeout)
        if call_id:
            with self._lock:
                self._calls[call_id] = future
        try:
            return "OK", future.result()
        except self._grpc.FutureCancelledError:
            return "CANCELLED", "cancelled by the coordinator"
        except self._grpc.RpcError as exc:
            from lookalike.errors import error_kind

            if error_kind(exc.trailing_metadata()) == "StoreError":
                return STORE_DOWN, exc.details() or str(exc)
            return exc.code().name, exc.details() or str(exc)
        finally:
            if call_id:
                with self._lock:
                    self._calls.pop(call_id, None)

    def cancel(self, call_ids: list[str]) -> int:
        """Cancel calls in flight (the node sees its request cancelled and stops the range)."""
        with self._lock:
            futures = [self._calls.get(i) for i in call_ids]
        return sum(1 for f in futures if f is not None and f.cancel())

    def forget(self, address: str) -> None:
        with self._lock:
            ch = self._channels.pop(address, None)
        if ch is not None:
            ch.close()


_gateway_class: Any = None
_gateway_lock = threading.RLock()


def node_gateway() -> Any:
    """The Ray actor class `NodeGateway`: `_NodeGatewayCalls` under `@ray.remote(num_cpus=0,
    max_concurrency=64)`, made once, on first use (Ray names its actors after it)."""
    global _gateway_class
    with _gateway_lock:
        if _gateway_class is None:
            import ray

            named = type("NodeGateway", (_NodeGatewayCalls,), {"__module__": __name__,
                                                              "__doc__": _NodeGatewayCalls.__doc__})
            _gateway_class = ray.remote(num_cpus=0, max_concurrency=64)(named)  # type: ignore[call-overload]
        return _gateway_class


def __getattr__(name: str) -> Any:
    # `from lookalike.coordinator.transport import NodeGateway` still gives the Ray actor class, made
    # (and Ray imported) only then.
    if name == "NodeGateway":
        return node_gateway()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _start_ray(address: str | None, tries: int = 2) -> None:
    """Join a Ray cluster, or start a local one. On a loaded machine a local Ray can miss its start-up
    deadline: it is tried again once before the error, which then says what to do."""
    import ray

    from lookalike.errors import ConfigError

    for attempt in range(tries):
        try:
            if address:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            else:
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
            return
        except Exception as exc:  # noqa: BLE001 - Ray raises plain Exceptions for start-up failures
            ray.shutdown()
            if attempt + 1 == tries:
                raise ConfigError(
                    f"Ray did not start ({exc})",
                    hint="check --ray-address, or free some CPU and memory and try again",
                ) from exc
            log.warning("ray_start_retry", error=str(exc))


class RayTransport:
    """Calls through the Ray actor `NodeGateway`: joins the Ray cluster at `address` (or starts a
    local one) unless Ray is already initialized in this process. Handles are Ray ObjectRefs."""

    def __init__(self, address: str | None = None) -> None:
        import ray

        self._ray = ray
        if not ray.is_initialized():
            _start_ray(address)
        self.gateway = node_gateway().remote()

    def submit(self, address: str, method: str, payload: bytes, timeout: float, call_id: str = "") -> Hashable:
        return self.gateway.call.remote(address, method, payload, timeout, call_id)

    def wait(self, handles: list, timeout: float) -> list:
        if not handles:
            return []
        ready, _ = self._ray.wait(list(handles), num_returns=1, timeout=timeout)
        return ready

    def result(self, handle: Any, timeout: float | None = None) -> Result:
        return self._ray.get(handle, timeout=timeout)

    def cancel(self, call_ids: list[str]) -> None:
        self.gateway.cancel.remote(call_ids)

    def forget(self, address: str) -> None:
        self.gateway.forget.remote(address)

    def close(self) -> None:
        """Ends the gateway actor; Ray itself stays up (other code in this process may use it)."""
        gateway, self.gateway = self.gateway, None
        if gateway is not None:
            try:
                self._ray.kill(gateway)
            except Exception as exc:  # noqa: BLE001 - Ray already shut down: nothing left to end
                log.warning("gateway_not_killed", error=repr(exc))


# -- in process -------------------------------------------------------------------------------------


class TransportError(Exception):
    """Raised by an in-process handler to answer with a status instead of a reply: the call's result
    is `(code, details)`, e.g. `TransportError("UNAVAILABLE", "node restarting")`, or
    `TransportError(STORE_DOWN, "bucket gone")` for a segment store failure under the node."""

    def __init__(self, code: str, details: str = "") -> None:
        super().__init__(f"{code}: {details}" if details else code)
        self.code = code
        self.details = details


@dataclass
class CallContext:
    """What an in-process handler may know about the call it serves (see `current_call`).

    `cancelled` is set when the coordinator cancels the call (or the transport closes): a handler
    that can stop early waits on or polls it, and then typically raises
    `TransportError("CANCELLED", ...)`. Its answer is the call's result whatever it is (as a node's
    reply that raced the cancel would be). `timeout` is the call's deadline in seconds, for the handler
    to honour if it wants to; the transport does not enforce it."""

    address: str
    method: str
    call_id: str
    timeout: float
    cancelled: threading.Event = field(default_factory=threading.Event)


_current = threading.local()


def current_call() -> CallContext | None:
    """The `CallContext` of the in-process call this thread is serving (None outside a handler)."""
    return getattr(_current, "ctx", None)


Handler = Callable[[str, str, bytes], Any]


class InProcessTransport:
    """Calls Python handlers on a thread pool: no Ray, no processes, no gRPC.

    `handlers` is either one callable `handler(address, method, request_bytes) -> reply_bytes`, or a
    mapping address -> node object whose method named like the gRPC method (`Analyze`,
    `RenderRange`, ...) takes the request bytes and returns the reply bytes (a protobuf message is
    serialized for it). A handler that raises `TransportError(code, details)` answers `(code,
    details)`; any other exception answers ("UNKNOWN", its repr), as a gRPC server does. An address
    the mapping lacks answers UNAVAILABLE, a method the node object lacks UNIMPLEMENTED.

    Handles are the pool's futures. `cancel` cancels the calls that have not started and sets
    the `cancelled` event of those that have (see `CallContext`, `current_call`). `forget` only
    records the address (in `forgotten`); `cancelled_ids` lists every id `cancel` was given.
    """

    def __init__(self, handlers: Handler | Mapping[str, Any], *, max_workers: int = 8) -> None:
        self._handlers = handlers
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="inprocess-call")
        self._lock = threading.Lock()
        self._calls: dict[str, tuple[Future, CallContext]] = {}
        self.forgotten: list[str] = []
        self.cancelled_ids: list[str] = []
        self._closed = False

    def _serve(self, ctx: CallContext, payload: bytes) -> Result:
        _current.ctx = ctx
        try:
            if isinstance(self._handlers, Mapping):
                node = self._handlers.get(ctx.address)
                if node is None:
                    return "UNAVAILABLE", f"no node at {ctx.address}"
                fn = getattr(node, ctx.method, None)
                if fn is None:
                    return "UNIMPLEMENTED", f"the node at {ctx.address} has no method {ctx.method}"
                reply = fn(payload)
            else:
                reply = self._handlers(ctx.address, ctx.method, payload)
            if hasattr(reply, "SerializeToString"):
                reply = reply.SerializeToString()
            return "OK", bytes(reply)
        except TransportError as exc:
            return exc.code, exc.details
        except Exception as exc:  # noqa: BLE001 - a handler's bug is the call's error, as on a server
            return "UNKNOWN", repr(exc)
        finally:
            _current.ctx = None

    def submit(self, address: str, method: str, payload: bytes, timeout: float, call_id: str = "") -> Hashable:
        ctx = CallContext(address, method, call_id, timeout)
        with self._lock:
            if self._closed:
                raise RuntimeError("the in-process transport is closed")
            future = self._pool.submit(self._serve, ctx, bytes(payload))
            if call_id:
                self._calls[call_id] = (future, ctx)
        if call_id:
            future.add_done_callback(self._done)
        return future

    def _done(self, future: Future) -> None:
        with self._lock:
            for call_id, (f, _ctx) in list(self._calls.items()):
                if f is future:
                    del self._calls[call_id]

    def wait(self, handles: list, timeout: float) -> list:
        if not handles:
            return []
        done, _ = _wait_futures(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return [h for h in handles if h in done]

    def result(self, handle: Any, timeout: float | None = None) -> Result:
        try:
            return handle.result(timeout=timeout)
        except _FutureCancelled:
            return "CANCELLED", "cancelled by the coordinator"

    def cancel(self, call_ids: list[str]) -> None:
        with self._lock:
            self.cancelled_ids.extend(call_ids)
            calls = [self._calls.get(i) for i in call_ids]
        for entry in calls:
            if entry is not None:
                future, ctx = entry
                ctx.cancelled.set()
                future.cancel()  # only a call that has not started yet is cancelled this way

    def forget(self, address: str) -> None:
        with self._lock:
            self.forgotten.append(address)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            calls = list(self._calls.values())
        for future, ctx in calls:
            ctx.cancelled.set()
            future.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
