"""Grading a class in parallel: the same grades as a serial run, on a local pool and on a real
Dask cluster (a scheduler and two workers on 127.0.0.1), resumable after an interruption, and
a submission whose workers keep dying is graded 0 with the reason.

Zone 0 keeps it fast: 5 points (softmax 2, scaled_dot_product_attention 3).
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader_course import Course, nbgrader_env, replace_solution

ZONE = "00_quickstart"
HERE = Path(__file__).resolve().parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        subprocess.run(["which", "bwrap"], capture_output=True).returncode != 0
        and os.environ.get("ATTNLAB_REQUIRE_BROWSER") != "1",
        reason="bubblewrap is not installed",
    ),
]

WRONG_SOFTMAX = (
    "def softmax(x, axis=-1):\n    e = np.exp(x)\n    return e / e.sum(axis=axis, keepdims=True)\n"
)
NO_SCALE_SDPA = (
    "def scaled_dot_product_attention(q, k, v, mask=None, causal=False):\n"
    "    s = q @ np.swapaxes(k, -1, -2)\n"
    "    allowed = np.ones(s.shape[-2:], dtype=bool)\n"
    "    if mask is not None:\n        allowed = allowed & mask\n"
    "    if causal:\n        allowed = allowed & attnlab.causal_mask(q.shape[-2], k.shape[-2])\n"
    "    w = softmax(np.where(allowed, s, -np.inf), axis=-1)\n    return w @ v, w\n"
)
# student -> (softmax source or None for the solution's, sdpa source or None, expected score)
CLASS = {
    "ada": (None, None, 5),
    "bob": (WRONG_SOFTMAX, None, 0),
    "cy": (None, NO_SCALE_SDPA, 2),
    "dee": ("BLANK", None, 0),
    "eve": (None, None, 5),
    "fay": ("import os\nos._exit(1)\n", None, 0),
}


def _class_course(root: Path) -> Course:
    course = Course(root, [ZONE])
    course.generate()
    solution = nbformat.read(course.source_notebook(ZONE), as_version=4)
    for student, (soft, sdpa, _) in CLASS.items():
        if soft == "BLANK":
            course.submit(student, ZONE, course.release_notebook(ZONE))
            continue
        nb = solution
        if soft is not None:
            nb = replace_solution(nb, "softmax", soft)
        if sdpa is not None:
            nb = replace_solution(nb, "scaled_dot_product_attention", sdpa)
        course.submit(student, ZONE, nb)
    return course


def _grade(course: Course, *extra: str, timeout: float = 900) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader_tests.instructor",
            ZONE,
            "--no-progress",
            "--course-dir",
            str(course.root),
            *extra,
        ],
        env=nbgrader_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _scores(course: Course) -> dict[str, float]:
    with open(course.root / "grading_report.csv") as fh:
        return {row["student"]: float(row["score"]) for row in csv.DictReader(fh)}


def _runs_logged(course: Course) -> list[str]:
    log = course.root / ".attnlab-grading" / "grading.log"
    return [line.split()[3] for line in log.read_text().splitlines()] if log.exists() else []


def test_parallel_grades_equal_serial_grades(tmp_path):
    serial = _class_course(tmp_path / "serial")
    _grade(serial, "--workers", "1")
    parallel = _class_course(tmp_path / "parallel")
    _grade(parallel, "--workers", "2")
    expected = {s: float(score) for s, (_, _, score) in CLASS.items()}
    assert _scores(serial) == expected
    assert _scores(parallel) == expected
    # Each notebook ran once per class; a second grading runs nothing and gives the same grades.
    assert sorted(_runs_logged(parallel)) == sorted(CLASS)
    _grade(parallel, "--workers", "2")
    assert sorted(_runs_logged(parallel)) == sorted(CLASS)
    assert _scores(parallel) == expected


def test_an_interrupted_run_resumes_without_grading_twice(tmp_path):
    course = _class_course(tmp_path / "c")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "grader_tests.instructor",
            ZONE,
            "--no-progress",
            "--workers",
            "1",
            "--course-dir",
            str(course.root),
        ],
        env=nbgrader_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    # Ctrl-C as soon as the first submission is done: the rest of the class is still to come,
    # with room to spare on a busy machine (one worker, about 5 s a submission).
    while not _runs_logged(course) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    done_before = _runs_logged(course)
    assert 1 <= len(done_before) < len(CLASS)
    _grade(course, "--workers", "2")
    runs = _runs_logged(course)
    assert sorted(runs) == sorted(CLASS), "every submission ran exactly once over both runs"
    assert _scores(course) == {s: float(score) for s, (_, _, score) in CLASS.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1, as an instructor runs them.

    The workers preload tests/dask_kill_plugin.py: a worker dies whenever it starts the run of
    student "abe-kills", to stand for a submission that takes its worker down.
    """
    port = _free_port()
    # Every task is handed to a worker up front (saturation inf), so when "abe-kills" takes its
    # worker down, the classmates queued on that worker are blamed too: they must not pay for it.
    env = dict(
        nbgrader_env(),
        DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1",
        DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION="inf",
        PYTHONPATH=str(HERE),
    )
    bin_dir = Path(sys.executable).parent
    procs = [
        subprocess.Popen(
            [
                str(bin_dir / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    address = f"tcp://127.0.0.1:{port}"
    for _ in range(2):
        procs.append(
            subprocess.Popen(
                [
                    str(bin_dir / "dask"),
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--preload",
                    "dask_kill_plugin",
                ],
                env=env,
                cwd=tmp_path,
                stdout=open(tmp_path / f"worker{len(procs)}.log", "w"),
                stderr=subprocess.STDOUT,
            )
        )
    from distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(2, timeout=120)
    yield address
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_dask_cluster_grades_like_the_local_pool(tmp_path, dask_cluster):
    course = _class_course(tmp_path / "c")
    solution = nbformat.read(course.source_notebook(ZONE), as_version=4)
    course.submit("abe-kills", ZONE, solution)  # its runs kill their workers (see the plugin)
    start = time.perf_counter()
    _grade(course, "--scheduler", dask_cluster)
    seconds = time.perf_counter() - start
    expected = {s: float(score) for s, (_, _, score) in CLASS.items()}
    scores = _scores(course)
    assert {s: scores[s] for s in CLASS} == expected
    assert scores["abe-kills"] == 0
    with open(course.root / "grading_report.csv") as fh:
        rows = {row["student"]: row for row in csv.DictReader(fh)}
    assert "workers died" in rows["abe-kills"]["reason"]
    victims = [s for s in CLASS if "workers died" in rows[s]["reason"]]
    assert not victims, f"classmates blamed for the killer's deaths: {victims}"
    print(f"\nDask cluster (2 workers): {len(CLASS) + 1} submissions in {seconds:.0f} s")
