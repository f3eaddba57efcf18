"""Which files of a project make a release, read into memory with their SHA-256.

A release holds every regular file of the project folder that configures or implements agents:
`keel.yaml`, `agents/`, `prompts/`, schemas, Python modules and any other project file, except
- hidden files and folders (`.keel/`, `.git/`, `.venv/`, `.env`...), `__pycache__/`, `node_modules/`;
- databases and their journals (`*.db`, `*.sqlite`, `*.sqlite3`, `*-wal`, `*-shm`, `*-journal`);
- compiled Python (`*.pyc`) and editor leftovers (`*~`, `*.swp`).
A file over 1 MiB, or a project over 20 MiB in all, is refused (a release is configuration, not data).

The content hash is SHA-256 over the sorted `path sha256` lines, so two snapshots of the same
files have the same hash, whatever their order or timestamps.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from keel.errors import UsageError

MAX_FILE_BYTES = 1 << 20
MAX_TOTAL_BYTES = 20 << 20
_SKIP_DIRS = {"__pycache__", "node_modules"}
_SKIP_SUFFIXES = (".db", ".sqlite", ".sqlite3", "-wal", "-shm", "-journal", ".pyc", "~", ".swp")


@dataclass(frozen=True)
class Snapshot:
    files: dict[str, bytes]  # relative POSIX path -> content

    @property
    def manifest(self) -> dict[str, str]:
        return {path: sha256(content) for path, content in sorted(self.files.items())}

    @property
    def content_hash(self) -> str:
        return manifest_hash(self.manifest)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def manifest_hash(manifest: dict[str, str]) -> str:
    lines = "".join(f"{path} {digest}\n" for path, digest in sorted(manifest.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def take(root: Path) -> Snapshot:
    """The release files of the project at `root`."""
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(_walk(root)):
        rel = path.relative_to(root).as_posix()
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UsageError(
                f"{rel} is {size:,} bytes: a release holds configuration and code, at most "
                f"{MAX_FILE_BYTES:,} bytes per file (move data out of the project folder, or into a hidden folder)"
            )
        total += size
        if total > MAX_TOTAL_BYTES:
            raise UsageError(f"the project's files exceed {MAX_TOTAL_BYTES:,} bytes: too large for a release")
        files[rel] = path.read_bytes()
    return Snapshot(files)


def _walk(folder: Path) -> list[Path]:
    out: list[Path] = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") or entry.name in _SKIP_DIRS:
            continue
        if entry.is_symlink() and not entry.resolve().is_relative_to(folder.resolve()):
            continue  # never follow a link out of the project
        if entry.is_dir():
            out += _walk(entry)
        elif entry.is_file() and not entry.name.endswith(_SKIP_SUFFIXES):
            out.append(entry)
    return out


def materialize(files: dict[str, bytes], target: Path) -> Path:
    """Write `files` under `target` (created), for loading a release as a project folder."""
    for rel, content in files.items():
        path = (target / rel).resolve()
        if not path.is_relative_to(target.resolve()):
            raise UsageError(f"release file {rel!r} points outside its folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return target
