"""Zone 5's experiments and pictures: each checked against a closed form or an independent computation."""

from __future__ import annotations

import math

import attnlab
import matplotlib
import numpy as np
import pytest
import torch
from attnlab.data import IGNORE

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def corpus():
    return attnlab.stdlib_corpus(max_chars=30_000)


def _tiny_gpt(**changes):
    torch.manual_seed(0)
    fields = dict(vocab_size=96, context_length=64, d_model=16, n_layers=2, n_heads=2)
    return attnlab.GPT(attnlab.GPTConfig(**{**fields, **changes}))


# ============================================================================ attention maps
def test_attention_maps_match_a_hand_computed_first_layer():
    model = _tiny_gpt().eval()
    idx = torch.randint(0, 96, (1, 12), generator=torch.Generator().manual_seed(1))
    maps = attnlab.attention_maps(model, idx)
    assert maps.shape == (2, 2, 12, 12)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-6)
    assert np.all(np.triu(maps, k=1) == 0), "causal: no weight on future keys"
    # layer 0 by hand with torch primitives: embeddings, LayerNorm, fused qkv, causal softmax
    with torch.no_grad():
        block = model.blocks[0]
        x = model.tok_emb(idx) + model.pos_emb.table(torch.arange(12))
        q, k, _ = block.attn.qkv(block.norm1(x)).split(16, dim=-1)
        q, k = (t.view(1, 12, 2, 8).transpose(1, 2) for t in (q, k))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(8)
        scores = scores.masked_fill(torch.ones(12, 12).triu(1).bool(), float("-inf"))
        expected = torch.softmax(scores, dim=-1)[0].numpy()
    np.testing.assert_allclose(maps[0], expected, atol=1e-6)
    with pytest.raises(ValueError, match="idx"):
        attnlab.attention_maps(model, idx[0])


def test_attention_summary_closed_forms():
    n = 10
    identity = attnlab.attention_summary(np.eye(n))
    assert identity == pytest.approx(
        {"max_weight": 1.0, "entropy": 0.0, "distance": 0.0, "previous": 0.0}
    )
    shift = np.eye(n, k=-1)
    shift[0, 0] = 1.0  # the first query has only itself
    previous = attnlab.attention_summary(shift)
    assert previous["previous"] == pytest.approx(1.0)
    assert previous["distance"] == pytest.approx((n - 1) / n)
    uniform = attnlab.causal_mask(n) / np.arange(1, n + 1)[:, None]
    s = attnlab.attention_summary(uniform)
    assert s["distance"] == pytest.approx((n - 1) / 4)  # mean over i of i / 2
    assert s["entropy"] == pytest.approx(np.mean(np.log(np.arange(1, n + 1))))
    assert s["previous"] == pytest.approx(np.mean(1 / np.arange(2, n + 1)))
    with pytest.raises(ValueError, match="square"):
        attnlab.attention_summary(np.ones((3, 4)))


# ============================================================================ positions, scaling
def test_length_extrapolation_runs_every_encoding_on_the_same_windows(corpus):
    result = attnlab.length_extrapolation(
        corpus,
        encodings=("learned", "alibi"),
        train_len=8,
        eval_lens=(8, 16),
        steps=3,
        d_model=8,
        n_heads=2,
        batch_size=4,
        n_windows=3,
        progress=False,
    )
    assert result["eval_lens"] == [8, 16] and result["train_len"] == 8
    for pos in ("learned", "alibi"):
        assert len(result["loss"][pos]) == 2 and np.all(np.isfinite(result["loss"][pos]))
        per_position = result["position_loss"][pos]
        assert per_position.shape == (16,)
        # the longest evaluation uses the same windows as the per-position curve
        assert result["loss"][pos][-1] == pytest.approx(per_position.mean(), rel=1e-5)


