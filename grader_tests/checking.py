"""`check(name, fn)`: grade a learner's function against a registered exercise.

`run_check` runs the cases and returns failure messages; `check` is what a notebook's test
cell calls. In the grading sandbox, `check(..., hidden=True)` only records outputs
(record.py) and the trusted grader outside decides (verdict.py), with `failure_message`
and the catalogue of mistakes from here. An exercise still at `raise NotImplementedError()`
shows a "not solved yet" box in a learner's own session.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
from attnlab.i18n import tr

from .comparison import compare
from .modes import grading_mode, recording_dir
from .registry import REGISTRY, Case, Exercise, GradingError, Mutant
from .safe_call import (
    _call_with_timeout,
    _copy_args,
    _describe_exception,
    _Timeout,
    _uses_reference,
)

__all__ = ["check", "failure_message", "not_solved_text", "run_check", "show_not_solved"]

_SHAPE_ERROR = re.compile(
    r"mismatch|not aligned|could not be broadcast|cannot reshape|shapes? .*(differ|incompatible)"
    r"|dimension",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d+")


def run_check(
    name: str,
    fn: Callable,
    hidden: bool = False,
    allow_reference: bool = False,
    _compare: Callable[..., str | None] = compare,
    _copy: Callable[[tuple, dict], tuple[tuple, dict]] = _copy_args,
    _call: Callable[..., Any] = _call_with_timeout,
) -> list[str]:
    """Run the cases of exercise `name` on `fn`; return a list of failure messages (empty = pass).

    Visible cases always run; hidden=True adds the hidden ones. A learner's function that is,
    or calls, the library's reference fails (allow_reference=True is for self-tests). Every expected output is
    computed before the learner's function first runs, and the comparison helpers are bound
    as default arguments, so code inside `fn` cannot change the verdict by patching this module.
    Stops at the first failure, so the learner reads one actionable message at a time.
    """
    if name not in REGISTRY:
        raise KeyError(f"no exercise named {name!r}; known: {sorted(REGISTRY)}")
    ex = REGISTRY[name]
    if not callable(fn):
        return [
            tr(
                "{name}: expected a function, got {kind}. Did you overwrite it?",
                name=name,
                kind=type(fn).__name__,
            )
        ]
    if not allow_reference and _uses_reference(fn, ex):
        return [
            tr(
                "{name}: your function calls the library's own attnlab.{name}. The point is to "
                "write it yourself: use NumPy (and the helpers the exercise mentions) instead.",
                name=name,
            )
        ]
    cases = [c for c in ex.cases() if hidden or not c.hidden]
    expectations = []
    for case in cases:
        args, kwargs = _copy(case.args, case.kwargs)
        expectations.append(ex.reference(*args, **kwargs))
    mutants, timeout_s = list(ex.mutants), ex.timeout_s
    for case, expected in zip(cases, expectations):
        rtol = ex.rtol if case.rtol is None else case.rtol
        atol = ex.atol if case.atol is None else case.atol
        args, kwargs = _copy(case.args, case.kwargs)
        try:
            got = _call(fn, args, kwargs, timeout_s)
        except _Timeout:
            return [
                tr(
                    "{name}: took longer than {seconds} s on input: {case}. Look for an "
                    "infinite loop, or loop over whole arrays instead of single entries.",
                    name=name,
                    seconds=format(timeout_s, "g"),
                    case=tr(case.label),
                )
            ]
        except (KeyboardInterrupt, SystemExit) as exc:
            return [
                tr(
                    "{name}: stopped with {error} on input: {case}",
                    name=name,
                    error=type(exc).__name__,
                    case=tr(case.label),
                )
            ]
        except Exception as exc:  # the learner's code failed: report it, do not crash grading
            message = _describe_exception(name, case, exc)
            for hint in _mutant_hints_for_exception(mutants, case, exc):
                message += "\n" + tr("  Likely mistake: {hint}", hint=hint)
            return [message]
        problem = _compare(expected, got, rtol, atol, ex.check_dtype)
        if problem is None:
            continue
        return [failure_message(ex, case, expected, got, problem, rtol, atol)]
    return []


def failure_message(
    ex: Exercise, case: Case, expected: Any, got: Any, problem: str, rtol: float, atol: float
) -> str:
    """What a learner reads when `got` differs from `expected` on `case`: what, where, and why."""
    # `problem` (from compare) already says which part differs: shapes, dtypes, a few values.
    lines = [tr("{name}: wrong result on input: {case}", name=ex.name, case=tr(case.label))]
    lines += [f"  {line}" for line in problem.splitlines()]
    hints = _mutant_hints(ex.mutants, case, got, rtol, atol)
    if ex.diagnose is not None and not hints:
        try:
            extra = ex.diagnose(case, got, expected)
        except Exception:
            extra = None
        if extra:
            hints.append(extra)
    for hint in hints:
        lines.append(tr("  Likely mistake: {hint}", hint=hint))
    return "\n".join(lines)


def _mutant_hints(
    mutants: list[Mutant], case: Case, got: Any, rtol: float, atol: float
) -> list[str]:
    """Hints of every catalogued mistake whose output on this case equals the learner's."""
    hints = []
    for mutant in mutants:
        args, kwargs = _copy_args(case.args, case.kwargs)
        try:
            with np.errstate(all="ignore"):
                wrong = mutant.fn(*args, **kwargs)
        except Exception:
            continue
        try:
            if compare(wrong, got, rtol, atol, False) is None and tr(mutant.hint) not in hints:
                hints.append(tr(mutant.hint))
        except Exception:
            continue
    return hints


