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
# # Zone 5 — Experiments: measuring what we built
#
# *Lecture 14: Attention — leaving the fossils behind.*
#
# Zones 3 and 4 derived and built attention. Here you **measure** it. Seven experiments, each
# ending in a table or a plot from your own run:
#
# 1. **A tiny GPT** trained on Python source: loss curve, samples, and what its heads look at.
# 2. **Positional encodings** trained on short windows and tested on long ones.
# 3. **Scaling laws in miniature**: loss against model size, a power law you fit (exercise 1),
#    Kaplan vs Chinchilla and the compute-optimal model for a budget (exercise 2).
# 4. **In-context learning**: a Transformer that learns linear regression from its prompt,
#    against least squares and one step of gradient descent (exercise 3), and attention weights
#    that *are* that gradient step.
# 5. **The KV cache**: generation speed-up against length; MHA / GQA / MQA memory.
# 6. **FlashAttention**: time and peak memory against sequence length, standard vs tiled.
# 7. **Mamba vs attention**: selective copying, and throughput against sequence length.
#
# Three graded exercises, 7 points. About 30 minutes, one of them computing.
#
# Every experiment is sized to run in seconds on a laptop CPU, so the models are tiny and the
# numbers are noisy; the *shapes* of the curves are what carry over to real models (each section
# cites the paper that measured it at scale). For bigger runs set `FULL_RUN = True` below.
#
# | symbol | meaning |
# | --- | --- |
# | $N$ | number of (non-embedding) parameters; in sections 5–6 the sequence length |
# | $D$ | number of training tokens |
# | $C$ | training compute in FLOPs, $C \approx 6ND$ |
# | $L$ | loss (cross-entropy, nats per character) |
# | $\alpha$ | exponent of a power law $L = a N^{-\alpha}$ |
# | $d$ | input dimension of the regression task; head width elsewhere |
# | $k$ | number of examples in the prompt |
# | $\eta$ | learning rate (step size) of gradient descent |
# | $H,\ H_{kv}$ | query heads, key/value heads |

# %% setup
# Setup (locked): the course library and the graders.
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import attnlab
from attnlab import tr
import grader_tests  # noqa: F401  (imported first so the checks bind their tools early)
from grader_tests import check

np.set_printoptions(precision=4, suppress=True)
# Tiny models run fastest on one CPU thread: more threads mostly wait for each other, and on a
# shared machine they slow everything down. (Timings below are for one thread.)
torch.set_num_threads(1)
notebook_start = time.perf_counter()

# %% full-run-md [markdown]
# **Small or full size.** With `FULL_RUN = False` (the default) every experiment is small and the
# whole notebook runs in about a minute. Set it to `True` in the next cell (it is editable), then
# *Run All*, for bigger models, longer training and longer sequences: 10–30 minutes on a laptop
# CPU, with clearer curves.

# %% full-run locked=false
FULL_RUN = False  # True: bigger models, more steps, longer sequences (10-30 minutes on a CPU)

# %% gpt-md [markdown]
# ## 1. Train a tiny GPT
#
# The corpus is the source code of Python's own standard library (`attnlab.stdlib_corpus`:
# nothing is downloaded), read one character at a time. A GPT-2-style model
# (`attnlab.GPTConfig.gpt2_style`: learned positions, LayerNorm, GELU, Pre-LN) learns to predict
# the next character, minimising the cross-entropy
#
# $$L = -\frac{1}{T}\sum_{t=1}^{T} \log p_\theta(c_{t+1} \mid c_1, \dots, c_t) \quad \text{(nats per character).}$$
#
# Two reference points make the number meaningful: guessing uniformly among the $V$ characters
# of the vocabulary costs $\log V$ nats; the best model that ignores context pays the entropy of
# the character frequencies. Both are printed below. Anything lower is learned from context.
# `attnlab.Trainer` runs AdamW with warmup and a cosine schedule and shows a progress bar.

# %% gpt-train
corpus = attnlab.stdlib_corpus(max_chars=600_000 if FULL_RUN else 150_000)
print(tr("{corpus}; uniform guess over V = {vocab} characters: log V = {log_v:.2f} nats/char, "
         "unigram entropy {entropy:.2f} nats/char",
         corpus=corpus, vocab=corpus.vocab_size, log_v=np.log(corpus.vocab_size),
         entropy=attnlab.unigram_entropy(corpus.train_data, corpus.vocab_size)))

torch.manual_seed(0)
gpt_config = attnlab.GPTConfig.gpt2_style(
    vocab_size=corpus.vocab_size, context_length=64, n_heads=4,
    d_model=128 if FULL_RUN else 64, n_layers=4 if FULL_RUN else 2)
lm = attnlab.GPT(gpt_config)
print(tr("model: {layers} layers x {heads} heads, d_model {d_model}: {params:,} parameters",
         layers=gpt_config.n_layers, heads=gpt_config.n_heads, d_model=gpt_config.d_model,
         params=lm.num_parameters()))

lm_trainer = attnlab.Trainer(
    lm, lambda g: corpus.batch(16, 64, g),
    attnlab.TrainConfig(steps=3000 if FULL_RUN else 500, lr=3e-3 if FULL_RUN else 1e-2, warmup_steps=30,
                        eval_every=500 if FULL_RUN else 100, eval_batches=4),
    eval_batch=lambda g: corpus.batch(16, 64, g, split="val"))
lm_history = lm_trainer.fit()
attnlab.plot_training(lm_history, title=tr("{params:,}-parameter GPT on stdlib source", params=lm.num_parameters()))
plt.show()
print(tr("loss: first batch {first:.2f}, last batch {last:.2f}, validation {val:.2f} nats/char",
         first=lm_history["loss"][0], last=lm_history["loss"][-1], val=lm_history["eval_loss"][-1]))

# %% gpt-samples-md [markdown]
# **Samples.** Generation feeds the model its own output, one character at a time (with the KV
# cache), sampling from $\operatorname{softmax}(\text{logits} / T)$ at temperature $T = 0.8$ among
# the 10 most likely characters. A small model trained for seconds learns indentation,
# keywords and brackets long before it learns meaning.

# %% gpt-samples
torch.manual_seed(1)
for start in ("def ", "import ", "    if "):
    prompt = torch.tensor([corpus.encode(start)])
    sample = lm.generate(prompt, 64 - prompt.shape[1], temperature=0.8, top_k=10)
    print(tr("--- prompt {start!r}\n{sample}\n", start=start, sample=corpus.decode(sample[0])))

