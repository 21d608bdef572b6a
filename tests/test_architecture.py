"""Which way imports may run, checked on the source (every import statement, also inside functions).

import-linter cannot see this layout (the packages of `lookalike` live in separate top-level folders),
so the contracts of DESIGN.md are checked here instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"kernels": "lookalike.kernels", "nodes": "lookalike.nodes", "coordinator": "lookalike.coordinator",
            "client": "lookalike.client", "lookalike": "lookalike"}
STUB_USERS = {"coordinator/service.py", "coordinator/engine.py", "coordinator/dispatch.py", "nodes/server.py",
              "lookalike/grpcutil.py"}

# (package folder, forbidden module prefixes, why)
CONTRACTS = [
    ("kernels", ["lookalike.nodes", "lookalike.coordinator", "lookalike.client", "lookalike.v1", "lookalike.cli",
                 "lookalike.store", "lookalike.grpcutil", "grpc", "av", "ray"], "kernels are pure array functions"),
    ("client", ["ray", "torch", "cupy", "lookalike.kernels", "lookalike.nodes", "lookalike.coordinator", "av", "cv2",
                "lookalike.grpcutil", "lookalike.obs"], "the client installs without torch, ray or the farm"),
    ("nodes", ["lookalike.coordinator"], "nodes never import the coordinator"),
    ("coordinator", ["lookalike.kernels", "lookalike.nodes", "av", "cv2"],
     "the coordinator reaches nodes only through gRPC and Ray"),
]


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def violations(folder: str, forbidden: list[str], root: Path = ROOT) -> list[str]:
    out = []
    for path in sorted((root / folder).rglob("*.py")):
        if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        for line, name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                out.append(f"{path.relative_to(root)}:{line} imports {name}")
    return out


@pytest.mark.parametrize("folder,forbidden,why", CONTRACTS, ids=[c[0] for c in CONTRACTS])
def test_import_contract(folder, forbidden, why):
    assert violations(folder, forbidden) == [], why


def test_generated_stubs_are_imported_only_by_adapters_and_the_client():
    bad = []
    for folder in ("kernels", "nodes", "coordinator", "lookalike"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel in STUB_USERS:
                continue
            bad += [f"{rel}:{line} imports {n}" for line, n in imports_of(path) if n.startswith("lookalike.v1")]
    assert bad == []


def test_the_checker_catches_a_violation(tmp_path):
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "bad.py").write_text("def f():\n    import grpc\n    from lookalike.nodes import media\n")
    found = violations("kernels", ["grpc", "lookalike.nodes"], root=tmp_path)
    assert len(found) == 3  # grpc, lookalike.nodes, lookalike.nodes.media