def test_non_embedding_parameters_closed_form():
    d, layers = 16, 3
    model = _tiny_gpt(d_model=d, n_layers=layers)
    # GPT-2 block: qkv 3d^2 + 3d, out d^2 + d, MLP 8d^2 + 5d, two LayerNorms 4d -> 12 d^2 + 13 d
    assert attnlab.non_embedding_parameters(model) == layers * (12 * d * d + 13 * d) + 2 * d
    rope = _tiny_gpt(d_model=d, n_layers=layers, pos="rope")  # no position table to exclude
    assert attnlab.non_embedding_parameters(rope) == rope.num_parameters() - 96 * d


def test_model_size_sweep_rows(corpus):
    rows = attnlab.model_size_sweep(
        corpus,
        sizes=((8, 1), (24, 1)),
        steps=2,
        batch_size=2,
        block_size=16,
        eval_batches=1,
        progress=False,
    )
    assert [(r["d_model"], r["n_layers"]) for r in rows] == [(8, 1), (24, 1)]
    for r in rows:
        assert r["tokens"] == 2 * 2 * 16
        assert r["flops"] == pytest.approx(6 * r["non_embedding_params"] * r["tokens"])
        assert r["non_embedding_params"] < r["params"] and np.isfinite(r["val_loss"])
    assert rows[1]["non_embedding_params"] == 12 * 24**2 + 13 * 24 + 2 * 24


# ============================================================================ in-context learning
def test_icl_transformer_ignores_the_order_of_examples():
    torch.manual_seed(0)
    model = attnlab.ICLTransformer(d=3, d_model=16, n_layers=2, n_heads=2).eval()
    rng = np.random.default_rng(0)
    x, y, xq = (
        rng.standard_normal((5, 6, 3)),
        rng.standard_normal((5, 6)),
        rng.standard_normal((5, 3)),
    )
    pred = model.predict(x, y, xq)
    perm = rng.permutation(6)
    np.testing.assert_allclose(model.predict(x[:, perm], y[:, perm], xq), pred, atol=1e-5)
    assert pred.shape == (5,)
    tokens = torch.cat(
        [
            torch.tensor(np.concatenate([x, y[..., None]], -1), dtype=torch.float32),
            torch.tensor(np.concatenate([xq, np.zeros((5, 1))], -1)[:, None], dtype=torch.float32),
        ],
        1,
    )
    with torch.no_grad():
        np.testing.assert_allclose(model(tokens).numpy(), pred, rtol=1e-6)
    with pytest.raises(ValueError, match="tokens"):
        model(tokens[..., :3])


def test_least_squares_predict_against_normal_equations_and_pinv():
    rng = np.random.default_rng(1)
    x, xq = rng.standard_normal((12, 4)), rng.standard_normal((3, 4))
    y = rng.standard_normal(12)
    w = np.linalg.solve(x.T @ x, x.T @ y)
    np.testing.assert_allclose(attnlab.least_squares_predict(x, y, xq), xq @ w, rtol=1e-10)
    x2, y2 = x[:2], y[:2]  # fewer examples than dimensions: the minimum-norm fit
    np.testing.assert_allclose(
        attnlab.least_squares_predict(x2, y2, xq),
        xq @ (np.linalg.pinv(x2) @ y2),
        rtol=1e-8,
        atol=1e-12,
    )


def test_icl_errors_zero_predictor_batched_and_standard_error():
    task = attnlab.LinearRegressionTask(d=3, n_points=6, seed=0)
    tokens, target = task.batch(50)
    t = target.double().numpy()
    zero, sem = attnlab.icl_errors(
        lambda x, y, xq: np.zeros(len(xq)), tokens, target, [1, 6], return_sem=True
    )
    np.testing.assert_allclose(zero, [np.mean(t**2) / 3] * 2, rtol=1e-6)
    np.testing.assert_allclose(sem, [np.std(t**2 / 3) / math.sqrt(50)] * 2, rtol=1e-6)
    one = attnlab.icl_errors(attnlab.least_squares_predict, tokens, target, [2, 5])
    batched = attnlab.icl_errors(
        lambda x, y, xq: np.array(
            [attnlab.least_squares_predict(a, b, c[None])[0] for a, b, c in zip(x, y, xq)]
        ),
        tokens,
        target,
        [2, 5],
        batched=True,
    )
    np.testing.assert_allclose(one, batched, rtol=1e-10)
    assert one[1] < 1e-10  # 5 >= d = 3 noiseless examples determine w
    with pytest.raises(ValueError, match="k=7"):
        attnlab.icl_errors(attnlab.least_squares_predict, tokens, target, [7])


