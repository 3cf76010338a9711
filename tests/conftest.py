"""Shared pytest fixtures and the catalogue summary printed at the end of the run."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

_MUTANT_RESULTS: list[tuple[str, str, bool, bool]] = []


@pytest.fixture
def mutant_results():
    """Collects (exercise, mistake, caught, named) rows for the catalogue summary."""
    return _MUTANT_RESULTS


def pytest_terminal_summary(terminalreporter):
    if not _MUTANT_RESULTS:
        return
    total = len(_MUTANT_RESULTS)
    caught = sum(1 for r in _MUTANT_RESULTS if r[2])
    named = sum(1 for r in _MUTANT_RESULTS if r[3])
    exercises = len({r[0] for r in _MUTANT_RESULTS})
    terminalreporter.section("mistake catalogue")
    terminalreporter.write_line(
        f"{total} catalogued mistakes over {exercises} exercises: caught {caught}/{total} "
        f"({100 * caught / total:.1f}%), named in the feedback {named}/{total} "
        f"({100 * named / total:.1f}%)"
    )
