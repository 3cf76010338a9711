"""The course itself as data: the lecture on one page, and the self-check quiz."""

from . import lecture, quiz
from .lecture import *  # noqa: F403
from .quiz import *  # noqa: F403

__all__ = [
    *lecture.__all__,
    *quiz.__all__,
]
