"""coordinator.auth: the tokens file, tenants from bearer tokens, the rate limiter, name cleaning, and
the interceptors on a real gRPC server (the generated base servicer answers UNIMPLEMENTED for every
method, so a call that gets UNIMPLEMENTED went through authentication)."""

from __future__ import annotations

import grpc
import pytest
from lookalike.coordinator.auth import (
    Auth,
    AuthError,
    AuthInterceptor,
    RateLimiter,
    check_id,
    clean_label,
    load_tokens,
)
from lookalike.v1 import coordinator_pb2, coordinator_pb2_grpc, node_pb2, node_pb2_grpc

from lookalike.errors import ConfigError, NotFoundError
from lookalike.grpcutil import NodeTokenGuard, make_server

ALICE = "alice-token-0123456789"
BOB = "bob-token-abcdefghijkl"
NODE = "node-token-zyxwvutsrqp"


def _md(token: str | None, scheme: str = "Bearer"):
    return [("authorization", f"{scheme} {token}")] if token is not None else []


# -- tokens file -------------------------------------------------------------------------------
def test_tokens_file_lines_and_json(tmp_path):
    f = tmp_path / "tokens"
    f.write_text(f"# farm tokens\n{ALICE} alice   # the first\n\n{BOB} bob\n")
    assert load_tokens(f) == {ALICE: "alice", BOB: "bob"}
    j = tmp_path / "tokens.json"
    j.write_text(f'{{"{ALICE}": "alice"}}')
    assert load_tokens(j) == {ALICE: "alice"}


@pytest.mark.parametrize(
    "text, words",
    [
        ("short alice\n", "at least 16"),
        (f"{ALICE}\n", "TOKEN TENANT"),
        (f"{ALICE} al/ice\n", "tenant"),
        (f"{ALICE} ../etc\n", "tenant"),
        (f"{ALICE} alice\n{ALICE} bob\n", "twice"),
        ("# nothing\n", "no tokens"),
        ("{not json", "JSON"),
    ],
)
def test_bad_tokens_files_are_config_errors(tmp_path, text, words):
    f = tmp_path / "tokens"
    f.write_text(text)
    with pytest.raises(ConfigError, match=words):
        load_tokens(f)


def test_missing_tokens_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_tokens(tmp_path / "nope")


# -- tenants -----------------------------------------------------------------------------------
def test_auth_off_means_the_default_tenant_for_everyone():
    auth = Auth()
    assert not auth.enabled
    assert auth.tenant_of([]) == auth.tenant_of(_md("anything")) == "default"


def test_tenant_from_bearer_token():
    auth = Auth({ALICE: "alice", BOB: "bob"})
    assert auth.tenant_of(_md(ALICE)) == "alice"
    assert auth.tenant_of(_md(BOB, "bearer")) == "bob"
    with pytest.raises(AuthError, match="carried none"):
        auth.tenant_of([])
    with pytest.raises(AuthError, match="not one this farm knows"):
        auth.tenant_of(_md(ALICE + "x"))
    with pytest.raises(AuthError, match="not one this farm knows"):
        auth.tenant_of(_md(ALICE[:-1]))
    with pytest.raises(AuthError):
        auth.tenant_of(_md(ALICE, "Basic"))
    with pytest.raises(AuthError):
        auth.tenant_of(_md("\u00e9" * 20))


def test_node_token():
    Auth(node_token=None).check_node([])
    auth = Auth(node_token=NODE)
    auth.check_node(_md(NODE))
    for md in ([], _md(ALICE), _md(NODE + " ")[:0]):
        with pytest.raises(AuthError):
            auth.check_node(md)


# -- rates -------------------------------------------------------------------------------------
def test_token_bucket_per_key():
    now = [0.0]
    lim = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [lim.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert lim.take("a") == pytest.approx(0.5)
    assert lim.take("b") == 0.0  # another tenant has its own bucket
    now[0] += 0.5
    assert lim.take("a") == 0.0
    assert lim.take("a") > 0
    now[0] += 100
    assert [lim.take("a") for _ in range(4)][-1] > 0  # refills to the burst, not beyond
    assert RateLimiter(0, 1).take("a") == 0.0  # rate 0: no limit


# -- names -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "0" * 31,
        "0" * 33,
        "A" * 32,
        "0" * 31 + "\n",
        "0" * 32 + "\n",
        "0" * 31 + "\x00",
        "\uff10" * 32,
        "0" * 30 + "/.",
        "",
    ],
)
def test_ids_are_checked(bad):
    with pytest.raises(NotFoundError):
        check_id(bad, "project")


