"""The committed stubs are exactly what proto/ generates today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_builder():
    spec = importlib.util.spec_from_file_location("proto_build", ROOT / "proto" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_stubs_match_proto(tmp_path):
    generated = _load_builder().generate(tmp_path)
    assert generated, "protoc produced no stubs"
    committed = ROOT / "proto" / "lookalike" / "v1"
    for path in generated:
        mine = committed / path.name
        assert mine.exists(), f"{path.name} is not committed: run python proto/build.py"
        assert mine.read_text() == path.read_text(), f"{path.name} is stale: run python proto/build.py"
    names = {p.name for p in generated}
    stray = {p.name for p in committed.glob("*_pb2*.py")} - names
    assert not stray, f"stubs without a .proto: {stray}"


def test_services_expose_the_platform_endpoints():
    from lookalike.v1 import coordinator_pb2, node_pb2

    coord = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"].methods_by_name
    for rpc in ["AnalyzeComprehensive", "GetScenes", "UpdateScenes", "ChatPlan", "GenerateScenes",
                "GetSceneStatus", "ProcessAudio", "GenerateVoiceover", "ApplyEffects", "AddTransitions",
                "AssembleFinal", "ValidateSimilarity", "GetSimilarityReport", "UploadSample", "Download",
                "WatchProject", "SubmitBatch", "Cancel", "Remake"]:
        assert rpc in coord, rpc
    node = node_pb2.DESCRIPTOR.services_by_name["Node"].methods_by_name
    for rpc in ["Decode", "Grade", "ApplyEffects", "Encode", "Score", "RenderRange"]:
        assert rpc in node, rpc
