"""What the grading sandbox costs: `attnlab-grade` with and without bubblewrap, side by side.

    .venv/bin/python bench/grading_sandbox.py                 # zone 0 x5, whole course x1
    .venv/bin/python bench/grading_sandbox.py --zone0 10 --course 0

For each mode (sandboxed, `--unsafe-no-sandbox`) a fresh throw-away course directory gets
honest solution submissions: `--zone0` students of 00_quickstart, and `--course` students
who hand in every zone. `attnlab-grade --workers 1` grades them (one notebook at a time, so
the time per submission is the sandbox's cost, not parallelism). Each mode has its own course
directory: attnlab-grade's run cache must not carry one mode's runs into the other.
Prints seconds per submission, per mode, and the ratio sandboxed / unsandboxed: for the whole
`attnlab-grade` command, and for the notebooks' own runs alone (from its per-submission log,
.attnlab-grading/grading.log; nbgrader's bookkeeping is the difference).
"""

from __future__ import annotations

import argparse
import csv
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from nbgrader_course import Course, nbgrader_env  # noqa: E402


def _zones() -> list[str]:
    return sorted(p.stem for p in (ROOT / "solutions").glob("*/*.py") if p.stem == p.parent.name)


def _grade(
    zones: list[str], students: int, unsafe: bool, workdir: Path
) -> tuple[float, float, int, list[str]]:
    """(attnlab-grade's seconds, the notebooks' own run seconds, submissions, not full marks)
    for `students` honest submissions of each zone."""
    course = Course(workdir, zones)
    course.generate()
    for zone in zones:
        for i in range(students):
            course.submit(f"s{i:02d}", zone, course.source_notebook(zone))
    cmd = [
        sys.executable,
        "-m",
        "grader_tests.instructor",
        *zones,
        "--no-progress",
        "--workers",
        "1",
        "--course-dir",
        str(course.root),
    ] + (["--unsafe-no-sandbox"] if unsafe else [])
    start = time.perf_counter()
    out = subprocess.run(cmd, env=nbgrader_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(out.stdout[-3000:] + out.stderr[-3000:])
    with open(course.root / "grading_report.csv") as fh:
        rows = list(csv.DictReader(fh))
    wrong = [
        f"{r['assignment']}/{r['student']}: {r['score']}/{r['max_score']} {r['reason']}"
        for r in rows
        if float(r["score"]) != float(r["max_score"])
    ]
    # each notebook's own run (sandbox start, kernel, cells, teardown), from attnlab-grade's log:
    # "date time assignment student notebook <wall> s <how it ended>"
    log = (course.root / ".attnlab-grading" / "grading.log").read_text().splitlines()
    runs = sum(float(line.split()[5]) for line in log if len(line.split()) > 6)
    return seconds, runs, len(rows), wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zone0", type=int, default=5, help="students handing in zone 0 only")
    parser.add_argument(
        "--course", type=int, default=1, help="students handing in the whole course"
    )
    args = parser.parse_args()
    print(
        f"{time.strftime('%Y-%m-%d')}  {platform.node()}  {platform.processor() or platform.machine()}  "
        f"Python {platform.python_version()}"
    )
    runs = []
    if args.zone0:
        runs.append((f"zone 0 x{args.zone0}", ["00_quickstart"], args.zone0))
    if args.course:
        runs.append((f"whole course ({len(_zones())} zones) x{args.course}", _zones(), args.course))
    print(
        f"{'run':<28s} {'mode':<12s} {'subs':>5s} {'attnlab-grade s':>16s} {'per sub':>8s} "
        f"{'notebook runs s':>16s} {'per sub':>8s}"
    )
    for label, zones, students in runs:
        per = {}
        for unsafe in (False, True):
            with tempfile.TemporaryDirectory(prefix="attnlab-bench-") as tmp:
                seconds, run_s, n, wrong = _grade(zones, students, unsafe, Path(tmp) / "course")
            mode = "unsandboxed" if unsafe else "sandboxed"
            per[mode] = (seconds / n, run_s / n)
            print(
                f"{label:<28s} {mode:<12s} {n:>5d} {seconds:>16.1f} {seconds / n:>8.2f} {run_s:>16.1f} "
                f"{run_s / n:>8.2f}"
                + (
                    f"   below the maximum (free answers are graded by hand): {wrong}"
                    if wrong
                    else ""
                ),
                flush=True,
            )
        (tot_s, run_s), (tot_u, run_u) = per["sandboxed"], per["unsandboxed"]
        print(
            f"{label:<28s} sandboxed / unsandboxed: attnlab-grade {tot_s / tot_u:.2f} "
            f"(+{tot_s - tot_u:.2f} s per submission), notebook runs {run_s / run_u:.2f} "
            f"(+{run_s - run_u:.2f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
