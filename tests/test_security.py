"""Security on a real loopback farm: TLS on the coordinator and the node (certificates made here),
tokens per tenant, the node token, tenant isolation, limits, and more than thirty bad inputs through
the API and the CLI, each with a clear error and nothing lost; plus a short, deterministic
hypothesis fuzz of the request handlers."""

from __future__ import annotations

import hashlib
import json
import threading

import grpc
import pytest
from farm import Farm, cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lookalike.client import Client
from lookalike.v1 import coordinator_pb2, node_pb2
from synth import make_clip
from tlsutil import make_pki

from lookalike.errors import AuthError, InputError, UnreachableError

ALICE = "alice-0123456789abcdef"
BOB = "bob-0123456789abcdefgh"
NODE = "node-secret-0123456789"
MAX_UPLOAD = 3_000_000
C = grpc.StatusCode
pytestmark = pytest.mark.slow  # one farm for the module: about 45 s in all


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def farm(tmp_path_factory, pki):
    home = tmp_path_factory.mktemp("secure-farm")
    tokens = home / "tokens"
    tokens.write_text(f"{ALICE} alice\n{BOB} bob\n")
    env = {
        "LOOKALIKE_TOKENS_FILE": str(tokens),
        "LOOKALIKE_NODE_TOKEN": NODE,
        "LOOKALIKE_TLS_CERT": str(pki["cert"]),
        "LOOKALIKE_TLS_KEY": str(pki["key"]),
        "LOOKALIKE_TLS_CA": str(pki["ca"]),
        "LOOKALIKE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "LOOKALIKE_MAX_SIDE_PX": "640",
        "LOOKALIKE_MAX_DURATION_S": "20",
        "LOOKALIKE_RATE_PER_S": "1000",
        "LOOKALIKE_RATE_BURST": "1000",
    }
    f = Farm(home, nodes=1, env=env)
    yield f
    f.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "sample.mp4"
    make_clip(path, [(12, (250, 180, 80), 2.0), (12, (80, 120, 250), 0.0)], size=(96, 64))
    return path


@pytest.fixture(scope="module")
def alice(farm, pki):
    with Client(farm.address, token=ALICE, ca=pki["ca"]) as c:
        yield c


@pytest.fixture(scope="module")
def bob(farm, pki):
    with Client(farm.address, token=BOB, ca=pki["ca"]) as c:
        yield c


