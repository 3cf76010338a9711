"""Zone 6 library pieces: the lecture map (checked against the library, the grader's registry
and the course's notebooks) and the quiz (each answer checked against an independent source:
torch, transformers' model configs, closed forms from the papers, a Monte Carlo estimate)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import attnlab
import numpy as np
import pytest
import torch

import grader_tests
from grader_tests import REGISTRY, run_check

ROOT = Path(__file__).resolve().parent.parent
QUIZ_PARTS = ("quiz_mechanism", "quiz_order", "quiz_efficiency")


# ------------------------------------------------------------------------- the lecture map


def test_every_function_on_the_map_is_in_attnlab():
    missing = [
        name
        for row in attnlab.lecture_map()
        for name in row["functions"]
        if not callable(getattr(attnlab, name, None))
    ]
    assert missing == []


def test_the_map_covers_every_graded_exercise():
    on_map = {name for row in attnlab.lecture_map() for name in row["functions"]}
    assert sorted(set(REGISTRY) - on_map) == []


def test_the_map_covers_every_zone_of_the_course():
    zones = {p.stem for p in (ROOT / "solutions").glob("*/*.py") if p.stem == p.parent.name}
    on_map = {row["zone"] for row in attnlab.lecture_map()}
    assert zones <= on_map, f"zones missing from the map: {sorted(zones - on_map)}"
    assert {row["thread"] for row in attnlab.lecture_map()} <= set(attnlab.THREADS)


def test_table_links_every_idea_to_its_notebook_and_marks_exercises():
    rows = attnlab.lecture_map()
    table = attnlab.lecture_table_markdown(exercises={"softmax", "parallel_scan"})
    lines = table.splitlines()[2:]
    assert len(lines) == len(rows)
    for line, row in zip(lines, rows):
        assert f"(../{row['zone']}/{row['zone']}.ipynb)" in line
        for name in row["functions"]:
            marked = f"`{name}` ✎" in line
            assert marked == (name in {"softmax", "parallel_scan"}), (name, line)
    linked = set(re.findall(r"\(\.\./(\w+)/\1\.ipynb\)", table))
    missing = sorted(z for z in linked if not (ROOT / "course" / z / f"{z}.ipynb").exists())
    if missing:
        pytest.skip(f"zones not built into course/ yet: {missing}")


def test_plot_lecture_map_names_every_function():
    import matplotlib.pyplot as plt

    fig = attnlab.plot_lecture_map()
    drawn = " ".join(t.get_text() for t in fig.axes[0].texts)
    plt.close(fig)
    missing = [
        name for row in attnlab.lecture_map() for name in row["functions"] if name not in drawn
    ]
    assert missing == []
    with pytest.raises(ValueError, match="highlight='speed' is not a thread"):
        attnlab.plot_lecture_map("speed")


def test_explorer_prints_the_ideas_of_one_thread(capsys):
    import matplotlib.pyplot as plt

    attnlab.draw_lecture_map("memory")
    plt.close("all")
    out = capsys.readouterr().out
    memory = [row for row in attnlab.lecture_map() if row["thread"] == "memory"]
    assert out.startswith(f"memory: the KV cache: {len(memory)} key ideas")
    for row in memory:
        assert row["idea"] in out
    assert "softmax" not in out.split("\n", 1)[1]  # other threads are not listed


# ------------------------------------------------------------------------- the quiz answers


def test_path_lengths_rnn_and_attention():
    rnn, attention = attnlab.quiz_mechanism("a1")
    assert (rnn, attention) == (1000 - 1, 1)  # an RNN chain of N nodes has N - 1 edges


def test_score_variances_by_monte_carlo():
    unscaled, scaled = attnlab.quiz_mechanism("a2")
    rng = np.random.default_rng(0)
    s = np.einsum(
        "nd,nd->n", rng.standard_normal((100_000, 64)), rng.standard_normal((100_000, 64))
    )
    stderr = math.sqrt((np.mean((s - s.mean()) ** 4) - s.var() ** 2) / len(s))
    assert abs(s.var() - unscaled) < 4 * stderr
    assert abs((s / 8).var() - scaled) < 4 * stderr / 64


def test_attention_parameters_match_torch_multihead_attention():
    mha = torch.nn.MultiheadAttention(768, 12, bias=True)
    assert attnlab.quiz_mechanism("a3") == sum(p.numel() for p in mha.parameters())


def test_rope_scores_depend_on_the_offset_only():
    """Worked example b0: shifting both positions keeps the score; changing m - n does not."""
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((2, 1, 16))

    def score(m, n):
        return float(
            attnlab.apply_rope(q, positions=np.array([m]))[0]
            @ attnlab.apply_rope(k, positions=np.array([n]))[0]
        )

    assert abs(score(7, 3) - score(27, 23)) < 1e-10  # rules out (a) m alone and (c) m + n
    assert abs(score(7, 3) - score(9, 3)) > 1e-3  # rules out (d): it does depend on m - n
    assert attnlab.quiz_order("b0") == "b"


def test_alibi_slopes_follow_the_paper():
    first, last = attnlab.quiz_order("b1")
    assert (first, last) == (2 ** (-8 * 1 / 8), 2 ** (-8 * 8 / 8))  # Press et al. 2022: 2^(-8i/n)


def test_masked_softmax_matches_torch():
    expected = torch.softmax(torch.tensor([1.0, 2.0, -math.inf, 3.0], dtype=torch.float64), dim=0)
    np.testing.assert_allclose(attnlab.quiz_order("b2"), expected.numpy(), rtol=1e-12, atol=0)


def test_new_query_sees_every_cached_key_as_in_full_causal_attention():
    """Decoding the 6th token over 5 cached ones must give the last row of causal attention over
    all 6 tokens (torch, square mask); find which option's keys reproduce it."""
    sdpa = torch.nn.functional.scaled_dot_product_attention
    q, k, v = torch.randn(3, 1, 6, 4, dtype=torch.float64)
    last_row = sdpa(q, k, v, is_causal=True)[0, -1]
    options = {"a": [0], "b": [0, 1, 2, 3, 4, 5], "c": [0, 1, 2, 3, 4], "d": [5]}
    matching = [
        letter
        for letter, keys in options.items()
        if torch.allclose(sdpa(q[:, -1:], k[:, keys], v[:, keys])[0, 0], last_row, atol=1e-12)
    ]
    assert matching == [attnlab.quiz_order("b3")]


