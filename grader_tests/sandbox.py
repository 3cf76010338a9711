"""The grading sandbox: each submission runs in its own bubblewrap container.

The trust boundary is the operating system. A submission's notebook is executed by
`python -m grader_tests.sandbox` inside `bwrap` (https://github.com/containers/bubblewrap):

- no network (a private network namespace with only loopback, which the kernel needs);
- a private process namespace: when the sandbox ends, or at the wall-clock limit, every
  process it started is killed with it (a `setsid` daemon included);
- a filesystem made of read-only views of the system (`/usr`, `/etc`), the Python
  installation and the `attnlab` / `grader_tests` packages, plus one private writable copy
  of this one submission; nothing else exists in there: no course directory, no
  `solutions/`, no gradebook, no exchange, no other student, no home directory;
- resource limits (address space, processes, CPU time, file size, open files); run as root,
  the sandbox also drops to an unprivileged user id of its own.

Inside, hidden checks only *record* what the learner's functions return (plain data, see
plain_data.py); expected values never exist in there. The trusted grader outside compares
(see verdict.py). Where bubblewrap is missing, grading refuses unless told it may run
unsandboxed (`--unsafe-no-sandbox`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from attnlab.i18n import language

from .modes import grading_mode  # re-exported: sandbox.grading_mode() is public

__all__ = [
    "INSTALL_HINT",
    "Limits",
    "SandboxResult",
    "SandboxUnavailable",
    "bwrap_path",
    "grading_mode",
    "run_notebook_sandboxed",
]

INSTALL_HINT = (
    "bubblewrap is not installed, so submissions cannot be graded in a sandbox. Install it "
    "(Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: `sudo dnf install bubblewrap`) "
    "or, only for code you trust, pass --unsafe-no-sandbox."
)
# As root, sandbox number n runs as uid/gid SANDBOX_UID_BASE + n. Sandboxes of one user id
# share its RLIMIT_NPROC (the kernel counts a uid's processes machine-wide): two graders
# running at once on one machine should each have their own base.
SANDBOX_UID_BASE = int(os.environ.get("ATTNLAB_SANDBOX_UID_BASE", "61000"))
WORK = "/submission"  # the submission's private writable folder, inside the sandbox
RESULTS = "/submission/.attnlab-results"  # where hidden checks record the learner's outputs


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here."""


@dataclass
class Limits:
    """Resource limits of one sandbox (per process where the OS counts per process)."""

    address_space_bytes: int = 12 * 2**30
    processes: int = 512  # tasks (threads count) of the sandbox's own user id
    cpu_seconds: int = 1800
    file_size_bytes: int = 256 * 2**20
    open_files: int = 1024
    wall_seconds: float = 900.0  # the whole notebook; each cell also has its own timeout
    cell_timeout_s: int = 120


@dataclass
class SandboxResult:
    """How the sandboxed run ended, and what it left behind (read these as untrusted data)."""

    returncode: int
    timed_out: bool
    wall_s: float
    notebook: Path | None  # the executed notebook, if one was written
    results_dir: Path
    log: str  # the last lines the runner wrote (untrusted text)


def bwrap_path() -> str | None:
    """The bwrap executable, or None."""
    return shutil.which("bwrap")


def _python_roots() -> list[str]:
    """Folders the sandbox needs read-only: Python, the environment, and our two packages."""
    import attnlab

    roots = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.exec_prefix)}
    # every site-packages folder this Python uses (a venv on top of another one, a user site),
    # never the current folder or PYTHONPATH entries, which may be the course directory
    roots |= {
        os.path.realpath(p)
        for p in sys.path
        if os.path.basename(p) in ("site-packages", "dist-packages") and os.path.isdir(p)
    }
    roots.add(os.path.realpath(Path(attnlab.__file__).parent))
    roots.add(os.path.realpath(Path(__file__).parent))  # grader_tests, without importing it
    # Nested folders are covered by their parent; bind each once, parents first.
    ordered = sorted(roots, key=len)
    return [
        r for i, r in enumerate(ordered) if not any(r.startswith(p + os.sep) for p in ordered[:i])
    ]


