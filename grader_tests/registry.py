"""The registry of exercises: what an exercise is (`Exercise`, `Case`, `Mutant`) and `register`.

An exercise is a function of `attnlab` that the learner re-implements. Its entry holds the
reference (the attnlab function), its points, the notebook it appears in (its zone), the
inputs to try (visible and hidden cases), and a catalogue of typical wrong implementations
("mutants"). When a learner's output is wrong, every mutant is run on the same input; if one
produces the learner's output, its hint names the mistake (checking.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "REGISTRY",
    "Case",
    "Exercise",
    "GradingError",
    "Mutant",
    "register",
]

DEFAULT_TIMEOUT_S = 20.0


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
    # The notebook the exercise appears in: solutions/<zone>/<zone>.py calls check("<name>", ...).
    zone: str = ""


REGISTRY: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to the registry (its name must be new)."""
    if exercise.name in REGISTRY:
        raise ValueError(f"exercise {exercise.name!r} is registered twice")
    REGISTRY[exercise.name] = exercise
    return exercise
