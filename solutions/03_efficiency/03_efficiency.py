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
# # Zone 3b — Derivations II: making attention efficient
#
# *Lecture 14: Attention — leaving the fossils behind.*
#
# Zone 3a derived attention. This zone pays its bill. Full attention compares every query with
# every key: $O(N^2)$ time and memory per layer and head, and while a model generates text it
# keeps every past key and value (the KV cache). There are five ways out, and each is a
# derivation you can check in a few lines:
#
# 1. **Compute exactly, move less memory** — FlashAttention: tiles and an online softmax.
# 2. **Compute fewer scores** — sparse patterns: local, strided, global, random, BigBird.
# 3. **Change the similarity** so associativity gives $O(N)$ — linear attention, Performer.
# 4. **Replace attention by a recurrence** with a fixed-size state — state space models, Mamba.
# 5. **Shrink the cache** — MQA / GQA, grouping similar heads, pruning keys.
#
# Then two ways to see it all at once: attention as message passing on a graph, and a map of
# efficiency, expressiveness and memory. Eight graded exercises, 21 points.
#
# | symbol | meaning |
# | --- | --- |
# | $N$ | sequence length (tokens); $L$ for state space models |
# | $d$ | head dimension (width of one query / key / value) |
# | $M$ | size of the fast on-chip memory (SRAM), in elements |
# | $B_c,\ B_r,\ T_c$ | FlashAttention block sizes (keys, queries) and number of key blocks |
# | $m,\ \ell,\ \mathrm{acc}$ | running maximum, running sum of $e^{s-m}$, unnormalised output (online softmax) |
# | $w,\ s,\ g,\ r$ | local window, stride, number of global tokens, random keys per query |
# | $\phi$ | feature map of linear attention / Performer ($m$ features for Performer) |
# | $A, B, C, \Delta$ | continuous state space model and its step; $\bar A, \bar B$ discretised |
# | $K$ | SSM convolution kernel |
# | $H,\ H_{kv}$ | query heads, key/value heads |

# %% setup
# Setup (locked): the course library and the graders.
import math

import matplotlib.pyplot as plt
import numpy as np

import attnlab
from attnlab import tr
import grader_tests  # noqa: F401  (imported first so the checks bind their tools early)
from grader_tests import check

np.set_printoptions(precision=4, suppress=True)

# %% hbm-md [markdown]
# ## 1. FlashAttention
#
# ### 1.1 Where the time goes: memory traffic
#
# A GPU has two memories. The A100 has 40 or 80 GiB of **HBM** (high-bandwidth memory) at
# 1.5–2.0 TB/s, and 192 KiB of **SRAM** on each of its 108 streaming multiprocessors at about
# 19 TB/s (Dao et al. 2022, *FlashAttention*, arXiv:2205.14135, §2.1). Arithmetic happens in
# SRAM. Attention's softmax does little arithmetic per element, so its speed is set by how many
# elements travel between HBM and SRAM, not by FLOPs.
#
# **Standard attention** (the paper's Algorithm 0) stores the two $N \times N$ matrices in HBM:
#
# | step | reads | writes |
# | --- | --- | --- |
# | $S = QK^\top$ | $Q, K$: $2Nd$ | $S$: $N^2$ |
# | $P = \operatorname{softmax}(S)$ | $S$: $N^2$ | $P$: $N^2$ |
# | $O = PV$ | $P$: $N^2$, $V$: $Nd$ | $O$: $Nd$ |
#
# $$\text{standard} = 4Nd + 4N^2 \ \text{elements}.$$
#
# **FlashAttention** (Algorithm 1) never writes $S$ or $P$. With $M$ elements of SRAM it uses key
# blocks of $B_c = \lceil M / (4d) \rceil$ rows (and query blocks of $B_r = \min(B_c, d)$ rows), so
# there are $T_c = \lceil N / B_c \rceil$ key blocks:
#
# | step | elements |
# | --- | --- |
# | initialise $O$ ($Nd$), $\ell$ ($N$), $m$ ($N$) in HBM | $Nd + 2N$ written |
# | outer loop: load each block of $K$ and $V$ once | $2Nd$ read |
# | inner loop, for every key block: load every block of $Q, O, \ell, m$ | $T_c\,(2Nd + 2N)$ read |
# | inner loop, for every key block: store $O, \ell, m$ back | $T_c\,(Nd + 2N)$ written |
#
# $$\text{flash} = 3Nd + 2N + T_c\,(3Nd + 4N) \ \text{elements}.$$
#
# Since $T_c \approx 4Nd/M$, FlashAttention moves $\Theta(N^2 d^2 / M)$ elements against
# $\Theta(N^2)$ (the paper's Theorem 2): it wins whenever $d^2 \ll M$. Multiply by the bytes per
# element (2 for fp16) to get bytes.
#
# ## Exercise 1 — `hbm_traffic` (3 points)
#
# Write `hbm_traffic(n, d, sram_bytes, bytes_per_element=2)` returning the pair
# `(standard_bytes, flash_bytes)` as integers:
# - the SRAM holds $M$ = `sram_bytes // bytes_per_element` elements;
# - $B_c = \lceil M / (4d) \rceil$ and $T_c = \lceil n / B_c \rceil$ (`math.ceil`): a partial last
#   block is still a block;
# - both totals above, times `bytes_per_element`.
#
# Write the formula yourself: do not call `attnlab.hbm_traffic`.

# %%
def hbm_traffic(n, d, sram_bytes, bytes_per_element=2):
    """HBM bytes read + written by standard attention and FlashAttention (one head)."""
    ### BEGIN SOLUTION
    sram_elements = sram_bytes // bytes_per_element
    key_block = math.ceil(sram_elements / (4 * d))
    n_key_blocks = math.ceil(n / key_block)
    standard_elements = 4 * n * d + 4 * n * n
    flash_elements = 3 * n * d + 2 * n + n_key_blocks * (3 * n * d + 4 * n)
    return standard_elements * bytes_per_element, flash_elements * bytes_per_element
    ### END SOLUTION


# %%
check("hbm_traffic", hbm_traffic)
### BEGIN HIDDEN TESTS
check("hbm_traffic", hbm_traffic, hidden=True)
### END HIDDEN TESTS

# %% hbm-table-md [markdown]
# ### Your formula at 2K and 8K context
#
# One head of width $d = 64$ in fp16, with 100 KiB of SRAM (the paper's "around 100KB" when it
# discusses Theorem 2). The table comes from **your** function (MB here are $10^6$ bytes).

