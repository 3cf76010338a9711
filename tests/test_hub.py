"""A class on a real JupyterHub, end to end, in Chromium: README "Teaching a class on a JupyterHub".

tests/hub_deployment.py deploys the README's set-up on this machine (real Unix users, PAM
logins, the local process spawner, jupyter/hub/ as the configuration, a shared exchange).
Then, all through the hub's login page in Chromium unless said otherwise:

- roles: students' Nbgrader menu holds the Assignment List only (no Formgrader, no Create
  Assignment; /formgrader answers 404); the instructor's holds every tool;
- permissions, tried as each user (runuser): students cannot read the instructor's course
  directory (solutions, gradebook), each other's homes, or the exchange's inbound folder;
- the instructor releases 00_quickstart and 01_experience (nbgrader, as the instructor);
- three students log in, click Fetch in the Assignments tab, work (their answers are written
  into the fetched notebooks as themselves, runuser: a correct, a partial and a hostile one),
  open each notebook and click Validate, and click Submit;
- the instructor grades with `attnlab-grade --collect` (sandboxed), then `nbgrader
  generate_feedback` and `release_feedback`: exact scores are asserted;
- each student clicks Fetch Feedback, then "(view feedback)", opens the HTML feedback and
  sees their own score and hints.

Timings (hub start, each student's first notebook open, grading the class) are printed and
written to test-artifacts/hub_timings.json; docs/benchmarks.md ("JupyterHub class") keeps them.
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import re
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
ZONES = ["00_quickstart", "01_experience"]
REQUIRED = os.environ.get("ATTNLAB_REQUIRE_BROWSER") == "1"  # set by .ci/run: never skip in CI

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hub_deployment
from hub_deployment import Deployment, read_notebook_as, write_answers_as

if not REQUIRED:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is part of the dev extra"
    )
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            "Debian's chromium is not installed (sudo apt-get install chromium)",
            allow_module_level=True,
        )
    _reason = hub_deployment.skip_reason()
    if _reason:
        pytest.skip(
            f"a JupyterHub class cannot be deployed here: {_reason}", allow_module_level=True
        )
else:
    import playwright.sync_api as sync_api

sys.path.insert(0, str(ROOT / "tools"))
from build_course import source_notebook


def _solution(zone: str, grade_id: str) -> str:
    """The instructor's answer for one solution cell, without nbgrader's markers."""
    nb = source_notebook(ROOT / "solutions" / zone / f"{zone}.py")
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return "\n".join(
                line
                for line in cell.source.splitlines()
                if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line
            )
    raise KeyError(grade_id)


def _answers(dep: Deployment) -> dict[str, dict[str, dict[str, str]]]:
    """student -> zone -> grade id -> source: one correct, one partial, one hostile student."""
    correct, partial, hostile = dep.students[:3]
    solutions = dep.course_dir / "solutions"
    return {
        correct: {
            "00_quickstart": {
                g: _solution("00_quickstart", g)
                for g in ("softmax", "scaled_dot_product_attention")
            },
            "01_experience": {
                g: _solution("01_experience", g) for g in ("qkv_attention", "score_statistics")
            },
        },
        partial: {  # softmax right, attention without the 1/sqrt(d_k); qkv right, statistics not done
            "00_quickstart": {
                "softmax": _solution("00_quickstart", "softmax"),
                "scaled_dot_product_attention": (
                    "def scaled_dot_product_attention(q, k, v, mask=None, causal=False):\n"
                    "    scores = q @ np.swapaxes(k, -1, -2)\n"
                    "    allowed = np.ones(scores.shape[-2:], dtype=bool)\n"
                    "    if mask is not None:\n"
                    "        allowed = allowed & mask\n"
                    "    if causal:\n"
                    "        allowed = allowed & attnlab.causal_mask(q.shape[-2], k.shape[-2])\n"
                    "    weights = softmax(np.where(allowed, scores, -np.inf), axis=-1)\n"
                    "    return weights @ v, weights\n"
                ),
            },
            "01_experience": {"qkv_attention": _solution("01_experience", "qkv_attention")},
        },
        hostile: {  # steal the solutions, edit the gradebook, fake the checks, use the library
            "00_quickstart": {
                "softmax": (
                    "import os\n"
                    f"for _path in [{str(solutions / '00_quickstart' / '00_quickstart.ipynb')!r},\n"
                    f"              {str(dep.course_dir / 'gradebook.db')!r}]:\n"
                    "    try:\n"
                    "        print('read', _path, len(open(_path, 'rb').read()))\n"
                    "    except OSError as exc:\n"
                    "        print('cannot read', _path, type(exc).__name__)\n"
                    "try:\n"
                    f"    open({str(dep.course_dir / 'gradebook.db')!r}, 'ab').write(b'0')\n"
                    "except OSError as exc:\n"
                    "    print('cannot write the gradebook', type(exc).__name__)\n"
                    "def check(*args, **kwargs):\n"
                    "    print('all checks passed')\n"
                    "def softmax(x, axis=-1):\n"
                    "    return np.zeros_like(np.asarray(x, dtype=float))\n"
                ),
                "scaled_dot_product_attention": (
                    "def scaled_dot_product_attention(q, k, v, mask=None, causal=False):\n"
                    "    return np.zeros(q.shape[:-1] + v.shape[-1:]), np.zeros(q.shape[:-1] + k.shape[-2:-1])\n"
                ),
            },
            "01_experience": {
                "qkv_attention": "import functools\nqkv_attention = functools.partial(attnlab.qkv_attention)\n",
                "score_statistics": (
                    "import glob\n"
                    f"print(glob.glob({str(dep.home(correct) / '*' / '*.ipynb')!r}))\n"
                    f"print(glob.glob({str(dep.exchange / 'attnlab' / 'inbound' / '*')!r}))\n"
                    "def score_statistics(q, k):\n"
                    "    return 0.0, 1.0\n"
                ),
            },
        },
    }


# (score, max) per student and zone; the hostile student's qkv_attention is the library's own:
# right answers, so it scores, and it is flagged for review.
def _expected(dep: Deployment) -> dict[tuple[str, str], float]:
    correct, partial, hostile = dep.students[:3]
    return {
        (correct, "00_quickstart"): 5.0,
        (correct, "01_experience"): 5.0,
        (partial, "00_quickstart"): 2.0,
        (partial, "01_experience"): 3.0,
        (hostile, "00_quickstart"): 0.0,
        (hostile, "01_experience"): 3.0,
    }


TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def deployment():
    dep = Deployment(n_students=3)
    try:
        dep.setup()
        TIMINGS["hub start (s)"] = dep.start_hub()
        yield dep
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "hub_timings.json").write_text(json.dumps(TIMINGS, indent=2))
        if dep.hub_log.exists():
            (ARTIFACTS / "jupyterhub.log").write_text(dep.hub_log.read_text())
        dep.teardown()
    assert not Path(dep.root).exists()
    for user in dep.users:
        with pytest.raises(KeyError):
            pwd.getpwnam(user)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _login(browser, dep: Deployment, user: str):
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{dep.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", dep.passwords[user])
    start = time.monotonic()
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf"/user/{user}/lab"), timeout=180_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=180_000)
    page.wait_for_selector(".lm-MenuBar-itemLabel:text-is('Nbgrader')", timeout=120_000)
    TIMINGS[f"{user}: login to Lab (s)"] = time.monotonic() - start
    return page


def _nbgrader_menu(page) -> list[str]:
    page.click(".lm-MenuBar-itemLabel:text-is('Nbgrader')")
    page.wait_for_selector(".lm-Menu:visible .lm-Menu-itemLabel")
    items = [
        t.strip()
        for t in page.locator(
            ".lm-Menu:visible .lm-Menu-item:visible .lm-Menu-itemLabel"
        ).all_text_contents()
    ]
    page.keyboard.press("Escape")
    return [t for t in items if t]


def _assignments_tab(page) -> None:
    page.click(".lm-MenuBar-itemLabel:text-is('Nbgrader')")
    page.click(".lm-Menu-itemLabel:text-is('Assignment List')")
    page.wait_for_selector("#nbgrader-assignment-list:visible, .nbgrader-mainarea-widget:visible")
    page.wait_for_function(
        "() => { const l = document.querySelector('#released_assignments_list_loading');"
        " return l && l.hidden; }"
    )


def _row(page, listing: str, zone: str):
    return page.locator(f"#{listing}_assignments_list > .list_item", has_text=zone)


def _click_in_row(
    page, listing: str, zone: str, button: str, then: str, timeout: float = 120_000
) -> None:
    """Click `button` on the `zone` row of a listing; wait until `zone` shows in listing `then`."""
    _row(page, listing, zone).get_by_role("button", name=button, exact=True).click()
    _row(page, then, zone).first.wait_for(timeout=timeout)


def _open_notebook(page, dep: Deployment, user: str, path: str) -> float:
    start = time.monotonic()
    # a fresh workspace: the Lab restores no other notebook, so the one shown is this one
    workspace = re.sub(r"\W", "-", path)
    page.goto(f"{dep.url}/user/{user}/lab/workspaces/{workspace}/tree/{path}?reset")
    page.wait_for_selector(".jp-NotebookPanel:visible .jp-Cell")
    title = page.locator(
        ".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel"
    ).first
    assert title.inner_text().strip() == path.rsplit("/", 1)[-1]
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    return time.monotonic() - start


def _validate(page) -> str:
    """Click the notebook toolbar's Validate button; return the text of the result dialog."""
    page.locator(".jp-NotebookPanel-toolbar:visible").get_by_text(
        "Validate", exact=True
    ).first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=600_000)
    page.wait_for_timeout(500)
    text = dialog.inner_text()
    dialog.get_by_role("button", name="Ok").click()
    dialog.wait_for(state="detached")
    return text