def test_kv_cache_grows_and_mamba_state_does_not():
    """Worked example c0: bytes grow with the tokens for attention; Mamba's state keeps its size."""
    assert attnlab.kv_cache_bytes(2, 2, 8, 20) > attnlab.kv_cache_bytes(2, 2, 8, 10)
    block = attnlab.MambaBlock(d_model=8, d_state=4, d_conv=4, d_inner=16).eval()
    sizes = []
    for steps in (3, 10):
        state = block.init_state(batch_size=1)
        with torch.no_grad():
            for _ in range(steps):
                _, state = block.step(torch.randn(1, 8), state)
        sizes.append(sum(s.numel() for s in state))
    assert sizes[0] == sizes[1]
    assert attnlab.quiz_efficiency("c0") == "a"


def test_kv_cache_bytes_from_the_transformers_configs():
    transformers = pytest.importorskip(
        "transformers", reason="model configs come from transformers"
    )
    gpt2 = transformers.GPT2Config()  # defaults are GPT-2 small
    head = gpt2.n_embd // gpt2.n_head
    assert attnlab.quiz_efficiency("c1") == 2 * gpt2.n_layer * gpt2.n_head * head * 1024 * 2
    # c2 asks for Llama-3.1-8B: 32 layers, 8 key/value heads of 128 (the same shapes as
    # Mistral-7B, whose config is in transformers), and no sliding window, so every token is kept
    mistral = transformers.MistralConfig()  # defaults are Mistral-7B
    head = mistral.hidden_size // mistral.num_attention_heads
    assert attnlab.quiz_efficiency("c2") == (
        2 * mistral.num_hidden_layers * mistral.num_key_value_heads * head * 32768 * 2
    )


