"""Files referenced from the configuration (`{file: ...}`), confined to the project folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class ProjectFile:
    path: Path
    rel: str  # as reported in issues: relative to the project root, with '/'


def project_file(root: Path, ref: str) -> ProjectFile | str:
    """The file `ref` names, or why it cannot be used (outside the project, missing, a folder)."""
    text = ref.replace("\\", "/")
    if PurePosixPath(text).is_absolute() or Path(ref).is_absolute() or (len(text) > 1 and text[1] == ":"):
        return f"'{ref}' must be a path relative to the project folder"
    if ".." in PurePosixPath(text).parts:
        return f"'{ref}' points outside the project folder ('..' is not allowed)"
    base = root.resolve()
    path = (base / text).resolve()
    if not path.is_relative_to(base):
        return f"'{ref}' points outside the project folder (through a symbolic link)"
    if not path.exists():
        return f"file not found: {text}"
    if not path.is_file():
        return f"'{ref}' is not a file"
    return ProjectFile(path, path.relative_to(base).as_posix())


def read_text(file: ProjectFile) -> str | ReadProblem:
    """The file's text, or why it could not be read."""
    try:
        return file.path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return ReadProblem(f"{file.rel} is not UTF-8 text")
    except OSError as exc:
        return ReadProblem(f"cannot read {file.rel}: {exc.strerror or exc}")


@dataclass(frozen=True)
class ReadProblem:
    message: str
