"""Reading a submission that nobody trusts: its notebook and its other files, size-capped.

Used when planning the sandboxed runs (class_grading.py) and when grading one notebook
(autograde.py).
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import nbformat
from nbformat import NotebookNode

__all__ = ["MAX_FILES_BYTES", "MAX_NOTEBOOK_BYTES"]

MAX_NOTEBOOK_BYTES = 32 * 2**20
MAX_FILES_BYTES = 64 * 2**20


def _read_untrusted_notebook(path: Path | None) -> NotebookNode | None:
    if (
        path is None
        or path.is_symlink()
        or not path.is_file()
        or path.stat().st_size > MAX_NOTEBOOK_BYTES
    ):
        return None
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception:
        return None
    return nb


def _submission_files(
    folder: Path, notebook_name: str, ignore: tuple[str, ...] = ()
) -> dict[str, bytes]:
    """The submission's other regular files (no symbolic or hard links, no folders, no notebooks,
    none matching the course's `CourseDirectory.ignore` patterns), size-capped."""
    files, total = {}, 0
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            continue
        if any(fnmatch.fnmatch(entry.name, pattern) for pattern in ignore):
            continue  # nbgrader does not copy these into autograded/ either
        if entry.stat(follow_symlinks=False).st_nlink > 1:
            continue  # a hard link: its contents are some other file's (the solutions?), not the student's
        if entry.name.endswith(".ipynb") or entry.name.startswith("."):
            continue
        size = entry.stat(follow_symlinks=False).st_size
        if total + size > MAX_FILES_BYTES:
            break
        with open(entry.path, "rb") as fh:
            files[entry.name] = fh.read()
        total += size
    return files
