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
# # Zone 4 — Implementation: building the real thing
#
# *Lecture 14: Attention — leaving the fossils behind.*
#
# Zones 0–3 derived attention on paper and in NumPy. Here you build what runs in a real
# language model, and check every piece against an independent implementation:
#
# 1. **Decoding with a KV cache** — one generation step, in NumPy (exercise 1).
# 2. **Grouped-query attention** — many query heads sharing few key/value heads (exercise 2).
# 3. **The torch modules** — `attnlab.Attention`, the block and a GPT, checked against your NumPy.
# 4. **Hugging Face GPT-2 weights** — loaded into `attnlab.GPT`, same logits.
# 5. **Training** on a built-in corpus, then **generation** with and without the cache.
# 6. **FlashAttention in NumPy** — the tiled forward, with its memory measured (exercise 3).
# 7. **FlashAttention in Triton** — you write the kernel's inner loop (exercise 4), then read how
#    fast the full kernel runs on a GPU and what FlashAttention-3 does beyond it.
# 8. **Mamba** — a block matching Hugging Face's `MambaMixer`, and the parallel scan (exercise 5).
#
# Five graded exercises, 17 points. About 45 minutes.
#
# | symbol | meaning |
# | --- | --- |
# | $B$ | batch size |
# | $H,\ H_{kv}$ | query heads, key/value heads ($H_{kv}$ divides $H$) |
# | $N,\ T$ | sequence length; $T$ = number of tokens already in the KV cache |
# | $d$ | head dimension (width of one query / key / value) |
# | $m,\ \ell,\ \mathrm{acc}$ | FlashAttention's running maximum, running sum, unnormalised output |
# | $a_t,\ b_t,\ h_t$ | the first-order recurrence $h_t = a_t h_{t-1} + b_t$ of Mamba's scan |

# %% setup
# Setup (locked): the course library and the graders.
import inspect
import os
import time

import torch

# Triton (section 7) compiles its kernels for a CUDA GPU. Without one it runs them in its CPU
# interpreter, and that switch must be set BEFORE triton is first imported (transformers imports
# it too), so it is set here, first thing.
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # Hugging Face models are built locally, never downloaded

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import attnlab  # noqa: E402
from attnlab import tr  # noqa: E402
import grader_tests  # noqa: E402,F401  (imported first so the checks bind their tools early)
from grader_tests import check  # noqa: E402
from grader_tests.exercises import forward_with_inner, loop_limited, memory_limited  # noqa: E402

np.set_printoptions(precision=4, suppress=True)
torch.manual_seed(0)
mode = tr("natively on the GPU") if torch.cuda.is_available() else tr("in Triton's CPU interpreter (TRITON_INTERPRET=1)")
print(tr("torch {version}; Triton kernels will run {mode}", version=torch.__version__, mode=mode))

# %% kv-md [markdown]
# ## 1. Decoding with a KV cache
#
# A language model writes one token at a time. At step $t$ the newest token's query
# $q_t$ attends to the keys and values of **every** token so far:
#
# $$o_t = \sum_{j \le t} \operatorname{softmax}_j\!\left(\frac{q_t \cdot k_j}{\sqrt d}\right) v_j .$$
#
# The keys and values $k_j, v_j$ of earlier tokens do not change when a new token arrives
# (a causal model never lets a token see its future). So instead of recomputing them at every
# step, keep them: the **KV cache**. Each step then
#
# 1. computes $q_t, k_t, v_t$ for the new token only,
# 2. appends $k_t, v_t$ to the cache (shape $(\dots, H, T, d) \to (\dots, H, T+1, d)$),
# 3. attends from $q_t$ over the $T + 1$ cached keys.
#
# No causal mask is needed in step 3: the newest token may see every cached key, itself included.
# (A mask built with `np.tril` on the $1 \times (T+1)$ score matrix would wrongly hide all but the
# first key — the bottom-right alignment of `attnlab.causal_mask(1, T + 1)` keeps them all.)
#
# Per generated token the projections are computed for one token instead of all $T + 1$, and the
# attention itself costs $O(T d)$; the price is memory,
# $2 \times \text{layers} \times H_{kv} \times T \times d$ numbers (Zone 3b).
#
# ## Exercise 1 — `kv_cache_attention_step` (3 points)
#
# `q_new, k_new, v_new` have shape `(..., H, 1, d)` (one token), the caches `(..., H, T, d)`
# ($T$ may be 0). Return `(out, k_cache, v_cache)`: `out` of shape `(..., H, 1, d_v)` and the caches
# grown by the new token **at the end** of the token axis (`axis=-2`). You may use `attnlab.softmax`.

# %%
def kv_cache_attention_step(q_new, k_new, v_new, k_cache, v_cache):
    """Append k_new, v_new to the caches, then attend from q_new. Returns (out, k_cache, v_cache)."""
    ### BEGIN SOLUTION
    k_cache = np.concatenate([k_cache, k_new], axis=-2)
    v_cache = np.concatenate([v_cache, v_new], axis=-2)
    scores = q_new @ np.swapaxes(k_cache, -1, -2) / np.sqrt(q_new.shape[-1])  # (..., H, 1, T + 1)
    weights = attnlab.softmax(scores, axis=-1)
    return weights @ v_cache, k_cache, v_cache
    ### END SOLUTION


# %%
check("kv_cache_attention_step", kv_cache_attention_step)
### BEGIN HIDDEN TESTS
check("kv_cache_attention_step", kv_cache_attention_step, hidden=True)
### END HIDDEN TESTS

# %% kv-demo-md [markdown]
# **Check.** Decode 12 tokens one at a time through your step (`attnlab.incremental_attention`
# starts from empty caches and calls it once per token). Row $t$ of the result saw only tokens
# $0..t$, so it must equal **causal** attention over the whole sequence computed in one go —
# and must differ from non-causal attention, which lets early tokens see the future.