# %% heads-md [markdown]
# ### What do the heads look at?
#
# `attnlab.attention_maps` runs the model once on a line of code and keeps the causal attention
# weights $A^{(\ell, h)} \in \mathbb{R}^{T \times T}$ of every layer $\ell$ and head $h$. Three
# numbers summarise a head (`attnlab.attention_summary`):
#
# - **look-back distance** $\frac1T \sum_i \sum_j A_{ij}(i - j)$: how far back it reads on average;
# - **previous-character weight** $\frac{1}{T-1}\sum_{i \ge 1} A_{i,i-1}$: a *previous-token head*
#   (Olsson et al. 2022, "In-context learning and induction heads") has it close to 1;
# - **entropy** $-\sum_j A_{ij} \log A_{ij}$ averaged over queries: 0 when a query reads one
#   character, $\log(i+1)$ when it spreads evenly over its past.
#
# The last row of the table is the reference: a head that spreads each query evenly over its
# past. In a character model you may find heads that read the last character or two, and heads
# in which every space of an indentation looks back at the newline that began the line. The
# overview shows every head, layers and heads counted from 1 as everywhere in the course. The
# explorer below it has a slider for the **layer**, a menu for the **head** (all heads of the
# layer, or one of them large) and one for the **query**, a character whose row is outlined and
# whose three most-read keys are printed. It starts at the head with the largest
# previous-character weight, and prints that head's numbers.

# %% heads
text = "    def forward(self, x):\n        return self.out(x) + x\n"
maps = attnlab.attention_maps(lm, torch.tensor([corpus.encode(text)]))
print(tr("attention maps: {shape} = (layers, heads, queries, keys)", shape=maps.shape))
heads = [{"head": f"L{layer + 1} H{head + 1}", "layer": layer + 1, "index": head + 1,  # counted from 1, as shown
          **attnlab.attention_summary(maps[layer, head])}
         for layer in range(maps.shape[0]) for head in range(maps.shape[1])]
n_chars = maps.shape[-1]
uniform = attnlab.causal_mask(n_chars) / np.arange(1, n_chars + 1)[:, None]  # each query spreads evenly over its past
reference_row = {"head": tr("uniform"), **attnlab.attention_summary(uniform)}
attnlab.print_table(heads + [reference_row], [
    (tr("head"), "head", "s"), (tr("look-back (chars)"), "distance", ".1f"),
    (tr("previous-char weight"), "previous", ".2f"), (tr("entropy (nats)"), "entropy", ".2f"),
    (tr("mean max weight"), "max_weight", ".2f")])
attnlab.plot_attention_grid(maps, title=tr("every head of the tiny GPT on one line of code"), describe=True)
plt.show()
best = max(heads, key=lambda row: row["previous"])
attnlab.attention_explorer(maps, text, layer=best["layer"], head=best["index"], describe=True)

# %% pos-md [markdown]
# ## 2. Positional encodings: train short, test long
#
# Attention alone is blind to order (Zone 2), so a Transformer adds positions in one of these
# ways (Zone 3a derived each; `GPTConfig(pos=...)` switches between them):
#
# | `pos` | how position enters | from |
# | --- | --- | --- |
# | `"learned"` | a trained vector per position, added to the token embedding | GPT-2, BERT |
# | `"sinusoidal"` | the fixed table $\sin(p/10000^{2i/d}), \cos(\cdot)$, added | Vaswani et al. 2017 |
# | `"rope"` | $q$ and $k$ rotated by angles $p\,\theta_i$: scores depend on $m - n$ only | Su et al. 2021 |
# | `"alibi"` | a bias $-s_h\,\lvert i - j\rvert$ added to the scores | Press et al. 2022 |
# | `"none"` | nothing: only the causal mask hints at position | Haviv et al. 2022 |
#
# **The experiment** (Press et al. 2022, "Train Short, Test Long", ran it at scale): five
# identical GPTs — same size, seed, batches and learning rate, only `pos` differs — are trained on
# short windows of `train_len` characters and then evaluated on longer windows of held-out text
# (the lengths are printed with the table). Positions from `train_len` on never occur in
# training. For the learned encoding the model's table has a row for every position up to the
# longest evaluation window, but the rows past `train_len` never receive a gradient: they keep
# their small random initial values (shrunk a little by weight decay; the cell prints their
# length). A real GPT-2 could not be tested this way: its table stops at its context length.
# Sinusoidal and RoPE meet angles (combinations of phases) they never saw; ALiBi's bias is the
# same rule at every distance; with no encoding there is nothing new to meet.
# A longer window gives each character *more* context, so a model that copes with the length
# should not get worse — watch which ones do.

# %% pos-run
extrapolation = attnlab.length_extrapolation(
    corpus, train_len=32, eval_lens=(32, 64, 128, 256, 512) if FULL_RUN else (32, 64, 128, 256),
    steps=1500 if FULL_RUN else 200, d_model=64 if FULL_RUN else 32, n_layers=2, n_heads=4)
train_len = extrapolation["train_len"]
rows = []
for pos, losses in extrapolation["loss"].items():
    per_position = extrapolation["position_loss"][pos]
    rows.append({"pos": pos, **{f"L={n}": loss for n, loss in zip(extrapolation["eval_lens"], losses)},
                 "beyond": per_position[train_len:].mean(), "within": per_position[:train_len].mean()})
print(tr("validation loss (nats/char) by evaluation length; trained for {steps} steps on windows of {length} characters",
         steps=extrapolation["steps"], length=train_len))
attnlab.print_table(rows, [("pos", "pos", "s")]
                    + [(f"L={n}", f"L={n}", ".3f") for n in extrapolation["eval_lens"]]
                    + [(tr("loss at positions < {length}", length=train_len), "within", ".3f"),
                       (tr("loss at positions >= {length}", length=train_len), "beyond", ".3f"),
                       (tr("penalty"), lambda r: r["beyond"] - r["within"], "+.3f")])
attnlab.plot_loss_curves(extrapolation["history"], title=tr("training on windows of {length} characters", length=train_len))
attnlab.plot_extrapolation(extrapolation)
plt.show()
if "learned_table" in extrapolation:
    table = extrapolation["learned_table"]
    print(tr("learned table, mean length of a position vector: {trained:.3f} at the trained positions, "
             "{untrained:.3f} at the never-trained ones; token vectors: {tokens:.3f}",
             trained=table["trained"], untrained=table["untrained"], tokens=table["tokens"]))
ranked = sorted(rows, key=lambda r: r["beyond"] - r["within"])
print(tr("smallest penalty past the training length in this run: {ranking}",
         ranking=", ".join(f"{r['pos']} ({r['beyond'] - r['within']:+.3f})" for r in ranked)))

