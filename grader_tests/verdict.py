"""Outside the sandbox: turn recorded outcomes into a verdict, a hint and points.

The trusted grader (attnlab-grade, or `nbgrader autograde` with this course's config) reads
what record.py wrote inside the sandbox, computes the expected values here with the
reference, compares, and names the likely mistake by running the catalogue of mistakes
here too. Nothing from the sandbox is executed: outcomes are plain data (plain_data.py).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from attnlab.i18n import tr

from .checking import _mutant_hints_for_exception, failure_message
from .comparison import compare
from .plain_data import decode, read_record
from .registry import REGISTRY
from .safe_call import _copy_args

__all__ = ["Verdict", "judge_outcomes", "judge_record"]


@dataclass
class Verdict:
    """One exercise's result: passed or not, the learner-facing message, and review flags."""

    exercise: str
    passed: bool
    message: str
    flags: list[str] = field(default_factory=list)


def _expected(ex, case):
    args, kwargs = _copy_args(case.args, case.kwargs)
    with np.errstate(all="ignore"):
        return ex.reference(*args, **kwargs)


def _reference_id(ex) -> str | None:
    """'module.py:function' of the reference, as record.py names attnlab functions that ran."""
    import os

    import attnlab

    code = getattr(ex.reference, "__code__", None)
    if code is None:
        return None
    library = os.path.dirname(os.path.realpath(attnlab.__file__)) + os.sep
    filename = os.path.realpath(code.co_filename)
    if not filename.startswith(library):
        return None
    return f"{os.path.relpath(filename, library)}:{code.co_name}"


def judge_outcomes(name: str, outcomes: list, arrays: dict) -> Verdict:
    """Compare recorded outcomes (one per case of `name`, in order) with the reference."""
    ex = REGISTRY[name]
    cases = ex.cases()
    if len(outcomes) != len(cases):
        return Verdict(
            name,
            False,
            tr(
                "{name}: the grading record is incomplete ({n} of {total} inputs); graded 0.",
                name=name,
                n=len(outcomes),
                total=len(cases),
            ),
        )
    flags = []
    ref_id = _reference_id(ex)
    for case, outcome in zip(cases, outcomes):
        if not isinstance(outcome, dict):
            return Verdict(
                name, False, tr("{name}: the grading record is malformed; graded 0.", name=name)
            )
        if ref_id and ref_id in (outcome.get("attnlab_calls") or []):
            flag = f"attnlab.{name} ran inside the learner's {name}"
            if flag not in flags:
                flags.append(flag)
        status = outcome.get("status")
        rtol = ex.rtol if case.rtol is None else case.rtol
        atol = ex.atol if case.atol is None else case.atol
        if status == "timeout":
            return Verdict(
                name,
                False,
                tr(
                    "{name}: took longer than {seconds} s on input: {case}. "
                    "Look for an infinite loop.",
                    name=name,
                    seconds=format(ex.timeout_s, "g"),
                    case=tr(case.label),
                ),
                flags,
            )
        if status == "raised":
            exc_type, text = str(outcome.get("type", "Exception")), str(outcome.get("message", ""))
            where = str(outcome.get("where", ""))
            if exc_type == "NotImplementedError":
                return Verdict(name, False, tr("{name}: not implemented yet.", name=name), flags)
            message = (
                f"{name} raised {exc_type}: {text}"
                + (f" (in {where})" if where else "")
                + "\n"
                + tr("  on input: {case}", case=tr(case.label))
            )
            for hint in _mutant_hints_for_exception(
                ex.mutants, case, _as_exception(exc_type, text)
            ):
                message += "\n" + tr("  Likely mistake: {hint}", hint=hint)
            return Verdict(name, False, message, flags)
        if status != "returned":
            return Verdict(
                name,
                False,
                tr("{name}: the grading record is malformed; graded 0.", name=name),
                flags,
            )
        try:
            got = decode(outcome.get("value"), arrays)
        except (ValueError, TypeError, OverflowError) as exc:
            return Verdict(
                name,
                False,
                tr(
                    "{name}: the recorded output could not be read ({error}).", name=name, error=exc
                ),
                flags,
            )
        expected = _expected(ex, case)
        problem = compare(expected, got, rtol, atol, ex.check_dtype)
        if problem is not None:
            return Verdict(
                name, False, failure_message(ex, case, expected, got, problem, rtol, atol), flags
            )
    return Verdict(
        name, True, tr("{name}: all checks passed, hidden ones included.", name=name), flags
    )


def _as_exception(type_name: str, message: str) -> BaseException:
    """A stand-in for the learner's exception, to match it against the catalogue of mistakes."""
    cls = getattr(builtins, type_name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except Exception:
            pass
    return type(type_name, (Exception,), {})(message)


def judge_record(name: str, results_dir: Path) -> Verdict:
    """The verdict for exercise `name` from the record the sandbox left (0 if none)."""
    path = Path(results_dir) / f"{name}.npz"
    if name not in REGISTRY:
        return Verdict(name, False, tr("{name}: unknown exercise; graded 0.", name=name))
    if not path.exists():
        return Verdict(
            name,
            False,
            tr(
                "{name}: this check did not run (the notebook stopped or the "
                "function `{name}` was not defined when its test cell ran); "
                "graded 0.",
                name=name,
            ),
        )
    try:
        record, arrays = read_record(path)
    except Exception as exc:
        return Verdict(
            name,
            False,
            tr(
                "{name}: the grading record could not be read ({error}); graded 0.",
                name=name,
                error=type(exc).__name__ + ": " + str(exc)[:200],
            ),
        )
    if record.get("exercise") != name:
        return Verdict(
            name,
            False,
            tr("{name}: the grading record names another exercise; graded 0.", name=name),
        )
    if record.get("callable") is not True:
        return Verdict(
            name,
            False,
            tr(
                "{name}: expected a function, got {kind}. Did you overwrite it?",
                name=name,
                kind=str(record.get("type"))[:60],
            ),
        )
    outcomes = record.get("outcomes")
    if not isinstance(outcomes, list):
        return Verdict(
            name, False, tr("{name}: the grading record is malformed; graded 0.", name=name)
        )
    return judge_outcomes(name, outcomes, arrays)
