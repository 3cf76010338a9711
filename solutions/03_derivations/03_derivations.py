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
# # Zone 3a — Derivations: why attention looks the way it does
#
# *Lecture 14: Attention — leaving the fossils behind.*
#
# You have used the formula. This zone takes it apart, one piece at a time, and asks of each
# piece: *why this and not something else?* Every section follows the same rhythm:
#
# 1. **the claim**, in one sentence and one formula;
# 2. **the steps** that prove it, with nothing skipped;
# 3. **a check**: code that would print a large number if the claim were false, and prints a
#    tiny one (rounding error) because it is true.
#
# | § | claim | checked by |
# | --- | --- | --- |
# | 1 | the definition, symbol by symbol | recomputing one output by hand |
# | 2 | $\operatorname{Var}(q\cdot k) = d_k$, hence the $1/\sqrt{d_k}$ | Monte Carlo |
# | 3 | $\partial\,\operatorname{softmax}/\partial s = \operatorname{diag}(a) - a a^\top$, and it vanishes when softmax saturates | torch autograd |
# | 4 | multi-head attention = a sum of low-rank pieces, same parameters for any number of heads | matrix ranks, torch parameter counts |
# | 5 | sinusoidal: $PE_{p+k} = A(k)\,PE_p$; RoPE: scores depend only on $m-n$; ALiBi: a distance penalty | least squares, complex numbers, diagonals |
# | 6 | residuals, LayerNorm / RMSNorm, GELU / SwiGLU, Pre-LN vs Post-LN | torch, measured gradients |
# | 7 | causal masking, boolean and additive | torch, "changing the future changes nothing" |
# | 8 | **boss battle**: a GPT-2 block in NumPy | attnlab's torch block and Hugging Face's `GPT2Block` |
#
# Nine graded exercises (22 points). Each one is a function that `attnlab` also has; your
# version must be your own (calling `attnlab.<the same name>` is refused by the checker), but
# you may use the library's *other* functions — the text says which.
#
# Reading time: about 40 minutes, plus the exercises.

# %% setup
# Setup (locked): the course library and the graders.
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import attnlab
from attnlab import tr
import grader_tests  # noqa: F401  (imported first so the checks bind their tools early)
from grader_tests import check

np.set_printoptions(precision=3, suppress=True)

# %% s1-md [markdown]
# ## 1. The definition, symbol by symbol
#
# $$\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V$$
#
# Vectors are **rows**, as in the code (`q = x @ w_q`), so $X$ holds one token per row.
#
# | symbol | shape | meaning |
# | --- | --- | --- |
# | $N$ | | number of tokens |
# | $X$ | $N \times d_{\text{model}}$ | token vectors, one per row: $x_i$ is row $i$ |
# | $W_Q, W_K$ | $d_{\text{model}} \times d_k$ | learned query and key projections |
# | $W_V$ | $d_{\text{model}} \times d_v$ | learned value projection |
# | $Q = XW_Q,\ K = XW_K,\ V = XW_V$ | $N\times d_k,\ N \times d_k,\ N\times d_v$ | queries $q_i$, keys $k_j$, values $v_j$ |
# | $S = QK^\top/\sqrt{d_k}$ | $N \times N$ | scores: $s_{ij} = q_i\cdot k_j/\sqrt{d_k}$, "how well query $i$ matches key $j$" |
# | $A = \operatorname{softmax}(S)$, row by row | $N \times N$ | weights: $\alpha_{ij} = e^{s_{ij}} / \sum_{j'} e^{s_{ij'}}$, each row sums to 1 |
# | $O = AV$ | $N \times d_v$ | outputs: $o_i = \sum_j \alpha_{ij}\, v_j$, a weighted average of the values |
# | $H,\ d_{\text{head}}$ | | number of heads, width of one head $= d_{\text{model}}/H$ (§4) |
# | $W_O$ | $d_{\text{model}} \times d_{\text{model}}$ | output projection after the heads are concatenated (§4) |
# | $p, m, n$ | | positions in the sequence (§5) |
#
# Reading the formula from the inside out: compare every query with every key (a dot product),
# shrink the scores by $\sqrt{d_k}$ (§2), turn each row into a probability distribution
# (§3), and average the values with those probabilities.

# %% s1-code
rng = np.random.default_rng(0)
N, d_model, d_k, d_v = 4, 8, 4, 4
X = rng.normal(size=(N, d_model))
W_Q = rng.normal(size=(d_model, d_k)) / np.sqrt(d_model)
W_K = rng.normal(size=(d_model, d_k)) / np.sqrt(d_model)
W_V = rng.normal(size=(d_model, d_v)) / np.sqrt(d_model)

Q, K, V = X @ W_Q, X @ W_K, X @ W_V
S = Q @ K.T / np.sqrt(d_k)
A = attnlab.softmax(S, axis=-1)
O = A @ V
for name, value in [("X", X), ("Q", Q), ("K", K), ("V", V), ("S", S), ("A", A), ("O", O)]:
    print(tr("{name}: shape {shape}", name=name, shape=value.shape))
print(tr("row sums of A:"), A.sum(axis=1))

# One output by hand: o_2 = sum_j alpha_2j v_j.
o_2 = sum(A[2, j] * V[j] for j in range(N))
print(f"max |o_2 - sum_j alpha_2j v_j| = {np.abs(O[2] - o_2).max():.1e}")
out, _ = attnlab.qkv_attention(X, W_Q, W_K, W_V)
print(f"max |O - attnlab.qkv_attention(X, W_Q, W_K, W_V)| = {np.abs(O - out).max():.1e}")

# %% s2-md [markdown]
# ## 2. Why divide by $\sqrt{d_k}$: $\operatorname{Var}(q \cdot k) = d_k$
#
# **Claim.** Let $q, k \in \mathbb{R}^{d_k}$ have independent entries with mean 0 and variances
# $\sigma_q^2$ and $\sigma_k^2$. Then
#
# $$\mathbb{E}[q\cdot k] = 0, \qquad \operatorname{Var}(q\cdot k) = d_k\,\sigma_q^2\sigma_k^2, \qquad
# \operatorname{Var}\!\left(\frac{q\cdot k}{\sqrt{d_k}}\right) = \sigma_q^2\sigma_k^2 .$$
#
# **Proof.** Write the dot product as a sum of $d_k$ terms, $q\cdot k = \sum_{i=1}^{d_k} t_i$ with $t_i = q_i k_i$.
#
# 1. *Mean of a term.* $q_i$ and $k_i$ are independent, so $\mathbb{E}[t_i] = \mathbb{E}[q_i]\,\mathbb{E}[k_i] = 0 \cdot 0 = 0$.
# 2. *Variance of a term.* $\operatorname{Var}(t_i) = \mathbb{E}[t_i^2] - \mathbb{E}[t_i]^2 = \mathbb{E}[q_i^2 k_i^2] - 0
#    = \mathbb{E}[q_i^2]\,\mathbb{E}[k_i^2] = \sigma_q^2 \sigma_k^2$ (independence again, and $\mathbb{E}[q_i^2] = \sigma_q^2$ because the mean is 0).
# 3. *The terms are uncorrelated.* For $i \ne j$: $\operatorname{Cov}(t_i, t_j) = \mathbb{E}[q_i k_i q_j k_j] - 0
#    = \mathbb{E}[q_i]\,\mathbb{E}[k_i]\,\mathbb{E}[q_j]\,\mathbb{E}[k_j] = 0$.
# 4. *Variances of uncorrelated terms add.* $\operatorname{Var}(\sum_i t_i) = \sum_i \operatorname{Var}(t_i) + \sum_{i\ne j}\operatorname{Cov}(t_i, t_j)
#    = d_k\,\sigma_q^2\sigma_k^2$. The mean is $\sum_i \mathbb{E}[t_i] = 0$.
# 5. *Scaling.* $\operatorname{Var}(cY) = c^2 \operatorname{Var}(Y)$; with $c = 1/\sqrt{d_k}$ the factor $d_k$ cancels. $\blacksquare$
#
# So the *standard deviation* of a raw score grows like $\sqrt{d_k}$: about 8 for $d_k = 64$,
# 32 for $d_k = 1024$. Section 3 shows what such scores do to the softmax. Dividing by
# $\sqrt{d_k}$ keeps the scores at unit scale whatever the width of the heads.
#
# Two remarks. The proof never used a Gaussian: independence and zero mean are enough, so the
# check below also uses uniform entries. And trained $q, k$ are not independent; the claim is
# about initialisation, where the scale must be right for training to start well.

# %% score_variance-md [markdown]
# ### Exercise 1 — `score_variance` (2 points)
#
# Write `score_variance(d_k, q_var=1.0, k_var=1.0, scaled=False)`: the variance the claim
# predicts for $q\cdot k$ (or for $q\cdot k/\sqrt{d_k}$ when `scaled=True`), as a Python float.

# %%
def score_variance(d_k, q_var=1.0, k_var=1.0, scaled=False):
    """Var(q . k) for d_k independent zero-mean entries; divided by d_k if the score is scaled."""
    ### BEGIN SOLUTION
    variance = d_k * q_var * k_var
    if scaled:
        variance = variance / d_k
    return float(variance)
    ### END SOLUTION


# %%
check("score_variance", score_variance)
### BEGIN HIDDEN TESTS
check("score_variance", score_variance, hidden=True)
### END HIDDEN TESTS

# %% mc-md [markdown]
# ### The check: Monte Carlo
#
# Draw 10 000 pairs $(q, k)$, compute the 10 000 dot products, measure their variance. A sample
# variance is itself random; its standard error is $\sqrt{(m_4 - s^4)/n}$ ($m_4$ the fourth
# central moment). The column $z = (\text{measured} - \text{claimed}) / \text{standard error}$
# is how many standard errors the measurement misses the claim by: about $\pm 1$ when the
# claim is true. Had the variance been $d_k^2$ or $\sqrt{d_k}$ instead, $z$ would run into the
# hundreds.

# %% mc
d_ks = (1, 4, 16, 64, 256, 1024)
print("{:>8s} {:>5s} {:>18s} {:>12s} {:>10s} {:>6s}   {:>18s}".format(
    tr("entries"), "d_k", tr("Var(q.k) measured"), tr("claimed d_k"), tr("std error"), "z", "Var(q.k/sqrt(d_k))"))