# %% pos-after-md [markdown]
# **Reading your table.** The *penalty* column compares, in the longest windows, the loss at the
# positions the model never trained on with the loss at the ones it did. Press et al. found, for
# models of 247M–1.3B parameters, that sinusoidal and rotary models degrade quickly beyond the
# training length while ALiBi keeps its quality (and even improves) out to several times that
# length; part of ALiBi's advantage is its built-in preference for nearby tokens. Two caveats
# for this tiny run: the models are undertrained (their in-distribution losses differ too — the
# first column), and a character model mostly needs the last few characters, which makes every
# encoding look better than it would on a task that needs far-away context. That is also why the
# learned encoding can look good here: past `train_len` it adds only short random vectors (compare
# the printed lengths), which leaves the model close to the `none` model, which still has the
# order the causal mask implies. It is not extrapolating what it learned about positions; it is
# getting by without them. `FULL_RUN = True` trains longer and tests longer windows.

# %% scaling-md [markdown]
# ## 3. Scaling laws in miniature
#
# Kaplan et al. 2020 ("Scaling Laws for Neural Language Models") trained Transformers from under
# a thousand to 1.5 billion non-embedding parameters and found that, when data and training time
# are not the bottleneck, the test loss falls as a **power law** in the number of non-embedding
# parameters $N$:
#
# $$L(N) = \left(\frac{N_c}{N}\right)^{\alpha_N}, \qquad \alpha_N \approx 0.076,\quad N_c \approx 8.8 \times 10^{13},$$
#
# across that whole range (and similar laws in the data $D$ and the compute $C$). Why
# *non-embedding*: the embedding table grows with the vocabulary, not with what the model can
# compute, and counting it blurs the trend (`attnlab.non_embedding_parameters`).
#
# A power law $L = a N^{-\alpha}$ is a straight line on log–log axes:
#
# $$\log L = \log a - \alpha \log N ,$$
#
# so fitting it is least squares on the points $(\log N_i, \log L_i)$: slope $-\alpha$,
# intercept $\log a$.
#
# ## Exercise 1 — `fit_power_law` (2 points)
#
# Write `fit_power_law(n, loss)` returning `(a, alpha)` as floats, the least-squares fit of
# $\log(\text{loss}) = \log a - \alpha \log n$. `n` and `loss` are 1-D (arrays or lists) of
# positive numbers. `np.polyfit(x, y, 1)` returns `[slope, intercept]` — the highest power first.
# Write it with NumPy: calling `attnlab.fit_power_law` does not count.

# %%
def fit_power_law(n, loss):
    """Least-squares fit of loss ~ a * n**(-alpha) on log-log axes. Returns (a, alpha)."""
    ### BEGIN SOLUTION
    log_n = np.log(np.asarray(n, dtype=float))
    log_loss = np.log(np.asarray(loss, dtype=float))
    slope, intercept = np.polyfit(log_n, log_loss, 1)
    return float(np.exp(intercept)), float(-slope)
    ### END SOLUTION


# %%
check("fit_power_law", fit_power_law)
### BEGIN HIDDEN TESTS
check("fit_power_law", fit_power_law, hidden=True)
### END HIDDEN TESTS

# %% sweep-md [markdown]
# **Your own scaling law.** Five GPTs of growing size (their parameter counts are in the
# table), each trained on the same batches for the same number of steps
# (`attnlab.model_size_sweep`), then your `fit_power_law` through their validation losses.

# %% sweep
sizes = ((8, 1), (16, 1), (32, 2), (64, 2), (128, 4)) if FULL_RUN else ((8, 1), (16, 1), (32, 2), (48, 2), (64, 2))
sweep = attnlab.model_size_sweep(corpus, sizes=sizes, steps=1500 if FULL_RUN else 200)
print(tr("every size trained for {steps} steps on the same batches", steps=sweep[0]["steps"]))
attnlab.print_table(sweep, [("d_model", "d_model", "d"), (tr("layers"), "n_layers", "d"),
                            (tr("params"), "params", ",d"), (tr("non-embedding N"), "non_embedding_params", ",d"),
                            (tr("tokens D"), "tokens", ",d"), ("D / N", lambda r: r["tokens"] / r["non_embedding_params"], ".0f"),
                            (tr("val loss"), "val_loss", ".3f")])
attnlab.plot_loss_curves({f"N = {r['non_embedding_params']:,}": r["history"] for r in sweep},
                         title=tr("the same batches, five model sizes"))
plt.show()
sweep_n = np.array([r["non_embedding_params"] for r in sweep], dtype=float)
sweep_loss = np.array([r["val_loss"] for r in sweep])
try:
    a_fit, alpha_fit = fit_power_law(sweep_n, sweep_loss)
    print(tr("\nyour fit: L = {a:.3f} * N^(-{alpha:.4f})   (Kaplan et al. 2020: alpha_N = 0.076)", a=a_fit, alpha=alpha_fit))
    rel_residual = np.abs(a_fit * sweep_n**-alpha_fit / sweep_loss - 1)
    print(tr("largest relative distance of a measured point from the line: {distance:.1%}", distance=rel_residual.max()))
    print(tr("the line predicts {loss:.3f} nats/char for a model 10x the largest ({params:,.0f} parameters), "
             "if trained the same way",
             loss=a_fit * (10 * sweep_n[-1])**-alpha_fit, params=10 * sweep_n[-1]))
    attnlab.plot_scaling(sweep_n, sweep_loss, fit=(a_fit, alpha_fit))
except NotImplementedError:
    print(tr("Finish exercise 1 (fit_power_law) to draw the fitted line; the measured points are below."))
    attnlab.plot_scaling(sweep_n, sweep_loss)
plt.show()

