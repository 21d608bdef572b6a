"""The user's footage as the client finds it: `--media` files and folders turned into media items.

Folders are walked recursively (hidden files and folders skipped, names sorted so a run is
repeatable). A file found in a folder is taken when its suffix is a video or photo format; anything
else (a README, a licence text, a project file) is left out with its reason, as is an empty file.
A file named on its own is always sent: the node's probe decides whether it is usable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lookalike.errors import InputError

VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mts .m2ts .ts .mpg .mpeg .wmv .flv .3gp .ogv .mxf .dv .y4m".split()
)
PHOTO_SUFFIXES = frozenset(".jpg .jpeg .png .webp .bmp .tif .tiff .gif .heic .heif .avif .jxl".split())


@dataclass(frozen=True)
class MediaFile:
    path: Path
    name: str  # relative to the folder it was found in (a file given alone: its file name)


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


def collect_media(paths: list[str | os.PathLike]) -> tuple[list[MediaFile], list[Skipped]]:
    """The media files under `paths` (files or folders), and what was left out and why.

    Raises InputError for a path that does not exist or cannot be read."""
    found: list[MediaFile] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"media {raw}: no such file or folder", hint="check the path given to --media")
        if p.is_dir():
            files = sorted(f for f in _walk(p))
            for f in files:
                name = f.relative_to(p).as_posix()
                if f.suffix.lower() not in VIDEO_SUFFIXES | PHOTO_SUFFIXES:
                    skipped.append(Skipped(name, f"not a video or photo file ({f.suffix or 'no suffix'})"))
                    continue
                _add(f, name, found, skipped, seen)
        else:
            _add(p, p.name, found, skipped, seen)
    return found, skipped


def _walk(folder: Path):
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in files:
            if not f.startswith("."):
                yield Path(root) / f


def _add(path: Path, name: str, found: list[MediaFile], skipped: list[Skipped], seen: set[Path]) -> None:
    real = path.resolve()
    if real in seen:
        return
    seen.add(real)
    if not os.access(path, os.R_OK):
        skipped.append(Skipped(name, "cannot be read (permissions)"))
        return
    if path.stat().st_size == 0:
        skipped.append(Skipped(name, "empty file (0 bytes)"))
        return
    found.append(MediaFile(path, name))