@pytest.fixture(scope="module")
def done(alice, clip, tmp_path_factory):
    """Alice's finished remake and the sha256 of its final.mp4: at the end it must be unchanged."""
    p = alice.wait(alice.submit(clip, name="alice's").id)
    out = alice.fetch_outputs(p.id, tmp_path_factory.mktemp("alice-out"))
    return p, hashlib.sha256((out / "final.mp4").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def channel(farm, pki):
    ch = grpc.secure_channel(farm.address, grpc.ssl_channel_credentials(pki["ca"].read_bytes()))
    yield ch
    ch.close()


def _md(token):
    return [("authorization", f"Bearer {token}")] if token else []


def call(ch, method: str, request, token=ALICE, *, service="Coordinator", stream=False, timeout=60):
    """(code, details, reply) of one call with raw bytes, so malformed messages can be sent too."""
    payload = request if isinstance(request, (bytes, list)) else request.SerializeToString()
    path = f"/lookalike.v1.{service}/{method}"
    try:
        if isinstance(payload, list):
            reply = ch.stream_unary(path)(iter(payload), metadata=_md(token), timeout=timeout)
        elif stream:
            reply = list(ch.unary_stream(path)(payload, metadata=_md(token), timeout=timeout))
        else:
            reply = ch.unary_unary(path)(payload, metadata=_md(token), timeout=timeout)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or "", None
    return C.OK, "", reply


def _chunks(header: dict | None, *blocks: bytes) -> list[bytes]:
    msgs = (
        [] if header is None else [coordinator_pb2.UploadChunk(header=coordinator_pb2.UploadHeader(**header))]
    )
    msgs += [coordinator_pb2.UploadChunk(data=b) for b in blocks]
    return [m.SerializeToString() for m in msgs]


def _upload(ch, data: bytes, filename="x.mp4", kind="sample", token=ALICE) -> str:
    code, details, reply = call(
        ch, "UploadSample", _chunks({"filename": filename, "kind": kind, "size": len(data)}, data), token
    )
    assert code == C.OK, details
    return coordinator_pb2.UploadReply.FromString(reply).upload_id


# -- authentication and TLS ----------------------------------------------------------------------
COORDINATOR_METHODS = [m.name for m in coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"].methods]


@pytest.mark.parametrize(
    "token", [None, "wrong-token-0123456789", NODE, ALICE + "x", ALICE[:-1], "Basic-" + ALICE]
)
def test_every_api_method_refuses_a_missing_or_wrong_token(channel, token):
    svc = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"]
    for m in svc.methods:
        stream = m.server_streaming
        payload = [] if m.client_streaming else b""
        code, details, _ = call(channel, m.name, payload, token, stream=stream)
        assert code == C.UNAUTHENTICATED, (m.name, code, details)
        assert "LOOKALIKE_TOKEN" in details or "token" in details


def test_plaintext_and_unknown_ca_clients_cannot_connect(farm, pki):
    with pytest.raises(UnreachableError):
        Client(farm.address, token=ALICE, connect_timeout=2)  # plaintext to a TLS server
    with pytest.raises(UnreachableError, match="certificate"):
        Client(farm.address, token=ALICE, ca=pki["other_ca"], connect_timeout=2)
    with pytest.raises(UnreachableError):
        Client(farm.address, token=ALICE, ca=pki["ca"], server_name="coordinator.example", connect_timeout=2)


def test_client_maps_auth_errors_to_auth_errors(farm, pki):
    with Client(farm.address, ca=pki["ca"]) as c, pytest.raises(AuthError, match="token") as exc:
        c.projects()
    assert exc.value.exit_code == 3
    with Client(farm.address, token="x" * 20, ca=pki["ca"]) as c, pytest.raises(AuthError, match="not one"):
        c.projects()


def test_nodes_need_the_node_token(farm, pki):
    r = cli("node", "--coordinator", farm.address, env={**farm.env, "LOOKALIKE_NODE_TOKEN": ""}, timeout=120)
    assert r.returncode == 3 and "node token" in r.stderr.lower() and "Traceback" not in r.stderr, r.stderr[
        -1500:
    ]
    r = cli(
        "node",
        "--coordinator",
        farm.address,
        env={**farm.env, "LOOKALIKE_NODE_TOKEN": "wrong-node-token-000000"},
        timeout=120,
    )
    assert r.returncode == 3 and "wrong node token" in r.stderr, r.stderr[-1500:]


def test_node_service_is_tls_and_needs_the_node_token(farm, pki, channel):
    code, _, reply = call(channel, "Register", b"", NODE, service="NodeRegistry")
    assert code == C.INVALID_ARGUMENT  # authenticated, then refused for the empty message
    node_line = next(
        line for line in (farm.home / "farm.log").read_text().splitlines() if "node_started" in line
    )
    address = json.loads(node_line)["address"]
    with grpc.secure_channel(address, grpc.ssl_channel_credentials(pki["ca"].read_bytes())) as ch:
        probe = node_pb2.ProbeRequest(key="uploads/none/sample.mp4")
        assert call(ch, "Probe", probe, None, service="Node")[0] == C.UNAUTHENTICATED
        assert call(ch, "Probe", probe, ALICE, service="Node")[0] == C.UNAUTHENTICATED
        assert call(ch, "Probe", probe, NODE, service="Node")[0] == C.NOT_FOUND
        assert (
            call(ch, "Probe", node_pb2.ProbeRequest(key="../../etc/passwd"), NODE, service="Node")[0]
            == C.INVALID_ARGUMENT
        )


# -- tenant isolation ----------------------------------------------------------------------------
def test_tenants_never_see_each_others_projects(alice, bob, done, channel):
    p, _ = done
    assert [q.id for q in alice.projects()] == [p.id]
    assert bob.projects() == []
    ref = coordinator_pb2.ProjectRef(project_id=p.id)
    for method, req, stream in [
        ("GetProject", ref, False),
        ("Cancel", ref, False),
        ("WatchProject", ref, True),
        ("Download", coordinator_pb2.DownloadRequest(project_id=p.id, name="final.mp4"), True),
        ("GetScenes", ref, False),
        ("GetSceneStatus", ref, False),
        ("ValidateSimilarity", ref, False),
        ("GetSimilarityReport", ref, False),
        ("AssembleFinal", ref, False),
        ("ProcessAudio", ref, False),
        ("GenerateScenes", coordinator_pb2.GenerateScenesRequest(project_id=p.id), False),
        (
            "UpdateScenes",
            coordinator_pb2.UpdateScenesRequest(
                project_id=p.id, plan_json='{"schema": "lookalike.plan/1", "scenes": []}'
            ),
            False,
        ),
        ("AnalyzeComprehensive", coordinator_pb2.AnalyzeProjectRequest(project_id=p.id), False),
    ]:
        code, details, _ = call(channel, method, req, BOB, stream=stream)
        assert code == C.NOT_FOUND, (method, code, details)
    assert alice.project(p.id).state == "done"


def test_uploads_belong_to_their_tenant(channel, clip, alice, bob):
    up = _upload(channel, clip.read_bytes(), token=ALICE)
    code, details, _ = call(channel, "Remake", coordinator_pb2.RemakeRequest(sample_upload_id=up), BOB)
    assert code == C.NOT_FOUND and up in details
    batch = coordinator_pb2.BatchRequest(projects=[coordinator_pb2.RemakeRequest(sample_upload_id=up)])
    assert call(channel, "SubmitBatch", batch, BOB)[0] == C.NOT_FOUND
    analyze = coordinator_pb2.AnalyzeProjectRequest(sample_upload_id=up)
    assert call(channel, "AnalyzeComprehensive", analyze, BOB)[0] == C.NOT_FOUND
    assert bob.projects() == []


def test_cli_works_through_the_environment(farm, pki, done):
    p, _ = done
    env = {"LOOKALIKE_TOKEN": ALICE, "LOOKALIKE_TLS_CA": str(pki["ca"])}
    r = cli("status", "--cluster", farm.address, env=env, timeout=60)
    assert r.returncode == 0 and p.id in r.stdout, r.stderr[-1500:]
    r = cli(
        "status", "--cluster", farm.address, env={"LOOKALIKE_TOKEN": BOB, "LOOKALIKE_TLS_CA": str(pki["ca"])}
    )
    assert r.returncode == 0 and r.stdout.strip() == ""
    r = cli(
        "status",
        p.id,
        "--cluster",
        farm.address,
        env={"LOOKALIKE_TOKEN": BOB, "LOOKALIKE_TLS_CA": str(pki["ca"])},
    )
    assert r.returncode == 2 and "no project" in r.stderr
    r = cli("status", "--cluster", farm.address, env={"LOOKALIKE_TLS_CA": str(pki["ca"])})
    assert r.returncode == 3 and "LOOKALIKE_TOKEN" in r.stderr and "Traceback" not in r.stderr
    r = cli(
        "cancel",
        p.id,
        "--cluster",
        farm.address,
        env={"LOOKALIKE_TOKEN": BOB, "LOOKALIKE_TLS_CA": str(pki["ca"])},
    )
    assert r.returncode == 2 and "no project" in r.stderr


# -- bad inputs: each a clear error, nothing lost ---------------------------------------------------
def _png(path, size, color=(200, 40, 40)):
    from PIL import Image

    Image.new("RGB", size, color).save(path)
    return path.read_bytes()


def _bad_requests(tmp, clip_bytes, done_id):
    """(what, method, request, expected code, words in the message)."""
    ok_plan = '{"schema": "lookalike.plan/1", "scenes": []}'
    up = lambda header, *blocks: _chunks(header, *blocks)  # noqa: E731
    hdr = lambda **kw: {"filename": "s.mp4", "kind": "sample", "size": 0, **kw}  # noqa: E731
    ref = lambda pid: coordinator_pb2.ProjectRef(project_id=pid)  # noqa: E731
    remake = lambda **kw: coordinator_pb2.RemakeRequest(sample_upload_id="0" * 32, **kw)  # noqa: E731
    return [
        ("malformed protobuf", "GetProject", b"\xff\xff\xff\xff", C.INVALID_ARGUMENT, "not a valid message"),
        (
            "truncated protobuf",
            "Remake",
            remake(name="x" * 50).SerializeToString()[:-10],
            C.INVALID_ARGUMENT,
            "valid",
        ),
        ("malformed upload chunk", "UploadSample", [b"\x0a\xff\xff"], C.INVALID_ARGUMENT, "valid"),
        (
            "message over the 64 MiB gRPC limit",
            "UpdateScenes",
            coordinator_pb2.UpdateScenesRequest(
                project_id=done_id, plan_json="x" * (65 << 20)
            ).SerializeToString(),
            C.RESOURCE_EXHAUSTED,
            "",
        ),
        ("upload without a header", "UploadSample", up(None, b"data"), C.INVALID_ARGUMENT, "header"),
        ("empty upload stream", "UploadSample", [], C.INVALID_ARGUMENT, "header"),
        (
            "upload kind that is a path",
            "UploadSample",
            up(hdr(kind="../../etc"), b"x"),
            C.INVALID_ARGUMENT,
            "kind",
        ),
        ("negative size", "UploadSample", up(hdr(size=-5), b"x"), C.INVALID_ARGUMENT, "-5"),
        (
            "announced size over the limit",
            "UploadSample",
            up(hdr(size=MAX_UPLOAD + 1), b"x"),
            C.RESOURCE_EXHAUSTED,
            "at most",
        ),
        (
            "stream past the limit",
            "UploadSample",
            up(hdr(), *[b"\0" * (1 << 20)] * 3, b"\0" * 200_000),
            C.RESOURCE_EXHAUSTED,
            "limit",
        ),
        (
            "fewer bytes than announced",
            "UploadSample",
            up(hdr(size=100), b"x" * 50),
            C.INVALID_ARGUMENT,
            "50 of 100",
        ),
        ("a second header", "UploadSample", up(hdr(), b"x") + up(hdr()), C.INVALID_ARGUMENT, "one header"),
        ("empty file", "UploadSample", up(hdr()), C.INVALID_ARGUMENT, "empty"),
        (
            "upload id that is a path",
            "Remake",
            coordinator_pb2.RemakeRequest(sample_upload_id="../../etc/passwd"),
            C.NOT_FOUND,
            "upload it first",
        ),
        ("upload id never given out", "Remake", remake(), C.NOT_FOUND, "upload it first"),
        (
            "subject upload id that is absolute",
            "Remake",
            coordinator_pb2.RemakeRequest(sample_upload_id="0" * 32, subject_upload_id="/etc/passwd"),
            C.NOT_FOUND,
            "",
        ),
        (
            "crf out of range",
            "Remake",
            remake(options=coordinator_pb2.RemakeOptions(crf=99)),
            C.INVALID_ARGUMENT,
            "crf",
        ),
        (
            "codec that is a command",
            "Remake",
            remake(options=coordinator_pb2.RemakeOptions(codec="x264; rm -rf /")),
            C.INVALID_ARGUMENT,
            "codec",
        ),
        (
            "capability that is a path",
            "Remake",
            remake(options=coordinator_pb2.RemakeOptions(require=["../gpu"])),
            C.INVALID_ARGUMENT,
            "require",
        ),
        ("priority out of range", "Remake", remake(priority=10**6), C.INVALID_ARGUMENT, "priority"),
        (
            "batch over the limit",
            "SubmitBatch",
            coordinator_pb2.BatchRequest(projects=[remake()] * 300),
            C.RESOURCE_EXHAUSTED,
            "at most",
        ),
        ("project id that is a path", "GetProject", ref("../../etc/passwd"), C.NOT_FOUND, "no project"),
        ("project id with a NUL", "GetProject", ref(done_id[:31] + "\x00"), C.NOT_FOUND, "no project"),
        ("project id with a newline", "Cancel", ref(done_id + "\n"), C.NOT_FOUND, "no project"),
        ("project id in full-width digits", "GetProject", ref("\uff10" * 32), C.NOT_FOUND, "no project"),
        ("project id in upper case", "WatchProject", ref(done_id.upper()), C.NOT_FOUND, "no project"),
        (
            "download name that is a path",
            "Download",
            coordinator_pb2.DownloadRequest(project_id=done_id, name="../../etc/passwd"),
            C.INVALID_ARGUMENT,
            "no output",
        ),
        (
            "download name that is absolute",
            "Download",
            coordinator_pb2.DownloadRequest(project_id=done_id, name="/etc/passwd"),
            C.INVALID_ARGUMENT,
            "no output",
        ),
        (
            "download name with a NUL",
            "Download",
            coordinator_pb2.DownloadRequest(project_id=done_id, name="final.mp4\x00.txt"),
            C.INVALID_ARGUMENT,
            "no output",
        ),
        (
            "download name with a unicode slash",
            "Download",
            coordinator_pb2.DownloadRequest(project_id=done_id, name="..\u2215final.mp4"),
            C.INVALID_ARGUMENT,
            "no output",
        ),
        (
            "plan that is not JSON",
            "UpdateScenes",
            coordinator_pb2.UpdateScenesRequest(project_id=done_id, plan_json="{"),
            C.INVALID_ARGUMENT,
            "not valid JSON",
        ),
        (
            "plan of the wrong type",
            "UpdateScenes",
            coordinator_pb2.UpdateScenesRequest(project_id=done_id, plan_json="[1, 2]"),
            C.INVALID_ARGUMENT,
            "schema",
        ),
        (
            "plan scenes of the wrong type",
            "UpdateScenes",
            coordinator_pb2.UpdateScenesRequest(
                project_id=done_id, plan_json='{"schema": "lookalike.plan/1", "scenes": [1]}'
            ),
            C.INVALID_ARGUMENT,
            "object",
        ),
        (
            "plan nested 100000 deep",
            "UpdateScenes",
            coordinator_pb2.UpdateScenesRequest(project_id=done_id, plan_json="[" * 100_000),
            C.INVALID_ARGUMENT,
            "JSON",
        ),
        (
            "plan with a NUL",
            "UpdateScenes",
            coordinator_pb2.UpdateScenesRequest(
                project_id=done_id, plan_json=ok_plan[:-1] + ', "n": "a\\u0000b"}'
            ),
            C.INVALID_ARGUMENT,
            "NUL",
        ),
        (
            "plan of 9 MiB",
            "UpdateScenes",
            coordinator_pb2.UpdateScenesRequest(project_id=done_id, plan_json=" " * (9 << 20) + ok_plan),
            C.RESOURCE_EXHAUSTED,
            "MiB",
        ),
        (
            "plan chat with no words",
            "ChatPlan",
            coordinator_pb2.ChatPlanRequest(project_id=done_id),
            C.INVALID_ARGUMENT,
            "chat request",
        ),
    ]


def test_bad_requests_get_clear_errors(channel, clip, done, alice):
    p, sha = done
    before = [(q.id, q.state) for q in alice.projects()]
    cases = _bad_requests(None, clip.read_bytes(), p.id)
    failures = []
    for what, method, req, code, words in cases:
        stream = method in ("WatchProject", "Download")
        got, details, _ = call(channel, method, req, stream=stream)
        if got != code or words.lower() not in details.lower() or "Traceback" in details:
            failures.append((what, got, details[:200]))
    assert not failures, failures
    assert len(cases) >= 35
    assert [(q.id, q.state) for q in alice.projects()] == before  # no bad request made or changed a project


def _remake_code(ch, data, filename, kind="sample", subject=None):
    up = _upload(ch, data, filename, kind)
    req = (
        coordinator_pb2.RemakeRequest(sample_upload_id=up)
        if kind == "sample"
        else coordinator_pb2.RemakeRequest(sample_upload_id=subject, subject_upload_id=up)
    )
    return call(ch, "Remake", req)


def test_hostile_files_and_names_are_refused_with_the_users_name(channel, clip, tmp_path, farm):
    from synth import make_clip as mk

    real = clip.read_bytes()
    sample_up = _upload(channel, real, "ok.mp4")
    wide = tmp_path / "wide.mp4"
    mk(wide, [(6, (10, 200, 10), 0.0), (6, (200, 10, 10), 0.0)], size=(800, 64), bpm=None)
    long = tmp_path / "long.mp4"
    mk(long, [(260, (10, 200, 10), 0.0), (250, (200, 10, 10), 0.0)], size=(32, 32), bpm=None)
    cases = [
        # (data, filename, kind, expected code, words)
        (b"not a video at all\n" * 100, "../../etc/passwd", "sample", C.INVALID_ARGUMENT, "passwd"),
        (b"\x00" * 5000, "/etc/shadow.mp4", "sample", C.INVALID_ARGUMENT, "shadow.mp4"),
        (real[: len(real) // 3], "cut\u202e4pm.exe", "sample", C.INVALID_ARGUMENT, "cut4pm.exe"),
        (real[:64] + bytes(len(real) - 64), "zeros.mp4", "sample", C.INVALID_ARGUMENT, "zeros.mp4"),
        (real, r"C:\\x\\1\\g<0>.mp4", "subject", C.INVALID_ARGUMENT, "not a readable image: g<0>.mp4"),
        (wide.read_bytes(), "wide.mp4", "sample", C.INVALID_ARGUMENT, "640"),
        (long.read_bytes(), "long.mp4", "sample", C.INVALID_ARGUMENT, "limit is 20"),
        (_png(tmp_path / "big.png", (700, 20)), "big.png", "subject", C.INVALID_ARGUMENT, "700x20"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "fake.png", "subject", C.INVALID_ARGUMENT, "image"),
    ]
    failures = []
    for data, name, kind, code, words in cases:
        got, details, _ = _remake_code(channel, data, name, kind, subject=sample_up)
        if got != code or words not in details or str(farm.home) in details or "uploads/" in details:
            failures.append((name, got, details[:300]))
    assert not failures, failures
    # The user's names never became paths: the store holds only uploads/<id>/<kind>.<suffix> files.
    store = farm.home / "store"
    for f in store.rglob("*"):
        if f.is_file():
            rel = f.relative_to(store).as_posix()
            assert rel.startswith(("uploads/", "projects/")), rel
            if rel.startswith("uploads/"):
                assert f.name in ("meta.json",) or f.name.split(".")[0] in ("sample", "subject"), rel
    assert not any("passwd" in p.name or "shadow" in p.name for p in farm.home.rglob("*"))


def test_a_decompression_bomb_subject_is_refused(channel, clip, tmp_path):
    from PIL import Image

    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")  # 400 Mpx in 48 kB
    sample_up = _upload(channel, clip.read_bytes(), "ok.mp4")
    code, details, _ = _remake_code(
        channel, (tmp_path / "bomb.png").read_bytes(), "bomb.png", "subject", subject=sample_up
    )
    assert code == C.INVALID_ARGUMENT and "bomb.png" in details, (code, details)


def test_concurrent_conflicting_plan_edits_lose_nothing(channel, done, alice):
    p, _ = done
    start = alice.document(p.id, "plan")
    n = 8
    replies: list = [None] * n

    def edit(i):
        plan = dict(start, note=f"edit {i}", scenes=start["scenes"][: 1 + i % 2])
        req = coordinator_pb2.UpdateScenesRequest(project_id=p.id, plan_json=json.dumps(plan))
        replies[i] = call(channel, "UpdateScenes", req)

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    docs = [coordinator_pb2.Document.FromString(r[2]) for r in replies if r[0] == C.OK]
    assert len(docs) == n, [r[:2] for r in replies]
    versions = sorted(d.version for d in docs)
    assert versions == list(range(versions[0], versions[0] + n))  # every edit kept, as its own version
    latest = alice.document(p.id, "plan")
    winner = next(json.loads(d.json) for d in docs if d.version == versions[-1])
    assert latest == winner  # the latest is one whole edit, never a mix


def test_cli_bad_inputs(farm, pki, tmp_path, done):
    p, _ = done
    env = {"LOOKALIKE_TOKEN": ALICE, "LOOKALIKE_TLS_CA": str(pki["ca"])}
    r = cli("remake", "x.mp4", "--out", str(tmp_path), "--seed", "abc", "--cluster", farm.address, env=env)
    assert r.returncode == 2 and "invalid int" in r.stderr
    r = cli("status", "../../etc/passwd", "--cluster", farm.address, env=env)
    assert r.returncode == 2 and "no project" in r.stderr and "Traceback" not in r.stderr
    r = cli("watch", p.id + "\u202e", "--cluster", farm.address, env=env)
    assert r.returncode == 2 and "no project" in r.stderr
    r = cli("status", "--cluster", farm.address, env={**env, "LOOKALIKE_TLS_CA": str(tmp_path / "none.pem")})
    assert r.returncode == 3 and "CA file" in r.stderr
    bad_sample = tmp_path / "passwd.mp4"
    bad_sample.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 10)
    r = cli("remake", str(bad_sample), "--out", str(tmp_path / "o"), "--cluster", farm.address, env=env)
    assert r.returncode == 2 and "passwd.mp4" in r.stderr and "uploads/" not in r.stderr
    assert not any((tmp_path / "o").iterdir())


def test_client_refuses_output_names_that_are_paths(tmp_path):
    from lookalike.client.sdk import _safe_name

    for bad in ("../x", "/etc/passwd", "a/b", "a\\b", ".hidden", "..", "", "x\x00y", "C:evil"):
        with pytest.raises(InputError):
            _safe_name(bad)
    assert _safe_name("final.mp4") == "final.mp4"


# -- fuzzing the request handlers --------------------------------------------------------------------
ALLOWED = {C.OK, C.INVALID_ARGUMENT, C.NOT_FOUND, C.RESOURCE_EXHAUSTED, C.UNIMPLEMENTED}
UNARY = [
    m.name
    for m in coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"].methods
    if not m.client_streaming and not m.server_streaming and m.name not in ("Remake", "SubmitBatch")
]
FUZZ = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.timeout(180)
@FUZZ
@given(method=st.sampled_from(UNARY + ["WatchProject", "Download", "Remake"]), data=st.binary(max_size=200))
def test_fuzz_handlers_with_random_bytes(channel, done, method, data):
    code, details, _ = call(channel, method, data, stream=method in ("WatchProject", "Download"), timeout=30)
    assert code in ALLOWED, (method, data, code, details)


@st.composite
def _messages(draw):
    text = st.text(max_size=40)
    method = draw(
        st.sampled_from(["GetProject", "Cancel", "Download", "UpdateScenes", "Remake", "UploadSample"])
    )
    if method == "Download":
        msg = coordinator_pb2.DownloadRequest(project_id=draw(text), name=draw(text))
    elif method == "UpdateScenes":
        msg = coordinator_pb2.UpdateScenesRequest(project_id=draw(text), plan_json=draw(text))
    elif method == "Remake":
        msg = coordinator_pb2.RemakeRequest(
            sample_upload_id=draw(text),
            subject_upload_id=draw(text),
            name=draw(text),
            priority=draw(st.integers(-(2**31), 2**31 - 1)),
        )
    elif method == "UploadSample":
        header = {
            "filename": draw(text),
            "kind": draw(st.sampled_from(["sample", "subject", draw(text)])),
            "size": draw(st.integers(-(2**63), 2**63 - 1)),
        }
        return method, _chunks(header, draw(st.binary(max_size=64)))
    else:
        msg = coordinator_pb2.ProjectRef(project_id=draw(text))
    return method, msg


@pytest.mark.timeout(180)
@FUZZ
@given(case=_messages())
def test_fuzz_handlers_with_random_fields(channel, done, case):
    method, msg = case
    code, details, _ = call(channel, method, msg, stream=method == "Download", timeout=30)
    assert code in ALLOWED, (method, msg, code, details)


def test_nothing_was_lost(alice, done, tmp_path, farm, channel):
    """Runs last in this module: Alice's remake is still done and byte-identical, the farm healthy."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    p, sha = done
    assert alice.project(p.id).state == "done"
    alice.download(p.id, "final.mp4", tmp_path / "final.mp4")
    assert hashlib.sha256((tmp_path / "final.mp4").read_bytes()).hexdigest() == sha
    status = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="lookalike.v1.Coordinator")
    )
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    assert farm.coordinator.poll() is None and all(n.poll() is None for n in farm.nodes)