results = []
for distribution in ("normal", "uniform"):
    for d in d_ks:
        raw = attnlab.score_variance_monte_carlo(d, n_samples=10_000, distribution=distribution, seed=d)
        scaled = attnlab.score_variance_monte_carlo(d, n_samples=10_000, distribution=distribution,
                                                    scaled=True, seed=d + 1)
        results += [raw, scaled]
        print(f"{distribution:>8s} {d:5d} {raw['empirical']:18.2f} {raw['predicted']:12.0f} "
              f"{raw['std_error']:10.2f} {raw['z']:+6.2f}   {scaled['empirical']:18.3f}")
worst = max(abs(r["z"]) for r in results)
print(tr("\nlargest |z| over all {count} measurements (raw and scaled): {worst:.2f}", count=len(results), worst=worst))

fig, ax = plt.subplots(figsize=(5, 3.4))
ax.loglog(d_ks, d_ks, "k-", label=tr("claim: Var = d_k"))
ax.loglog(d_ks, [r["empirical"] for r in results[0:12:2]], "o", label=tr("measured, normal entries"))
ax.loglog(d_ks, [r["empirical"] for r in results[12::2]], "x", label=tr("measured, uniform entries"))
ax.loglog(d_ks, [r["empirical"] for r in results[1:12:2]], "s", label=tr("measured, scaled by 1/sqrt(d_k)"))
ax.set_xlabel("d_k")
ax.set_ylabel(tr("variance of the score"))
ax.legend(fontsize=8)
plt.show()

# %% mc-yours-md [markdown]
# Your formula against a measurement with unequal variances ($\sigma_q^2 = 2$, $\sigma_k^2 = 0.5$):

# %% mc-yours
try:
    for d in (16, 256):
        for is_scaled in (False, True):
            mc = attnlab.score_variance_monte_carlo(d, q_var=2.0, k_var=0.5, scaled=is_scaled, seed=7)
            yours = score_variance(d, q_var=2.0, k_var=0.5, scaled=is_scaled)
            print(tr("d_k={d:4d} scaled={scaled!s:5s}: measured {measured:8.3f} (+- {error:.3f}), "
                     "your formula {yours:8.3f}",
                     d=d, scaled=is_scaled, measured=mc["empirical"], error=mc["std_error"], yours=yours))
except NotImplementedError:
    print(tr("Write score_variance above, then run this cell again."))

# %% s3-md [markdown]
# ## 3. Softmax saturation and its Jacobian
#
# Why do large scores hurt? Because of how the softmax passes gradients back.
#
# **Claim.** For $a = \operatorname{softmax}(s)$, $a_i = e^{s_i}/\sum_k e^{s_k}$,
#
# $$\frac{\partial a_i}{\partial s_j} = a_i\,(\delta_{ij} - a_j), \qquad\text{i.e.}\qquad
# J = \operatorname{diag}(a) - a a^\top .$$
#
# On the diagonal this is $a_i(1 - a_i)$, the familiar derivative of the logistic sigmoid.
#
# **Proof.** Take logarithms first: $\log a_i = s_i - \log \sum_k e^{s_k}$. Differentiate with respect to $s_j$:
#
# $$\frac{\partial \log a_i}{\partial s_j} = \delta_{ij} - \frac{e^{s_j}}{\sum_k e^{s_k}} = \delta_{ij} - a_j .$$
#
# Since $\partial a_i / \partial s_j = a_i\, \partial \log a_i / \partial s_j$, we get $a_i(\delta_{ij} - a_j)$. $\blacksquare$
#
# **Three consequences**, each checked below:
# - $J$ is **symmetric** ($a_i a_j = a_j a_i$), so $J^\top = J$: backpropagation through softmax is
#   $\partial L/\partial s = J\, \partial L / \partial a = a \odot (g - a\cdot g)$ with $g = \partial L/\partial a$.
# - Its **columns sum to 0**: $\sum_i J_{ij} = a_j - a_j \sum_i a_i = 0$. Adding the same constant
#   to every score changes nothing (that is why subtracting the maximum is allowed).
# - **Saturation.** Every entry is at most $1 - \max_k a_k$ in size. (Let $a_1$ be the largest weight.
#   On the diagonal, $a_1(1-a_1) \le 1-a_1$, and $a_i(1-a_i) \le a_i \le 1 - a_1$ for $i \ne 1$. Off the
#   diagonal, $a_i a_j$ has a factor other than $a_1$, which is at most $1 - a_1$.) When one weight
#   approaches 1 — the softmax *saturates* — the whole Jacobian approaches 0, and no gradient
#   reaches the scores, the queries or the keys. Unscaled scores of standard deviation
#   $\sqrt{d_k}$ do exactly this.

# %% softmax_jacobian-md [markdown]
# ### Exercise 2 — `softmax_jacobian` (2 points)
#
# Write `softmax_jacobian(s)` for scores of shape `(..., n)`, returning `(..., n, n)` with
# `J[..., i, j]` $= \partial a_i / \partial s_j$. Compute $a$ with `attnlab.softmax` (stable, and
# a `-inf` score gets weight 0), then build $\operatorname{diag}(a) - aa^\top$ with broadcasting:
# `a[..., :, None]` is a column, `a[..., None, :]` a row, `np.eye(n)` is $\delta_{ij}$.

# %%
def softmax_jacobian(s):
    """Jacobian of softmax over the last axis: (..., n) -> (..., n, n), diag(a) - a a^T."""
    ### BEGIN SOLUTION
    a = attnlab.softmax(s, axis=-1)
    n = a.shape[-1]
    return a[..., :, None] * np.eye(n) - a[..., :, None] * a[..., None, :]
    ### END SOLUTION


# %%
check("softmax_jacobian", softmax_jacobian)
### BEGIN HIDDEN TESTS
check("softmax_jacobian", softmax_jacobian, hidden=True)
### END HIDDEN TESTS

# %% jac-check-md [markdown]
# ### The check: torch autograd
#
# `torch.autograd.functional.jacobian` differentiates `torch.softmax` mechanically, with no
# formula from us. If the derivation were wrong, the difference would be of order 0.1.

# %% jac-check
s = np.random.default_rng(1).normal(size=6)
J = attnlab.softmax_jacobian(s)
J_autograd = torch.autograd.functional.jacobian(
    lambda t: torch.softmax(t, dim=-1), torch.from_numpy(s)
).numpy()
a = attnlab.softmax(s)
print(f"max |diag(a) - a a^T  -  autograd| = {np.abs(J - J_autograd).max():.1e}")
print(tr("symmetric:       max |J - J^T|      = {err:.1e}", err=np.abs(J - J.T).max()))
print(tr("columns sum to 0: max |sum_i J_ij|  = {err:.1e}", err=np.abs(J.sum(axis=0)).max()))
print(tr("diagonal is a(1-a): max difference  = {err:.1e}", err=np.abs(np.diag(J) - a * (1 - a)).max()))
try:
    print(tr("yours vs autograd: max difference   = {err:.1e}", err=np.abs(softmax_jacobian(s) - J_autograd).max()))
except NotImplementedError:
    print(tr("(write softmax_jacobian above to compare yours with autograd too)"))

# %% saturation-md [markdown]
# ### Saturation, measured
#
# Take 16 scores $s = \sigma z$ with $z \sim \mathcal N(0, 1)$ fixed, and grow their spread
# $\sigma$. From §2, unscaled scores have $\sigma = \sqrt{d_k}$, so the second column is the
# $d_k$ at which *unscaled* attention would see scores like these.

# %% saturation
z = np.random.default_rng(2).normal(size=16)
sigmas = (0.5, 1, 2, 4, 8, 16, 32)
max_weight, max_entry = [], []
print("{:>6s} {:>14s} {:>11s} {:>11s} {:>16s}".format(
    "sigma", "d_k = sigma^2", tr("max weight"), "max |J_ij|", tr("bound 1 - max a")))
for sigma in sigmas:
    a = attnlab.softmax(sigma * z)
    J = attnlab.softmax_jacobian(sigma * z)
    max_weight.append(a.max())
    max_entry.append(np.abs(J).max())
    print(f"{sigma:6.1f} {sigma**2:14.2f} {a.max():11.4f} {np.abs(J).max():11.2e} {1 - a.max():16.2e}")
print(tr("bound |J_ij| <= 1 - max a holds in every row:"),
      all(e <= 1 - w + 1e-15 for e, w in zip(max_entry, max_weight)))

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.semilogx(sigmas, max_weight, "o-", label=tr("largest weight"))
ax.semilogx(sigmas, max_entry, "s-", label=tr("largest |Jacobian entry|"))
ax.set_xlabel(tr("score spread sigma (unscaled: sqrt(d_k))"))
ax.legend()
plt.show()

# %% saturation-after-md [markdown]
# Read the table from top to bottom: as the spread grows, one weight climbs towards 1 and the
# largest Jacobian entry collapses, always below the bound. Dividing by $\sqrt{d_k}$ keeps
# $\sigma$ near 1, in the top rows, where gradients flow. (Zone 1's explorer shows the same
# thing with a $d_k$ slider.)

