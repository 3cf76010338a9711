"""The grading engine: a registry of exercises and `check(name, fn)`.

An exercise is a function of `attnlab` that the learner re-implements. Its entry holds the
reference (the attnlab function), its points, the inputs to try (visible and hidden cases),
and a catalogue of typical wrong implementations ("mutants"). When a learner's output is
wrong, every mutant is run on the same input; if one produces the learner's output, its
hint names the mistake.

Defences against tampering live here too: the NumPy routines used for comparing are bound
when this module is imported (before any learner code runs in a graded notebook), outputs
must be plain NumPy arrays / numbers / tuples (no objects with a custom `__eq__`), inputs are
copied before each call, and each call runs under a time limit.
"""

from __future__ import annotations

import copy
import dis
import os
import re
import signal
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from attnlab.i18n import tr

# Bound at import time: a learner who later replaces numpy.allclose & co. does not change these.
_asarray = np.asarray
_isnan = np.isnan
_isinf = np.isinf
_isfinite = np.isfinite
_abs = np.abs
_all = np.all
_any = np.any
_array_equal = np.array_equal
_array2string = np.array2string
_issubdtype = np.issubdtype
_ndarray = np.ndarray
_generic = np.generic
_bool_ = np.bool_
_floating = np.floating
_number = np.number

__all__ = [
    "REGISTRY",
    "Case",
    "Exercise",
    "GradingError",
    "Mutant",
    "check",
    "compare",
    "register",
    "run_check",
]

