"""The one error tree of Lookalike.

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

Every message tells the user what to do. The mapping to gRPC status codes and CLI exit codes lives
here and nowhere else; `lookalike.client` maps gRPC errors back into this tree.
"""

from __future__ import annotations


class LookalikeError(Exception):
    """Base of every error Lookalike raises on purpose."""

    exit_code = 1
    grpc_code = "INTERNAL"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(LookalikeError):
    """Bad media or a bad request: the user can fix it by changing what they pass in."""

    exit_code = 2
    grpc_code = "INVALID_ARGUMENT"


class NotFoundError(InputError):
    grpc_code = "NOT_FOUND"


class LimitError(InputError):
    """A tenant past a rate or size limit."""

    grpc_code = "RESOURCE_EXHAUSTED"


class AuthError(LookalikeError):
    """A call without a valid token (exit 3 like any configuration error)."""

    exit_code = 3
    grpc_code = "UNAUTHENTICATED"


class ConfigError(LookalikeError):
    exit_code = 3
    grpc_code = "FAILED_PRECONDITION"


class ProviderError(LookalikeError):
    """A generation provider failed. `transient` errors are retried, permanent ones never."""

    exit_code = 4

    def __init__(self, message: str, *, transient: bool, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.transient = transient

    @property
    def grpc_code(self) -> str:  # type: ignore[override]
        return "UNAVAILABLE" if self.transient else "FAILED_PRECONDITION"


class JobError(LookalikeError):
    exit_code = 5
    grpc_code = "ABORTED"


class StoreError(LookalikeError):
    exit_code = 6
    grpc_code = "UNAVAILABLE"


class UnreachableError(LookalikeError):
    exit_code = 7
    grpc_code = "UNAVAILABLE"


class CancelledError(LookalikeError):
    exit_code = 8
    grpc_code = "CANCELLED"


_BY_GRPC = {
    "INVALID_ARGUMENT": InputError,
    "NOT_FOUND": NotFoundError,
    "FAILED_PRECONDITION": ConfigError,
    "ABORTED": JobError,
    "UNAVAILABLE": UnreachableError,
    "DEADLINE_EXCEEDED": UnreachableError,
    "CANCELLED": CancelledError,
    "UNAUTHENTICATED": AuthError,
    "RESOURCE_EXHAUSTED": LimitError,
}


#: Trailing metadata key naming the error class a server raised ("StoreError"): UNAVAILABLE alone cannot
#: tell a store outage (wait for the store) from a dead server (try another).
KIND_KEY = "lookalike-error"

_BY_NAME = {c.__name__: c for c in (InputError, NotFoundError, LimitError, AuthError, ConfigError, JobError,
                                    StoreError, UnreachableError, CancelledError)}


def error_kind(metadata) -> str | None:
    """The error class name a server put in its trailing metadata, if any."""
    for key, value in metadata or ():
        if key == KIND_KEY:
            return value
    return None


def from_grpc_code(code_name: str, message: str, kind: str | None = None) -> LookalikeError:
    """The error to raise on the client side for a gRPC status (by its name, e.g. 'NOT_FOUND'); `kind`,
    the class name from the trailing metadata, picks the exact class where the code is shared."""
    if kind in _BY_NAME:
        return _BY_NAME[kind](message)
    return _BY_GRPC.get(code_name, LookalikeError)(message)
