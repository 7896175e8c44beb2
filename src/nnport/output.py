"""Outputs written atomically: a temporary file in the destination's folder, renamed over the
destination only when complete; output folders created on the way and removed again when a write
fails.  No model knowledge here (``io.save_model`` and the targets' writers use it)."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import InputError


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _missing_folders(folder: Path) -> tuple[Path, list[Path]]:
    """The nearest existing ancestor of ``folder`` and the folders below it that do not exist
    (outermost first)."""
    missing: list[Path] = []
    while not folder.exists() and not folder.is_symlink():
        missing.insert(0, folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    return folder, missing


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early, before any work, when an output cannot be written.  A missing output folder is
    fine: it is created when the output is written (see :func:`temp_path_beside`)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    existing, missing = _missing_folders(parent)
    if not existing.is_dir():
        raise InputError(f"{path}: {str(existing)!r} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{path}: output folder {str(existing)!r} is not writable")
    if not missing and path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file name")
    return path


# Folders this process created for outputs: removed again, when still empty, by discard().
_created_folders: list[Path] = []


def _make_parent(path: Path) -> Path:
    """Create ``path``'s missing folders (recorded, so that a failed write can remove them)."""
    parent = path.parent if str(path.parent) else Path(".")
    _, missing = _missing_folders(parent)
    for folder in missing:
        try:
            folder.mkdir()
        except FileExistsError:
            continue  # a concurrent run made it: not ours to remove
        except OSError as exc:
            raise InputError(f"{path}: cannot create output folder {str(folder)!r}: "
                             f"{_one_line(exc)}") from None
        _created_folders.append(folder)
    return parent


def discard(*temps: str | os.PathLike) -> None:
    """Remove temporary files of a failed write, then the output folders this process created
    that are empty now (a failed run leaves no empty folder behind)."""
    for t in temps:
        with contextlib.suppress(OSError):
            os.unlink(t)
    for folder in reversed(list(_created_folders)):
        try:
            folder.rmdir()  # only succeeds on an empty folder
        except OSError:
            continue
        with contextlib.suppress(ValueError):
            _created_folders.remove(folder)


def written(*paths: str | os.PathLike) -> None:
    """Outputs are in place: the folders holding them are the user's now, never removed."""
    for p in paths:
        for folder in Path(p).resolve().parents:
            for f in list(_created_folders):
                with contextlib.suppress(OSError):
                    if f.resolve() == folder:
                        _created_folders.remove(f)


def _normal_mode(fd: int) -> None:
    # mkstemp makes the file private (0600); the output gets the mode any new file would
    mask = os.umask(0)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Write to a temporary file in the same folder, rename over ``path`` on success only."""
    path = Path(path)
    parent = _make_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        _normal_mode(fd)
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise
    written(path)


def temp_path_beside(path: str | os.PathLike) -> str:
    """A fresh temporary file name in ``path``'s folder (for writers that want a file name); the
    folder is created if missing.  A writer that fails calls :func:`discard` on its temps."""
    path = Path(path)
    parent = _make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except BaseException:
        discard()
        raise
    try:
        _normal_mode(fd)
    finally:
        os.close(fd)
    return tmp
