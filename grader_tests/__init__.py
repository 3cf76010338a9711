"""Checkers for the attnlab course exercises, used by notebook test cells and by pytest.

    from grader_tests import check
    check("softmax", softmax)               # visible checks: raise AssertionError with a hint
    check("softmax", softmax, hidden=True)  # the hidden tests: in the grading sandbox this
                                            # records outputs; the grader outside judges them

Exercises are registered by the modules of `grader_tests.exercises` (one per concept), each
naming the attnlab function it mirrors, its points, its notebook, its inputs and its
catalogue of typical mistakes. The engine: `registry` (Exercise, Case, Mutant, REGISTRY),
`comparison` (compare), `safe_call` (running a learner's function), `checking` (check,
run_check); grading a class: `sandbox`, `record`, `plain_data`, `verdict`, `autograde`,
`class_grading`, `instructor`.
"""

from . import exercises  # noqa: F401  (registers every exercise)
from .checking import check, run_check
from .comparison import compare
from .registry import REGISTRY, Case, Exercise, GradingError, Mutant, register

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