# %% kv-demo
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((2, 12, 8)) for _ in range(3))  # 2 heads, 12 tokens, d = 8
causal_out, _ = attnlab.scaled_dot_product_attention(q, k, v, causal=True)
full_out, _ = attnlab.scaled_dot_product_attention(q, k, v, causal=False)
try:
    decoded, k_cache, v_cache = attnlab.incremental_attention(kv_cache_attention_step, q, k, v)
    print(tr("cache after 12 steps: k {k_shape}, v {v_shape}", k_shape=k_cache.shape, v_shape=v_cache.shape))
    print(tr("max |token-by-token - causal attention|     = {diff:.2e}", diff=np.abs(decoded - causal_out).max()))
    print(tr("max |token-by-token - non-causal attention| = {diff:.2e}  (large: the cache never shows a token its future)",
             diff=np.abs(decoded - full_out).max()))
except NotImplementedError:
    print(tr("Finish exercise 1 (kv_cache_attention_step) first, then run this cell again."))

# %% gqa-md [markdown]
# ## 2. Grouped-query attention
#
# The cache stores keys and values of every layer and head, and for long contexts it dominates
# memory. **Multi-query attention** (MQA, Shazeer 2019) keeps $H$ query heads but only **one**
# key/value head; **grouped-query attention** (GQA, Ainslie et al. 2023) sits in between: $H_{kv}$
# key/value heads, each shared by a group of $g = H / H_{kv}$ consecutive query heads. Query head
# $h$ reads key/value head
#
# $$\operatorname{kv}(h) = \left\lfloor \frac{h}{H / H_{kv}} \right\rfloor
# \qquad\text{(heads } 0..g-1 \text{ share kv head 0, heads } g..2g-1 \text{ kv head 1, ...)}$$
#
# $H_{kv} = H$ is ordinary multi-head attention, $H_{kv} = 1$ is MQA. The cache shrinks by
# $H / H_{kv}$ — for a model shaped like LLaMA-2-7B (32 layers, 32 heads of width 128) at 4096
# tokens in fp16 (`attnlab.kv_cache_bytes`, Zone 3b):

# %% gqa-cache
for n_kv, kind in ((32, "MHA"), (8, "GQA"), (1, "MQA")):
    size = attnlab.kv_cache_bytes(n_layers=32, n_kv_heads=n_kv, head_dim=128, seq_len=4096)
    print(tr("{kind}: H_kv = {n_kv:>2} -> KV cache {gib:6.3f} GiB per sequence", kind=kind, n_kv=n_kv, gib=size / 2**30))

# %% gqa-ex-md [markdown]
# ## Exercise 2 — `grouped_query_attention` (3 points)
#
# `q` has shape `(..., H, N_q, d)`, `k` and `v` `(..., H_kv, N_k, d)`. Give each query head its
# key/value head (hint: `np.repeat(k, H // H_kv, axis=-3)` repeats each kv head $g$ times in a
# row — `np.tile` would deal them out round-robin, $h \bmod H_{kv}$, which is wrong), then
# compute scaled dot-product attention per head. With `causal=True` use
# `attnlab.causal_mask(N_q, N_k)` (bottom-right aligned). Return only the output
# `(..., H, N_q, d_v)`. You may use `attnlab.softmax` and `attnlab.causal_mask`.

# %%
def grouped_query_attention(q, k, v, causal=False):
    """Attention where query head h reads key/value head h // (H // H_kv). Returns (..., H, N_q, d_v)."""
    ### BEGIN SOLUTION
    group = q.shape[-3] // k.shape[-3]
    k = np.repeat(k, group, axis=-3)  # kv head g serves query heads g*group .. g*group + group - 1
    v = np.repeat(v, group, axis=-3)
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        scores = np.where(attnlab.causal_mask(q.shape[-2], k.shape[-2]), scores, -np.inf)
    return attnlab.softmax(scores, axis=-1) @ v
    ### END SOLUTION


# %%
check("grouped_query_attention", grouped_query_attention)
### BEGIN HIDDEN TESTS
check("grouped_query_attention", grouped_query_attention, hidden=True)
### END HIDDEN TESTS

# %% gqa-demo-md [markdown]
# **Check against torch.** PyTorch's fused `scaled_dot_product_attention` has its own GQA path
# (`enable_gqa=True`), written independently of this course. 8 query heads over 2 key/value heads:

# %% gqa-demo
rng = np.random.default_rng(1)
q = rng.standard_normal((2, 8, 10, 16))  # batch 2, H = 8, 10 tokens, d = 16
k, v = rng.standard_normal((2, 2, 10, 16)), rng.standard_normal((2, 2, 10, 16))  # H_kv = 2
torch_out = torch.nn.functional.scaled_dot_product_attention(
    *(torch.from_numpy(a) for a in (q, k, v)), is_causal=True, enable_gqa=True).numpy()
try:
    mine = grouped_query_attention(q, k, v, causal=True)
    print(tr("max |yours - torch SDPA (enable_gqa)| = {diff:.2e}", diff=np.abs(mine - torch_out).max()))
except NotImplementedError:
    print(tr("Finish exercise 2 (grouped_query_attention) first, then run this cell again."))

# %% torch-md [markdown]
# ## 3. The torch modules: attention, block, GPT
#
# The same maths, as trainable `torch.nn` modules (read them: `lib/attnlab/nn/`):
#
# - **`attnlab.Attention`** — one fused linear layer computes $q, k, v$ ($d_{model} + 2 H_{kv} d$
#   outputs), heads are split, query head $h$ reads kv head $h // (H/H_{kv})$, and an output
#   projection mixes the heads. With a `KVCache` it appends this call's keys and values into a
#   preallocated buffer (no reallocation per token) and attends over everything cached.
# - **`attnlab.TransformerBlock`** — Pre-LN (GPT-2, LLaMA):
#   $x \leftarrow x + \operatorname{Attn}(\operatorname{LN}_1(x))$, then
#   $x \leftarrow x + \operatorname{MLP}(\operatorname{LN}_2(x))$.
# - **`attnlab.GPT`** — token + position embeddings, a stack of causal blocks, a final norm and a
#   language-model head tied to the token embedding.
#
# Three checks below: the module's attention equals **your** `grouped_query_attention` fed with
# the module's own weights; a GPT's logits computed token by token through its KV cache equal
# the logits of one full forward pass; and a parameter count.

# %% torch-modules
torch.manual_seed(0)
config = attnlab.GPTConfig.gpt2_style(vocab_size=96, context_length=64, d_model=64, n_layers=2,
                                      n_heads=8, n_kv_heads=2)
gpt = attnlab.GPT(config).eval()
print(gpt.blocks[0])

