"""Honest students get full marks from the README's layout: the repository root itself is the
nbgrader course directory (nbgrader_config.py there, source `solutions`, release `course`,
the Makefile's `.venv` inside it), graded by `attnlab-grade` in its sandbox.

Two runs of zone 0 (5 points) with one honest student each:
- a copy of the repository's tracked files (`git ls-files`) in a temporary folder, graded
  with this repository's interpreter;
- the repository root itself (`--course-dir` = the checkout, `.venv` inside it): the
  instructor's state it creates (gradebook.db, submitted/, autograded/, the CSVs, the run
  cache) is git-ignored and removed afterwards; `course/` is left as it is (the assignment is
  generated into a temporary release folder).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader_course import ROOT, nbgrader_env, source_notebook, write_notebook

ZONE = "00_quickstart"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap is not installed"),
]
STATE = [
    "gradebook.db",
    "submitted/",
    "autograded/",
    "grades.csv",
    "grading_report.csv",
    ".attnlab-grading/",
    ".grades.csv.tmp",
    ".grading_report.csv.tmp",
]  # folders end in /


def _nbgrader(course_dir: Path, *args: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"],
        cwd=course_dir,
        env=nbgrader_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def _grade_honest_student(course_dir: Path, release_dir: Path) -> dict:
    """Generate zone 0 from solutions/, hand in the solution notebook, run attnlab-grade."""
    solution = course_dir / "solutions" / ZONE / f"{ZONE}.ipynb"
    if (
        not solution.exists()
    ):  # `make build` writes it; a fresh copy of the tracked files has only the .py
        write_notebook(source_notebook(course_dir / "solutions" / ZONE / f"{ZONE}.py"), solution)
    _nbgrader(
        course_dir,
        "generate_assignment",
        ZONE,
        "--force",
        f"--CourseDirectory.release_directory={release_dir}",
    )
    submitted = course_dir / "submitted" / "honest" / ZONE
    submitted.mkdir(parents=True)
    shutil.copy(solution, submitted / f"{ZONE}.ipynb")
    (submitted / "timestamp.txt").write_text("2026-11-29 10:00:00.000000 UTC")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader_tests.instructor",
            ZONE,
            "--no-progress",
            "--course-dir",
            str(course_dir),
        ],
        env=nbgrader_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with open(course_dir / "grading_report.csv") as fh:
        return {r["student"]: r for r in csv.DictReader(fh)}


def test_honest_student_in_a_copy_of_the_repository(tmp_path):
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    copy = tmp_path / "attnlab"
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    report = _grade_honest_student(copy, tmp_path / "release")
    row = report["honest"]
    assert (float(row["score"]), float(row["max_score"]), row["status"], row["flags"]) == (
        5.0,
        5.0,
        "graded",
        "",
    ), row


def test_honest_student_with_the_repository_root_as_course_directory(tmp_path):
    """Literally the README's layout: `--course-dir` is this checkout, with `.venv` inside it."""
    present = [name for name in STATE if (ROOT / name).exists()]
    if present:
        pytest.skip(f"the checkout already holds an instructor's grading state: {present}")
    ignored = subprocess.run(
        ["git", "check-ignore", *STATE], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert sorted(ignored) == sorted(STATE), "grading state that .gitignore does not cover"
    course_before = subprocess.run(
        ["git", "status", "--porcelain", "--", "course"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    try:
        report = _grade_honest_student(ROOT, tmp_path / "release")
    finally:
        for name in STATE:
            path = ROOT / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    row = report["honest"]
    assert (float(row["score"]), float(row["max_score"]), row["status"], row["flags"]) == (
        5.0,
        5.0,
        "graded",
        "",
    ), row
    assert (
        subprocess.run(
            ["git", "status", "--porcelain", "--", "course"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout
        == course_before
    )
