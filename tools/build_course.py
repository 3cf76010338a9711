"""Build the course: jupytext sources in solutions/ -> nbgrader source notebooks -> course/.

    python tools/build_course.py                 # rebuild every zone into course/
    python tools/build_course.py --out /tmp/c    # build somewhere else (the CI drift check)
    python tools/build_course.py --only 00_quickstart
    python tools/build_course.py --lang ja       # the Japanese edition only (course/ja/)

For each `solutions/NN_name/NN_name.py` (jupytext percent format; each cell's nbgrader
metadata is derived by tools/cell_metadata.py, points from grader_tests.REGISTRY) this
writes the instructor's source notebook `solutions/NN_name/NN_name.ipynb` (git-ignored),
then runs `nbgrader generate_assignment` in a throw-away course directory whose source
folder holds only notebooks and assets — never the `.py`, which contains the solutions —
and copies the release into `course/NN_name/`. Released notebooks carry no solutions,
hidden tests, outputs or jupytext metadata. Hidden checks are written `check("name", fn,
hidden=True)`: in the grading sandbox they record the learner's outputs, and the grader
outside judges them.

The Japanese edition is built from the same sources: each markdown paragraph is replaced by
its translation in translations/ja/NN_name.po (tools/translations.py); code cells, grade ids
and points are untouched. Its instructor notebooks go to solutions-ja/ (git-ignored), its
release to course/ja/.

A default build (no --out) also rewrites the README's table of graded exercises and points.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cell_metadata
import jupytext
import nbformat

from translations import NOTEBOOK_LOCALE, read_catalogue, translate_markdown

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
LANGUAGES = ("en", "ja")
# Where each edition's instructor notebooks (nbgrader's source) and release go, under ROOT.
SOURCE_DIRS = {"en": "solutions", "ja": "solutions-ja"}
RELEASE_DIRS = {"en": "course", "ja": "course/ja"}
# nbgrader's placeholder for a written answer, per edition (the code stub stays English: code
# is identical in both editions).
TEXT_STUBS = {"en": "YOUR ANSWER HERE", "ja": "ここに解答を書くこと（YOUR ANSWER HERE）"}
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# Files that must never reach nbgrader's source folder (they would be copied into the release).
NOT_ASSETS = {".py", ".ipynb", ".pyc"}


def zone_sources(only: list[str] | None = None) -> list[Path]:
    """The jupytext sources solutions/NN_name/NN_name.py, sorted by zone number."""
    found = sorted(p for p in SOLUTIONS.glob("*/*.py") if p.stem == p.parent.name)
    if only:
        found = [p for p in found if p.stem in only]
        missing = set(only) - {p.stem for p in found}
        if missing:
            raise SystemExit(f"no solutions/NAME/NAME.py for: {sorted(missing)}")
    return found


def source_notebook(py_path: Path) -> nbformat.NotebookNode:
    """Read a jupytext percent source into a clean nbgrader source notebook."""
    nb = jupytext.reads(py_path.read_text(encoding="utf-8"), fmt="py:percent")
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    nb.nbformat, nb.nbformat_minor = 4, 5
    try:
        cell_metadata.apply(nb, cell_metadata.registry_points())
    except cell_metadata.HeaderError as err:
        raise SystemExit(f"{py_path}: {err}") from None
    seen: set[str] = set()
    for cell in nb.cells:
        cell_id = cell.metadata["nbgrader"]["grade_id"]
        if cell_id in seen:
            raise SystemExit(f"{py_path}: duplicate grade_id / cell id {cell_id!r}")
        seen.add(cell_id)
        cell["id"] = cell_id  # deterministic ids: rebuilding gives identical files
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("jupytext", None)
    nbformat.validate(nb)
    return nb


def translate_notebook(nb: nbformat.NotebookNode, zone: str, lang: str) -> nbformat.NotebookNode:
    """The notebook with its markdown in `lang` (finished translations only; English elsewhere)."""
    if lang == "en":
        return nb
    path = NOTEBOOK_LOCALE / lang / f"{zone}.po"
    strings = {}
    if path.exists():
        strings = {
            m.id: m.string for m in read_catalogue(path, lang) if m.id and m.string and not m.fuzzy
        }
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = translate_markdown(cell.source, strings)
    nb.metadata["language"] = lang
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")


def normalise_release(path: Path) -> None:
    """Re-serialise a released notebook deterministically, without outputs or jupytext data."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("jupytext", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    write_notebook(nb, path)


