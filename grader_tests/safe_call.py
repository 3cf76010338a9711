"""Running a learner's function safely: copied inputs, a time limit, and a readable error.

Also here: whether learner code is, or calls, the library's own reference.
"""

from __future__ import annotations

import copy
import dis
import os
import signal
import threading
import traceback
from collections.abc import Callable
from typing import Any

from attnlab.i18n import tr

from .registry import Case, Exercise

MAX_ERROR_CHARS = 240  # of a learner's exception text in a message
# Frames of the graders (this folder and below) are never the learner's line.
_GRADER_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Frames of these are not the learner's line: report the learner's own call instead.
_LIBRARY_PATHS = ("/numpy/", "/site-packages/", "/attnlab/", "<__array_function__")


class _Timeout(Exception):
    pass


def _copy_args(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Fresh copies of the inputs, so a function that edits its inputs cannot spoil the next call."""
    return copy.deepcopy(args), copy.deepcopy(kwargs)


def _call_with_timeout(fn: Callable, args: tuple, kwargs: dict, timeout_s: float) -> Any:
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
