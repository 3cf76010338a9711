"""A learner's function run under an extra check (memory_limited, loop_limited).

Three checks need more than comparing outputs, so the notebook's test cells hand the learner's
function to the grader through a small wrapper: `memory_limited` (flash.py), `loop_limited`
(parallel_scan.py), `forward_with_inner` (flash_triton.py). Each wrapper pickles with the
learner's function, so the hidden checks can run in the clean grading process (see
sandbox.py). Failures raise exceptions whose message depends only on the input, so a
catalogued mistake that fails the same way is named in the feedback.
"""

from __future__ import annotations

from collections.abc import Callable

import attnlab


class _Wrapped:
    """A learner's function run under an extra check; shows the learner's code to the grader.

    The grader inspects `__code__` / `__globals__` of submitted functions (to refuse one that
    calls the library's own answer), so these attributes are those of the wrapped function.
    """

    exercise = ""  # the attnlab function this wrapper grades

    def __init__(self, fn: Callable):
        self.fn = fn
        self.__module__ = getattr(fn, "__module__", None) or "__main__"

    def _refuse_the_library(self):
        if self.fn is getattr(attnlab, self.exercise, None):
            raise ValueError(f"this is attnlab.{self.exercise} itself: write your own version")

    @property
    def __wrapped__(self):
        return self.fn

    @property
    def __code__(self):
        return self.fn.__code__

    @property
    def __globals__(self):
        return self.fn.__globals__
