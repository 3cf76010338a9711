"""The Japanese edition: built from the same sources, every catalogue entry translated and
current, code and grading identical to the English edition, feedback and figures in Japanese.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from course_lock import course_dir_lock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import translations

COURSE = ROOT / "course"
JA = COURSE / "ja"
NOTEBOOKS = sorted(p.relative_to(COURSE).as_posix() for p in COURSE.glob("*/*.ipynb"))
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")  # kana and kanji
# What is not prose: code, maths, links' targets, HTML tags, URLs.
NOT_PROSE = re.compile(
    r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\]\([^)]*\)|<[^>]+>|https?://\S+", re.S
)


@pytest.fixture(scope="module", autouse=True)
def _course_dir_not_being_modified():
    with course_dir_lock(exclusive=False):
        yield


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def test_every_catalogue_entry_is_translated_current_and_keeps_code_maths_and_numbers():
    problems = translations.problems("ja")
    assert problems == [], (
        f"{len(problems)} problems (python tools/translations.py check ja):\n"
        + "\n".join(problems[:40])
    )


def test_a_changed_english_paragraph_turns_fuzzy_and_shows_in_english_until_checked(tmp_path):
    zone = translations.zones()[0]
    source = zone.read_text(encoding="utf-8")
    english = next(m.id for m in translations.notebook_template(zone) if m.id and len(m.id) > 80)
    changed = english.replace(" ", "  ", 1).rstrip(".") + ", and one sentence more."
    assert source.count(english.split("\n")[0]) >= 1
    edited = tmp_path / zone.name
    edited.write_text(
        source.replace(english.split("\n")[0], changed.split("\n")[0], 1), encoding="utf-8"
    )
    po = tmp_path / "ja.po"
    shutil.copy(translations.NOTEBOOK_LOCALE / "ja" / f"{zone.stem}.po", po)
    old = translations.read_catalogue(po, "ja").get(english).string
    catalog = translations.update_catalogue(po, translations.notebook_template(edited), "ja")
    new_id = next(
        m.id
        for m in translations.notebook_template(edited)
        if m.id.startswith(changed.split("\n")[0][:60])
    )
    entry = catalog.get(new_id)
    assert entry is not None and entry.fuzzy and entry.string == old
    finished = {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}
    assert (
        translations.translate_markdown(new_id, finished) == new_id
    )  # English, not a stale translation


def test_the_japanese_edition_has_every_notebook():
    assert NOTEBOOKS, "no notebooks in course/"
    assert sorted(p.relative_to(JA).as_posix() for p in JA.glob("*/*.ipynb")) == NOTEBOOKS


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.split("/")[0] for n in NOTEBOOKS])
def test_code_grade_ids_and_points_are_those_of_the_english_edition(notebook):
    en, ja = _cells(COURSE / notebook), _cells(JA / notebook)
    assert [c["cell_type"] for c in en] == [c["cell_type"] for c in ja]
    for a, b in zip(en, ja):
        en_meta, ja_meta = (
            dict(a["metadata"].get("nbgrader", {})),
            dict(b["metadata"].get("nbgrader", {})),
        )
        if (
            a["cell_type"] == "markdown"
        ):  # a locked text cell's checksum covers its (translated) text
            en_meta.pop("checksum", None), ja_meta.pop("checksum", None)
        assert en_meta == ja_meta, f"nbgrader metadata differ in cell {a.get('id')}"
        if a["cell_type"] == "code":
            assert a["source"] == b["source"], f"code differs in cell {a.get('id')}"
    assert json.loads((JA / notebook).read_text())["metadata"]["language"] == "ja"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.split("/")[0] for n in NOTEBOOKS])
def test_every_markdown_paragraph_is_in_japanese(notebook):
    """No English prose is left outside code, maths, links and names: a paragraph with three or
    more English words has Japanese in it."""
    left = []
    for en, ja in zip(_cells(COURSE / notebook), _cells(JA / notebook)):
        if en["cell_type"] != "markdown":
            continue
        for block in translations.markdown_blocks("".join(ja["source"])):
            # an indented code block (four spaces) is code, not prose
            prose = NOT_PROSE.sub(
                " ", "\n".join(line for line in block.split("\n") if not line.startswith("    "))
            )
            if len(re.findall(r"[A-Za-z]{2,}", prose)) >= 3 and not JAPANESE.search(prose):
                left.append(block[:100])
    assert left == [], f"English left in the Japanese {notebook}: {left}"


def test_feedback_names_a_catalogued_mistake_in_japanese_for_every_exercise(monkeypatch):
    from attnlab.i18n import catalogue

    import grader_tests  # noqa: F401  (registers every exercise)
    from grader_tests import REGISTRY, run_check

    monkeypatch.setenv("ATTNLAB_LANG", "ja")
    japanese = catalogue("ja")
    without = []
    for name, ex in REGISTRY.items():
        if not ex.mutants:
            continue
        for mutant in ex.mutants:
            failures = run_check(name, mutant.fn, hidden=True, allow_reference=True)
            hint = japanese.get(mutant.hint)
            if (
                failures
                and hint
                and hint in failures[0]
                and JAPANESE.search(failures[0].split("\n")[0])
            ):
                break
        else:
            without.append(name)
    assert without == [], f"no mistake named in Japanese for: {without}"


def test_the_pass_line_and_the_not_solved_box_are_japanese(monkeypatch, capsys):
    import numpy as np

    from grader_tests.checking import check, not_solved_text

    def softmax(x, axis=-1):  # a learner's correct answer
        x = np.asarray(x, dtype=float)
        top = np.max(x, axis=axis, keepdims=True)
        e = np.exp(x - np.where(np.isfinite(top), top, 0.0))
        total = e.sum(axis=axis, keepdims=True)
        return np.divide(e, total, out=np.zeros_like(e), where=total > 0)

    monkeypatch.setenv("ATTNLAB_LANG", "ja")
    check("softmax", softmax)
    assert JAPANESE.search(capsys.readouterr().out)
    assert JAPANESE.search(not_solved_text("softmax"))


def test_the_language_follows_the_setting_the_notebook_and_the_locale(monkeypatch, tmp_path):
    from attnlab.i18n import language

    for var in ("ATTNLAB_LANG", "JPY_SESSION_NAME", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    assert language() == "en"
    monkeypatch.setenv("LANG", "ja_JP.UTF-8")
    assert language() == "ja"
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv(
        "JPY_SESSION_NAME", str(JA / NOTEBOOKS[0])
    )  # Jupyter names the kernel's notebook
    assert language() == "ja"
    monkeypatch.setenv("JPY_SESSION_NAME", str(COURSE / NOTEBOOKS[0]))
    assert language() == "en"
    monkeypatch.setenv("ATTNLAB_LANG", "ja")
    assert language() == "ja"
    monkeypatch.setenv("ATTNLAB_LANG", "fr")
    with pytest.raises(ValueError, match="ATTNLAB_LANG='fr'"):
        language()


def test_japanese_figures_have_every_glyph(tmp_path):
    """Every translated message, drawn as a figure title in the Japanese edition's font setup,
    draws without a missing-glyph warning (mathtext included)."""
    script = r"""
