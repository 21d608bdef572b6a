"""Regenerate the Python stubs of proto/lookalike/v1 (run: python proto/build.py).

The stubs are committed; tests/test_proto.py fails when they differ from a fresh generation.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent


def generate(out_dir: Path) -> list[Path]:
    """Generate *_pb2.py and *_pb2_grpc.py for every .proto into out_dir (mirrors lookalike/v1)."""
    from grpc_tools import protoc

    files = sorted((PROTO_ROOT / "lookalike" / "v1").glob("*.proto"))
    args = ["protoc", f"-I{PROTO_ROOT}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
    args += [str(f.relative_to(PROTO_ROOT)) for f in files]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out_dir / "lookalike" / "v1").glob("*_pb2*.py"))


if __name__ == "__main__":
    sys.exit(0 if generate(PROTO_ROOT) else 1)
