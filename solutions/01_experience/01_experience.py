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
# # Zone 1 — Experience: the fossils, Q/K/V, and the $\sqrt{d_k}$
#
# *Lecture 14: Attention — leaving the fossils behind.* About 10 minutes.
#
# In Zone 0 every token was its own query, key and value. Real attention first **projects**
# each token three ways. Before that, we put numbers on why attention replaced the fossils
# (RNNs and CNNs), and after it we find out what the mysterious $1/\sqrt{d_k}$ is for, by
# turning a slider.
#
# | symbol | meaning | here |
# | --- | --- | --- |
# | $n$ | number of tokens | slider, then 5 |
# | $d$ (or $d_\text{model}$) | width of a token vector | slider, then 8 |
# | $X \in \mathbb{R}^{n \times d}$ | the tokens, one per row | `x` |
# | $W_Q, W_K \in \mathbb{R}^{d \times d_k}$, $W_V \in \mathbb{R}^{d \times d_v}$ | learned projection matrices | `w_q`, `w_k`, `w_v` |
# | $Q = XW_Q$, $K = XW_K$, $V = XW_V$ | queries, keys, values | `q`, `k`, `v` |
# | $A = \operatorname{softmax}(QK^\top/\sqrt{d_k})$ | attention weights, rows sum to 1 | `weights` |
#
# Two graded exercises: `qkv_attention` (3 points) and `score_statistics` (2 points).

# %% setup
# Setup (locked): the course library and the graders.
import matplotlib.pyplot as plt
import numpy as np

import attnlab
from attnlab import tr
import grader_tests  # noqa: F401  (imported first so the checks bind their tools early)
from grader_tests import check

np.set_printoptions(precision=3, suppress=True)

# %% fossils-md [markdown]
# ## 1. The fossils in numbers
#
# Three ways to let $n$ tokens of width $d$ exchange information in one layer:
#
# - **RNN**: $h_t = \tanh(x_t W_x + h_{t-1} W_h)$. Each step needs the previous one, so the
#   $n$ steps run **one after another**; token 1 reaches token $n$ through $n - 1$ steps.
# - **CNN** with kernel width $k = 3$: each output mixes $k$ neighbouring inputs. All positions
#   run in parallel, but one layer only reaches $k - 1$ positions back, so connecting the
#   first and last tokens takes $\lceil (n-1)/(k-1) \rceil$ stacked layers
#   ($\lceil \log_k n \rceil$ with dilated kernels, as in WaveNet and ByteNet).
# - **Self-attention**: every token scores every token at once, $QK^\top$ is $n \times n$.
#   One step connects any two tokens, in parallel, at a cost of $n^2 d$.
#
# Vaswani et al. (2017, *Attention Is All You Need*, Table 1) compare them on three counts:
# work per layer, **sequential operations** (what cannot be parallelised) and **maximum path
# length** (how many steps a signal crosses between two tokens; shorter paths make long-range
# dependencies easier to learn). `attnlab.fossil_table` evaluates those formulas for concrete
# $n$ and $d$. Move the sliders (in JupyterLab) and watch the three bars: **n tokens** sets the
# sequence length $n$ (8 to 65 536 tokens), **d width** the width $d$ of each token (64 to 2048);
# the CNN's kernel width stays $k = 3$.

# %% fossils
attnlab.fossil_explorer(n=512, d=512)

# %% fossils-sweep-md [markdown]
# Table 1 counts only the attention step itself, $QK^\top$ and $AV$: $2n^2d$ against the RNN's
# $2nd^2$, a ratio of $n/d$ (from it Vaswani et al., §4, conclude that self-attention is faster
# than a recurrent layer when $n < d$). But a self-attention layer also computes its projections
# $W_Q, W_K, W_V, W_O$, another $4nd^2$. Counted with them the ratio is
# $\frac{2n^2d + 4nd^2}{2nd^2} = n/d + 2$: a self-attention layer always does **more**
# arithmetic than the RNN, never less. What it wins is the other two columns: its arithmetic is
# a few large matrix products that all run at once, and no signal has to cross $n - 1$ steps.
# Here are both ratios and the two other columns for growing $n$ at $d = 512$, computed:

# %% fossils-sweep
print("{:>7s} | {:^27s} |".format("", tr("attention / RNN work")))
print("{:>7s} | {:>8s} {:>18s} | {:>14s} | {:>9s} {:>8s} {:>8s} {:>9s}".format(
    "n", tr("Table 1"), tr("+ projections"), tr("RNN sequential"),
    tr("path: RNN"), "CNN k=3", tr("dilated"), tr("attention")))