# %% s4-md [markdown]
# ## 4. Multi-head attention as a low-rank split
#
# One attention pattern per token is limiting: a word may need to look at its subject *and* at
# the previous word. Multi-head attention runs $H$ attentions side by side, each in a slice of
# width $d_{\text{head}} = d_{\text{model}} / H$:
#
# $$\text{head}_h = \operatorname{softmax}\!\left(\frac{(XW_Q^{(h)})(XW_K^{(h)})^\top}{\sqrt{d_{\text{head}}}}\right) X W_V^{(h)},
# \qquad \operatorname{MHA}(X) = [\text{head}_1, \dots, \text{head}_H]\; W_O .$$
#
# In code there is one $d_{\text{model}} \times d_{\text{model}}$ matrix per role: $W_Q^{(h)}$ is
# the block of columns $h\,d_{\text{head}}, \dots, (h+1)\,d_{\text{head}} - 1$ of $W_Q$. Splitting
# `x @ w_q`, shape $(N, d_{\text{model}})$, into heads is a reshape to $(N, H, d_{\text{head}})$
# followed by swapping the first two axes, giving $(H, N, d_{\text{head}})$.
#
# **Claim 1 (low rank).** Head $h$ scores query $i$ against key $j$ with a bilinear form,
#
# $$s^{(h)}_{ij} = \frac{x_i\, M_h\, x_j^\top}{\sqrt{d_{\text{head}}}}, \qquad M_h = W_Q^{(h)} W_K^{(h)\top} \in \mathbb{R}^{d_{\text{model}}\times d_{\text{model}}},
# \qquad \operatorname{rank} M_h \le d_{\text{head}} ,$$
#
# because $M_h$ is a product through a $d_{\text{head}}$-wide bottleneck. One full-width head
# has a single form of rank up to $d_{\text{model}}$; $H$ heads have $H$ forms of rank
# $d_{\text{head}}$ each, and $H$ separate softmaxes, so $H$ different patterns.
#
# **Claim 2 (a sum of heads).** Cut $W_O$ into $H$ blocks of $d_{\text{head}}$ rows, $W_O^{(h)}$. Then
#
# $$[\text{head}_1, \dots, \text{head}_H]\,W_O = \sum_{h=1}^{H} \text{head}_h\, W_O^{(h)} ,$$
#
# (block matrix multiplication): each head writes its own low-rank update into the output.
#
# **Claim 3 (parameters).** $W_Q, W_K, W_V, W_O$ are $d_{\text{model}}\times d_{\text{model}}$
# whatever $H$ is: $4d_{\text{model}}^2$ weights ($+4d_{\text{model}}$ biases). More heads cost
# no parameters, and the same $O(N^2 d_{\text{model}})$ arithmetic for the scores; they only
# cut the same budget into more, narrower pieces.

# %% multi_head_attention-md [markdown]
# ### Exercise 3 — `multi_head_attention` (3 points)
#
# Write `multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads, causal=False)` for `x` of shape
# `(..., N, d_model)` and four `(d_model, d_model)` matrices. Return `(out, weights)`:
# `out` is `(..., N, d_model)`, `weights` is `(..., n_heads, N, N)`.
#
# 1. project: `x @ w_q`, `x @ w_k`, `x @ w_v`;
# 2. split each into heads: `reshape(*lead, N, n_heads, d_head)` then `np.swapaxes(t, -3, -2)`;
# 3. per head: scores over $\sqrt{d_{\text{head}}}$ (not $\sqrt{d_{\text{model}}}$), with `causal=True` set
#    the scores where `attnlab.causal_mask(N)` is False to `-inf`, then `attnlab.softmax`;
# 4. weights times values, swap the axes back, reshape to `(..., N, d_model)`;
# 5. multiply by `w_o`.

# %%
def multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads, causal=False):
    """Multi-head self-attention. Returns out (..., N, d_model), weights (..., n_heads, N, N)."""
    ### BEGIN SOLUTION
    n_tokens, width = x.shape[-2], x.shape[-1]
    d_head = width // n_heads

    def split(t):  # (..., N, d_model) -> (..., n_heads, N, d_head)
        t = t.reshape(*t.shape[:-1], n_heads, d_head)
        return np.swapaxes(t, -3, -2)

    q, k, v = split(x @ w_q), split(x @ w_k), split(x @ w_v)
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d_head)
    if causal:
        scores = np.where(attnlab.causal_mask(n_tokens), scores, -np.inf)
    weights = attnlab.softmax(scores, axis=-1)
    heads = np.swapaxes(weights @ v, -3, -2)  # (..., N, n_heads, d_head)
    merged = heads.reshape(*heads.shape[:-2], width)
    return merged @ w_o, weights
    ### END SOLUTION


# %%
check("multi_head_attention", multi_head_attention)
### BEGIN HIDDEN TESTS
check("multi_head_attention", multi_head_attention, hidden=True)
### END HIDDEN TESTS

# %% mha-check-md [markdown]
# ### The checks: ranks, the sum of heads, and parameter counts
#
# The heads below are rebuilt from Claims 1 and 2 alone — each head's scores from its matrix
# $M_h$, the output as a sum over heads — with no reshape at all, and compared with
# `attnlab.multi_head_attention`.

# %% mha-check
rng = np.random.default_rng(3)
tokens = ["the", "cat", "sat", "on", "the", "mat"]
d_model, n_heads = 16, 4
d_head = d_model // n_heads
x = rng.normal(size=(len(tokens), d_model))
w_q, w_k, w_v, w_o = rng.normal(size=(4, d_model, d_model)) / np.sqrt(d_model)
out, weights = attnlab.multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads)
print(tr("weights shape (heads, queries, keys):"), weights.shape)

ranks, score_error, total = [], 0.0, np.zeros_like(out)
for h in range(n_heads):
    cols = slice(h * d_head, (h + 1) * d_head)
    M_h = w_q[:, cols] @ w_k[:, cols].T  # d_model x d_model
    ranks.append(int(np.linalg.matrix_rank(M_h)))
    A_h = attnlab.softmax(x @ M_h @ x.T / np.sqrt(d_head))  # Claim 1
    score_error = max(score_error, np.abs(A_h - weights[h]).max())
    head_h = A_h @ (x @ w_v[:, cols])
    total += head_h @ w_o[cols, :]  # Claim 2: W_O^(h) is a block of d_head rows
print(tr("rank of M_h for each head: {ranks} (d_head = {d_head}); one full-width head: rank {full_rank} "
         "(d_model = {d_model})",
         ranks=ranks, d_head=d_head, full_rank=np.linalg.matrix_rank(w_q @ w_k.T), d_model=d_model))
print(tr("Claim 1: max |softmax(x M_h x^T / sqrt(d_head)) - weights[h]| = {err:.1e}", err=score_error))
print(tr("Claim 2: max |sum_h head_h W_O^(h) - MHA(x)|                 = {err:.1e}", err=np.abs(total - out).max()))

print(tr("\nClaim 3, d_model = 768 (GPT-2 small): parameters of attnlab's torch Attention module"))
print("{:>6s} {:>7s} {:>13s} {:>10s} {:>14s}".format(
    tr("heads"), "d_head", tr("torch module"), "4d^2 + 4d", tr("rank per head")))
for H in (1, 2, 4, 8, 12):
    module = attnlab.Attention(attnlab.GPTConfig(d_model=768, n_heads=H))
    counted = sum(p.numel() for p in module.parameters())
    print(f"{H:6d} {768 // H:7d} {counted:13,d} {4 * 768**2 + 4 * 768:10,d} {768 // H:14d}")

# %% mha-heads-md [markdown]
# Each head's pattern on the six tokens. These weights are random, so the patterns mean nothing
# yet — but they already differ from head to head, which is the point: four independent ways
# of distributing attention, for the parameters of one. (Zone 2 shows trained heads.)

# %% mha-heads
for h in range(n_heads):
    print(tr("head {h}: 'mat' attends most to '{word}' (weight {weight:.2f})",
             h=h + 1, word=tokens[weights[h, -1].argmax()], weight=weights[h, -1].max()))
attnlab.plot_attention_grid(weights, tokens=tokens, title=tr("attnlab.multi_head_attention, 4 random heads"))
plt.show()
try:
    my_out, my_weights = multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads)
    print(tr("yours vs attnlab: max |out difference| = {out_diff:.1e}, max |weights difference| = {weights_diff:.1e}",
             out_diff=np.abs(my_out - out).max(), weights_diff=np.abs(my_weights - weights).max()))
except NotImplementedError:
    print(tr("Write multi_head_attention above to compare yours."))

# %% s5-md [markdown]
# ## 5. Positions
#
# Attention compares every query with every key, and nothing in the formula says *where* a
# token sits. Shuffle the tokens and the outputs are shuffled the same way (Zone 2 calls this
# permutation equivariance). The check: $\max|\operatorname{MHA}(PX) - P\operatorname{MHA}(X)|$ for a
# permutation $P$, without and with positions added to $X$.

# %% perm
perm = np.array([2, 0, 1, 5, 3, 4])
pe6 = attnlab.sinusoidal_positional_encoding(len(tokens), d_model)


def mha_no_positions(t):
    return attnlab.multi_head_attention(t, w_q, w_k, w_v, w_o, n_heads)[0]


def mha_with_positions(t):
    return attnlab.multi_head_attention(t + pe6, w_q, w_k, w_v, w_o, n_heads)[0]


print(tr("no positions:   max |MHA(Px) - P MHA(x)| = {gap:.1e}", gap=attnlab.permutation_check(mha_no_positions, x, perm)))
print(tr("with positions: max |MHA(Px) - P MHA(x)| = {gap:.1e}", gap=attnlab.permutation_check(mha_with_positions, x, perm)))

# %% s5-intro-md [markdown]
# There are three places to put position information, and the three encodings of this section
# use one each:
#
# - **add** it to the token vectors, once, at the input: sinusoidal (and learned) encodings;
# - **rotate** the queries and keys, in every layer: RoPE;
# - **bias** the scores, in every layer: ALiBi.
#
# ### 5.1 Sinusoidal encodings (Vaswani et al. 2017)
#
# $$PE_{p,\,2i} = \sin(p\,\omega_i), \qquad PE_{p,\,2i+1} = \cos(p\,\omega_i), \qquad
# \omega_i = \frac{1}{10000^{2i/d_{\text{model}}}}, \qquad p = 0, 1, \dots$$
#
# Pair $i$ is a point turning on a circle at angular speed $\omega_i$: pair 0 turns once every
# $2\pi$ positions, and the slowest pair, $i = d_{\text{model}}/2 - 1$, once every
# $2\pi \cdot 10000^{(d_{\text{model}} - 2)/d_{\text{model}}}$ positions, which approaches
# $2\pi \cdot 10000$ only as $d_{\text{model}}$ grows (the cell after the exercise prints both ends
# for $d_{\text{model}} = 32$). Like the hands of a clock, fast and slow pairs together give every
# position a distinct vector.

# %% sinusoidal_positional_encoding-md [markdown]
# ### Exercise 4 — `sinusoidal_positional_encoding` (2 points)
#
# Write `sinusoidal_positional_encoding(n_positions, d_model)` returning the
# `(n_positions, d_model)` array above. Positions start at 0; even columns hold sines, odd
# columns cosines (interleaved, not in two halves). With an odd `d_model` the last column is
# the sine of one more frequency, whose cosine partner does not fit: `pe[:, 0::2]` has
# `ceil(d/2)` columns and `pe[:, 1::2]` has `floor(d/2)`.

