"""Shared pytest set-up, and the summaries printed at the end of the run (catalogue catch
rate, notebook execution times). Rows travel as `user_properties`, so the summaries also
work when the suite runs on several workers (pytest-xdist)."""

from __future__ import annotations

import os

import pytest

# The environment pytest was started with, before the defaults below: the browser test starts
# `make course` with it, as a learner's shell would (no ATTNLAB_STATIC, no MPLBACKEND=Agg).
# pytest-xdist workers inherit the controller's environment, defaults included, so the names
# this file added are passed on in ATTNLAB_TEST_ADDED and taken out again there.
_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "MPLBACKEND": "Agg",
    "ATTNLAB_STATIC": "1",
}
_added = [n for n in os.environ.get("ATTNLAB_TEST_ADDED", "").split(",") if n]
_added += [n for n in _DEFAULTS if n not in os.environ]
USER_ENVIRON = {
    k: v for k, v in os.environ.items() if k not in _added and k != "ATTNLAB_TEST_ADDED"
}
for _name, _value in _DEFAULTS.items():
    os.environ.setdefault(_name, _value)
os.environ["ATTNLAB_TEST_ADDED"] = ",".join(dict.fromkeys(_added))


def _choose_triton_mode() -> None:
    """Triton kernels run natively on a CUDA GPU and in Triton's CPU interpreter otherwise.

    The mode is fixed when triton is first imported (by a test module, by attnlab's kernels or
    by transformers), so it is chosen here, before any test module is imported. An explicit
    TRITON_INTERPRET (1 to use the interpreter on a GPU machine) is left as it is.
    """
    if "TRITON_INTERPRET" in os.environ:
        return
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


_choose_triton_mode()


@pytest.fixture(scope="session")
def user_environ() -> dict[str, str]:
    """A copy of the environment pytest was started with (see USER_ENVIRON)."""
    return dict(USER_ENVIRON)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models on a 2-core machine run fastest, and do not fight parallel test workers, on one thread."""
    from attnlab.train import torch_threads

    with torch_threads(1):
        yield


_ROWS: dict[str, list] = {"mutant": [], "notebook_seconds": [], "summary_line": []}


@pytest.fixture
def report_row(request):
    """report_row(kind, value): add a row to an end-of-run summary (see pytest_terminal_summary)."""

    def add(kind: str, value) -> None:
        request.node.user_properties.append((kind, value))

    return add


def pytest_runtest_logreport(report):
    if report.when != "call":
        return
    for kind, value in report.user_properties:
        if kind in _ROWS:
            _ROWS[kind].append(value)


def pytest_terminal_summary(terminalreporter):
    mutants = _ROWS["mutant"]
    if mutants:
        total = len(mutants)
        caught = sum(1 for r in mutants if r[2])
        named = sum(1 for r in mutants if r[3])
        exercises = len({r[0] for r in mutants})
        terminalreporter.section("mistake catalogue")
        terminalreporter.write_line(
            f"{total} catalogued mistakes over {exercises} exercises: caught {caught}/{total} "
            f"({100 * caught / total:.1f}%), named in the feedback {named}/{total} "
            f"({100 * named / total:.1f}%)"
        )
    times = _ROWS["notebook_seconds"]
    if times:
        terminalreporter.section("solution notebooks, executed top to bottom by nbgrader autograde")
        for zone, seconds in sorted(times):
            terminalreporter.write_line(f"  {zone:<22s} {seconds:6.1f} s")
        terminalreporter.write_line(f"  {'whole course':<22s} {sum(s for _, s in times):6.1f} s")
    for line in _ROWS["summary_line"]:
        terminalreporter.write_line(line)


# The two longest tests (class of 40, whole course) start first, one on each worker:
# pytest-xdist's worksteal mode hands each worker one contiguous half of the test list.
_LONGEST = [
    "test_five_students_hand_in_the_whole_course",
    "test_a_class_of_40_through_the_exchange",
]


def pytest_collection_modifyitems(config, items):
    longest = [item for name in _LONGEST for item in items if item.name == name]
    if len(longest) != 2:
        return
    rest = [item for item in items if item not in longest]
    half = len(items) // 2
    items[:] = [longest[0], *rest[: half - 1], longest[1], *rest[half - 1 :]]
