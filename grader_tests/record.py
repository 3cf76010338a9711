"""Inside the grading sandbox: run the learner's function on every case and record what it did.

`check(name, fn, hidden=True)` lands here when a notebook is graded in the sandbox. No
expected value is computed here; each case's outcome (the returned value as plain data,
or the exception's type and message, or a timeout) goes to
`$ATTNLAB_RESULTS_DIR/<name>.npz`, and the trusted grader outside compares (verdict.py).

Also recorded, as data for the instructor's review: which functions of the `attnlab`
package ran while the learner's function ran (a learner who hands in the library's own
reference in disguise shows up there). Code in the sandbox can switch that tracer off; it
is one of two signals, the other is read from the submitted source outside.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from .plain_data import encode, write_record
from .registry import REGISTRY, Case
from .safe_call import _call_with_timeout, _copy_args, _Timeout

__all__ = ["record_check"]


def _library_dir() -> str:
    import attnlab

    return os.path.dirname(os.path.realpath(attnlab.__file__)) + os.sep


def _outcome(fn: Callable, case: Case, timeout_s: float, arrays: dict, library: str) -> dict:
    args, kwargs = _copy_args(case.args, case.kwargs)
    called: set[str] = set()

    def profile(frame, event, arg):
        if event == "call":
            code = frame.f_code
            if code.co_filename.startswith(library):
                called.add(f"{os.path.relpath(code.co_filename, library)}:{code.co_name}")

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        value = _call_with_timeout(fn, args, kwargs, timeout_s)
    except _Timeout:
        return {"status": "timeout", "attnlab_calls": sorted(called)}
    except BaseException as exc:
        learner = [
            f for f in traceback.extract_tb(exc.__traceback__) if "grader_tests" not in f.filename
        ]
        where = (
            f"{learner[-1].name}, line {learner[-1].lineno}: {learner[-1].line}" if learner else ""
        )
        return {
            "status": "raised",
            "type": type(exc).__name__,
            "message": str(exc)[:2000],
            "where": where[:300],
            "attnlab_calls": sorted(called),
        }
    finally:
        sys.setprofile(previous)
    return {"status": "returned", "value": encode(value, arrays), "attnlab_calls": sorted(called)}


def record_check(name: str, fn: Callable, results_dir: Path) -> None:
    """Run `fn` on every case of exercise `name` (visible and hidden) and record the outcomes."""
    if name not in REGISTRY:
        raise KeyError(f"no exercise named {name!r}")
    ex = REGISTRY[name]
    arrays: dict = {}
    record = {"exercise": name, "callable": callable(fn), "outcomes": []}
    if callable(fn):
        library = _library_dir()
        import numpy as np

        with np.errstate(all="ignore"):
            for case in ex.cases():
                record["outcomes"].append(_outcome(fn, case, ex.timeout_s, arrays, library))
    else:
        record["type"] = type(fn).__name__
    write_record(Path(results_dir) / f"{name}.npz", record, arrays)
    print(f"{name}: your function's outputs were recorded for grading.")
