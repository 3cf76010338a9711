"""The self-check quiz of Zone 6: questions whose answers are computed by the library, and the
form that reports each answer's status."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
import numpy as np
from ..flash.hbm import hbm_traffic
from ..functional import causal_mask, kv_cache_bytes, score_variance, softmax
from ..i18n import N_, tr
from ..positional import alibi_slopes
from ..scaling import chinchilla_optimal
from ..demos.fossils import fossil_table
from ..demos.kv_cache import KV_MODEL_SHAPES

__all__ = ['QUIZ', 'QUIZ_RTOL', 'quiz_efficiency', 'quiz_form_report', 'quiz_mechanism', 'quiz_order']


# ----------------------------------------------------------------------------------------
# The quiz
# ----------------------------------------------------------------------------------------

# Numbers within 0.5 % are accepted (three significant digits are enough), except counts
# (steps, parameters, bytes), which must be exact.
QUIZ_RTOL = 5e-3


@dataclass(frozen=True)
class QuizQuestion:
    """One quiz question: a short label, how to compute the answer, and why it is right."""

    label: str
    answer: Callable[[], object]
    explanation: str
    worked: bool = False  # the worked example, answered in the notebook's text
    exact: bool = False  # a count: must be exact, not within QUIZ_RTOL


def _path_lengths(n: int) -> tuple[int, int]:
    rows = {row["layer"]: row["path"] for row in fossil_table(n)}
    return rows["RNN"], rows["self-attention"]


def _attention_layer_parameters(d_model: int, n_heads: int) -> int:
    """Weights and biases of attnlab's torch Attention module (GPT-2 style: with biases)."""
    from ..nn import Attention, GPTConfig  # torch: imported only when this question is asked

    module = Attention(GPTConfig(d_model=d_model, n_heads=n_heads, bias=True))
    return sum(p.numel() for p in module.parameters())


def _causal_choice() -> str:
    """The option that equals the mask of 1 new query over 5 cached keys plus its own."""
    options = {
        "a": np.array([True, False, False, False, False, False]),
        "b": np.ones(6, dtype=bool),
        "c": np.array([True, True, True, True, True, False]),
        "d": np.array([False, False, False, False, False, True]),
    }
    row = causal_mask(1, 6)[0]
    return next(letter for letter, option in options.items() if np.array_equal(option, row))


def _model_kv_bytes(name: str, seq_len: int) -> int:
    """Bytes the model really caches for seq_len tokens (fp16, batch 1): with a sliding window,
    only the last `sliding_window` tokens are kept."""
    shape = KV_MODEL_SHAPES[name]
    window = shape["sliding_window"]
    kept = seq_len if window is None else min(seq_len, window)
    return kv_cache_bytes(shape["n_layers"], shape["n_kv_heads"], shape["head_dim"], kept)


def _hbm_ratio(n: int, d: int, sram_bytes: int) -> float:
    standard, flash = hbm_traffic(n, d, sram_bytes)
    return standard / flash