def test_hbm_ratio_from_the_algorithms_of_dao_et_al():
    n, d, m = 8192, 64, 192 * 1024 // 2
    block_c = -(-m // (4 * d))
    t_c = -(-n // block_c)
    standard = 4 * n * d + 4 * n * n
    flash = n * d + 2 * n + 2 * n * d + t_c * (3 * n * d + 4 * n)
    assert attnlab.quiz_efficiency("c3") == pytest.approx(standard / flash, rel=1e-12)


def test_chinchilla_tokens_spend_the_budget_at_20_tokens_per_parameter():
    tokens = attnlab.quiz_efficiency("c4")
    params = tokens / 20
    assert 6 * params * tokens == pytest.approx(1e21, rel=1e-12)


def test_unknown_question_names_the_known_ones():
    with pytest.raises(
        ValueError, match=r"question='a9' is not a question of quiz_mechanism.*'a1'"
    ):
        attnlab.quiz_mechanism("a9")


# ------------------------------------------------------------------------- grading and feedback


def _wrong(value):
    """An answer of the same form as `value` that no catalogued mistake gives."""
    if isinstance(value, str):
        return "z"
    if isinstance(value, tuple):
        return tuple(-7.0 for _ in value)
    if isinstance(value, np.ndarray):
        return np.full(value.shape, -7.0)
    return -7


@pytest.mark.parametrize("part", QUIZ_PARTS)
def test_feedback_explains_every_wrong_answer(part):
    reference = getattr(attnlab, part)
    for question, entry in attnlab.QUIZ[part].items():
        if entry.worked:
            continue

        def answers(q, question=question):
            return _wrong(reference(q)) if q == question else reference(q)

        failures = run_check(part, answers, hidden=True, allow_reference=True)
        assert len(failures) == 1
        message = failures[0]
        assert f"wrong result on input: {question}: {entry.label}" in message
        assert entry.explanation in message, message


@pytest.mark.parametrize("part", QUIZ_PARTS)
def test_only_the_worked_example_is_visible(part):
    cases = REGISTRY[part].cases()
    visible = [c.args[0] for c in cases if not c.hidden]
    assert visible == [q for q, e in attnlab.QUIZ[part].items() if e.worked] and len(visible) == 1
    assert len(cases) - 1 >= 3


def test_release_notebook_gives_no_hidden_answer():
    nb = json.loads((ROOT / "course" / "06_review" / "06_review.ipynb").read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"])
    for part in QUIZ_PARTS:
        for question, entry in attnlab.QUIZ[part].items():
            answer = entry.answer()
            if entry.worked or isinstance(answer, str):
                continue
            values = np.atleast_1d(np.asarray(answer, dtype=float))
            for value in values[values != 0]:
                for form in {f"{value:.3g}", f"{value:,.0f}", f"{value:.0f}", repr(float(value))}:
                    if len(form.strip("0.,-")) >= 3:
                        found = re.search(rf"(?<![\d.,]){re.escape(form)}(?![\d])", text)
                        assert not found, f"{part} {question}: {form} appears in the release"
    assert '"a0": np.array([0.25, 0.75])' in text  # the worked examples are given


def test_form_report_says_missing_and_wrong_forms_without_answers(capsys):
    def learner(question):
        return {"a0": [0.25, 0.75], "a1": np.array([999, 1]), "a2": "64"}[question]

    rows = attnlab.quiz_form_report("quiz_mechanism", learner)
    status = {r["question"]: r["status"] for r in rows}
    assert status["a0"] == "ok"  # a list where an array is expected: the checker accepts it
    assert status["a1"] == "wrong form"  # an array where a tuple is expected: it does not
    assert status["a2"] == "wrong form"
    assert status["a3"].startswith("missing (KeyError")
    out = capsys.readouterr().out
    assert "1 of 4 answers have the expected form" in out
    assert "2362368" not in out and "64.0" not in out
    assert run_check("quiz_mechanism", learner, hidden=True)  # and the grader agrees a1 is wrong


def test_grader_tests_and_attnlab_agree_on_the_quiz():
    assert (
        {name for name in REGISTRY if name.startswith("quiz_")}
        == set(attnlab.QUIZ)
        == set(QUIZ_PARTS)
    )
    assert sum(REGISTRY[p].points for p in QUIZ_PARTS) == 10
    assert grader_tests.REGISTRY["quiz_order"].reference is attnlab.quiz_order


@pytest.mark.slow
def test_nbgrader_feedback_explains_the_wrong_answer(tmp_path):
    """End to end: autograde a submission with one wrong quiz answer, generate the feedback, and
    find the question and its explanation in the HTML the learner receives."""
    import html as html_lib
    import sys

    import nbformat

    sys.path.insert(0, str(ROOT / "tests"))
    from nbgrader_course import Course, replace_solution

    course = Course(tmp_path, ["06_review"])
    course.generate()
    solution = nbformat.read(course.source_notebook("06_review"), as_version=4)
    only_keys = (
        "def quiz_efficiency(question):\n"
        "    answers = {'c0': 'a', 'c2': attnlab.kv_cache_bytes(32, 8, 128, 32768), 'c3': 7.33, 'c4': 5.77e10}\n"
        "    answers['c1'] = 12 * 12 * 64 * 1024 * 2  # forgot the values\n"
        "    return answers[question]\n"
    )
    course.submit("alice", "06_review", replace_solution(solution, "quiz_efficiency", only_keys))
    course.autograde("06_review", "alice")
    assert course.scores("06_review", "alice") == (6.0, 10.0)  # parts A and B, not C
    course.nbgrader("generate_feedback", "06_review", "--force")
    feedback = html_lib.unescape(
        (tmp_path / "feedback" / "alice" / "06_review" / "06_review.html").read_text()
    )
    assert "wrong result on input: c1" in feedback
    assert grader_tests.REGISTRY["quiz_efficiency"].mutants[0].hint in feedback