for n in (16, 128, 512, 4096, 32768):
    rnn, cnn, dilated, att = attnlab.fossil_table(n, d=512, k=3)
    print(f"{n:>7d} | {att['ops'] / rnn['ops']:>8.3g} {att['ops_with_projections'] / rnn['ops']:>18.3g} | "
          f"{rnn['sequential']:>14,d} | "
          f"{rnn['path']:>9,d} {cnn['path']:>8,d} {dilated['path']:>8,d} {att['path']:>9,d}")

# %% qkv-md [markdown]
# ## 2. Queries, keys and values from learned projections
#
# A token plays three roles, so it gets three learned linear maps (row-vector convention,
# one token per row):
#
# $$Q = X W_Q,\qquad K = X W_K,\qquad V = X W_V,\qquad
# \operatorname{Attention}(X) = \operatorname{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V .$$
#
# - the **query** $q_i$ says what token $i$ is looking for,
# - the **key** $k_j$ says what token $j$ offers to be found by,
# - the **value** $v_j$ is what token $j$ hands over when it is found.
#
# With $Q = K = V = X$ (Zone 0) a token's best match is usually itself; separate projections
# let "looking for" differ from "offering". In a trained model $W_Q, W_K, W_V$ come out of
# gradient descent; here they are seeded random draws (scaled by $1/\sqrt{d}$, the usual
# initialisation) — the computation is exactly the same. Five tokens of width $d = 8$,
# projected to $d_k = d_v = 4$:

# %% qkv
tokens = ["the", "cat", "sat", "on", "mat"]
rng = np.random.default_rng(1)
x = rng.normal(size=(5, 8))
w_q, w_k, w_v = (rng.normal(size=(8, 4)) / np.sqrt(8) for _ in range(3))

q, k, v = x @ w_q, x @ w_k, x @ w_v
out, weights = attnlab.qkv_attention(x, w_q, w_k, w_v)
print(tr("shapes:"), "x", x.shape, "-> q", q.shape, "k", k.shape, "v", v.shape, "-> weights", weights.shape, "out", out.shape)
attnlab.plot_qkv(tokens, x, q, k, v, weights)

# %% qkv-check-md [markdown]
# Two checks that would fail if the formula were wrong: every row of $A$ sums to 1, and output
# row $i$ is the weighted average $\sum_j A_{ij} v_j$ of the value rows. And one comparison:
# who attends to whom with the projections, and with $Q = K = V = X$ as in Zone 0.

# %% qkv-check
print(tr("largest |row sum - 1|: {err:.1e}", err=np.abs(weights.sum(axis=1) - 1).max()))
by_hand = sum(weights[2, j] * v[j] for j in range(5))
print(tr("out[2] vs sum_j A[2, j] v[j]: max |difference| = {diff:.1e}", diff=np.abs(out[2] - by_hand).max()))

_, plain = attnlab.scaled_dot_product_attention(x, x, x)
for i, token in enumerate(tokens):
    print(tr("  '{token}' attends most to: '{proj_word}' with W_Q, W_K (weight {proj_weight:.2f});  "
             "'{plain_word}' with Q = K = X (weight {plain_weight:.2f})",
             token=token, proj_word=tokens[weights[i].argmax()], proj_weight=weights[i].max(),
             plain_word=tokens[plain[i].argmax()], plain_weight=plain[i].max()))

# %% qkv_attention-md [markdown]
# ## Exercise 1 — `qkv_attention` (3 points)
#
# Write `qkv_attention(x, w_q, w_k, w_v, mask=None, causal=False)` returning `(out, weights)`:
#
# 1. project: $q = x W_Q$, $k = x W_K$, $v = x W_V$ (`x @ w_q`; `x` may have leading batch axes
#    `(..., N, d_model)`);
# 2. scores $S = q k^\top / \sqrt{d_k}$ with $d_k$ = the width of $q$ (`w_q.shape[1]`), **not**
#    the width of `x` — use `np.swapaxes(k, -1, -2)` for the transpose;
# 3. where `mask` (boolean, True = may attend, broadcastable to `(..., N, N)`) is False, the
#    score becomes $-\infty$; with `causal=True` token $i$ may only see tokens $j \le i$
#    (`attnlab.causal_mask(N)`);
# 4. $A = \operatorname{softmax}(S)$ over the keys (last axis) — `attnlab.softmax` is yours to use;
# 5. return $A v$ and $A$.
#
# Write the computation yourself: calling `attnlab.qkv_attention` does not count.