def _bwrap_argv(work: Path, env: dict[str, str], inner: list[str]) -> list[str]:
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable(INSTALL_HINT)
    argv = [
        bwrap,
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/usr",
        "/usr",
        "--ro-bind",
        "/etc",
        "/etc",
    ]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        target = Path("/") / name
        if target.is_symlink():
            argv += ["--symlink", os.readlink(target), f"/{name}"]
        elif target.is_dir():
            argv += ["--ro-bind", str(target), f"/{name}"]
    # A fresh /tmp first: a Python environment that lives under /tmp (a clone there) is then
    # bound on top of it instead of being hidden by it.
    argv += ["--perms", "1777", "--tmpfs", "/tmp"]
    roots = _python_roots()
    ancestors = sorted(
        {str(a) for r in roots for a in Path(r).parents if str(a) not in ("/", "/tmp")}, key=len
    )
    for folder in ancestors:  # traversable by the sandbox's user, whatever the host's modes
        argv += ["--perms", "0755", "--dir", folder]
    for root in roots:
        argv += ["--ro-bind", root, root]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--bind",
        str(work),
        WORK,
        "--chdir",
        WORK,
        "--clearenv",
    ]
    if os.geteuid() == 0:  # keep just what is needed to drop to the sandbox's own uid
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return argv + ["--", *inner]


def _sandbox_env(limits: Limits) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp/home",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "ATTNLAB_GRADING": "1",
        "ATTNLAB_STATIC": "1",
        "ATTNLAB_RESULTS_DIR": RESULTS,
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "MPLCONFIGDIR": "/tmp/home/.matplotlib",
        "IPYTHONDIR": "/tmp/home/.ipython",
        "JUPYTER_RUNTIME_DIR": "/tmp/home/.jupyter-runtime",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def run_notebook_sandboxed(
    notebook_json: str,
    files: dict[str, bytes],
    work_root: Path,
    limits: Limits | None = None,
    slot: int = 0,
    unsafe_no_sandbox: bool = False,
    lang: str | None = None,
) -> SandboxResult:
    """Execute one submission's notebook in a fresh sandbox; return how it ended.

    `notebook_json` is the notebook to run (its locked cells already restored by nbgrader);
    `files` are the submission's other files (name -> bytes), copied in beside it.
    `lang` is the language it prints in (default: this process's, attnlab.i18n.language()).
    `work_root` receives the private folder; the caller reads the outputs and removes it.
    """
    limits = limits or Limits()
    work = Path(work_root)
    work.mkdir(parents=True, exist_ok=False)
    (work / "submission.ipynb").write_text(notebook_json, encoding="utf-8")
    for name, data in files.items():
        target = work / name
        if target.parent != work:
            continue  # only plain names: nothing outside this folder
        target.write_bytes(data)
    results = work / ".attnlab-results"
    results.mkdir()
    uid = SANDBOX_UID_BASE + slot
    if os.geteuid() == 0 and not unsafe_no_sandbox:
        for path in [work, results, *work.iterdir()]:
            os.chown(path, uid, uid)
    inner = [
        sys.executable,
        "-I",
        "-m",
        "grader_tests.sandbox",
        "run",
        "--limits",
        json.dumps(asdict(limits)),
        "submission.ipynb",
        "executed.ipynb",
    ]
    if os.geteuid() == 0:
        inner[5:5] = ["--uid", str(uid)]
    # The grader's language (ATTNLAB_LANG): what the notebook prints agrees with the feedback.
    env = {**_sandbox_env(limits), "ATTNLAB_LANG": lang or language()}
    if unsafe_no_sandbox:
        env = {**env, "ATTNLAB_RESULTS_DIR": str(results)}
        argv, cwd = (
            inner[:-2] + [str(work / "submission.ipynb"), str(work / "executed.ipynb")],
            work,
        )
        argv = [a for a in argv if a != "-I"]
        (work / ".home").mkdir()
        env.update(
            HOME=str(work / ".home"),
            MPLCONFIGDIR=str(work / ".home/mpl"),
            IPYTHONDIR=str(work / ".home/ipython"),
            JUPYTER_RUNTIME_DIR=str(work / ".home/rt"),
            TMPDIR=str(work / ".home"),
        )
        if "--uid" in argv:
            i = argv.index("--uid")
            del argv[i : i + 2]
    else:
        argv, cwd = _bwrap_argv(work, env, inner), None
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    log_path = work.parent / f"{work.name}.log"
    start = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        timed_out = False
        try:
            proc.wait(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc)
    wall = time.monotonic() - start
    with open(log_path, "rb") as fh:
        fh.seek(max(0, log_path.stat().st_size - 8000))
        log_text = fh.read().decode("utf-8", "replace")
    log_path.unlink()
    executed = work / "executed.ipynb"
    ok = executed.is_file() and not executed.is_symlink()
    return SandboxResult(
        proc.returncode if not timed_out else -9,
        timed_out,
        wall,
        executed if ok else None,
        results,
        log_text,
    )


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill bwrap and its process group; its pid namespace dies with it (every process inside)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def check_bwrap_works() -> None:
    """Raise SandboxUnavailable (with the reason) when bwrap cannot start a sandbox here."""
    if bwrap_path() is None:
        raise SandboxUnavailable(INSTALL_HINT)
    probe = subprocess.run(
        [bwrap_path(), "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/", "--", "true"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        raise SandboxUnavailable(
            f"bubblewrap is installed but cannot create namespaces here: {probe.stderr.strip()} "
            "(unprivileged user namespaces may be disabled: sysctl kernel.unprivileged_userns_clone=1)"
        )


# ----------------------------------------------------------------------------------------
# Inside the sandbox: `python -I -m grader_tests.sandbox run ...`
# ----------------------------------------------------------------------------------------


def _drop_privileges(uid: int) -> None:
    """As root inside bwrap: become the sandbox's own unprivileged user (no capabilities left).

    The private home (in the sandbox's own /tmp) is handed to that user first: importing the
    graders as root may already have written there (matplotlib's font cache)."""
    for var in ("HOME", "MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR"):
        os.makedirs(os.environ[var], exist_ok=True)
    for folder, _, names in os.walk(os.environ["HOME"]):
        for path in [folder, *(os.path.join(folder, n) for n in names)]:
            os.chown(path, uid, uid, follow_symlinks=False)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _set_limits(limits: Limits) -> None:
    import resource

    def lower(kind: int, value: int) -> None:
        _, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))

    lower(resource.RLIMIT_AS, limits.address_space_bytes)
    lower(resource.RLIMIT_CPU, limits.cpu_seconds)
    lower(resource.RLIMIT_FSIZE, limits.file_size_bytes)
    lower(resource.RLIMIT_NOFILE, limits.open_files)
    lower(resource.RLIMIT_CORE, 0)
    nproc = limits.processes
    if os.getuid() != 0:  # a plain user's own processes outside count too
        nproc += _count_tasks_of(os.getuid())
    lower(resource.RLIMIT_NPROC, nproc)


