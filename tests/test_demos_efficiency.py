"""Zone 3b's demos and explorers (attnlab.demos.efficiency, kv_cache, kv_compression;
attnlab.plots.masks, efficiency) against independent computations: torch attention,
breadth-first search, transformers' configs and caches."""

from __future__ import annotations

import math
from collections import deque

import attnlab
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------- message passing
@pytest.mark.parametrize("pattern", ["local", "bigbird", "fixed"])
@pytest.mark.parametrize("causal", [False, True])
def test_message_passing_equals_torch_masked_attention(pattern, causal):
    rng = np.random.default_rng(0)
    n = 17
    q, k, v = rng.standard_normal((n, 8)), rng.standard_normal((n, 8)), rng.standard_normal((n, 5))
    edges = attnlab.sparse_mask(n, pattern, window=2, n_global=1, n_random=2, causal=causal)
    got = attnlab.message_passing_attention(q, k, v, edges)
    ref = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(a) for a in (q, k, v)), attn_mask=torch.tensor(edges)
    ).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_message_passing_node_without_neighbours_gets_zero():
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((4, 3)) for _ in range(3))
    edges = np.ones((4, 4), dtype=bool)
    edges[2] = False
    out = attnlab.message_passing_attention(q, k, v, edges)
    assert np.all(out[2] == 0)
    with pytest.raises(ValueError, match="edges"):
        attnlab.message_passing_attention(q, k, v, np.ones((3, 3), dtype=bool))


# ---------------------------------------------------------------- graph hops
def _bfs_hops(mask):
    """Independent: all-pairs shortest paths by breadth-first search (edges j -> i, self loops free)."""
    n = mask.shape[0]
    worst = 0
    for source in range(n):
        dist = {source: 0}
        queue = deque([source])
        while queue:
            j = queue.popleft()
            for i in np.flatnonzero(mask[:, j]):
                if i not in dist:
                    dist[i] = dist[j] + 1
                    queue.append(i)
        causal = not np.any(np.triu(mask, k=1))
        targets = range(source, n) if causal else range(n)
        for t in targets:
            if t not in dist:
                return math.inf
            worst = max(worst, dist[t])
    return max(worst, 1)


@pytest.mark.parametrize(
    "mask",
    [
        np.ones((10, 10), dtype=bool),
        attnlab.causal_mask(9),
        attnlab.sparse_mask(20, "local", window=2),
        attnlab.sparse_mask(20, "local", window=1, causal=True),
        attnlab.sparse_mask(24, "bigbird", window=1, n_random=2, seed=3),
        attnlab.sparse_mask(16, "strided", stride=4),
        attnlab.sparse_mask(16, "fixed", n_global=1) | np.eye(16, dtype=bool),
        attnlab.sparse_mask(30, "random", n_random=2, seed=4) | np.eye(30, dtype=bool),
    ],
    ids=["full", "causal", "local", "local-causal", "bigbird", "strided", "fixed", "random"],
)
def test_graph_hops_equals_breadth_first_search(mask):
    assert attnlab.graph_hops(mask) == _bfs_hops(mask)


def test_graph_hops_closed_forms():
    assert attnlab.graph_hops(np.ones((8, 8), dtype=bool)) == 1
    for n, w in [(20, 2), (33, 4)]:  # a band needs ceil((n-1)/w) layers end to end
        assert attnlab.graph_hops(attnlab.sparse_mask(n, "local", window=w)) == math.ceil(
            (n - 1) / w
        )
    assert attnlab.graph_hops(attnlab.sparse_mask(12, "strided", stride=3)) == math.inf


# ---------------------------------------------------------------- FlashAttention memory
def test_tiled_attention_peak_memory_is_far_below_standard():
    small, large = (
        attnlab.attention_peak_memory(512, d=16),
        attnlab.attention_peak_memory(1024, d=16),
    )
    for mem in (small, large):
        assert mem["max_abs_diff"] < 1e-12
        assert mem["standard_bytes"] >= mem["scores_bytes"]  # at least one (n, n) matrix
        assert mem["flash_bytes"] < mem["scores_bytes"] / 2
    assert large["flash_bytes"] < large["scores_bytes"] / 10
    assert large["standard_bytes"] / small["standard_bytes"] > 3.0  # ~4x: quadratic
    assert large["flash_bytes"] / small["flash_bytes"] < 2.5  # ~2x: linear


