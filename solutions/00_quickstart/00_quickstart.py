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
# # Zone 0 — Quickstart: attention in 30 seconds
#
# *Lecture 14: Attention — leaving the fossils behind.*
#
# RNNs read a sentence one word at a time; CNNs see only a few neighbours at once. Those
# are the fossils. **Self-attention** lets every token look at every other token in a single
# step, and decides *how much* to look at each one from the data itself.
#
# Run the next two cells: three tokens attend to each other, and you see who looks at whom.
# Then you build the two functions behind it yourself (two graded exercises, 5 points).
#
# | symbol | meaning | here |
# | --- | --- | --- |
# | $N$ | number of tokens | 3 |
# | $d$ | width of each token vector | 4 |
# | $X \in \mathbb{R}^{N \times d}$ | the token vectors, one per row | `x` |
# | $Q, K, V$ | queries, keys, values | all equal to `x` in this zone |

# %% setup
# Setup (locked): the course library and the graders.
import matplotlib.pyplot as plt
import numpy as np

import attnlab
from attnlab import tr
import grader_tests  # noqa: F401  (imported first so the checks bind their tools early)
from grader_tests import check

np.set_printoptions(precision=3, suppress=True)

# %% demo-md [markdown]
# ## The 30-second demo
#
# Three tokens, each a vector of width 4. We use the tokens themselves as queries, keys and
# values, $Q = K = V = X$, and compute
#
# $$\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V .$$
#
# Row $i$ of the weight matrix says how much token $i$ takes from each token; every row sums to 1.

# %% demo
tokens = ["I", "love", "Transformers"]
x = np.array(
    [
        [1.0, 0.5, 0.2, 0.1],
        [0.3, 1.0, 0.4, 0.2],
        [0.2, 0.3, 1.0, 0.5],
    ]
)

out, weights = attnlab.scaled_dot_product_attention(x, x, x)

print(tr("attention weights (rows: queries, columns: keys)"))
for token, row in zip(tokens, weights):
    print(tr("  {token:>12s} -> {row}   (row sum {total:.3f})", token=token, row=row, total=row.sum()))
print(tr("\noutputs: each token is now a weighted mix of all three"))
for token, row in zip(tokens, out):
    print(f"  {token:>12s}    {row}")

most = weights.argmax(axis=1)
for i, token in enumerate(tokens):
    print(tr("'{token}' attends most to '{other}' (weight {weight:.3f})",
             token=token, other=tokens[most[i]], weight=weights[i, most[i]]))

attnlab.plot_attention(weights, x_labels=tokens, y_labels=tokens, title=tr("Self-attention, Q = K = V = x"))
plt.show()

# %% softmax-md [markdown]
# ## Exercise 1 — softmax (2 points)
#
# $$\operatorname{softmax}(x)_i = \frac{e^{x_i}}{\sum_j e^{x_j}} = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \qquad m = \max_j x_j .$$
#
# The two forms are equal (multiply top and bottom by $e^{-m}$), but only the second is safe on
# a computer: $e^{1000}$ overflows to `inf`, while $e^{x_i - m} \le 1$ always.
#
# Write `softmax(x, axis=-1)` for NumPy arrays of any shape, normalising along `axis`:
# - subtract the maximum along `axis` (use `keepdims=True` so shapes broadcast);
# - a score of `-inf` means "masked": its weight must be exactly 0;
# - a row that is **entirely** `-inf` (a query that may see nothing) must give all zeros, not NaN.

# %%
def softmax(x, axis=-1):
    """Softmax of x along `axis`; -inf entries get 0 and an all -inf row gives zeros."""
    ### BEGIN SOLUTION
    x = np.asarray(x, dtype=float)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isneginf(m), 0.0, m)
    e = np.exp(x - m)
    total = np.sum(e, axis=axis, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    ### END SOLUTION


# %%
# Visible checks: read the message if one fails, it says which input and the likely mistake.
check("softmax", softmax)
### BEGIN HIDDEN TESTS
check("softmax", softmax, hidden=True)
### END HIDDEN TESTS

# %% sdpa-md [markdown]
# ## Exercise 2 — scaled dot-product attention (3 points)
#
# For queries $q \in \mathbb{R}^{N_q \times d_k}$, keys $k \in \mathbb{R}^{N_k \times d_k}$ and
# values $v \in \mathbb{R}^{N_k \times d_v}$:
#
# 1. scores $S = q k^\top / \sqrt{d_k}$, shape $(N_q, N_k)$ — entry $(i, j)$ is how well query $i$ matches key $j$;
# 2. where `mask` is False (the query may **not** attend that key), set the score to $-\infty$;
# 3. with `causal=True`, query $i$ may only see keys $j \le i + (N_k - N_q)$ — use `attnlab.causal_mask(n_q, n_k)`;
# 4. weights $A = \operatorname{softmax}(S)$ over the keys (the last axis);
# 5. output $A v$, shape $(N_q, d_v)$.
#
# Return `(out, weights)`. Leading batch axes `(..., N, d)` must work: use `np.swapaxes(k, -1, -2)`
# rather than `k.T`. Use your `softmax` from above.

# %%
def scaled_dot_product_attention(q, k, v, mask=None, causal=False):
    """softmax(q k^T / sqrt(d_k)) v. Returns (out (..., Nq, d_v), weights (..., Nq, Nk))."""
    ### BEGIN SOLUTION
    d_k = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d_k)
    allowed = np.ones(scores.shape[-2:], dtype=bool)
    if mask is not None:
        allowed = allowed & mask
    if causal:
        allowed = allowed & attnlab.causal_mask(q.shape[-2], k.shape[-2])
    weights = softmax(np.where(allowed, scores, -np.inf), axis=-1)
    return weights @ v, weights
    ### END SOLUTION


# %%
check("scaled_dot_product_attention", scaled_dot_product_attention)
### BEGIN HIDDEN TESTS
check("scaled_dot_product_attention", scaled_dot_product_attention, hidden=True)
### END HIDDEN TESTS

# %% yours-md [markdown]
# ## Your attention on the three tokens
#
# Your functions, run on the quickstart tokens, next to the library's. If both exercises pass,
# the largest difference below is at the level of floating-point rounding.

# %% yours
try:
    my_out, my_weights = scaled_dot_product_attention(x, x, x)
    print(tr("your weights:\n"), my_weights)
    print(tr("largest difference from attnlab: {diff:.2e}", diff=np.abs(my_weights - weights).max()))
    causal_out, causal_weights = scaled_dot_product_attention(x, x, x, causal=True)
    print(tr("with causal=True each token sees only itself and earlier tokens:\n"), causal_weights)
    attnlab.plot_attention(causal_weights, x_labels=tokens, y_labels=tokens, title=tr("Causal self-attention (yours)"))
    plt.show()
except NotImplementedError:
    print(tr("Finish exercises 1 and 2 first, then run this cell again."))

# %% progress [markdown]
# ## Progress
#
# ✅ Zone 0 done: you computed attention by hand and saw its weights.
#
# You now know the whole formula. The next zones explain *why* it looks like this: where the
# $\sqrt{d_k}$ comes from, why it beat the fossils, and how it scales.
#
# **Next:** [Zone 1 — Experience](../01_experience/01_experience.ipynb): learned projections
# $Q = XW_Q$, $K = XW_K$, $V = XW_V$ and a live explorer of the $\sqrt{d_k}$ scaling.
