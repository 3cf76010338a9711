"""The course in a real browser: JupyterLab + Debian's Chromium, driven by Playwright.

Screenshots go to test-artifacts/ (kept by CI as artifacts).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"]

pytestmark = pytest.mark.slow
REQUIRED = os.environ.get("ATTNLAB_REQUIRE_BROWSER") == "1"  # set by .ci/run: never skip in CI
if not REQUIRED:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is part of the dev extra")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (sudo apt-get install chromium)",
                    allow_module_level=True)
else:
    import playwright.sync_api as sync_api

sys.path.insert(0, str(ROOT / "tools"))
from build_course import source_notebook, write_notebook


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a free localhost port with a token, serving the zones' solution notebooks."""
    root = tmp_path_factory.mktemp("lab")
    for zone in ("00_quickstart", "01_experience"):
        src = ROOT / "solutions" / zone / f"{zone}.py"
        if src.exists():
            write_notebook(source_notebook(src), root / zone / f"{zone}.ipynb")
    release = ROOT / "course" / "00_quickstart" / "00_quickstart.ipynb"
    (root / "release").mkdir()
    shutil.copy(release, root / "release" / "00_quickstart.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.pop("ATTNLAB_STATIC", None)  # live widgets in the browser
    env.pop("ATTNLAB_GRADING", None)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["JUPYTER_CONFIG_DIR"] = str(root / ".jupyter-config")
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    log = open(root / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except Exception:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not start:\n" + (root / "jupyterlab.log").read_text()[-3000:])
    yield {"base": base, "token": token, "root": root}
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def page():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.console_errors = []
        pg.on("console", lambda msg: pg.console_errors.append(msg.text) if msg.type == "error" else None)
        pg.on("pageerror", lambda exc: pg.console_errors.append(f"page error: {exc}"))
        yield pg
        browser.close()


def _open(page, lab, path: str):
    workspace = secrets.token_hex(4)  # a fresh workspace: no tabs restored from another test
    page.goto(f"{lab['base']}/lab/workspaces/{workspace}/tree/{path}?reset&token={lab['token']}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)


def _run_all(page, timeout_s: float = 240):
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""",
        timeout=timeout_s * 1000,
    )


def _error_outputs(page) -> list[str]:
    texts = page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
        "els => els.map(e => e.innerText)",
    )
    return [t for t in texts if re.search(r"Traceback|Error\b", t)]


_BENIGN_CONSOLE = ("favicon", "Failed to load resource: net::ERR", "ERR_INTERNET_DISCONNECTED")


def _console_errors(page) -> list[str]:
    return [m for m in page.console_errors if not any(b in m for b in _BENIGN_CONSOLE)]


def test_zone1_runs_and_the_dk_slider_updates_the_explorer(lab, page):
    if not (lab["root"] / "01_experience" / "01_experience.ipynb").exists():
        pytest.fail("Zone 1 notebook is missing")
    _open(page, lab, "01_experience/01_experience.ipynb")
    _run_all(page)
    page.screenshot(path=str(ARTIFACTS / "zone1_after_run_all.png"), full_page=False)
    assert _error_outputs(page) == []

    explorer = page.locator(".widget-interact", has=page.locator(".widget-label:text-matches('d_k', 'i')")).first
    explorer.scroll_into_view_if_needed()
    before_text = explorer.inner_text()
    before_img = explorer.locator("img").first.get_attribute("src")
    match = re.search(r"max(?:imum)? (?:attention )?weight[^0-9]*([0-9.]+)", before_text, re.I)
    assert match, f"the explorer shows no maximum weight:\n{before_text}"
    page.screenshot(path=str(ARTIFACTS / "zone1_explorer_before.png"))

    handle = explorer.locator(".noUi-handle").first  # the d_k slider's knob
    handle.focus()
    for _ in range(12):  # move it to the right end, step by step, as a learner would
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(150)
    page.wait_for_function(
        "([el, old]) => el.innerText !== old", arg=[explorer.element_handle(), before_text], timeout=60_000
    )
    page.wait_for_timeout(1000)
    after_text = explorer.inner_text()
    after_img = explorer.locator("img").first.get_attribute("src")
    page.screenshot(path=str(ARTIFACTS / "zone1_explorer_after.png"))
    after = re.search(r"max(?:imum)? (?:attention )?weight[^0-9]*([0-9.]+)", after_text, re.I)
    assert after and after.group(1) != match.group(1), (before_text, after_text)
    assert after_img != before_img, "the heatmap / histogram did not change"
    assert _error_outputs(page) == []
    assert _console_errors(page) == [], page.console_errors


def _validate(page) -> str:
    """Click nbgrader's Validate button; return the text of the result dialog."""
    button = page.locator(".jp-NotebookPanel-toolbar:visible").get_by_text("Validate", exact=True).first
    button.wait_for(timeout=30_000)
    button.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=180_000)
    page.wait_for_function(
        "() => !/Validating/i.test(document.querySelector('.jp-Dialog')?.innerText || 'Validating')",
        timeout=180_000,
    )
    return dialog.inner_text()


def test_validate_button_passes_the_zone0_solutions(lab, page):
    _open(page, lab, "00_quickstart/00_quickstart.ipynb")
    page.screenshot(path=str(ARTIFACTS / "zone0_opened.png"))
    text = _validate(page)
    page.screenshot(path=str(ARTIFACTS / "zone0_validate.png"))
    assert re.search(r"Success|passes", text, re.I), text
    assert _console_errors(page) == [], page.console_errors


def test_validate_button_reports_the_blank_release_as_failing(lab, page):
    _open(page, lab, "release/00_quickstart.ipynb")
    text = _validate(page)
    page.screenshot(path=str(ARTIFACTS / "zone0_release_validate.png"))
    assert not re.search(r"Success", text, re.I), text
    assert re.search(r"NotImplementedError|failed", text, re.I), text
