"""Uploads no project uses are removed after a grace period.

An upload is kept while any project refers to one of its files (the sample, the subject, a media
item, the music track: the `*_key` options and `media[].key`), and for `grace_s` after it was made
(its meta.json `created`), so a client between its uploads and its Remake call loses nothing. An
upload without `created` (made before uploads carried it) counts from when the sweeper first sees it.
A batch refused after its uploads, or a client that gave up, leaves nothing behind for long.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable

from lookalike.errors import LookalikeError, NotFoundError
from lookalike.obs import get_logger

log = get_logger("uploads")


def referenced_keys(options: Iterable[dict]) -> set[str]:
    """Every store key the given project options point at."""
    keys: set[str] = set()
    for o in options:
        keys |= {str(v) for k, v in o.items() if k.endswith("_key") and v}
        keys |= {str(m.get("key")) for m in o.get("media") or [] if isinstance(m, dict) and m.get("key")}
    return keys


class UploadSweeper:
    """Deletes uploads older than `grace_s` that no project uses; `sweep()` once, or `start()` a thread."""

    def __init__(self, store, project_options: Callable[[], Iterable[dict]], *, grace_s: float,
                 every_s: float = 600.0, clock: Callable[[], float] = time.time) -> None:
        self.store, self.project_options = store, project_options
        self.grace_s, self.every_s, self.clock = float(grace_s), float(every_s), clock
        self._first_seen: dict[str, float] = {}
        self._stop = threading.Event()

    def sweep(self) -> list[str]:
        """The upload ids removed this time."""
        now = self.clock()
        by_upload: dict[str, list[str]] = {}
        for key in self.store.list("uploads/"):
            parts = key.split("/")
            if len(parts) >= 3:
                by_upload.setdefault(parts[1], []).append(key)
        used = referenced_keys(self.project_options())
        removed = []
        for upload_id, keys in sorted(by_upload.items()):
            if any(k in used for k in keys):
                continue
            if now - self._created(upload_id, now) < self.grace_s:
                continue
            for k in sorted(keys, key=lambda k: k.endswith("/meta.json")):  # meta.json last
                try:
                    self.store.delete(k)
                except NotFoundError:
                    pass
            self._first_seen.pop(upload_id, None)
            removed.append(upload_id)
        if removed:
            log.info("uploads_removed", count=len(removed), grace_s=self.grace_s)
        return removed

    def _created(self, upload_id: str, now: float) -> float:
        try:
            meta = json.loads(self.store.get_bytes(f"uploads/{upload_id}/meta.json"))
            if isinstance(meta, dict) and isinstance(meta.get("created"), (int, float)):
                return float(meta["created"])
        except (NotFoundError, ValueError):
            pass  # cut short before its meta.json: counts from when it was first seen
        return self._first_seen.setdefault(upload_id, now)

    def start(self) -> threading.Thread:
        def run() -> None:
            while not self._stop.wait(self.every_s):
                try:
                    self.sweep()
                except LookalikeError as exc:  # a store or state outage: try again next time
                    log.warning("upload_sweep_failed", error=str(exc))

        t = threading.Thread(target=run, name="upload-sweeper", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()
