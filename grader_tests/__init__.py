"""Checkers for the attnlab course exercises, used by notebook test cells and by pytest.

    from grader_tests import check
    check("softmax", softmax)               # visible checks: raise AssertionError with a hint
    check("softmax", softmax, hidden=True)  # the hidden tests: in the grading sandbox this
                                            # records outputs; the grader outside judges them

Exercises are registered by the `ex_*` modules of this package (one per topic), each
naming the attnlab function it mirrors, its points, its inputs and its catalogue of
typical mistakes.
"""

import importlib
import pkgutil

from .core import (
    REGISTRY,
    Case,
    Exercise,
    GradingError,
    Mutant,
    check,
    compare,
    register,
    run_check,
)

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("ex_")):
    importlib.import_module(f"{__name__}.{_module}")

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
