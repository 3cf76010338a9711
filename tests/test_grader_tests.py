"""Every checker passes its reference and fails every catalogued mistake, naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import grader_tests
from grader_tests import REGISTRY, GradingError, check, run_check

EXERCISES = sorted(REGISTRY)
MUTANTS = [(name, m) for name in EXERCISES for m in REGISTRY[name].mutants]


@pytest.mark.parametrize("name", EXERCISES)
def test_reference_passes(name):
    ex = REGISTRY[name]
    assert run_check(name, ex.reference, hidden=True, allow_reference=True) == []


@pytest.mark.parametrize("name", EXERCISES)
def test_exercise_has_hidden_cases_and_mutants(name):
    ex = REGISTRY[name]
    cases = ex.cases()
    assert any(c.hidden for c in cases), f"{name} has no hidden cases"
    assert any(not c.hidden for c in cases), f"{name} has no visible cases"
    assert len(ex.mutants) >= 2, f"{name} needs at least two catalogued mistakes"
    assert ex.points > 0


@pytest.mark.parametrize("name, mutant", MUTANTS, ids=[f"{n}::{m.name}" for n, m in MUTANTS])
def test_mutant_is_caught_and_named(name, mutant, report_row):
    failures = run_check(name, mutant.fn, hidden=True)
    caught = bool(failures)
    named = caught and mutant.hint in failures[0]
    report_row("mutant", (name, mutant.name, caught, named))
    assert caught, f"{name}: the mistake '{mutant.name}' passes every check"
    assert named, (
        f"{name}: the mistake '{mutant.name}' is caught but its hint is not shown:\n{failures[0]}"
    )


# The quiz parts show only their worked example: their hidden cases are the questions themselves.
QUIZ_PARTS = {"quiz_mechanism", "quiz_order", "quiz_efficiency"}
VISIBLE_MUTANTS = [(n, m) for n, m in MUTANTS if n not in QUIZ_PARTS]


@pytest.mark.parametrize(
    "name, mutant", VISIBLE_MUTANTS, ids=[f"{n}::{m.name}" for n, m in VISIBLE_MUTANTS]
)
def test_mutant_is_caught_and_named_by_the_visible_cases(name, mutant):
    """Every rule the notebook states is exercised by a visible case, so a learner sees the
    mistake (and its hint) before submitting; the hidden cases test the same rules again."""
    failures = run_check(name, mutant.fn, hidden=False)
    assert failures, f"{name}: the mistake '{mutant.name}' passes every visible check"
    assert mutant.hint in failures[0], (
        f"{name}: the mistake '{mutant.name}' is caught by the visible checks but its hint is "
        f"not shown:\n{failures[0]}"
    )


def test_check_raises_assertion_error_with_actionable_message():
    def softmax(x, axis=-1):
        e = np.exp(np.asarray(x, dtype=float))
        return e / e.sum(axis=axis, keepdims=True)

    with pytest.raises(AssertionError) as info:
        check("softmax", softmax)
    msg = str(info.value)
    assert isinstance(info.value, GradingError)
    assert "huge scores" in msg and "expected" in msg and "got" in msg
    assert "Subtract the maximum" in msg


def _unsolved_softmax(x, axis=-1):
    raise NotImplementedError()


@pytest.fixture
def learner_session(monkeypatch):
    """A learner's own kernel: neither nbgrader nor attnlab's grading sandbox."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("ATTNLAB_GRADING", raising=False)


@pytest.mark.parametrize("variable", ["NBGRADER_EXECUTION", "ATTNLAB_GRADING"])
def test_not_implemented_fails_in_a_grading_kernel(monkeypatch, variable):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("ATTNLAB_GRADING", raising=False)
    monkeypatch.setenv(variable, "autograde" if variable == "NBGRADER_EXECUTION" else "1")
    with pytest.raises(AssertionError, match="not implemented yet"):
        check("softmax", _unsolved_softmax)


def test_not_implemented_in_a_learner_session_shows_a_box_and_does_not_raise(
    learner_session, capsys
):
    assert check("softmax", _unsolved_softmax) is None  # Run All goes on to the cells below
    out = capsys.readouterr().out
    assert "softmax: not solved yet" in out and "raise NotImplementedError()" in out


def test_not_solved_box_is_html_in_ipython(learner_session, monkeypatch):
    import IPython
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append(obj))

    def scaled_dot_product_attention(q, k, v, mask=None, causal=False):
        raise NotImplementedError()

    check("scaled_dot_product_attention", scaled_dot_product_attention)
    (bundle,) = shown
    assert (
        "not solved yet" in bundle["text/html"]
        and "scaled_dot_product_attention" in bundle["text/html"]
    )
    assert bundle["text/plain"].startswith("scaled_dot_product_attention: not solved yet")


def test_other_failures_still_raise_in_a_learner_session(learner_session):
    with pytest.raises(GradingError, match="wrong result"):
        check("softmax", REGISTRY["softmax"].mutants[0].fn)


def test_grading_error_renders_as_its_message_alone():
    """IPython shows _render_traceback_ instead of a traceback: no grader frames."""
    with pytest.raises(GradingError) as info:
        check("softmax", REGISTRY["softmax"].mutants[0].fn)
    lines = info.value._render_traceback_()
    assert lines == str(info.value).splitlines()
    assert lines[0].startswith("softmax: wrong result on input:")
    engine = [p.name for p in Path(grader_tests.__file__).parent.glob("*.py")]  # no engine frame
    assert not any("Traceback" in line or any(f in line for f in engine) for line in lines)


