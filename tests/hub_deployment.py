"""A JupyterHub class on this machine, built as README's "Teaching a class on a JupyterHub" says.

Used by tests/test_hub.py; runnable by hand to look at a live class (as root):

    .venv/bin/python tests/hub_deployment.py      # prints the URL and passwords, Ctrl-C tears down

What it sets up, each part named after the README step it stands for:
- real Unix users (useradd): one instructor and N students, passwords set with chpasswd,
  home folders 0700 (Debian's useradd makes them 0755 unless HOME_MODE says otherwise);
- the course's environment readable and executable by everyone: the README installs it in
  /opt/attnlab; here it is the virtual environment running the tests (with jupyterhub in it),
  and every folder on the way to it and to its Python is made traversable (o+x) for the
  test's duration if it was not (pyenv under /root, 0700) — the old modes come back after;
- the hub's configuration: jupyter/hub/ copied to <root>/etc with the course's paths, users
  and free ports filled in (`jupyterhub_config.py`, `nbgrader_config.py`, `student/`,
  `instructor/`); nothing is written to /etc;
- the exchange <root>/exchange, mode 1777 (world-writable, sticky);
- the instructor's course directory ~instructor/attnlab-course: the repository's
  nbgrader_config.py and the source notebooks of solutions/ (as `make build` writes them);
- configurable-http-proxy from npm, in <venv>/node (installed once);
- the hub itself, run as root with the PAM authenticator and the local process spawner.

`teardown()` stops the hub and every user server, kills whatever the test users left
running (by their uids), removes the users with their homes (userdel -r), the folders, and
restores the modes it changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HUB_CONFIG = ROOT / "jupyter" / "hub"
VENV = Path(sys.prefix)
PROXY = VENV / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
COURSE = "attnlab-course"  # the instructor's course directory, in their home


def skip_reason() -> str | None:
    """Why a hub class cannot be deployed on this machine (None when it can)."""
    if os.geteuid() != 0:
        return "needs root: it creates Unix users and runs a hub that starts servers as them"
    for tool in ("useradd", "userdel", "chpasswd", "runuser", "npm", "node", "bwrap"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if not shutil.which("jupyterhub-singleuser", path=str(VENV / "bin")):
        return (
            "jupyterhub is not installed in the virtual environment (it is part of the dev extra)"
        )
    return None


def ensure_proxy() -> Path:
    """configurable-http-proxy, installed from npm into the virtual environment's node/ folder."""
    if not PROXY.exists():
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(VENV / "node"),
                "configurable-http-proxy",
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return PROXY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class Deployment:
    """One hub, one instructor, `n_students` students, one exchange; see the module docstring."""

    def __init__(self, n_students: int = 3):
        self.id = secrets.token_hex(3)
        self.root = Path(f"/srv/attnlab-hub-{self.id}")
        self.instructor = f"t{self.id}instructor"
        self.students = [f"t{self.id}student{k + 1}" for k in range(n_students)]
        self.passwords = {u: secrets.token_urlsafe(12) for u in [self.instructor, *self.students]}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.etc = self.root / "etc"
        self.exchange = self.root / "exchange"
        self.hub_dir = self.root / "hub"
        self.hub: subprocess.Popen | None = None
        self.hub_log = self.root / "hub" / "jupyterhub.log"
        self._modes: dict[Path, int] = {}  # folders made traversable, with their old modes
        self._created_users: list[str] = []

    # ---- paths and users ----
    @property
    def users(self) -> list[str]:
        return [self.instructor, *self.students]

    def home(self, user: str) -> Path:
        return Path(pwd.getpwnam(user).pw_dir)

    @property
    def course_dir(self) -> Path:
        return self.home(self.instructor) / COURSE

    def config_path(self, user: str) -> str:
        role = "instructor" if user == self.instructor else "student"
        return f"{self.etc / role}:{self.etc}"

    def user_env(self, user: str) -> dict[str, str]:
        """The environment the hub gives a user's server (and so their terminals)."""
        return {
            "HOME": str(self.home(user)),
            "USER": user,
            "LOGNAME": user,
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "JUPYTER_CONFIG_PATH": self.config_path(user),
            "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin",
            "OMP_NUM_THREADS": "1",
        }

    def as_user(
        self,
        user: str,
        *args: str,
        cwd: Path | None = None,
        input: str | None = None,
        timeout: float = 1800,
    ) -> subprocess.CompletedProcess:
        """Run a command as `user`, with the environment of their hub server (runuser)."""
        env = [f"{k}={v}" for k, v in self.user_env(user).items()]
        return subprocess.run(
            ["runuser", "-u", user, "--", "env", "-i", *env, *args],
            cwd=cwd or self.home(user),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def can_read(self, user: str, path: Path | str) -> bool:
        """Whether `user` can read the file (or list the folder) at `path`: tried, not computed."""
        code = (
            "import os, sys\np = sys.argv[1]\n"
            "os.listdir(p) if os.path.isdir(p) else open(p, 'rb').read(1)\n"
        )
        return (
            self.as_user(
                user, f"{VENV}/bin/python", "-c", code, str(path), cwd=Path("/")
            ).returncode
            == 0
        )

    def can_write(self, user: str, path: Path | str) -> bool:
        """Whether `user` can append to the file at `path` (nothing is written: zero bytes)."""
        code = "import sys\nopen(sys.argv[1], 'ab').close()\n"
        return (
            self.as_user(
                user, f"{VENV}/bin/python", "-c", code, str(path), cwd=Path("/")
            ).returncode
            == 0
        )

    # ---- set-up ----
    def setup(self) -> None:
        self.root.mkdir(mode=0o755)
        os.chmod(self.root, 0o755)
        self.hub_dir.mkdir(mode=0o700)
        self._make_environment_traversable()
        self._write_config()
        self.exchange.mkdir()
        os.chmod(self.exchange, 0o1777)  # README: chmod 1777 /srv/nbgrader/exchange
        for user in self.users:
            subprocess.run(
                ["useradd", "--create-home", "--shell", "/bin/bash", user],
                check=True,
                capture_output=True,
            )
            self._created_users.append(user)
            subprocess.run(
                ["chpasswd"],
                input=f"{user}:{self.passwords[user]}\n",
                text=True,
                check=True,
                capture_output=True,
            )
            os.chmod(self.home(user), 0o700)  # README: nobody reads anybody's home
        self._make_course_directory()

    def _make_environment_traversable(self) -> None:
        """Every folder on the way to the environment, its Python and the course's source
        (an editable install) must be o+x; grant it where missing, remember to undo it."""
        targets = [
            VENV,
            Path(os.path.realpath(sys.executable)),
            Path(os.path.realpath(sys.base_prefix)),
            ROOT,
        ]
        for target in targets:
            for folder in [*reversed(Path(target).parents), Path(target)]:
                if not folder.is_dir():
                    continue
                mode = folder.stat().st_mode & 0o7777
                if not mode & 0o001 and folder not in self._modes:
                    self._modes[folder] = mode
                    os.chmod(folder, mode | 0o001)

    def _write_config(self) -> None:
        shutil.copytree(HUB_CONFIG, self.etc)
        config = self.etc / "jupyterhub_config.py"
        text = config.read_text()
        for name, value in {
            "VENV": repr(str(VENV)),
            "CONFIG": repr(str(self.etc)),
            "INSTRUCTORS": repr({self.instructor}),
            "STUDENTS": repr(set(self.students)),
        }.items():
            text, n = re.subn(
                rf"^{name} = .*?(  #.*)?$", f"{name} = {value}\\1", text, count=1, flags=re.M
            )
            assert n == 1, f"{name} is not set in jupyter/hub/jupyterhub_config.py"
        text += (
            "\n# ---- tests/hub_deployment.py: this machine's ports and the test's own folders ----\n"
            f"c.JupyterHub.bind_url = 'http://127.0.0.1:{self.port}'\n"
            f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{free_port()}'\n"
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{free_port()}'\n"
            f"c.ConfigurableHTTPProxy.command = [{str(ensure_proxy())!r}]\n"
            f"c.ConfigurableHTTPProxy.pid_file = {str(self.hub_dir / 'proxy.pid')!r}\n"
            f"c.JupyterHub.db_url = 'sqlite:///{self.hub_dir / 'jupyterhub.sqlite'}'\n"
            f"c.JupyterHub.cookie_secret_file = {str(self.hub_dir / 'cookie_secret')!r}\n"
            "c.Spawner.environment['OMP_NUM_THREADS'] = '1'  # a shared 2-core test machine\n"
        )
        config.write_text(text)
        nbgrader = self.etc / "nbgrader_config.py"
        text, n = re.subn(
            r"^c\.Exchange\.root = .*$",
            f"c.Exchange.root = {str(self.exchange)!r}",
            nbgrader.read_text(),
            flags=re.M,
        )
        assert n == 1
        nbgrader.write_text(text)
        for path in [self.etc, *self.etc.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)

    def _make_course_directory(self) -> None:
        sys.path.insert(0, str(ROOT / "tools"))
        from build_course import source_notebook, write_notebook

        course = self.course_dir
        course.mkdir()
        shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
        for source in sorted((ROOT / "solutions").glob("*/*.py")):
            write_notebook(
                source_notebook(source),
                course / "solutions" / source.parent.name / f"{source.stem}.ipynb",
            )
        owner = pwd.getpwnam(self.instructor)
        for path in [course, *course.rglob("*")]:
            os.chown(path, owner.pw_uid, owner.pw_gid)
        os.chmod(course, 0o700)

    def instructor_run(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
        """A command as the instructor, in the course directory (their hub terminal)."""
        out = self.as_user(self.instructor, *args, cwd=self.course_dir, timeout=timeout)
        if out.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            )
        return out

    def release(self, *assignments: str) -> None:
        for assignment in assignments:
            self.instructor_run("nbgrader", "generate_assignment", assignment, "--force")
            self.instructor_run("nbgrader", "release_assignment", assignment, "--force")

    # ---- the hub ----
    def start_hub(self, timeout: float = 180) -> float:
        """Start JupyterHub as root; return the seconds until its API answers."""
        log = open(self.hub_log, "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "PYTEST"))}
        env["PATH"] = f"{VENV}/bin:{env.get('PATH', '/usr/bin:/bin')}"
        start = time.monotonic()
        self.hub = subprocess.Popen(
            [str(VENV / "bin" / "jupyterhub"), "-f", str(self.etc / "jupyterhub_config.py")],
            cwd=self.hub_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while time.monotonic() - start < timeout:
            if self.hub.poll() is not None:
                raise RuntimeError(
                    f"jupyterhub exited {self.hub.returncode}:\n{self.hub_log.read_text()[-4000:]}"
                )
            if _http_status(f"{self.url}/hub/api") == 200:
                return time.monotonic() - start
            time.sleep(0.25)
        raise TimeoutError(
            f"the hub did not answer in {timeout} s:\n{self.hub_log.read_text()[-4000:]}"
        )

    def stop_hub(self) -> None:
        if self.hub is None or self.hub.poll() is not None:
            return
        os.killpg(self.hub.pid, signal.SIGTERM)  # the hub stops the user servers and the proxy
        try:
            self.hub.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.hub.pid, signal.SIGKILL)
            self.hub.wait(10)

    # ---- tear-down ----
    def _kill_user_processes(self) -> list[int]:
        uids = set()
        for user in self._created_users:
            with contextlib.suppress(KeyError):
                uids.add(pwd.getpwnam(user).pw_uid)
        killed = []
        for _ in range(20):
            pids = []
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    with contextlib.suppress(OSError):
                        if entry.stat().st_uid in uids:
                            pids.append(int(entry.name))
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.25)
        return killed

    def teardown(self) -> None:
        try:
            self.stop_hub()
            proxy_pid = self.hub_dir / "proxy.pid"
            if proxy_pid.exists():  # the hub normally stops it; a crashed hub may not have
                with contextlib.suppress(ValueError, ProcessLookupError):
                    os.kill(int(proxy_pid.read_text().strip()), signal.SIGTERM)
            self._kill_user_processes()
            for user in self._created_users:
                subprocess.run(["userdel", "--remove", user], capture_output=True)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            for folder, mode in self._modes.items():
                with contextlib.suppress(OSError):
                    os.chmod(folder, mode)


def read_notebook_as(dep: Deployment, user: str, path: Path) -> dict:
    out = dep.as_user(user, "cat", str(path))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def write_answers_as(dep: Deployment, user: str, path: Path, answers: dict[str, str]) -> None:
    """As `user`, put `answers` (grade id -> source) into the solution cells of their notebook."""
    code = (
        "import json, sys\nimport nbformat\n"
        "path, answers = sys.argv[1], json.load(sys.stdin)\n"
        "nb = nbformat.read(path, as_version=4)\n"
        "for cell in nb.cells:\n"
        "    gid = cell.metadata.get('nbgrader', {}).get('grade_id')\n"
        "    if gid in answers:\n"
        "        cell.source = answers.pop(gid)\n"
        "assert not answers, f'no cells {sorted(answers)}'\n"
        "nbformat.write(nb, path)\n"
    )
    out = dep.as_user(user, f"{VENV}/bin/python", "-c", code, str(path), input=json.dumps(answers))
    assert out.returncode == 0, out.stderr


if __name__ == "__main__":
    reason = skip_reason()
    if reason:
        sys.exit(f"cannot deploy: {reason}")
    dep = Deployment()
    try:
        dep.setup()
        dep.release("00_quickstart", "01_experience")
        print(f"hub started in {dep.start_hub():.1f} s: {dep.url}")
        for user in dep.users:
            print(f"  {user}  {dep.passwords[user]}")
        print(f"instructor's course directory: {dep.course_dir}; exchange: {dep.exchange}")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        dep.teardown()