DEFAULT_TIMEOUT_S = 20.0
MAX_ERROR_CHARS = 240  # of a learner's exception text in a message
_GRADER_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Frames of these are not the learner's line: report the learner's own call instead.
_LIBRARY_PATHS = ("/numpy/", "/site-packages/", "/attnlab/", "<__array_function__")
_SHAPE_ERROR = re.compile(
    r"mismatch|not aligned|could not be broadcast|cannot reshape|shapes? .*(differ|incompatible)"
    r"|dimension",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d+")


class GradingError(AssertionError):
    """A failed check: the message says which input, expected vs got, and the likely mistake."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the message alone, no grader internals."""
        return str(self).splitlines() or [type(self).__name__]


@dataclass
class Case:
    """One input to try: `fn(*args, **kwargs)`, described for the learner by `label`."""

    label: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    hidden: bool = False
    rtol: float | None = None
    atol: float | None = None


@dataclass
class Mutant:
    """A typical wrong implementation, and the hint shown when a learner's output matches it."""

    name: str
    fn: Callable
    hint: str


@dataclass
class Exercise:
    """Everything needed to grade one exercise; its name is the attnlab function it mirrors."""

    name: str
    reference: Callable
    points: int
    cases: Callable[[], list[Case]]
    mutants: list[Mutant] = field(default_factory=list)
    rtol: float = 1e-5
    atol: float = 1e-7
    check_dtype: bool = False
    # Extra diagnostics: diagnose(case, got, expected) -> a hint string or None.
    diagnose: Callable | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    description: str = ""
    # Set when the reference is not attnlab.<name> itself (e.g. an independent torch check).
    reference_name: str = ""


REGISTRY: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to the registry (its name must be new)."""
    if exercise.name in REGISTRY:
        raise ValueError(f"exercise {exercise.name!r} is registered twice")
    REGISTRY[exercise.name] = exercise
    return exercise


# ----------------------------------------------------------------------------------------
# Comparing outputs
# ----------------------------------------------------------------------------------------

_SCALARS = (int, float, bool, _generic)


MAX_DIFFS_SHOWN = 3
MAX_VALUES_SHOWN = 6


def _num(v) -> str:
    """One number, short: 4 significant digits, booleans and integers as they are."""
    if isinstance(v, (bool, _bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    try:
        return f"{float(v):.4g}"
    except (TypeError, ValueError):
        return repr(v)


def _values(x) -> str:
    """The first few entries of an array, flattened: "[0.09, 0.2447, ...]"."""
    flat = x.reshape(-1)
    shown = ", ".join(_num(v) for v in flat[:MAX_VALUES_SHOWN])
    return f"[{shown}{', ...' if flat.size > MAX_VALUES_SHOWN else ''}]"


def _fmt(x) -> str:
    """Short printable form of a value: arrays as shape, dtype and their first few values."""
    if type(x) is _ndarray:
        if x.ndim == 0:
            return f"{_num(x[()])} (dtype {x.dtype})"
        return f"shape {x.shape}, dtype {x.dtype}, values {_values(x)}"
    if isinstance(x, tuple):
        return (
            "("
            + ", ".join(_fmt(v) if type(v) is not _ndarray else f"array {v.shape}" for v in x)
            + ")"
        )
    if isinstance(x, (float, _floating)):
        return _num(x)
    text = repr(x)
    return text if len(text) < 120 else text[:120] + "..."


def _index(idx: tuple) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _differences(exp, arr, bad) -> list[str]:
    """Expected vs got on both arrays, and at the first few differing entries."""
    lines = [tr("  expected: {value}", value=_fmt(exp)), tr("  got:      {value}", value=_fmt(arr))]
    if exp.ndim == 0:
        return lines
    where = np.argwhere(bad)
    for idx in where[:MAX_DIFFS_SHOWN]:
        idx = tuple(idx)
        lines.append(
            tr(
                "  at {index}: expected {expected}, got {got}",
                index=_index(idx),
                expected=_num(exp[idx]),
                got=_num(arr[idx]),
            )
        )
    if len(where) > MAX_DIFFS_SHOWN:
        lines.append(tr("  ... and {n} more", n=len(where) - MAX_DIFFS_SHOWN))
    return lines


def _as_plain_array(got, where: str):
    """Convert a learner's output to an ndarray, refusing objects that are not plain data."""
    kind = type(got)
    if kind is _ndarray:
        return got
    if kind in (int, float, bool) or isinstance(got, _generic):
        return _asarray(got)
    if kind in (list, tuple):
        try:
            arr = _asarray(got)
        except Exception:  # ragged lists and the like
            return None
        if arr.dtype == object:
            return None
        return arr
    return None


def compare(expected, got, rtol: float, atol: float, check_dtype: bool = False, where=None):
    """Return None when `got` matches `expected`, else a sentence saying what differs."""
    where = tr("output") if where is None else where
    if isinstance(expected, tuple):
        if type(got) not in (tuple, list):
            return tr(
                "{where}: expected a tuple of {n} values, got {kind}",
                where=where,
                n=len(expected),
                kind=type(got).__name__,
            )
        if len(got) != len(expected):
            return tr(
                "{where}: expected {n} values, got {m}", where=where, n=len(expected), m=len(got)
            )
        for i, (e, g) in enumerate(zip(expected, got)):
            msg = compare(e, g, rtol, atol, check_dtype, where=f"{where}[{i}]")
            if msg:
                return msg
        return None
    if isinstance(expected, dict):
        if type(got) is not dict:
            return tr("{where}: expected a dict, got {kind}", where=where, kind=type(got).__name__)
        if sorted(map(str, got)) != sorted(map(str, expected)):
            return tr(
                "{where}: expected keys {expected}, got {got}",
                where=where,
                expected=sorted(expected),
                got=sorted(got),
            )
        for key in expected:
            msg = compare(
                expected[key], got[key], rtol, atol, check_dtype, where=f"{where}[{key!r}]"
            )
            if msg:
                return msg
        return None
    if isinstance(expected, str):
        if type(got) is not str:
            return tr(
                "{where}: expected a string, got {kind}", where=where, kind=type(got).__name__
            )
        return (
            None
            if got.strip().lower() == expected.strip().lower()
            else (
                tr(
                    "{where}: expected {expected}, got {got}",
                    where=where,
                    expected=repr(expected),
                    got=repr(got),
                )
            )
        )
    exp = _asarray(expected)
    arr = _as_plain_array(got, where)
    if arr is None:
        return tr(
            "{where}: expected a NumPy array or number, got an object of type {kind}",
            where=where,
            kind=type(got).__name__,
        )
    if exp.dtype == _bool_:
        if arr.dtype != _bool_:
            return tr(
                "{where}: expected a boolean array (True/False), got dtype {dtype}",
                where=where,
                dtype=arr.dtype,
            )
        if arr.shape != exp.shape:
            return tr(
                "{where}: shape: expected {expected}, got {got}",
                where=where,
                expected=exp.shape,
                got=arr.shape,
            )
        if not _array_equal(arr, exp):
            bad = arr != exp
            return "\n".join(
                [
                    tr(
                        "{where}: {n} of {size} entries differ",
                        where=where,
                        n=int(bad.sum()),
                        size=exp.size,
                    )
                ]
                + _differences(exp, arr, bad)
            )
        return None
    if not (_issubdtype(arr.dtype, _number) or arr.dtype == _bool_):
        return tr("{where}: expected numbers, got dtype {dtype}", where=where, dtype=arr.dtype)
    if arr.shape != exp.shape:
        return tr(
            "{where}: shape: expected {expected}, got {got} (dtype {dtype})",
            where=where,
            expected=exp.shape,
            got=arr.shape,
            dtype=arr.dtype,
        )
    if check_dtype and _issubdtype(exp.dtype, _floating) and arr.dtype != exp.dtype:
        return tr(
            "{where}: dtype: expected {expected} (the input's dtype), got {got}; keep the "
            "input's floating type",
            where=where,
            expected=exp.dtype,
            got=arr.dtype,
        )
    shown = arr
    arr = arr.astype(float)
    expf = exp.astype(float)
    same_inf = (_isinf(expf) & (arr == expf)) | (_isnan(expf) & _isnan(arr))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = _abs(arr - expf)
        ok = same_inf | (diff <= atol + rtol * _abs(expf))
    if _all(ok):
        return None
    bad = ~ok
    tolerance = tr("tolerance rtol={rtol:g}, atol={atol:g}", rtol=rtol, atol=atol)
    new_nan = _isnan(arr) & ~_isnan(expf)
    if _any(new_nan):
        headline = tr(
            "{where}: {n} of {size} values are NaN where the correct result has none",
            where=where,
            n=int(new_nan.sum()),
            size=expf.size,
        )
    elif expf.ndim == 0:
        return tr(
            "{where}: expected {expected}, got {got} ({tolerance})",
            where=where,
            expected=_num(exp[()]),
            got=_num(shown[()]),
            tolerance=tolerance,
        )
    else:
        finite = bad & _isfinite(diff)
        worst = f"{float(diff[finite].max()):.3g}" if _any(finite) else "inf"
        headline = tr(
            "{where}: {n} of {size} values differ (largest difference {worst}; {tolerance})",
            where=where,
            n=int(bad.sum()),
            size=expf.size,
            worst=worst,
            tolerance=tolerance,
        )
    return "\n".join([headline] + _differences(exp, shown, bad))


# ----------------------------------------------------------------------------------------
# Running a function safely
# ----------------------------------------------------------------------------------------


class _Timeout(Exception):
    pass


def _copy_args(args: tuple, kwargs: dict):
    """Fresh copies of the inputs, so a function that edits its inputs cannot spoil the next call."""
    return copy.deepcopy(args), copy.deepcopy(kwargs)


def _call_with_timeout(fn: Callable, args: tuple, kwargs: dict, timeout_s: float):
    """Call fn; raise _Timeout if it runs longer than timeout_s (main thread, POSIX only)."""
    use_alarm = (
        timeout_s
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not use_alarm:
        return fn(*args, **kwargs)

    def on_alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return fn(*args, **kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _describe_exception(name: str, case: Case, exc: BaseException) -> str:
    if isinstance(exc, NotImplementedError):
        return tr(
            "{name}: not implemented yet. Replace `raise NotImplementedError()` with your "
            "code, then run this cell again.",
            name=name,
        )
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_GRADER_DIR)
    ]
    # The learner's own line, not NumPy's or the library's internals, when there is one.
    own = [f for f in frames if not any(part in f.filename for part in _LIBRARY_PATHS)]
    text = str(exc)
    if len(text) > MAX_ERROR_CHARS:
        text = text[:MAX_ERROR_CHARS] + " ..."
    lines = [
        tr(
            "{name} raised {error} on input: {case}",
            name=name,
            error=type(exc).__name__,
            case=tr(case.label),
        ),
        f"  {text}",
    ]
    if own or frames:
        last = (own or frames)[-1]
        code = (last.line or "").strip()
        lines.append(
            tr("  in {function}, line {line}", function=last.name, line=last.lineno)
            + (f": {code}" if code else "")
        )
    return "\n".join(lines)


def _uses_reference(fn: Callable, ex: Exercise) -> bool:
    """True when learner code is the library's own function, or calls it (attnlab.<name>).

    Only functions defined outside attnlab and grader_tests (a notebook's) are inspected.
    """
    if fn is ex.reference:
        return True
    if (getattr(fn, "__module__", None) or "").split(".")[0] in ("attnlab", "grader_tests"):
        return False
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    globals_ = getattr(fn, "__globals__", {})
    stack, codes = [code], []
    while stack:
        c = stack.pop()
        codes.append(c)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    for c in codes:
        for ref_name in c.co_names:
            if globals_.get(ref_name) is ex.reference:
                return True
        instructions = list(dis.get_instructions(c))
        for first, second in zip(instructions, instructions[1:]):
            module = (
                globals_.get(first.argval) if first.opname in ("LOAD_GLOBAL", "LOAD_NAME") else None
            )
            if (
                getattr(module, "__name__", "").split(".")[0] == "attnlab"
                and second.opname in ("LOAD_ATTR", "LOAD_METHOD")
                and second.argval == ex.name
            ):
                return True
    return False


def run_check(
    name: str,
    fn: Callable,
    hidden: bool = False,
    allow_reference: bool = False,
    _compare=compare,
    _copy=_copy_args,
    _call=_call_with_timeout,
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
    ex: Exercise, case: Case, expected, got, problem: str, rtol: float, atol: float
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


def _mutant_hints(mutants: list, case: Case, got, rtol: float, atol: float) -> list[str]:
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


def _mutant_hints_for_exception(mutants: list, case: Case, exc: BaseException) -> list[str]:
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
    from .sandbox import recording_dir

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
    from .sandbox import grading_mode

    return grading_mode()


def not_solved_text(name: str) -> str:
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