def nbgrader_env() -> dict:
    """nbgrader runs alembic as a subprocess: the interpreter's bin folder must be on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def build(out: Path, only: list[str] | None = None, lang: str = "en") -> list[Path]:
    """Build every zone of one edition into `out`; return the released notebooks."""
    sources = zone_sources(only)
    if not sources:
        raise SystemExit(f"no jupytext sources found under {SOLUTIONS}")
    released = []
    with tempfile.TemporaryDirectory(prefix="attnlab-build-") as tmp:
        course_dir = Path(tmp)
        shutil.copy(ROOT / "nbgrader_config.py", course_dir / "nbgrader_config.py")
        for py_path in sources:
            zone = py_path.stem
            nb = translate_notebook(source_notebook(py_path), zone, lang)
            # the instructor's source notebook
            write_notebook(nb, ROOT / SOURCE_DIRS[lang] / zone / f"{zone}.ipynb")
            src = course_dir / "source" / zone
            write_notebook(nb, src / f"{zone}.ipynb")
            for asset in py_path.parent.iterdir():
                if asset.is_file() and asset.suffix not in NOT_ASSETS:
                    shutil.copy(asset, src / asset.name)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "nbgrader",
                    "generate_assignment",
                    zone,
                    "--force",
                    "--log-level=WARN",
                    "--CourseDirectory.source_directory=source",
                    "--CourseDirectory.release_directory=release",
                    f"--CourseDirectory.root={course_dir}",
                    f"--ClearSolutions.text_stub={TEXT_STUBS[lang]}",
                ],
                cwd=course_dir,
                env=nbgrader_env(),
                check=True,
            )
            dest = out / zone
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(course_dir / "release" / zone, dest)
            for nb_path in dest.glob("*.ipynb"):
                normalise_release(nb_path)
                released.append(nb_path)
            print(f"built {dest.relative_to(out.parent) if out.parent in dest.parents else dest}")
    return released


README = ROOT / "README.md"
# The README's table of graded exercises and points lies between these two lines.
MAP_BEGIN = (
    "<!-- points: written by `make build` (tools/build_course.py) from grader_tests.REGISTRY -->"
)
MAP_END = "<!-- end of points -->"


def points_table(sources: list[Path] | None = None) -> str:
    """The README's table of each notebook's graded exercises and points (markdown).

    Exercises are those the notebook's test cells check, with the registry's points; written
    answers are graded by hand, with the points on their header.
    """
    rows = ["| notebook | graded exercises (points) | points |", "| --- | --- | --- |"]
    n_auto = n_hand = total = 0
    for py_path in sources or zone_sources():
        nb = jupytext.reads(py_path.read_text(encoding="utf-8"), fmt="py:percent")
        metas = cell_metadata.nbgrader_metadata(nb, cell_metadata.registry_points())
        graded, zone_points = [], 0
        for cell, meta in zip(nb.cells, metas, strict=True):
            if not meta["grade"]:
                continue
            zone_points += meta["points"]
            if cell.cell_type == "code":
                names = dict.fromkeys(cell_metadata.CHECK_CALL.findall(cell.source))
                graded += [f"`{n}` ({cell_metadata.registry_points()[n]})" for n in names]
                n_auto += len(names)
            else:
                graded.append(f"`{meta['grade_id']}` ({meta['points']}, by hand)")
                n_hand += 1
        total += zone_points
        zone = py_path.stem
        rows.append(
            f"| [`{zone}`](course/{zone}/{zone}.ipynb) | {', '.join(graded)} | {zone_points} |"
        )
    rows.append(
        f"| all | {n_auto} exercises checked automatically, {n_hand} free answers graded by hand | {total} |"
    )
    return "\n".join(rows)


def update_readme(readme: Path = README) -> bool:
    """Rewrite the README's points table from the registry; True if it changed."""
    text = readme.read_text(encoding="utf-8")
    head, found, rest = text.partition(MAP_BEGIN + "\n")
    _, found_end, tail = rest.partition(MAP_END)
    if not (found and found_end):
        raise SystemExit(f"{readme}: the lines {MAP_BEGIN!r} and {MAP_END!r} are missing")
    new = f"{head}{MAP_BEGIN}\n{points_table()}\n{MAP_END}{tail}"
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="release folder (default: course/, and course/ja/ for Japanese)",
    )
    parser.add_argument("--only", nargs="*", help="zone names such as 00_quickstart")
    parser.add_argument(
        "--lang", choices=LANGUAGES, action="append", help="edition(s) to build (default: all)"
    )
    args = parser.parse_args(argv)
    for lang in args.lang or LANGUAGES:
        default = ROOT / RELEASE_DIRS[lang]
        out = (
            default
            if args.out is None
            else args.out.resolve() / default.relative_to(ROOT / "course")
        )
        build(out, args.only, lang)
    if args.out is None and update_readme():
        print(f"updated the points table in {README.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
