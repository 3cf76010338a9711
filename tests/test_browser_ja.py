"""The Japanese edition as a learner gets it: `make course COURSE_LANG=ja` (README.ja.md), then
JupyterLab in Debian's Chromium: the Lab's own menus are Japanese, the notebook's prose, its
printed output and its explorers' labels are Japanese, Run All runs every cell, and every
control of the first explorer moves and redraws without an error.

The Lab, the browser and the course/ backup are test_browser.py's fixtures, started again for
this module with MAKE_ARGS (course/ja/ is the Lab's root: LAB_ROOT).
"""

from __future__ import annotations

import re

import pytest
from test_browser import (  # noqa: F401  (fixtures, instantiated again for this module)
    _EXPLORERS_JS,
    ARTIFACTS,
    _console_errors,
    _error_outputs,
    _exercise_explorer,
    _open,
    _run_all,
    browser,
    course_backup,
    lab,
    page,
)

MAKE_ARGS = ["COURSE_LANG=ja"]
LAB_ROOT = "ja/"
NOTEBOOK = "01_experience/01_experience.ipynb"
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
pytestmark = pytest.mark.slow


def test_the_japanese_edition_in_a_japanese_lab(lab, page, report_row):  # noqa: F811 (fixtures)
    _open(page, lab, NOTEBOOK)
    menus = page.eval_on_selector_all(".lm-MenuBar-itemLabel", "els => els.map(e => e.textContent)")
    assert "実行" in menus and sum(bool(JAPANESE.search(m)) for m in menus) >= 4, (
        f"the Lab's menus are not Japanese: {menus}"
    )
    prose = page.locator(".jp-NotebookPanel:visible .jp-MarkdownOutput").first.inner_text()
    assert "ゾーン 1" in prose, prose[:300]

    seconds, _ = _run_all(page, "ja_01_experience", menu=("実行", "すべてのセルを実行"))
    report_row("summary_line", f"browser (日本語版): Run All 01_experience {seconds:6.1f} s")
    page.screenshot(path=str(ARTIFACTS / "ja_01_experience_after_run_all.png"))
    assert _error_outputs(page) == [], "error output after Run All"
    outputs = page.eval_on_selector_all(
        ".jp-NotebookPanel:visible .jp-OutputArea-output", "els => els.map(e => e.innerText)"
    )
    printed = [o for o in outputs if JAPANESE.search(o)]
    assert printed, f"no Japanese in the outputs: {outputs[:5]}"

    page.wait_for_function(f"() => ({_EXPLORERS_JS})() >= 1", timeout=30_000)
    explorer = page.locator("[data-browser-test='explorer']").first
    labels = explorer.locator(
        ".widget-label, .widget-toggle-button, .widget-dropdown select"
    ).evaluate_all("els => els.map(e => [e.textContent, e.title || ''].join(' '))")
    assert any(JAPANESE.search(t) for t in labels), (
        f"the explorer's labels are not Japanese: {labels}"
    )
    lines, failures = [], []
    _exercise_explorer(page, explorer, "ja_01_experience explorer 0", lines, failures)
    (ARTIFACTS / "ja_01_experience_explorer.log").write_text("\n".join(lines) + "\n")
    assert failures == [], "\n".join(failures)
    assert _error_outputs(page) == [], "error output after moving the explorer"
    assert _console_errors(page) == [], page.console_errors
