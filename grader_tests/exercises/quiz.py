"""Zone 6 exercises: the three parts of the self-check quiz (quiz_mechanism, quiz_order,
quiz_efficiency).

Each part is a function question id -> answer. The visible case is the worked example whose
answer the notebook gives, so learners see how the checker reads their answers; the hidden
cases are the real questions, one case per question, labelled with the question. When an
answer is wrong the message names the question, shows the expected answer and explains it
(QUIZ's explanation via `diagnose`, or the hint of a catalogued wrong answer): that is the
feedback nbgrader's generate_feedback hands back.
"""

from __future__ import annotations

import math

import attnlab
import numpy as np
from attnlab.i18n import tr

from ..registry import Case, Exercise, Mutant, register

QUIZ = attnlab.QUIZ


def _cases(part: str):
    def cases():
        return [
            Case(
                f"{question}: {entry.label}",
                (question,),
                hidden=not entry.worked,
                rtol=0.0 if entry.exact else None,
                atol=0.0 if entry.exact else None,
            )
            for question, entry in QUIZ[part].items()
        ]

    return cases


def _explain(part: str):
    def diagnose(case, got, expected):
        question = case.args[0]
        return tr(
            "{question}, the right answer explained: {explanation}",
            question=question,
            explanation=tr(QUIZ[part][question].explanation),
        )

    return diagnose


def _answers_with(part: str, **wrong):
    """The reference answers of `part`, except the answers given in `wrong` (a typical mistake)."""
    reference = getattr(attnlab, part)

    def answers(question):
        if question in wrong:
            return wrong[question]
        return reference(question)

    return answers


# ---------------------------------------------------------------- part A: the mechanism

D = 768

register(
    Exercise(
        name="quiz_mechanism",
        zone="06_review",
        reference=attnlab.quiz_mechanism,
        points=3,
        cases=_cases("quiz_mechanism"),
        rtol=attnlab.QUIZ_RTOL,
        atol=1e-9,
        diagnose=_explain("quiz_mechanism"),
        description="quiz part A: path length, Var(q . k), parameters of multi-head attention",
        mutants=[
            Mutant(
                "path length counted in tokens",
                _answers_with("quiz_mechanism", a1=(1000, 1)),
                "a1: the path length counts the steps between the two tokens, not the tokens: an "
                "RNN needs N - 1 = 999 steps from token 1 to token 1000; attention needs 1.",
            ),
            Mutant(
                "standard deviation instead of variance",
                _answers_with("quiz_mechanism", a2=(8.0, 1.0)),
                "a2: 8 = sqrt(64) is the standard deviation of q . k. Its variance is the sum of "
                "the d_k = 64 variances of the products q_i k_i, i.e. 64.",
            ),
            Mutant(
                "scaled variance not divided",
                _answers_with("quiz_mechanism", a2=(64.0, 64.0)),
                "a2: dividing the score by sqrt(d_k) divides its variance by d_k: "
                "Var(q . k / 8) = 64 / 64 = 1. That is the point of the scale.",
            ),
            Mutant(
                "scaled variance divided by sqrt(d_k)",
                _answers_with("quiz_mechanism", a2=(64.0, 8.0)),
                "a2: Var(cX) = c^2 Var(X): dividing q . k by sqrt(64) = 8 divides the variance by "
                "64, not by 8, so the scaled score has variance 1.",
            ),
            Mutant(
                "no biases",
                _answers_with("quiz_mechanism", a3=4 * D * D),
                "a3: 4 * 768^2 counts the weights only; GPT-2's four projections also have a bias "
                "of 768 each: 4 * 768^2 + 4 * 768.",
            ),
            Mutant(
                "forgot the output projection",
                _answers_with("quiz_mechanism", a3=3 * D * D + 3 * D),
                "a3: W_Q, W_K and W_V are not all: the concatenated heads go through the output "
                "projection W_O (768 x 768 plus a bias), so 4 * 768^2 + 4 * 768.",
            ),
            Mutant(
                "full-width matrices per head",
                _answers_with("quiz_mechanism", a3=12 * (4 * D * D + 4 * D)),
                "a3: the heads do not each get their own 768 x 768 matrices; they split the "
                "columns of one W_Q, W_K, W_V (64 each), so the count does not depend on the "
                "number of heads: 4 * 768^2 + 4 * 768.",
            ),
        ],
    )
)

# ---------------------------------------------------------------- part B: order and masks

SLOPES_FROM_ZERO = (1.0, 2.0 ** (-7))  # 2^(-8 i / n) with i counted from 0