def _is_shape_error(exc: BaseException) -> bool:
    return isinstance(exc, ValueError) and _SHAPE_ERROR.search(str(exc)) is not None


def _mutant_hints_for_exception(mutants: list[Mutant], case: Case, exc: BaseException) -> list[str]:
    """Hints of catalogued mistakes that fail on this case with the same error as the learner's.

    The same error is first the same type and text. A learner's code rarely fails with exactly
    the mutant's text (np.dot instead of @, other operands in the expression), so when no mutant
    matches exactly, a shape error (a ValueError about mismatched or unbroadcastable shapes)
    matches a mutant that fails with a shape error on the same input.
    """
    exact, similar, shape = [], [], []
    for mutant in mutants:
        args, kwargs = _copy_args(case.args, case.kwargs)
        try:
            with np.errstate(all="ignore"):
                mutant.fn(*args, **kwargs)
        except Exception as wrong:
            if type(wrong) is type(exc) and str(wrong) == str(exc):
                exact.append(tr(mutant.hint))
            elif type(wrong) is type(exc) and _DIGITS.sub("#", str(wrong)) == _DIGITS.sub(
                "#", str(exc)
            ):
                similar.append(tr(mutant.hint))  # the same error on other sizes
            elif _is_shape_error(wrong) and _is_shape_error(exc):
                shape.append(
                    tr(
                        "(your code fails with a shape error, as this mistake does) {hint}",
                        hint=tr(mutant.hint),
                    )
                )
    return list(dict.fromkeys(exact or similar or shape))


def check(name: str, fn: Callable, hidden: bool = False) -> None:
    """Grade `fn` against exercise `name`; raise GradingError (an AssertionError) on a mistake.

    Prints a short confirmation when everything passes.
    """
    where = recording_dir()
    if where is not None:  # in the grading sandbox: the grader outside judges recorded outputs
        if not hidden:  # the hidden check of the same cell records every case, visible ones too
            return None
        from .record import record_check

        return record_check(name, fn, where)
    with np.errstate(all="ignore"):
        failures = run_check(name, fn, hidden=hidden)
    if failures:
        if not hidden and _not_solved_yet(name, failures) and not _grading():
            show_not_solved(name)  # a learner's own session: Run All goes on to the demos below
            return None
        raise GradingError("\n".join(failures))
    print(
        tr("{name}: all hidden checks passed.", name=name)
        if hidden
        else tr("{name}: all visible checks passed.", name=name)
    )


# ----------------------------------------------------------------------------------------
# "Not solved yet": an exercise still at `raise NotImplementedError()`
# ----------------------------------------------------------------------------------------


def _not_solved_yet(name: str, failures: list[str]) -> bool:
    return bool(failures) and failures[0] == _describe_exception(
        name, Case("", ()), NotImplementedError()
    )


def _grading() -> bool:
    """True in a grading kernel (nbgrader validate/autograde, attnlab's sandbox)."""
    return grading_mode()


def not_solved_text(name: str) -> str:
    """What a learner reads while exercise `name` is still at `raise NotImplementedError()`."""
    return tr(
        "{name}: not solved yet. Replace `raise NotImplementedError()` in the exercise cell "
        "above with your code, run that cell, then this one again. Until then this exercise "
        "scores 0; the rest of the notebook still runs.",
        name=name,
    )


def show_not_solved(name: str) -> None:
    """A box saying exercise `name` is not solved yet (HTML in IPython, plain text elsewhere)."""
    import html

    text = not_solved_text(name)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(text)
        return
    box = (
        '<div style="border: 2px solid #d9a400; background: #fff8dc; color: #333; '
        'padding: 0.6em 0.9em; border-radius: 4px; margin: 0.3em 0;">'
        "<b>&#9203; "
        + tr("{name}: not solved yet.", name="<code>" + html.escape(name) + "</code>")
        + "</b> "
        + re.sub(
            r"`([^`]+)`",
            r"<code>\1</code>",
            html.escape(
                tr(
                    "Replace `raise NotImplementedError()` in the exercise cell above with your code, "
                    "run that cell, then this one again."
                )
            ),
        )
        + "<br>"
        + html.escape(tr("Until then this exercise scores 0; the rest of the notebook still runs."))
        + "</div>"
    )
    display({"text/plain": text, "text/html": box}, raw=True)