# ---------------------------------------------------------------- Performer
def test_performer_error_falls_with_m():
    curve = attnlab.performer_error_curve(n=32, d=8, ms=(4, 64, 1024), n_seeds=3)
    for name in ("iid", "orthogonal"):
        assert curve[name][-1] < curve[name][0] / 3
        assert curve[f"{name}_slope"] < -0.2


# ---------------------------------------------------------------- linear vs quadratic timing
def test_time_linear_vs_quadratic_rows():
    rows = attnlab.time_linear_vs_quadratic(ns=(32, 64), d=8, repeats=1)
    assert [r["n"] for r in rows] == [32, 64]
    for r in rows:
        assert r["quadratic_s"] > 0 and r["linear_s"] > 0
        assert r["ratio"] == pytest.approx(r["quadratic_s"] / r["linear_s"])


# ---------------------------------------------------------------- Mamba
def test_mamba_inputs_numpy_scan_matches_block_and_is_local_in_the_input():
    tokens = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    s = attnlab.mamba_selective_inputs(tokens, d_model=8, d_state=4)
    assert s["delta"].shape == (1, 16, 12) and s["B"].shape == (1, 4, 12)
    y = attnlab.selective_scan(s["u"], s["delta"], s["A"], s["B"], s["C"], s["D"])
    np.testing.assert_allclose(y, s["torch_out"], atol=1e-12)
    changed = tokens.copy()
    changed[5] = 0
    s2 = attnlab.mamba_selective_inputs(changed, d_model=8, d_state=4)
    moved = np.flatnonzero(np.abs(s2["delta"] - s["delta"]).max(axis=(0, 1)) > 1e-12)
    assert moved.tolist() == [5, 6, 7, 8]  # the causal conv of width 4
    with pytest.raises(ValueError, match="tokens"):
        attnlab.mamba_selective_inputs(np.array([0, 99]))


# ---------------------------------------------------------------- KV cache
def test_kv_model_shapes_match_transformers_configs():
    transformers = pytest.importorskip(
        "transformers", reason="the models extra checks the cited shapes"
    )
    configs = {
        "GPT-2 small": transformers.GPT2Config(),
        "Llama-2-7B": transformers.LlamaConfig(),
        "Mistral-7B": transformers.MistralConfig(),
        "Falcon-7B": transformers.FalconConfig(),
    }
    for name, cfg in configs.items():
        shape = attnlab.KV_MODEL_SHAPES[name]
        n_heads = cfg.num_attention_heads
        assert shape["n_layers"] == cfg.num_hidden_layers, name
        assert shape["n_heads"] == n_heads, name
        assert shape["head_dim"] == cfg.hidden_size // n_heads, name
        n_kv = getattr(cfg, "num_key_value_heads", None) or n_heads
        if getattr(cfg, "multi_query", False):
            n_kv = 1
        assert shape["n_kv_heads"] == n_kv, name
        assert shape["sliding_window"] == getattr(cfg, "sliding_window", None), name
        # the defaults of LlamaConfig (2048, LLaMA-1's) and MistralConfig (131072) are not the
        # published contexts of Llama-2-7B (4096) and Mistral-7B-v0.1 (32768)
        if name in ("GPT-2 small", "Falcon-7B"):
            context = getattr(cfg, "max_position_embeddings", None) or getattr(
                cfg, "n_positions", None
            )
            assert shape["context_length"] == context, name


def test_kv_cache_table_rows():
    rows = {r["name"]: r for r in attnlab.kv_cache_table(seq_lens=(1024,), batch=2)}
    gpt2 = rows["GPT-2 small"]
    assert gpt2["kind"] == "MHA"
    # by hand: K and V, 12 layers, 12 heads of 64, 1024 tokens, batch 2, fp16
    assert gpt2["bytes_at_1024"] == 2 * 12 * 12 * 64 * 1024 * 2 * 2
    assert rows["Mistral-7B"]["kind"] == "GQA" and rows["Falcon-7B"]["kind"] == "MQA"
    assert rows["Mistral-7B"]["mha_bytes_at_1024"] == 4 * rows["Mistral-7B"]["bytes_at_1024"]
    # a sliding window caps what is kept; without one every token is kept
    long = {r["name"]: r for r in attnlab.kv_cache_table(seq_lens=(32768,))}
    assert (
        long["Mistral-7B"]["kept_bytes_at_32768"]
        == long["Mistral-7B"]["bytes_at_32768"] * 4096 // 32768
    )
    assert long["Llama-3.1-8B"]["kept_bytes_at_32768"] == long["Llama-3.1-8B"]["bytes_at_32768"]