import io, logging, os, sys, warnings
os.environ["ATTNLAB_LANG"] = "ja"
import matplotlib
matplotlib.use("Agg")
import attnlab
from attnlab.i18n import catalogue
import matplotlib.pyplot as plt
if attnlab.use_japanese_font() is None:
    sys.exit("no Japanese font: tools/ensure_system_packages.sh installs fonts-noto-cjk")
log = io.StringIO()
logging.getLogger("matplotlib").addHandler(logging.StreamHandler(log))
texts = [t for t in catalogue("ja").values() if len(t) < 200 and "\n" not in t]
fig, ax = plt.subplots()
with warnings.catch_warnings():
    warnings.simplefilter("error")
    for text in texts:
        ax.set_title(text)
        try:
            fig.canvas.draw()
        except ValueError:  # not valid mathtext (a message, not a label): drawn as plain text
            ax.set_title(text.replace("$", r"\$"))
            fig.canvas.draw()
print(len(texts), "drawn")
sys.exit(1 if "glyph" in log.getvalue() else 0)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert int(out.stdout.split()[0]) > 100


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap is not installed")
def test_a_japanese_class_is_graded_with_the_same_commands_and_one_setting(tmp_path):
    """README.ja.md's instructor steps, in a copy of the repository: `make build`'s Japanese
    edition, then with ATTNLAB_LANG=ja: generate_assignment, attnlab-grade, generate_feedback.
    A student who forgot the 1/sqrt(d_k) scale gets the English edition's score, and the
    feedback HTML is Japanese: the notebook's prose and the hint naming the mistake."""
    import csv
    import os

    import nbformat
    from attnlab.i18n import catalogue
    from nbgrader_course import nbgrader_env, replace_solution
    from test_class_grading import NO_SCALE_SDPA

    zone = "00_quickstart"
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    copy = tmp_path / "attnlab"
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    env = dict(nbgrader_env(), ATTNLAB_LANG="ja")

    def run(*args, timeout=900):
        out = subprocess.run(
            list(args), cwd=copy, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]

    run(sys.executable, "tools/build_course.py", "--lang", "ja", "--only", zone)
    run(
        sys.executable, "-m", "nbgrader", "generate_assignment", zone, "--force", "--log-level=WARN"
    )
    source = nbformat.read(copy / "solutions-ja" / zone / f"{zone}.ipynb", as_version=4)
    submitted = copy / "submitted" / "kenta" / zone
    submitted.mkdir(parents=True)
    nbformat.write(
        replace_solution(source, "scaled_dot_product_attention", NO_SCALE_SDPA),
        submitted / f"{zone}.ipynb",
    )
    (submitted / "timestamp.txt").write_text("2026-11-29 10:00:00.000000 UTC")
    run(
        str(Path(sys.executable).parent / "attnlab-grade"), zone, "--no-progress"
    )  # the installed command
    run(sys.executable, "-m", "nbgrader", "generate_feedback", zone, "--force", "--log-level=WARN")
    with open(copy / "grading_report.csv") as fh:
        row = next(csv.DictReader(fh))
    assert (row["student"], float(row["score"]), float(row["max_score"])) == ("kenta", 2.0, 5.0), (
        row
    )
    html = (copy / "feedback" / "kenta" / zone / f"{zone}.html").read_text(encoding="utf-8")
    assert "ゾーン 0" in html
    from grader_tests import REGISTRY

    hints = [
        catalogue("ja")[m.hint]
        for m in REGISTRY["scaled_dot_product_attention"].mutants
        if m.hint in catalogue("ja")
    ]
    import html as html_lib

    text = html_lib.unescape(html)
    assert any(h in text for h in hints), "no Japanese hint in the feedback"
    assert os.path.exists(copy / "course" / "ja" / zone / f"{zone}.ipynb")
