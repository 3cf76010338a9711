"""The parallel (associative) scan (zone 4), with no Python loop over time.

`loop_limited(fn)` is how the notebook's test cell hands a learner's parallel_scan to the
grader: it counts the Python steps (sys.settrace) on a long sequence and fails if the
function loops over time (see wrapping.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import attnlab
import numpy as np

from ..registry import Case, Exercise, Mutant, register
from .wrapping import _Wrapped

__all__ = ["TimeLoopError", "loop_limited"]

# ================================================================ parallel_scan

LOOP_CHECK_MIN_LENGTH = 4096  # the step count is checked for sequences at least this long


class TimeLoopError(Exception):
    """parallel_scan executed about one Python step per time step: a loop over time."""


class _LoopLimited(_Wrapped):
    """parallel_scan that may execute at most L / 4 Python lines on a sequence of length L."""

    exercise = "parallel_scan"

    def __call__(self, a, b, *args, **kwargs):
        self._refuse_the_library()
        length = np.shape(a)[-1] if np.ndim(a) else 0
        if length < LOOP_CHECK_MIN_LENGTH:
            return self.fn(a, b, *args, **kwargs)
        limit = length // 4
        count = 0

        def tracer(frame, event, arg):
            nonlocal count
            count += 1
            if count > limit:
                raise TimeLoopError(
                    f"on a sequence of {length} time steps your function ran more than {limit} "
                    "Python steps: that is a loop over time. Combine all positions at once, "
                    "log2(L) times: position t with position t - offset, offset = 1, 2, 4, ..."
                )
            return tracer

        previous = sys.gettrace()
        sys.settrace(tracer)
        try:
            return self.fn(a, b, *args, **kwargs)
        finally:
            sys.settrace(previous)


def loop_limited(fn: Callable) -> _LoopLimited:
    """fn (a parallel_scan) that fails with TimeLoopError if, on a long sequence, it executes
    about one Python line per time step or more (counted with sys.settrace)."""
    return _LoopLimited(fn)


def _scan_cases():
    rng = np.random.default_rng(44)
    long = 1 << 16
    restarts = rng.uniform(0.3, 0.9, size=(2, 15))
    restarts[:, [3, 8, 9]] = 0.0
    return [
        Case(
            "a = 0.5 and b = 1 at each of 8 steps (h approaches 2)", (np.full(8, 0.5), np.ones(8))
        ),
        Case(
            "random a, b of shape (3, 11): three sequences of 11 steps",
            (rng.uniform(-1, 1, (3, 11)), rng.normal(size=(3, 11))),
        ),
        Case("a = 1: h is the running sum of b (10 steps)", (np.ones(10), rng.normal(size=10))),
        Case(
            f"a long sequence of {long} steps (checked: no Python loop over time)",
            (rng.uniform(0.5, 1.0, long), rng.normal(size=long)),
        ),
        Case("a single step (L = 1)", (np.array([0.7]), np.array([2.0])), hidden=True),
        Case(
            "a = 0 at steps 3, 8 and 9: the state restarts there",
            (restarts, rng.normal(size=(2, 15))),
            hidden=True,
        ),
        Case(
            "a batch (2, 3) of 13 steps with a in (-1, 1)",
            (rng.uniform(-1, 1, (2, 3, 13)), rng.normal(size=(2, 3, 13))),
            hidden=True,
        ),
        Case(
            "a = 0.999 over 200 steps (slow decay)",
            (np.full(200, 0.999), rng.normal(size=200)),
            hidden=True,
        ),
        Case(
            "float32 inputs, 3 x 33 steps",
            (
                rng.uniform(0, 1, (3, 33)).astype(np.float32),
                rng.normal(size=(3, 33)).astype(np.float32),
            ),
            hidden=True,
            rtol=1e-4,
            atol=1e-5,
        ),
    ]


def _scan(a, b, *, order="correct", update_a=True, a_first=False):
    """Hillis-Steele scan with one mistake switched on by a keyword."""
    A, H = np.array(a, dtype=float), np.array(b, dtype=float)
    offset = 1
    while offset < A.shape[-1]:
        A_prev, H_prev = A[..., :-offset], H[..., :-offset]
        A_new, H_new = A.copy(), H.copy()
        if update_a:
            A_new[..., offset:] = A[..., offset:] * A_prev
        if a_first:  # the products are updated first and then used for h
            A, A_prev = A_new, A_new[..., :-offset]
        if order == "correct":  # earlier window first, then the later one
            H_new[..., offset:] = A[..., offset:] * H_prev + H[..., offset:]
        else:  # the later window applied first
            H_new[..., offset:] = A_prev * H[..., offset:] + H_prev
        A, H = A_new, H_new
        offset *= 2
    return H


def _scan_exclusive(a, b):
    h = attnlab.parallel_scan(a, b)
    return np.concatenate([np.zeros_like(h[..., :1]), h[..., :-1]], axis=-1)


def _scan_cumprod(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    prod = np.cumprod(a, axis=-1)
    return prod * np.cumsum(b / prod, axis=-1)


register(
    Exercise(
        name="parallel_scan",
        zone="04_implementation",
        reference=attnlab.parallel_scan,
        points=3,
        cases=_scan_cases,
        description="h_t = a_t h_{t-1} + b_t by a log-step associative scan (no loop over time)",
        mutants=[
            Mutant(
                "operators composed in the wrong order",
                lambda a, b: _scan(a, b, order="reversed"),
                "the two windows are composed in the wrong order: the earlier window (at "
                "t - offset) acts first, so H[t] = A[t] * H[t - offset] + H[t], not "
                "A[t - offset] * H[t] + H[t - offset].",
            ),
            Mutant(
                "exclusive instead of inclusive",
                _scan_exclusive,
                "your h is shifted by one step (an exclusive scan): h_t must include step t "
                "itself, h_0 = b_0, not 0.",
            ),
            Mutant(
                "products of a not accumulated",
                lambda a, b: _scan(a, b, update_a=False),
                "the a-part of each window is not updated: after combining, A[t] must become "
                "A[t] * A[t - offset], the product of a over the whole window.",
            ),
            Mutant(
                "a updated before h uses it",
                lambda a, b: _scan(a, b, a_first=True),
                "A is overwritten before H is computed: compute the new H from the A of the "
                "previous round (use copies, or update H first).",
            ),
            Mutant(
                "divided by the cumulative product",
                _scan_cumprod,
                "h_t = P_t * cumsum(b / P) with P = cumprod(a) divides by zero when some a_t = 0 "
                "(and loses precision as P shrinks): combine (a, b) pairs instead.",
            ),
            Mutant(
                "a Python loop over time",
                loop_limited(attnlab.scan_loop),
                "a loop over time steps is the sequential recurrence, not a parallel scan: use "
                "log2(L) vectorised rounds that combine position t with position t - offset.",
            ),
        ],
    )
)