def _count_tasks_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


def _run(args: argparse.Namespace) -> int:
    limits = Limits(**json.loads(args.limits))
    if args.uid is not None:
        _drop_privileges(args.uid)
    _set_limits(limits)
    for var in ("HOME", "MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR"):
        os.makedirs(os.environ[var], exist_ok=True)
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(
        nb,
        timeout=limits.cell_timeout_s,
        allow_errors=True,
        interrupt_on_timeout=True,
        kernel_name="python3",
        resources={"metadata": {"path": os.getcwd()}},
        error_on_timeout={
            "ename": "CellTimeoutError",
            "evalue": f"the cell ran past {limits.cell_timeout_s} s",
            "traceback": [
                f"CellTimeoutError: the cell ran past {limits.cell_timeout_s} s and was interrupted"
            ],
        },
        extra_arguments=["--HistoryManager.hist_file=:memory:"],
    )
    try:
        client.execute()
    finally:  # whatever ran, write what we have: the grader decides from the records anyway
        nbformat.write(nb, args.output)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader_tests.sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute a notebook (inside the sandbox)")
    run.add_argument("--uid", type=int, default=None)
    run.add_argument("--limits", required=True)
    run.add_argument("notebook")
    run.add_argument("output")
    args = parser.parse_args(argv)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