# %%
def sinusoidal_positional_encoding(n_positions, d_model):
    """PE[p, 2i] = sin(p w_i), PE[p, 2i+1] = cos(p w_i), w_i = 10000**(-2i/d_model)."""
    ### BEGIN SOLUTION
    p = np.arange(n_positions)[:, None]
    two_i = np.arange(0, d_model, 2)[None, :]
    angles = p / 10000.0 ** (two_i / d_model)  # (n_positions, ceil(d_model / 2))
    pe = np.zeros((n_positions, d_model))
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : d_model // 2])
    return pe
    ### END SOLUTION


# %%
check("sinusoidal_positional_encoding", sinusoidal_positional_encoding)
### BEGIN HIDDEN TESTS
check("sinusoidal_positional_encoding", sinusoidal_positional_encoding, hidden=True)
### END HIDDEN TESTS

# %% pe-picture
pe = attnlab.sinusoidal_positional_encoding(64, 32)
omega = 10000.0 ** (-np.arange(0, 32, 2) / 32)
print(tr("d_model = 32: wavelengths 2 pi / omega_i from {shortest:.1f} to {longest:,.0f} positions "
         "(= 2 pi 10000^(30/32); 2 pi 10000 would be {full:,.0f})",
         shortest=2 * np.pi / omega[0], longest=2 * np.pi / omega[-1], full=2 * np.pi * 1e4))
fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
im = axes[0].imshow(pe.T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
axes[0].set_xlabel(tr("position p"))
axes[0].set_ylabel(tr("column"))
axes[0].set_title(tr("PE (64 positions, d_model = 32)"))
fig.colorbar(im, ax=axes[0])
for col in (0, 1, 6, 14):
    axes[1].plot(pe[:, col], label=tr("column {col}", col=col))
axes[1].set_xlabel(tr("position p"))
axes[1].legend(fontsize=8)
axes[1].set_title(tr("fast and slow columns"))
plt.show()

# %% shift-md [markdown]
# ### Relative positions are a linear map: $PE_{p+k} = A(k)\, PE_p$
#
# **Claim.** For every offset $k$ there is a matrix $A(k)$, the same for **every** position $p$,
# with $PE_{p+k} = A(k)\,PE_p$ (vectors as columns here).
#
# **Proof.** Take one pair, with $\omega = \omega_i$. The angle addition formulas give
#
# $$\begin{aligned}
# \sin((p+k)\omega) &= \cos(k\omega)\,\sin(p\omega) + \sin(k\omega)\,\cos(p\omega),\\
# \cos((p+k)\omega) &= -\sin(k\omega)\,\sin(p\omega) + \cos(k\omega)\,\cos(p\omega),
# \end{aligned}
# \qquad\text{so}\qquad
# \begin{pmatrix}\sin((p+k)\omega)\\ \cos((p+k)\omega)\end{pmatrix} =
# \underbrace{\begin{pmatrix}\cos k\omega & \sin k\omega\\ -\sin k\omega & \cos k\omega\end{pmatrix}}_{R_i(k)}
# \begin{pmatrix}\sin p\omega\\ \cos p\omega\end{pmatrix}.$$
#
# $R_i(k)$ involves $k$ and $\omega_i$ but not $p$. Put the $d_{\text{model}}/2$ blocks $R_i(k)$ on
# the diagonal of a $d_{\text{model}} \times d_{\text{model}}$ matrix: that is $A(k)$. $\blacksquare$
#
# Corollaries: each block is a rotation, so $A(k)$ is orthogonal ($A A^\top = I$); rotations
# compose, $A(j)A(k) = A(j+k)$; and the dot product of two encodings depends only on their
# distance: $PE_p \cdot PE_{p+k} = PE_p^\top A(k) PE_p = \sum_i \cos(k\,\omega_i)$.
#
# The checks: one block built by hand from the formula; the whole $A(k)$ from
# `attnlab.sinusoid_shift_matrix`; and — independently of the derivation — the best linear map
# from $PE_p$ to $PE_{p+k}$ fitted by least squares on 2000 positions. If no such map existed,
# the fit would leave a large residual.

# %% shift
d_model = 16
pe = attnlab.sinusoidal_positional_encoding(3000, d_model)
rows = slice(0, 2000)  # positions p = 0 .. 1999

# One 2x2 block by hand: pair 0, omega_0 = 1, offset k = 3. Rows are vectors here, so
# "PE[p+k] = R PE[p]" reads pe[p + k] = pe[p] @ R.T.
k = 3
R = np.array([[np.cos(k), np.sin(k)], [-np.sin(k), np.cos(k)]])
print(tr("pair 0 by hand: max over p of |PE[p+3, 0:2] - R PE[p, 0:2]| = {err:.1e}",
         err=np.abs(pe[k:k + 2000, 0:2] - pe[rows, 0:2] @ R.T).max()))

A3 = attnlab.sinusoid_shift_matrix(3, d_model)
print(tr("top-left corner of A(3): two rotation blocks, zeros elsewhere\n"), A3[:4, :4])
for k in (1, 3, 10, 100, 999):
    A_k = attnlab.sinusoid_shift_matrix(k, d_model)
    err = np.abs(pe[k:k + 2000] - pe[rows] @ A_k.T).max()
    print(tr("k = {k:4d}: max over 2000 positions of |PE[p+k] - A(k) PE[p]| = {err:.1e}", k=k, err=err))

B, *_ = np.linalg.lstsq(pe[rows], pe[3:2003], rcond=None)  # best B with pe[p + 3] ~ pe[p] @ B
print(tr("least squares, k = 3: residual {residual:.1e}, max |fitted map - A(3)| = {diff:.1e}",
         residual=np.abs(pe[rows] @ B - pe[3:2003]).max(), diff=np.abs(B.T - A3).max()))
A2, A5 = attnlab.sinusoid_shift_matrix(2, d_model), attnlab.sinusoid_shift_matrix(5, d_model)
print(tr("orthogonal: max |A(3) A(3)^T - I| = {orthogonal:.1e};  compose: max |A(2) A(3) - A(5)| = {compose:.1e}",
         orthogonal=np.abs(A3 @ A3.T - np.eye(d_model)).max(), compose=np.abs(A2 @ A3 - A5).max()))
omega = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)
dots = np.einsum("pd,pd->p", pe[0:2000], pe[7:2007])  # PE_p . PE_{p+7} for every p
print(tr("PE_p . PE_(p+7) over 2000 positions: spread {spread:.1e}, vs sum_i cos(7 w_i): max difference {diff:.1e}",
         spread=np.ptp(dots), diff=np.abs(dots - np.cos(7 * omega).sum()).max()))

# %% shift-yours
try:
    mine = sinusoidal_positional_encoding(1010, d_model)
    A10 = attnlab.sinusoid_shift_matrix(10, d_model)
    print(tr("your encoding: max |PE[p+10] - A(10) PE[p]| over 1000 positions = {err:.1e}",
             err=np.abs(mine[10:1010] - mine[:1000] @ A10.T).max()))
except NotImplementedError:
    print(tr("Write sinusoidal_positional_encoding above to check the shift property on yours."))

# %% rope-md [markdown]
# ### 5.2 RoPE: rotary position embedding (Su et al. 2021)
#
# The sinusoidal encoding is *added* to $x$, so a score $(x_m + PE_m) W_Q W_K^\top (x_n + PE_n)^\top$
# expands into four terms (content–content, content–position, position–content,
# position–position), and nothing forces any of them to depend on $m - n$ alone: the rotation
# structure of $A(k)$ survives $W_Q W_K^\top$ only by luck. RoPE puts the rotation where the
# score is made: it rotates $q$ and $k$ themselves.
#
# Split a vector into pairs $(x_{2i}, x_{2i+1})$ and rotate pair $i$ of the token at position
# $p$ by the angle $p\,\theta_i$, with $\theta_i = \text{base}^{-2i/d}$ (base $= 10000$):
#
# $$\begin{pmatrix} x'_{2i} \\ x'_{2i+1}\end{pmatrix} = R(p\theta_i) \begin{pmatrix} x_{2i} \\ x_{2i+1}\end{pmatrix},
# \qquad R(\varphi) = \begin{pmatrix}\cos\varphi & -\sin\varphi\\ \sin\varphi & \cos\varphi\end{pmatrix}.$$
#
# In complex numbers this is one multiplication: $z_i = x_{2i} + \mathrm{i}\,x_{2i+1} \mapsto z_i\, e^{\mathrm{i} p\theta_i}$.
#
# **Claim.** The score between a query at position $m$ and a key at position $n$ depends on the
# positions only through $m - n$:
#
# $$\operatorname{rope}(q, m) \cdot \operatorname{rope}(k, n) = \sum_i q_{(i)}^\top R\big((n - m)\theta_i\big)\, k_{(i)} ,$$
#
# where $q_{(i)}$ is pair $i$ of $q$.
#
# **Proof.** The score is a sum over pairs of $\big(R(m\theta)q_{(i)}\big)^\top R(n\theta) k_{(i)}
# = q_{(i)}^\top R(m\theta)^\top R(n\theta)\, k_{(i)}$. A rotation's transpose is the rotation
# backwards, $R(a)^\top = R(-a)$, and rotations add their angles, $R(-a)R(b) = R(b - a)$. So each
# term is $q_{(i)}^\top R((n-m)\theta_i) k_{(i)}$. $\blacksquare$
#
# Also, rotations keep lengths: $|\operatorname{rope}(x, p)| = |x|$, so RoPE never changes a
# vector's size, only its direction.

# %% apply_rope-md [markdown]
# ### Exercise 5 — `apply_rope` (3 points)
#
# Write `apply_rope(x, positions=None, base=10000.0)` for `x` of shape `(..., N, d)`, `d` even.
# `positions` has `N` entries, default `np.arange(N)`. With `a = x[..., 0::2]`, `b = x[..., 1::2]`
# and `t` the angles $p\,\theta_i$, shape `(N, d/2)`, the result has `a cos t - b sin t` in the even
# columns and `a sin t + b cos t` in the odd ones.
#
# (Some libraries pair $x_i$ with $x_{i + d/2}$ instead — "rotate half". Same idea, different
# layout; here the pairs are interleaved.)

