"""`attnlab-grade`: collect, autograde and export a class in one command, losing nobody.

    attnlab-grade 00_quickstart 01_experience          # in an nbgrader course directory
    attnlab-grade --all --collect --course-dir ~/course

A thin wrapper over `nbgrader collect`, `nbgrader autograde` and `nbgrader export` that
shows a progress bar, prints a summary table, and — where nbgrader alone would lose a
submission (a kernel killed by `os._exit` or a crash makes nbgrader remove that student's
autograded folder and report an error) — records the submission as graded 0 in the
gradebook, says why, and goes on. It writes `grades.csv` (nbgrader's export) and
`grading_report.csv` (one row per submission, with the reason for every 0 it had to give
and the review flags of the sandboxed grading), both atomically at the end.

Every submission runs in a bubblewrap sandbox (grader_tests/sandbox.py, autograde.py);
without bubblewrap the command refuses, unless `--unsafe-no-sandbox` is given. A submission
folder that holds a symbolic link is not run at all (graded 0, with the reason): a link
could make the instructor's own process read another student's work or the solutions.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .sandbox import Limits

__all__ = ["GradeResult", "grade_assignment", "main"]

# any line that shows nbgrader working on a student's submission (the first one starts it)
_WORKING = re.compile(
    r"(?:Sanitizing|Converting notebook|Autograding) (?P<path>.*?)/(?:submitted|autograded)/"
    r"(?P<student>[^/]+)/"
)
_FAILED = re.compile(
    r"There was an error processing assignment:? '?(?P<path>.*?)/submitted/(?P<student>[^/]+)/"
)
_REASONS = [
    (
        "Kernel died",
        "the kernel died while running the notebook (os._exit, a crash, or out of memory)",
    ),
    (
        "DeadKernelError",
        "the kernel died while running the notebook (os._exit, a crash, or out of memory)",
    ),
    ("CellTimeoutError", "a cell ran past the time limit and the kernel could not be interrupted"),
    ("TimeoutError", "the notebook ran past the time limit"),
    ("NotJSONError", "the submitted file is not a valid notebook"),
    ("JSONDecodeError", "the submitted file is not a valid notebook"),
    ("ValidationError", "the submitted notebook is malformed"),
    (
        "nbgrader metadata format",
        "the notebook's nbgrader cell metadata is not the course's "
        "(an edited or forged graded cell)",
    ),
]


@dataclass
class GradeResult:
    """One submission's outcome."""

    assignment: str
    student: str
    score: float
    max_score: float
    status: str  # "graded" or "graded 0"
    reason: str = ""
    flags: str = ""  # for review: reference use in disguise, read from the sandbox and the source


def _env() -> dict:
    """nbgrader runs alembic as a subprocess: this interpreter's bin folder goes on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures stay in the notebook
    return env


SANDBOX_PIPELINE = (  # nbgrader's autograde pipeline with the sandboxed execution step
    "grader_tests.autograde.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
)


def _sandbox_args(unsafe: bool) -> list[str]:
    """Command-line config that makes `nbgrader autograde` sandboxed whatever the course's config."""
    args = ["--Autograde.autograde_preprocessors=" + repr(list(SANDBOX_PIPELINE))]
    if unsafe:
        args.append("--SandboxedExecute.unsafe_no_sandbox=True")
    return args


