"""Every version of a plan kept: edit, undo, restore and diff, over the state store or a folder.

`StoreHistory(state, project_id)` keeps the versions as the state store's 'plan' documents
(`put_document` numbers them 1, 2, ...). `FolderHistory(out_dir)` keeps them in an output folder:
`plan.json` is the current version and `plan.v{N}.json` the earlier ones.

Versions are never rewritten. An undo restores an earlier plan as a new version, so the history
reads as what happened. Each version edited here records how it came about under its "edit" key:
{"ops": [...], "request": "...", "base_version": N, "changes": [...]} for an edit (and whatever the
chat adds: "source", "targets"), and {"undo_of": N, "restored": M,
"base_version": ...} for an undo. `undo` follows "base_version" back, so undoing twice in a row
takes back two edits rather than undoing the undo.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from lookalike.coordinator import plan_ops as po

from lookalike.errors import InputError, NotFoundError, StoreError


class _DocumentStore(Protocol):
    def put_document(self, project_id: str, kind: str, doc: Mapping[str, Any]) -> int: ...

    def get_document(
        self, project_id: str, kind: str, version: int | None = None
    ) -> dict[str, Any] | None: ...

    def document_versions(self, project_id: str, kind: str) -> list[int]: ...


class PlanHistory:
    """The versions of one plan. Subclasses say where versions live (`_versions`, `_get`, `_put`)."""

    def _versions(self) -> list[int]:  # pragma: no cover - interface
        raise NotImplementedError

    def _get(self, version: int) -> dict[str, Any] | None:  # pragma: no cover - interface
        raise NotImplementedError

    def _put(self, plan: Mapping[str, Any]) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    # ---- reading

    def versions(self) -> list[int]:
        return sorted(self._versions())

    def latest_version(self) -> int:
        versions = self.versions()
        if not versions:
            raise NotFoundError(f"{self.where()} has no plan yet", hint="run a remake first")
        return versions[-1]

    def get(self, version: int | None = None) -> dict[str, Any]:
        """The plan at `version` (the latest when None)."""
        v = self.latest_version() if version is None else int(version)
        plan = self._get(v)
        if plan is None:
            raise NotFoundError(
                f"{self.where()} has no plan version {v}",
                hint=f"versions: {', '.join(map(str, self.versions())) or 'none'}",
            )
        return plan

    def where(self) -> str:
        return "the project"

    # ---- writing

    def commit(self, plan: Mapping[str, Any], *, edit: Mapping[str, Any] | None = None) -> int:
        """Store `plan` as the next version; returns its number."""
        doc = dict(plan)
        doc["version"] = (self.versions() or [0])[-1] + 1
        if edit is not None:
            doc["edit"] = dict(edit)
        return self._put(doc)

    def edit(
        self,
        ops: Sequence[po.PlanOp],
        *,
        request: str | None = None,
        note: Mapping[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Apply `ops` to the latest plan and store the result: (new version, new plan).

        The record keeps the changes in words (what `plan_ops.diff` says), so a reader of the new
        version (the ChatPlan reply, `plan show`) sees what the edit did; `note` adds the chat's
        context (who proposed the operations, which scenes they named)."""
        base = self.latest_version()
        old = self.get(base)
        new = po.apply(old, ops)
        record = {
            "ops": [op.to_dict() for op in ops],
            "request": request,
            "base_version": base,
            "changes": [c.describe() for c in po.diff(old, new)],
            **dict(note or {}),
        }
        version = self.commit(new, edit=record)
        return version, self.get(version)

    def conversation(self, turns: int = 6) -> list[dict[str, Any]]:
        """The chat so far, oldest first: up to `turns` of {"request", "ops", "changes"} for the
        edits made in words, and {"request": "undo", "restored": M} for undos. What a model is shown
        and what "and scene 4 too" refers to; it lives in the versions, so it survives restarts."""
        out: list[dict[str, Any]] = []
        for v in reversed(self.versions()):
            edit = self.get(v).get("edit") or {}
            if edit.get("undo_of") is not None:
                out.append({"request": "undo", "restored": edit.get("restored"), "version": v})
            elif edit.get("request") is not None and edit.get("ops") is not None:
                out.append(
                    {
                        "request": edit["request"],
                        "ops": edit["ops"],
                        "changes": edit.get("changes") or [],
                        "version": v,
                    }
                )
            if len(out) >= turns:
                break
        return out[::-1]

    def undo(self) -> tuple[int, dict[str, Any]]:
        """Take back the latest edit: the plan it was made from becomes a new version."""
        latest = self.latest_version()
        base = (self.get(latest).get("edit") or {}).get("base_version")
        if base is None:
            raise InputError(
                "there is no edit to undo", hint=f"the plan is at version {latest}, its first state"
            )
        return self._restore(base, latest)

    def restore(self, version: int) -> tuple[int, dict[str, Any]]:
        """Make the plan at `version` the current one again (as a new version)."""
        return self._restore(int(version), self.latest_version())

    def _restore(self, version: int, latest: int) -> tuple[int, dict[str, Any]]:
        old = self.get(version)
        record = {
            "undo_of": latest,
            "restored": version,
            "base_version": (old.get("edit") or {}).get("base_version"),
        }
        new = {k: v for k, v in old.items() if k != "edit"}
        v = self.commit(new, edit=record)
        return v, self.get(v)

    def diff(self, a: int, b: int | None = None) -> list[po.Change]:
        """Changes from version `a` to version `b` (the latest when None)."""
        return po.diff(self.get(a), self.get(b))

    def log(self) -> list[dict[str, Any]]:
        """One entry per version: {version, edit} (edit is None for a plan not made by an edit)."""
        return [{"version": v, "edit": (self.get(v).get("edit"))} for v in self.versions()]