# %%
def apply_rope(x, positions=None, base=10000.0):
    """Rotate each pair (x[2i], x[2i+1]) of the token at position p by p * base**(-2i/d)."""
    ### BEGIN SOLUTION
    n_tokens, width = x.shape[-2], x.shape[-1]
    if positions is None:
        positions = np.arange(n_tokens)
    theta = base ** (-np.arange(0, width, 2) / width)  # (d/2,)
    angles = np.asarray(positions, dtype=float)[:, None] * theta  # (N, d/2)
    cos, sin = np.cos(angles), np.sin(angles)
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = np.empty_like(x)
    rotated[..., 0::2] = even * cos - odd * sin
    rotated[..., 1::2] = even * sin + odd * cos
    return rotated
    ### END SOLUTION


# %%
check("apply_rope", apply_rope)
### BEGIN HIDDEN TESTS
check("apply_rope", apply_rope, hidden=True)
### END HIDDEN TESTS

# %% rope-check-md [markdown]
# ### The checks: complex numbers, lengths, and scores along diagonals
#
# Place the same query vector $q$ at every position $m = 0..31$ and the same key vector $k$ at
# every position $n = 0..31$, and tabulate the scores $S_{mn}$. If the claim holds, $S$ is
# constant along every diagonal ($m - n$ fixed): the largest spread along a diagonal is
# rounding error, while the score still changes *between* diagonals.

# %% rope-check
rng = np.random.default_rng(5)
x8 = rng.normal(size=(5, 8))
theta = 10000.0 ** (-np.arange(0, 8, 2) / 8)
z_rot = (x8[:, 0::2] + 1j * x8[:, 1::2]) * np.exp(1j * np.arange(5)[:, None] * theta)
as_real = np.stack([z_rot.real, z_rot.imag], axis=-1).reshape(5, 8)  # interleave back
print(tr("complex form: max |apply_rope(x) - (x_2i + i x_2i+1) e^(i p theta_i)| = {err:.1e}",
         err=np.abs(attnlab.apply_rope(x8) - as_real).max()))
print(tr("lengths kept: max ||rope(x)| - |x|| = {err:.1e}",
         err=np.abs(np.linalg.norm(attnlab.apply_rope(x8), axis=-1) - np.linalg.norm(x8, axis=-1)).max()))

q, k = rng.normal(size=(2, 16))
n_pos = 32
Q_rot = attnlab.apply_rope(np.tile(q, (n_pos, 1)))  # row m: q at position m
K_rot = attnlab.apply_rope(np.tile(k, (n_pos, 1)))  # row n: k at position n
S = Q_rot @ K_rot.T
along = max(np.ptp(np.diagonal(S, offset=o)) for o in range(-n_pos + 1, n_pos))
between = np.ptp([np.diagonal(S, offset=o).mean() for o in range(-n_pos + 1, n_pos)])
print(tr("RoPE scores: largest spread ALONG a diagonal {along:.1e}; spread BETWEEN diagonals {between:.2f}",
         along=along, between=between))
far = attnlab.apply_rope(np.tile(q, (n_pos, 1)), positions=np.arange(n_pos) + 1000)
far_k = attnlab.apply_rope(np.tile(k, (n_pos, 1)), positions=np.arange(n_pos) + 1000)
print(tr("all positions moved by 1000: max |S - S_shifted| = {err:.1e}", err=np.abs(S - far @ far_k.T).max()))

fig, ax = plt.subplots(figsize=(4.8, 3.9))
im = ax.imshow(S, cmap="RdBu")
fig.colorbar(im, ax=ax)
ax.set_xlabel(tr("key position n"))
ax.set_ylabel(tr("query position m"))
ax.set_title(tr("RoPE scores: constant along diagonals"))
plt.show()
try:
    mine_q = apply_rope(np.tile(q, (n_pos, 1)))
    mine_k = apply_rope(np.tile(k, (n_pos, 1)))
    print(tr("your apply_rope: max |S_yours - S| = {err:.1e}", err=np.abs(mine_q @ mine_k.T - S).max()))
except NotImplementedError:
    print(tr("Write apply_rope above to compare yours."))

# %% alibi-md [markdown]
# ### 5.3 ALiBi: attention with linear biases (Press et al. 2022)
#
# ALiBi adds no vectors at all. It subtracts a penalty proportional to the distance from every
# score, with a different slope $m_h$ per head:
#
# $$s^{(h)}_{ij} = \frac{q_i\cdot k_j}{\sqrt{d_{\text{head}}}} - m_h\,|i - j|, \qquad
# m_h = 2^{-8h/H}\quad (h = 1, \dots, H \text{ for } H \text{ a power of two}).$$
#
# For $H = 8$ the slopes are $\tfrac12, \tfrac14, \dots, \tfrac1{256}$: steep heads look nearby,
# shallow heads far away. (For other $H$ the paper interleaves two such sequences;
# `attnlab.alibi_slopes` follows its rule.)
#
# **What the bias does.** If every key had the same content score $c$, the weights of query $i$
# would be $\alpha_{ij} \propto e^{c - m_h|i-j|} \propto e^{-m_h |i-j|}$: each step further away
# multiplies the weight by $e^{-m_h}$. Head $h$ has an effective span of about $1/m_h$ tokens.
# The score depends on $i - j$ only, by construction.

# %% alibi-slopes
print("attnlab.alibi_slopes(8): ", attnlab.alibi_slopes(8))
print("2**(-8h/8), h = 1..8:    ", 2.0 ** (-8 * np.arange(1, 9) / 8))
print("attnlab.alibi_slopes(12):", attnlab.alibi_slopes(12))

# %% alibi_bias-md [markdown]
# ### Exercise 6 — `alibi_bias` (2 points)
#
# Write `alibi_bias(n_heads, n_q, n_k=None)` returning the `(n_heads, n_q, n_k)` array
# $-m_h\,|i - j|$ (`n_k` defaults to `n_q`). Take the slopes from `attnlab.alibi_slopes(n_heads)`.
# Like the causal mask (§7), the bias is **bottom-right aligned**: with fewer queries than keys
# (decoding with a KV cache), query $i$ sits at absolute position $i + (n_k - n_q)$, so the last
# query is level with the last key.

# %%
def alibi_bias(n_heads, n_q, n_k=None):
    """ALiBi bias -slope_h * |i - j|, (n_heads, n_q, n_k), queries aligned to the last keys."""
    ### BEGIN SOLUTION
    if n_k is None:
        n_k = n_q
    slopes = attnlab.alibi_slopes(n_heads)
    query_positions = np.arange(n_q)[:, None] + (n_k - n_q)
    key_positions = np.arange(n_k)[None, :]
    distance = np.abs(query_positions - key_positions)
    return -slopes[:, None, None] * distance[None, :, :]
    ### END SOLUTION


# %%
check("alibi_bias", alibi_bias)
### BEGIN HIDDEN TESTS
check("alibi_bias", alibi_bias, hidden=True)
### END HIDDEN TESTS

# %% alibi-check-md [markdown]
# The check: give all keys the same content score (zero), keep only the bias and the causal
# mask, and measure the ratio between the weights of neighbouring keys for the last query.
# The claim says it is $e^{-m_h}$ exactly.

# %% alibi-check
n_alibi, H_alibi = 10, 8
bias = attnlab.alibi_bias(H_alibi, n_alibi)
w_alibi = attnlab.softmax(np.where(attnlab.causal_mask(n_alibi), bias, -np.inf))
last = w_alibi[:, -1, :]  # (heads, keys): the last query's weights
ratio = last[:, :-1] / last[:, 1:]  # weight of key j over weight of key j + 1
slopes = attnlab.alibi_slopes(H_alibi)
print("{:>4s} {:>8s} {:>14s} {:>8s} {:>9s}".format(tr("head"), tr("slope m"), "w_j / w_(j+1)", "e^(-m)", tr("span 1/m")))
for h in range(H_alibi):
    print(f"{h + 1:4d} {slopes[h]:8.4f} {ratio[h].mean():14.6f} {np.exp(-slopes[h]):8.6f} {1 / slopes[h]:9.1f}")
print(tr("max |w_j / w_(j+1) - e^(-m_h)| over heads and keys = {err:.1e}",
         err=np.abs(ratio - np.exp(-slopes)[:, None]).max()))
attnlab.plot_attention_grid(attnlab.alibi_bias(4, n_alibi), kind="bias",
                       title=tr("ALiBi bias -m_h |i - j|, 4 heads (steep to shallow)"))
plt.show()
try:
    print(tr("yours vs attnlab (3 heads, 4 queries, 7 keys): max difference = {diff:.1e}",
             diff=np.abs(alibi_bias(3, 4, 7) - attnlab.alibi_bias(3, 4, 7)).max()))
except NotImplementedError:
    print(tr("Write alibi_bias above to compare yours."))

# %% compare-md [markdown]
# ### 5.4 The three compared
#
# | | where | parameters | score depends only on $m-n$? | beyond the training length | used by |
# | --- | --- | --- | --- | --- | --- |
# | learned absolute | added to $x$ at the input | $N_{\max} \times d_{\text{model}}$ | no | undefined: the table has no row for $p \ge N_{\max}$; rows that exist but were never trained on hold their random initial values | GPT-2, BERT |
# | sinusoidal | added to $x$ at the input | none | no (only through $A(k)$, which the model must learn to use) | defined, but quality drops (Press et al. 2022) | original Transformer |
# | RoPE | rotates $q, k$ in every layer | none | **yes** | degrades unless rescaled (position interpolation, NTK / YaRN scaling) | LLaMA, Mistral, Qwen, GPT-NeoX |
# | ALiBi | bias on the scores in every layer | none (fixed slopes) | **yes** | good: "train short, test long" (Press et al. 2022) | BLOOM, MPT |
#
# The third column, measured: `attnlab.relative_position_check` places one fixed query token
# and one fixed key token at every position (random projections, $d = 16$) and reports the
# scores' spread *along* diagonals (0 means: a function of $m - n$ only) and *between*
# diagonals (0 means: no position information at all). Zone 5 measures the fifth column by
# training models short and testing them long. To test a learned table there at all, Zone 5
# gives it a row for every test position and trains only on the first ones; the rows it never
# trains stay small and random, so past the training length that model is left with almost no
# position signal (Zone 5 prints their size). A pretrained GPT-2 has no such rows: its table
# stops at its context length.