register(
    Exercise(
        name="quiz_order",
        zone="06_review",
        reference=attnlab.quiz_order,
        points=3,
        cases=_cases("quiz_order"),
        rtol=attnlab.QUIZ_RTOL,
        atol=1e-9,
        diagnose=_explain("quiz_order"),
        description="quiz part B: ALiBi slopes, a masked softmax, causal masks with a KV cache",
        mutants=[
            Mutant(
                "ALiBi slopes in reverse order",
                _answers_with("quiz_order", b1=(2.0**-8, 0.5)),
                "b1: the slopes are in decreasing order: the first head gets 2^(-8/8) = 1/2 (the "
                "most local head), the last 2^(-8) = 1/256.",
            ),
            Mutant(
                "ALiBi exponent counted from zero",
                _answers_with("quiz_order", b1=SLOPES_FROM_ZERO),
                "b1: the sequence starts at 2^(-8/n), not at 2^0 = 1: head i (from 1 to n) has "
                "slope 2^(-8 i / n), so 1/2 for the first of 8 heads and 1/256 for the last.",
            ),
            Mutant(
                "masked score taken as 0",
                _answers_with("quiz_order", b2=attnlab.softmax(np.array([1.0, 2.0, 0.0, 3.0]))),
                "b2: a masked score is -inf, not 0: e^(-inf) = 0, so the masked entry gets weight "
                "exactly 0 and the other three share all of it.",
            ),
            Mutant(
                "masked entry dropped",
                _answers_with("quiz_order", b2=attnlab.softmax(np.array([1.0, 2.0, 3.0]))),
                "b2: keep all 4 entries: the masked one stays in place with weight 0, the others "
                "are the three weights you found.",
            ),
            Mutant(
                "causal mask aligned top-left",
                _answers_with("quiz_order", b3="a"),
                "b3: that is np.tril on a 1 x 6 score matrix, aligned top-left. Causal masks are "
                "bottom-right aligned: the one new query is the last token, so it sees all 6 keys, "
                "its own included.",
            ),
            Mutant(
                "a query may not see itself",
                _answers_with("quiz_order", b3="c"),
                "b3: a token may attend to itself (j <= i, not j < i): the new query sees the 5 "
                "cached keys and its own, all 6.",
            ),
        ],
    )
)

# ---------------------------------------------------------------- part C: efficiency and scale

GPT2_KV = attnlab.kv_cache_bytes(12, 12, 64, 1024)
SRAM_ELEMENTS = 192 * 1024 // 2


def _chinchilla_forward_only(flops, tokens_per_param=20.0):
    """The mistake of counting C = 2ND (the forward pass only) instead of 6ND."""
    n_params = math.sqrt(flops / (2 * tokens_per_param))
    return tokens_per_param * n_params


register(
    Exercise(
        name="quiz_efficiency",
        zone="06_review",
        reference=attnlab.quiz_efficiency,
        points=4,
        cases=_cases("quiz_efficiency"),
        rtol=attnlab.QUIZ_RTOL,
        atol=1e-9,
        diagnose=_explain("quiz_efficiency"),
        description="quiz part C: KV cache sizes, FlashAttention's HBM traffic, Chinchilla",
        mutants=[
            Mutant(
                "only the keys cached",
                _answers_with("quiz_efficiency", c1=GPT2_KV // 2),
                "c1: the cache holds keys AND values, hence the factor 2: "
                "2 x 12 layers x 12 heads x 64 x 1024 tokens x 2 bytes.",
            ),
            Mutant(
                "fp32 instead of fp16",
                _answers_with("quiz_efficiency", c1=GPT2_KV * 2),
                "c1: fp16 takes 2 bytes per number, not 4.",
            ),
            Mutant(
                "query heads instead of key/value heads",
                _answers_with("quiz_efficiency", c2=attnlab.kv_cache_bytes(32, 32, 128, 32768)),
                "c2: with grouped-query attention the cache holds the 8 key/value heads only; the "
                "32 query heads are never cached. Use n_kv_heads = 8.",
            ),
            Mutant(
                "ratio upside down",
                _answers_with("quiz_efficiency", c3=1 / attnlab.quiz_efficiency("c3")),
                "c3: the ratio is standard / FlashAttention, which is larger than 1: "
                "FlashAttention moves fewer bytes.",
            ),
            Mutant(
                "the large-N limit instead of the count",
                _answers_with("quiz_efficiency", c3=SRAM_ELEMENTS / (3 * 64**2)),
                "c3: M / (3 d^2) is the limit of the ratio as N grows; at N = 8192 count both "
                "totals with the block count T_c = ceil(N / B_c) (attnlab.hbm_traffic does it).",
            ),
            Mutant(
                "parameters instead of tokens",
                _answers_with("quiz_efficiency", c4=attnlab.chinchilla_optimal(1e21)[0]),
                "c4: that is N, the number of parameters. The question asks for the training "
                "tokens D = 20 N.",
            ),
            Mutant(
                "C = 2ND",
                _answers_with("quiz_efficiency", c4=_chinchilla_forward_only(1e21)),
                "c4: training costs C = 6ND FLOPs (2 per weight and token forward, 4 backward), "
                "not 2ND: N = sqrt(C / (6 x 20)), D = 20 N.",
            ),
        ],
    )
)