def _nbgrader(course_dir: Path, *args: str, log_level: str = "WARN") -> subprocess.CompletedProcess:
    # -P: the course directory is not put on sys.path, so the installed graders run, never a
    # `grader_tests` folder that happens to sit in the course directory.
    return subprocess.run(
        [sys.executable, "-P", "-m", "nbgrader", *args, f"--log-level={log_level}"],
        cwd=course_dir,
        env=_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def _links_in(folder: Path) -> list[str]:
    """Symbolic links anywhere in a submission folder (relative paths)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_symlink())


def _review(course_dir: Path, assignment: str, student: str) -> tuple[str, str]:
    """(how the run ended if it did not finish, review flags) from the sandboxed grading's reports."""
    ended, flags = [], []
    for path in sorted((course_dir / "autograded" / student / assignment).glob("*.verdicts.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if report.get("ended"):
            ended.append(str(report["ended"]))
        flags += report.get("flags", [])
        for verdict in report.get("verdicts", []):
            flags += verdict.get("flags", [])
    return "; ".join(ended), "; ".join(dict.fromkeys(flags))


def _write_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        write(fh)
    os.replace(tmp, path)


def _reason(log_lines: list[str]) -> str:
    text = "\n".join(log_lines)
    for needle, reason in _REASONS:
        if needle in text:
            return reason
    errors = [line for line in log_lines if "Error" in line or "ERROR" in line]
    return (
        f"nbgrader could not grade it ({errors[-1].strip()[:160]})"
        if errors
        else "nbgrader could not grade it"
    )


def _ensure_zero_submission(course_dir: Path, assignment: str, student: str) -> None:
    """Make sure the gradebook holds the submission (with no points) so export lists it."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        try:
            gb.find_student(student)
        except MissingEntry:
            gb.add_student(student)
        try:
            gb.find_submission(assignment, student)
        except MissingEntry:
            gb.add_submission(assignment, student)


def _scores(course_dir: Path, assignment: str, student: str) -> tuple[float, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        sub = gb.find_submission(assignment, student)
        return float(sub.score), float(sub.max_score)


def sandbox_limits(course_dir: Path, workers: int) -> Limits:
    """The limits nbgrader's SandboxedExecute would use in this course (its config file: the
    cell timeout, the wall-clock limit, the address space), the address space shared out
    among `workers` parallel sandboxes."""
    from .autograde import SandboxedExecute
    from .class_grading import course_config

    step = SandboxedExecute(config=course_config(course_dir))
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 16 * 2**30
    share = int(total * 0.9 / max(1, workers))
    wanted = int(step.address_space_gib * 2**30)
    return Limits(
        address_space_bytes=max(min(6 * 2**30, wanted), min(wanted, share)),
        wall_seconds=step.wall_seconds,
        cell_timeout_s=int(step.timeout or 120),
    )


def _log_line(course_dir: Path):
    """A per-submission line in .attnlab-grading/grading.log for each sandboxed run."""
    from .class_grading import CACHE

    log = course_dir / CACHE / "grading.log"
    log.parent.mkdir(parents=True, exist_ok=True)

    def write(task, outcome: dict) -> None:
        ended = (
            "timed out"
            if outcome.get("timed_out")
            else outcome.get("error") or f"exit {outcome.get('returncode')}"
        )
        with open(log, "a") as fh:
            fh.write(
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {task.assignment}  {task.student}  "
                f"{task.notebook}  {float(outcome.get('wall_s') or 0):.1f} s  {ended}\n"
            )

    return write


def grade_assignment(
    course_dir: Path,
    assignment: str,
    collect: bool = False,
    progress: bool = True,
    unsafe_no_sandbox: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
) -> list[GradeResult]:
    """Collect (optionally) and autograde every submission of `assignment`; never lose one.

    The notebooks run first, `workers` at a time (or on a Dask cluster at `scheduler`), each
    in its own sandbox, cached per submission; then nbgrader grades them in one process.
    """
    from tqdm.auto import tqdm

    from .class_grading import plan_tasks, run_tasks

    course_dir = Path(course_dir).resolve()
    if collect:
        out = _nbgrader(course_dir, "collect", assignment, "--update")
        if out.returncode != 0:
            raise RuntimeError(f"nbgrader collect {assignment} failed:\n{out.stderr[-2000:]}")
    students = sorted(
        p.parent.name for p in (course_dir / "submitted").glob(f"*/{assignment}") if p.is_dir()
    )
    if not students:
        return []
    linked = {s: _links_in(course_dir / "submitted" / s / assignment) for s in students}
    linked = {s: links for s, links in linked.items() if links}
    tasks = plan_tasks(
        course_dir,
        assignment,
        [s for s in students if s not in linked],
        sandbox_limits(course_dir, workers),
        unsafe_no_sandbox,
    )
    run_tasks(
        course_dir,
        tasks,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        on_done=_log_line(course_dir),
    )
    # nbgrader stops the whole run at some errors of one submission (a graded cell with forged
    # nbgrader metadata raises SchemaTooOldError): then it runs again for those not reached yet.
    pending = [s for s in students if s not in linked]
    failed: dict[str, list[str]] = {}
    with tqdm(
        total=len(pending), desc=f"autograde {assignment}", unit="sub", disable=not progress
    ) as bar:
        while pending:
            seen, lines, errors = _autograde(
                course_dir,
                assignment,
                unsafe_no_sandbox,
                [s for s in students if s not in pending],
                bar,
            )
            failed.update(errors)
            graded = {s for s in pending if (course_dir / "autograded" / s / assignment).is_dir()}
            stopped = [s for s in seen if s in pending and s not in graded and s not in errors]
            for student in stopped:  # nbgrader gave up on this one, and on everyone after it
                failed[student] = lines.get(student, [])
            done = graded | set(errors) | set(stopped)
            if not done & set(pending):
                break
            pending = [s for s in pending if s not in done]
    results = []
    for student in students:
        notebook_dir = course_dir / "autograded" / student / assignment
        if student in linked:
            _ensure_zero_submission(course_dir, assignment, student)
            _, max_score = _scores(course_dir, assignment, student)
            reason = "the submission holds symbolic links, which are not graded: " + ", ".join(
                linked[student][:5]
            )
            results.append(GradeResult(assignment, student, 0.0, max_score, "graded 0", reason))
        elif student in failed or not notebook_dir.is_dir():
            _ensure_zero_submission(course_dir, assignment, student)
            reason = _reason(failed.get(student, []))
            _, max_score = _scores(course_dir, assignment, student)
            results.append(GradeResult(assignment, student, 0.0, max_score, "graded 0", reason))
        else:
            score, max_score = _scores(course_dir, assignment, student)
            ended, flags = _review(course_dir, assignment, student)
            results.append(
                GradeResult(assignment, student, score, max_score, "graded", ended, flags)
            )
    return results


def _autograde(
    course_dir: Path, assignment: str, unsafe_no_sandbox: bool, exclude: list[str], bar
) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    """One `nbgrader autograde` run (students in `exclude` left out); returns the students it
    started, in order, the log lines of each, and those it reported as failed (with their lines)."""
    cmd = [
        sys.executable,
        "-P",  # the installed graders, not a `grader_tests` folder in the course directory
        "-m",
        "nbgrader",
        "autograde",
        assignment,
        "--force",
        "--create",
        "--log-level=INFO",
        *_sandbox_args(unsafe_no_sandbox),
        f"--SandboxedExecute.cache_dir={course_dir}",
    ]
    if exclude:
        cmd.append("--CourseDirectory.student_id_exclude=" + ",".join(sorted(exclude)))
    proc = subprocess.Popen(
        cmd,
        cwd=course_dir,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    seen: list[str] = []
    lines: dict[str, list[str]] = {}
    failed: dict[str, list[str]] = {}
    recent: list[str] = []
    for line in proc.stdout:
        recent = (recent + [line])[-40:]
        start = _WORKING.search(line)
        if start and start.group("student") not in seen:
            seen.append(start.group("student"))
            bar.update(1)
            bar.set_postfix_str(start.group("student"))
            recent = [line]
        if seen:
            lines[seen[-1]] = list(recent)
        fail = _FAILED.search(line)
        if fail:
            failed[fail.group("student")] = list(recent)
    proc.wait()
    return seen, lines, failed


def _table(results: list[GradeResult]) -> str:
    rows = [("assignment", "student", "score", "status")]
    for r in results:
        status = r.status + (f": {r.reason}" if r.reason else "")
        rows.append((r.assignment, r.student, f"{r.score:g} / {r.max_score:g}", status))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for k, row in enumerate(rows):
        lines.append(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        )
        if k == 0:
            lines.append("-" * (sum(widths) + 6 + 6))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="attnlab-grade", description="Collect, autograde and export attnlab assignments."
    )
    parser.add_argument("assignments", nargs="*", help="assignment names, e.g. 00_quickstart")
    parser.add_argument("--all", action="store_true", help="every assignment in the source folder")
    parser.add_argument(
        "--course-dir", type=Path, default=Path.cwd(), help="nbgrader course directory"
    )
    parser.add_argument(
        "--collect", action="store_true", help="run `nbgrader collect` first (exchange)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="notebooks run side by side, each in its own sandbox (default: the number of cores)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="run the notebooks on a Dask distributed cluster, e.g. tcp://host:8786",
    )
    parser.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="run submissions without the bubblewrap sandbox (only for code you trust)",
    )
    args = parser.parse_args(argv)
    if not args.unsafe_no_sandbox:
        from .sandbox import SandboxUnavailable, check_bwrap_works

        try:
            check_bwrap_works()
        except SandboxUnavailable as exc:
            print(f"attnlab-grade: {exc}", file=sys.stderr)
            return 2
    course_dir = args.course_dir.resolve()
    assignments = list(args.assignments)
    if args.all:
        assignments += sorted(
            p.name for p in (course_dir / _source_dir(course_dir)).iterdir() if p.is_dir()
        )
    if not assignments:
        parser.error("name at least one assignment, or pass --all")
    start = time.perf_counter()
    results: list[GradeResult] = []
    for assignment in assignments:
        results += grade_assignment(
            course_dir,
            assignment,
            collect=args.collect,
            progress=not args.no_progress,
            unsafe_no_sandbox=args.unsafe_no_sandbox,
            workers=args.workers,
            scheduler=args.scheduler,
        )
    elapsed = time.perf_counter() - start
    export_tmp = course_dir / ".grades.csv.tmp"
    export = _nbgrader(course_dir, "export", f"--to={export_tmp}")
    if export.returncode != 0:
        print(f"nbgrader export failed:\n{export.stderr[-2000:]}", file=sys.stderr)
    else:
        os.replace(export_tmp, course_dir / "grades.csv")

    def write_report(fh) -> None:
        writer = csv.writer(fh)
        writer.writerow(
            ["assignment", "student", "score", "max_score", "status", "reason", "flags"]
        )
        for r in results:
            writer.writerow(
                [r.assignment, r.student, r.score, r.max_score, r.status, r.reason, r.flags]
            )

    _write_atomically(course_dir / "grading_report.csv", write_report)
    print(_table(results))
    zeros = sum(1 for r in results if r.status != "graded")
    rate = len(results) / (elapsed / 60) if elapsed > 0 else float("nan")
    flagged = sum(1 for r in results if r.flags)
    print(
        f"\n{len(results)} submissions graded in {elapsed:.0f} s ({rate:.1f} per minute); "
        f"{zeros} recorded as 0 because they could not be run; {flagged} flagged for review "
        "(see the flags column of grading_report.csv)."
    )
    print(f"grades: {course_dir / 'grades.csv'}   report: {course_dir / 'grading_report.csv'}")
    return 0


def _source_dir(course_dir: Path) -> str:
    """The source folder named in the course's nbgrader_config.py (default 'source')."""
    config = course_dir / "nbgrader_config.py"
    if config.exists():
        found = re.findall(r'source_directory\s*=\s*["\']([^"\']+)["\']', config.read_text())
        if found:
            return found[-1]  # the last assignment wins, as in the config file itself
    return "source"


if __name__ == "__main__":
    sys.exit(main())