# %% compare
print("{:>11s} {:>23s} {:>25s}".format(tr("encoding"), tr("spread along diagonals"), tr("spread between diagonals")))
for kind in ("none", "sinusoidal", "rope", "alibi"):
    S_kind, along = attnlab.relative_position_check(kind)
    between = np.ptp([np.diagonal(S_kind, offset=o).mean() for o in range(-23, 24)])
    print(f"{kind:>11s} {along:23.1e} {between:25.2f}")

# %% explorer-md [markdown]
# ### 5.5 Explorer: how each encoding sees distance
#
# How similar do two positions $k$ apart look? Left, the cosine of $PE_p$ and $PE_{p+k}$
# ($=\frac{2}{d}\sum_i\cos k\omega_i$ by §5.1); middle, the RoPE score of a vector with itself
# $k$ positions later, divided by $|q|^2$; right, the factor $e^{-m_h k}$ ALiBi puts on a weight.
# The printed line "measured from position 100" confirms that none of the curves depends on
# where you start. Try a small RoPE base (fast rotations: similarity oscillates quickly) and a
# small `d_model` (few frequencies: the curves become periodic). The controls: **d_model** is the
# width ($d/2$ frequencies), **RoPE base** the base $b$ of RoPE's frequencies $\theta_i = b^{-2i/d}$,
# **max k** the largest distance drawn, and **ALiBi heads** the number of heads, each with its
# own slope $m_h$.

# %% explorer
attnlab.positional_encoding_explorer()

# %% s6-md [markdown]
# ## 6. The Transformer block
#
# Attention mixes information *between* tokens; a feed-forward network (FFN) then transforms
# each token on its own. Each of the two sub-layers sits inside a residual connection, with a
# normalisation. GPT-2 (and nearly every model since) uses **Pre-LN**:
#
# $$h = x + \operatorname{Attn}(\operatorname{LN}_1(x)), \qquad y = h + \operatorname{FFN}(\operatorname{LN}_2(h)).$$
#
# The original Transformer used **Post-LN**: $h = \operatorname{LN}_1(x + \operatorname{Attn}(x))$,
# $y = \operatorname{LN}_2(h + \operatorname{FFN}(h))$. This section derives each part, then
# measures the difference between the two orders.
#
# ### 6.1 Residual connections
#
# $y = x + F(x)$ has Jacobian $\dfrac{\partial y}{\partial x} = I + \dfrac{\partial F}{\partial x}$.
# Through $L$ layers the chain rule multiplies $L$ such factors; expanding the product gives
# $I$ plus terms, so the gradient always has a **direct path** from the output to every layer.
# Without the residual the product is $\prod_l \partial F_l/\partial x$, which shrinks (or grows)
# geometrically when the factors are small (or large). Measured on 30 tanh layers with
# the same weights, with and without the `x +`:

# %% residual
norms = attnlab.residual_gradient_demo(n_layers=30, width=32, gain=0.5)
print(tr("gradient norm reaching the input after 30 layers: plain {plain:.1e}, residual {residual:.1e}",
         plain=norms["plain"], residual=norms["residual"]))

# %% norms-md [markdown]
# ### 6.2 LayerNorm and RMSNorm
#
# **LayerNorm** (Ba et al. 2016) normalises each token vector $x \in \mathbb{R}^d$ over its own features:
#
# $$\mu = \frac1d\sum_{i} x_i, \qquad \sigma^2 = \frac1d\sum_{i}(x_i - \mu)^2, \qquad
# \operatorname{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \varepsilon}} + \beta .$$
#
# The variance divides by $d$ (the *biased* estimator, as `torch.nn.LayerNorm` does); $\varepsilon$
# (here $10^{-5}$) sits inside the square root and guards against $\sigma = 0$; $\gamma, \beta$ are
# learned. Consequences: with $\gamma = 1, \beta = 0$ every token comes out with mean 0 and
# variance $\sigma^2/(\sigma^2+\varepsilon) \approx 1$, and $\operatorname{LN}(ax + b) = \operatorname{LN}(x)$ for any
# $a > 0$ and constant shift $b$ (exactly, when $\varepsilon = 0$): the size of the residual
# stream does not reach the sub-layer.
#
# **RMSNorm** (Zhang & Sennrich 2019), used by LLaMA and most recent models, drops the mean and $\beta$:
#
# $$\operatorname{RMSNorm}(x) = \gamma \odot \frac{x}{\sqrt{\frac1d\sum_i x_i^2 + \varepsilon}} .$$
#
# It is cheaper (one reduction instead of two) and invariant to scaling but not to shifts.
# LayerNorm *is* RMSNorm applied to the centred vector: $\operatorname{LN}(x) = \operatorname{RMSNorm}(x - \mu)$
# when $\beta = 0$ and the $\varepsilon$'s agree, because $\frac1d\sum_i(x_i-\mu)^2 = \sigma^2$.

# %% layer_norm-md [markdown]
# ### Exercise 7 — `layer_norm` (2 points)
#
# Write `layer_norm(x, gamma, beta, eps=1e-5)` for `x` of shape `(..., d)` and `gamma`, `beta` of
# shape `(d,)`: statistics over the last axis (`axis=-1, keepdims=True`), biased variance,
# `eps` inside the square root.

# %%
def layer_norm(x, gamma, beta, eps=1e-5):
    """LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta."""
    ### BEGIN SOLUTION
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=-1, keepdims=True)
    x_hat = (x - mean) / np.sqrt(var + eps)
    return x_hat * gamma + beta
    ### END SOLUTION


# %%
check("layer_norm", layer_norm)
### BEGIN HIDDEN TESTS
check("layer_norm", layer_norm, hidden=True)
### END HIDDEN TESTS

# %% norms-check
rng = np.random.default_rng(6)
xn = 3.0 + 2.0 * rng.normal(size=(4, 10))
gamma, beta = 1 + 0.1 * rng.normal(size=10), 0.1 * rng.normal(size=10)
ln = attnlab.layer_norm(xn, gamma, beta)
ln_torch = F.layer_norm(torch.from_numpy(xn), (10,), torch.from_numpy(gamma), torch.from_numpy(beta), eps=1e-5)
print(tr("LayerNorm vs torch.nn.functional.layer_norm: max difference {diff:.1e}", diff=np.abs(ln - ln_torch.numpy()).max()))
plain = attnlab.layer_norm(xn, np.ones(10), np.zeros(10))
print(tr("per-token mean after LN: max |mean| {mean:.1e}; variance: {low:.6f} .. {high:.6f}",
         mean=np.abs(plain.mean(axis=-1)).max(), low=plain.var(axis=-1).min(), high=plain.var(axis=-1).max()))
ones, zeros = np.ones(10), np.zeros(10)
invariance = np.abs(attnlab.layer_norm(5 * xn - 7, ones, zeros, eps=0.0)
                    - attnlab.layer_norm(xn, ones, zeros, eps=0.0)).max()
print(tr("LN(5x - 7) = LN(x) with eps = 0: max difference {diff:.1e}", diff=invariance))
centred = xn - xn.mean(axis=-1, keepdims=True)
print(tr("LN(x) = RMSNorm(x - mean): max difference {diff:.1e}",
         diff=np.abs(attnlab.layer_norm(xn, gamma, zeros) - attnlab.rms_norm(centred, gamma, eps=1e-5)).max()))
rms_torch = F.rms_norm(torch.from_numpy(xn), (10,), torch.from_numpy(gamma), eps=1e-6)
print(tr("RMSNorm vs torch.nn.functional.rms_norm: max difference {diff:.1e}",
         diff=np.abs(attnlab.rms_norm(xn, gamma) - rms_torch.numpy()).max()))
try:
    print(tr("your layer_norm vs torch: max difference {diff:.1e}",
             diff=np.abs(layer_norm(xn, gamma, beta) - ln_torch.numpy()).max()))
except NotImplementedError:
    print(tr("Write layer_norm above to compare yours with torch."))

# %% ffn-md [markdown]
# ### 6.3 The feed-forward network: ReLU, GELU, SwiGLU
#
# $$\operatorname{FFN}(x) = \phi(x W_1 + b_1)\, W_2 + b_2, \qquad W_1 \in \mathbb{R}^{d\times 4d},\ W_2 \in \mathbb{R}^{4d \times d} .$$
#
# The same two-layer network is applied to every token separately; it holds two thirds of a
# block's parameters ($8d^2$ against $4d^2$ for attention). The activation $\phi$:
#
# - **ReLU** $\max(0, x)$: the original Transformer.
# - **GELU** $x\,\Phi(x)$, $\Phi$ the standard normal CDF (Hendrycks & Gimpel 2016): a smooth ReLU
#   that lets small negative values through. GPT-2 uses the approximation
#   $\tfrac12 x\big(1 + \tanh\big(\sqrt{2/\pi}\,(x + 0.044715\,x^3)\big)\big)$.
# - **SwiGLU** (Shazeer 2020): a *gated* unit, $\operatorname{FFN}(x) = \big(\operatorname{SiLU}(xW_1) \odot xW_3\big) W_2$ with
#   $\operatorname{SiLU}(u) = u\,\sigma(u)$. One branch decides how much of the other passes. Three matrices
#   instead of two, so LLaMA shrinks the hidden width to $\tfrac83 d$ to keep $3 \cdot d \cdot \tfrac83 d = 8d^2$ parameters.

# %% ffn
attnlab.plot_activations()
plt.show()
u = np.linspace(-6, 6, 1201)
print(tr("max |GELU exact - GELU tanh| on [-6, 6]: {diff:.1e}",
         diff=np.abs(attnlab.gelu(u) - attnlab.gelu(u, approximate="tanh")).max()))
