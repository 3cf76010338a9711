"""Measuring time and memory: shared by notebooks, graders and benchmarks."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any, TypeVar

from ._validate import require_positive_int

__all__ = ["best_time", "peak_memory"]

_T = TypeVar("_T")


def peak_memory(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> tuple[_T, int]:
    """Run fn(*args, **kwargs) under tracemalloc; return (result, peak bytes allocated meanwhile).

    tracemalloc sees NumPy's array buffers, so the peak counts every temporary array the
    function builds (the inputs, allocated before, are not counted).
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        result = fn(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return result, peak - start


def best_time(fn: Callable[..., object], *args: Any, repeats: int = 3, **kwargs: Any) -> float:
    """The shortest wall-clock time in seconds of `repeats` calls fn(*args, **kwargs)."""
    require_positive_int("repeats", repeats)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best