def test_a_class_on_a_jupyterhub(deployment, browser):
    dep = deployment
    correct, partial, hostile = dep.students
    answers, expected = _answers(dep), _expected(dep)
    ARTIFACTS.mkdir(exist_ok=True)

    # The course environment works for everyone (world-readable install).
    for user in dep.users:
        out = dep.as_user(
            user, "python", "-c", "import attnlab, grader_tests, nbgrader; print('ok')"
        )
        assert out.stdout.strip() == "ok", (user, out.stderr[-2000:])

    dep.release(*ZONES)
    outbound = dep.exchange / "attnlab" / "outbound"
    assert sorted(p.name for p in outbound.iterdir()) == ZONES
    assert not list(outbound.rglob("*.py")), "the jupytext sources (solutions) must not be released"

    # Roles: the instructor has every nbgrader tool, and the course directory to use them on.
    page = _login(browser, dep, dep.instructor)
    menu = _nbgrader_menu(page)
    assert {"Assignment List", "Formgrader", "Create assignment"} <= set(menu), menu
    assert page.request.get(f"{dep.url}/user/{dep.instructor}/formgrader").status == 200
    page.screenshot(path=str(ARTIFACTS / "hub_instructor.png"))
    page.context.close()

    # Permissions, tried as each student.
    course = dep.course_dir
    for student in dep.students:
        for path in [
            course,
            course / "solutions" / "00_quickstart" / "00_quickstart.ipynb",
            course / "gradebook.db",
            course / "nbgrader_config.py",
        ]:
            assert not dep.can_read(student, path), (student, path)
        assert not dep.can_write(student, course / "gradebook.db")
        for other in dep.users:
            if other != student:
                assert not dep.can_read(student, dep.home(other)), (student, other)
        assert not dep.can_read(student, dep.exchange / "attnlab" / "inbound")
        assert dep.can_read(student, outbound / "00_quickstart" / "00_quickstart.ipynb")

    # Students: log in, fetch, work, validate, submit.
    pages = {}
    for student in dep.students:
        page = pages[student] = _login(browser, dep, student)
        menu = _nbgrader_menu(page)
        assert menu == ["Assignment List"], menu
        assert page.request.get(f"{dep.url}/user/{student}/formgrader").status == 404
        assert page.locator(".jp-SideBar .lm-TabBar-tab[title*='Create Assignment' i]").count() == 0
        _assignments_tab(page)
        for zone in ZONES:
            _click_in_row(page, "released", zone, "Fetch", then="fetched")
        page.screenshot(path=str(ARTIFACTS / f"hub_{student}_fetched.png"))
        for zone in ZONES:
            fetched = dep.home(student) / zone / f"{zone}.ipynb"
            nb = read_notebook_as(dep, student, fetched)
            assert any("YOUR CODE HERE" in "".join(c["source"]) for c in nb["cells"])
            write_answers_as(dep, student, fetched, answers[student][zone])
        validations = {}
        for k, zone in enumerate(ZONES):
            seconds = _open_notebook(page, dep, student, f"{zone}/{zone}.ipynb")
            if k == 0:
                TIMINGS[f"{student}: first notebook open (s)"] = seconds
            validations[zone] = _validate(page)
            page.screenshot(path=str(ARTIFACTS / f"hub_{student}_{zone}_validate.png"))
        if student == correct:
            assert all("Success" in text for text in validations.values()), validations
        elif student == partial:
            assert "scaled_dot_product_attention" in validations["00_quickstart"], validations
            assert 'check("softmax"' not in validations["00_quickstart"], validations
            assert "score_statistics" in validations["01_experience"], validations
        else:  # the fake `check` fools Validate, which runs in the student's own kernel ...
            assert "Success" in validations["00_quickstart"], validations
        page.goto(f"{dep.url}/user/{student}/lab/workspaces/assignments?reset")
        page.wait_for_selector("#jp-main-dock-panel")
        _assignments_tab(page)
        for zone in ZONES:
            _click_in_row(page, "fetched", zone, "Submit", then="submitted")
        page.screenshot(path=str(ARTIFACTS / f"hub_{student}_submitted.png"))

    # What the students could not see, now that submissions are in.
    inbound = dep.exchange / "attnlab" / "inbound"
    for student in dep.students:
        assert not dep.can_read(student, inbound)
        out = dep.as_user(student, "sh", "-c", f"cat {inbound}/*/00_quickstart.ipynb")
        assert out.returncode != 0 and not out.stdout

    # The instructor grades, sandboxed, then releases the feedback (their hub terminal).
    start = time.monotonic()
    out = dep.instructor_run("attnlab-grade", *ZONES, "--collect", "--no-progress", timeout=3600)
    TIMINGS["grading the class: attnlab-grade --collect, 6 submissions (s)"] = (
        time.monotonic() - start
    )
    (ARTIFACTS / "hub_grading.txt").write_text(out.stdout + out.stderr)
    report_text = dep.as_user(dep.instructor, "cat", str(course / "grading_report.csv")).stdout
    rows = {(r["student"], r["assignment"]): r for r in csv.DictReader(report_text.splitlines())}
    got = {key: float(rows[key]["score"]) for key in expected}
    assert got == expected, out.stdout
    assert all(rows[key]["status"] == "graded" for key in expected)
    assert rows[(hostile, "01_experience")]["flags"], (
        "the library's own qkv_attention must be flagged"
    )
    assert not rows[(correct, "01_experience")]["flags"]
    for zone in ZONES:
        dep.instructor_run("nbgrader", "generate_feedback", zone, "--force")
        dep.instructor_run("nbgrader", "release_feedback", zone)
    assert not dep.can_read(correct, dep.exchange / "attnlab" / "feedback")

    # Students fetch their feedback and read it in the browser.
    for student in dep.students:
        page = pages[student]
        page.goto(f"{dep.url}/user/{student}/lab/workspaces/feedback?reset")
        page.wait_for_selector("#jp-main-dock-panel")
        _assignments_tab(page)
        for zone in ZONES:
            row = _row(page, "submitted", zone)
            row.get_by_role("button", name="Fetch Feedback", exact=True).click()
            link = row.get_by_text("(view feedback)")
            link.wait_for()
            link.click()
            item = page.locator(".jp-DirListing-item", has_text=f"{zone}.html")
            item.wait_for()
            item.dblclick()
            frame = page.frame_locator(".jp-MainAreaWidget:visible iframe").last
            frame.get_by_text(re.compile(r"\(Score: ")).first.wait_for(timeout=60_000)
            text = frame.locator("body").inner_text()
            (ARTIFACTS / f"hub_{student}_{zone}_feedback.txt").write_text(text)
            page.screenshot(path=str(ARTIFACTS / f"hub_{student}_{zone}_feedback.png"))
            score = expected[(student, zone)]
            assert f"{zone} (Score: {score:.1f} / 5.0)" in text, text[:1500]
            if student != hostile:  # (the hostile code itself names other people's folders)
                assert not [other for other in dep.users if other in text]
            if student == partial and zone == "00_quickstart":
                assert "scaled_dot_product_attention" in text and "sqrt(d_k)" in text, text[-3000:]
            page.locator(
                ".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon"
            ).click()
            _assignments_tab(page)
        own = dep.as_user(
            student,
            "find",
            str(dep.home(student)),
            "-path",
            "*/feedback/*.html",
            "-not",
            "-path",
            "*/.ipynb_checkpoints/*",
        ).stdout.splitlines()
        assert sorted(Path(p).name for p in own) == [f"{zone}.html" for zone in ZONES], own

    for name, seconds in TIMINGS.items():
        print(f"{name:<70s} {seconds:8.1f}")