def test_trained_linear_attention_implements_a_gradient_step():
    """von Oswald et al. 2023: trained from random weights, one linear self-attention layer
    predicts like one gradient step with the best step size k / (k + d + 1)."""
    task = attnlab.LinearRegressionTask(d=3, n_points=12, seed=0)
    weights, history = attnlab.train_linear_self_attention(
        task, steps=300, batch_size=128, progress=False
    )
    assert set(weights) == {"w_q", "w_k", "w_v", "w_o"} and weights["w_q"].shape == (4, 4)
    assert history["loss"][-1] < history["loss"][0]
    tokens, _ = task.batch(300, torch.Generator().manual_seed(9))
    tokens = tokens.double().numpy()
    trained = attnlab.linear_self_attention(tokens, **weights)[:, -1, -1]
    gd = np.array(
        [
            attnlab.gd_step_linear_attention(t[:12, :3], t[:12, 3], t[12:, :3], 12 / 16)[0]
            for t in tokens
        ]
    )
    assert np.corrcoef(trained, gd)[0, 1] > 0.99


def test_train_icl_transformer_beats_predicting_zero():
    task = attnlab.LinearRegressionTask(d=2, n_points=6, seed=0)
    model, history = attnlab.train_icl_transformer(
        task, steps=150, batch_size=64, d_model=16, n_heads=2, progress=False
    )
    assert isinstance(model, attnlab.ICLTransformer) and len(history["loss"]) == 150
    tokens, target = task.batch(400, torch.Generator().manual_seed(3))
    trained = attnlab.icl_errors(model.predict, tokens, target, [6], batched=True)[0]
    zero = attnlab.icl_errors(lambda x, y, xq: np.zeros(len(xq)), tokens, target, [6])[0]
    assert trained < 0.7 * zero


# ============================================================================ KV cache, FlashAttention
def test_kv_cache_speedup_rows():
    model = _tiny_gpt()
    rows = attnlab.kv_cache_speedup(
        model, torch.tensor([[1, 2, 3]]), new_tokens=(4, 8), repeats=1, progress=False
    )
    assert [r["new_tokens"] for r in rows] == [4, 8]
    for r in rows:
        assert r["same"] is True
        assert r["speedup"] == pytest.approx(r["seconds_uncached"] / r["seconds_cached"])


def test_kv_cache_memory_measured_equals_formula():
    config = attnlab.GPTConfig(vocab_size=50, context_length=16, d_model=32, n_layers=3, n_heads=8)
    rows = attnlab.kv_cache_memory(config, seq_len=40, batch=2)
    assert [(r["kind"], r["n_kv_heads"]) for r in rows] == [("MHA", 8), ("GQA", 2), ("MQA", 1)]
    for r in rows:
        expected = (
            2 * 3 * r["n_kv_heads"] * 4 * 40 * 2 * 4
        )  # K and V, layers, heads, head_dim, T, batch, fp32
        assert r["measured_bytes"] == r["formula_bytes"] == expected
        # qkv: d x (d + 2 H_kv hd) + biases; out: d x d + d
        assert (
            r["attention_params_per_layer"]
            == 32 * (32 + 8 * r["n_kv_heads"]) + 32 + 8 * r["n_kv_heads"] + 32 * 33
        )


def test_attention_cost_vs_length_standard_holds_the_matrix_tiled_does_not():
    rows = attnlab.attention_cost_vs_length(
        (64, 256), d=16, block_size=32, repeats=1, progress=False
    )
    assert [r["n"] for r in rows] == [64, 256]
    big = rows[1]
    assert big["max_abs_diff"] < 1e-12
    assert big["peak_bytes_standard"] >= 256 * 256 * 8  # at least one N x N float64 matrix
    assert big["peak_bytes_tiled"] < 256 * 256 * 8 / 4
    assert big["seconds_standard"] > 0 and big["seconds_tiled"] > 0


