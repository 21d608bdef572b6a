"""The one error tree of Lookalike, and the one table that carries it over gRPC.

    LookalikeError                 exit 1, gRPC INTERNAL
    ├── InputError                 exit 2, INVALID_ARGUMENT   bad media, bad request, bad option
    │   ├── NotFoundError          exit 2, NOT_FOUND          a project, file or segment that does not exist
    │   └── LimitError             exit 2, RESOURCE_EXHAUSTED past a size or rate limit
    ├── ConfigError                exit 3, FAILED_PRECONDITION a setting or address that cannot work
    ├── AuthError                  exit 3, UNAUTHENTICATED    no token, or a wrong one
    ├── ProviderError              exit 4, UNAVAILABLE (transient) / FAILED_PRECONDITION (permanent)
    ├── JobError                   exit 5, ABORTED            a job that failed past its retries
    ├── StoreError                 exit 6, UNAVAILABLE        the segment store or the state store failed
    ├── UnreachableError           exit 7, UNAVAILABLE        a coordinator or node that does not answer
    └── CancelledError             exit 8, CANCELLED

Every message tells the user what to do. `WIRE` below is the mapping to gRPC status codes, CLI exit
codes and the wire kind (the class name a server sends in the `lookalike-error` trailing metadata);
the classes take their `exit_code` and `grpc_code` from it, `lookalike.grpcutil.mapped` sends by it and
`lookalike.client` maps back by it, so a class crosses the wire as itself.
"""

from __future__ import annotations

from dataclasses import dataclass


class LookalikeError(Exception):
    """Base of every error Lookalike raises on purpose. `exit_code` and `grpc_code` come from `WIRE`."""

    exit_code: int
    grpc_code: str

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(LookalikeError):
    """Bad media or a bad request: the user can fix it by changing what they pass in."""


class NotFoundError(InputError):
    """A project, upload, file or segment that does not exist."""


class LimitError(InputError):
    """A tenant past a rate or size limit."""


class AuthError(LookalikeError):
    """A call without a valid token (exit 3 like any configuration error)."""


class ConfigError(LookalikeError):
    """A setting or an address that cannot work."""


class ProviderError(LookalikeError):
    """A generation provider failed. `transient` errors are retried, permanent ones never."""

    def __init__(self, message: str, *, transient: bool, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.transient = transient

    @property
    def grpc_code(self) -> str:  # type: ignore[override]
        return wire_of(self).code


class JobError(LookalikeError):
    """A job that failed past its retries."""


class StoreError(LookalikeError):
    """The segment store or the state store failed: wait for it, the project resumes."""


class UnreachableError(LookalikeError):
    """A coordinator or node that does not answer: check it runs, or try another."""


class CancelledError(LookalikeError):
    """A project or call cancelled on purpose."""


#: Trailing metadata key naming the error class a server raised ("StoreError"): UNAVAILABLE alone cannot
#: tell a store outage (wait for the store) from a dead server (try another).
KIND_KEY = "lookalike-error"


@dataclass(frozen=True)
class Wire:
    """One row of `WIRE`: how `error` crosses gRPC and how the CLI exits on it."""

    error: type[LookalikeError]
    code: str  # gRPC status code name
    exit_code: int
    transient: bool | None = None  # ProviderError only: which of its two codes this row is

    @property
    def kind(self) -> str:
        """The name sent under KIND_KEY."""
        return self.error.__name__

    def make(self, message: str) -> LookalikeError:
        if self.transient is not None:
            return self.error(message, transient=self.transient)  # type: ignore[call-arg]
        return self.error(message)


#: Every LookalikeError class, once (ProviderError twice: transient and permanent). A new class needs a
#: row here; tests/test_error_wire.py fails until it has one.
WIRE: tuple[Wire, ...] = (
    Wire(LookalikeError, "INTERNAL", 1),
    Wire(InputError, "INVALID_ARGUMENT", 2),
    Wire(NotFoundError, "NOT_FOUND", 2),
    Wire(LimitError, "RESOURCE_EXHAUSTED", 2),
    Wire(ConfigError, "FAILED_PRECONDITION", 3),
    Wire(AuthError, "UNAUTHENTICATED", 3),
    Wire(ProviderError, "UNAVAILABLE", 4, transient=True),
    Wire(ProviderError, "FAILED_PRECONDITION", 4, transient=False),
    Wire(JobError, "ABORTED", 5),
    Wire(StoreError, "UNAVAILABLE", 6),
    Wire(UnreachableError, "UNAVAILABLE", 7),
    Wire(CancelledError, "CANCELLED", 8),
)

#: A status without a kind (an interceptor's refusal, a transport failure, an older server): the code
#: alone picks the class. Codes several rows share go to the class that says what to check; the last
#: four no Lookalike server sends, but gRPC itself or a proxy may.
BARE_CODE: dict[str, type[LookalikeError]] = {
    **{w.code: w.error for w in WIRE if sum(o.code == w.code for o in WIRE) == 1},
    "UNAVAILABLE": UnreachableError,
    "FAILED_PRECONDITION": ConfigError,
    "DEADLINE_EXCEEDED": UnreachableError,
    "PERMISSION_DENIED": AuthError,
}

_BY_KIND: dict[str, list[Wire]] = {}
for _w in WIRE:
    _BY_KIND.setdefault(_w.kind, []).append(_w)
    _w.error.exit_code = _w.exit_code
    if _w.transient is None:
        _w.error.grpc_code = _w.code
del _w


def wire_of(exc: LookalikeError) -> Wire:
    """The row `exc` is sent by: its own class's, else its nearest ancestor's."""
    for cls in type(exc).__mro__:
        for w in WIRE:
            if w.error is cls and (w.transient is None or w.transient == getattr(exc, "transient", None)):
                return w
    raise AssertionError(f"{type(exc).__name__} is no LookalikeError")  # pragma: no cover - typed away


def error_kind(metadata) -> str | None:
    """The error class name a server put in its trailing metadata, if any."""
    for key, value in metadata or ():
        if key == KIND_KEY:
            return value
    return None


def from_grpc_code(code_name: str, message: str, kind: str | None = None) -> LookalikeError:
    """The error to raise on the client side for a gRPC status (by its name, e.g. 'NOT_FOUND'); `kind`,
    the class name from the trailing metadata, picks the exact class where the code is shared."""
    rows = _BY_KIND.get(kind or "", [])
    for w in rows:
        if w.code == code_name:
            return w.make(message)
    if rows:  # a known kind under an unexpected code: the kind is the more exact of the two
        return rows[0].make(message)
    cls = BARE_CODE.get(code_name, LookalikeError)
    return next(w for w in WIRE if w.error is cls).make(message)
