"""Plan versions: edits, undo and diff over the state store's versioned documents and over an
output folder (plan.json + plan.v{N}.json)."""

from __future__ import annotations

import json

import pytest
from lookalike.coordinator import plan_ops as po
from lookalike.coordinator import planner
from lookalike.coordinator.plan_history import FolderHistory, StoreHistory
from lookalike.coordinator.state import open_state
from test_plan_ops import _analysis

from lookalike.errors import InputError, NotFoundError


@pytest.fixture
def plan():
    return planner.make_plan(_analysis([100, 200], 300), seed=2)


@pytest.fixture
def store_history(tmp_path, plan):
    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    project = state.create_project("acme", "remake", {})
    state.put_document(project.id, "plan", plan)
    yield StoreHistory(state, project.id)
    state.close()


@pytest.fixture
def folder_history(tmp_path, plan):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "plan.json").write_text(json.dumps(plan))
    return FolderHistory(tmp_path / "out")


@pytest.fixture(params=["store", "folder"])
def history(request):
    return request.getfixturevalue(f"{request.param}_history")


def test_edit_undo_restore_and_diff(history, plan):
    assert history.versions() == [1]
    v2, p2 = history.edit([po.AdjustGrade(scene=1, temperature=0.1)], request="scene 2 warmer")
    v3, p3 = history.edit([po.SwapScenes(a=0, b=2)], request="swap 1 and 3")
    assert (v2, v3) == (2, 3) and history.versions() == [1, 2, 3]
    changes = p3["edit"].pop("changes")
    assert "scene 3 moved to position 1 (s2)" in changes  # the diff in words, kept with the version
    assert p3["edit"] == {
        "ops": [{"op": "swap_scenes", "a": 0, "b": 2}],
        "request": "swap 1 and 3",
        "base_version": 2,
    }
    assert p3["version"] == 3 and history.get()["scenes"][0]["id"] == "s2"
    assert [c.kind for c in history.diff(1, 2)] == ["scene_changed"]
    assert {c.kind for c in history.diff(2)} == {"scene_moved", "scene_changed"}

    # Undo takes back edits one by one, each as a new version; the history only grows.
    v4, p4 = history.undo()
    assert v4 == 4 and po.diff(p4, p2) == [] and p4["edit"]["undo_of"] == 3
    v5, p5 = history.undo()
    assert v5 == 5 and po.diff(p5, plan) == []
    with pytest.raises(InputError, match="no edit to undo"):
        history.undo()
    assert history.versions() == [1, 2, 3, 4, 5]
    assert history.get(3)["scenes"][0]["id"] == "s2"  # old versions are never rewritten

    v6, p6 = history.restore(3)
    assert v6 == 6 and po.diff(p6, p3) == []
    assert [e["version"] for e in history.log()] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(NotFoundError, match="no plan version 42"):
        history.get(42)


def test_a_failed_edit_stores_nothing(history):
    with pytest.raises(InputError, match="set_duration.scene"):
        history.edit([po.SetPrompt(scene=0, prompt="x"), po.SetDuration(scene=9, n_frames=3)])
    assert history.versions() == [1]


def test_folder_keeps_each_previous_plan_as_a_file(folder_history, plan):
    folder = folder_history.folder
    folder_history.edit([po.DeleteScene(scene=1)])
    folder_history.edit([po.SetMusic(tempo_bpm=100)])
    assert sorted(p.name for p in folder.iterdir()) == ["plan.json", "plan.v1.json", "plan.v2.json"]
    assert json.loads((folder / "plan.v1.json").read_text()) == plan
    current = json.loads((folder / "plan.json").read_text())
    assert current["version"] == 3 and len(current["scenes"]) == 2 and current["music"]["tempo_bpm"] == 100


def test_folder_without_a_plan(tmp_path):
    with pytest.raises(NotFoundError, match="has no plan yet"):
        FolderHistory(tmp_path).get()
    (tmp_path / "plan.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        FolderHistory(tmp_path).get()