print(tr("attnlab.gelu vs torch: exact {exact:.1e}, tanh {tanh:.1e}",
         exact=np.abs(attnlab.gelu(u) - F.gelu(torch.from_numpy(u)).numpy()).max(),
         tanh=np.abs(attnlab.gelu(u, approximate="tanh") - F.gelu(torch.from_numpy(u), approximate="tanh").numpy()).max()))

torch.manual_seed(0)
d = 48
mlp_gelu = attnlab.MLP(attnlab.GPTConfig(d_model=d, n_heads=4, mlp="gelu", bias=False))
mlp_swiglu = attnlab.MLP(attnlab.GPTConfig(d_model=d, n_heads=4, mlp="swiglu", bias=False)).double()
x_ffn = np.random.default_rng(7).normal(size=(5, d))
with torch.no_grad():
    y_torch = mlp_swiglu(torch.from_numpy(x_ffn)).numpy()
w1, w3, w2 = (layer.weight.detach().numpy().T for layer in (mlp_swiglu.gate, mlp_swiglu.up, mlp_swiglu.down))
print(tr("attnlab.swiglu vs attnlab's torch SwiGLU MLP: max difference {diff:.1e}",
         diff=np.abs(attnlab.swiglu(x_ffn, w1, w2, w3) - y_torch).max()))
count = {name: sum(p.numel() for p in m.parameters()) for name, m in (("GELU", mlp_gelu), ("SwiGLU", mlp_swiglu))}
print(tr("parameters at d = {d}: GELU MLP (hidden {gelu_hidden}) {gelu:,}; "
         "SwiGLU MLP (hidden {swiglu_hidden}) {swiglu:,}; 8 d^2 = {eight_d2:,}",
         d=d, gelu_hidden=4 * d, gelu=count["GELU"], swiglu_hidden=mlp_swiglu.up.out_features,
         swiglu=count["SwiGLU"], eight_d2=8 * d * d))

# %% preln-md [markdown]
# ### 6.4 Pre-LN vs Post-LN
#
# Where the norm sits decides what the gradient sees. In **Pre-LN** the residual stream
# $x \to x + F(\operatorname{LN}(x))$ is never normalised on its way through the stack: the identity
# path of §6.1 runs from the loss to the first layer untouched. In **Post-LN** every sub-layer
# ends in a LayerNorm, so the gradient passes $2L$ normalisations on its way down.
#
# **Claim** (Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture",
# Theorem 1). At initialisation, the gradient of the last layer's FFN weights scales like
# $d\sqrt{\ln d}$ for Post-LN, **independent of the depth** $L$, and like $d\sqrt{\ln d / L}$ for
# Pre-LN: Pre-LN's gradients shrink like $1/\sqrt{L}$. Post-LN's large gradients near the output
# are why it needs a learning-rate warm-up and can diverge without one; Pre-LN trains without.
#
# **Measured** with attnlab's torch `TransformerBlock` (`prenorm=True` / `False`), Xavier
# initialisation as in the paper, random inputs and targets, one backward pass: the gradient
# norm of every layer's second FFN matrix $W_2$ in a 12-layer stack (left), and of the last
# layer's $W_2$ as the stack grows from 1 to 64 layers, averaged over 3 seeds (right). On the
# log-log plot a power law $L^{c}$ is a straight line of slope $c$; the claim is about large $L$,
# so the slope is fitted on $L \ge 4$ and should come out near $-\tfrac12$ for Pre-LN and near
# $0$ for Post-LN.

# %% preln
variants = {"Pre-LN": True, "Post-LN": False}
per_layer = {name: attnlab.gradient_norms_by_depth(pre, n_layers=12) for name, pre in variants.items()}
depths = np.array([1, 2, 4, 8, 16, 32, 64])
last_layer = {
    name: np.array([np.mean([attnlab.gradient_norms_by_depth(pre, n_layers=L, seed=seed)[-1]
                             for seed in (0, 1, 2)]) for L in depths])
    for name, pre in variants.items()
}
for name in variants:
    g = per_layer[name]
    slope = np.polyfit(np.log(depths[2:]), np.log(last_layer[name][2:]), 1)[0]
    print(tr("{name:>7s}: 12 layers, |dL/dW_2| from layer 1 to 12: {first:.3f} -> {last:.3f}",
             name=name, first=g[0], last=g[-1]))
    print(" " * 9 + tr("last layer for L = {depths}: {values}; slope for L >= 4: {slope:+.2f}",
                       depths=", ".join(map(str, depths)), values=" ".join(f"{v:.3f}" for v in last_layer[name]),
                       slope=slope))
attnlab.plot_gradient_norms(per_layer, depths, last_layer, fit_from=4)
plt.show()

# %% preln-after-md [markdown]
# Compare the printed slopes with the claim (the dotted line has slope $-\tfrac12$). A deeper
# Pre-LN stack hands its top layer a smaller gradient; a Post-LN stack hands it the same
# large gradient at every depth. On the left, Pre-LN layers nearer the input receive *larger*
# gradients than the top ones: their output reaches every later layer through the untouched
# residual stream. Zone 5 trains both variants.

# %% s7-md [markdown]
# ## 7. Causal masking
#
# A language model predicts token $t+1$ from tokens $1..t$. Training computes all positions in
# one pass, so position $i$ must be kept from reading any key $j > i$ — otherwise it would copy
# the answer. Set those scores to $-\infty$ before the softmax: $e^{-\infty} = 0$, so they get
# exactly zero weight and the other weights renormalise among themselves.
#
# Two equivalent forms:
#
# - **boolean**: $M_{ij} = [\,j \le i\,]$ (True = may attend), used as `np.where(M, S, -inf)`;
# - **additive**: $B_{ij} = 0$ where allowed, $-\infty$ elsewhere, used as $\operatorname{softmax}(S + B)$.
#
# For example, $\operatorname{softmax}([1, 2, -\infty, 3]) = \frac{[e^1,\ e^2,\ 0,\ e^3]}{e^1 + e^2 + e^3}$:

# %% masking-demo
masked = attnlab.softmax(np.array([1.0, 2.0, -np.inf, 3.0]))
print("softmax([1, 2, -inf, 3]) =", masked)
print("softmax([1, 2, 3])       =", attnlab.softmax(np.array([1.0, 2.0, 3.0])), tr("(the same three numbers)"))

S7 = np.random.default_rng(8).normal(size=(5, 5))
boolean = attnlab.causal_mask(5)
additive = np.where(boolean, 0.0, -np.inf)
print(tr("boolean mask:\n"), boolean.astype(int))
print(tr("additive mask:\n"), additive)
w_bool = attnlab.softmax(np.where(boolean, S7, -np.inf))
w_add = attnlab.softmax(S7 + additive)
print(tr("the two forms give the same weights: max difference {diff:.1e}; weight above the diagonal: {above:.1f}",
         diff=np.abs(w_bool - w_add).max(), above=np.triu(w_bool, k=1).max()))

# Why -inf rather than "a very negative number": a query that may see nothing.
print(tr("fully masked row, -1e9:"), attnlab.softmax(np.array([-1e9, -1e9, -1e9])),
      tr(" <- uniform weights: it silently attends everywhere"))
print(tr("fully masked row, -inf:"), attnlab.softmax(np.array([-np.inf, -np.inf, -np.inf])),
      tr(" <- attnlab returns zeros"))

# With a KV cache the queries are the LAST tokens: bottom-right alignment.
print(tr("causal_mask(2, 5): two new queries, five keys (three cached)\n"), attnlab.causal_mask(2, 5).astype(int))

# %% causal_mask-md [markdown]
# ### Exercise 8 — `causal_mask` (2 points)
#
# Write `causal_mask(n_q, n_k=None)` returning a **boolean** `(n_q, n_k)` array, True where query
# $i$ may attend key $j$; `n_k` defaults to `n_q`. Bottom-right aligned: query $i$ is the token at
# absolute position $i + (n_k - n_q)$, so it sees keys $j \le i + (n_k - n_q)$ (as printed just above).
# Hint: `np.arange(n_q)[:, None]` and `np.arange(n_k)[None, :]` broadcast to the full grid.

# %%
def causal_mask(n_q, n_k=None):
    """Boolean (n_q, n_k): True where key j <= i + (n_k - n_q) (bottom-right aligned)."""
    ### BEGIN SOLUTION
    if n_k is None:
        n_k = n_q
    rows = np.arange(n_q)[:, None]
    cols = np.arange(n_k)[None, :]
    return cols <= rows + (n_k - n_q)
    ### END SOLUTION


# %%
check("causal_mask", causal_mask)
### BEGIN HIDDEN TESTS
check("causal_mask", causal_mask, hidden=True)
### END HIDDEN TESTS

# %% causal-check-md [markdown]
# ### The checks: torch, and "changing the future changes nothing"
#
# First against `torch.nn.functional.scaled_dot_product_attention(..., is_causal=True)`. Then the
# property itself: change the keys and values of the **last** token; the outputs of all earlier
# tokens must not move at all — not approximately, exactly.

# %% causal-check
rng = np.random.default_rng(9)
q7, k7, v7 = rng.normal(size=(3, 2, 6, 8))  # (batch, tokens, width)
out7, _ = attnlab.scaled_dot_product_attention(q7, k7, v7, causal=True)
out_torch = F.scaled_dot_product_attention(*(torch.from_numpy(t) for t in (q7, k7, v7)), is_causal=True)
print(tr("vs torch is_causal=True: max difference {diff:.1e}", diff=np.abs(out7 - out_torch.numpy()).max()))
k_new, v_new = k7.copy(), v7.copy()
k_new[:, -1] += 10 * rng.normal(size=(2, 8))
v_new[:, -1] += 10 * rng.normal(size=(2, 8))
out_new, _ = attnlab.scaled_dot_product_attention(q7, k_new, v_new, causal=True)
print(tr("last token changed: earlier outputs move by {earlier:.1e}, the last output by {last:.2f}",
         earlier=np.abs(out_new[:, :-1] - out7[:, :-1]).max(), last=np.abs(out_new[:, -1] - out7[:, -1]).max()))
try:
    print(tr("your causal_mask(2, 5):\n"), causal_mask(2, 5).astype(int))
except NotImplementedError:
    print(tr("Write causal_mask above to see yours."))

