"""nbgrader's execution step, in the sandbox, with verdicts decided outside it.

`nbgrader_config.py` puts `SandboxedExecute` where nbgrader's autograde pipeline has its
`Execute`, so `nbgrader autograde` and `attnlab-grade` grade the same way:

1. nbgrader (trusted, the instructor's process) has already restored the locked and
   graded cells, hidden tests included, from its gradebook;
2. the notebook runs in a fresh bubblewrap sandbox (sandbox.py), where hidden checks only
   record what the learner's functions return (record.py);
3. back outside, every autograded test cell gets its outputs from the trusted verdict
   (verdict.py): passed, or an error with the message and the likely mistake. nbgrader's
   SaveAutoGrades then scores cells from those outputs, as usual. What the sandbox printed
   is kept for the other cells (the learner's figures in the feedback), never for scores;
4. reference use in disguise is flagged for review (`<notebook>.verdicts.json` beside the
   autograded notebook, collected into grading_report.csv by attnlab-grade).
"""

from __future__ import annotations

import ast
import difflib
import inspect
import json
import re
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import nbformat
from attnlab.i18n import language
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Float, Integer, Unicode

from .registry import REGISTRY
from .sandbox import Limits, SandboxResult, run_notebook_sandboxed
from .submission import _read_untrusted_notebook, _submission_files
from .verdict import Verdict, judge_record

__all__ = ["SandboxedExecute", "hidden_checks", "source_flags"]

_HIDDEN_CHECK = re.compile(r"""\bcheck\(\s*["'](\w+)["'][^\n]*\bhidden\s*=\s*True""")
# Ways to reach the library's reference or the grader's internals from a learner's cell.
_SUSPICIOUS = [
    (r"\bimportlib\b|__import__", "imports a module by name"),
    (r"\bsys\s*\.\s*modules\b", "reads sys.modules"),
    (r"\binspect\s*\.\s*getsource|\bgetsource\s*\(", "reads the source of a function"),
    (r"__code__|__globals__|__closure__|__wrapped__", "handles a function's code object"),
    (
        r"_getframe|\bf_back\b|\bf_locals\b|\bf_globals\b|\bcurrentframe\b|\btb_frame\b"
        r"|\binspect\s*\.\s*(stack|trace|getouterframes)\b",
        "inspects the caller's frames",
    ),
    (r"\bREGISTRY\b|\bgrader_tests\b", "uses the graders' internals"),
    (
        r"\bgetattr\s*\(\s*attnlab\b|\bvars\s*\(\s*attnlab\b|attnlab\s*\.\s*__dict__",
        "looks up attnlab by name",
    ),
    (r"\bfrom\s+attnlab[\w.]*\s+import\s*\*", "imports everything from attnlab"),
    (r"\bsetprofile\b|\bsettrace\b", "switches off the grader's tracer"),
    (r"(?<![\w.])(eval|exec|compile)\s*\(|__builtins__|\brunpy\b", "runs code built at run time"),
    (
        r"\battrgetter\b|\bmethodcaller\b|\bgetattr\s*\([^)\n]*['\"]\s*\+",
        "looks up attributes by a computed name",
    ),
    (
        r"\bsavez|\bzipfile\b|attnlab-results|ATTNLAB_RESULTS_DIR",
        "writes files like the grading records",
    ),
]


def hidden_checks(source: str) -> list[str]:
    """Exercise names of the hidden checks in a test cell's source."""
    return _HIDDEN_CHECK.findall(source)


