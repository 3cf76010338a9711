"""Benchmark: grading a class with `attnlab-grade` — 1 vs N workers, local pool vs Dask.

Every configuration grades its own fresh copy of the same class in one run, so the ratios
compare like with like on the same machine state:

  zone0     --zone0 N honest zone-0 submissions, --workers 1 vs --workers 2 (goal >= 1.7x on 2 cores)
  dask      the same zone-0 class on a local Dask cluster (scheduler + 2 one-thread workers)
  course    --course K students handing in all 8 notebooks, --workers 2
  trivial   --trivial M submissions of a one-cell notebook: the cost per submission of
            planning, scheduling, the sandbox's start and nbgrader's bookkeeping

    python bench/grading_parallel.py                       # the full set (long: about an hour on 2 cores)
    python bench/grading_parallel.py --zone0 20 --course 0 --trivial 50   # a quick look
Prints a Markdown table for docs/benchmarks.md, a row as soon as it is measured.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from nbgrader_course import Course, nbgrader_env  # noqa: E402

ZONES = sorted(p.stem for p in (ROOT / "solutions").glob("*/*.py") if p.stem == p.parent.name)


def _class(root: Path, zones: list[str], students: int) -> Course:
    course = Course(root, zones)
    course.generate()
    for zone in zones:
        for i in range(students):
            course.submit(f"s{i:04d}", zone, course.source_notebook(zone))
    return course


def _trivial_class(root: Path, students: int) -> Course:
    """An assignment of one graded cell (the `causal_mask` check) and nothing else."""
    course = Course(root, [])
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    meta = {
        "grade": False,
        "locked": False,
        "solution": True,
        "grade_id": "causal_mask",
        "schema_version": 3,
        "task": False,
    }
    test = {
        "grade": True,
        "locked": True,
        "solution": False,
        "grade_id": "causal_mask-tests",
        "points": 1,
        "schema_version": 3,
        "task": False,
    }
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import numpy as np\nfrom grader_tests import check\n"
            "def causal_mask(n_q, n_k=None):\n"
            "    n_k = n_q if n_k is None else n_k\n"
            "    return np.tril(np.ones((n_q, n_k), dtype=bool), k=n_k - n_q)",
            metadata={"nbgrader": meta},
        ),
        nbformat.v4.new_code_cell(
            'check("causal_mask", causal_mask)\n### BEGIN HIDDEN TESTS\n'
            'check("causal_mask", causal_mask, hidden=True)\n### END HIDDEN TESTS',
            metadata={"nbgrader": test},
        ),
    ]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i}"
    path = course.root / "source" / "trivial" / "trivial.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    course.zones = ["trivial"]
    course.generate()
    for i in range(students):
        course.submit(f"s{i:04d}", "trivial", course.source_notebook("trivial"))
    return course


def _grade(course: Course, zones: list[str], *extra: str) -> float:
    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader_tests.instructor",
            *zones,
            "--no-progress",
            "--course-dir",
            str(course.root),
            *extra,
        ],
        env=nbgrader_env(),
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    with open(course.root / "grading_report.csv", newline="") as fh:  # every one graded?
        zeros = [row for row in csv.DictReader(fh) if row["status"] != "graded"]
    if zeros:
        raise SystemExit(f"{len(zeros)} submissions recorded as 0, e.g. {zeros[0]}")
    return seconds


class LocalDaskCluster:
    """`dask scheduler` and two one-thread `dask worker`s on 127.0.0.1."""

    def __enter__(self) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        dask = str(Path(sys.executable).parent / "dask")
        self.address = f"tcp://127.0.0.1:{port}"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": nbgrader_env()}
        self.procs = [
            subprocess.Popen(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                **quiet,
            )
        ]
        self.procs += [
            subprocess.Popen(
                [dask, "worker", self.address, "--nthreads", "1", "--no-dashboard"], **quiet
            )
            for _ in range(2)
        ]
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        return self.address

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zone0", type=int, default=80, help="zone-0 submissions (0: skip)")
    parser.add_argument(
        "--course", type=int, default=5, help="students handing in the whole course (0: skip)"
    )
    parser.add_argument("--trivial", type=int, default=1000, help="trivial submissions (0: skip)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(
        f"{datetime.date.today()}, {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    print("| run | wall time | submissions | per submission | per minute | ratio |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)

    def row(name: str, seconds: float, count: int, ratio: str = "") -> None:
        """One row of the table, printed as soon as it is measured (a long run keeps its rows)."""
        print(
            f"| {name} | {seconds:.0f} s | {count} | {seconds / count:.2f} s | {60 * count / seconds:.1f} | {ratio} |",
            flush=True,
        )

    work = Path(tempfile.mkdtemp(prefix="attnlab-bench-"))
    try:
        if args.zone0:
            n = args.zone0
            one = _grade(
                _class(work / "z1", ["00_quickstart"], n), ["00_quickstart"], "--workers", "1"
            )
            row(f"{n} zone-0 submissions, 1 worker", one, n)
            many = _grade(
                _class(work / "zn", ["00_quickstart"], n),
                ["00_quickstart"],
                "--workers",
                str(args.workers),
            )
            row(
                f"{n} zone-0 submissions, {args.workers} workers",
                many,
                n,
                f"{one / many:.2f}x vs 1 worker",
            )
            with LocalDaskCluster() as address:
                dask = _grade(
                    _class(work / "zd", ["00_quickstart"], n),
                    ["00_quickstart"],
                    "--scheduler",
                    address,
                )
            row(
                f"{n} zone-0 submissions, Dask (2 workers on 127.0.0.1)",
                dask,
                n,
                f"{many / dask:.2f}x vs the local pool",
            )
        if args.course:
            k = args.course
            t = _grade(_class(work / "c", ZONES, k), ZONES, "--workers", str(args.workers))
            row(f"{k} students x {len(ZONES)} notebooks, {args.workers} workers", t, k * len(ZONES))
        if args.trivial:
            m = args.trivial
            t = _grade(_trivial_class(work / "t", m), ["trivial"], "--workers", str(args.workers))
            row(f"{m} one-cell submissions, {args.workers} workers", t, m)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
