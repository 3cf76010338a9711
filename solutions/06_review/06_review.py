# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% intro [markdown]
# # Zone 6 — Review: what stuck
#
# *Lecture 14: Attention — leaving the fossils behind.* About 30 minutes.
#
# You started with three tokens attending to each other and ended with FlashAttention kernels,
# a Mamba block and scaling laws. This zone puts the whole lecture on one page, then checks
# what stuck:
#
# 1. **The lecture on one page** — a map of every key idea, the zone that taught it and the
#    `attnlab` function that implements it, and the same as a table with links.
# 2. **The story in seven threads** — the lecture retold in a few paragraphs.
# 3. **A self-check quiz** in three parts (10 points, autograded): numbers you can compute with
#    the library you now know, and a few multiple-choice questions.
# 4. **Two free answers** (6 points, graded by a person): explain it in your own words.
# 5. **What comes next** — where efficient attention, state space models and hybrids go from here.

# %% setup
# Setup (locked): the course library and the graders.
import numpy as np
from IPython.display import Markdown, display

import attnlab
from attnlab import tr
import grader_tests  # imported first so the checks bind their tools early
from grader_tests import check

np.set_printoptions(precision=4, suppress=True)

# %% map-md [markdown]
# ## 1. The lecture on one page
#
# Read the map like a metro map. The **columns** are the zones, left to right. Each coloured
# **line** is a thread that runs through several zones — the attention mechanism, order,
# the Transformer block, speed, memory, recurrence, scale. At each stop: the zone's key ideas
# on that thread (bold) and the `attnlab` functions that implement them (in colour).
#
# Some lines are long. The recurrence thread starts with the fossils (the RNN's path length in
# Zone 1), loses a race against attention (Zone 2), and comes back as state space models and
# Mamba (Zones 3b–5). In JupyterLab, pick a **thread** in the menu to see it alone, with its
# ideas printed zone by zone ("all threads" shows the whole map).

# %% map
attnlab.lecture_map_explorer(thread="all")

# %% table-md [markdown]
# ### The same, as a table
#
# Every key idea, the `attnlab` functions behind it, and a link to the zone that teaches it.
# ✎ marks the functions you wrote yourself as graded exercises (taken from the grader's
# registry when this cell runs). Under the table: a check that every function named on the map
# exists in `attnlab`, and what you built, zone by zone.

# %% table
display(Markdown(attnlab.lecture_table_markdown(exercises=grader_tests.REGISTRY)))

rows = attnlab.lecture_map()
named = sorted({name for row in rows for name in row["functions"]})
missing = [name for name in named if not hasattr(attnlab, name)]
print(tr("{ideas} key ideas, {functions} attnlab functions named; missing from attnlab: {missing}",
         ideas=len(rows), functions=len(named), missing=missing or tr("none")))

first_zone = {}  # exercise -> the zone that teaches it first
for row in rows:
    for name in row["functions"]:
        if name in grader_tests.REGISTRY:
            first_zone.setdefault(name, row["title"])
print(tr("\nthe functions you wrote, zone by zone:"))
for title in dict.fromkeys(first_zone.values()):
    names = [name for name, zone in first_zone.items() if zone == title]
    points = sum(grader_tests.REGISTRY[name].points for name in names)
    print(tr("  {title:<26s} {points:>2d} points: {names}", title=title, points=points, names=", ".join(names)))
total = sum(grader_tests.REGISTRY[name].points for name in first_zone)
print(tr("  {label:<26s} {points:>2d} points in {count} graded functions",
         label=tr("in all"), points=total, count=len(first_zone)))

