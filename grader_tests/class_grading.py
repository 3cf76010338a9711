"""Grading a whole class fast: sandboxed runs in parallel, then nbgrader's single writer.

Running a notebook is the only slow part of autograding, so `attnlab-grade` splits it off:

1. plan (trusted, in this process): for each submission, nbgrader's own sanitize step
   restores locked and graded cells from the gradebook, giving the exact notebook that
   nbgrader's autograde will run; its cells' sources and ids give it a key;
2. run (anywhere): each notebook runs in its own sandbox, in parallel — a local pool of
   `--workers` threads (each waits on one bubblewrap process), or the workers of a Dask
   distributed cluster (`--scheduler tcp://host:port`). Only the submission's files go
   out; only plain results come back (the executed notebook's text and the records);
3. cache (trusted, in this process): each outcome is stored under
   `.attnlab-grading/<assignment>/<student>/` as soon as it arrives, so an interrupted run
   loses nothing and a second run runs only what is missing;
4. grade (trusted, one process): `nbgrader autograde` runs as usual, its sandboxed step
   (autograde.py) finds each notebook's outcome in the cache by key, computes the verdicts
   and writes the gradebook — one writer, no SQLite contention, the same grades as a
   serial run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
from attnlab.i18n import language

from .sandbox import Limits, run_notebook_sandboxed
from .submission import _submission_files

if TYPE_CHECKING:
    from traitlets.config import Config

__all__ = ["SandboxTask", "cached_outcome", "notebook_key", "plan_tasks", "run_task", "run_tasks"]

CACHE = ".attnlab-grading"


@functools.cache
def _code_fingerprint() -> str:
    """A hash of the attnlab and grader_tests sources and message catalogues: new graders (or
    new translations of what they print) mean new runs."""
    import attnlab

    import grader_tests

    digest = hashlib.sha256()
    for package in (attnlab, grader_tests):
        root = Path(package.__file__).parent
        for path in sorted([*root.rglob("*.py"), *root.rglob("*.po")]):
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def notebook_key(
    nb: nbformat.NotebookNode, limits: dict, unsafe_no_sandbox: bool, lang: str = "en"
) -> str:
    """What decides a sandboxed run: the cells' types, ids and sources, the graders' code, the
    time limits, the language it prints in, and whether it ran in the sandbox at all."""
    cells = [(c.get("cell_type"), c.get("id"), c.get("source")) for c in nb.cells]
    times = [limits.get("cell_timeout_s"), limits.get("wall_seconds")]
    text = json.dumps(
        {
            "cells": cells,
            "kernel": nb.metadata.get("kernelspec", {}).get("name"),
            "code": _code_fingerprint(),
            "times": times,
            "unsafe": unsafe_no_sandbox,
            "lang": lang,
        }
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class SandboxTask:
    """One notebook of one submission, ready to run: plain data only (it may travel)."""

    assignment: str
    student: str
    notebook: str
    key: str
    notebook_json: str
    files: dict[str, bytes] = field(default_factory=dict)
    limits: dict = field(default_factory=lambda: asdict(Limits()))
    unsafe_no_sandbox: bool = False
    lang: str = "en"  # the grader's language (ATTNLAB_LANG), fixed when the class is planned


def cache_folder(course_dir: Path, assignment: str, student: str, notebook: str, key: str) -> Path:
    return Path(course_dir) / CACHE / assignment / student / f"{notebook}.{key}"


def cached_outcome(folder: Path) -> dict | None:
    """A stored outcome (see `run_task`), or None when this run has not happened yet."""
    meta = folder / "outcome.json"
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text())
    except ValueError:
        return None


def course_config(course_dir: Path) -> Config:
    """The course's nbgrader_config.py as a traitlets Config (empty when there is none)."""
    from traitlets.config import Config
    from traitlets.config.loader import ConfigFileNotFound, PyFileConfigLoader

    try:
        return PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    except ConfigFileNotFound:
        return Config()


def plan_tasks(
    course_dir: Path,
    assignment: str,
    students: Iterable[str],
    limits: Limits | None = None,
    unsafe_no_sandbox: bool = False,
) -> list[SandboxTask]:
    """The notebooks nbgrader's autograde will run, sanitized exactly as it will (trusted)."""
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        OverwriteCells,
        OverwriteKernelspec,
    )

    course_dir = Path(course_dir)
    db_url = f"sqlite:///{course_dir / 'gradebook.db'}"
    ignore = tuple(CourseDirectory(config=course_config(course_dir)).ignore)
    limits = asdict(limits or Limits())
    lang = language()
    tasks = []
    steps = [
        ClearOutput(),
        DeduplicateIds(),
        OverwriteKernelspec(),
        OverwriteCells(),
        CheckCellMetadata(),
    ]
    for student in students:
        folder = course_dir / "submitted" / student / assignment
        for path in sorted(folder.glob("*.ipynb")):
            if path.is_symlink():
                continue
            try:
                nb = nbformat.read(path, as_version=4)
                resources = {
                    "unique_key": path.stem,
                    "metadata": {"path": str(folder)},
                    "nbgrader": {
                        "student": student,
                        "assignment": assignment,
                        "notebook": path.stem,
                        "db_url": db_url,
                    },
                }
                for step in steps:
                    nb, resources = step.preprocess(nb, resources)
            except Exception:
                continue  # nbgrader will report this one itself when it grades
            tasks.append(
                SandboxTask(
                    assignment,
                    student,
                    path.stem,
                    notebook_key(nb, limits, unsafe_no_sandbox, lang),
                    nbformat.writes(nb),
                    _submission_files(folder, path.stem, ignore),
                    limits,
                    unsafe_no_sandbox,
                    lang,
                )
            )
    return tasks


