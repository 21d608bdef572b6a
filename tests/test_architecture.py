"""Which way imports may run, checked twice.

- import-linter, on the contracts in pyproject.toml ([tool.importlinter]). Run in the checkout it would
  find only lookalike/ (package-dir maps kernels/, nodes/, coordinator/, client/ and proto/lookalike/v1/
  under `lookalike`, so they are not below it on disk), so `test_lint_imports_keeps_the_contracts` lays
  the packages out as installed, with links to the real folders, and runs it there. It follows imports
  through other modules too.
- The AST checks below: every import statement, also inside functions, the same contracts plus the rule
  on generated stubs, without import-linter.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

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


# -- import-linter on the installed layout --------------------------------------------------------------

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def installed_layout(dest: Path, *, copy: tuple[str, ...] = ()) -> Path:
    """The `lookalike` package as an install lays it out, under `dest`, built from package-dir: links to
    the source folders (copies for the packages named in `copy`). Returns `dest`."""
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    for name in sorted(mapping, key=lambda n: n.count(".")):
        src, target = ROOT / mapping[name], dest.joinpath(*name.split("."))
        children = {n.split(".")[name.count(".") + 1] for n in mapping if n.startswith(name + ".")}
        if children:  # a package with mapped packages inside: a real folder of links
            target.mkdir(parents=True)
            for entry in src.iterdir():
                if entry.name not in children and entry.name != "__pycache__":
                    (target / entry.name).symlink_to(entry)
        elif name in copy:
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.symlink_to(src, target_is_directory=True)
    return dest


def lint_imports(tree: Path, config: Path = ROOT / "pyproject.toml") -> subprocess.CompletedProcess:
    assert LINT_IMPORTS.exists(), "import-linter is a dev dependency: pip install -e '.[dev]'"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", str(config)], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


def test_lint_imports_keeps_the_contracts(tmp_path):
    r = lint_imports(installed_layout(tmp_path))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    contracts = PYPROJECT["tool"]["importlinter"]["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in r.stdout, r.stdout[-4000:]


def test_lint_imports_sees_every_package(tmp_path):
    """A module of each mapped package, planted to break its contract, is reported: nothing hides."""
    copies = ("lookalike.kernels", "lookalike.client", "lookalike.nodes", "lookalike.coordinator")
    tree = installed_layout(tmp_path, copy=copies)
    plants = {"kernels": "def f():\n    import grpc\n",  # inside a function, as often here
              "client": "import lookalike.obs\n",
              "nodes": "from lookalike.coordinator import state\n",
              "coordinator": "from lookalike.kernels import grade\n"}
    for package, text in plants.items():
        (tree / "lookalike" / package / "_planted.py").write_text(text)
    r = lint_imports(tree)
    assert r.returncode != 0
    for package in plants:
        assert f"lookalike.{package}._planted" in r.stdout, r.stdout[-4000:]
    assert "Contracts: 0 kept, 4 broken." in r.stdout, r.stdout[-4000:]


def test_lint_imports_reads_the_linked_folders(tmp_path):
    """The links are followed: imports the real folders hold break contracts made to forbid them."""
    config = tmp_path / "pyproject.toml"
    config.write_text((ROOT / "pyproject.toml").read_text() + '''
[[tool.importlinter.contracts]]
name = "planted: kernels without numpy"
type = "forbidden"
source_modules = ["lookalike.kernels"]
forbidden_modules = ["numpy"]

[[tool.importlinter.contracts]]
name = "planted: nodes without the error tree"
type = "forbidden"
source_modules = ["lookalike.nodes"]
forbidden_modules = ["lookalike.errors"]
''')
    r = lint_imports(installed_layout(tmp_path / "tree"), config)
    assert r.returncode != 0
    assert "planted: kernels without numpy BROKEN" in r.stdout and "planted: nodes without the error tree BROKEN" in r.stdout
    assert "Contracts: 4 kept, 2 broken." in r.stdout, r.stdout[-4000:]


def test_the_two_checks_hold_the_same_contracts():
    by_source = {c["source_modules"][0]: c["forbidden_modules"] for c in PYPROJECT["tool"]["importlinter"]["contracts"]}
    assert by_source == {PACKAGES[folder]: forbidden for folder, forbidden, _ in CONTRACTS}