# %% story-md [markdown]
# ## 2. The story in seven threads
#
# **The mechanism.** Each token asks a question (its query $q_i = x_i W_Q$), offers an answer
# key ($k_j = x_j W_K$) and a content ($v_j = x_j W_V$). Its output is the average of the
# contents, weighted by how well its question matches each key:
# $\operatorname{softmax}(QK^\top/\sqrt{d_k})\,V$. The $\sqrt{d_k}$ is there because a dot product
# of $d_k$ independent terms has variance proportional to $d_k$; unscaled, the softmax saturates
# and its Jacobian $\operatorname{diag}(a) - aa^\top$ kills the gradient. Multi-head attention
# splits the same $4d^2$ parameters into $H$ low-rank pieces, each with its own pattern.
#
# **Order.** Attention sees a set: permute the tokens and the outputs permute with them.
# Positions must be added — sinusoidal encodings, RoPE (rotations, so that scores depend only on
# the offset), ALiBi (a penalty growing with distance). Masks decide who may see whom: a causal
# mask puts $-\infty$ on the future, and aligns the last query with the last key.
#
# **The block.** Attention, then a position-wise feed-forward network, each wrapped in a
# residual connection and a normalisation (Pre-LN keeps the gradient tame with depth). Stack
# blocks, add embeddings, and you have GPT-2 — you matched Hugging Face's, logit for logit.
#
# **Faster.** Full attention is $O(N^2)$ in time and memory. FlashAttention keeps the arithmetic
# and the result but moves far less memory: tiles in SRAM and an online softmax. Sparse patterns
# compute fewer scores (at the price of more hops between tokens); linear attention and
# Performer change the similarity so associativity makes it $O(N)$.
#
# **Memory.** Generating text keeps a key and a value per layer, head and token: the KV cache,
# which grows with the context. Sharing key/value heads (MQA, GQA), grouping similar heads
# and pruning keys that will receive little attention shrink it.
#
# **Recurrence.** The fossils return. A state space model is a linear recurrence that is also a
# convolution; Mamba makes its step $\Delta$ and its $B, C$ depend on the input, so it can choose
# what to keep in a state of fixed size. A parallel scan trains it in $O(\log L)$ depth. The
# price of the fixed state: recalling an exact earlier token gets harder as the context grows.
#
# **Scale.** Loss falls as a power law in parameters and data; for a compute budget
# $C \approx 6ND$, Chinchilla's rule spends it on about 20 tokens per parameter. And attention
# can *learn in context*: one linear-attention layer can perform a gradient-descent step on the
# examples in its prompt.

# %% quiz-md [markdown]
# ## 3. Self-check quiz (10 points)
#
# Three parts, each a function that takes a question id and returns your answer. The natural
# way to write it is a dictionary lookup, which the cells below start for you:
#
# ```python
# def quiz_mechanism(question):
#     answers = {"a0": ...}     # the worked example, already filled in
#     answers["a1"] = ...       # your answers
#     return answers[question]
# ```
#
# **Forms.** A number, a tuple of numbers such as `(3, 1.5)`, an array or list of numbers, or
# the lower-case letter of a multiple-choice option such as `"c"`.
#
# **Precision.** Counts (steps, parameters, bytes) must be exact integers. Other numbers are
# accepted within 0.5 %: three significant digits are enough.
#
# **Tools.** Compute by hand, or use any `attnlab` function as a calculator (`attnlab.softmax`,
# `attnlab.kv_cache_bytes`, `attnlab.hbm_traffic`, …), except the quiz functions themselves:
# a function that calls `attnlab.quiz_mechanism` and its siblings is refused.
#
# **Grading.** The visible check runs only the worked example of each part, to show you that
# the mechanics work. Your other answers are checked when your notebook is graded; for each
# wrong answer the feedback names the question, gives the right answer and explains it. Each
# part is all or nothing (3, 3 and 4 points), so check your work. The cell after part C tells
# you whether every answer has the expected form, without telling you whether it is right.