QUIZ: dict[str, dict[str, QuizQuestion]] = {
    "quiz_mechanism": {
        "a0": QuizQuestion(
            "the worked example: softmax([0, ln 3]), an array of 2 numbers",
            lambda: softmax(np.log(np.array([1.0, 3.0]))),
            "e^0 : e^(ln 3) = 1 : 3, so the weights are 1/4 and 3/4. A score difference of ln 3 "
            "is a weight ratio of 3.",
            worked=True,
        ),
        "a1": QuizQuestion(
            "maximum path lengths (RNN, self-attention) between the first and the last of "
            "N = 1000 tokens, a tuple of 2 numbers",
            lambda: _path_lengths(1000),
            "An RNN carries information one step at a time: from token 1 to token 1000 is "
            "N - 1 = 999 recurrent steps. Self-attention connects any two tokens within one "
            "layer: path length 1 (Vaswani et al. 2017, Table 1; Zone 1).",
            exact=True,
        ),
        "a2": QuizQuestion(
            "(Var(q . k), Var(q . k / sqrt(d_k))) for d_k = 64 and independent N(0, 1) entries, "
            "a tuple of 2 numbers",
            lambda: (score_variance(64), score_variance(64, scaled=True)),
            "q . k is a sum of d_k = 64 independent products q_i k_i, each of mean 0 and variance "
            "1, so the variances add up to 64 (a standard deviation of 8). Dividing the score by "
            "sqrt(64) = 8 divides its variance by 64: back to 1 (Zone 3a, section 2).",
        ),
        "a3": QuizQuestion(
            "parameters (weights and biases) of one multi-head attention layer with "
            "d_model = 768 and 12 heads, as in GPT-2 small, one number",
            lambda: _attention_layer_parameters(768, 12),
            "W_Q, W_K, W_V and W_O are each 768 x 768 whatever the number of heads (the heads "
            "split their columns), and each has a bias of 768: 4 * 768^2 + 4 * 768 "
            "(Zone 3a, section 4, Claim 3).",
            exact=True,
        ),
    },
    "quiz_order": {
        "b0": QuizQuestion(
            "the worked example: after RoPE, q_m . k_n depends on the positions only through "
            "(a) m, (b) m - n, (c) m + n, (d) neither; a letter",
            lambda: "b",
            "RoPE rotates q_m by m * theta and k_n by n * theta; the dot product of two rotated "
            "vectors only sees the difference of the angles, (m - n) * theta (Su et al. 2021).",
            worked=True,
        ),
        "b1": QuizQuestion(
            "ALiBi slopes (first head, last head) of a model with 8 heads, a tuple of 2 numbers",
            lambda: (float(alibi_slopes(8)[0]), float(alibi_slopes(8)[-1])),
            "For 8 heads the slopes are the geometric sequence 2^(-8/8), 2^(-16/8), ..., 2^(-64/8): "
            "the first head has the steepest distance penalty, 1/2, the last the gentlest, "
            "1/256 (Press et al. 2022; Zone 3a, section 5).",
        ),
        "b2": QuizQuestion(
            "softmax([1, 2, -inf, 3]), an array of 4 numbers",
            lambda: softmax(np.array([1.0, 2.0, -np.inf, 3.0])),
            "e^(-inf) = 0: the masked entry gets exactly weight 0, and the three others share the "
            "whole weight, e^s / (e^1 + e^2 + e^3), as softmax([1, 2, 3]) would give them "
            "(Zone 3a, section 7).",
        ),
        "b3": QuizQuestion(
            "5 tokens are in the KV cache and 1 new token arrives (6 keys, the new one last); "
            "which keys may the new query attend to: (a) key 0 only, (b) all 6, (c) the 5 cached "
            "keys but not its own, (d) only its own; a letter",
            _causal_choice,
            "Causal masks are bottom-right aligned: query i sees keys j <= i + (N_k - N_q). The new "
            "query is the last token, so it sees every cached key and itself: causal_mask(1, 6) is "
            "all True. np.tril(np.ones((1, 6))) would wrongly keep key 0 only (Zones 3a and 4).",
        ),
    },
    "quiz_efficiency": {
        "c0": QuizQuestion(
            "the worked example: while generating token t + 1, which needs memory that grows with "
            "t: (a) attention with a KV cache, (b) a Mamba block, (c) both, (d) neither; a letter",
            lambda: "a",
            "The KV cache keeps a key and a value for every earlier token, so it grows linearly "
            "with t. Mamba keeps a fixed-size state (d_inner x d_state, plus a short convolution "
            "window) whatever t is (Zones 3b and 4).",
            worked=True,
        ),
        "c1": QuizQuestion(
            "bytes of the KV cache of GPT-2 small (12 layers, 12 heads of width 64) for 1024 "
            "tokens, batch 1, fp16, one number",
            lambda: _model_kv_bytes("GPT-2 small", 1024),
            "Every layer keeps a key AND a value vector per head and token: 2 x 12 layers x 12 "
            "heads x 64 x 1024 tokens x 2 bytes (fp16) (Zone 3b, section 5).",
            exact=True,
        ),
        "c2": QuizQuestion(
            "bytes of the KV cache of Llama-3.1-8B (32 layers, 32 query heads, 8 key/value heads "
            "of width 128, no sliding window) for 32768 tokens, batch 1, fp16, one number",
            lambda: _model_kv_bytes("Llama-3.1-8B", 32768),
            "With grouped-query attention only the 8 key/value heads are cached, not the 32 query "
            "heads: 2 x 32 layers x 8 kv heads x 128 x 32768 tokens x 2 bytes, a quarter of what "
            "multi-head attention would need. Every one of the 32768 tokens is kept: Llama-3.1-8B "
            "has no sliding window (Ainslie et al. 2023; Zone 3b, section 5).",
            exact=True,
        ),
        "c3": QuizQuestion(
            "HBM traffic of standard attention divided by FlashAttention's, for one head with "
            "N = 8192, d = 64, 192 KiB of SRAM, fp16, one number",
            lambda: _hbm_ratio(8192, 64, 192 * 1024),
            "Standard attention moves 4Nd + 4N^2 elements; FlashAttention 3Nd + 2N + T_c (3Nd + 4N) "
            "elements, with M = 192 KiB / 2 bytes elements of SRAM, B_c = ceil(M / 4d) keys per "
            "block and T_c = ceil(N / B_c) blocks. The ratio approaches M / (3 d^2) only as N grows "
            "(Dao et al. 2022; Zone 3b, section 1).",
        ),
        "c4": QuizQuestion(
            "Chinchilla-optimal number of training TOKENS for a budget of 1e21 FLOPs, one number",
            lambda: chinchilla_optimal(1e21)[1],
            "C = 6ND and D = 20N (Hoffmann et al. 2022) give 6 * 20 * N^2 = C, so N = sqrt(C / 120) "
            "parameters and D = 20N tokens; the question asks for D, not N (Zone 5).",
        ),
    },
}