# %% mask-explorer-md [markdown]
# ### Explorer: causal and sparse masks
#
# Masks do more than hide the future. A *sliding window* (local) keeps only the last few keys
# (Mistral); *strided* and *fixed* patterns let a few keys reach far (Sparse Transformer);
# BigBird mixes local, global and random keys. Choose a pattern, toggle `causal`, and watch the
# three views: the boolean mask, the additive mask, and the weights it produces on random
# scores. The printout confirms that no weight ever lands on a forbidden key. Zone 3b counts
# what these patterns save. The controls: **pattern** picks the mask, **n** the number of
# tokens, **causal** also hides the future, **window** is how many neighbours on each side a
# local (and BigBird) query sees, **stride** the spacing of the far keys of the strided pattern,
# **n_global** the number of global tokens of the fixed and BigBird patterns, **n_random** the
# random keys per query of the random and BigBird patterns, and **seed** draws those random keys
# and the random scores.

# %% mask-explorer
attnlab.mask_explorer()

# %% s8-md [markdown]
# ## 8. Boss battle: one GPT-2 block in NumPy
#
# Everything so far, assembled. GPT-2 (Radford et al. 2019) stacks copies of this block (12 in
# the smallest model) between an embedding and an output layer. The weights come in a dictionary named exactly like
# the `state_dict` of Hugging Face's `GPT2Block`. GPT-2 stores its linear layers as `Conv1D`,
# which computes $y = xW + b$ with $W$ of shape *(in, out)* — so, unlike `torch.nn.Linear`, no
# transposes.
#
# | step | formula | weights (`params[...]`) | shape of the result |
# | --- | --- | --- | --- |
# | 1 | $z = \operatorname{LN}_1(x)$, $\varepsilon = 10^{-5}$ | `ln_1.weight`, `ln_1.bias` $(d,)$ | $(N, d)$ |
# | 2 | $[\,Q \mid K \mid V\,] = z\,W_{\text{attn}} + b_{\text{attn}}$ | `attn.c_attn.weight` $(d, 3d)$, `.bias` $(3d,)$ | $(N, 3d)$, split in 3 along the last axis |
# | 3 | split each into $H$ heads | — | $(H, N, d_{\text{head}})$ |
# | 4 | $A_h = \operatorname{softmax}\big(Q_h K_h^\top/\sqrt{d_{\text{head}}}$ + causal mask$\big)$ | — | $(H, N, N)$ |
# | 5 | $a = \operatorname{merge}_h(A_h V_h)\, W_{\text{proj}} + b_{\text{proj}}$ | `attn.c_proj.weight` $(d, d)$, `.bias` | $(N, d)$ |
# | 6 | $h = x + a$ | residual | $(N, d)$ |
# | 7 | $z' = \operatorname{LN}_2(h)$ | `ln_2.weight`, `ln_2.bias` | $(N, d)$ |
# | 8 | $u = \operatorname{GELU}_{\tanh}(z' W_{\text{fc}} + b_{\text{fc}})$ | `mlp.c_fc.weight` $(d, 4d)$, `.bias` $(4d,)$ | $(N, 4d)$ |
# | 9 | $y = h + u\, W_{\text{proj2}} + b_{\text{proj2}}$ | `mlp.c_proj.weight` $(4d, d)$, `.bias` $(d,)$ | $(N, d)$ |
#
# with $\operatorname{GELU}_{\tanh}(u) = \tfrac12 u\big(1 + \tanh(\sqrt{2/\pi}\,(u + 0.044715\,u^3))\big)$ (§6.3).

# %% gpt2_block-md [markdown]
# ### Exercise 9 — `gpt2_block` (4 points)
#
# Write `gpt2_block(x, params, n_heads)` for `x` of shape `(..., N, d)`, following the nine
# steps. You may use `attnlab.layer_norm`, `attnlab.softmax`, `attnlab.causal_mask` and
# `attnlab.gelu(u, approximate="tanh")` — or your own functions from above. Split heads as in
# Exercise 3: `reshape(*lead, N, n_heads, d_head)`, then `np.swapaxes(t, -3, -2)`.
# `np.split(qkv, 3, axis=-1)` cuts $[\,Q \mid K \mid V\,]$ into its three parts.

# %%
def gpt2_block(x, params, n_heads):
    """One GPT-2 block: h = x + Attn(LN_1(x)); y = h + MLP(LN_2(h)). x (..., N, d) -> (..., N, d)."""
    ### BEGIN SOLUTION
    p = params
    n_tokens, width = x.shape[-2], x.shape[-1]
    d_head = width // n_heads

    def to_heads(t):  # (..., N, d) -> (..., n_heads, N, d_head)
        return np.swapaxes(t.reshape(*t.shape[:-1], n_heads, d_head), -3, -2)

    z = attnlab.layer_norm(x, p["ln_1.weight"], p["ln_1.bias"], eps=1e-5)  # step 1
    qkv = z @ p["attn.c_attn.weight"] + p["attn.c_attn.bias"]  # step 2
    q, k, v = (to_heads(t) for t in np.split(qkv, 3, axis=-1))  # step 3
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d_head)  # step 4
    scores = np.where(attnlab.causal_mask(n_tokens), scores, -np.inf)
    heads = attnlab.softmax(scores, axis=-1) @ v
    merged = np.swapaxes(heads, -3, -2).reshape(*x.shape[:-1], width)  # step 5
    h = x + merged @ p["attn.c_proj.weight"] + p["attn.c_proj.bias"]  # step 6
    z2 = attnlab.layer_norm(h, p["ln_2.weight"], p["ln_2.bias"], eps=1e-5)  # step 7
    pre = z2 @ p["mlp.c_fc.weight"] + p["mlp.c_fc.bias"]  # step 8
    hidden = 0.5 * pre * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (pre + 0.044715 * pre**3)))
    return h + hidden @ p["mlp.c_proj.weight"] + p["mlp.c_proj.bias"]  # step 9
    ### END SOLUTION


# %%
check("gpt2_block", gpt2_block)
### BEGIN HIDDEN TESTS
check("gpt2_block", gpt2_block, hidden=True)
### END HIDDEN TESTS

# %% boss-check-md [markdown]
# ### The checks: the same weights in three implementations
#
# `attnlab.random_gpt2_block_params` draws one set of block weights (random, without
# downloading GPT-2). The same numbers go into
#
# 1. the NumPy block — `attnlab.gpt2_block`, and yours;
# 2. attnlab's torch `TransformerBlock` in GPT-2 configuration (`attnlab.gpt2_block_torch` copies the
#    weights, transposing each matrix into `nn.Linear`'s (out, in) layout);
# 3. Hugging Face's own `GPT2Block` (`attnlab.gpt2_block_hf`), which needs the optional
#    `transformers` package. It receives the causal mask in the **additive** form of §7, as a
#    `(1, 1, N, N)` tensor of 0 and $-\infty$.
#
# Three independent implementations agreeing to rounding error (around $10^{-15}$ in float64)
# leave little room for a mistake in any of them.

# %% boss-check
d_model, n_heads = 32, 4
block_tokens = ["The", "animal", "didn't", "cross", "the", "street", "because", "it", "was", "tired"]
params = attnlab.random_gpt2_block_params(d_model, seed=0)
x_block = np.random.default_rng(10).normal(size=(len(block_tokens), d_model))
y_numpy = attnlab.gpt2_block(x_block, params, n_heads)

torch_block = attnlab.gpt2_block_torch(params, n_heads)
with torch.no_grad():
    y_torch, block_weights = torch_block(torch.from_numpy(x_block)[None], need_weights=True)
print(tr("attnlab.gpt2_block (NumPy) vs attnlab's torch block: max difference {diff:.1e}",
         diff=np.abs(y_numpy - y_torch[0].numpy()).max()))
print(tr("the block changed its input by up to {change:.2f} (so the check is not trivial)",
         change=np.abs(y_numpy - x_block).max()))
try:
    y_yours = gpt2_block(x_block, params, n_heads)
    print(tr("your gpt2_block vs attnlab's torch block:        max difference {diff:.1e}",
             diff=np.abs(y_yours - y_torch[0].numpy()).max()))
except NotImplementedError:
    print(tr("Write gpt2_block above to compare yours with the torch block."))

try:
    hf_block = attnlab.gpt2_block_hf(params, n_heads)
except ImportError as err:
    hf_block = None
    print(tr("\nHugging Face check skipped: {err}", err=err))
if hf_block is not None:
    additive_mask = torch.from_numpy(np.where(attnlab.causal_mask(len(block_tokens)), 0.0, -np.inf))
    with torch.no_grad():
        hf_out = hf_block(torch.from_numpy(x_block)[None], attention_mask=additive_mask[None, None])
    hf_out = hf_out[0] if isinstance(hf_out, tuple) else hf_out  # older transformers return a tuple
    print(tr("attnlab.gpt2_block (NumPy) vs Hugging Face GPT2Block: max difference {diff:.1e}",
             diff=np.abs(y_numpy - hf_out[0].numpy()).max()))

attnlab.plot_attention_grid(block_weights[0].numpy(), tokens=block_tokens,
                       title=tr("the block's causal attention, per head (random weights)"))
plt.show()

# %% boss-after-md [markdown]
# Every heatmap is lower-triangular: the causal mask at work. A full GPT-2 adds a token and a
# position embedding before the first block, a final LayerNorm after the last one, and a linear
# layer that shares the token embedding matrix — Zone 4 builds it and loads the real weights.

# %% progress [markdown]
# ## Progress
#
# ✅ Zone 3a done. You derived and checked:
#
# - why the scores are divided by $\sqrt{d_k}$ (their variance is $d_k$), and how softmax saturation
#   kills the gradient ($J = \operatorname{diag}(a) - aa^\top$, entries at most $1 - \max a$);
# - multi-head attention as $H$ low-rank pieces for the parameters of one;
# - three ways to give attention a sense of position, and which of them are truly relative;
# - the block: residuals, LayerNorm / RMSNorm, GELU / SwiGLU, and why Pre-LN trains more easily;
# - causal masks in both forms — and you built a GPT-2 block that matches Hugging Face's.
#
# **Next:** [Zone 3b — Efficiency](../03_efficiency/03_efficiency.ipynb): attention costs
# $O(N^2)$; FlashAttention, sparse and linear attention, state space models and the KV cache
# are the ways around it.