# %% part-a-md [markdown]
# ### Part A — the mechanism (Zones 0–3a, 3 points)
#
# **a0 (worked example).** What is $\operatorname{softmax}([0, \ln 3])$?
#
# *Answer.* The weights are proportional to $e^0 = 1$ and $e^{\ln 3} = 3$, so they are
# $\tfrac14$ and $\tfrac34$: a score difference of $\ln 3$ is a weight ratio of 3. Already in
# the cell below as `np.array([0.25, 0.75])`; `attnlab.softmax(np.log([1.0, 3.0]))` would count
# as well.
#
# **a1.** The *maximum path length* is the number of steps (recurrent steps or layers) a signal
# crosses to get from one token to another. Over $N = 1000$ tokens, from the first to the last:
# what is it for an RNN, and for one self-attention layer? Answer the tuple `(rnn, attention)`.
#
# **a2.** Queries and keys have $d_k = 64$ independent entries of mean 0 and variance 1. Give
# the tuple $\big(\operatorname{Var}(q\cdot k),\ \operatorname{Var}(q\cdot k/\sqrt{d_k})\big)$.
#
# **a3.** How many parameters does one multi-head attention layer of GPT-2 small have:
# $d_{\text{model}} = 768$, 12 heads, the projections $W_Q, W_K, W_V, W_O$ each with a bias?
# One integer.

# %%
def quiz_mechanism(question):
    """Your answer to question `question` ("a0" ... "a3") of part A."""
    answers = {
        "a0": np.array([0.25, 0.75]),  # the worked example
    }
    ### BEGIN SOLUTION
    rnn, _, _, attention = attnlab.fossil_table(1000)  # rows: RNN, CNN, dilated CNN, attention
    answers["a1"] = (rnn["path"], attention["path"])  # (N - 1, 1)
    answers["a2"] = (attnlab.score_variance(64), attnlab.score_variance(64, scaled=True))
    answers["a3"] = 4 * 768**2 + 4 * 768  # four 768 x 768 matrices and four biases, any number of heads
    ### END SOLUTION
    return answers[question]


# %%
# Visible: the worked example only. The other answers are graded when you submit.
check("quiz_mechanism", quiz_mechanism)
### BEGIN HIDDEN TESTS
check("quiz_mechanism", quiz_mechanism, hidden=True)
### END HIDDEN TESTS

# %% part-b-md [markdown]
# ### Part B — order and masks (Zones 2–4, 3 points)
#
# **b0 (worked example).** After RoPE, the score $q_m \cdot k_n$ between a query at position $m$
# and a key at position $n$ depends on the positions only through
# (a) $m$, (b) $m - n$, (c) $m + n$, (d) neither.
#
# *Answer:* **(b)**. RoPE rotates $q_m$ by the angles $m\theta_i$ and $k_n$ by $n\theta_i$; the dot
# product of two rotated vectors only sees the difference of their angles, $(m - n)\theta_i$.
# Already in the cell as `"b"`.
#
# **b1.** A model uses ALiBi with 8 heads. Give the tuple `(slope of the first head, slope of the
# last head)`.
#
# **b2.** Give all four weights of $\operatorname{softmax}([1, 2, -\infty, 3])$, as an array or a list.
#
# **b3.** A decoder has 5 tokens in its KV cache, and 1 new token arrives: 6 keys in all, the new
# token's own key last. Which keys may the new token's query attend to?
# (a) key 0 only, (b) all 6, (c) the 5 cached keys but not its own, (d) only its own.

# %%
def quiz_order(question):
    """Your answer to question `question` ("b0" ... "b3") of part B."""
    answers = {
        "b0": "b",  # the worked example
    }
    ### BEGIN SOLUTION
    slopes = attnlab.alibi_slopes(8)  # 2^(-8/8), 2^(-16/8), ..., 2^(-64/8)
    answers["b1"] = (slopes[0], slopes[-1])
    answers["b2"] = attnlab.softmax(np.array([1.0, 2.0, -np.inf, 3.0]))
    answers["b3"] = "b"  # bottom-right alignment: the newest query sees every key, itself included
    ### END SOLUTION
    return answers[question]