# %% sweep-after-md [markdown]
# Your exponent is not Kaplan's, and should not be: these models see characters rather than
# word pieces, and every size got the same small number of steps (printed above the table), so
# the larger ones are further from convergence (look at the $D/N$ column: the smallest models saw far more tokens per parameter
# than the largest). A bend in your points at the large end is most likely that
# data limit — Kaplan et al. model it with a joint law $L(N, D)$. The lesson that carries over
# is the method: measure a few sizes, fit a line in log–log space, and extrapolate with care.
#
# ### Kaplan vs Chinchilla: how to spend a compute budget
#
# **Compute.** A forward pass costs about $2N$ FLOPs per token (one multiply and one add per
# weight), and the backward pass about twice that (gradients with respect to the activations and
# to the weights), so training on $D$ tokens costs (Kaplan et al. 2020, section 2.1)
#
# $$C \approx 6 N D .$$
#
# For a fixed $C$ you can train a big model on few tokens or a small one on many. Which is best?
#
# - **Kaplan et al. 2020**: grow the model much faster than the data, $N_{opt} \propto C^{0.73}$
#   and $D_{opt} \propto C^{0.27}$. Large models trained on relatively little data followed
#   (GPT-3: 175B parameters, 300B tokens; Brown et al. 2020).
# - **Hoffmann et al. 2022** ("Training Compute-Optimal Large Language Models", *Chinchilla*)
#   re-ran the study with the learning-rate schedule matched to each run's length and found
#   $N_{opt} \propto C^{0.50}$ and $D_{opt} \propto C^{0.50}$ (0.49 / 0.51 and 0.46 / 0.54 with their
#   other two methods): parameters and tokens should grow **together**, at roughly **20 tokens
#   per parameter**. Their proof: Chinchilla, 70B parameters on 1.4T tokens, beat Gopher,
#   280B parameters on 300B tokens, on a large range of downstream tasks, for the same compute.
#
# With $D = r N$ ($r$ tokens per parameter) the budget fixes everything:
#
# $$C = 6 N (r N) = 6 r N^2 \quad\Longrightarrow\quad N_{opt} = \sqrt{\frac{C}{6 r}}, \qquad D_{opt} = r\, N_{opt} .$$
#
# ## Exercise 2 — `chinchilla_optimal` (2 points)
#
# Write `chinchilla_optimal(flops, tokens_per_param=20.0)` returning `(n_params, n_tokens)` as
# floats: the $N$ and $D$ with $6ND = $ `flops` and $D = $ `tokens_per_param` $\times N$.

# %%
def chinchilla_optimal(flops, tokens_per_param=20.0):
    """Compute-optimal (n_params, n_tokens) for a budget of `flops` with C = 6 N D, D = r N."""
    ### BEGIN SOLUTION
    n_params = np.sqrt(flops / (6.0 * tokens_per_param))
    return float(n_params), float(tokens_per_param * n_params)
    ### END SOLUTION


# %%
check("chinchilla_optimal", chinchilla_optimal)
### BEGIN HIDDEN TESTS
check("chinchilla_optimal", chinchilla_optimal, hidden=True)
### END HIDDEN TESTS

# %% budget-md [markdown]
# **Budgets.** Your function on budgets from a laptop-afternoon to a frontier run, the check that
# it spends exactly the budget, and Gopher's budget ($5.76 \times 10^{23}$ FLOPs, Hoffmann et al.
# 2022), which should land on Chinchilla itself. Then the two recipes side by side: by how much
# each says to grow the model when the compute grows 10×, 100×, 1000×.

# %% budget
try:
    budgets = []
    for flops in (1e15, 1e18, 1e21, 5.76e23, 1e25):
        n_opt, d_opt = chinchilla_optimal(flops)
        budgets.append({"C": flops, "N": n_opt, "D": d_opt, "check": 6 * n_opt * d_opt / flops})
    attnlab.print_table(budgets, [(tr("budget C (FLOPs)"), "C", ".3g"), (tr("N_opt (params)"), "N", ".3g"),
                                  (tr("D_opt (tokens)"), "D", ".3g"), ("6ND / C", "check", ".6f")])
    biggest = sweep[-1]
    n_ours, d_ours = chinchilla_optimal(biggest["flops"])
    print(tr("\nour largest tiny model: N = {n:,}, D = {d:,} tokens, C = {c:.3g} FLOPs;\n"
             "  Chinchilla's recipe would spend that budget on N = {n_opt:,.0f} parameters and D = {d_opt:,.0f} tokens",
             n=biggest["non_embedding_params"], d=biggest["tokens"], c=biggest["flops"], n_opt=n_ours, d_opt=d_ours))
except NotImplementedError:
    print(tr("Finish exercise 2 (chinchilla_optimal) first, then run this cell again."))

growth = [{"factor": f, "kaplan": f**0.73, "chinchilla": f**0.50, "kaplan_d": f**0.27, "chinchilla_d": f**0.50}
          for f in (10, 100, 1000)]
print(tr("\nwhen compute grows by a factor f, grow the model by f^a and the data by f^b:"))
attnlab.print_table(growth, [(tr("compute x"), "factor", "d"), (tr("model x (Kaplan, a=0.73)"), "kaplan", ".1f"),
                             (tr("data x (Kaplan, b=0.27)"), "kaplan_d", ".1f"),
                             (tr("model x (Chinchilla, a=0.50)"), "chinchilla", ".1f"),
                             (tr("data x (Chinchilla, b=0.50)"), "chinchilla_d", ".1f")])

# %% icl-md [markdown]
# ## 4. In-context learning: attention that runs gradient descent
#
# Give a model a prompt of examples $(x_1, y_1), \dots, (x_k, y_k)$ and a query $x_q$, where
# $y_i = w \cdot x_i$ with a **fresh** $w \sim \mathcal N(0, I_d)$ in every prompt
# (`attnlab.LinearRegressionTask`; Garg et al. 2022). The weights of the model cannot store $w$:
# to predict $y_q = w \cdot x_q$ it must *learn $w$ from the prompt*, with no weight update. Three
# references to measure it against:
#
# - **predict 0**: error $\mathbb E[y_q^2] = \mathbb E\lVert w\rVert^2 = d$; we report errors divided by $d$, so this scores 1;
# - **least squares** (`attnlab.least_squares_predict`): exact once $k \ge d$ (no noise here);
# - **one step of gradient descent** on $L(w) = \frac{1}{2k}\sum_i (w \cdot x_i - y_i)^2$ from $w_0 = 0$.
#
# **One gradient step is attention.** $\nabla L(w) = \frac1k \sum_i (w \cdot x_i - y_i)\, x_i$, so at
# $w_0 = 0$ it is $-\frac1k \sum_i y_i x_i$, and a step of size $\eta$ gives
#
# $$w_1 = \frac{\eta}{k} \sum_{i=1}^{k} y_i\, x_i, \qquad
# \hat y_q = x_q \cdot w_1 = \frac{\eta}{k}\sum_{i=1}^{k} \underbrace{(x_q \cdot x_i)}_{\text{query}\cdot\text{key}}\ \underbrace{y_i}_{\text{value}} .$$
#
# That is attention with query $x_q$, keys $x_i$ and values $y_i$ — *linear* attention, the raw
# dot product with no softmax (von Oswald et al. 2023, "Transformers learn in-context by gradient
# descent").
#
# ## Exercise 3 — `gd_step_linear_attention` (3 points)
#
# Write `gd_step_linear_attention(x, y, x_query, lr)`: `x` of shape $(N, d)$, `y` $(N,)$, `x_query`
# $(M, d)$; return the predictions $(M,)$ at the queries after one gradient step of size `lr` from
# $w = 0$ on $L(w) = \frac{1}{2N}\sum_i (w\cdot x_i - y_i)^2$. Two lines of NumPy.