def _quiz_answer(part: str, question: str):
    questions = QUIZ[part]
    if question not in questions:
        raise ValueError(
            f"question={question!r} is not a question of {part}; known: {sorted(questions)}"
        )
    return questions[question].answer()


def quiz_mechanism(question: str) -> object:
    """The answer to question `question` ("a0" ... "a3") of part A of the Zone 6 quiz (see QUIZ)."""
    return _quiz_answer("quiz_mechanism", question)


def quiz_order(question: str) -> object:
    """The answer to question `question` ("b0" ... "b3") of part B of the Zone 6 quiz (see QUIZ)."""
    return _quiz_answer("quiz_order", question)


def quiz_efficiency(question: str) -> object:
    """The answer to question `question` ("c0" ... "c4") of part C of the Zone 6 quiz (see QUIZ)."""
    return _quiz_answer("quiz_efficiency", question)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _form(value) -> str:
    """What kind of answer `value` is, in words: 'a letter', 'a number', 'a tuple of 2 numbers'..."""
    if isinstance(value, str):
        return "a letter" if len(value.strip()) == 1 and value.strip().isalpha() else "a string"
    if _is_number(value) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return "not a number (NaN)" if math.isnan(float(value)) else "a number"
    if isinstance(value, (tuple, list)):
        kind = type(value).__name__
        if all(_is_number(v) for v in value):
            return f"a {kind} of {len(value)} numbers"
        return f"a {kind} of {len(value)} items"
    if isinstance(value, np.ndarray):
        return (
            f"an array of {value.size} numbers"
            if value.ndim == 1
            else f"an array of shape {value.shape}"
        )
    return f"a {type(value).__name__}"


def _accepted_forms(expected: str) -> set[str]:
    """The forms the checker accepts for an answer of form `expected` (see grader_tests.compare)."""
    words = expected.split()
    if expected.startswith("a tuple of") and words[-1] == "numbers":  # a tuple or a list
        return {expected, f"a list of {words[3]} numbers"}
    if expected.startswith("an array of") and words[-1] == "numbers":  # any sequence of numbers
        return {expected, f"a list of {words[3]} numbers", f"a tuple of {words[3]} numbers"}
    return {expected}


def _describe_expected(expected: str) -> str:
    if expected.startswith("an array of") and expected.endswith("numbers"):
        return expected.replace("an array", "an array (or a list)")
    return expected


def _status_text(status: str) -> str:
    """A status of quiz_form_report ("ok", "wrong form", ...) in the reader's language."""
    if status.startswith("missing (") and status.endswith(")"):
        return tr("missing ({error})", error=status[len("missing (") : -1])
    shown = {
        "ok": tr("ok"),
        "wrong form": tr("wrong form"),
        "not answered yet": tr("not answered yet"),
    }
    return shown.get(status, status)


def quiz_form_report(part: str, fn: Callable[[str], object]) -> list[dict]:
    """Ask `fn` every question of quiz `part` and print whether each answer has the right FORM.

    Says "missing" (the function raised), or which form was expected (a letter, a number,
    a tuple of k numbers, an array of k numbers) — never whether the answer is correct.
    Returns one row per question: {"question", "status", "form", "expected_form"}.
    """
    if part not in QUIZ:
        raise ValueError(f"part={part!r} is not a part of the quiz; known: {sorted(QUIZ)}")
    rows = []
    for question, entry in QUIZ[part].items():
        expected_form = _form(entry.answer())
        accepted = _accepted_forms(expected_form)
        try:
            got = fn(question)
        except NotImplementedError:
            rows.append(
                {
                    "question": question,
                    "status": "not answered yet",
                    "form": None,
                    "expected_form": _describe_expected(expected_form),
                }
            )
            continue
        except Exception as exc:  # a KeyError for a missing answer, or a bug
            rows.append(
                {
                    "question": question,
                    "status": f"missing ({type(exc).__name__}: {exc})",
                    "form": None,
                    "expected_form": _describe_expected(expected_form),
                }
            )
            continue
        form = _form(got)
        status = "ok" if form in accepted else "wrong form"
        rows.append(
            {
                "question": question,
                "status": status,
                "form": form,
                "expected_form": _describe_expected(expected_form),
            }
        )
    answered = sum(r["status"] == "ok" for r in rows)
    print(
        tr(
            "{part}: {answered} of {total} answers have the expected form",
            part=part,
            answered=answered,
            total=len(rows),
        )
    )
    for r in rows:
        detail = (
            ""
            if r["status"] == "ok"
            else tr("   expected {form}", form=r["expected_form"])
            + (tr(", got {form}", form=r["form"]) if r["form"] else "")
        )
        print(f"  {r['question']}: {_status_text(r['status'])}{detail}")
    return rows