def _normalised(source: str) -> str:
    """Code without docstrings, comments and names' spelling quirks, for similarity."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], "value", None), ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def _function_source(cells_source: str, name: str) -> str | None:
    try:
        tree = ast.parse(cells_source)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(cells_source, node)
    return None


def source_flags(learner_source: str, exercises: list[str]) -> list[str]:
    """Review flags from the learner's own cells: reference use in disguise, grader internals."""
    flags = []
    for pattern, what in _SUSPICIOUS:
        if re.search(pattern, learner_source):
            flags.append(f"learner code {what} ({re.search(pattern, learner_source).group(0)!r})")
    for name in exercises:
        if re.search(
            rf"attnlab(\s*\.\s*\w+)*\s*\.\s*{name}\b|from\s+attnlab[\w.]*\s+import[^\n]*\b{name}\b",
            learner_source,
        ):
            flags.append(f"{name}: learner code names attnlab's own {name}")
        ex = REGISTRY.get(name)
        mine = _function_source(learner_source, name)
        if ex is None or mine is None:
            continue
        try:
            reference = inspect.getsource(ex.reference)
        except (OSError, TypeError):
            continue
        ratio = difflib.SequenceMatcher(None, _normalised(mine), _normalised(reference)).ratio()
        if ratio >= 0.9:
            flags.append(f"{name}: {ratio:.0%} similar to attnlab's source of {name}")
    return flags


def _error_output(message: str) -> NotebookNode:
    return nbformat.v4.new_output(
        "error",
        ename="GradingError",
        evalue=message.splitlines()[0],
        traceback=message.splitlines(),
    )


def _how_it_ended(result: SandboxResult, wall_seconds: float) -> str:
    """A sentence for the report when the notebook did not run to its end ('' when it did)."""
    if result.timed_out:
        return f"the notebook was stopped at the wall-clock limit ({wall_seconds:g} s)"
    if result.notebook is not None and result.returncode == 0:
        return ""
    last = result.log.strip().splitlines()[-1][:200] if result.log.strip() else ""
    if "DeadKernelError" in result.log or "Kernel died" in result.log:
        last = "the kernel died: os._exit, a crash, or out of memory"
    return "the notebook did not run to its end" + (
        f" ({last})" if last else " (killed, or out of memory)"
    )


def _timed_out_cells(executed: NotebookNode | None) -> str:
    """A sentence for the report when cells were interrupted at the cell time limit."""
    if executed is None:
        return ""
    stopped = [
        c
        for c in executed.cells
        if c.cell_type == "code"
        and any(
            o.get("ename") in ("CellTimeoutError", "KeyboardInterrupt")
            for o in c.get("outputs", [])
        )
    ]
    return (
        f"{len(stopped)} cell(s) ran past the cell time limit and were interrupted"
        if stopped
        else ""
    )


