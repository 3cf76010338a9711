"""A throw-away nbgrader course directory for end-to-end grading tests.

Scores are always read from nbgrader's gradebook: `nbgrader autograde` exits 0 even when
a submission's tests fail, so its exit code says nothing about grades.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from build_course import source_notebook, write_notebook

# A student's own, correct scaled_dot_product_attention for Zone 0 (written without the
# library), the cell classmates keep while a test varies their softmax.
OWN_SDPA = """def scaled_dot_product_attention(q, k, v, mask=None, causal=False):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    allowed = np.ones(s.shape[-2:], dtype=bool)
    if mask is not None:
        allowed = allowed & mask
    if causal:
        allowed = allowed & np.tril(np.ones(s.shape[-2:], dtype=bool), k=k.shape[-2] - q.shape[-2])
    s = np.where(allowed, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isneginf(m), 0.0, m)
    e = np.exp(s - m)
    t = e.sum(axis=-1, keepdims=True)
    w = np.divide(e, t, out=np.zeros_like(e), where=t > 0)
    return w @ v, w
"""


def nbgrader_env() -> dict:
    """nbgrader runs `alembic` as a subprocess: put this interpreter's bin folder on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures stay in the notebook
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRITON_INTERPRET", "1")
    env.setdefault("ATTNLAB_STATIC", "1")
    env.setdefault("OMP_NUM_THREADS", "1")  # notebooks graded side by side share 2 cores
    return env


class Course:
    """An nbgrader course directory under `root` with the course's zones as assignments."""

    def __init__(self, root: Path, zones: list[str], extra_config: str = ""):
        self.root = Path(root)
        self.zones = zones
        (self.root / "source").mkdir(parents=True, exist_ok=True)
        config = (ROOT / "nbgrader_config.py").read_text()
        config += (
            '\nc.CourseDirectory.source_directory = "source"\n'
            'c.CourseDirectory.release_directory = "release"\n'
            f"{extra_config}\n"
        )
        (self.root / "nbgrader_config.py").write_text(config)
        for zone in zones:  # source notebooks straight from the jupytext sources
            nb = source_notebook(ROOT / "solutions" / zone / f"{zone}.py")
            write_notebook(nb, self.root / "source" / zone / f"{zone}.ipynb")

    def nbgrader(self, *args: str, timeout: float = 1800, check: bool = True):
        """Run an nbgrader command in the course directory; return the CompletedProcess."""
        cmd = [sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"]
        result = subprocess.run(
            cmd, cwd=self.root, env=nbgrader_env(), capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def generate(self) -> None:
        for zone in self.zones:
            self.nbgrader("generate_assignment", zone, "--force")

    def source_notebook(self, zone: str) -> Path:
        return self.root / "source" / zone / f"{zone}.ipynb"

    def release_notebook(self, zone: str) -> Path:
        return self.root / "release" / zone / f"{zone}.ipynb"

    def submit(self, student: str, zone: str, notebook: nbformat.NotebookNode | Path) -> Path:
        """Place a submission as nbgrader's `collect` would."""
        dest = self.root / "submitted" / student / zone / f"{zone}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(notebook, Path):
            shutil.copy(notebook, dest)
        else:
            nbformat.write(notebook, dest)
        (dest.parent / "timestamp.txt").write_text("2026-11-29 10:00:00.000000 UTC")
        return dest

    def autograde(self, zone: str, student: str | None = None, timeout: float = 1800) -> float:
        """Autograde a zone (one student or all); return the wall time in seconds."""
        args = ["autograde", zone, "--force", "--create"]
        if student:
            args.append(f"--student={student}")
        start = time.perf_counter()
        self.nbgrader(*args, timeout=timeout)
        return time.perf_counter() - start

    def scores(self, zone: str, student: str) -> tuple[float, float]:
        """(autograded score, autograded maximum) of one submission, from the gradebook."""
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}") as gb:
            sub = gb.find_submission(zone, student)
            return float(sub.code_score), float(sub.max_code_score)

    def autograded_notebook(self, zone: str, student: str) -> nbformat.NotebookNode:
        path = self.root / "autograded" / student / zone / f"{zone}.ipynb"
        return nbformat.read(path, as_version=4)


def error_outputs(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(cell id, error text) for every cell that raised while the notebook ran."""
    errors = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append((cell.get("id", "?"), f"{out.get('ename')}: {out.get('evalue')}"))
    return errors


def replace_solution(
    nb: nbformat.NotebookNode, grade_id: str, source: str
) -> nbformat.NotebookNode:
    """A copy of `nb` whose solution cell `grade_id` holds `source` (a simulated student answer)."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = source
            return nb
    raise KeyError(f"no cell with grade_id {grade_id!r}")