# %%
def gd_step_linear_attention(x, y, x_query, lr):
    """Predictions x_query @ w_1, w_1 = one GD step of size lr from w = 0 on 1/(2N) sum (w.x - y)^2."""
    ### BEGIN SOLUTION
    w_after_one_step = (lr / x.shape[0]) * (x.T @ y)  # minus lr times the gradient at 0
    return x_query @ w_after_one_step
    ### END SOLUTION


# %%
check("gd_step_linear_attention", gd_step_linear_attention)
### BEGIN HIDDEN TESTS
check("gd_step_linear_attention", gd_step_linear_attention, hidden=True)
### END HIDDEN TESTS

# %% icl-lr-md [markdown]
# **The best step size.** How large should $\eta$ be? With $\hat\Sigma = \frac1k \sum_i x_i x_i^\top$ the step
# gives $w_1 = \eta \hat\Sigma w$, and for Gaussian $x$ the expected squared error of the prediction is
# $\mathbb E\lVert w_1 - w \rVert^2 = \mathbb E\, w^\top (\eta \hat\Sigma - I)^2 w$. Using $\mathbb E[\hat\Sigma] = I$
# and $\mathbb E[\hat\Sigma^2] = \frac{k + d + 1}{k} I$ (the $i = j$ terms of the double sum contribute
# $\mathbb E[\lVert x\rVert^2 x x^\top] = (d+2) I$, the $i \ne j$ terms $I$):
#
# $$\text{error}(\eta) = d\left(\eta^2\,\frac{k+d+1}{k} - 2\eta + 1\right)
# \quad\Longrightarrow\quad \eta^* = \frac{k}{k+d+1}, \qquad \frac{\text{error}(\eta^*)}{d} = \frac{d+1}{k+d+1}.$$
#
# So one step can never be exact: even with $k = 16$ examples in $d = 4$ it keeps $5/21 \approx 24\%$
# of the error of predicting 0. The comparison below uses $\eta^*$ for every $k$, and checks the
# formula against the measured error.
#
# **The Transformer.** `attnlab.ICLTransformer`: each pair $[x_i, y_i]$ (and $[x_q, 0]$) is one
# token, projected to width 32, through two bidirectional `attnlab.TransformerBlock`s (width 64
# and four blocks with `FULL_RUN`) with softmax attention and no positional encoding (the
# examples are a set), and the query token's output is read as $\hat y_q$. It is trained (`attnlab.train_icl_transformer`) on prompts with 1 to
# 16 examples, minimising the squared error — it is never told about least squares or gradients.

# %% icl-train
d_icl, n_icl = 4, 16
icl_task = attnlab.LinearRegressionTask(d=d_icl, n_points=n_icl, seed=0)
icl_model, icl_history = attnlab.train_icl_transformer(
    icl_task, steps=3000 if FULL_RUN else 400, d_model=64 if FULL_RUN else 32, n_layers=4 if FULL_RUN else 2)
attnlab.plot_loss_curves({"ICL Transformer": icl_history}, title=tr("training on in-context regression"),
                         smooth=20, ylabel=tr("squared error (random k)"))
plt.show()

# %% icl-compare
tokens, target = icl_task.batch(1000, torch.Generator().manual_seed(123))  # 1000 fresh prompts
ks = [1, 2, 3, 4, 6, 8, 12, 16]
curves = {
    "predict 0": attnlab.icl_errors(lambda x, y, xq: np.zeros(len(xq)), tokens, target, ks),
    "least squares": attnlab.icl_errors(attnlab.least_squares_predict, tokens, target, ks),
    "Transformer (trained)": attnlab.icl_errors(icl_model.predict, tokens, target, ks, batched=True),
    "one GD step: theory (d+1)/(k+d+1)": np.array([(d_icl + 1) / (k + d_icl + 1) for k in ks]),
}
try:
    gd_errors, gd_sem = attnlab.icl_errors(
        lambda x, y, xq: gd_step_linear_attention(x, y, xq, lr=len(x) / (len(x) + d_icl + 1)),
        tokens, target, ks, return_sem=True)
    curves["one GD step (yours), best lr"] = gd_errors
    z_scores = (gd_errors - curves["one GD step: theory (d+1)/(k+d+1)"]) / gd_sem
    print(tr("your gradient step vs the formula, (measured - theory) / standard error for each k:"),
          np.round(z_scores, 1),
          tr("\n  all within 3 standard errors: {ok}\n", ok=bool(np.all(np.abs(z_scores) < 3))))
except NotImplementedError:
    print(tr("Finish exercise 3 (gd_step_linear_attention) to add the gradient-step curve.\n"))
print(tr("squared error / d on 1000 fresh prompts (predicting 0 scores about 1)"))
attnlab.print_table([{"k": k, **{name: errors[i] for name, errors in curves.items()}} for i, k in enumerate(ks)],
                    [("k", "k", "d")] + [(name, name, ".3f") for name in curves])
attnlab.plot_icl_errors(ks, curves)
plt.show()

# %% icl-after-md [markdown]
# **Reading the table.** The measured gradient-step errors sit on the theory column up to
# Monte-Carlo noise: 1000 prompts leave a standard error of a few percent (the errors are
# heavy-tailed), and the check above says how many standard errors apart they are. Least squares drops to zero at $k = d = 4$, where the
# examples determine $w$. Garg et al. found that trained Transformers approach least squares —
# doing better than any *single* gradient step — and von Oswald et al. showed that stacked
# attention layers can take several steps. How close yours gets in a few hundred training
# steps is in your table; `FULL_RUN = True` trains a deeper model for much longer.
#
# ### Weights that *are* one gradient step
#
# Now make the correspondence exact. Put each example in a token $z_i = [x_i, y_i] \in \mathbb
# R^{d+1}$ and the query in $z_q = [x_q, 0]$ (`attnlab.icl_tokens`). One residual **linear
# self-attention** layer (`attnlab.linear_self_attention`, no softmax) maps token $j$ to
#
# $$z_j + \sum_i \big((z_j W_q) \cdot (z_i W_k)\big)\, (z_i W_v)\, W_o .$$
#
# Choose (von Oswald et al. 2023, Proposition 1; `attnlab.linear_attention_gd_weights`)
#
# $$W_q = W_k = \begin{pmatrix} I_d & 0 \\ 0 & 0 \end{pmatrix},\qquad
# W_v = \begin{pmatrix} 0 & 0 \\ 0 & 1 \end{pmatrix},\qquad W_o = \frac{\eta}{N} I_{d+1}.$$
#
# Then the score of the query with token $i$ is $x_q \cdot x_i$, the value of token $i$ is $y_i$ in
# the last slot, and the query's last slot becomes $0 + \frac{\eta}{N}\sum_i (x_q \cdot x_i)\, y_i$
# — exactly $\hat y_q$ above. (The query tokens attend to each other too, but their values are
# $y = 0$: they add nothing.) The check: your `gd_step_linear_attention` against the attention
# layer, on 64 examples in $d = 8$ with 10 queries.