# %% hbm-table
D_HEAD, SRAM = 64, 100 * 1024
try:
    table = {n: hbm_traffic(n, D_HEAD, SRAM) for n in (2048, 8192)}
    print("{:>6} | {:>11} | {:>9} | {:>16} | {:>21}".format(
        "N", tr("standard MB"), tr("flash MB"), tr("standard / flash"), tr("N^2 share of standard")))
    for n, (standard, flash) in table.items():
        n2_share = 4 * n * n * 2 / standard
        print(f"{n:>6} | {standard / 1e6:11.1f} | {flash / 1e6:9.1f} | {standard / flash:16.2f} | {n2_share:21.1%}")
    limit = (SRAM // 2) / (3 * D_HEAD**2)
    standard, flash = hbm_traffic(1 << 17, D_HEAD, SRAM)
    print(tr("\nFor large N the ratio tends to M / (3 d^2) = {limit:.2f}; at N = 131072 your formula gives {ratio:.2f}.",
             limit=limit, ratio=standard / flash))
    print(tr("With d = 128 the same SRAM gives only {ratio:.2f}: the saving shrinks like 1/d^2.",
             ratio=(SRAM // 2) / (3 * 128**2)))
except NotImplementedError:
    print(tr("Finish exercise 1 (hbm_traffic) first, then run this cell again."))

# %% hbm-count-md [markdown]
# Where does the limit come from? For large $N$, standard $\approx 4N^2$ and flash
# $\approx T_c \cdot 3Nd \approx (4Nd/M)\,3Nd = 12N^2d^2/M$; the ratio is $M/(3d^2)$. FlashAttention's
# saving in *traffic* is a constant factor set by the SRAM size — on top of which it never
# allocates the $N \times N$ matrices (section 1.3), and fuses the masking, softmax and dropout
# kernels that standard implementations run one after the other.
#
# **Is the formula right?** Count it. `attnlab.count_hbm_traffic` runs both algorithms on real
# data through a simulated HBM that counts every element loaded or stored. If the table above
# double-counted or forgot a term, the two columns below would disagree.

# %% hbm-count
rng = np.random.default_rng(0)
print("{:>4} {:>3} {:>7} | {:>16} {:>9} | {:>13} {:>9} | max |out - attention|".format(
    "N", "d", "SRAM B", tr("counted standard"), tr("formula"), tr("counted flash"), tr("formula")))
for n, d, sram in [(64, 8, 1024), (70, 8, 1024), (96, 16, 2048), (50, 4, 100_000)]:
    q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
    counted = attnlab.count_hbm_traffic(q, k, v, sram)
    standard, flash = attnlab.hbm_traffic(n, d, sram)
    exact, _ = attnlab.scaled_dot_product_attention(q, k, v)
    err = max(np.abs(counted.standard_out - exact).max(), np.abs(counted.flash_out - exact).max())
    print(f"{n:>4} {d:>3} {sram:>7} | {counted.standard_bytes:>16} {standard:>9} | "
          f"{counted.flash_bytes:>13} {flash:>9} | {err:.1e}")
    assert (counted.standard_bytes, counted.flash_bytes) == (standard, flash)
try:
    agree = all(hbm_traffic(n, d, s) == attnlab.hbm_traffic(n, d, s) for n, d, s in [(70, 8, 1024), (96, 16, 2048)])
    print(tr("your hbm_traffic gives the counted numbers too:"), agree)
except NotImplementedError:
    print(tr("(finish exercise 1 to compare your formula with the counts)"))

attnlab.plot_hbm_traffic([256, 512, 1024, 2048, 4096, 8192, 16384], d=D_HEAD, sram_bytes=SRAM)
plt.show()

# %% online-md [markdown]
# ### 1.2 The online softmax
#
# To avoid storing $S$, FlashAttention sees the keys one block at a time. For one query with
# scores $s_j$ against the keys of a block $\mathcal{B}$, keep three numbers (a **partial state**):
#
# $$m = \max_{j \in \mathcal{B}} s_j, \qquad \ell = \sum_{j \in \mathcal{B}} e^{s_j - m}, \qquad
# \mathrm{acc} = \sum_{j \in \mathcal{B}} e^{s_j - m}\, v_j .$$
#
# **Claim.** Two states over disjoint blocks $\mathcal{B}_1, \mathcal{B}_2$ merge exactly into the state
# over $\mathcal{B}_1 \cup \mathcal{B}_2$:
#
# $$m = \max(m_1, m_2), \qquad \ell = e^{m_1 - m}\,\ell_1 + e^{m_2 - m}\,\ell_2, \qquad
# \mathrm{acc} = e^{m_1 - m}\,\mathrm{acc}_1 + e^{m_2 - m}\,\mathrm{acc}_2,$$
#
# and the attention output over all the keys seen is $\mathrm{acc} / \ell$.
#
# **Proof.** For $j \in \mathcal{B}_i$: $e^{m_i - m}\, e^{s_j - m_i} = e^{s_j - m}$. So the rescaled sums
# are sums of $e^{s_j - m}$ (times $v_j$) over each block, *with the same shift $m$*, and adding them
# gives the sums over the union. Finally
# $\mathrm{acc}/\ell = \sum_j e^{s_j - m} v_j / \sum_{j'} e^{s_{j'} - m} = \sum_j \operatorname{softmax}(s)_j\, v_j$,
# since the shift $m$ cancels. The factors $e^{m_i - m} \le 1$, so nothing overflows. $\square$
#
# An **empty** state (no key seen yet) is $m = -\infty$, $\ell = 0$, $\mathrm{acc} = 0$: merging with it
# changes nothing. Careful when *both* are empty: $e^{-\infty - (-\infty)}$ is NaN, so shift by 0
# when $m = -\infty$.
#
# ## Exercise 2 — `online_softmax_merge` (3 points)
#
# Write `online_softmax_merge(m1, l1, acc1, m2, l2, acc2)` returning `(m, l, acc)`. Shapes: `m`, `l`
# are `(..., Nq)`, `acc` is `(..., Nq, d_v)` — so a factor of shape `(..., Nq)` multiplies `acc`
# as `factor[..., None]`. Return `acc` **unnormalised** (do not divide by `l`).

# %%
def online_softmax_merge(m1, l1, acc1, m2, l2, acc2):
    """Merge two partial softmax states over disjoint key blocks. Returns (m, l, acc)."""
    ### BEGIN SOLUTION
    m = np.maximum(m1, m2)
    shift = np.where(np.isneginf(m), 0.0, m)  # both empty: keep exp() away from -inf - (-inf)
    scale1 = np.exp(m1 - shift)
    scale2 = np.exp(m2 - shift)
    total = scale1 * l1 + scale2 * l2
    merged = scale1[..., None] * acc1 + scale2[..., None] * acc2
    return m, total, merged
    ### END SOLUTION


# %%
check("online_softmax_merge", online_softmax_merge)
### BEGIN HIDDEN TESTS
check("online_softmax_merge", online_softmax_merge, hidden=True)
### END HIDDEN TESTS

# %% online-check-md [markdown]
# **Check against the full softmax.** 5 queries, 64 keys cut into 8 blocks of 8. Start from the
# empty state, fold in one block at a time with your merge, divide by $\ell$ at the end, and compare
# with attention computed in one go. Merging is also associative: a tree of merges (block pairs,
# then pairs of pairs) must give the same answer — which is what lets GPUs split the keys across
# thread blocks (FlashDecoding).

# %% online-check
rng = np.random.default_rng(1)
q = 3 * rng.standard_normal((5, 16))
k, v = rng.standard_normal((64, 16)), rng.standard_normal((64, 4))
exact, _ = attnlab.scaled_dot_product_attention(q, k, v)

states = []  # the partial state (m, l, acc) of each block of 8 keys
for start in range(0, 64, 8):
    s = q @ k[start:start + 8].T / np.sqrt(16)
    block_max = s.max(axis=-1)
    p = np.exp(s - block_max[:, None])
    states.append((block_max, p.sum(axis=-1), p @ v[start:start + 8]))

try:
    m, l, acc = np.full(5, -np.inf), np.zeros(5), np.zeros((5, 4))  # the empty state
    for state in states:
        m, l, acc = online_softmax_merge(m, l, acc, *state)
    print(tr("left to right: max |acc / l - softmax attention| = {err:.2e}", err=np.abs(acc / l[:, None] - exact).max()))
    level = states
    while len(level) > 1:  # a tree: merge neighbours pairwise until one state is left
        level = [online_softmax_merge(*level[i], *level[i + 1]) for i in range(0, len(level), 2)]
    m_t, l_t, acc_t = level[0]
    print(tr("as a tree:     max |acc / l - softmax attention| = {err:.2e}", err=np.abs(acc_t / l_t[:, None] - exact).max()))
    _, l, acc = states[0]
    for _, l_block, acc_block in states[1:]:
        l, acc = l + l_block, acc + acc_block  # the tempting shortcut: add without rescaling
    print(tr("without the rescale the error is {err:.2e} (that is why it is there)",
             err=np.abs(acc / l[:, None] - exact).max()))
except NotImplementedError:
    print(tr("Finish exercise 2 (online_softmax_merge) first, then run this cell again."))

# %% tiled-md [markdown]
# ### 1.3 The tiled algorithm
#
# Put the two pieces together. For each block of queries $Q_i$ (kept in SRAM):
#
# 1. start from the empty state $(m, \ell, \mathrm{acc}) = (-\infty, 0, 0)$;
# 2. for each block of keys and values $K_j, V_j$: compute the tile $S_{ij} = Q_i K_j^\top / \sqrt d$
#    (size $B_r \times B_c$), its partial state, and merge it in;
# 3. write $O_i = \mathrm{acc} / \ell$ (and $\log \ell + m$, which the backward pass needs).
#
# With a causal mask, key blocks entirely in the future of a query block are skipped — about half
# the work. `attnlab.flash_attention_numpy` does exactly this (you write it yourself in Zone 4).
# It must give the same output as `attnlab.scaled_dot_product_attention`, and its memory must not
# grow like $N^2$. Both are measured below (memory with Python's `tracemalloc`, inputs excluded).

# %% tiled
rng = np.random.default_rng(2)
q, k, v = (rng.standard_normal((2, 300, 32)) for _ in range(3))  # 2 heads, 300 tokens (not a multiple of the block)
for causal in (False, True):
    for block in (16, 64):
        tiled = attnlab.flash_attention_numpy(q, k, v, causal=causal, block_size=block)
        full, _ = attnlab.scaled_dot_product_attention(q, k, v, causal=causal)
        print(tr("causal={causal!s:<5} block={block:>2}: max |tiled - standard| = {err:.1e}",
                 causal=causal, block=block, err=np.abs(tiled - full).max()))

print("\n{:>5} | {:>16} | {:>13} | {:>20} | {}".format(
    "N", tr("standard peak MB"), tr("tiled peak MB"), tr("one N x N float64 MB"), tr("standard / tiled")))
for n in (512, 1024, 2048):
    mem = attnlab.attention_peak_memory(n, d=64, block_size=64)
    print(f"{n:>5} | {mem['standard_bytes'] / 1e6:16.1f} | {mem['flash_bytes'] / 1e6:13.2f} | "
          f"{mem['scores_bytes'] / 1e6:20.1f} | {mem['standard_bytes'] / mem['flash_bytes']:8.0f}x")

# %% tiled-after-md [markdown]
# The standard peak is a few $N \times N$ matrices (scores, weights, temporaries) and grows 4× each
# time $N$ doubles; the tiled peak is the output and the running statistics plus a few $64 \times 64$
# tiles, and grows at most 2×. Same numbers, different memory: that is FlashAttention.

# %% sparse-md [markdown]
# ## 2. Sparse attention patterns
#
# FlashAttention still computes all $N^2$ scores. Sparse attention computes only the pairs
# $(i, j)$ allowed by a boolean mask — if most tokens only need a few others, that is enough.
# The classic patterns (Child et al. 2019, *Sparse Transformers*; Zaheer et al. 2020, *BigBird*):
#
# | pattern | query $i$ may attend key $j$ iff | entries (not causal) |
# | --- | --- | --- |
# | local | $\lvert i - j \rvert \le w$ | $N(2w+1) - w(w+1)$ |
# | strided | $(i - j) \bmod s = 0$ | $\approx N^2 / s$ |
# | fixed (global tokens) | $i < g$ or $j < g$ | $g(2N - g)$ |
# | random | $j$ is one of $r$ keys drawn for row $i$ | $N r$ |
# | BigBird | local $\cup$ fixed $\cup$ random | $\approx N(2w + 1 + 2g + r)$ |
#
# ("Fixed" here means a fixed set of $g$ global tokens, BigBird's global attention; the Sparse
# Transformer's own "fixed" pattern is a variant of the strided one.) With `causal=True` every
# pattern is intersected with $j \le i$. Local, fixed, random and
# BigBird cost $O(N)$; strided with $s = \sqrt N$ costs $O(N \sqrt N)$.
#
# ## Exercise 3 — `sparse_mask` (3 points)
#
# Write `sparse_mask(n, pattern, window=3, stride=4, n_global=1, n_random=2, seed=0, causal=False)`
# returning a boolean `(n, n)` array, True where query `i` (row) may attend key `j` (column), for
# `pattern` in `"local"`, `"strided"`, `"fixed"`, `"random"`, `"bigbird"`. Hints:
# - `i = np.arange(n)[:, None]` and `j = np.arange(n)[None, :]` broadcast to all pairs;
# - the allowed pairs are $j \le i$ when `causal` (`np.tril` or `attnlab.causal_mask(n)`), all pairs
#   otherwise; the final mask is the pattern AND the allowed pairs;
# - **random** must be reproducible and equal the library's, so follow this recipe exactly: make one
#   generator from `seed` (`np.random.default_rng`), draw an `(n, n)` matrix of uniform "priorities"
#   with one call to its `.random`, set the priority of every pair that is not allowed to `np.inf`,
#   and keep in each row the `min(n_random, n)` keys of lowest priority (`np.argsort` along axis 1)
#   — except those whose priority is infinite (so an early causal row gets fewer keys);
# - **bigbird** is the union (`|`) of your own local, fixed and random masks with the same arguments.

# %%
def sparse_mask(n, pattern, window=3, stride=4, n_global=1, n_random=2, seed=0, causal=False):
    """Boolean (n, n) mask, True where query i may attend key j, for a sparse pattern."""
    ### BEGIN SOLUTION
    rows = np.arange(n)[:, None]
    cols = np.arange(n)[None, :]
    allowed = np.tril(np.ones((n, n), dtype=bool)) if causal else np.ones((n, n), dtype=bool)
    if pattern == "local":
        pattern_mask = np.abs(rows - cols) <= window
    elif pattern == "strided":
        pattern_mask = (rows - cols) % stride == 0
    elif pattern == "fixed":
        pattern_mask = (rows < n_global) | (cols < n_global)
    elif pattern == "random":
        generator = np.random.default_rng(seed)
        priority = np.where(allowed, generator.random((n, n)), np.inf)
        lowest = np.argsort(priority, axis=1)[:, : min(n_random, n)]
        pattern_mask = np.zeros((n, n), dtype=bool)
        for row in range(n):
            pattern_mask[row, lowest[row]] = np.isfinite(priority[row, lowest[row]])
    elif pattern == "bigbird":
        pattern_mask = np.zeros((n, n), dtype=bool)
        for part in ("local", "fixed", "random"):
            pattern_mask |= sparse_mask(n, part, window, stride, n_global, n_random, seed, causal)
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    return pattern_mask & allowed
    ### END SOLUTION


# %%
check("sparse_mask", sparse_mask)
### BEGIN HIDDEN TESTS
check("sparse_mask", sparse_mask, hidden=True)
### END HIDDEN TESTS

# %% sparse-draw-md [markdown]
# ### The patterns, drawn and counted
#
# Yellow = computed. Below, the four patterns on 32 tokens ($w = 2$, $s = 4$, $g = 1$, $r = 2$), then
# the **mask explorer**: in JupyterLab, change the **pattern**, the number of tokens **n**, the
# **window** $w$, the **stride** $s$, the number of global tokens **n_global** ($g$), of random keys
# per query **n_random** ($r$), the **causal** switch and the **seed** that draws the random keys; it redraws the mask and reprints its cost (entries counted
# in the drawn mask, and the closed form of the table above, which must agree).

# %% sparse-draw
attnlab.plot_sparse_patterns(n=32, window=2, stride=4, n_global=1, n_random=2)
plt.show()
attnlab.mask_explorer(n=32, pattern="bigbird", causal=False)

# %% sparse-count-md [markdown]
# **Counted vs closed form, at $N = 1024$.** Each mask is built (by your function if it is done) and
# its True entries counted; `attnlab.sparse_mask_nnz` evaluates the closed forms. Then the cost is
# made real: `attnlab.block_sparse_attention` computes only the $32 \times 32$ tiles of the score
# matrix that contain a True, and must still equal dense masked attention.

# %% sparse-count
import torch  # block_sparse_attention works on torch tensors

N_SPARSE = 1024
settings = {"local": {"window": 16}, "strided": {"stride": 32}, "fixed": {"n_global": 4},
            "bigbird": {"window": 16, "n_global": 4, "n_random": 8}}
try:
    masks = {p: sparse_mask(N_SPARSE, p, **kw) for p, kw in settings.items()}
    who = tr("your sparse_mask")
except NotImplementedError:
    masks = {p: attnlab.sparse_mask(N_SPARSE, p, **kw) for p, kw in settings.items()}
    who = tr("attnlab.sparse_mask (finish exercise 3 to use yours)")
print(tr("masks from {who}; full attention has {entries} entries", who=who, entries=N_SPARSE**2))
print("{:>8} | {:>8} | {:>11} | {:>7} | {:>14}".format(
    tr("pattern"), tr("counted"), tr("closed form"), tr("density"), tr("tiles computed")))
for pattern, mask in masks.items():
    closed = attnlab.sparse_mask_nnz(N_SPARSE, pattern, **settings[pattern])
    tiles = attnlab.block_layout(mask, 32).mean()
    print(f"{pattern:>8} | {int(mask.sum()):>8} | {closed:>11} | {mask.mean():7.3f} | {tiles:14.1%}")

rng = np.random.default_rng(3)
qt, kt, vt = (torch.tensor(rng.standard_normal((N_SPARSE, 32))) for _ in range(3))
mask = masks["bigbird"]
dense, _ = attnlab.scaled_dot_product_attention(qt.numpy(), kt.numpy(), vt.numpy(), mask=mask)
sparse = attnlab.block_sparse_attention(qt, kt, vt, mask, block_size=32).numpy()
print(tr("\nBigBird: block-sparse vs dense masked attention, max difference {diff:.1e}", diff=np.abs(sparse - dense).max()))

# %% sparse-tiles-md [markdown]
# Look at the last column. Local and fixed patterns are sparse in *tiles* too, so a GPU kernel skips
# most of the work. Strided and random keys are sparse in *entries* but touch every $32 \times 32$ tile:
# hardware computes tiles, so such a mask saves nothing unless the pattern is laid out in blocks —
# which is why BigBird's implementation attends to random and global *blocks* of tokens, not single
# tokens (Zaheer et al. 2020; Hugging Face's `BigBirdConfig` defaults to `block_size=64` and 3 random
# blocks).

# %% linear-md [markdown]
# ## 3. Linear attention by associativity
#
# Write softmax attention with a general similarity $\operatorname{sim}(q, k) = \exp(q \cdot k / \sqrt d)$:
#
# $$o_i = \frac{\sum_j \operatorname{sim}(q_i, k_j)\, v_j}{\sum_j \operatorname{sim}(q_i, k_j)} .$$
#
# Katharopoulos et al. (2020, *Transformers are RNNs*) take instead
# $\operatorname{sim}(q, k) = \phi(q)^\top \phi(k)$ with the positive feature map
# $\phi(x) = \operatorname{elu}(x) + 1$ ($x + 1$ for $x > 0$, $e^x$ otherwise). Then $\phi(q_i)$ does not
# depend on $j$ and comes out of the sums:
#
# $$o_i = \frac{\phi(q_i)^\top \overbrace{\textstyle\sum_j \phi(k_j)\, v_j^\top}^{S \,\in\, \mathbb{R}^{d \times d_v}}}
# {\phi(q_i)^\top \underbrace{\textstyle\sum_j \phi(k_j)}_{z \,\in\, \mathbb{R}^{d}}} .$$
#
# In matrix form this is associativity: $(\phi(Q)\phi(K)^\top)\,V = \phi(Q)\,(\phi(K)^\top V)$. The left
# side builds an $N \times N$ matrix, $O(N^2 d)$; the right side a $d \times d_v$ summary, $O(N d^2)$.
# **Causal**: the sums run over $j \le i$, so $S_i = S_{i-1} + \phi(k_i) v_i^\top$ and
# $z_i = z_{i-1} + \phi(k_i)$ — prefix sums (`np.cumsum`), or an RNN whose state $(S, z)$ has a fixed size.
#
# ## Exercise 4 — `linear_attention` (2 points)
#
# Write `linear_attention(q, k, v, causal=False)` for `q, k` of shape `(..., N, d)` and `v` of shape
# `(..., N, d_v)`, in the $O(N d^2)$ form. Non-causal: $S$ = `swapaxes(phi_k, -1, -2) @ v`,
# $z$ = `phi_k.sum(axis=-2)`. Causal: cumulative sums over the token axis, e.g.
# `np.cumsum(phi_k[..., :, :, None] * v[..., :, None, :], axis=-3)` for the $(N, d, d_v)$ prefix
# sums of $S$, then `np.einsum` to contract with $\phi(q_i)$. No $1/\sqrt d$ here. Do not call
# `attnlab.linear_attention`.

# %%
def linear_attention(q, k, v, causal=False):
    """Linear attention with phi = elu + 1, O(N d^2) by associativity. Returns (..., N, d_v)."""
    ### BEGIN SOLUTION
    phi_q = np.where(q > 0, q + 1.0, np.exp(np.minimum(q, 0.0)))
    phi_k = np.where(k > 0, k + 1.0, np.exp(np.minimum(k, 0.0)))
    if causal:
        prefix_s = np.cumsum(phi_k[..., :, :, None] * v[..., :, None, :], axis=-3)  # (..., N, d, d_v)
        prefix_z = np.cumsum(phi_k, axis=-2)  # (..., N, d)
        numerator = np.einsum("...nd,...nde->...ne", phi_q, prefix_s)
        denominator = np.einsum("...nd,...nd->...n", phi_q, prefix_z)
    else:
        summary = np.swapaxes(phi_k, -1, -2) @ v  # (..., d, d_v)
        normaliser = phi_k.sum(axis=-2)  # (..., d)
        numerator = phi_q @ summary
        denominator = phi_q @ normaliser[..., :, None]
        denominator = denominator[..., 0]
    return numerator / denominator[..., None]
    ### END SOLUTION


# %%
check("linear_attention", linear_attention)
### BEGIN HIDDEN TESTS
check("linear_attention", linear_attention, hidden=True)
### END HIDDEN TESTS

# %% linear-check-md [markdown]
# **Check: the $O(N d^2)$ form equals the quadratic form** (`attnlab.linear_attention_quadratic`
# builds the $N \times N$ weights $\phi(q_i)^\top\phi(k_j) / \sum_{j'} \phi(q_i)^\top\phi(k_{j'})$
# explicitly), and the causal one equals the RNN (`attnlab.linear_attention_recurrent`, one token at
# a time with state $(S, z)$). Then time both sides of the associativity on growing $N$.

# %% linear-check
rng = np.random.default_rng(4)
q, k, v = (rng.standard_normal((2, 200, 16)) for _ in range(3))
try:
    for causal in (False, True):
        diff = np.abs(linear_attention(q, k, v, causal=causal) - attnlab.linear_attention_quadratic(q, k, v, causal=causal)).max()
        print(tr("causal={causal!s:<5}: max |yours - quadratic form| = {diff:.1e}", causal=causal, diff=diff))
    diff = np.abs(linear_attention(q, k, v, causal=True) - attnlab.linear_attention_recurrent(q, k, v)).max()
    print(tr("causal       : max |yours - RNN form|       = {diff:.1e}", diff=diff))
except NotImplementedError:
    print(tr("Finish exercise 4 (linear_attention) first, then run this cell again."))

print("\n{:>5} | {:>27} | {:>26} | {}".format(
    "N", tr("softmax attention, O(N^2 d)"), tr("linear attention, O(N d^2)"), tr("ratio")))
for row in attnlab.time_linear_vs_quadratic(ns=(256, 512, 1024, 2048), d=32):
    print(f"{row['n']:>5} | {row['quadratic_s'] * 1e3:24.2f} ms | {row['linear_s'] * 1e3:23.2f} ms | {row['ratio']:5.1f}x")

# %% linear-after-md [markdown]
# The linear form's time grows like $N$, the quadratic one's at least like $N^2$, so the ratio grows
# with $N$ — at least like $N/d$, and faster once the $N \times N$ matrices no longer fit in the CPU's
# caches (timings are noisy on a shared CPU; the trend is the point).
# The price: $\phi(q)^\top\phi(k)$ is *not* the softmax kernel, so linear attention is a different,
# usually weaker, model. Can we keep the softmax and still go linear? That is the Performer.
#
# ### Performer: random features for the softmax kernel
#
# **Claim** (Choromanski et al. 2021, *Rethinking Attention with Performers*, FAVOR+). For
# $\omega \sim \mathcal N(0, I_d)$ and $\phi_\omega(x) = \exp(\omega^\top x - \lVert x \rVert^2 / 2)$,
#
# $$\mathbb E_\omega\!\left[\phi_\omega(x)\, \phi_\omega(y)\right] = e^{x^\top y}.$$
#
# **Proof.** $\phi_\omega(x)\phi_\omega(y) = e^{\omega^\top (x + y)}\, e^{-(\lVert x\rVert^2 + \lVert y\rVert^2)/2}$.
# The Gaussian moment generating function gives $\mathbb E[e^{\omega^\top u}] = e^{\lVert u \rVert^2/2}$,
# and $\lVert x + y \rVert^2 - \lVert x \rVert^2 - \lVert y \rVert^2 = 2 x^\top y$. $\square$
#
# Averaging over $m$ draws $\omega_1 \dots \omega_m$ gives features $\phi(x) \in \mathbb R^m$ (all positive)
# with $\phi(x)^\top \phi(y) \approx e^{x^\top y}$; with $x = q / d^{1/4}$, $y = k / d^{1/4}$ this is the softmax
# similarity, and linear attention's associativity applies: $O(N m d)$. The estimate's error falls like
# $1/\sqrt m$. Both claims are checked below: the kernel by Monte Carlo, and the attention error vs
# $m$ measured on $N = 128$ tokens (averaged over 6 draws of the features, i.i.d. and orthogonal).
#
# **What is unbiased, and what is not.** Each *kernel* value $\phi(q_i)^\top\phi(k_j)$ is an unbiased
# estimate of $e^{q_i \cdot k_j/\sqrt d}$. The attention *output* is a ratio of two such estimates,
# $\sum_j \phi(q_i)^\top\phi(k_j)\, v_j \,/\, \sum_j \phi(q_i)^\top\phi(k_j)$, and the expectation of a ratio
# is not the ratio of the expectations: Performer's attention is biased, with a bias that shrinks
# as $m$ grows. **How noisy** one feature is follows from the same moment generating function
# (Choromanski et al. 2021, Lemma 1): its variance is
#
# $$\operatorname{Var}_\omega\!\left[\phi_\omega(x)\,\phi_\omega(y)\right] = e^{2x^\top y}\left(e^{\lVert x + y \rVert^2} - 1\right),$$
#
# the squared kernel times $e^{\lVert x + y \rVert^2} - 1$; averaging $m$ features divides it by $m$. The
# relative error therefore grows exponentially with $\lVert x + y \rVert^2$. The cell checks this too.

# %% performer
rng = np.random.default_rng(5)
x, y = 0.5 * rng.standard_normal(8), 0.5 * rng.standard_normal(8)
for m in (100, 10_000, 1_000_000):
    omega = attnlab.random_feature_matrix(8, m, seed=6)
    estimate = attnlab.performer_features(x[None], omega)[0] @ attnlab.performer_features(y[None], omega)[0]
    print(tr("m = {m:>9,}: phi(x).phi(y) = {estimate:.5f}   exp(x.y) = {exact:.5f}   relative error {error:.1e}",
             m=m, estimate=estimate, exact=np.exp(x @ y), error=abs(estimate / np.exp(x @ y) - 1)))
one_feature = m * attnlab.performer_features(x[None], omega)[0] * attnlab.performer_features(y[None], omega)[0]
print(tr("variance of one feature / exp(x.y)^2: measured over {m:,} draws {measured:.2f}, "
         "Lemma 1: exp(|x + y|^2) - 1 = {lemma:.2f}  (heavy-tailed: the measurement converges slowly)",
         m=m, measured=one_feature.var() / np.exp(x @ y) ** 2, lemma=np.exp(np.sum((x + y) ** 2)) - 1))

curve = attnlab.performer_error_curve(n=128, d=16, ms=(8, 32, 128, 512, 2048))
for m, e_iid, e_orth in zip(curve["m"], curve["iid"], curve["orthogonal"]):
    print(tr("m = {m:>4}: relative error of Performer attention {iid:.3f} (i.i.d.), {orth:.3f} (orthogonal)",
             m=m, iid=e_iid, orth=e_orth))
print(tr("log-log slope over the larger m: {iid:.2f} (i.i.d.), {orth:.2f} (orthogonal); 1/sqrt(m) is -0.50",
         iid=curve["iid_slope"], orth=curve["orthogonal_slope"]))
attnlab.plot_performer_error(curve)
plt.show()

# %% ssm-md [markdown]
# The errors are large at small $m$: the relative variance of each feature is $e^{\lVert x + y \rVert^2} - 1$
# (Lemma 1 above), which grows fast with the size of the queries and keys. That is why the check
# uses small ones (standard deviation 0.5). Try `attnlab.performer_error_curve(qk_std=1.0)` to see
# it struggle.
#
# ## 4. State space models
#
# ### 4.1 Zero-order-hold discretisation
#
# A linear state space model maps an input signal $u(t)$ to an output $y(t)$ through a hidden state
# $h(t) \in \mathbb R^n$:
#
# $$h'(t) = A\,h(t) + B\,u(t), \qquad y(t) = C\,h(t).$$
#
# Tokens arrive at steps of length $\Delta$. **Zero-order hold** (ZOH): assume $u$ is constant, $= u_k$,
# during a step. This is the textbook rule of control theory; among sequence models, S4D (Gu et al.
# 2022, "On the Parameterization and Initialization of Diagonal State Space Models") and Mamba
# (Gu and Dao 2023) use it. S4 itself (Gu, Goel and Ré 2022) used the bilinear transform
# $\bar A = (I - \tfrac{\Delta}{2}A)^{-1}(I + \tfrac{\Delta}{2}A)$ instead. **Claim:**
#
# $$h_k = \bar A\, h_{k-1} + \bar B\, u_k, \qquad \bar A = e^{\Delta A}, \qquad
# \bar B = (\Delta A)^{-1}\left(e^{\Delta A} - I\right) \Delta B ,$$
#
# and this is *exact* for piecewise-constant inputs.
#
# **Proof.** Multiply the ODE by $e^{-At}$: $\frac{d}{dt}\left(e^{-At} h\right) = e^{-At} B u$. Integrate
# over one step, from $t$ to $t + \Delta$, with $u = u_k$ constant:
#
# $$h(t + \Delta) = e^{\Delta A} h(t) + \int_0^\Delta e^{A \tau}\, d\tau\; B u_k
# = e^{\Delta A} h(t) + A^{-1}\!\left(e^{\Delta A} - I\right) B u_k ,$$
#
# and $A^{-1}(e^{\Delta A} - I) B = (\Delta A)^{-1}(e^{\Delta A} - I)\,\Delta B$. $\square$
#
# For a **diagonal** $A$ (a vector of eigenvalues, as in S4D and Mamba) everything is elementwise:
# $\bar A = e^{\Delta A}$, $\bar B = (e^{\Delta A} - 1) / A \cdot B$. The Euler rule
# $\bar A = I + \Delta A$, $\bar B = \Delta B$ is only the first-order Taylor approximation.
#
# ## Exercise 5 — `ssm_discretize` (3 points)
#
# Write `ssm_discretize(A, B, delta)` returning `(A_bar, B_bar)`, for `A` either a diagonal given as a
# vector `(n,)` or a dense matrix `(n, n)`; `B` of shape `(n,)` or `(n, k)`; `delta` a positive number.
# - diagonal: elementwise formulas above (for `B` of shape `(n, k)`, the factor multiplies each row:
#   `factor[:, None] * B`);
# - dense: the **matrix** exponential `attnlab.expm(delta * A)` (not `np.exp`), and
#   $\bar B$ by `np.linalg.solve(delta * A, ...)` rather than an explicit inverse.

# %%
def ssm_discretize(A, B, delta):
    """Zero-order hold: (A_bar, B_bar) = (exp(delta A), (delta A)^-1 (exp(delta A) - I) delta B)."""
    ### BEGIN SOLUTION
    A = np.asarray(A)
    B = np.asarray(B)
    if A.ndim == 1:
        decay = np.exp(delta * A)
        gain = (decay - 1.0) / A
        return decay, (gain * B if B.ndim == 1 else gain[:, None] * B)
    decay = attnlab.expm(delta * A)
    gain_times_b = np.linalg.solve(delta * A, (decay - np.eye(A.shape[0])) @ (delta * B))
    return decay, gain_times_b
    ### END SOLUTION


# %%
check("ssm_discretize", ssm_discretize)
### BEGIN HIDDEN TESTS
check("ssm_discretize", ssm_discretize, hidden=True)
### END HIDDEN TESTS

# %% zoh-check-md [markdown]
# **Two independent checks.** (1) Van Loan's trick: the exponential of the block matrix
# $\Delta \begin{pmatrix} A & B \\ 0 & 0 \end{pmatrix}$ is $\begin{pmatrix} \bar A & \bar B \\ 0 & I \end{pmatrix}$
# (its top-right block is exactly the integral in the proof). (2) Simulate the ODE over one step with
# 100,000 tiny Euler sub-steps and a constant input: one ZOH step must land on the same state, one big
# Euler step must not.

# %% zoh-check
A = np.array([[-1.0, 2.0], [-2.0, -0.5]])  # a damped rotation
B = np.array([[1.0], [0.5]])
delta, h0, u0 = 0.3, np.array([1.0, -1.0]), 2.0
try:
    A_bar, B_bar = ssm_discretize(A, B, delta)
    block = attnlab.expm(delta * np.block([[A, B], [np.zeros((1, 3))]]))
    print(f"Van Loan: max |block - (A_bar, B_bar)| = {max(np.abs(block[:2, :2] - A_bar).max(), np.abs(block[:2, 2:] - B_bar).max()):.1e}")
    h, steps = h0.copy(), 100_000
    for _ in range(steps):  # the "true" trajectory, with a very small step
        h = h + (delta / steps) * (A @ h + B[:, 0] * u0)
    zoh = A_bar @ h0 + B_bar[:, 0] * u0
    euler = h0 + delta * (A @ h0 + B[:, 0] * u0)
    print(tr("after one step of {delta}: fine simulation {h}, ZOH {zoh}, Euler {euler}",
             delta=delta, h=h, zoh=zoh, euler=euler))
    print(tr("  |ZOH - simulation| = {zoh:.1e}   |Euler - simulation| = {euler:.1e}",
             zoh=np.abs(zoh - h).max(), euler=np.abs(euler - h).max()))
except NotImplementedError:
    print(tr("Finish exercise 5 (ssm_discretize) first, then run this cell again."))

# %% kernel-md [markdown]
# The ZOH step agrees with the simulation up to the simulation's own error (about $\Delta^2/\text{steps}$);
# Euler is off in the second digit.
#
# ### 4.2 The recurrence is a convolution
#
# Unroll $h_k = \bar A h_{k-1} + \bar B u_k$ from $h_{-1} = 0$:
# $h_k = \sum_{j \le k} \bar A^{\,k-j} \bar B\, u_j$, so
#
# $$y_k = C h_k = \sum_{j=0}^{k} \underbrace{C \bar A^{\,k-j} \bar B}_{K_{k-j}}\, u_j = (K * u)_k, \qquad
# K = \left(C\bar B,\ C\bar A\bar B,\ C\bar A^2\bar B,\ \dots,\ C\bar A^{L-1}\bar B\right).$$
#
# Training can therefore compute all outputs at once with one FFT convolution, $O(L \log L)$ and fully
# parallel, while generation runs the recurrence, $O(1)$ per token with a fixed-size state — the best
# of CNNs and RNNs. This only holds because $\bar A, \bar B, C$ are the same at every step
# (a *linear time-invariant* system).
#
# ## Exercise 6 — `ssm_kernel` (2 points)
#
# Write `ssm_kernel(A_bar, B_bar, C, L)` returning the length-`L` kernel as a 1-D array, for a single
# input and output: `B_bar` of shape `(n,)` or `(n, 1)`, `C` of shape `(n,)` or `(1, n)` (flatten them
# with `.reshape(-1)`), `A_bar` diagonal `(n,)` or dense `(n, n)`. Keep a vector $x = \bar A^k \bar B$
# and multiply it by $\bar A$ once per step (`A_bar * x` if diagonal, `A_bar @ x` if dense).

# %%
def ssm_kernel(A_bar, B_bar, C, L):
    """K = (C B_bar, C A_bar B_bar, ..., C A_bar^(L-1) B_bar), shape (L,)."""
    ### BEGIN SOLUTION
    A_bar = np.asarray(A_bar)
    state = np.asarray(B_bar).reshape(-1)
    readout = np.asarray(C).reshape(-1)
    kernel = np.empty(L, dtype=np.result_type(A_bar, state, readout))
    for power in range(L):
        kernel[power] = readout @ state
        state = A_bar * state if A_bar.ndim == 1 else A_bar @ state
    return kernel
    ### END SOLUTION


# %%
check("ssm_kernel", ssm_kernel)
### BEGIN HIDDEN TESTS
check("ssm_kernel", ssm_kernel, hidden=True)
### END HIDDEN TESTS

# %% kernel-check-md [markdown]
# **Check: the convolution with your kernel equals the recurrence**, for an S4D-style diagonal state
# (eigenvalues $-\tfrac12 + i\pi n$, complex: the kernel oscillates) and for a dense one. The
# recurrence is `attnlab.ssm_recurrence` (step by step); the convolution `attnlab.ssm_convolve` (FFT).

# %% kernel-check
rng = np.random.default_rng(7)
L_SEQ = 256
u = rng.standard_normal((3, L_SEQ))  # 3 input sequences
A_diag = -0.5 + 1j * np.pi * np.arange(8)  # S4D-Lin initialisation (Gu et al. 2022, "On the parameterization ... of diagonal SSMs")
B_diag, C_diag = np.ones(8), rng.standard_normal(8) + 1j * rng.standard_normal(8)
A_dense = -np.eye(4) + 0.5 * rng.standard_normal((4, 4))
A_dense -= (np.max(np.linalg.eigvals(A_dense).real) + 0.2) * np.eye(4)  # shift so the system is stable
B_dense, C_dense = rng.standard_normal(4), rng.standard_normal(4)
try:
    for name, A, B, C in [(tr("diagonal, complex"), A_diag, B_diag, C_diag), (tr("dense"), A_dense, B_dense, C_dense)]:
        A_bar, B_bar = attnlab.ssm_discretize(A, B, 0.05)
        K = ssm_kernel(A_bar, B_bar, C, L_SEQ)
        y_conv = attnlab.ssm_convolve(K, u)
        y_rec = attnlab.ssm_recurrence(A_bar, B_bar, C, u)
        print(tr("{name:>17}: max |convolution - recurrence| = {diff:.1e}  (|y| up to {y_max:.1f})",
                 name=name, diff=np.abs(y_conv - y_rec).max(), y_max=np.abs(y_rec).max()))
    plt.figure(figsize=(7, 2.8))
    plt.plot(K.real, label=tr("dense A: K_k"))
    plt.plot(ssm_kernel(*attnlab.ssm_discretize(A_diag, B_diag, 0.05), C_diag, L_SEQ).real, label="S4D-Lin: Re K_k")
    plt.xlabel(tr("lag k"))
    plt.title(tr("SSM convolution kernels: how much input k steps ago counts now"))
    plt.legend()
    plt.show()
except NotImplementedError:
    print(tr("Finish exercise 6 (ssm_kernel) first, then run this cell again."))

# %% mamba-md [markdown]
# ### 4.3 Mamba: selective (input-dependent) $\Delta$, $B$, $C$
#
# An LTI system treats every token the same way: it cannot decide to *remember this token* and
# *ignore that one*. Mamba (Gu & Dao 2023, *Linear-Time Sequence Modeling with Selective State
# Spaces*) makes the step and the projections functions of the current input $x_t$:
#
# $$\Delta_t = \operatorname{softplus}(W_\Delta x_t + b_\Delta), \qquad B_t = W_B\, x_t, \qquad C_t = W_C\, x_t .$$
#
# For every channel $d$ (its own diagonal $A_d \in \mathbb R^{n}$, $A = -e^{A_{\log}} < 0$) and state index:
#
# $$h_t = e^{\Delta_t A_d} \odot h_{t-1} + \Delta_t B_t\, u_t, \qquad y_t = C_t^\top h_t + D_d\, u_t .$$
#
# $A$ is discretised by ZOH, $B$ by the simpler Euler rule $\bar B_t = \Delta_t B_t$ (as in the reference
# implementation). A large $\Delta_t$ forgets the past ($e^{\Delta_t A} \to 0$) and takes in $u_t$; a small
# $\Delta_t$ keeps the state and ignores $u_t$. Because $\bar A_t$ now changes with $t$ there is no single
# kernel $K$: Mamba runs the recurrence as a (parallel) scan.
#
# ## Exercise 7 — `selective_scan` (3 points)
#
# Write `selective_scan(u, delta, A, B, C, D=None)` with the shapes of `mamba_ssm`'s reference:
# `u`, `delta`: `(batch, d_inner, L)`; `A`: `(d_inner, d_state)`; `B`, `C`: `(batch, d_state, L)`
# (shared by all channels); `D`: `(d_inner,)` or None. Return `y` of shape `(batch, d_inner, L)`.
# Loop over time with a state `h` of shape `(batch, d_inner, d_state)`, starting at 0; at step `t`:
# `dt = delta[:, :, t, None]`, $\bar A$ = `np.exp(dt * A)`, add `dt * B[:, None, :, t] * u[:, :, t, None]`,
# then read out with `np.einsum("bdn,bn->bd", h, C[:, :, t])`. Add `D[:, None] * u` at the end if given.

# %%
def selective_scan(u, delta, A, B, C, D=None):
    """Mamba's selective scan: h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t, y_t = C_t . h_t + D u_t."""
    ### BEGIN SOLUTION
    batch, d_inner, length = u.shape
    state = np.zeros((batch, d_inner, A.shape[1]))
    out = np.zeros((batch, d_inner, length))
    for t in range(length):
        step = delta[:, :, t, None]  # (batch, d_inner, 1)
        state = np.exp(step * A) * state + step * B[:, None, :, t] * u[:, :, t, None]
        out[:, :, t] = np.einsum("bdn,bn->bd", state, C[:, :, t])
    if D is not None:
        out = out + D[:, None] * u
    return out
    ### END SOLUTION


# %%
check("selective_scan", selective_scan)
### BEGIN HIDDEN TESTS
check("selective_scan", selective_scan, hidden=True)
### END HIDDEN TESTS

# %% mamba-demo-md [markdown]
# **A Mamba block, opened up.** `attnlab.mamba_selective_inputs` feeds a token sequence (random
# embeddings) through a randomly initialised `attnlab.MambaBlock` (the layout of Hugging Face's
# `MambaMixer`) and returns what its scan sees. Three checks:
# 1. your scan on those inputs equals the block's own torch scan;
# 2. the parameters really depend on the input: change one token and $\Delta$ changes at that position
#    and the next three only (the block's causal convolution has width 4), nowhere else;
# 3. freeze $\Delta, B, C$ (here: at their average over time) and the selective scan becomes an LTI
#    SSM again — equal to the convolution with the kernel of section 4.2, channel by channel.

# %% mamba-demo
tokens = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4])
s = attnlab.mamba_selective_inputs(tokens, d_model=16, d_state=8)
attnlab.plot_selective_params(s["delta"], s["B"], s["C"], tokens=tokens)
plt.show()
try:
    y = selective_scan(s["u"], s["delta"], s["A"], s["B"], s["C"], s["D"])
    print(tr("1. max |your scan - MambaBlock's torch scan| = {diff:.1e}", diff=np.abs(y - s["torch_out"]).max()))
except NotImplementedError:
    print(tr("1. (finish exercise 7 to compare your scan with the block's)"))

changed = tokens.copy()
changed[10] = 0
s2 = attnlab.mamba_selective_inputs(changed, d_model=16, d_state=8)
moved = np.flatnonzero(np.abs(s2["delta"] - s["delta"]).max(axis=(0, 1)) > 1e-12)
print(tr("2. token 10 changed: delta changed at positions {positions}", positions=moved.tolist()))

u_, A_ = s["u"], s["A"]
dt, B_avg, C_avg = s["delta"].mean(axis=-1, keepdims=True), s["B"].mean(axis=-1), s["C"].mean(axis=-1)
L_tok = len(tokens)
y_frozen = attnlab.selective_scan(u_, np.broadcast_to(dt, u_.shape), A_, np.repeat(B_avg[..., None], L_tok, -1),
                                  np.repeat(C_avg[..., None], L_tok, -1))
y_conv = np.stack([attnlab.ssm_convolve(attnlab.ssm_kernel(np.exp(dt[0, c, 0] * A_[c]), dt[0, c, 0] * B_avg[0], C_avg[0], L_tok), u_[0, c])
                   for c in range(u_.shape[1])])
print(tr("3. frozen delta, B, C: max |selective scan - LTI convolution| = {diff:.1e}",
         diff=np.abs(y_frozen[0] - y_conv).max()))

# %% kv-md [markdown]
# ## 5. The KV cache
#
# A decoder generates one token at a time; the new query must attend to the keys and values of every
# earlier token, so they are kept: the **KV cache**. Per layer and per token it stores one key and one
# value vector for each key/value head:
#
# $$\text{bytes} = 2 \cdot n_{\text{layers}} \cdot H_{kv} \cdot d_{\text{head}} \cdot T \cdot \text{batch} \cdot \text{bytes per element}.$$
#
# Multi-head attention has $H_{kv} = H$. **Multi-query attention** (Shazeer 2019) shares one key/value
# head among all query heads, $H_{kv} = 1$; **grouped-query attention** (Ainslie et al. 2023) shares each
# among a group, $1 < H_{kv} < H$. The cache shrinks by $H / H_{kv}$, and so do the key and value
# projections ($W_K, W_V$ have $H_{kv}\,d_{\text{head}}$ columns instead of $H\,d_{\text{head}}$). The
# attention arithmetic itself, $QK^\top$ and $AV$ for every query head, stays the same.
#
# ## Exercise 8 — `kv_cache_bytes` (2 points)
#
# Write `kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2)`
# returning the number of bytes as an integer.

# %%
def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2):
    """Bytes of a KV cache: keys and values for every layer, kv head, token and sequence."""
    ### BEGIN SOLUTION
    keys_and_values = 2
    return keys_and_values * n_layers * n_kv_heads * head_dim * seq_len * batch * bytes_per_element
    ### END SOLUTION


# %%
check("kv_cache_bytes", kv_cache_bytes)
### BEGIN HIDDEN TESTS
check("kv_cache_bytes", kv_cache_bytes, hidden=True)
### END HIDDEN TESTS

# %% kv-table-md [markdown]
# **Real models.** Shapes from the published `config.json` of each model on the Hugging Face Hub
# (`openai-community/gpt2`, `meta-llama/Llama-2-7b-hf`, `mistralai/Mistral-7B-v0.1`,
# `meta-llama/Llama-3.1-8B`, `meta-llama/Llama-2-70b-hf`, `tiiuae/falcon-7b`; they are
# `attnlab.KV_MODEL_SHAPES`), in fp16, batch 1. The table applies the formula as it stands: every
# token kept. One model keeps less. Mistral-7B's config sets `sliding_window`: each layer attends
# only to the most recent tokens (Jiang et al. 2023, *Mistral 7B*), so a **rolling cache** holding
# just those tokens is enough, and its size stops growing at the window. The lines under the table
# print what it really keeps. Llama-3.1-8B has the same shapes and no window: it keeps everything.
# Then the formula meets reality: a tiny Hugging Face Mistral model (random weights, float32, so
# 4 bytes per element) runs a forward pass with its cache on, and we add up the bytes of the tensors
# it actually cached.

# %% kv-table
print(tr("every token kept (the formula above, ignoring any sliding window); KiB = 1024 bytes, GiB = 2^30 bytes;"))
print(tr("(in brackets: longer than the context the model was trained for)"))
print("{:>12} | {:>4} | {:>6} | {:>5} | {:>8} | {:>8} | {:>7} | {:>11} | {:>9} | {:>10} | {}".format(
    tr("model"), tr("kind"), tr("layers"), tr("heads"), tr("kv heads"), tr("head dim"), tr("context"),
    tr("KiB / token"), tr("GiB at 4K"), tr("GiB at 32K"), tr("vs MHA")))
kv_rows = attnlab.kv_cache_table(seq_lens=(4096, 32768))


def gib(row, length):
    text = f"{row[f'bytes_at_{length}'] / 2**30:.2f}"
    return text if length <= row["context_length"] else f"({text})"


for row in kv_rows:
    print(f"{row['name']:>12} | {row['kind']:>4} | {row['n_layers']:>6} | {row['n_heads']:>5} | {row['n_kv_heads']:>8} | "
          f"{row['head_dim']:>8} | {row['context_length']:>7,} | {row['bytes_per_token'] / 1024:11.0f} | "
          f"{gib(row, 4096):>9} | {gib(row, 32768):>10} | "
          + ("-" if row["kind"] == "MHA"
             else tr("{ratio:.0f}x smaller", ratio=row["mha_bytes_at_4096"] / row["bytes_at_4096"])))
for row in kv_rows:
    if row["sliding_window"] is not None:
        print(tr("\n{name} has sliding_window = {window}: its rolling cache keeps {kept_4k:.2f} GiB at 4K "
                 "and still {kept_32k:.2f} GiB at 32K tokens, not {full_32k:.2f} GiB",
                 name=row["name"], window=row["sliding_window"], kept_4k=row["kept_bytes_at_4096"] / 2**30,
                 kept_32k=row["kept_bytes_at_32768"] / 2**30, full_32k=row["bytes_at_32768"] / 2**30))

try:
    shape = {"n_layers": 2, "n_kv_heads": 2, "head_dim": 16, "seq_len": 10, "batch": 3}
    measured = attnlab.hf_kv_cache_bytes(n_heads=4, **shape)
    print(tr("\ntiny Mistral (4 query heads, 2 kv heads): cache holds {measured} bytes; your formula says {yours}",
             measured=measured, yours=kv_cache_bytes(**shape, bytes_per_element=4)))
except NotImplementedError:
    print(tr("\nFinish exercise 8 (kv_cache_bytes) to compare your formula with a real cache."))

# %% kv-compress-md [markdown]
# ### Compressing the cache of a trained model
#
# MQA and GQA are chosen before training. Can we shrink the cache of a model that is already trained?
# Two measured answers, on a tiny character-level GPT (2 layers, 8 heads of width 8, RoPE) trained
# here for a few seconds on Python source code (the progress bar below). Set `FULL_RUN = True` for a
# longer training run and cleaner heads.
#
# **Grouping heads (MHA → GQA).** Ainslie et al. (2023) convert a multi-head checkpoint by
# *mean-pooling* the key and value heads of each group. Which heads should share? Consecutive heads
# (0–1, 2–3, …) ignore what the heads do; QCQA (Joshi et al. 2024) chooses groups of heads whose keys
# and values are alike, so that the average loses less. `attnlab.similarity_head_groups` does this by
# k-means over the heads' keys and values on calibration text, started from the consecutive groups, so
# its averaging error (`attnlab.grouping_cost`) can only be lower. Both are compared at the same cache
# size: 4 key/value heads for 8 query heads.
#
# **Pruning cached keys (Expected Attention).** Or keep every head but drop positions. Which ones?
# Devoto et al. (2025) model the queries to come as a Gaussian $q \sim \mathcal N(\mu, \Sigma)$ fitted
# to the most recent queries; the attention key $k$ will receive then has a closed form — the same
# Gaussian moment generating function as in the Performer proof:
#
# $$\mathbb E\left[e^{q^\top k / \sqrt d}\right] = \exp\!\left(\frac{\mu^\top k}{\sqrt d} + \frac{k^\top \Sigma\, k}{2d}\right).$$
#
# Keep the keys with the largest expected attention (times $\lVert v \rVert$: a key matters through the
# value it brings). Baselines: keep the most recent positions, or random ones. The closed form is
# checked by Monte Carlo first.

# %% kv-compress-train
FULL_RUN = False  # True: 1500 training steps (a few minutes on a laptop) instead of 300

rng = np.random.default_rng(9)
keys = rng.standard_normal((10, 8))
recent_queries = rng.standard_normal((64, 8)) @ (0.4 * rng.standard_normal((8, 8))) + 0.3
mu, cov = attnlab.gaussian_query_estimate(recent_queries)
closed_form = attnlab.expected_attention_scores(keys, mu, cov)
weights = np.exp(rng.multivariate_normal(mu, cov, size=400_000) @ keys.T / np.sqrt(8))  # (samples, keys)
sampled = weights.mean(axis=0)
noise = (weights.std(axis=0) / sampled).max() / np.sqrt(len(weights))  # Monte Carlo standard error
sampled /= sampled.sum()
print(tr("expected attention of 10 keys: closed form vs 400,000 sampled queries, "
         "max relative difference {diff:.1e} (Monte Carlo standard error about {noise:.0e})",
         diff=np.abs(closed_form / sampled - 1).max(), noise=noise))

model, corpus, history = attnlab.train_tiny_char_gpt(steps=1500 if FULL_RUN else 300)
print(tr("tiny GPT trained: loss {first:.2f} -> {last:.2f} (uniform guessing over {vocab} characters: {uniform:.2f})",
         first=history["loss"][0], last=history["loss"][-1], vocab=corpus.vocab_size,
         uniform=np.log(corpus.vocab_size)))

# %% kv-compress
kv = attnlab.kv_compression_errors(model, corpus, n_groups=4, prune_fractions=(0.3, 0.6, 0.9))
print(tr("MHA -> GQA with 4 kv heads (errors = ||out - out_MHA|| / ||out_MHA|| on held-out text)"))
print("{:>5} | {:>23} {:>10} | {:>21} {:>10} | {}".format(
    tr("layer"), tr("averaging cost: uniform"), tr("similarity"), tr("output error: uniform"), tr("similarity"),
    tr("similarity groups")))
for g in kv["grouping"]:
    print(f"{g['layer']:>5} | {g['uniform_cost']:23.1f} {g['similarity_cost']:10.1f} | "
          f"{g['uniform']:21.3f} {g['similarity']:10.3f} | {g['similarity_labels'].tolist()}")

print(tr("\npruning the cache when 96 of 128 tokens are cached; error of the next 32 outputs"))
print("{:>5} | {:>6} | {:>18} | {:>7} | {:>6} | {}".format(
    tr("layer"), tr("pruned"), tr("expected attention"), tr("recency"), tr("random"), tr("best")))
wins = 0
for p in kv["pruning"]:
    errors = {m: p[m] for m in ("expected_attention", "recency", "random")}
    best = min(errors, key=errors.get)
    wins += best == "expected_attention"
    print(f"{p['layer']:>5} | {p['fraction']:6.0%} | {errors['expected_attention']:18.3f} | "
          f"{errors['recency']:7.3f} | {errors['random']:6.3f} | {best}")
print(tr("\nexpected attention is best in {wins} of {total} settings", wins=wins, total=len(kv["pruning"])))

# %% kv-compress-after-md [markdown]
# How to read these numbers (they come from a model trained for seconds, so expect them to move with
# the seed and with `FULL_RUN`):
# - Mean-pooling heads *without retraining* changes the layer's output a lot, whichever groups you
#   choose: GQA checkpoints are converted and then **uptrained** (Ainslie et al. use 5% of the original
#   training compute). Good groups lower the averaging cost; whether that shows in the output error
#   depends on how different the heads are.
# - Pruning is gentler, and the best rule depends on the head: a layer that mostly looks at the last
#   few characters is served well by recency; one that looks back at specific earlier tokens needs a
#   content-based rule such as expected attention. Random pruning is the floor any rule must beat.

# %% graph-md [markdown]
# ## 6. Attention as message passing
#
# Read the tokens as the nodes of a graph and the mask as its edges: $\text{mask}[i, j] = $ True is an
# edge $j \to i$. One attention layer is one round of **message passing**: every node $j$ sends its
# value $v_j$ along its out-edges; node $i$ scores each incoming message by $q_i \cdot k_j / \sqrt d$,
# normalises the scores with a softmax **over its in-neighbours**, and sums. Full attention is
# message passing on the *complete* graph ($N^2$ edges); a causal mask makes it a DAG; a sparse pattern
# is a sparse graph (a graph attention network is the same layer on a given graph). The check below
# runs the message-passing form node by node (`attnlab.message_passing_attention`) on a BigBird graph
# and compares it with masked attention.
#
# The graph view also says what sparsity costs in **expressiveness**: with a residual stream, after
# $L$ layers token $i$ has heard from every token within $L$ hops. `attnlab.graph_hops` counts the
# layers needed before every token can reach every other — the "maximum path length" of Zone 1's
# fossil table (an RNN needs $N$; full attention 1).

# %% graph
rng = np.random.default_rng(8)
n_nodes = 24
q, k, v = (rng.standard_normal((n_nodes, 8)) for _ in range(3))
edges = attnlab.sparse_mask(n_nodes, "bigbird", window=1, n_global=1, n_random=2)
passed = attnlab.message_passing_attention(q, k, v, edges)
masked, _ = attnlab.scaled_dot_product_attention(q, k, v, mask=edges)
print(tr("BigBird graph: {edges} edges; max |message passing - masked attention| = {diff:.1e}",
         edges=int(edges.sum()), diff=np.abs(passed - masked).max()))

n_graph = 64
graphs = {
    tr("full"): np.ones((n_graph, n_graph), dtype=bool),
    tr("causal"): attnlab.causal_mask(n_graph),
    tr("local w=2"): attnlab.sparse_mask(n_graph, "local", window=2),
    tr("local w=2 + strided s=8"): attnlab.sparse_mask(n_graph, "local", window=2) | attnlab.sparse_mask(n_graph, "strided", stride=8),
    "BigBird (w=2, g=1, r=2)": attnlab.sparse_mask(n_graph, "bigbird", window=2, n_global=1, n_random=2),
    tr("strided s=8 alone"): attnlab.sparse_mask(n_graph, "strided", stride=8),
}
print("\n{:>24} | {:>5} | {}".format(
    tr("graph on 64 tokens"), tr("edges"), tr("layers until everyone has heard from everyone")))
for name, graph in graphs.items():
    print(f"{name:>24} | {int(graph.sum()):>5} | {attnlab.graph_hops(graph):g}")

# %% map-md [markdown]
# A purely strided graph never connects tokens of different residue classes (inf): that is why the
# Sparse Transformer alternates it with a local pattern, and why BigBird adds global tokens — two hops
# through a global token connect anything.
#
# ## 7. The map: efficiency, expressiveness, memory
#
# Everything of this zone on one page, for one head of width $d = 64$ at $N = 4096$ tokens
# (`attnlab.efficiency_map`): multiply-adds of one layer, extra memory while training, what must be
# kept to generate the next token, whether the softmax is computed exactly, and the hops needed to
# connect all tokens (measured on 256-token graphs).

# %% map
rows = attnlab.efficiency_map(n=4096, d=64)
print("{:>32} | {:>13} | {:>12} | {:>12} | {:>4} | {}".format(
    tr("method"), tr("multiply-adds"), tr("train memory"), tr("decode state"), tr("hops"), tr("softmax?")))
for r in rows:
    print(f"{r['method']:>32} | {r['cost']:13.2e} | {r['train_memory']:12.2e} | {r['decode_state']:12.2e} | "
          f"{r['hops']:>4g} | {r['exact']}")
attnlab.plot_efficiency_map(rows)
plt.show()

# %% map-after-md [markdown]
# How to read it:
# - **FlashAttention** moves full attention *down in training memory* without changing anything else:
#   same numbers, same compute. It is the default today.
# - **GQA / MQA** move it *down in decoding memory*: the cache shrinks by $H / H_{kv}$, still exact.
# - **Sparse patterns** move *left* (fewer multiply-adds) at the price of hops: information needs
#   several layers to travel. Global tokens bring the hops back to 2.
# - **Linear attention, Performer and SSMs / Mamba** move to the *bottom left*: linear compute and a
#   fixed-size state — but the state is a compression of the past, so recalling an exact earlier token
#   gets harder as the sequence grows. Mamba's selectivity is how it decides what to keep.
#
# No point is best on every axis; that is why today's long-context models mix them (hybrids of
# attention and Mamba layers, local + global layers, GQA + FlashAttention).

# %% progress [markdown]
# ## Progress
#
# ✅ Zone 3b done: you derived FlashAttention's memory traffic and its online softmax, built sparse
# masks and linear attention, discretised and unrolled a state space model, wrote Mamba's selective
# scan, and sized the KV cache of real models.
#
# **Next:** [Zone 4 — Implementation](../04_implementation/04_implementation.ipynb): torch modules with
# a KV cache and grouped heads, a GPT that matches Hugging Face's, FlashAttention in NumPy and in
# Triton, and a Mamba block.