# %%
def qkv_attention(x, w_q, w_k, w_v, mask=None, causal=False):
    """Self-attention with projections q, k, v = x @ w_q, x @ w_k, x @ w_v. Returns (out, weights)."""
    ### BEGIN SOLUTION
    q = x @ w_q
    k = x @ w_k
    v = x @ w_v
    d_k = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d_k)
    n = x.shape[-2]
    allowed = np.ones((n, n), dtype=bool)
    if mask is not None:
        allowed = allowed & mask
    if causal:
        allowed = allowed & attnlab.causal_mask(n)
    weights = attnlab.softmax(np.where(allowed, scores, -np.inf), axis=-1)
    return weights @ v, weights
    ### END SOLUTION


# %%
check("qkv_attention", qkv_attention)
### BEGIN HIDDEN TESTS
check("qkv_attention", qkv_attention, hidden=True)
### END HIDDEN TESTS

# %% yours-qkv-md [markdown]
# Your function on the five tokens, with `causal=True`: each word may only look back.

# %% yours-qkv
try:
    my_out, my_weights = qkv_attention(x, w_q, w_k, w_v, causal=True)
    lib_out, lib_weights = attnlab.qkv_attention(x, w_q, w_k, w_v, causal=True)
    print(tr("largest difference from attnlab: {diff:.1e}", diff=np.abs(my_out - lib_out).max()))
    attnlab.plot_attention(my_weights, x_labels=tokens, y_labels=tokens, title=tr("Causal qkv_attention (yours)"))
    plt.show()
except NotImplementedError:
    print(tr("Finish exercise 1 first, then run this cell again."))

# %% scale-md [markdown]
# ## 3. Why divide by $\sqrt{d_k}$?
#
# **Claim.** If the entries of $q, k \in \mathbb{R}^{d_k}$ are independent with mean 0 and
# variance 1, then the score $q \cdot k$ has mean 0 and variance $d_k$.
#
# **Steps.** $q \cdot k = \sum_{i=1}^{d_k} q_i k_i$. Each term has
# $\mathbb{E}[q_i k_i] = \mathbb{E}[q_i]\,\mathbb{E}[k_i] = 0$ and
# $\operatorname{Var}(q_i k_i) = \mathbb{E}[q_i^2]\,\mathbb{E}[k_i^2] - 0 = 1$. The $d_k$ terms are
# independent, so their variances add: $\operatorname{Var}(q \cdot k) = d_k$, a standard
# deviation of $\sqrt{d_k}$ (Vaswani et al. 2017, footnote 4). Dividing by $\sqrt{d_k}$ brings
# it back to 1 whatever the width. (Zone 3 proves it in full and checks it by Monte Carlo.)
#
# **Why it matters.** Softmax turns score *differences* into weight ratios,
# $a_i / a_j = e^{s_i - s_j}$. Scores spread over $\pm 3\sqrt{d_k}$ make the top score win
# outright: the softmax **saturates** to one-hot, and its Jacobian
# $\partial a / \partial s = \operatorname{diag}(a) - a a^\top$ goes to 0, so almost no gradient
# reaches $W_Q$ and $W_K$.
#
# ## Exercise 2 — `score_statistics` (2 points)
#
# Measure the claim. `score_statistics(q, k)` gets $n$ pairs of vectors as two arrays of shape
# `(n, d)` and returns the empirical `(mean, std)` of the $n$ row-wise dot products
# $s_i = q_i \cdot k_i$ (pair $i$ with pair $i$, not every query with every key), as Python
# floats. Use the population standard deviation, `np.std` (ddof = 0). Do not call
# `attnlab.score_statistics`.

# %%
def score_statistics(q, k):
    """Mean and population std of the row-wise dot products q[i] . k[i]; q, k: (n, d)."""
    ### BEGIN SOLUTION
    scores = np.sum(q * k, axis=-1)
    return float(np.mean(scores)), float(np.std(scores))
    ### END SOLUTION


# %%
check("score_statistics", score_statistics)
### BEGIN HIDDEN TESTS
check("score_statistics", score_statistics, hidden=True)
### END HIDDEN TESTS

