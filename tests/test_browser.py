"""The course as a learner gets it: `make course`, then JupyterLab in Debian's Chromium.

The learner's path, exactly: JupyterLab is started by the README's own command, `make course
PORT=<free port> LAB_ARGS=--no-browser`, from the repository root, with the environment pytest
was started with (conftest.USER_ENVIRON) and the configuration `make course` puts on the
config path (jupyter/learner/). Playwright drives Chromium through it:

- the Lab shows no instructor tools (Formgrader, Create Assignment), no Assignments/Courses
  panels (no course exchange here: they would only show errors) and no news pop-up;
- every notebook of course/ is opened and Run All runs every cell, with no error output;
  each notebook's Run All time is printed (target: 3 minutes each, 15 for the course);
- every control of every explorer (sliders, dropdowns, toggle buttons, checkboxes) is moved
  several times (max, min, middle; every option, twice round): every change of value redraws
  the figure, and no error output or browser console error appears;
- nbgrader's Validate button passes the solutions and reports the blank release as failing;
- the kernel is the learner's own: shell commands, %pip and open() of a notebook work, and
  grader_tests.sandbox.grading_mode() is False.

JupyterLab saves into course/*.ipynb (autosave, Validate): course/ is backed up first and
restored after the server has stopped, under an exclusive lock that the tests reading course/
also take (tests/course_lock.py). Screenshots go to test-artifacts/ (kept by CI as artifacts),
with the timings in test-artifacts/browser_timings.json.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from datetime import datetime
from pathlib import Path

import pytest
from course_lock import course_dir_lock

ROOT = Path(__file__).resolve().parent.parent
COURSE = ROOT / "course"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
NOTEBOOKS = sorted(p.relative_to(COURSE).as_posix() for p in COURSE.glob("*/*.ipynb"))
# Scratch notebooks live two folders down in course/, where the build checks' `*/*.ipynb`
# glob does not reach, and are removed with everything else when course/ is restored.
SCRATCH = "zz_browser_test"
RUN_ALL_BUDGET_S = (
    180  # the course's target per notebook; printed, not asserted (shared CI machines)
)
RUN_ALL_LIMIT_S = 900  # a Run All that takes longer than this is stuck
REDRAW_LIMIT_S = 60

pytestmark = pytest.mark.slow
REQUIRED = os.environ.get("ATTNLAB_REQUIRE_BROWSER") == "1"  # set by .ci/run: never skip in CI
if not REQUIRED:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is part of the dev extra"
    )
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            "Debian's chromium is not installed (sudo apt-get install chromium)",
            allow_module_level=True,
        )
    if not shutil.which("make"):
        pytest.skip("make is not installed", allow_module_level=True)
else:
    import playwright.sync_api as sync_api

sys.path.insert(0, str(ROOT / "tools"))
from build_course import source_notebook, write_notebook

TIMINGS: dict[str, float] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_SAVED = re.compile(r"\[I (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) ServerApp\] Saving file at /(\S+)")


def _lab_saves(log_text: str) -> dict[str, float]:
    """course/-relative path -> time of JupyterLab's last save of it, from the server's log."""
    return {
        path: datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        for stamp, path in _SAVED.findall(log_text)
    }


def _has_outputs(path: Path) -> bool:
    """A notebook with outputs or execution counts: saved after running, never built."""
    try:
        cells = json.loads(path.read_text()).get("cells", [])
    except (ValueError, UnicodeDecodeError, OSError):
        return False
    return any(
        c.get("outputs") or c.get("execution_count") for c in cells if c.get("cell_type") == "code"
    )


def _restore(backup: Path, saves: dict[str, float]) -> list[str]:
    """Undo what JupyterLab and the kernels wrote into course/, and nothing else: course/ is a
    shared working tree, and a maintainer's `make build` during the run must survive. A changed
    file is ours when it holds outputs or when JupyterLab saved it last (its log says so, and
    nobody wrote it later); a new file is ours unless it is a built notebook (`*/*.ipynb`
    without outputs). Returns the files left as someone else wrote them."""
    kept = []
    for path in sorted(backup.rglob("*")):
        rel = path.relative_to(backup).as_posix()
        target = COURSE / rel
        if path.is_dir():
            target.mkdir(exist_ok=True)
        elif not target.exists():
            shutil.copy2(path, target)
        elif not filecmp.cmp(path, target, shallow=False):
            if _has_outputs(target) or (rel in saves and target.stat().st_mtime <= saves[rel] + 2):
                shutil.copy2(path, target)
            else:
                kept.append(rel)
    for path in sorted(COURSE.rglob("*"), key=lambda p: -len(p.parts)):
        rel = path.relative_to(COURSE)
        if (backup / rel).exists():
            continue
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif (
            len(rel.parts) == 2
            and rel.suffix == ".ipynb"
            and rel.parts[0] != SCRATCH
            and not _has_outputs(path)
        ):
            kept.append(rel.as_posix())
        else:
            path.unlink()
    return kept


@pytest.fixture(scope="module")
def course_backup(request):
    """Back up course/ before JupyterLab runs (and saves) its notebooks; restore it after.
    The fixture's value is a dict; `lab` puts the path of the server's log in it."""
    with (
        course_dir_lock(exclusive=True),
        tempfile.TemporaryDirectory(prefix="attnlab-course-backup-") as tmp,
    ):
        backup = Path(tmp) / "course"
        shutil.copytree(COURSE, backup, symlinks=True)
        state = {"backup": backup, "log": None}
        try:
            yield state
        finally:
            log = state["log"].read_text() if state["log"] and state["log"].exists() else ""
            # The Lab's root is course/, or the module's LAB_ROOT under it (course/ja/).
            prefix = getattr(request.module, "LAB_ROOT", "")
            kept = _restore(backup, {f"{prefix}{path}": t for path, t in _lab_saves(log).items()})
            ours = {
                p.relative_to(COURSE).as_posix() for p in COURSE.rglob("*") if p.is_file()
            } - set(kept)
            theirs = {
                p.relative_to(backup).as_posix() for p in backup.rglob("*") if p.is_file()
            } - set(kept)
            assert ours == theirs, f"course/ was not restored: {sorted(ours ^ theirs)}"
            left = [f for f in ours if not filecmp.cmp(backup / f, COURSE / f, shallow=False)]
            assert left == [], f"course/ was not restored: {left}"
            if kept:
                warnings.warn(
                    f"course/ changed during the browser test by someone else, kept: {kept}",
                    stacklevel=1,
                )


def _get(url: str, timeout: float = 5) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def lab(request, course_backup, user_environ):
    """JupyterLab as the README starts it: `make course PORT=<port>` from the repository root
    (plus the test module's MAKE_ARGS, e.g. COURSE_LANG=ja for the Japanese edition)."""
    ARTIFACTS.mkdir(exist_ok=True)
    port = _free_port()
    make_args = list(getattr(request.module, "MAKE_ARGS", []))
    log_path = ARTIFACTS / f"make_course{'_'.join(['', *make_args]).replace('=', '-')}.log"
    course_backup["log"] = log_path  # the restore reads which files JupyterLab saved
    log = open(log_path, "w")
    started = time.monotonic()
    proc = subprocess.Popen(
        ["make", "course", f"PORT={port}", "LAB_ARGS=--no-browser", *make_args],
        cwd=ROOT,
        env=user_environ,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # its own process group: stopped as a whole
    base, token = f"http://localhost:{port}", None
    try:
        deadline = started + 900  # a first `make course` installs everything into .venv
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(
                    f"`make course` exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            found = re.search(
                rf"http://(?:localhost|127\.0\.0\.1):{port}/lab\?token=([0-9a-f]+)",
                log_path.read_text(),
            )
            if found:
                token = found.group(1)
                try:
                    if _get(f"{base}/lab?token={token}") == 200:
                        break
                except (urllib.error.URLError, OSError):
                    pass
            time.sleep(0.25)
        else:
            pytest.fail("JupyterLab did not start:\n" + log_path.read_text()[-3000:])
        TIMINGS["make course -> Lab serving (HTTP 200), .venv already installed"] = (
            time.monotonic() - started
        )
        yield {"base": base, "token": token, "log": log_path, "started": started}
    finally:
        if proc.poll() is None:
            os.killpg(
                proc.pid, signal.SIGTERM
            )  # make, its shell and jupyter lab (which stops its kernels)
            try:
                proc.wait(timeout=30)
                time.sleep(2)  # jupyter lab, a grandchild, finishes shutting its kernels down
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything of the group still there
        log.close()


def _api(lab, method: str, path: str):
    request = urllib.request.Request(
        f"{lab['base']}{path}", method=method, headers={"Authorization": f"token {lab['token']}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        return json.loads(body) if body else None


@pytest.fixture(scope="module")
def browser(lab):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        # Log in once with the token (as the link `make course` prints does): a cookie for the rest.
        page = context.new_page()
        page.goto(f"{lab['base']}/lab?token={lab['token']}")
        page.close()
        yield context
        browser.close()


@pytest.fixture
def page(browser, lab):
    pg = browser.new_page()
    pg.console_errors = []
    pg.on(
        "console", lambda msg: pg.console_errors.append(msg.text) if msg.type == "error" else None
    )
    pg.on("pageerror", lambda exc: pg.console_errors.append(f"page error: {exc}"))
    pg.workspace = f"browser-test-{secrets.token_hex(4)}"  # a fresh workspace: no tabs restored
    yield pg
    pg.close(run_before_unload=False)  # close without saving
    # shut down the kernels this page started, and forget its workspace (~/.jupyter/lab/workspaces)
    for session in _api(lab, "GET", "/api/sessions"):
        _api(lab, "DELETE", f"/api/sessions/{session['id']}")
    with contextlib.suppress(urllib.error.HTTPError):
        _api(lab, "DELETE", f"/lab/api/workspaces/{pg.workspace}")


def _goto_lab(page, lab, path: str = "") -> None:
    tree = f"/tree/{path}" if path else ""
    page.goto(f"{lab['base']}/lab/workspaces/{page.workspace}{tree}?reset")
    page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)


def _open(page, lab, path: str) -> None:
    """Open a notebook and wait until its kernel is started, connected and idle (a Run All sent
    while the kernel is still connecting is dropped by JupyterLab)."""
    _goto_lab(page, lab, path)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        sessions = [s for s in _api(lab, "GET", "/api/sessions") if s["path"] == path]
        kernel = sessions[0]["kernel"] if sessions else {}
        status_bar = page.locator("#jp-main-statusbar").text_content() or ""
        if (
            kernel.get("execution_state") == "idle"
            and kernel.get("connections", 0) > 0
            and re.search(r"\| (Idle|アイドル)", status_bar)  # English or Japanese Lab
        ):
            page.wait_for_timeout(1000)
            return
        page.wait_for_timeout(500)
    pytest.fail(f"{path}: the kernel did not become ready: {kernel}, status bar {status_bar!r}")


# ------------------------------------------------------------------------------------------
# Outputs, errors, Run All
# ------------------------------------------------------------------------------------------

_STDERR = "[data-mime-type='application/vnd.jupyter.stderr']"


def _error_outputs(page, root: str = ".jp-NotebookPanel:visible") -> list[str]:
    """Error outputs (tracebacks) and stderr text that reports an error, under `root`."""
    texts = page.eval_on_selector_all(f"{root} {_STDERR}", "els => els.map(e => e.textContent)")
    return [t[-2000:] for t in texts if re.search(r"Traceback|Error\b|Exception\b", t)]


_BENIGN_CONSOLE = ("favicon",)


def _console_errors(page) -> list[str]:
    return [m for m in page.console_errors if not any(b in m for b in _BENIGN_CONSOLE)]


_PROMPTS_JS = """() => {
    const prompts = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')]
        .map(p => p.textContent.trim());
    const status = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator')
        ?.getAttribute('data-status');
    const explorer = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .widget-output')]
        .some(o => o.querySelector('img, svg'));
    return {
        total: prompts.length,
        done: prompts.filter(p => /\\[\\d+\\]/.test(p)).length,
        busy: prompts.filter(p => p.includes('*')).length,
        status, explorer,
    };
}"""


def _run_all(
    page, name: str, menu: tuple[str, str] = ("Run", "Run All Cells")
) -> tuple[float, float | None]:
    """Run All Cells (through `menu`: the menu and its item, as the UI's language names them)
    and wait until the kernel has finished: (seconds, the time.monotonic() at which the first
    explorer figure showed, or None). Every code cell must have run: a cell that raised stops
    Run All."""
    initial = page.evaluate(_PROMPTS_JS)
    assert initial["done"] == 0, f"{name}: the notebook opened with executed cells: {initial}"
    page.click(f".lm-MenuBar-itemLabel:text-is('{menu[0]}')")
    page.click(f".lm-Menu-itemLabel:text-is('{menu[1]}')")
    started = time.monotonic()
    first_explorer, quiet_since = None, None
    while True:
        state = page.evaluate(_PROMPTS_JS)
        now = time.monotonic()
        if state["explorer"] and first_explorer is None:
            first_explorer = now
        if state["done"] == 0 and state["busy"] == 0 and now - started > 60:
            page.screenshot(path=str(ARTIFACTS / f"{name}_run_all_ignored.png"))
            pytest.fail(f"{name}: Run All started no cell in 60 s: {state}")
        finished = state["busy"] == 0 and state["status"] == "idle" and state["done"] > 0
        if state["done"] == state["total"] and finished:
            break
        if finished:  # Run All stopped early (an error): give it a moment, then report
            quiet_since = quiet_since or now
            if now - quiet_since > 10:
                break
        else:
            quiet_since = None
        if now - started > RUN_ALL_LIMIT_S:
            page.screenshot(path=str(ARTIFACTS / f"{name}_run_all_stuck.png"))
            pytest.fail(f"{name}: Run All did not finish in {RUN_ALL_LIMIT_S} s: {state}")
        page.wait_for_timeout(500)
    seconds = time.monotonic() - started
    if state["done"] != state["total"]:
        page.screenshot(path=str(ARTIFACTS / f"{name}_run_all_stopped.png"))
        pytest.fail(
            f"{name}: Run All stopped after {state['done']} of {state['total']} code cells "
            f"({seconds:.0f} s); errors: {_error_outputs(page)}"
        )
    return seconds, first_explorer


# ------------------------------------------------------------------------------------------
# Explorers: find them, move every control, watch the figure
# ------------------------------------------------------------------------------------------

# live() shows its controls stacked above one Output widget, in one VBox (lib/attnlab/plots/controls.py).
_EXPLORERS_JS = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .widget-vbox')]
    .filter(box => [...box.children].some(c => c.classList.contains('widget-output')))
    .map(box => box.setAttribute('data-browser-test', 'explorer') || true).length"""

_KINDS = {
    "widget-slider": "slider",
    "widget-dropdown": "dropdown",
    "widget-toggle-buttons": "toggle",
    "widget-checkbox": "checkbox",
}


def _controls(explorer) -> list[tuple[str, object]]:
    kinds = []
    for i in range(explorer.locator(":scope > *").count()):
        child = explorer.locator(":scope > *").nth(i)
        classes = (child.get_attribute("class") or "").split()
        if "widget-output" in classes:
            continue
        kind = next((k for cls, k in _KINDS.items() if cls in classes), None)
        assert kind, f"an explorer control of unknown kind: {classes}"
        kinds.append((kind, child))
    return kinds


def _figure(explorer) -> str:
    """What the output area shows: the figure (image data) and any text."""
    return explorer.locator(":scope > .widget-output").evaluate(
        "o => [...o.querySelectorAll('img')].map(i => i.src).join('|') + '#' "
        "+ [...o.querySelectorAll('svg')].map(s => s.outerHTML).join('|') + '#' + o.textContent"
    )


def _drawn(explorer) -> bool:
    return explorer.locator(":scope > .widget-output").evaluate(
        "o => !!o.querySelector('img, svg')"
    )


def _value(control, kind: str) -> str:
    if kind == "slider":
        return control.locator(".widget-readout").first.text_content().strip()
    if kind == "dropdown":
        return control.locator("select").input_value()
    if kind == "toggle":
        return control.locator(".mod-active").first.text_content().strip()
    return str(control.locator("input[type=checkbox]").is_checked())


def _wait_redraw(page, explorer, before: str, label: str) -> str:
    """Wait until the figure differs from `before`, is drawn, and has stopped changing."""
    deadline = time.monotonic() + REDRAW_LIMIT_S
    last, stable_since = None, None
    while time.monotonic() < deadline:
        now = _figure(explorer)
        if now != before and _drawn(explorer):
            if now == last:
                if time.monotonic() - stable_since > 1.0:
                    return now
            else:
                last, stable_since = now, time.monotonic()
        page.wait_for_timeout(250)
    errors = _error_outputs(page, "[data-browser-test='explorer']")
    pytest.fail(
        f"{label}: the figure did not change within {REDRAW_LIMIT_S} s"
        + (f"; error output: {errors}" if errors else "")
    )


def _settle(page, explorer) -> str:
    """The figure once nothing has changed for 2 s (for a move that did not change the value)."""
    last, since = _figure(explorer), time.monotonic()
    while time.monotonic() - since < 2.0:
        page.wait_for_timeout(250)
        now = _figure(explorer)
        if now != last:
            last, since = now, time.monotonic()
    return last


def _slider_moves(page, control):
    """Drag the knob as a learner does: past the right end (max), past the left end (min), middle."""
    track = control.locator(".noUi-target").first
    handle = control.locator(".noUi-handle").first

    def drag(fraction: float):
        track.scroll_into_view_if_needed()
        box, knob = track.bounding_box(), handle.bounding_box()
        x0, y0 = knob["x"] + knob["width"] / 2, knob["y"] + knob["height"] / 2
        x1 = box["x"] + fraction * box["width"]
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x1, y0, steps=8)
        page.mouse.up()

    return [("max", lambda: drag(1.3)), ("min", lambda: drag(-0.3)), ("middle", lambda: drag(0.5))]


def _dropdown_moves(control):
    select = control.locator("select")
    options = select.locator("option").all_text_contents()
    start = select.input_value()
    picks = list(range(len(options)))
    if len(options) > 6:  # first, second, middle, last
        picks = sorted({0, 1, len(options) // 2, len(options) - 1})
    moves = []
    for _ in range(2):  # every option twice round, back where it began in between
        for i in picks:
            moves.append((f"option {options[i]!r}", lambda i=i: select.select_option(index=i)))
        moves.append(("back", lambda: select.select_option(value=start)))
    return moves


def _toggle_moves(control):
    buttons = control.locator("button")
    n = buttons.count()
    moves = []
    for _ in range(2):
        for i in [*range(n)][1:] + [0]:  # every option, then the first again
            label = buttons.nth(i).text_content().strip()
            moves.append((f"option {label!r}", lambda i=i: buttons.nth(i).click()))
    return moves


def _checkbox_moves(control):
    box = control.locator("input[type=checkbox]")
    return [(f"click {k + 1}", box.click) for k in range(4)]


def _moves(page, kind: str, control):
    if kind == "slider":
        return _slider_moves(page, control)
    return {"dropdown": _dropdown_moves, "toggle": _toggle_moves, "checkbox": _checkbox_moves}[
        kind
    ](control)


def _exercise_explorer(page, explorer, label: str, lines: list[str], failures: list[str]) -> None:
    """Move every control of one explorer, logging each move into `lines`. A control fails
    (into `failures`; the next control is still tried) on a move that changes its value but
    not the figure, or that leaves error output; and when it changes value fewer than twice."""
    explorer.scroll_into_view_if_needed()
    if not _drawn(explorer):
        failures.append(f"{label}: no figure before any control was moved")
        return
    controls = _controls(explorer)
    if not controls:
        failures.append(f"{label}: an explorer with no controls")
    for c, (kind, control) in enumerate(controls):
        name = (
            control.locator(".widget-label").first.text_content() or ""
        ).strip() or f"{kind} {c}"
        changed = 0
        try:
            for move, act in _moves(page, kind, control):
                what = f"{label} / {name} ({kind}) -> {move}"
                before_value, before_figure = _value(control, kind), _figure(explorer)
                control.scroll_into_view_if_needed()
                act()
                page.wait_for_timeout(300)
                after_value = _value(control, kind)
                if after_value == before_value:
                    after = _settle(page, explorer)
                    assert after == before_figure, (
                        f"{what}: the value stayed {after_value!r} but the figure changed"
                    )
                    lines.append(f"{what}: value stays {after_value!r}")
                    continue
                t0 = time.monotonic()
                _wait_redraw(
                    page, explorer, before_figure, f"{what} ({before_value!r} -> {after_value!r})"
                )
                changed += 1
                lines.append(
                    f"{what}: {before_value!r} -> {after_value!r}, redrawn in {time.monotonic() - t0:.1f} s"
                )
                errors = _error_outputs(page, "[data-browser-test='explorer']")
                assert errors == [], f"{what}: error output in the explorer:\n" + "\n".join(errors)
            assert changed >= 2, (
                f"{label} / {name}: the {kind} changed value only {changed} time(s)"
            )
        except (AssertionError, pytest.fail.Exception) as exc:
            lines.append(f"FAILED {exc}")
            failures.append(str(exc))
            page.screenshot(path=str(ARTIFACTS / f"{label.replace(' ', '_')}_{kind}{c}_failed.png"))


# ------------------------------------------------------------------------------------------
# The tests
# ------------------------------------------------------------------------------------------


def test_the_learners_lab_has_no_instructor_tools_exchange_errors_or_news(lab, page):
    _goto_lab(page, lab)
    page.wait_for_selector(".jp-SideBar .lm-TabBar-tab", timeout=60_000)
    page.wait_for_timeout(8000)  # the news toast and the course list would have shown by now
    page.screenshot(path=str(ARTIFACTS / "lab_start.png"))
    tabs = page.eval_on_selector_all(
        ".jp-SideBar .lm-TabBar-tab, #jp-main-dock-panel .lm-TabBar-tab",
        "els => els.map(e => [e.getAttribute('title'), e.getAttribute('data-id'), e.textContent].join(' '))",
    )
    menus = page.eval_on_selector_all(".lm-MenuBar-itemLabel", "els => els.map(e => e.textContent)")
    instructor = re.compile(r"formgrader|create.assignment|assignments|courses|nbgrader", re.I)
    assert [t for t in tabs if instructor.search(t)] == [], tabs
    assert [m for m in menus if instructor.search(m)] == [], menus
    assert "Nbgrader" not in menus
    toasts = page.eval_on_selector_all(
        ".Toastify__toast, .jp-Notification-Toast", "els => els.map(e => e.textContent)"
    )
    assert toasts == [], f"a notification shows on start: {toasts}"
    body = page.locator("body").text_content()
    assert not re.search(r"Error fetching courses|exchange directory does not exist", body), body[
        :2000
    ]
    # and on the server: the formgrader and the assignment/course lists are not there, Validate is
    for path in ("/formgrader", "/assignments", "/courses"):
        assert _get(f"{lab['base']}{path}?token={lab['token']}") == 404, path
    assert _get(f"{lab['base']}/nbgrader_version?version=0&token={lab['token']}") == 200
    log = lab["log"].read_text()
    assert "validate_assignment | extension was successfully loaded" in log
    assert not re.search(
        r"(formgrader|assignment_list|course_list) \| extension was successfully", log
    )
    assert not re.search(r"exchange directory does not exist", log, re.I)
    assert _console_errors(page) == [], page.console_errors


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.split("/")[0] for n in NOTEBOOKS])
def test_run_all_then_move_every_explorer_control(lab, page, notebook, report_row):
    name = notebook.split("/")[0]
    code = [
        ("".join(c["source"]))
        for c in json.loads((COURSE / notebook).read_text())["cells"]
        if c["cell_type"] == "code"
    ]
    expected = sum(len(re.findall(r"^\s*attnlab\.\w+_explorer\(", s, re.M)) for s in code)
    t_open = time.monotonic()
    _open(page, lab, notebook)
    seconds, first_explorer = _run_all(page, name)
    TIMINGS[f"Run All {name}"] = seconds
    report_row(
        "summary_line",
        f"browser: Run All {name:<20s} {seconds:6.1f} s"
        + ("" if seconds <= RUN_ALL_BUDGET_S else f"  (over the {RUN_ALL_BUDGET_S} s target)"),
    )
    if first_explorer is not None and "first explorer notebook" not in TIMINGS:
        TIMINGS["open notebook, Run All -> first explorer drawn"] = first_explorer - t_open
        TIMINGS["first explorer notebook"] = name
    page.screenshot(path=str(ARTIFACTS / f"{name}_after_run_all.png"))
    assert _error_outputs(page) == [], f"{name}: error output after Run All"
    assert _console_errors(page) == [], page.console_errors

    with contextlib.suppress(
        sync_api.TimeoutError
    ):  # widget views render just after the kernel is done
        page.wait_for_function(f"() => ({_EXPLORERS_JS})() >= {expected}", timeout=30_000)
    found = page.evaluate(_EXPLORERS_JS)
    assert found == expected, (
        f"{name}: {expected} explorer calls in the notebook, {found} explorers shown"
    )
    lines, failures = [], []
    for k in range(found):
        explorer = page.locator("[data-browser-test='explorer']").nth(k)
        explorer.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"{name}_explorer{k}_before.png"))
        try:
            _exercise_explorer(page, explorer, f"{name} explorer {k}", lines, failures)
        finally:
            (ARTIFACTS / f"{name}_explorers.log").write_text("\n".join(lines) + "\n")
            page.screenshot(path=str(ARTIFACTS / f"{name}_explorer{k}_after.png"))
    assert failures == [], f"{name}: {len(failures)} explorer control(s) failed:\n" + "\n".join(
        failures
    )
    assert _error_outputs(page) == [], f"{name}: error output after moving the explorers"
    assert _console_errors(page) == [], page.console_errors
    (ARTIFACTS / "browser_timings.json").write_text(json.dumps(TIMINGS, indent=2))


def _validate(page) -> str:
    """Click nbgrader's Validate button; return the text of the result dialog."""
    button = (
        page.locator(".jp-NotebookPanel-toolbar:visible").get_by_text("Validate", exact=True).first
    )
    button.wait_for(timeout=30_000)
    button.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=300_000)
    page.wait_for_function(
        "() => !/Validating|Saving/i.test(document.querySelector('.jp-Dialog')?.innerText || 'Validating')",
        timeout=300_000,
    )
    return dialog.inner_text()


def _scratch(notebook, relative: str) -> str:
    path = COURSE / SCRATCH / relative
    write_notebook(notebook, path)
    return f"{SCRATCH}/{relative}"


def test_validate_passes_the_solutions(lab, page):
    path = _scratch(
        source_notebook(ROOT / "solutions" / "00_quickstart" / "00_quickstart.py"),
        "solution/00_quickstart.ipynb",
    )
    _open(page, lab, path)
    text = _validate(page)
    page.screenshot(path=str(ARTIFACTS / "validate_solution.png"))
    assert re.search(r"Success|passes", text, re.I), text
    assert _console_errors(page) == [], page.console_errors


def test_validate_reports_the_blank_release_as_failing(lab, page):
    _open(page, lab, "00_quickstart/00_quickstart.ipynb")
    text = _validate(page)
    page.screenshot(path=str(ARTIFACTS / "validate_release.png"))
    assert not re.search(r"Success", text, re.I), text
    assert re.search(r"NotImplementedError|failed", text, re.I), text


def test_the_kernel_is_the_learners_own(lab, page):
    """No grading guard in a learner's kernel: shells, %pip and reading notebooks work."""
    import nbformat

    checks = {
        "shell": "!ls ../..",
        "pip": "%pip --version",
        "open": "print('opened', len(open('../../00_quickstart/00_quickstart.ipynb').read()) > 1000)",
        "grading": "import grader_tests.sandbox as sandbox\nprint('grading_mode', sandbox.grading_mode())",
    }
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(src) for src in checks.values()]
    _open(page, lab, _scratch(nb, "kernel/learner_kernel.ipynb"))
    _run_all(page, "learner_kernel")
    page.screenshot(path=str(ARTIFACTS / "learner_kernel.png"))
    outputs = page.eval_on_selector_all(
        ".jp-NotebookPanel:visible .jp-Cell-outputArea", "els => els.map(e => e.textContent)"
    )
    assert _error_outputs(page) == []
    shell, pip, opened, grading = outputs
    assert "00_quickstart" in shell and "06_review" in shell, shell
    assert re.search(r"pip \d+", pip), pip
    assert "opened True" in opened, opened
    assert "grading_mode False" in grading, grading


def test_print_timings(lab, report_row):
    """The timings measured above (also in test-artifacts/browser_timings.json)."""
    runs = {k: v for k, v in TIMINGS.items() if k.startswith("Run All")}
    if runs:
        TIMINGS["Run All, whole course"] = sum(runs.values())
    (ARTIFACTS / "browser_timings.json").write_text(json.dumps(TIMINGS, indent=2))
    for key, value in TIMINGS.items():
        report_row(
            "summary_line",
            f"browser: {key}: {value:.1f} s"
            if isinstance(value, float)
            else f"browser: {key}: {value}",
        )
