"""The grading sandbox and the trusted verdict, piece by piece.

End to end (attacks through `attnlab-grade`) is tests/test_attacks.py; here: the plain-data
format refuses code, verdicts are computed from recorded data only, and the bubblewrap
sandbox hides the course, has no network, enforces its limits and leaves nothing running.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from grader_tests import REGISTRY
from grader_tests.plain_data import ForeignObject, decode, encode, read_record, write_record
from grader_tests.sandbox import SANDBOX_UID_BASE, Limits, bwrap_path, run_notebook_sandboxed
from grader_tests.verdict import judge_outcomes, judge_record

ROOT = Path(__file__).resolve().parent.parent
needs_bwrap = pytest.mark.skipif(
    bwrap_path() is None and os.environ.get("ATTNLAB_REQUIRE_BROWSER") != "1",
    reason="bubblewrap is not installed (CI installs it)",
)


# ---------------------------------------------------------------- plain data


def test_plain_data_round_trip(tmp_path):
    value = (np.arange(6.0).reshape(2, 3), 3, -np.inf, "x", {"a": [np.float32(1.5), True, None]})
    arrays: dict = {}
    write_record(tmp_path / "r.npz", {"v": encode(value, arrays)}, arrays)
    record, loaded = read_record(tmp_path / "r.npz")
    back = decode(record["v"], loaded)
    assert np.array_equal(back[0], value[0]) and back[1:4] == (3, -np.inf, "x")
    assert back[4] == {"a": [np.float32(1.5), True, None]}


def test_objects_travel_as_their_type_name_only():
    class Liar:
        def __eq__(self, other):
            return True

    arrays: dict = {}
    got = decode(encode(Liar(), arrays), arrays)
    assert isinstance(got, ForeignObject) and got.name.endswith("Liar")


def test_a_record_with_a_pickled_array_is_refused(tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, a0=np.array([object()], dtype=object))
    with zipfile.ZipFile(buffer, "a") as zf:
        zf.writestr("record.json", json.dumps({"v": {"type": "array", "key": "a0"}}))
    (tmp_path / "r.npz").write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="allow_pickle"):
        read_record(tmp_path / "r.npz")


def test_a_symlinked_record_is_refused(tmp_path):
    arrays: dict = {}
    write_record(tmp_path / "real.npz", {"v": encode(1, arrays)}, arrays)
    (tmp_path / "softmax.npz").symlink_to(tmp_path / "real.npz")
    verdict = judge_record("softmax", tmp_path)
    assert not verdict.passed and "could not be read" in verdict.message


# ---------------------------------------------------------------- verdicts from data


def _outcomes(fn, name):
    arrays: dict = {}
    outcomes = []
    for case in REGISTRY[name].cases():
        try:
            outcomes.append(
                {"status": "returned", "value": encode(fn(*case.args, **case.kwargs), arrays)}
            )
        except Exception as exc:
            outcomes.append({"status": "raised", "type": type(exc).__name__, "message": str(exc)})
    return outcomes, arrays


def test_verdict_passes_the_reference_and_names_a_mistake():
    import attnlab

    assert judge_outcomes("softmax", *_outcomes(attnlab.softmax, "softmax")).passed

    def no_max(x, axis=-1):
        e = np.exp(np.asarray(x, dtype=float))
        return e / e.sum(axis=axis, keepdims=True)

    verdict = judge_outcomes("softmax", *_outcomes(no_max, "softmax"))
    assert not verdict.passed
    assert "Likely mistake" in verdict.message and "maximum" in verdict.message


def test_verdict_of_a_missing_or_short_record_is_zero(tmp_path):
    assert not judge_record("softmax", tmp_path).passed  # nothing recorded
    outcomes, arrays = _outcomes(lambda x, axis=-1: x, "softmax")
    verdict = judge_outcomes("softmax", outcomes[:2], arrays)
    assert not verdict.passed and "incomplete" in verdict.message


def test_a_record_for_another_exercise_does_not_count(tmp_path):
    import attnlab

    outcomes, arrays = _outcomes(attnlab.softmax, "softmax")
    write_record(
        tmp_path / "causal_mask.npz",
        {"exercise": "softmax", "callable": True, "outcomes": outcomes},
        arrays,
    )
    assert not judge_record("causal_mask", tmp_path).passed


# ---------------------------------------------------------------- the sandbox itself


def _notebook(*sources: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nbformat.writes(nb)


def _printed(result) -> str:
    nb = nbformat.read(result.notebook, as_version=4)
    return "".join(
        o.get("text", "") + o.get("evalue", "") for c in nb.cells for o in c.get("outputs", [])
    )


@needs_bwrap
def test_the_sandbox_hides_the_course_and_has_no_network(tmp_path):
    probe = (
        "import os, socket\n"
        f"print('solutions visible:', os.path.exists({str(ROOT / 'solutions')!r}))\n"
        f"print('nbgrader_config visible:', os.path.exists({str(ROOT / 'nbgrader_config.py')!r}))\n"
        "print('package visible:', os.path.exists(os.path.dirname(__import__('attnlab').__file__)))\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=3); print('network: yes')\n"
        "except OSError:\n"
        "    print('network: no')\n"
        "try:\n"
        "    open(os.path.join(os.path.dirname(__import__('attnlab').__file__), 'x.py'), 'w')\n"
        "    print('package writable: yes')\n"
        "except OSError:\n"
        "    print('package writable: no')\n"
        "print('uid', os.getuid())\n"
    )
    result = run_notebook_sandboxed(_notebook(probe), {}, tmp_path / "w")
    text = _printed(result)
    assert "solutions visible: False" in text
    assert "nbgrader_config visible: False" in text
    assert "package visible: True" in text
    assert "network: no" in text
    assert "package writable: no" in text
    if os.geteuid() == 0:
        assert f"uid {SANDBOX_UID_BASE}" in text


def _processes_of(uid: int, settle_s: float = 10.0) -> str:
    """pgrep's list of `uid`'s processes, once the killed namespace has had time to go."""
    deadline = time.monotonic() + settle_s
    while True:
        left = subprocess.run(
            ["pgrep", "-u", str(uid)], capture_output=True, text=True
        ).stdout.strip()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@needs_bwrap
def test_the_wall_clock_limit_kills_everything_it_started(tmp_path):
    daemon = (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import os, time; os.setsid(); time.sleep(600)'],\n"
        "                 start_new_session=True)\n"
        "import time\ntime.sleep(600)\n"
    )
    start = time.monotonic()
    result = run_notebook_sandboxed(
        _notebook(daemon),
        {},
        tmp_path / "w",
        limits=Limits(wall_seconds=15, cell_timeout_s=600),
        slot=7,
    )
    assert result.timed_out
    assert time.monotonic() - start < 40
    if os.geteuid() == 0:  # nothing of the sandbox's own user is left running
        assert _processes_of(SANDBOX_UID_BASE + 7) == ""


@needs_bwrap
def test_limits_stop_a_fork_bomb_and_a_huge_file(tmp_path):
    bomb = (
        "import os\nn = 0\n"
        "try:\n"
        "    for _ in range(5000):\n"
        "        if os.fork() == 0:\n"
        "            import time; time.sleep(30); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print('fork refused after', n)\n"
    )
    big = (
        "try:\n"
        "    with open('big.bin', 'wb') as fh:\n"
        "        fh.write(b'x' * (64 * 2**20))\n"
        "    print('wrote 64 MiB')\n"
        "except OSError as e:\n"
        "    print('file size refused')\n"
    )
    limits = Limits(processes=64, file_size_bytes=16 * 2**20, wall_seconds=120)
    result = run_notebook_sandboxed(_notebook(bomb, big), {}, tmp_path / "w", limits=limits, slot=8)
    text = _printed(result)
    assert "fork refused after" in text
    assert "file size refused" in text


def test_attnlab_grade_refuses_without_bubblewrap(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # no bwrap on this PATH
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader_tests.instructor",
            "00_quickstart",
            "--course-dir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "apt-get install bubblewrap" in out.stderr and "--unsafe-no-sandbox" in out.stderr


def test_the_course_config_and_attnlab_grade_use_the_same_sandboxed_pipeline():
    """nbgrader_config.py (plain `nbgrader autograde`) and attnlab-grade's forced pipeline agree."""
    from traitlets.config import Config

    from grader_tests.instructor import SANDBOX_PIPELINE

    config = Config()
    exec((ROOT / "nbgrader_config.py").read_text(), {"get_config": lambda: config})
    assert list(config.Autograde.autograde_preprocessors) == list(SANDBOX_PIPELINE)
    assert config.Autograde.autograde_preprocessors[0] == "grader_tests.autograde.SandboxedExecute"