def test_ids_pass():
    assert check_id("0123456789abcdef" * 2, "project") == "0123456789abcdef" * 2


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("holiday.mp4", "holiday.mp4"),
        ("a\x00b.mp4", "ab.mp4"),
        ("evil\u202egnp.mp4", "evilgnp.mp4"),  # right-to-left override
        ("zero\u200bwidth", "zerowidth"),
        ("line\nbreak\r\t", "linebreak"),
        ("cafe\u0301", "caf\u00e9"),  # NFC
        ("  spaced  ", "spaced"),
        ("x" * 500, "x" * 200),
    ],
)
def test_clean_label(raw, clean):
    assert clean_label(raw) == clean


# -- the interceptors on a real server ---------------------------------------------------------
@pytest.fixture(scope="module")
def guarded():
    auth = Auth({ALICE: "alice", BOB: "bob"}, node_token=NODE)
    limiter = RateLimiter(rate=0.001, burst=5)
    server, port = make_server(
        "127.0.0.1:0",
        [
            (
                coordinator_pb2_grpc.add_CoordinatorServicer_to_server,
                coordinator_pb2_grpc.CoordinatorServicer(),
                "lookalike.v1.Coordinator",
            ),
            (
                coordinator_pb2_grpc.add_NodeRegistryServicer_to_server,
                coordinator_pb2_grpc.NodeRegistryServicer(),
                "lookalike.v1.NodeRegistry",
            ),
            (node_pb2_grpc.add_NodeServicer_to_server, node_pb2_grpc.NodeServicer(), "lookalike.v1.Node"),
        ],
        interceptors=[AuthInterceptor(auth, limiter), NodeTokenGuard(NODE)],
    )
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield ch
    ch.close()
    server.stop(0)


def _code(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def test_interceptor_refuses_without_token_and_rate_limits(guarded):
    stub = coordinator_pb2_grpc.CoordinatorStub(guarded)
    req = coordinator_pb2.ListProjectsRequest()
    code, msg = _code(stub.ListProjects, req)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "LOOKALIKE_TOKEN" in msg
    assert _code(stub.ListProjects, req, metadata=_md("x" * 20))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert _code(stub.ListProjects, req, metadata=_md(NODE))[0] == grpc.StatusCode.UNAUTHENTICATED
    # Streams are refused the same way, before the handler reads anything.
    up = _code(stub.UploadSample, iter([coordinator_pb2.UploadChunk(data=b"x")]))
    assert up[0] == grpc.StatusCode.UNAUTHENTICATED
    watch = _code(lambda: list(stub.WatchProject(coordinator_pb2.ProjectRef(project_id="0" * 32))))
    assert watch[0] == grpc.StatusCode.UNAUTHENTICATED
    # Alice gets through (UNIMPLEMENTED from the bare servicer) five times, then her bucket is empty.
    codes = [_code(stub.ListProjects, req, metadata=_md(ALICE))[0] for _ in range(5)]
    assert codes == [grpc.StatusCode.UNIMPLEMENTED] * 5
    code, msg = _code(stub.ListProjects, req, metadata=_md(ALICE))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "alice" in msg and "retry in" in msg
    assert _code(stub.ListProjects, req, metadata=_md(BOB))[0] == grpc.StatusCode.UNIMPLEMENTED


def test_node_services_need_the_node_token(guarded):
    reg = coordinator_pb2_grpc.NodeRegistryStub(guarded)
    node = node_pb2_grpc.NodeStub(guarded)
    info = coordinator_pb2.NodeInfo(node_id="n", address="127.0.0.1:1")
    assert _code(reg.Register, info)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert _code(reg.Register, info, metadata=_md(ALICE))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert _code(reg.Register, info, metadata=_md(NODE))[0] == grpc.StatusCode.UNIMPLEMENTED
    assert _code(node.Probe, node_pb2.ProbeRequest(key="k"))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert (
        _code(node.Probe, node_pb2.ProbeRequest(key="k"), metadata=_md(NODE))[0]
        == grpc.StatusCode.UNIMPLEMENTED
    )


def test_malformed_request_bytes_are_invalid_argument(guarded):
    raw = guarded.unary_unary("/lookalike.v1.Coordinator/GetProject")
    code, msg = _code(raw, b"\xff\xff\xff\xff", metadata=_md(BOB))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "not a valid message" in msg


def test_health_stays_open(guarded):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    reply = health_pb2_grpc.HealthStub(guarded).Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