# %%
# Visible: the worked example only. The other answers are graded when you submit.
check("quiz_order", quiz_order)
### BEGIN HIDDEN TESTS
check("quiz_order", quiz_order, hidden=True)
### END HIDDEN TESTS

# %% part-c-md [markdown]
# ### Part C — efficiency and scale (Zones 3b–5, 4 points)
#
# **c0 (worked example).** While a model generates token $t + 1$, which needs memory that grows
# with $t$: (a) attention with a KV cache, (b) a Mamba block, (c) both, (d) neither?
#
# *Answer:* **(a)**. The KV cache keeps a key and a value for every earlier token, so it grows
# linearly with $t$; Mamba carries a state of fixed size ($d_{\text{inner}} \times d_{\text{state}}$
# plus a short convolution window), whatever $t$ is. Already in the cell as `"a"`.
#
# **c1.** How many bytes does the KV cache of GPT-2 small take (12 layers, 12 heads of width 64,
# every head with its own keys and values) for 1024 tokens, batch 1, in fp16? One integer.
#
# **c2.** The same for Llama-3.1-8B (32 layers, 32 query heads and 8 key/value heads of width
# 128, grouped-query attention, no sliding window: every token stays in the cache) for 32 768
# tokens, batch 1, fp16. One integer.
#
# **c3.** One attention head with $N = 8192$ tokens and $d = 64$, in fp16, on a GPU with 192 KiB
# of SRAM ($192 \times 1024$ bytes). By what factor is the HBM traffic of standard attention
# larger than FlashAttention's (standard bytes / FlashAttention bytes, counted as in Zone 3b)?
#
# **c4.** You have a training budget of $10^{21}$ FLOPs. By the Chinchilla rule of thumb, on how
# many **tokens** should you train?

# %%
def quiz_efficiency(question):
    """Your answer to question `question` ("c0" ... "c4") of part C."""
    answers = {
        "c0": "a",  # the worked example
    }
    ### BEGIN SOLUTION
    answers["c1"] = attnlab.kv_cache_bytes(n_layers=12, n_kv_heads=12, head_dim=64, seq_len=1024)
    answers["c2"] = attnlab.kv_cache_bytes(n_layers=32, n_kv_heads=8, head_dim=128, seq_len=32768)
    standard_bytes, flash_bytes = attnlab.hbm_traffic(8192, 64, sram_bytes=192 * 1024)
    answers["c3"] = standard_bytes / flash_bytes
    _, n_tokens = attnlab.chinchilla_optimal(1e21)  # (N, D) with C = 6 N D and D = 20 N
    answers["c4"] = n_tokens
    ### END SOLUTION
    return answers[question]


# %%
# Visible: the worked example only. The other answers are graded when you submit.
check("quiz_efficiency", quiz_efficiency)
### BEGIN HIDDEN TESTS
check("quiz_efficiency", quiz_efficiency, hidden=True)
### END HIDDEN TESTS

# %% forms-md [markdown]
# ### Before you submit: is every answer there, in the expected form?
#
# This asks your three functions every question and reports, for each, whether the answer is
# missing or has the wrong form (a letter where a number was expected, a tuple of the wrong
# length, …). It does **not** say whether an answer is right.

# %% forms
for part, answer_fn in [("quiz_mechanism", quiz_mechanism), ("quiz_order", quiz_order),
                        ("quiz_efficiency", quiz_efficiency)]:
    attnlab.quiz_form_report(part, answer_fn)

# %% free-md [markdown]
# ## 4. Two free answers (6 points)
#
# Write for a colleague who knows machine learning but has not taken this lecture. Be concrete:
# name mechanisms, and use the numbers you computed or measured in the course where they help.
#
# ### Free answer 1 (3 points): attention, Mamba, or both?
#
# A team builds two products: **(i)** an assistant that listens to hours of meeting audio on a
# phone and keeps a running summary, and **(ii)** a code assistant that must quote, exactly,
# lines from the 200 000 tokens of a repository placed in its prompt. For each, would you choose
# a Transformer, a Mamba model, or a hybrid of the two? Justify in 5–8 sentences.