attention = gpt.blocks[0].attn
x = torch.randn(2, 10, config.d_model, dtype=torch.float64)
with torch.no_grad():
    module_out, _ = attention.double()(x)
    attention.float()
library = attnlab.attention_module_numpy(attention, x.numpy())
print(tr("\nmax |Attention module - NumPy with attnlab.grouped_query_attention| = {diff:.2e}",
         diff=np.abs(module_out.numpy() - library).max()))
try:
    yours = attnlab.attention_module_numpy(attention, x.numpy(), gqa=grouped_query_attention)
    print(tr("max |Attention module - NumPy with your grouped_query_attention|   = {diff:.2e}",
             diff=np.abs(module_out.numpy() - yours).max()))
except NotImplementedError:
    print(tr("(finish exercise 2 to compare the module with your own function)"))

idx = torch.randint(0, config.vocab_size, (2, 20))
with torch.no_grad():
    full_logits = gpt(idx)
    cache = gpt.new_kv_cache(batch_size=2)
    step_logits = [gpt(idx[:, :5], kv_cache=cache)]  # the prompt in one go
    step_logits += [gpt(idx[:, t:t + 1], kv_cache=cache) for t in range(5, 20)]  # then one token per call
step_logits = torch.cat(step_logits, dim=1)
print(tr("max |logits through the KV cache - full forward| = {diff:.2e}", diff=(step_logits - full_logits).abs().max()))
print(tr("cache of layer 0: {cache}", cache=cache[0]))
print(tr("parameters: {params:,} (embedding tied to the output layer)", params=gpt.num_parameters()))

# %% hf-md [markdown]
# ## 4. Loading Hugging Face GPT-2 weights
#
# `attnlab.GPT.from_hf_gpt2(hf_model)` copies the weights of a `transformers.GPT2LMHeadModel`.
# Two details matter:
#
# - GPT-2 stores its linear layers as `Conv1D` with weights of shape (in, out), so $y = xW + b$;
#   `nn.Linear` stores (out, in) and computes $y = xW^\top + b$. Every matrix is **transposed**.
# - GPT-2's fused `c_attn` produces $[q, k, v]$ in that order — exactly our fused `qkv` layer,
#   so it is copied as one block; GELU is the tanh approximation; LayerNorm $\varepsilon = 10^{-5}$.
#
# No weights can be downloaded here, so we build a GPT-2 with **random** weights from a
# configuration (`transformers` is in the course's `dev` extra) and require identical logits.
# Real GPT-2 weights load the same way. The real GPT-2 small's size is counted without
# allocating it (on PyTorch's `meta` device, which stores shapes only).

# %% hf-gpt2
gpt2_small = attnlab.GPTConfig.gpt2_style(vocab_size=50257, context_length=1024, d_model=768,
                                          n_layers=12, n_heads=12)
with torch.device("meta"):
    print(tr("GPT-2 small (124M) has {params:,} parameters", params=attnlab.GPT(gpt2_small).num_parameters()))

hf_gpt2 = attnlab.random_hf_gpt2(seed=0, vocab_size=500, n_positions=64, n_embd=96, n_layer=3,
                                  n_head=4)
if hf_gpt2 is None:
    print(tr("transformers is not installed (pip install 'attnlab[dev]'), so the comparison is skipped."))
else:
    ours = attnlab.GPT.from_hf_gpt2(hf_gpt2)
    idx = torch.randint(0, 500, (2, 40))
    with torch.no_grad():
        theirs_logits, ours_logits = hf_gpt2(idx).logits, ours(idx)
    print(tr("Hugging Face GPT-2 ({params:,} random parameters) vs attnlab.GPT: max |logit difference| = {diff:.2e}",
             params=sum(p.numel() for p in hf_gpt2.parameters()), diff=(theirs_logits - ours_logits).abs().max()))
    print(tr("same greedy next tokens at every position: {same}",
             same=bool((theirs_logits.argmax(-1) == ours_logits.argmax(-1)).all())))

# %% train-md [markdown]
# ## 5. Training on a built-in corpus, then generating
#
# The corpus is the source code of Python's own standard library (`attnlab.stdlib_corpus`: no
# download, the same text on every machine with the same Python), read character by character.
# The model learns to predict the next character; the loss is the cross-entropy in nats per
# character. A model that ignores context can do no better than the entropy of the character
# frequencies (printed below) — anything lower is learned from context.
#
# The whole training loop is one method of `attnlab.Trainer`: AdamW, a warmup-then-cosine
# learning rate, gradient clipping:

# %% train-source
print(inspect.getsource(attnlab.Trainer.train_step))

# %% train-run-md [markdown]
# The default run is small so that the notebook stays quick on a laptop CPU; set `FULL_RUN = True`
# for a bigger model trained for many more steps (several minutes; the numbers are in the cell
# and in its printout), whose samples start to look like Python.

# %% train-run
FULL_RUN = False  # True: d_model 128, 4 layers, 1500 steps (a few minutes on a CPU)

corpus = attnlab.stdlib_corpus(max_chars=400_000 if FULL_RUN else 150_000)
unigram = attnlab.unigram_entropy(corpus.train_data, corpus.vocab_size)
print(tr("{corpus}; unigram entropy {entropy:.2f} nats/char", corpus=corpus, entropy=unigram))
torch.manual_seed(0)
lm_config = attnlab.GPTConfig.gpt2_style(
    vocab_size=corpus.vocab_size, context_length=64, n_heads=4, n_kv_heads=2,
    d_model=128 if FULL_RUN else 48, n_layers=4 if FULL_RUN else 2)
lm = attnlab.GPT(lm_config)
print(tr("model: {params:,} parameters", params=lm.num_parameters()))

prompt = torch.tensor([corpus.encode("def ")])
torch.manual_seed(1)
print(tr("sample before training:"), repr(corpus.decode(lm.generate(prompt, 48, temperature=0.8)[0])))

train_config = attnlab.TrainConfig(steps=1500 if FULL_RUN else 80, lr=4e-3, warmup_steps=10,
                                   eval_every=500 if FULL_RUN else 40, eval_batches=2)
trainer = attnlab.Trainer(lm, lambda g: corpus.batch(16, 64, g), train_config,
                          eval_batch=lambda g: corpus.batch(16, 64, g, split="val"))