# ============================================================================ Mamba vs attention
def test_task_accuracy_of_a_constant_model():
    task = attnlab.SelectiveCopyTask(n_memorize=2, region_len=6, n_symbols=4, seed=0)

    class AlwaysThree(torch.nn.Module):
        def forward(self, x):
            logits = torch.zeros(*x.shape, task.vocab_size)
            logits[..., 3] = 1.0
            return logits

    _, y = task.batch(64, torch.Generator().manual_seed(5))
    expected = float((y[y != IGNORE] == 3).float().mean())
    assert attnlab.task_accuracy(AlwaysThree(), task, n_eval=64, seed=5) == pytest.approx(expected)


def test_throughput_and_decoding_for_gpt_and_mamba():
    models = {
        "gpt": _tiny_gpt(context_length=48),
        "mamba": attnlab.MambaLM(96, d_model=16, n_layers=1),
    }
    result = attnlab.throughput_vs_length(
        models, lengths=(8, 32), batch=2, repeats=1, progress=False
    )
    for name in models:
        for key in ("prefill_tokens_per_s", "decode_ms_per_token"):
            values = result[name][key]
            assert len(values) == 2 and all(v > 0 and math.isfinite(v) for v in values)
    with pytest.raises(ValueError, match="context_len"):
        attnlab.decode_seconds_per_token(models["gpt"], 0)


# ============================================================================ pictures and tables
def test_print_table_aligns_columns(capsys):
    attnlab.print_table(
        [{"a": 1, "b": 2.5}, {"a": 1000, "b": 0.25}],
        [("a", "a", ",d"), ("twice b", lambda r: 2 * r["b"], ".2f")],
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["a", "twice", "b"]
    assert lines[2].split() == ["1", "5.00"] and lines[3].split() == ["1,000", "0.50"]
    assert len({len(line) for line in lines}) == 1


def test_pictures_draw(capsys):
    import matplotlib.pyplot as plt

    maps = np.stack([np.stack([attnlab.causal_mask(6) / np.arange(1, 7)[:, None]] * 2)] * 2)
    assert attnlab.attention_explorer(maps, "abc de", layer=2, head=1, describe=True) is None
    assert "layer 2, head 1: mean max weight" in capsys.readouterr().out  # static: drawn once
    history = {"step": [1, 2, 3], "loss": [3.0, 2.0, 1.0]}
    grid = attnlab.plot_attention_grid(maps, describe=True)
    assert [ax.get_title() for ax in grid.axes][:2] == ["L1 H1: back 1.2", "L1 H2: back 1.2"]
    figures = [
        grid,
        attnlab.plot_loss_curves({"rope": history}, smooth=2),
        attnlab.plot_extrapolation(
            {
                "eval_lens": [4, 8],
                "train_len": 4,
                "loss": {"none": [1.0, 1.1]},
                "position_loss": {"none": np.ones(8)},
            }
        ),
        attnlab.plot_scaling([10, 100], [2.0, 1.5], fit=(3.0, 0.1)),
        attnlab.plot_icl_errors([1, 2], {"a": [0.5, 0.4], "theory": [0.6, 0.5]}),
        attnlab.plot_lsa_weights({"m": np.eye(3)}),
        attnlab.plot_kv_speedup(
            [{"new_tokens": 4, "seconds_cached": 1.0, "seconds_uncached": 2.0, "speedup": 2.0}]
        ),
        attnlab.plot_attention_cost(
            [
                {
                    "n": 8,
                    "seconds_standard": 1.0,
                    "seconds_tiled": 1.0,
                    "peak_bytes_standard": 10,
                    "peak_bytes_tiled": 5,
                }
            ]
        ),
        attnlab.plot_throughput(
            {"x": {"prefill_tokens_per_s": [1.0, 2.0], "decode_ms_per_token": [1.0, 1.0]}}, [4, 8]
        ),
    ]
    assert all(isinstance(f, plt.Figure) for f in figures)
    plt.close("all")