# %% free-answer-mamba [markdown] points=3
# ### BEGIN SOLUTION
# **Model answer.** (i) Mamba, or a hybrid with very few attention layers. A Transformer must keep
# a KV cache of $2 \cdot \text{layers} \cdot H_{kv} \cdot d \cdot t \cdot \text{bytes}$, which grows
# without bound as the audio goes on and does not fit a phone after hours; each new token also
# costs $O(t)$ attention work. Mamba carries a fixed-size state and does $O(1)$ work per token, and
# a running summary only needs a compressed gist of the past, which is exactly what its selective
# state is trained to keep. (ii) A Transformer or a hybrid with enough attention layers. Quoting
# exact lines means retrieving arbitrary earlier tokens verbatim; attention reaches any cached token
# in one step (path length 1), while a fixed-size state must compress 200 000 tokens and cannot keep
# them all — SSMs are measurably worse at copying long strings and retrieving from their context
# (Jelassi et al. 2024; Waleffe et al. 2024). The price is memory: with GQA and FlashAttention the
# cache and the prefill become affordable. A hybrid (e.g. Jamba: mostly Mamba layers plus a few attention layers)
# gets most of the recall for a fraction of the cache.
#
# **Rubric (3 points).**
# - 1 point — (i): a fixed-size state / constant memory and $O(1)$ work per generated token for
#   Mamba, against a KV cache (or $O(t)$ per-token cost) that grows with the length for attention.
# - 1 point — (ii): exact retrieval or copying of arbitrary earlier tokens needs attention (direct
#   access to every cached token, path length 1); a fixed-size state must compress the context and
#   loses exact details. Evidence from the course or the literature welcome.
# - 1 point — a sound overall judgement: names the trade-off (memory and speed vs exact recall), and
#   either proposes a hybrid with a reason, or mentions what makes attention affordable (GQA / MQA,
#   FlashAttention, cache compression). Half a point for a choice without a reason.
# ### END SOLUTION

# %% free-md-2 [markdown]
# ### Free answer 2 (3 points): why FlashAttention is exact
#
# A colleague says: "FlashAttention is fast because it approximates attention, like Performer."
# Explain to them in 5–8 sentences why FlashAttention computes **exactly** the same result as
# standard attention (up to floating-point rounding), and where its speed comes from instead.

# %% free-answer-flash [markdown] points=3
# ### BEGIN SOLUTION
# **Model answer.** FlashAttention computes every score $q_i \cdot k_j$ and uses them all; it only
# changes the *order* in which the softmax and the weighted sum are evaluated. For each query it
# keeps three running quantities over the key blocks seen so far: the maximum score $m$, the sum
# $\ell = \sum_j e^{s_j - m}$ and the unnormalised output $\mathrm{acc} = \sum_j e^{s_j - m} v_j$.
# When a new block arrives with its own maximum, the old sums are rescaled by $e^{m_{\text{old}} - m}$
# — an exact identity, since $e^{m_{\text{old}} - m} e^{s_j - m_{\text{old}}} = e^{s_j - m}$ — so after
# the last block $\mathrm{acc}/\ell$ equals $\operatorname{softmax}(s)\,V$ exactly, the shift
# cancelling. Nothing is dropped or sampled, unlike Performer, whose random features estimate
# $e^{q \cdot k}$ with an error that shrinks only as the number of features grows. Results differ
# from standard attention only by rounding, because floating-point additions happen in a different
# order (the differences printed in Zones 3b and 4 were at the level of rounding). The speed comes
# from memory traffic, not from fewer FLOPs: the $N \times N$ matrices $S$ and $P$ are never written
# to HBM, tiles of Q, K, V stay in fast SRAM, and the kernels are fused — standard attention moves
# $\Theta(N^2)$ elements, FlashAttention $\Theta(N^2 d^2 / M)$, and its extra memory is $O(N)$
# instead of $O(N^2)$.
#
# **Rubric (3 points).**
# - 1 point — the online softmax: running max and running sum (and output), rescaled by
#   $e^{m_{\text{old}} - m_{\text{new}}}$ when the max changes, which makes the blockwise result
#   equal to the full softmax (the identity or an equivalent argument is stated).
# - 1 point — the contrast with approximations: all $N^2$ scores are computed, nothing is sampled,
#   dropped or replaced by a kernel feature map; differences are floating-point rounding only
#   (a measured number from the course is a plus).
# - 1 point — where the speed comes from: attention is memory-bound; FlashAttention avoids writing
#   and reading the $N \times N$ matrices in HBM (tiling in SRAM, fused kernels), same FLOPs (or
#   slightly more for the backward recomputation), $O(N)$ extra memory.
# ### END SOLUTION