class StoreHistory(PlanHistory):
    """A project's plan versions in the state store (`coordinator.state.StateStore`)."""

    def __init__(self, state: _DocumentStore, project_id: str, kind: str = "plan") -> None:
        self.state, self.project_id, self.kind = state, project_id, kind

    def where(self) -> str:
        return f"project {self.project_id}"

    def _versions(self) -> list[int]:
        return self.state.document_versions(self.project_id, self.kind)

    def _get(self, version: int) -> dict[str, Any] | None:
        return self.state.get_document(self.project_id, self.kind, version)

    def _put(self, plan: Mapping[str, Any]) -> int:
        return self.state.put_document(self.project_id, self.kind, plan)


_VERSION_FILE = re.compile(r"^plan\.v(\d+)\.json$")


class FolderHistory(PlanHistory):
    """An output folder's plan: plan.json is the current version, plan.v{N}.json the earlier ones.

    Writes are atomic (a temporary file renamed into place): a crash leaves either the old or the
    new plan.json, never half of one, and the previous version is saved before plan.json changes.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.current = self.folder / "plan.json"

    def where(self) -> str:
        return str(self.folder)

    def _older(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return [int(m.group(1)) for p in self.folder.iterdir() if (m := _VERSION_FILE.match(p.name))]

    def _current_version(self) -> int | None:
        if not self.current.exists():
            return None
        return max(self._older(), default=0) + 1

    def _versions(self) -> list[int]:
        cur = self._current_version()
        return self._older() + ([cur] if cur is not None else [])

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path} is not valid JSON: {exc}", hint="restore it from a plan.v{N}.json"
            ) from exc
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if not isinstance(doc, dict):
            raise InputError(f"{path} is not a plan (a JSON object)")
        return doc

    def _get(self, version: int) -> dict[str, Any] | None:
        if version == self._current_version():
            return self._read(self.current)
        path = self.folder / f"plan.v{version}.json"
        return self._read(path) if path.exists() else None

    def _put(self, plan: Mapping[str, Any]) -> int:
        cur = self._current_version()
        if cur is not None:
            _atomic_write(self.folder / f"plan.v{cur}.json", self.current.read_text())
        _atomic_write(self.current, json.dumps(plan, indent=2))
        return (cur or 0) + 1


def _atomic_write(path: Path, text: str) -> None:
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise StoreError(
            f"cannot write {path}: {exc.strerror or exc}", hint="check the folder's permissions"
        ) from exc