history = trainer.fit()
attnlab.plot_training(history, title=tr("{params:,}-parameter GPT on stdlib source", params=lm.num_parameters()))
plt.show()
print(tr("{steps} steps; loss: first batch {first:.2f}, last batch {last:.2f}, validation {val:.2f} nats/char "
         "({below:.2f} below the unigram entropy: learned from context)",
         steps=train_config.steps, first=history["loss"][0], last=history["loss"][-1],
         val=history["eval_loss"][-1], below=unigram - history["eval_loss"][-1]))
torch.manual_seed(1)
print(tr("sample after training: "), repr(corpus.decode(lm.generate(prompt, 48, temperature=0.8)[0])))

# %% generate-md [markdown]
# **Cache or no cache, the same tokens.** `GPT.generate(..., use_cache=False)` recomputes the whole
# sequence for every new token; `use_cache=True` feeds the prompt once and then one token per
# step. Greedy decoding must pick identical tokens, and so must sampling when both runs draw from
# the same random seed. The cached run does $O(N)$ work per token instead of $O(N^2)$; on this tiny
# model and short context the saving is modest, and it grows with the context length (Zone 5
# measures it).

# %% generate
loop_prompt = torch.tensor([corpus.encode("    for i in range(")])
for label, options in ((tr("greedy"), dict(temperature=0.0)),
                       (tr("sampled, T=0.8, top-k 10"), dict(temperature=0.8, top_k=10))):
    result = attnlab.generation_comparison(lm, loop_prompt, max_new_tokens=32, seed=3, **options)
    print(tr("{label}: identical tokens with and without the cache: {same}; "
             "{cached_ms:.0f} ms with the cache, {uncached_ms:.0f} ms without ({speedup:.1f}x)",
             label=label, same=result["same"], cached_ms=result["seconds_cached"] * 1e3,
             uncached_ms=result["seconds_uncached"] * 1e3, speedup=result["speedup"]))
    print("   ", repr(corpus.decode(result["tokens_cached"][0])))

# %% flash-md [markdown]
# ## 6. FlashAttention in NumPy
#
# Zone 3b derived the pieces: the partial state of a block of keys, for each query row,
#
# $$m = \max_j s_j,\qquad \ell = \sum_j e^{s_j - m},\qquad \mathrm{acc} = \sum_j e^{s_j - m} v_j ,$$
#
# and the exact merge of two states (`attnlab.online_softmax_merge`): rescale each by
# $e^{m_i - m}$ with $m = \max(m_1, m_2)$ and add. Now assemble the **tiled forward**
# (Dao et al. 2022, Algorithm 1, in the FlashAttention-2 loop order):
#
# for each block of query rows $r_0 \ldots r_1 - 1$:
# 1. start empty: $m = -\infty$, $\ell = 0$, $\mathrm{acc} = 0$;
# 2. for each block of keys $c_0 \ldots c_1 - 1$: the score tile
#    $S = Q_{r_0:r_1} K_{c_0:c_1}^\top / \sqrt d$ (at most `block_size` × `block_size`), masked to
#    $-\infty$ where causal forbids, its state, merged into the running one;
# 3. write $O_{r_0:r_1} = \mathrm{acc} / \ell$ (0 for a row that saw no key).
#
# **Causal block skipping.** Query $i$ sees key $j$ iff $j \le i + (N_k - N_q)$. The *last* row of
# the block, $r_1 - 1$, sees the most keys: all $j < r_1 + (N_k - N_q)$. Key blocks starting at or
# beyond that are invisible to the whole query block — skip them (about half the tiles).
#
# Explore which tiles are computed, which need a mask and which are skipped: **N** is the
# sequence length (as many keys as queries), **block size** the side of a tile, and **causal**
# switches the causal mask on and off.

# %% flash-tiles
attnlab.flash_tile_explorer(n=256, block_size=32, causal=True)

# %% flash-ex-md [markdown]
# ## Exercise 3 — `flash_attention_numpy` (4 points)
#
# Write `flash_attention_numpy(q, k, v, causal=False, block_size=64)` for `q (..., N_q, d)`,
# `k (..., N_k, d)`, `v (..., N_k, d_v)`, returning `out (..., N_q, d_v)` equal to
# `attnlab.scaled_dot_product_attention(q, k, v, causal=causal)[0]`. You may merge with
# `attnlab.online_softmax_merge` or write the rescaling yourself.
#
# The rule that makes it FlashAttention: **never build an `(N_q, N_k)` array**, not even a mask —
# build each tile's causal mask from `np.arange` of its rows and columns. The checks measure
# your function's memory on 2048 × 2048 (with Python's `tracemalloc`): more than an eighth of one
# float64 score matrix fails.

# %%
def flash_attention_numpy(q, k, v, causal=False, block_size=64):
    """softmax(q k^T / sqrt(d)) v computed tile by tile with an online softmax; never (N_q, N_k)."""
    ### BEGIN SOLUTION
    n_q, n_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    offset = n_k - n_q  # bottom-right alignment: query i sees keys j <= i + offset
    out = np.zeros(q.shape[:-1] + (v.shape[-1],), dtype=np.result_type(q, k, v))
    for r0 in range(0, n_q, block_size):
        r1 = min(r0 + block_size, n_q)
        rows = np.arange(r0, r1)
        m = np.full(q.shape[:-2] + (r1 - r0,), -np.inf)  # the empty state
        l = np.zeros_like(m)  # noqa: E741
        acc = np.zeros(m.shape + (v.shape[-1],))
        key_end = min(n_k, r1 + offset) if causal else n_k  # keys the last row of the block sees
        for c0 in range(0, max(key_end, 0), block_size):
            c1 = min(c0 + block_size, n_k)
            s = q[..., r0:r1, :] @ np.swapaxes(k[..., c0:c1, :], -1, -2) / np.sqrt(d)
            if causal:
                s = np.where(np.arange(c0, c1)[None, :] <= rows[:, None] + offset, s, -np.inf)
            m_tile = s.max(axis=-1)
            shift = np.where(np.isneginf(m_tile), 0.0, m_tile)  # a row that sees none of these keys
            p = np.exp(s - shift[..., None])
            m, l, acc = attnlab.online_softmax_merge(m, l, acc, m_tile, p.sum(axis=-1),  # noqa: E741
                                                     p @ v[..., c0:c1, :])
        out[..., r0:r1, :] = np.divide(acc, l[..., None], out=np.zeros_like(acc), where=l[..., None] > 0)
    return out
    ### END SOLUTION