class SandboxedExecute(Execute):
    """nbgrader's Execute, run in a bubblewrap sandbox, with hidden-test verdicts decided outside."""

    unsafe_no_sandbox = Bool(
        False, help="Run submissions without the sandbox (code you trust only)."
    ).tag(config=True)
    wall_seconds = Float(900.0, help="Wall-clock limit for one notebook, in seconds.").tag(
        config=True
    )
    address_space_gib = Float(12.0, help="Address-space limit per process, GiB.").tag(config=True)
    slot = Integer(0, help="Sandbox number (its uid offset when grading as root).").tag(config=True)
    cache_dir = Unicode(
        "",
        help="Course folder whose .attnlab-grading cache holds runs done in "
        "parallel by attnlab-grade (class_grading.py); empty: run here.",
    ).tag(config=True)

    def _cached(self, nb: NotebookNode, resources: dict, limits: Limits) -> SandboxResult | None:
        """The outcome attnlab-grade's parallel runs stored for exactly this notebook, if any."""
        from .class_grading import cache_folder, cached_outcome, notebook_key

        info = resources.get("nbgrader", {})
        if not self.cache_dir or not info.get("student"):
            return None
        folder = cache_folder(
            Path(self.cache_dir),
            info.get("assignment", ""),
            info["student"],
            info.get("notebook", ""),
            notebook_key(nb, asdict(limits), self.unsafe_no_sandbox, language()),
        )
        outcome = cached_outcome(folder)
        if outcome is None:
            return None
        executed, log = folder / "executed.ipynb", folder / "sandbox.log"
        text = log.read_text(errors="replace") if log.is_file() else ""
        return SandboxResult(
            int(outcome.get("returncode") or 0),
            bool(outcome.get("timed_out")),
            float(outcome.get("wall_s") or 0.0),
            executed if executed.is_file() else None,
            folder / "results",
            text + "\n" + str(outcome.get("error") or ""),
        )

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        folder = Path(resources.get("metadata", {}).get("path") or ".")
        notebook_name = resources.get("unique_key", "notebook")
        limits = Limits(
            wall_seconds=self.wall_seconds,
            cell_timeout_s=int(self.timeout or 120),
            address_space_bytes=int(self.address_space_gib * 2**30),
        )
        work_root = Path(tempfile.mkdtemp(prefix="attnlab-grade-"))
        try:
            files = _submission_files(folder, notebook_name)
            result = self._cached(nb, resources, limits) or run_notebook_sandboxed(
                nbformat.writes(nb),
                files,
                work_root / "w",
                limits=limits,
                slot=self.slot,
                unsafe_no_sandbox=self.unsafe_no_sandbox,
            )
            executed = _read_untrusted_notebook(result.notebook)
            verdicts = self._apply(nb, executed, result)
        finally:
            shutil.rmtree(work_root, ignore_errors=True)
        learner_source = "\n".join(
            [
                c.source
                for c in nb.cells
                if c.cell_type == "code" and not c.metadata.get("nbgrader", {}).get("locked", False)
            ]
            # the submission's other files run too (`import helpers`): scanned as learner code
            + [data.decode("utf-8", "replace") for data in files.values()]
        )
        exercises = [v.exercise for v in verdicts]
        report = {
            "notebook": notebook_name,
            "sandboxed": not self.unsafe_no_sandbox,
            "timed_out": result.timed_out,
            "ended": _how_it_ended(result, self.wall_seconds) or _timed_out_cells(executed),
            "wall_s": round(result.wall_s, 2),
            "verdicts": [
                {"exercise": v.exercise, "passed": v.passed, "message": v.message, "flags": v.flags}
                for v in verdicts
            ],
            "flags": source_flags(learner_source, exercises),
        }
        (folder / f"{notebook_name}.verdicts.json").write_text(json.dumps(report, indent=1))
        return nb, resources

    def _apply(self, nb: NotebookNode, executed: NotebookNode | None, result) -> list[Verdict]:
        """Outputs of ordinary cells from the sandbox; of autograded test cells, from verdicts."""
        same_shape = executed is not None and [c.get("id") for c in executed.cells] == [
            c.get("id") for c in nb.cells
        ]
        verdicts = []
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            cell.outputs = list(executed.cells[i].get("outputs", [])) if same_shape else []
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("grade") or meta.get("solution"):
                continue
            names = hidden_checks(cell.source)
            if not names:
                cell.outputs = [
                    _error_output(
                        "this graded cell has no hidden check the grader can "
                        "verify outside the sandbox; graded 0."
                    )
                ]
                continue
            cell_verdicts = [judge_record(name, result.results_dir) for name in names]
            if result.timed_out:
                cell_verdicts = [
                    v
                    if v.passed
                    else Verdict(
                        v.exercise,
                        False,
                        v.message
                        + (f"\n  (the notebook was stopped after {self.wall_seconds:g} s)"),
                        v.flags,
                    )
                    for v in cell_verdicts
                ]
            verdicts += cell_verdicts
            failed = [v for v in cell_verdicts if not v.passed]
            if failed:
                cell.outputs = [_error_output("\n".join(v.message for v in failed))]
            else:
                cell.outputs = [
                    nbformat.v4.new_output(
                        "stream",
                        name="stdout",
                        text="\n".join(v.message for v in cell_verdicts) + "\n",
                    )
                ]
        return verdicts