def run_task(task: SandboxTask, slot: int | None = None) -> dict:
    """Run one notebook in a fresh sandbox; return plain data (runs on a worker)."""
    if slot is None:  # on a Dask worker: one sandbox user per worker process and thread
        slot = 100 + (os.getpid() * 31 + threading.get_ident()) % 3000
    work_root = Path(tempfile.mkdtemp(prefix="attnlab-run-"))
    try:
        result = run_notebook_sandboxed(
            task.notebook_json,
            task.files,
            work_root / "w",
            limits=Limits(**task.limits),
            slot=slot,
            unsafe_no_sandbox=task.unsafe_no_sandbox,
            lang=task.lang,
        )
        records = {}
        for path in sorted(result.results_dir.glob("*.npz")):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 64 * 2**20:
                records[path.name] = path.read_bytes()
        executed = None
        if result.notebook is not None and result.notebook.stat().st_size < 32 * 2**20:
            executed = result.notebook.read_text(encoding="utf-8", errors="replace")
        return {
            "key": task.key,
            "returncode": result.returncode,
            "timed_out": result.timed_out,
            "wall_s": result.wall_s,
            "log": result.log[-4000:],
            "executed": executed,
            "records": records,
        }
    finally:
        shutil.rmtree(work_root, ignore_errors=True)


def store_outcome(course_dir: Path, task: SandboxTask, outcome: dict) -> None:
    """Write an outcome into the cache (the trusted process only); complete or not at all."""
    folder = cache_folder(course_dir, task.assignment, task.student, task.notebook, task.key)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "results").mkdir(parents=True)
    for name, data in (outcome.get("records") or {}).items():
        if (
            isinstance(name, str)
            and name.endswith(".npz")
            and "/" not in name
            and isinstance(data, bytes)
        ):
            (tmp / "results" / name).write_bytes(data)
    if isinstance(outcome.get("executed"), str):
        (tmp / "executed.ipynb").write_text(outcome["executed"], encoding="utf-8")
    (tmp / "sandbox.log").write_text(str(outcome.get("log", "")))
    meta = {k: outcome.get(k) for k in ("key", "returncode", "timed_out", "wall_s")}
    meta["error"] = outcome.get("error")
    (tmp / "outcome.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def run_tasks(
    course_dir: Path,
    tasks: list[SandboxTask],
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    on_done: Callable[[SandboxTask, dict], None] | None = None,
) -> dict:
    """Run every task not yet in the cache, in parallel; store each outcome as it arrives.

    Returns {"ran": n, "cached": n, "seconds": s}.
    """
    from tqdm.auto import tqdm

    todo = [
        t
        for t in tasks
        if cached_outcome(cache_folder(course_dir, t.assignment, t.student, t.notebook, t.key))
        is None
    ]
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc="sandboxed runs", unit="sub", disable=not progress or not todo)

    def done(task: SandboxTask, outcome: dict) -> None:
        store_outcome(course_dir, task, outcome)
        bar.update(1)
        bar.set_postfix_str(f"{task.student}/{task.notebook}")
        if on_done:
            on_done(task, outcome)

    try:
        if scheduler:
            _run_on_dask(scheduler, todo, done)
        elif todo:
            slots = list(range(max(1, workers)))
            lock = threading.Lock()

            def with_slot(task: SandboxTask) -> dict:
                with lock:
                    slot = slots.pop()
                try:
                    return run_task(task, slot)
                finally:
                    with lock:
                        slots.append(slot)

            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                futures = {pool.submit(with_slot, t): t for t in todo}
                for future in as_completed(futures):
                    done(futures[future], future.result())
    finally:
        bar.close()
    return {
        "ran": len(todo),
        "cached": len(tasks) - len(todo),
        "seconds": time.perf_counter() - start,
    }


def _run_on_dask(scheduler: str, todo: list[SandboxTask], done) -> None:
    """Send the tasks to a Dask cluster; a task whose workers keep dying comes back as an error.

    When a worker dies, Dask blames every task it held, so an innocent submission that shared a
    worker with a killer can run out of allowed failures too. Such tasks are retried one at a
    time after the others: only a task that kills its workers when it runs alone is graded 0.
    """
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise SystemExit(
            "attnlab-grade --scheduler needs Dask distributed: pip install 'attnlab[cluster]'"
        ) from exc
    suspects = []
    with Client(scheduler, timeout=30) as client:
        futures = {client.submit(run_task, t, key=_dask_key(t), pure=False): t for t in todo}
        for future in dask_completed(list(futures)):
            try:
                done(futures[future], future.result())
            except Exception:  # KilledWorker: this task, or one beside it, killed the workers
                suspects.append(futures[future])
        for task in suspects:  # alone on the cluster, so only its own deaths count against it
            try:
                outcome = client.submit(
                    run_task, task, key=_dask_key(task, "alone"), pure=False
                ).result()
            except Exception as exc:
                outcome = {
                    "key": task.key,
                    "returncode": -9,
                    "timed_out": False,
                    "wall_s": 0.0,
                    "log": "",
                    "executed": None,
                    "records": {},
                    "error": "grading workers died while running this submission alone "
                    f"({type(exc).__name__})",
                }
            done(task, outcome)


def _dask_key(task: SandboxTask, attempt: str = "") -> str:
    return f"attnlab-{task.student}-{task.notebook}-{task.key}{'-' + attempt if attempt else ''}"