# %%
# memory_limited(...) measures the memory your function allocates on the long input.
check("flash_attention_numpy", memory_limited(flash_attention_numpy))
### BEGIN HIDDEN TESTS
check("flash_attention_numpy", memory_limited(flash_attention_numpy), hidden=True)
### END HIDDEN TESTS

# %% flash-demo-md [markdown]
# **Same output, a fraction of the memory.** Your tiled attention against standard attention on
# 2048 tokens, causal: the largest difference, and the peak memory each allocates while it runs
# (`attnlab.peak_memory`, inputs excluded).

# %% flash-demo
rng = np.random.default_rng(2)
q, k, v = (rng.standard_normal((2048, 32)) for _ in range(3))
(standard, _), standard_bytes = attnlab.peak_memory(attnlab.scaled_dot_product_attention, q, k, v, causal=True)
try:
    tiled, tiled_bytes = attnlab.peak_memory(flash_attention_numpy, q, k, v, causal=True, block_size=64)
    print(tr("max |tiled - standard| = {diff:.2e}", diff=np.abs(tiled - standard).max()))
    print(tr("peak memory: standard {standard:.1f} MiB, tiled {tiled:.2f} MiB ({ratio:.0f}x less); "
             "one 2048 x 2048 float64 matrix is {matrix:.0f} MiB",
             standard=standard_bytes / 2**20, tiled=tiled_bytes / 2**20, ratio=standard_bytes / tiled_bytes,
             matrix=2048 * 2048 * 8 / 2**20))
except NotImplementedError:
    print(tr("Finish exercise 3 (flash_attention_numpy) first, then run this cell again."))

# %% triton-md [markdown]
# ## 7. FlashAttention in Triton
#
# [Triton](https://triton-lang.org) writes GPU kernels in Python. A kernel is launched on a
# **grid of programs**; each program works on **tiles** — small blocks of a matrix loaded from
# global memory (HBM) into registers/SRAM with `tl.load`, combined with `tl.dot`, `tl.max`,
# `tl.exp2`, and written back with `tl.store`. attnlab's forward kernel
# (`attnlab.flash.triton_kernels.attn_fwd_kernel`) runs one program per block of `BLOCK_M` query
# rows of one (batch, head). It loads its query tile once, starts the empty state, calls an
# **inner loop** over key/value blocks twice — first the blocks every row sees completely (no
# mask, the fast path), then the few on the causal diagonal or at the end of the sequence
# (`MASKED=True`) — and finally stores $\mathrm{acc}/\ell$ and the log-sum-exp $m + \log \ell$
# (which the backward pass needs).
#
# **You write the inner loop.** Two details of the kernel:
#
# - scores are kept in **log2 units**: `qk_scale` $= \log_2(e)/\sqrt d$, so $e^{x} = 2^{x \log_2 e}$ and
#   the cheaper `tl.exp2` replaces `exp` everywhere (the state is the same up to that change of base);
# - a row that has seen no visible key yet still has $m = -\infty$: shift it by 0, not by $m$, or
#   $2^{-\infty - (-\infty)}$ is NaN.
#
# Per key block the update is the online softmax of section 6, on tiles of `BLOCK_M` rows:
#
# $$m_{new} = \max(m, \max_j s_j),\quad \alpha = 2^{m - m_{new}},\quad p = 2^{s - m_{new}},\quad
# \ell \leftarrow \alpha \ell + \textstyle\sum_j p_j,\quad \mathrm{acc} \leftarrow \alpha\, \mathrm{acc} + p\,V .$$
#
# The next cell imports Triton (or explains how to get it), and the one after shows the kernel
# that calls your loop.

# %% triton-setup
try:
    import triton
    import triton.language as tl

    HAVE_TRITON = True
except ImportError:
    triton, tl = attnlab.missing_triton()  # stand-ins: the exercise cell still defines your function
    HAVE_TRITON = False

if HAVE_TRITON:
    kernels = attnlab.load_triton_kernels()
    load_tile, visible = kernels.load_tile, kernels.visible  # helpers your loop may call
    where = tr("natively on the GPU") if not kernels.INTERPRET else tr("in Triton's CPU interpreter")
    print(tr("Triton {version}: kernels run {where}.", version=triton.__version__, where=where))
else:
    load_tile = visible = None
    print(tr("Triton is not installed. Install it with:  pip install 'attnlab[triton]'  (Linux; on a CPU\n"
             "it runs in Triton's interpreter), then restart the kernel. Exercise 4 counts as not attempted."))

# %% triton-kernel
if HAVE_TRITON:
    print(inspect.getsource(kernels.attn_fwd_kernel.fn))  # the program that calls your inner loop

# %% triton-ex-md [markdown]
# ## Exercise 4 — the Triton inner loop (4 points)
#
# Complete the loop body of `attn_fwd_inner` below. Loading the key/value tiles, the scores and
# the mask are written for you; you write the state update, five lines, ending with the new
# `m_i`. Useful: `tl.maximum(a, b)`, `tl.max(x, 1)` and `tl.sum(x, 1)` (over the keys of each
# row), `tl.exp2`, `tl.where(cond, a, b)`, `tl.dot(a, b)`, `x[:, None]` to broadcast a row
# vector over columns, and `p.to(v.dtype)` before `tl.dot` with `v`. Shapes: `acc`
# `(BLOCK_M, BLOCK_D)`, `l_i`, `m_i` `(BLOCK_M,)`, `s` and `p` `(BLOCK_M, BLOCK_N)`.
#
# The check runs attnlab's kernel with **your** loop (`forward_with_inner`) on tiny shapes and
# compares the output and log-sum-exp with torch's SDPA. On a CPU the interpreter runs each
# program in Python: a few seconds.

