"""Grading-time defences: hidden checks in a clean process, and a guard on files and processes.

`check(name, fn, hidden=True)` — what nbgrader's hidden tests call — sends the learner's
function (pickled by value with cloudpickle) to a worker process that imported numpy,
attnlab and grader_tests afresh, so nothing the notebook patched (numpy.allclose,
grader_tests itself, a redefined `check`) takes part in the verdict. Each check runs in a
child forked from that clean worker, under a wall-clock limit: a function that sleeps
forever, calls sys.exit or os._exit fails that exercise and grading goes on.

With ATTNLAB_GRADING=1 (set by nbgrader_config.py and attnlab-grade), importing
grader_tests also installs a Python audit hook (PEP 578; it cannot be removed) that refuses
to open notebooks and the instructor's files (source/, release/, gradebook.db, other
students' folders), refuses writes into the installed attnlab / grader_tests packages, and
refuses to start shells or commands that name those files.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["check_isolated", "fork_clean_worker", "grading_mode", "install_guard"]

WALL_LIMIT_S = 60.0
_PACKAGE_DIRS = ()
_WORKER: subprocess.Popen | None = None
_GUARD_INSTALLED = False


def grading_mode() -> bool:
    """True in a kernel started by nbgrader (validate/autograde) or by attnlab-grade's sandbox.

    nbgrader sets NBGRADER_EXECUTION for the kernels it starts, never for a learner's own.
    """
    return bool(os.environ.get("NBGRADER_EXECUTION")) or os.environ.get("ATTNLAB_GRADING", "") == "1"


# ----------------------------------------------------------------------------------------
# Audit hook
# ----------------------------------------------------------------------------------------

_FORBIDDEN_WORDS = ("ipynb", "gradebook", "solutions", "/source", "/release", "/submitted",
                    "/autograded", "/feedback")
_SHELLS = {"sh", "bash", "zsh", "dash", "csh", "fish", "python", "python3"}


def _course_root(cwd: Path) -> Path | None:
    """autograded/<student>/<assignment> -> the course directory, else None."""
    parts = cwd.parts
    if len(parts) >= 3 and parts[-3] in ("autograded", "submitted"):
        return cwd.parents[2]
    return None


def install_guard() -> None:
    """Install the grading-time audit hook once per process (no-op outside grading mode)."""
    global _GUARD_INSTALLED, _PACKAGE_DIRS
    if _GUARD_INSTALLED or not grading_mode():
        return
    import attnlab

    import grader_tests

    _PACKAGE_DIRS = tuple(
        str(Path(m.__file__).resolve().parent) for m in (attnlab, grader_tests)
    )
    cwd = Path.cwd().resolve()
    root = _course_root(cwd)
    allowed_home = str(cwd)
    root_s = str(root) if root else None
    me = str(Path(__file__).resolve())

    def _from_grader() -> bool:
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename == me and frame.f_code.co_name == "_start_worker":
                return True
            frame = frame.f_back
        return False

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode = args[0], args[1]
            if not isinstance(path, (str, bytes, os.PathLike)):
                return
            path = os.fsdecode(path)
            full = os.path.abspath(path)
            writing = isinstance(mode, str) and any(c in mode for c in "wax+")
            if full.endswith(".ipynb") or full.endswith("gradebook.db"):
                raise PermissionError(f"reading notebooks is not allowed while grading: {path}")
            if root_s and full.startswith(root_s + os.sep) and not full.startswith(allowed_home):
                raise PermissionError(f"the course's files are not readable while grading: {path}")
            if writing and any(full.startswith(d) for d in _PACKAGE_DIRS):
                raise PermissionError(f"the grading packages cannot be modified: {path}")
        elif event in ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "pty.spawn"):
            raise PermissionError(f"starting programs is not allowed while grading ({event})")
        elif event == "subprocess.Popen":
            if _from_grader():
                return
            executable, argv = args[0], args[1]
            words = [os.fsdecode(a) for a in (argv if isinstance(argv, (list, tuple)) else [argv])
                     if isinstance(a, (str, bytes, os.PathLike))]
            if executable is not None:
                words.append(os.fsdecode(executable))
            first = os.path.basename(words[0]) if words else ""
            if first in _SHELLS or any(w in " ".join(words) for w in _FORBIDDEN_WORDS):
                raise PermissionError("starting shells or reading course files is not allowed while grading")

    sys.addaudithook(hook)
    _GUARD_INSTALLED = True
    if os.environ.get("ATTNLAB_GRADING_WORKER") != "1":
        fork_clean_worker()


# ----------------------------------------------------------------------------------------
# The clean worker
# ----------------------------------------------------------------------------------------


def _send(stream, obj) -> None:
    data = pickle.dumps(obj)
    stream.write(struct.pack("!Q", len(data)) + data)
    stream.flush()


def _recv_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError
        chunk = os.read(fd, n - got)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv(fd: int, deadline: float | None = None):
    (n,) = struct.unpack("!Q", _recv_exact(fd, 8, deadline))
    return pickle.loads(_recv_exact(fd, n, deadline))


class _Worker:
    """A clean grading process: request pipe in, reply pipe out."""

    def __init__(self, pid: int | None, request_fd: int, reply_fd: int, popen=None):
        self.pid, self.request_fd, self.reply_fd, self.popen = pid, request_fd, reply_fd, popen

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return done == 0

    def kill(self) -> None:
        try:
            os.kill(self.popen.pid if self.popen else self.pid, 9)
        except ProcessLookupError:
            pass


def fork_clean_worker() -> None:
    """Fork the grading worker now, while the kernel is still clean (called at import time).

    The child keeps a copy of the freshly imported numpy, attnlab and grader_tests; whatever
    a notebook does afterwards happens in the parent only.
    """
    global _WORKER
    if _WORKER is not None or not hasattr(os, "fork"):
        return
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            os.close(req_w)
            os.close(rep_r)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            sys.stdout = sys.stderr = open(os.devnull, "w")
            _serve(req_r, os.fdopen(rep_w, "wb"))
        finally:
            os._exit(0)
    os.close(req_r)
    os.close(rep_w)
    _WORKER = _Worker(pid, req_w, rep_r)


def _start_worker() -> _Worker:
    """Start a fresh interpreter as the worker (when no clean fork exists)."""
    env = dict(os.environ)
    env["ATTNLAB_GRADING_WORKER"] = "1"
    popen = subprocess.Popen(
        [sys.executable, "-m", "grader_tests.sandbox"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=env, cwd=os.getcwd(),
    )
    worker = _Worker(None, popen.stdin.fileno(), popen.stdout.fileno(), popen)
    if _recv(worker.reply_fd, time.monotonic() + 120) != "ready":
        raise RuntimeError("the grading worker did not start")
    return worker


def _worker() -> _Worker:
    global _WORKER
    if _WORKER is None or not _WORKER.alive():
        _WORKER = _start_worker()
    return _WORKER


def _isolated_failures(name: str, fn, hidden: bool) -> list[str]:
    """Run the check in the clean worker; return failure messages (empty = passed)."""
    import cloudpickle

    try:
        payload = cloudpickle.dumps(fn)
    except Exception as exc:
        return [f"{name}: your function could not be sent to the grader ({type(exc).__name__}: "
                f"{exc}). Keep it a plain function of NumPy arrays."]
    worker = _worker()
    data = pickle.dumps((name, payload, hidden))
    os.write(worker.request_fd, struct.pack("!Q", len(data)) + data)
    try:
        status, result = _recv(worker.reply_fd, time.monotonic() + WALL_LIMIT_S + 30)
    except (TimeoutError, EOFError):
        worker.kill()
        return [f"{name}: grading did not finish (your function may loop forever)."]
    if status == "ok":
        return result
    return [result]


def check_isolated(name: str, fn, hidden: bool = True) -> None:
    """Grade in the clean worker; raise GradingError with the learner-facing message on failure."""
    from .core import GradingError

    failures = _isolated_failures(name, fn, hidden)
    if failures:
        raise GradingError("\n".join(failures))
    print(f"{name}: all {'hidden' if hidden else 'visible'} checks passed.")


def _serve(request_fd: int, out) -> None:
    """Worker loop: fork one child per check request, so no check can spoil the next."""
    from grader_tests.core import run_check

    while True:
        try:
            name, payload, hidden = _recv(request_fd)
        except EOFError:
            return
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: run the learner's code, report, leave
            os.close(read_fd)
            writer = os.fdopen(write_fd, "wb")
            try:
                fn = pickle.loads(payload)
                reply = ("ok", run_check(name, fn, hidden=hidden))
            except BaseException as exc:
                reply = ("error", f"{name}: your function could not be graded "
                                  f"({type(exc).__name__}: {exc})")
            try:
                _send(writer, reply)
            finally:
                os._exit(0)
        os.close(write_fd)
        deadline = time.monotonic() + WALL_LIMIT_S
        try:
            reply = _recv(read_fd, deadline)
        except TimeoutError:
            reply = ("error", f"{name}: grading took longer than {WALL_LIMIT_S:g} s; look for an "
                              "infinite loop or a sleep in your function.")
        except EOFError:
            reply = ("error", f"{name}: your function ended the grading process (sys.exit, "
                              "os._exit or a crash) before it returned.")
        finally:
            os.close(read_fd)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        _send(out, reply)


def _serve_fresh_interpreter() -> None:
    """Entry point of `python -m grader_tests.sandbox`: protocol on the original stdout."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # learner prints go nowhere near the protocol stream
    import grader_tests  # noqa: F401  (registry, and the guard in grading mode)

    _send(out, "ready")
    _serve(sys.stdin.fileno(), out)


if __name__ == "__main__" and os.environ.get("ATTNLAB_GRADING_WORKER") == "1":
    _serve_fresh_interpreter()