# %% next-md [markdown]
# ## 5. What comes next
#
# The lecture stopped where the research is moving fastest. Three directions, with the papers to
# read first; each builds on something you have written in this course.
#
# **Efficient attention, in depth** (you wrote the tiled forward and the online softmax merge):
# - *FlashAttention-2* (Dao 2023, arXiv:2307.08691) — better work partitioning: parallelism over
#   the sequence as well as batch and heads, fewer non-matmul FLOPs; about 2× faster than the first
#   version, 50–73 % of the A100's peak.
# - *FlashAttention-3* (Shah, Bikshandi, Zhang, Thakkar, Ramani and Dao 2024, arXiv:2407.08608) —
#   Hopper GPUs: overlapping data movement and matmuls (warp specialisation, TMA), interleaving
#   softmax with matmuls, and FP8 with block quantisation; 1.5–2× over FlashAttention-2 on H100.
# - *Ring Attention* (Liu, Zaharia and Abbeel 2023, arXiv:2310.01889) — the online softmax merge
#   across devices: each GPU holds a block of keys and values and passes it round a ring, for
#   contexts of millions of tokens.
# - *PagedAttention / vLLM* (Kwon et al. 2023, arXiv:2309.06180) — the KV cache stored in pages,
#   like virtual memory, so that a serving system wastes almost none of it.
# - *Multi-head latent attention* (DeepSeek-V2, DeepSeek-AI 2024, arXiv:2405.04434) — cache one
#   low-rank latent per token instead of per-head keys and values: another way past GQA.
# - *StreamingLLM* (Xiao et al. 2023, arXiv:2309.17453) — a sliding window plus a few "attention
#   sink" tokens keeps generation stable on endless streams.
#
# **State space models** (you discretised an SSM, unrolled its kernel and wrote the scan):
# - *S4* (Gu, Goel and Ré 2021, arXiv:2111.00396) — the structured SSM behind the convolution view.
# - *Mamba* (Gu and Dao 2023, arXiv:2312.00752) — the selective SSM you built in Zones 3b and 4.
# - *Mamba-2* (Dao and Gu 2024, "Transformers are SSMs", arXiv:2405.21060) — state space duality:
#   with a scalar-times-identity $A$, a selective SSM *is* a form of masked linear attention, so it
#   can be computed in chunks with matrix multiplications; 2–8× faster than Mamba's scan.
#
# **Hybrids, and what each side cannot do:**
# - *Jamba* (Lieber et al. 2024, arXiv:2403.19887) — interleaves Transformer and Mamba layers
#   (one attention layer in eight) with mixture-of-experts layers; 256K-token contexts on one 80 GB GPU.
# - *Griffin* (De et al. 2024, arXiv:2402.19427) — gated linear recurrences mixed with local attention.
# - *An Empirical Study of Mamba-based Language Models* (Waleffe et al. 2024, arXiv:2406.07887) —
#   8B-parameter Mamba, Mamba-2, Transformer and hybrid models trained on the same data: pure SSMs
#   lag on copying and in-context learning, while a hybrid with about 7 % attention layers beats the
#   Transformer on the standard tasks.
# - *Repeat After Me* (Jelassi, Brandfonbrener, Kakade and Malach 2024, arXiv:2402.01032) — why a
#   fixed-size state limits copying, in theory and in practice.