def test_failure_message_summarises_arrays():
    """A wrong 3-D result: shape, dtype, how many differ, a few differing entries; no dumps."""

    def sdpa_causal_ignored(q, k, v, mask=None, causal=False):
        scores = np.matmul(q, np.swapaxes(k, -1, -2)) / np.sqrt(q.shape[-1])
        if mask is not None:
            scores = np.where(mask, scores, -1e9)
        w = np.exp(scores - scores.max(axis=-1, keepdims=True))
        w = w / w.sum(axis=-1, keepdims=True)
        return w @ v, w

    (msg,) = run_check("scaled_dot_product_attention", sdpa_causal_ignored)
    lines = msg.splitlines()
    assert len(lines) <= 12, msg
    assert "causal=True" in lines[0]
    assert "values differ" in msg and "shape (3, 4, 8), dtype float64" in msg
    assert "at [0, 0, 1]: expected" in msg
    assert "[[" not in msg  # no array printouts
    assert REGISTRY["scaled_dot_product_attention"].mutants[4].hint in msg  # causal ignored
    assert "causal=True was ignored" in msg


def test_k_dot_T_on_batched_input_gets_its_hint():
    hint = next(
        m.hint
        for m in REGISTRY["scaled_dot_product_attention"].mutants
        if m.name == "k.T on batched input"
    )

    def with_matmul(q, k, v, mask=None, causal=False):
        d_k = q.shape[-1]
        weights = np.exp(np.matmul(q, k.T) / d_k**0.5)  # passes on 2-D inputs, fails on batches
        if causal:
            weights = weights * np.tril(np.ones(weights.shape[-2:]), k=k.shape[-2] - q.shape[-2])
        if mask is not None:
            weights = weights * mask
        weights = weights / weights.sum(axis=-1, keepdims=True)
        return weights @ v, weights

    def with_dot(q, k, v, mask=None, causal=False):  # np.dot: another error, in another place
        scores = np.dot(q, k.T) / np.sqrt(q.shape[-1])
        if causal:
            scores = np.where(
                np.tril(np.ones(scores.shape[-2:], bool), k.shape[-2] - q.shape[-2]),
                scores,
                -np.inf,
            )
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        w = np.exp(scores - scores.max(axis=-1, keepdims=True))
        w = w / w.sum(axis=-1, keepdims=True)
        return w @ v, w

    for fn in (with_matmul, with_dot):
        (msg,) = run_check("scaled_dot_product_attention", fn)
        assert "raised ValueError" in msg and "batch (3, 4, 8)" in msg.splitlines()[0], msg
        assert hint in msg, msg
        assert len(msg.splitlines()) <= 12, msg
    (msg,) = run_check("scaled_dot_product_attention", with_matmul)
    assert "line" in msg and "k.T" in msg  # the learner's own line, not NumPy's


def test_learner_exception_is_reported_not_raised():
    def softmax(x, axis=-1):
        return x / 0 + undefined_name  # noqa: F821

    failures = run_check("softmax", softmax)
    assert "NameError" in failures[0] and "undefined_name" in failures[0]


def test_infinite_loop_times_out(monkeypatch):
    monkeypatch.setattr(REGISTRY["softmax"], "timeout_s", 0.5)

    def softmax(x, axis=-1):
        while True:
            pass

    failures = run_check("softmax", softmax)
    assert "took longer than 0.5 s" in failures[0]


def test_object_with_always_true_eq_is_rejected():
    class Liar:
        def __eq__(self, other):
            return True

        def __array__(self, dtype=None, copy=None):
            return np.zeros(3)

    failures = run_check("softmax", lambda x, axis=-1: Liar())
    assert failures and "Liar" in failures[0]


def test_replacing_numpy_allclose_does_not_fool_the_checker(monkeypatch):
    monkeypatch.setattr(np, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(np, "isclose", lambda a, b, **k: np.ones(np.shape(a), dtype=bool))
    failures = run_check("softmax", lambda x, axis=-1: np.zeros_like(np.asarray(x, float)))
    assert failures


def test_inputs_are_not_shared_between_calls():
    def softmax(x, axis=-1):
        out = grader_tests_reference(x, axis)
        x[...] = 0.0  # vandalise the input
        return out

    grader_tests_reference = REGISTRY["softmax"].reference
    assert run_check("softmax", softmax, hidden=True, allow_reference=True) == []


def test_calling_the_library_itself_is_refused():
    import attnlab

    assert "library's own attnlab.softmax" in run_check("softmax", attnlab.softmax)[0]
    namespace = {"attnlab": attnlab}
    exec("def softmax(x, axis=-1):\n    return attnlab.softmax(x, axis)\n", namespace)
    assert "library's own" in run_check("softmax", namespace["softmax"])[0]
    exec(
        "from attnlab import softmax as s\ndef softmax(x, axis=-1):\n    return s(x, axis)\n",
        namespace,
    )
    assert "library's own" in run_check("softmax", namespace["softmax"])[0]


def test_imports_from_any_directory(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", "import grader_tests; print(len(grader_tests.REGISTRY))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        check=True,
    )
    assert int(out.stdout) == len(REGISTRY)


def test_registry_names_are_attnlab_functions():
    import inspect

    import attnlab

    for name, ex in REGISTRY.items():
        assert hasattr(attnlab, name), f"exercise {name} mirrors no attnlab function"
        assert ex.reference is getattr(attnlab, name) or ex.reference_name
        if callable(ex.reference) and inspect.isfunction(ex.reference):
            assert inspect.signature(ex.reference) == inspect.signature(getattr(attnlab, name))


def test_unknown_exercise_is_a_clear_error():
    with pytest.raises(KeyError, match="no exercise named"):
        grader_tests.run_check("sofmax", lambda x: x)