# %% lsa-exact
rng = np.random.default_rng(0)
x_ctx, x_q = rng.standard_normal((64, 8)), rng.standard_normal((10, 8))
y_ctx = x_ctx @ rng.standard_normal(8)
eta = 0.7
z = attnlab.icl_tokens(x_ctx, y_ctx, x_q)  # (64 + 10, 9)
gd_weights = attnlab.linear_attention_gd_weights(d=8, lr=eta, n_context=64)
attention_prediction = attnlab.linear_self_attention(z, **gd_weights)[64:, -1]  # the queries' y slot
try:
    difference = np.abs(attention_prediction - gd_step_linear_attention(x_ctx, y_ctx, x_q, eta)).max()
    print(tr("max |linear self-attention - your gradient step| = {diff:.1e}  (within 1e-6: {close})",
             diff=difference, close=difference < 1e-6))
except NotImplementedError:
    print(tr("Finish exercise 3 (gd_step_linear_attention) first, then run this cell again."))
reference = attnlab.gd_step_linear_attention(x_ctx, y_ctx, x_q, eta)
print(tr("max |linear self-attention - attnlab.gd_step_linear_attention| = {diff:.1e}",
         diff=np.abs(attention_prediction - reference).max()))

# %% lsa-train-md [markdown]
# **Does training find it?** The construction proves a linear attention layer *can* take a
# gradient step. Von Oswald et al. found that one *trained* from random weights on this task
# *does*: its predictions match a gradient step with the best step size. Train one layer (four
# random $(d+1) \times (d+1)$ matrices, `attnlab.train_linear_self_attention`), then compare its
# predictions — computed by `attnlab.linear_self_attention` with the trained weights — with one
# step at $\eta^* = k/(k+d+1)$, and look at the products that matter, $W_q W_k^\top$ and $W_v W_o$.
# Only these products are determined (scale one matrix up and another down, nothing changes), so
# each panel is shown with its own colour scale. And only parts of them act on the prediction:
# the query's last entry is 0, so the last row of $W_q W_k^\top$ never touches it, and only the
# last column of $W_v W_o$ writes into the prediction slot. Compare those parts.

# %% lsa-train
lsa_weights, lsa_history = attnlab.train_linear_self_attention(icl_task, steps=1500 if FULL_RUN else 500)
attnlab.plot_loss_curves({tr("one linear self-attention layer"): lsa_history}, title=tr("training on 16-example prompts"),
                         smooth=20, ylabel=tr("squared error"))
plt.show()
tokens64 = tokens.double().numpy()
lsa_prediction = attnlab.linear_self_attention(tokens64, **lsa_weights)[:, -1, -1]
eta_star = n_icl / (n_icl + d_icl + 1)
gd_prediction = np.array([attnlab.gd_step_linear_attention(t[:n_icl, :d_icl], t[:n_icl, d_icl], t[n_icl:, :d_icl],
                                                           eta_star)[0] for t in tokens64])
y_true = target.double().numpy()
print(tr("error / d: trained linear attention {trained:.4f}, one GD step with eta* = {eta:.3f}: {gd:.4f}",
         trained=np.mean((lsa_prediction - y_true) ** 2) / d_icl, eta=eta_star,
         gd=np.mean((gd_prediction - y_true) ** 2) / d_icl))
print(tr("trained layer vs gradient step: correlation {corr:.5f}, relative difference {diff:.3f}",
         corr=np.corrcoef(lsa_prediction, gd_prediction)[0, 1],
         diff=np.linalg.norm(lsa_prediction - gd_prediction) / np.linalg.norm(gd_prediction)))
constructed = attnlab.linear_attention_gd_weights(d=d_icl, lr=eta_star, n_context=n_icl)
attnlab.plot_lsa_weights({
    tr("trained  W_q W_k^T"): lsa_weights["w_q"] @ lsa_weights["w_k"].T,
    tr("trained  W_v W_o"): lsa_weights["w_v"] @ lsa_weights["w_o"],
    tr("constructed  W_q W_k^T"): constructed["w_q"] @ constructed["w_k"].T,
    tr("constructed  W_v W_o"): constructed["w_v"] @ constructed["w_o"],
})
plt.show()

# %% kv-md [markdown]
# ## 5. The KV cache: speed-up and memory
#
# Without a cache, generating token $t$ reruns the model on all $t$ tokens so far: every
# projection and MLP on $t$ tokens, and attention over $t^2$ pairs. Generating $T$ tokens costs
# $\sum_t O(t) = O(T^2)$ token computations plus $O(T^3)$ for attention. With the cache each step
# processes **one** token and attends over the $t$ cached keys: $O(T)$ token computations and
# $O(T^2)$ for attention (Zone 4 checked both give the same tokens). The speed-up should grow
# about linearly with $T$. The model is timed with random weights (speed does not depend on what
# it learned) and a context long enough for the longest run; greedy decoding, best of two runs.

# %% kv-speed
torch.manual_seed(0)
timing_gpt = attnlab.GPT(gpt_config.replace(context_length=1040 if FULL_RUN else 520))
kv_prompt = torch.tensor([corpus.encode("def ")])
kv_rows = attnlab.kv_cache_speedup(timing_gpt, kv_prompt,
                                   new_tokens=(64, 128, 256, 512, 1024) if FULL_RUN else (32, 64, 128, 256, 512))
attnlab.print_table(kv_rows, [(tr("new tokens"), "new_tokens", "d"), (tr("no cache (s)"), "seconds_uncached", ".3f"),
                              (tr("KV cache (s)"), "seconds_cached", ".3f"), (tr("speed-up"), "speedup", ".1f"),
                              (tr("same tokens"), "same", "")])
attnlab.plot_kv_speedup(kv_rows)
plt.show()

# %% kv-mem-md [markdown]
# **What the cache costs.** The cache holds a key and a value per layer, key/value head and
# token: $2 \times \text{layers} \times H_{kv} \times d_{head} \times T \times \text{bytes}$
# (`attnlab.kv_cache_bytes`, Zone 3b). Grouped-query attention (GQA, Ainslie et al. 2023) shares
# each key/value head among $H / H_{kv}$ query heads, multi-query attention (MQA, Shazeer 2019)
# shares one among all. Below: three GPTs with 8 query heads and 8, 2 and 1 key/value heads —
# their preallocated caches for 1024 tokens measured (`GPT.new_kv_cache`, float32) against the
# formula — then the formula for a model shaped like LLaMA-2-70B (80 layers, 64 query heads of
# width 128, which uses GQA with 8 key/value heads; Touvron et al. 2023) at 4096 tokens in fp16.