# %% progress [markdown]
# ## Progress
#
# ✅ Zone 6 done — and with it, the course. 🎓
#
# You went from three tokens attending to each other to the machinery of today's language models:
# the softmax and its $\sqrt{d_k}$, heads and positions, the block and a GPT that matches GPT-2,
# FlashAttention in NumPy and Triton, the KV cache and its compression, state space models and a
# Mamba block, scaling laws and in-context learning — each formula next to the code that computes
# it, and most of that code written by you.
#
# **Where to go from here:** revisit any zone from the map above, rerun the experiments of
# [Zone 5](../05_experiments/05_experiments.ipynb) with `FULL_RUN = True`, read one paper of
# section 5, or start again from [Zone 0 — Quickstart](../00_quickstart/00_quickstart.ipynb) and
# see how much more you notice in its three tokens.

# %% glossary [markdown]
# ## Glossary: Japanese and English terms
#
# The lecture series this course follows is Japanese, and the course has a Japanese edition
# (`course/ja/`). The terms it uses, with their English names:
#
# | 日本語 | English |
# | --- | --- |
# | 注意機構、注意 | attention (mechanism) |
# | 自己注意 / 交差注意 | self-attention / cross-attention |
# | 注意重み / 注意スコア | attention weights / attention scores |
# | マルチヘッド注意、ヘッド | multi-head attention, head |
# | スケール化内積注意 | scaled dot-product attention |
# | クエリ・キー・バリュー | query, key, value |
# | トークン / 埋め込み / 語彙 | token / embedding / vocabulary |
# | 系列 / 系列長 | sequence / sequence length |
# | ソフトマックス / 温度 | softmax / temperature |
# | マスク / 因果マスク | mask / causal mask |
# | 位置符号化 / 位置埋め込み | positional encoding / position embedding |
# | 回転位置埋め込み（RoPE） | rotary position embedding |
# | 層正規化 / RMS 正規化 | layer normalization / RMSNorm |
# | 残差接続 / 残差ストリーム | residual connection / residual stream |
# | フィードフォワード層 | feed-forward network |
# | 勾配 / 勾配消失 / 逆伝播 | gradient / vanishing gradient / backpropagation |
# | ヤコビ行列 | Jacobian |
# | 損失 / 学習 / 学習率 | loss / training / learning rate |
# | 分散 / 期待値 / 標準偏差 | variance / expectation / standard deviation |
# | 内積 / 行列積 / 次元 | dot product / matrix product / dimension |
# | 計算量 / メモリ / 帯域幅 | compute (cost) / memory / bandwidth |
# | 再帰型ニューラルネットワーク / 畳み込み | recurrent neural network / convolution |
# | 状態空間モデル / 離散化 / ゼロ次ホールド | state space model / discretization / zero-order hold |
# | 選択的スキャン / 並列スキャン | selective scan / parallel scan |
# | 線形注意 / 特徴写像 / カーネル | linear attention / feature map / kernel |
# | オンラインソフトマックス / タイル | online softmax / tile |
# | KV キャッシュ / スライディングウィンドウ | KV cache / sliding window |
# | グループ化クエリ注意 | grouped-query attention (GQA) |
# | 文脈内学習 | in-context learning |
# | スケーリング則 / べき乗則 | scaling law / power law |
# | 事前学習 / 推論 / 生成 | pretraining / inference / generation |
# | 演習 / ヒント / 採点 / 隠しテスト | exercise / hint / grading / hidden test |