def test_kv_cache_bytes_equals_a_real_hugging_face_cache():
    pytest.importorskip("transformers", reason="needs transformers to build a tiny Mistral")
    for shape in [
        {"n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "head_dim": 8, "seq_len": 5, "batch": 3},
        {"n_layers": 1, "n_heads": 4, "n_kv_heads": 1, "head_dim": 16, "seq_len": 7, "batch": 1},
    ]:
        measured = attnlab.hf_kv_cache_bytes(**shape)
        expected = attnlab.kv_cache_bytes(
            shape["n_layers"],
            shape["n_kv_heads"],
            shape["head_dim"],
            shape["seq_len"],
            shape["batch"],
            bytes_per_element=4,
        )
        assert measured == expected


# ---------------------------------------------------------------- the map
def test_efficiency_map_numbers():
    n, d = 256, 16
    rows = {
        r["method"]: r
        for r in attnlab.efficiency_map(n=n, d=d, window=8, m=32, n_graph=64, graph_window=4)
    }
    assert rows["full softmax"]["cost"] == 2 * n * n * d
    local = attnlab.sparse_mask(n, "local", window=8)
    assert rows["local window 8"]["train_memory"] == int(local.sum())
    strided = attnlab.sparse_mask(n, "strided", stride=16)
    assert rows["local + strided 16"]["train_memory"] == int(local.sum() + strided.sum())
    assert rows["full softmax"]["hops"] == 1
    assert rows["local window 8"]["hops"] == math.ceil(63 / 4)
    assert rows["BigBird"]["hops"] == 2
    assert rows["linear (elu+1)"]["decode_state"] < rows["full softmax"]["decode_state"]


# ---------------------------------------------------------------- widgets
def test_draw_mask_counts_a_sparse_pattern_both_ways(capsys, monkeypatch):
    monkeypatch.setenv("ATTNLAB_STATIC", "1")
    attnlab.draw_mask("bigbird", n=20, window=1, causal=True)
    text = capsys.readouterr().out
    counted = int(attnlab.sparse_mask(20, "bigbird", window=1, causal=True).sum())
    assert f"{counted} (query, key) pairs computed (closed form {counted}) of 210" in text
    assert attnlab.mask_explorer(n=16, pattern="bigbird", causal=False) is None  # static: once
    assert "pattern='bigbird', causal=False, n=16" in capsys.readouterr().out
    with pytest.raises(ValueError, match="pattern"):
        attnlab.mask_explorer(pattern="diagonal")


def test_plots_draw():
    assert attnlab.plot_sparse_patterns(n=16).axes
    assert attnlab.plot_hbm_traffic([128, 256], d=16, sram_bytes=4096).axes
    curve = {
        "m": np.array([4, 16]),
        "iid": np.array([1.0, 0.5]),
        "orthogonal": np.array([0.9, 0.4]),
    }
    assert attnlab.plot_performer_error(curve).axes
    rng = np.random.default_rng(0)
    assert attnlab.plot_selective_params(
        rng.random((1, 4, 6)), rng.random((1, 3, 6)), rng.random((1, 3, 6)), tokens=list(range(6))
    ).axes
    rows = attnlab.efficiency_map(n=64, d=8, window=4, m=8, n_graph=32, graph_window=2)
    assert attnlab.plot_efficiency_map(rows).axes


# ---------------------------------------------------------------- KV-cache compression demo
def test_kv_compression_errors_vanish_without_compression():
    model, corpus, history = attnlab.train_tiny_char_gpt(
        steps=3, d_model=16, n_heads=4, context_length=32, batch_size=2, progress=False
    )
    assert len(history["loss"]) == 3
    assert torch.get_num_threads() >= 1
    # keeping every head and every cached position must reproduce the model exactly
    result = attnlab.kv_compression_errors(
        model, corpus, n_groups=4, prune_fractions=(0.0,), n_sequences=2
    )
    assert len(result["grouping"]) == model.config.n_layers
    for g in result["grouping"]:
        assert g["uniform"] < 1e-12 and g["similarity"] < 1e-12
    for p in result["pruning"]:
        assert max(p["expected_attention"], p["recency"], p["random"]) < 1e-12
    # with real compression: similarity groups never average worse than consecutive ones
    result = attnlab.kv_compression_errors(
        model, corpus, n_groups=2, prune_fractions=(0.5,), n_sequences=2
    )
    for g in result["grouping"]:
        assert g["similarity_cost"] <= g["uniform_cost"] + 1e-9
        assert g["uniform"] > 0
    assert all(p["random"] > 0 for p in result["pruning"])
