"""The build: course/ is exactly what tools/build_course.py produces, and leaks nothing."""

from __future__ import annotations

import filecmp
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from course_lock import course_dir_lock

ROOT = Path(__file__).resolve().parent.parent
COURSE = ROOT / "course"
SOURCES = sorted(p for p in (ROOT / "solutions").glob("*/*.py") if p.stem == p.parent.name)
# Both editions: course/NN_name/ (English) and course/ja/NN_name/ (Japanese, same code).
RELEASED = sorted([*COURSE.glob("*/*.ipynb"), *COURSE.glob("ja/*/*.ipynb")])


@pytest.fixture(scope="module", autouse=True)
def _course_dir_not_being_modified():
    """The browser test saves into course/ while it runs (and restores it): read course/ only
    outside that window (tests/course_lock.py)."""
    with course_dir_lock(exclusive=False):
        yield


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    out = tmp_path_factory.mktemp("course")
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_course.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_every_source_is_released():
    assert SOURCES, "no jupytext sources in solutions/"
    assert [p.stem for p in SOURCES] == sorted(
        p.name for p in COURSE.iterdir() if p.is_dir() and p.name != "ja"
    )
    assert [p.stem for p in SOURCES] == sorted(
        p.name for p in (COURSE / "ja").iterdir() if p.is_dir()
    )


def test_committed_course_equals_a_fresh_build(rebuilt):
    assert _tree(rebuilt) == _tree(COURSE), "course/ holds different files than the build makes"
    differ = [f for f in _tree(COURSE) if not filecmp.cmp(COURSE / f, rebuilt / f, shallow=False)]
    assert differ == [], f"course/ is stale, run `make build`: {differ}"


def test_release_holds_no_python_sources():
    assert [p for p in COURSE.rglob("*.py")] == []


SOLUTION_MARKERS = (
    "### BEGIN SOLUTION",
    "### END SOLUTION",
    "BEGIN HIDDEN TESTS",
    "END HIDDEN TESTS",
)


@pytest.mark.parametrize(
    "path", RELEASED, ids=[p.relative_to(COURSE).parent.as_posix() for p in RELEASED]
)
def test_released_notebook_leaks_nothing(path):
    text = path.read_text()
    nb = json.loads(text)
    assert "jupytext" not in nb["metadata"]
    for marker in SOLUTION_MARKERS:
        assert marker not in text, f"{path.name} contains {marker!r}"
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert 'check("' in code  # the visible tests are there
    assert "hidden=True" not in code, "a hidden test call reached the release"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    # no paths of the maintainer's machine
    assert not re.search(r"(/work/|/home/|/root/|/Users/|/tmp/|C:\\\\)", text), (
        "a local path leaked"
    )


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_solution_code_is_removed_from_the_release(source):
    """Every line between BEGIN/END SOLUTION in the source is absent from the release."""
    text = source.read_text()
    released = (COURSE / source.stem / f"{source.stem}.ipynb").read_text()
    released += (COURSE / "ja" / source.stem / f"{source.stem}.ipynb").read_text()
    blocks = re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", text, flags=re.S)
    assert blocks, f"{source.name} has no solution blocks"
    for block in blocks:
        for line in block.splitlines():
            line = line.strip()
            if len(line) > 12 and not line.startswith("#"):
                assert json.dumps(line)[1:-1] not in released, f"solution line leaked: {line}"