# %%
@triton.jit
def attn_fwd_inner(acc, l_i, m_i, q, K, V, stride_kn, stride_vn, offs_m, lo, hi, n_k,
                   causal_offset, qk_scale, HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr,
                   BLOCK_D: tl.constexpr, CAUSAL: tl.constexpr, MASKED: tl.constexpr):
    """Fold key/value blocks [lo, hi) into the running state (acc, l_i, m_i); return it."""
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k = load_tile(K, offs_n, stride_kn, n_k, HEAD_DIM, BLOCK_D, MASKED)
        v = load_tile(V, offs_n, stride_vn, n_k, HEAD_DIM, BLOCK_D, MASKED)
        s = tl.dot(q, tl.trans(k)) * qk_scale  # (BLOCK_M, BLOCK_N) scores, in log2 units
        if MASKED:
            keep = visible(offs_m[:, None], offs_n[None, :], n_k, causal_offset, CAUSAL)
            s = tl.where(keep, s, float("-inf"))
        ### BEGIN SOLUTION
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row with no key yet: shift by 0
        alpha = tl.exp2(m_i - m_shift)
        p = tl.exp2(s - m_shift[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
        ### END SOLUTION
    return acc, l_i, m_i


# %% attn_fwd_inner-tests
# forward_with_inner(...) runs attnlab.flash_attention_triton_forward with your inner loop.
check("flash_attention_triton_forward", forward_with_inner(attn_fwd_inner))
### BEGIN HIDDEN TESTS
check("flash_attention_triton_forward", forward_with_inner(attn_fwd_inner), hidden=True)
### END HIDDEN TESTS

# %% triton-demo-md [markdown]
# **Your kernel at work.** Causal attention over 2 heads of 40 tokens through your inner loop,
# against torch's SDPA, and timed. Under the interpreter this is slow on purpose — every program
# runs as Python; on a GPU the same code compiles to a kernel that processes thousands of tokens
# in microseconds.

# %% triton-demo
torch.manual_seed(4)
q, k, v = (torch.randn(1, 2, 40, 16) for _ in range(3))
expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
if HAVE_TRITON:
    device = "cpu" if kernels.INTERPRET else "cuda"
    try:
        start = time.perf_counter()
        out, lse = attnlab.flash_attention_triton_forward(q.to(device), k.to(device), v.to(device),
                                                          causal=True, inner=attn_fwd_inner)
        seconds = time.perf_counter() - start
        print(tr("max |your kernel - torch SDPA| = {diff:.2e} ({ms:.0f} ms, {where})",
                 diff=(out.cpu() - expected).abs().max(), ms=seconds * 1e3,
                 where=tr("interpreter") if kernels.INTERPRET else "GPU"))
    except Exception as error:  # the interpreter reports a NotImplementedError wrapped in its own error
        if "NotImplementedError" not in repr(error):
            raise
        print(tr("Finish exercise 4 (the loop body of attn_fwd_inner) first, then run this cell again."))
else:
    print(tr("Triton is not installed: pip install 'attnlab[triton]'."))

# %% triton-gpu-md [markdown]
# **How fast is the full kernel on a GPU?** The next cell prints a measured run of attnlab's
# complete Triton FlashAttention (the library's own inner loop, forward and backward) next to
# PyTorch's `scaled_dot_product_attention` restricted to two of its backends: **SDPA-flash**
# (the FlashAttention kernels built into PyTorch) and **cuDNN** (NVIDIA's fused attention). The
# numbers are data shipped with the library (`attnlab.gpu_measurements()`, written by
# `bench/flash_gpu.py --json-out`); the header says on which GPU, with which torch and Triton,
# and what batch and head count. Speed is in TFLOP/s: useful floating-point work (the matmuls
# of attention, halved when causal) per second, so a higher number is better. The ratio
# columns divide attnlab's TFLOP/s by the other kernel's — above 1, attnlab is faster — and
# **% of peak** divides it by the GPU's dense fp16/bf16 tensor-core peak from NVIDIA's data
# sheet: how much of the chip's arithmetic the kernel keeps busy. The last lines give the range
# of each ratio over the rows.

# %% triton-gpu-table
run = attnlab.gpu_measurements()
print(attnlab.format_gpu_measurements(run))
ratios = [attnlab.gpu_measurement_ratios(row, run["peak_tflops"]) for row in run["rows"]]
print()
for key in ("fwd / sdpa-flash", "bwd / sdpa-flash", "fwd / sdpa-cudnn", "bwd / sdpa-cudnn",
            "fwd % peak", "bwd % peak"):
    values = [r[key] for r in ratios if r[key] is not None]
    low, high = (f"{x:.0f}%" if "peak" in key else f"{x:.2f}x" for x in (min(values), max(values)))
    print(tr("attnlab {key:<16} from {low} to {high}", key=key, low=low, high=high))

# %% triton-vs-fa3-md [markdown]
# **What this kernel does.** It is a FlashAttention-2 design (Dao 2023,
# [arXiv:2307.08691](https://arxiv.org/abs/2307.08691)) written in plain Triton:
#
# - **Tiling.** The forward runs one program per block of `BLOCK_M` query rows of one
#   (batch, head), loads its query tile once and streams the keys and values through in blocks
#   of `BLOCK_N`. A score tile only ever lives on chip; the $N \times N$ matrices are never written
#   to HBM. The block sizes, warps and pipeline stages are chosen by Triton's autotuner among a
#   few candidates per head-dim class (`attnlab.flash.triton_autotune.CONFIGS`).
# - **Online softmax** — your inner loop: running maximum and sum in float32, in log2 units so
#   `exp2` replaces `exp`. The forward stores only the output and one log-sum-exp per row.
# - **Recomputation in the backward.** A first kernel computes $D_i = \sum_d dO_{id} O_{id}$; then
#   one kernel per key block accumulates $dK, dV$ over the query blocks and a separate kernel per
#   query block accumulates $dQ$ over the key blocks. Both rebuild $P = \exp(S - L)$ tile by tile
#   from the saved log-sum-exp $L$ instead of storing it, so the backward also needs no
#   $N \times N$ memory. Splitting $dQ$ from $dK, dV$ avoids atomic additions, at the price of
#   computing $S$ and $P$ twice.
# - **Causal block skipping**, forward and backward: key blocks entirely above the diagonal are
#   never loaded, and the mask is applied only to the blocks on the diagonal or at the end of the
#   sequence (the `MASKED=True` call), so the bulk of the loop runs without it.
# - **What the compiler adds.** `tl.dot` becomes Hopper's `wgmma` tensor-core instructions and
#   `num_stages` > 1 lets Triton prefetch the next key/value tiles asynchronously (`cp.async`)
#   while the current one is computed. Inputs are float16, bfloat16 or float32, with $d \le 128$.
#
# **What it does not do, compared with FlashAttention-3** (Shah, Bikshandi, Zhang, Thakkar,
# Ramani and Dao 2024, "FlashAttention-3: Fast and Accurate Attention with Asynchrony and
# Low-precision", [arXiv:2407.08608](https://arxiv.org/abs/2407.08608)), which is written
# for Hopper GPUs (H100, H200) directly in CUDA/CUTLASS:
#
# - **Warp specialisation.** FlashAttention-3 splits a thread block into *producer* warps that
#   only move data and *consumer* warpgroups that only compute, handing tiles over through a
#   circular buffer in shared memory (and moving registers from producers to consumers). In
#   attnlab every warp of a program both loads and computes.
# - **TMA.** Its producers issue Hopper's Tensor Memory Accelerator: one asynchronous bulk copy
#   of a whole tile, with the addresses computed by hardware. attnlab's `tl.load` computes a
#   pointer per element, and the copies are the older `cp.async` ones.
# - **Overlapping softmax with the matmuls.** The exponentials of the softmax run on much slower
#   units than the tensor cores. FlashAttention-3 hides them: *ping-pong scheduling* lets one
#   warpgroup's softmax run while another warpgroup does its two GEMMs ($QK^\top$ and $PV$), and
#   *intra-warpgroup pipelining* overlaps the softmax of one block with the GEMMs of the next.
#   attnlab's loop is sequential — score, softmax, then $PV$ — and any overlap is what Triton's
#   compiler finds on its own.
# - **FP8.** FlashAttention-3 also runs in 8-bit floating point, with block quantisation and
#   *incoherent processing*: multiplying $Q$ and $K$ by a random orthogonal (Hadamard with
#   random signs) matrix, which leaves $QK^\top$ unchanged but spreads outliers so the
#   quantisation error is smaller. attnlab has no FP8 path.
#
# The paper reports up to 740 TFLOP/s in FP16 on an H100 (75% of its peak) and close to
# 1.2 PFLOP/s in FP8 (H100 and H200 have the same tensor-core peak). Compare that with the
# **% of peak** columns above: the paper attributes the gap between a FlashAttention-2 design and
# FlashAttention-3 to the asynchrony and warp specialisation listed here. The **cuDNN** columns
# are NVIDIA's own attention kernel for the same GPU, a second point of comparison.

# %% mamba-md [markdown]
# ## 8. Mamba: the block, and the parallel scan
#
# A Mamba block (Gu & Dao 2023) replaces attention by a **selective state space model**. For input
# $x \in \mathbb{R}^{L \times d_{model}}$ (`attnlab.MambaBlock`, with the parameter names of
# Hugging Face's `MambaMixer`):
#
# 1. `in_proj` splits into two streams $u, z \in \mathbb{R}^{L \times d_{inner}}$;
# 2. $u \leftarrow \operatorname{SiLU}(\text{causal depthwise conv1d}(u))$;
# 3. from $u$: $\Delta_t = \operatorname{softplus}(\cdot) > 0$, $B_t, C_t \in \mathbb{R}^{d_{state}}$
#    (`x_proj`, `dt_proj`) — *input-dependent*, that is the "selective" part;
# 4. per channel $c$ and state $n$, with $A = -e^{A_{log}} < 0$:
#    $h_t = e^{\Delta_t A_{cn}} h_{t-1} + \Delta_t B_{t,n} u_t$ and $y_t = C_t \cdot h_t + D u_t$;
# 5. output $\text{out\_proj}(y \odot \operatorname{SiLU}(z))$.
#
# **Check against Hugging Face.** A `MambaMixer` with random weights (its reference PyTorch path,
# no CUDA kernels), loaded with `MambaBlock.from_hf`; then our block's recurrent mode — one token
# at a time from a fixed-size state, the way Mamba generates — against its parallel mode.

# %% mamba-hf
mixer = attnlab.random_hf_mamba_mixer(seed=0, hidden_size=32, state_size=8, intermediate_size=64,
                                      conv_kernel=4, num_hidden_layers=1, vocab_size=100)
torch.manual_seed(5)
x = torch.randn(2, 30, 32)
if mixer is None:
    print(tr("transformers is not installed (pip install 'attnlab[dev]'): the comparison with\n"
             "Hugging Face is skipped; the recurrent check below uses a fresh block."))
    block = attnlab.MambaBlock(d_model=32, d_state=8, d_conv=4, d_inner=64).eval()
else:
    block = attnlab.MambaBlock.from_hf(mixer).eval()
    with torch.no_grad():
        print(f"max |attnlab.MambaBlock - transformers MambaMixer| = {(block(x) - mixer(x)).abs().max():.2e}")
with torch.no_grad():
    parallel = block(x)
    state = block.init_state(batch_size=2)
    steps = []
    for t in range(x.shape[1]):
        y_t, state = block.step(x[:, t], state)
        steps.append(y_t)
print(tr("max |one token at a time - whole sequence| = {diff:.2e}",
         diff=(torch.stack(steps, dim=1) - parallel).abs().max()))
print(tr("the recurrent state per sequence: conv {conv} + SSM {ssm}, whatever the length",
         conv=tuple(state[0].shape[1:]), ssm=tuple(state[1].shape[1:])))

# %% scan-md [markdown]
# ### The parallel scan
#
# Training cannot afford $L$ sequential steps. Each step of $h_t = a_t h_{t-1} + b_t$ is an affine
# map $f_t(h) = a_t h + b_t$, and $h_t = (f_t \circ \dots \circ f_0)(0)$. Write a map as its pair
# $(a, b)$. Applying $(a_1, b_1)$ **first** and then $(a_2, b_2)$:
#
# $$a_2 (a_1 h + b_1) + b_2 = (a_2 a_1)\, h + (a_2 b_1 + b_2)
# \quad\Longrightarrow\quad (a_1, b_1) \bullet (a_2, b_2) = (a_2 a_1,\; a_2 b_1 + b_2).$$
#
# **Claim:** $\bullet$ is associative. Composition of functions is associative, and $\bullet$ is
# composition written on pairs; directly,
# $((a_1,b_1)\bullet(a_2,b_2))\bullet(a_3,b_3) = (a_3a_2a_1,\ a_3a_2b_1 + a_3b_2 + b_3)
# = (a_1,b_1)\bullet((a_2,b_2)\bullet(a_3,b_3))$. $\square$ It is **not commutative**: the earlier
# map must stay on the left.
#
# Associativity lets us group the $L$ compositions in any order — in particular as a tree. The
# **Hillis–Steele** scan (Hillis & Steele 1986; Blelloch 1990): keep, at every position $t$, the
# pair $(A_t, H_t)$ of the window of steps ending at $t$; start with $(a_t, b_t)$; in round
# $r = 0, 1, \dots$ with $\text{offset} = 2^r$ combine every $t \ge \text{offset}$ with the window
# ending at $t - \text{offset}$ (the earlier one, so on the left):
#
# $$H_t \leftarrow A_t H_{t-\text{offset}} + H_t, \qquad A_t \leftarrow A_t A_{t-\text{offset}}$$
#
# (all positions at once, from the values of the previous round). After $\lceil \log_2 L \rceil$
# rounds each window starts at step 0, and $H_t = h_t$. Depth $O(\log L)$, work $O(L \log L)$:

# %% scan-rounds
attnlab.plot_scan_rounds(8)
plt.show()

# %% scan-ex-md [markdown]
# ## Exercise 5 — `parallel_scan` (3 points)
#
# Write `parallel_scan(a, b)` returning `h` with $h_t = a_t h_{t-1} + b_t$ along the **last** axis,
# $h_{-1} = 0$ (so $h_0 = b_0$); `a` and `b` have the same shape `(..., L)`. Use the rounds above:
# a `while offset < L` loop with whole-array slices (`H[..., offset:]`, `H[..., :-offset]`), **no
# loop over time steps** — the checks count your Python steps on a sequence of 65536 steps
# (`loop_limited`). Compute each round from copies of the previous round's arrays.

# %%
def parallel_scan(a, b):
    """h_t = a_t h_{t-1} + b_t along the last axis (h_{-1} = 0) in ceil(log2 L) vectorised rounds."""
    ### BEGIN SOLUTION
    A = np.array(a, dtype=float)  # product of a over the window ending at t
    H = np.array(b, dtype=float)  # h_t computed from the window alone (starting from 0)
    offset = 1
    while offset < A.shape[-1]:
        H_next, A_next = H.copy(), A.copy()
        H_next[..., offset:] = A[..., offset:] * H[..., :-offset] + H[..., offset:]
        A_next[..., offset:] = A[..., offset:] * A[..., :-offset]
        A, H = A_next, H_next
        offset *= 2
    return H
    ### END SOLUTION


# %%
# loop_limited(...) counts the Python steps your function takes on the long input.
check("parallel_scan", loop_limited(parallel_scan))
### BEGIN HIDDEN TESTS
check("parallel_scan", loop_limited(parallel_scan), hidden=True)
### END HIDDEN TESTS

# %% scan-demo-md [markdown]
# **Your scan runs Mamba.** Mamba's selective scan is $d_{inner} \times d_{state}$ independent
# first-order recurrences with $a_t = e^{\Delta_t A_{cn}}$ and $b_t = \Delta_t B_{t,n} u_t$
# (`attnlab.selective_scan_with` builds them and calls your scan on all of them at once). Compare
# with `attnlab.selective_scan`, which steps through time, and time your scan against a plain loop
# over time (`attnlab.scan_loop`) on 256 sequences of 4096 steps.

# %% scan-demo
with torch.no_grad():
    s = block.scan_inputs(x)  # what the Mamba block above feeds its selective scan
u, delta, A, B, C, D = (s[name].detach().double().numpy() for name in ("u", "delta", "A", "B", "C", "D"))
rng = np.random.default_rng(6)
a_long, b_long = rng.uniform(0.9, 1.0, (256, 4096)), rng.standard_normal((256, 4096))
try:
    via_your_scan = attnlab.selective_scan_with(parallel_scan, u, delta, A, B, C, D)
    stepwise = attnlab.selective_scan(u, delta, A, B, C, D)
    print(tr("max |selective scan via your parallel_scan - step by step| = {diff:.2e}",
             diff=np.abs(via_your_scan - stepwise).max()))
    t_loop = attnlab.best_time(attnlab.scan_loop, a_long, b_long, repeats=2)
    t_scan = attnlab.best_time(parallel_scan, a_long, b_long, repeats=2)
    error = np.abs(parallel_scan(a_long, b_long) - attnlab.scan_loop(a_long, b_long)).max()
    print(tr("256 x 4096 steps: loop over time {loop_ms:.0f} ms, your scan {scan_ms:.0f} ms "
             "in {rounds} rounds; max difference {error:.1e}",
             loop_ms=t_loop * 1e3, scan_ms=t_scan * 1e3, rounds=int(np.ceil(np.log2(4096))), error=error))
except NotImplementedError:
    print(tr("Finish exercise 5 (parallel_scan) first, then run this cell again."))

# %% scan-after-md [markdown]
# On a CPU with NumPy, the log-step scan does $\log_2 L$ times more arithmetic than the loop, and
# each round is one large vectorised operation instead of $L$ small ones — which wins depends on
# the shapes. On a GPU the rounds run across thousands of threads at once, and that parallelism
# (plus keeping the state in SRAM, as FlashAttention does) is what makes Mamba trainable on long
# sequences.

# %% progress [markdown]
# ## Progress
#
# ✅ Zone 4 done: you wrote a KV-cache decoding step and grouped-query attention, checked the torch
# modules and a GPT against them and against Hugging Face GPT-2, trained a small GPT and generated
# the same tokens with and without its cache, wrote FlashAttention tile by tile in NumPy and the
# inner loop of its Triton kernel, and ran Mamba's selective scan through your parallel scan.
#
# **Next:** [Zone 5 — Experiments](../05_experiments/05_experiments.ipynb): train tiny models and
# measure — loss curves and attention maps, positional encodings on longer inputs, scaling laws,
# in-context learning, KV-cache speed-ups, FlashAttention's memory, Mamba against attention.