# %% measure-md [markdown]
# Your function on 4 000 random pairs per width: the standard deviation should track
# $\sqrt{d_k}$, and after dividing $q$ by $\sqrt{d_k}$ (which divides every score by it) it
# should stay near 1. If the claim were false, the ratio column would drift away from 1.

# %% measure
rng = np.random.default_rng(0)
rows = []
try:
    for d_k in (1, 4, 16, 64, 256, 1024):
        qs, ks = rng.standard_normal((4_000, d_k)), rng.standard_normal((4_000, d_k))
        mean, std = score_statistics(qs, ks)
        _, std_scaled = score_statistics(qs / np.sqrt(d_k), ks)
        rows.append((d_k, mean, std, std_scaled))
except NotImplementedError:
    print(tr("Finish exercise 2 first, then run this cell again."))
if rows:
    print(f"{'d_k':>5s} {'mean':>8s} {'std':>8s} {'sqrt(d_k)':>9s} {'std/sqrt(d_k)':>13s} {'std, scaled':>11s}")
for d_k, mean, std, std_scaled in rows:
    print(f"{d_k:>5d} {mean:>8.3f} {std:>8.3f} {np.sqrt(d_k):>9.3f} {std / np.sqrt(d_k):>13.3f} {std_scaled:>11.3f}")

# %% explorer-md [markdown]
# ### The scaling explorer
#
# 256 random queries attend over 64 random keys of width $d_k$ (entries $\mathcal{N}(0, 1)$,
# fixed seed). Slide $d_k$ from 1 to 1024 and flip between unscaled and scaled scores. You see
# the score histogram and, for the typical (median) query:
#
# - the **max attention weight**: $1/64 \approx 0.016$ is uniform, 1 is one-hot;
# - the **entropy** $-\sum_j a_j \log a_j$: $\log 64 \approx 4.16$ nats is uniform, 0 is one-hot;
# - the **softmax gradient size** $\lVert \operatorname{diag}(a) - a a^\top \rVert_F$
#   (`attnlab.softmax_jacobian`), on a log scale.
#
# The curves show both settings for every $d_k$; the star is the current one. The controls:
# **d_k** sets the width of queries and keys (1 to 1024); **scores** switches between the raw
# scores $q \cdot k$ ("unscaled") and $q \cdot k / \sqrt{d_k}$ ("scaled by 1/√d_k").

# %% explorer
attnlab.scaling_explorer(d_k=256, scaled=False)

# %% compare-md [markdown]
# The same queries and keys, side by side. Read the unscaled columns downwards: the max weight
# climbs towards 1 and the entropy falls towards 0 — the softmax becomes a hard argmax. Its
# gradient first holds up (a moderately peaked softmax is, if anything, the most sensitive)
# and then collapses once the weights are nearly one-hot. In the scaled columns nothing
# depends on $d_k$: that is exactly what the $1/\sqrt{d_k}$ buys.

# %% compare
print("{:>5s} | {:>10s} {:>8s} {:>9s} {:10s} | {:>10s} {:>8s} {:>9s} {}".format(
    "d_k", tr("max weight"), tr("entropy"), tr("gradient"), tr("(unscaled)"),
    tr("max weight"), tr("entropy"), tr("gradient"), tr("(scaled)")))
for d_k in (4, 64, 1024):
    raw = attnlab.scaling_statistics(d_k, scaled=False)
    fixed = attnlab.scaling_statistics(d_k, scaled=True)
    print(f"{d_k:>5d} | {raw['max_weight']:>10.3f} {raw['entropy']:>8.3f} {raw['grad_norm']:>9.2e}            | "
          f"{fixed['max_weight']:>10.3f} {fixed['entropy']:>8.3f} {fixed['grad_norm']:>9.2e}")
raw, fixed = attnlab.scaling_statistics(1024, scaled=False), attnlab.scaling_statistics(1024, scaled=True)
print(tr("\nat d_k = 1024 the scale makes the typical softmax gradient {factor:,.0f}x larger",
         factor=fixed["grad_norm"] / raw["grad_norm"]))

# %% progress [markdown]
# ## Progress
#
# ✅ Zone 1 done: you measured what the fossils cost, built attention with learned projections,
# and saw why the scores are divided by $\sqrt{d_k}$ — to keep the softmax out of saturation,
# where its gradient dies.
#
# **Next:** [Zone 2 — Intuition](../02_intuition/02_intuition.ipynb): a GRU and an attention
# model race on long-range recall, attention without positions cannot tell order, and a real
# pretrained model's heads show who looks at whom.