# %% kv-memory
memory_config = attnlab.GPTConfig(vocab_size=corpus.vocab_size, context_length=64, d_model=64, n_layers=2, n_heads=8)
memory_rows = attnlab.kv_cache_memory(memory_config, seq_len=1024, kv_heads=(8, 2, 1))
attnlab.print_table(memory_rows, [(tr("kind"), "kind", "s"), ("H_kv", "n_kv_heads", "d"),
                                  (tr("measured bytes"), "measured_bytes", ",d"),
                                  (tr("formula bytes"), "formula_bytes", ",d"),
                                  (tr("attention params / layer"), "attention_params_per_layer", ",d")])
print()
big = [{"kind": kind, "H_kv": h_kv,
        "GiB": attnlab.kv_cache_bytes(n_layers=80, n_kv_heads=h_kv, head_dim=128, seq_len=4096) / 2**30}
       for kind, h_kv in (("MHA", 64), ("GQA", 8), ("MQA", 1))]
attnlab.print_table(big, [(tr("LLaMA-2-70B shape"), "kind", "s"), ("H_kv", "H_kv", "d"),
                          (tr("KV cache per 4096-token sequence (GiB)"), "GiB", ".3f")])

# %% flash-md [markdown]
# ## 6. FlashAttention: time and peak memory
#
# Standard attention (`attnlab.scaled_dot_product_attention`) materialises the $N \times N$ scores
# and weights: memory $O(N^2)$. The tiled algorithm (`attnlab.flash_attention_numpy`, Zone 4) walks
# over $64 \times 64$ tiles with an online softmax and keeps only $O(N d)$ numbers plus one tile:
# the same output, memory $O(N)$. Below, both at $N = 256 \dots 2048$ with $d = 64$: the time
# (best of two) and the peak memory allocated while running, measured by Python's `tracemalloc`
# (`attnlab.peak_memory`). Then your `fit_power_law` reads off the exponent of each memory curve.

# %% flash
flash_rows = attnlab.attention_cost_vs_length((256, 512, 1024, 2048, 4096) if FULL_RUN else (256, 512, 1024, 2048))
attnlab.print_table(flash_rows, [
    ("N", "n", "d"), (tr("standard (ms)"), lambda r: 1e3 * r["seconds_standard"], ".1f"),
    (tr("tiled (ms)"), lambda r: 1e3 * r["seconds_tiled"], ".1f"),
    (tr("standard peak (MiB)"), lambda r: r["peak_bytes_standard"] / 2**20, ".2f"),
    (tr("tiled peak (MiB)"), lambda r: r["peak_bytes_tiled"] / 2**20, ".2f"),
    (tr("memory ratio"), lambda r: r["peak_bytes_standard"] / r["peak_bytes_tiled"], ".1f"),
    (tr("max |difference|"), "max_abs_diff", ".1e")])
attnlab.plot_attention_cost(flash_rows)
plt.show()
flash_n = [r["n"] for r in flash_rows]
try:
    for key in ("standard", "tiled"):
        _, exponent = fit_power_law(flash_n, [r[f"peak_bytes_{key}"] for r in flash_rows])
        print(tr("{key}: peak memory grows like N^{exponent:.2f}", key=key, exponent=-exponent))
except NotImplementedError:
    print(tr("Finish exercise 1 (fit_power_law) to measure the exponents."))

# %% flash-gpu-md [markdown]
# **The exponents.** About 2 for standard attention: its memory is the $N \times N$ matrices. At
# most 1 for the tiled version: the output and the running statistics grow with $N$, the tile
# does not, and at small $N$ the fixed tile is a large part of the total, so the fitted exponent
# comes out below 1.
#
# **Time is a different story on a CPU.** Both versions do the same $O(N^2 d)$ arithmetic; here
# the tiled loop pays Python overhead per tile while the standard one streams big temporary
# arrays through memory, and which wins depends on $N$ and the machine (your table says). The
# point of FlashAttention is the **GPU**: its $N \times N$ matrix would live in slow HBM, while the
# tiles fit in fast on-chip SRAM, so the tiled kernel moves far fewer bytes (Zone 3b counted
# them) and runs several times faster (Dao et al. 2022).
#
# **On a GPU**, attnlab's Triton kernel (`attnlab.flash_attention_triton`, whose inner loop you
# wrote in Zone 4) compiles natively. The next cell times it against PyTorch's fused attention
# when a CUDA GPU is present; the full benchmark (forward and backward, float16 and bfloat16,
# up to 16k tokens, in TFLOP/s) is one command from the repository root:
#
#     python bench/flash_gpu.py --quick

# %% flash-gpu
if torch.cuda.is_available():
    implementations = {
        "triton": lambda q, k, v: attnlab.flash_attention_triton(q, k, v, causal=True),
        "torch": lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
    }
    gpu_rows = []
    for n in (1024, 4096, 8192):
        q, k, v = (torch.randn(4, 16, n, 64, device="cuda", dtype=torch.float16) for _ in range(3))
        row = {"n": n, "diff": float((implementations["triton"](q, k, v)  # the first call compiles
                                      - implementations["torch"](q, k, v)).abs().max())}
        for name, attention in implementations.items():
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(10):
                attention(q, k, v)
            torch.cuda.synchronize()
            row[name] = 1e3 * (time.perf_counter() - start) / 10
        gpu_rows.append(row)
    print(tr("GPU: {name}; batch 4, 16 heads, d = 64, causal, float16", name=torch.cuda.get_device_name()))
    attnlab.print_table(gpu_rows, [("N", "n", "d"), ("attnlab Triton (ms)", "triton", ".3f"),
                                   ("torch SDPA (ms)", "torch", ".3f"), (tr("max |difference|"), "diff", ".1e")])
else:
    print(tr("No CUDA GPU here: the Triton kernel would run in its CPU interpreter, which is far too slow to\n"
             "time. On a GPU machine this cell times it; or run  python bench/flash_gpu.py --quick"))

# %% mamba-md [markdown]
# ## 7. Mamba vs attention
#
# **Selective copying** (Gu & Dao 2023, the Mamba paper): a region of blanks hides a few symbols
# at random positions; then marker tokens ask for the symbols, in order
# (`attnlab.SelectiveCopyTask`). A model must decide, token by token, what to keep and what to
# ignore — which depends on the *content*, not on a fixed position. A linear time-invariant
# state space model (S4) applies the same dynamics to every token and cannot do that; Mamba
# makes its step size $\Delta_t$ and its $B_t, C_t$ functions of the input, so it can write a
# symbol into its state and let blanks pass. Attention can simply look back at every token.
# Two models of about the same size (`attnlab.MambaLM`, `attnlab.GPT`), the same batches, steps
# and learning rate:

