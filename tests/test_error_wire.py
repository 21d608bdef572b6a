"""Every error class crosses the wire as itself: a server raises it inside `mapped`, the client's own
mapping (Client._mapped) gives back the same class, message and exit code, by the one table
`lookalike.errors.WIRE`. UNAVAILABLE alone cannot tell a store outage (wait) from a dead server (try
another), so servers name the class in trailing metadata and clients map it back."""

from __future__ import annotations

import ast
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from lookalike.client.sdk import Client

import lookalike.errors as errors
from lookalike.errors import (
    BARE_CODE,
    KIND_KEY,
    WIRE,
    AuthError,
    LimitError,
    LookalikeError,
    ProviderError,
    StoreError,
    UnreachableError,
    error_kind,
    from_grpc_code,
)
from lookalike.grpcutil import mapped

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("lookalike", "coordinator", "nodes", "kernels", "client")
MESSAGE, HINT = "the thing went wrong", "do this instead"


def _raise(row_index: int) -> LookalikeError:
    row = WIRE[row_index]
    if row.transient is not None:
        return row.error(MESSAGE, transient=row.transient, hint=HINT)  # type: ignore[call-arg]
    return row.error(MESSAGE, hint=HINT)


@mapped("test")
class _Failing:
    def Raise(self, request, context):
        raise _raise(int(request))

    def Abort(self, request, context):
        # What an interceptor's refusal or a dying server looks like: a bare status, no kind.
        context.abort(getattr(grpc.StatusCode, request.decode()), "refused by the test")


@pytest.fixture(scope="module")
def channel():
    svc = _Failing()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    handlers = {name: grpc.unary_unary_rpc_method_handler(getattr(svc, name)) for name in ("Raise", "Abort")}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Failing", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    server.stop(None)


def _rpc_error(ch, method: str, payload: bytes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(f"/t.Failing/{method}")(payload, timeout=5)
    return info.value


def _client() -> Client:
    client = object.__new__(Client)  # the mapping only; no coordinator to connect to
    client.address = "127.0.0.1:1"
    return client


def error_classes(root: Path = ROOT) -> dict[str, str]:
    """{class name: where} of every class in the source tree that derives from a LookalikeError class
    (by base names, followed across files), found without importing the modules."""
    bases: dict[str, tuple[list[str], str]] = {}
    for folder in SOURCES:
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.ClassDef):
                    names = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases]
                    bases[node.name] = (names, f"{path.relative_to(root)}:{node.lineno}")
    found = {"LookalikeError": bases.get("LookalikeError", ([], "lookalike/errors.py"))[1]}
    grew = True
    while grew:
        grew = False
        for name, (names, where) in bases.items():
            if name not in found and any(b in found for b in names):
                found[name] = where
                grew = True
    return found


def untabled(classes) -> list[str]:
    kinds = {w.kind for w in WIRE}
    return sorted(c for c in classes if c not in kinds)


def _subclasses(cls: type) -> set[type]:
    """Subclasses defined in the project's modules (not the throwaway ones tests define)."""
    out = set()
    for sub in cls.__subclasses__():
        out |= ({sub} if sub.__module__.startswith("lookalike") else set()) | _subclasses(sub)
    return out


ROWS = [pytest.param(i, id=f"{w.kind}/{w.code}") for i, w in enumerate(WIRE)]


@pytest.mark.parametrize("row_index", ROWS)
def test_every_error_crosses_the_wire_as_itself(channel, row_index):
    row = WIRE[row_index]
    sent = _raise(row_index)
    exc = _rpc_error(channel, "Raise", str(row_index).encode())
    assert exc.code() is getattr(grpc.StatusCode, row.code)
    assert error_kind(exc.trailing_metadata()) == row.kind
    got = _client()._mapped(exc)
    assert type(got) is row.error and got.exit_code == row.exit_code == sent.exit_code
    if row.error is StoreError:  # the client's own words, around the server's
        assert str(sent) in str(got) and "cannot reach its store" in str(got) and got.hint
    else:
        assert str(got) == str(sent)
    if row.transient is not None:
        assert got.transient is row.transient


def test_every_error_class_in_the_tree_has_a_row():
    assert untabled(error_classes()) == [], "add a row to lookalike.errors.WIRE"
    assert untabled(c.__name__ for c in _subclasses(LookalikeError)) == []


def test_a_new_error_class_without_a_row_fails(tmp_path):
    for folder in SOURCES:
        (tmp_path / folder).mkdir()
    (tmp_path / "lookalike" / "errors.py").write_text((ROOT / "lookalike" / "errors.py").read_text())
    (tmp_path / "coordinator" / "quota.py").write_text(
        "from lookalike import errors\n\nclass QuotaError(errors.LimitError):\n    pass\n"
        "\n\nclass MonthlyQuotaError(QuotaError):\n    pass\n\n\nclass Unrelated(ValueError):\n    pass\n")
    assert untabled(error_classes(tmp_path)) == ["MonthlyQuotaError", "QuotaError"]


def test_the_classes_take_their_codes_from_the_table():
    for w in WIRE:
        made = w.make("m")
        assert made.exit_code == w.exit_code and made.grpc_code == w.code
        assert errors.wire_of(made) is w
    assert {w.error for w in WIRE} == {LookalikeError} | _subclasses(LookalikeError)


def test_a_subclass_without_a_row_is_sent_as_its_nearest_row():
    class Quota(LimitError):
        pass

    assert errors.wire_of(Quota("over")).kind == "LimitError"


def test_classes_named_by_their_old_modules_are_the_tables():
    from lookalike.coordinator import auth

    assert auth.AuthError is AuthError and auth.LimitError is LimitError


@pytest.mark.parametrize("code,cls,exit_code", [
    ("UNAUTHENTICATED", AuthError, 3),
    ("PERMISSION_DENIED", AuthError, 3),
    ("RESOURCE_EXHAUSTED", LimitError, 2),
    ("INVALID_ARGUMENT", errors.InputError, 2),
    ("NOT_FOUND", errors.NotFoundError, 2),
    ("FAILED_PRECONDITION", errors.ConfigError, 3),
    ("DEADLINE_EXCEEDED", UnreachableError, 7),
    ("ABORTED", errors.JobError, 5),
    ("CANCELLED", errors.CancelledError, 8),
    ("UNIMPLEMENTED", LookalikeError, 1),
    ("INTERNAL", LookalikeError, 1),
])
def test_a_bare_status_maps_by_its_code(channel, code, cls, exit_code):
    exc = _rpc_error(channel, "Abort", code.encode())
    assert error_kind(exc.trailing_metadata()) is None
    got = _client()._mapped(exc)
    assert type(got) is cls and got.exit_code == exit_code and str(got) == "refused by the test"
    assert BARE_CODE.get(code, LookalikeError) is cls


def test_an_unnamed_unavailable_stays_unreachable(channel):
    exc = _rpc_error(channel, "Abort", b"UNAVAILABLE")
    got = _client()._mapped(exc)
    assert type(got) is UnreachableError and "127.0.0.1:1 stopped answering" in str(got)


def test_a_named_unavailable_keeps_its_class():
    assert type(from_grpc_code("UNAVAILABLE", "x", "StoreError")) is StoreError
    assert type(from_grpc_code("UNAVAILABLE", "x", "ProviderError")) is ProviderError
    assert from_grpc_code("FAILED_PRECONDITION", "x", "ProviderError").transient is False
    assert type(from_grpc_code("UNAVAILABLE", "x", "NoSuchError")) is UnreachableError
    assert KIND_KEY == "lookalike-error"  # the key older clients and servers read