# %% copy-task
copy_task = (attnlab.SelectiveCopyTask(n_memorize=4, region_len=16, n_symbols=8, seed=0) if FULL_RUN
             else attnlab.SelectiveCopyTask(n_memorize=3, region_len=12, n_symbols=6, seed=0))
x_example, y_example = copy_task.batch(2, torch.Generator().manual_seed(7))
names = {copy_task.BLANK: ".", copy_task.MARKER: "?"}
for xs, ys in zip(x_example.tolist(), y_example.tolist()):
    shown = " ".join(names.get(t, chr(ord("A") + t - 2)) for t in xs)
    answer = " ".join(chr(ord("A") + t - 2) for t in ys if t != attnlab.IGNORE)
    print(tr("{shown}    answer at the ?s: {answer}", shown=shown, answer=answer))

copy_models = {  # built inside the loop, each from the same seed
    "Mamba": lambda: attnlab.MambaLM(copy_task.vocab_size, d_model=32, n_layers=2, d_state=4),
    "GPT": lambda: attnlab.GPT(attnlab.GPTConfig(vocab_size=copy_task.vocab_size, context_length=copy_task.seq_len,
                                                 d_model=24, n_layers=2, n_heads=4)),
}
copy_histories, copy_rows = {}, []
for name, make_model in copy_models.items():
    torch.manual_seed(0)
    model = make_model()
    print(name)
    start = time.perf_counter()
    copy_histories[name] = attnlab.Trainer(
        model, lambda g: copy_task.batch(32, g),
        attnlab.TrainConfig(steps=1500 if FULL_RUN else 300, lr=1e-2, warmup_steps=30, eval_every=0)).fit()
    copy_rows.append({"model": name, "params": sum(p.numel() for p in model.parameters()),
                      "seconds": time.perf_counter() - start,
                      "accuracy": attnlab.task_accuracy(model, copy_task)})
attnlab.print_table(copy_rows, [(tr("model"), "model", "s"), (tr("parameters"), "params", ",d"),
                                (tr("training (s)"), "seconds", ".1f"),
                                (tr("accuracy on 512 new sequences"), "accuracy", ".1%")])
attnlab.plot_loss_curves(copy_histories, title=tr("selective copying"), smooth=10)
plt.show()

# %% throughput-md [markdown]
# **Throughput against length.** The other half of the story is cost. Reading a prompt of length
# $L$ (*prefill*), attention does $O(L^2)$ work and Mamba's scan $O(L)$; generating the next token,
# attention reads a KV cache that grows with $L$, while Mamba updates a fixed-size state. Two
# untrained models of the same width (64, two layers) are timed on a batch of 8 sequences at each
# length (`attnlab.throughput_vs_length`): prefill tokens per second, and milliseconds per new
# token (`attnlab.decode_seconds_per_token`). Then the memory each keeps per sequence to continue.

# %% throughput
lengths = (256, 512, 1024, 2048, 4096, 8192) if FULL_RUN else (128, 256, 512, 1024, 2048)
torch.manual_seed(0)
speed_models = {
    "GPT (attention + KV cache)": attnlab.GPT(attnlab.GPTConfig(
        vocab_size=corpus.vocab_size, context_length=max(lengths) + 8, d_model=64, n_layers=2, n_heads=4,
        pos="rope")),
    "Mamba (fixed-size state)": attnlab.MambaLM(corpus.vocab_size, d_model=64, n_layers=2, d_state=16),
}
speed = attnlab.throughput_vs_length(speed_models, lengths=lengths, batch=8)
speed_rows = []
for i, n in enumerate(lengths):
    row = {"L": n}
    for name, metrics in speed.items():
        short = name.split()[0]
        row[f"{short} prefill"] = metrics["prefill_tokens_per_s"][i]
        row[f"{short} decode"] = metrics["decode_ms_per_token"][i]
    gpt_cfg = speed_models["GPT (attention + KV cache)"].config
    row["KV cache"] = attnlab.kv_cache_bytes(gpt_cfg.n_layers, gpt_cfg.n_kv_heads, gpt_cfg.head_dim, n,
                                             bytes_per_element=4)
    speed_rows.append(row)
mamba_lm = speed_models["Mamba (fixed-size state)"]
state_bytes = sum(s.nbytes for layer_state in mamba_lm.init_state(1) for s in layer_state)
attnlab.print_table(speed_rows, [("L", "L", "d"),
                                 (tr("GPT prefill (tok/s)"), "GPT prefill", ",.0f"),
                                 (tr("Mamba prefill (tok/s)"), "Mamba prefill", ",.0f"),
                                 (tr("GPT decode (ms/tok)"), "GPT decode", ".2f"),
                                 (tr("Mamba decode (ms/tok)"), "Mamba decode", ".2f"),
                                 (tr("GPT KV cache / seq (KiB)"), lambda r: r["KV cache"] / 1024, ",.0f")])
print(tr("Mamba's state per sequence: {kib:.0f} KiB at every length", kib=state_bytes / 1024))
attnlab.plot_throughput(speed, lengths)
plt.show()

# %% throughput-after-md [markdown]
# **Reading it.** The KV-cache column grows linearly with $L$ and Mamba's state does not; that is
# exact. The timings are a CPU with tiny models, where fixed per-call overheads are large, so
# the trends show more clearly towards the long end (and with `FULL_RUN = True`, up to 8192): the
# GPT's prefill rate falls as the quadratic attention term takes over and its per-token decoding
# time rises with the cache it reads, while Mamba's stay roughly flat. On GPUs Gu & Dao report
# about 5× higher generation throughput than a Transformer of the same size. The price is the
# other side of the same coin: a fixed-size state must *choose* what to remember, while
# attention keeps everything — which is why hybrids that mix a few attention layers into a
# Mamba stack are popular.

# %% progress [markdown]
# ## Progress
#
# ✅ Zone 5 done: you trained a GPT and looked inside its heads, tested five positional encodings
# beyond their training length, fitted a scaling law and sized a compute-optimal model, watched a
# Transformer learn regression in context and built the attention layer that is one gradient
# step, and measured the KV cache, FlashAttention's memory and Mamba against attention.

# %% timing
print(tr("this notebook ran in {seconds:.0f} s", seconds=time.perf_counter() - notebook_start))

# %% next [markdown]
# **Next:** [Zone 6 — Review](../06_review/06_review.ipynb): the map of the whole lecture, a
# self-check quiz, and what comes next.
