"""Torch modules (attnlab.nn): attention, grouped heads, positions, norms, MLPs, blocks, errors.

Each module is compared with something computed independently: the NumPy reference
functions of attnlab (functional.py, positional.py), explicit torch formulas, or torch's own
layers with the same weights.
"""

import math

import attnlab
import numpy as np
import pytest
import torch
from attnlab import GPT, Attention, GPTConfig, KVCache, TransformerBlock, TransformerConfig
from attnlab.nn.layers import MLP, apply_rope_torch

POSITIONS = ["learned", "sinusoidal", "rope", "alibi", "none"]


def small_config(**changes) -> GPTConfig:
    fields = {"vocab_size": 37, "context_length": 24, "d_model": 24, "n_layers": 2, "n_heads": 6}
    return GPTConfig(**{**fields, **changes})


def numpy_weights(attn: Attention):
    """The fused qkv/out weights of an Attention as row-vector matrices (x @ W)."""
    d = attn.out.in_features
    w = attn.qkv.weight.detach().double().numpy().T  # (d, d + 2 kv)
    kv = attn.n_kv_heads * attn.head_dim
    return w[:, :d], w[:, d : d + kv], w[:, d + kv :], attn.out.weight.detach().double().numpy().T


@pytest.mark.parametrize("causal", [True, False])
def test_mha_matches_numpy_multi_head_attention(causal):
    torch.manual_seed(0)
    cfg = TransformerConfig(d_model=30, n_heads=5, bias=False, pos="none")
    attn = Attention(cfg, causal=causal).double()
    x = torch.randn(2, 7, 30, dtype=torch.float64)
    out, weights = attn(x, need_weights=True)
    w_q, w_k, w_v, w_o = numpy_weights(attn)
    ref_out, ref_w = attnlab.multi_head_attention(
        x.numpy(), w_q, w_k, w_v, w_o, n_heads=5, causal=causal
    )
    np.testing.assert_allclose(out.detach().numpy(), ref_out, atol=1e-12)
    np.testing.assert_allclose(weights.detach().numpy(), ref_w, atol=1e-12)
    fused, none = attn(x)  # the fast path through F.scaled_dot_product_attention
    assert none is None
    np.testing.assert_allclose(fused.detach().numpy(), ref_out, atol=1e-12)


@pytest.mark.parametrize("n_kv_heads", [1, 2, 3])
def test_grouped_query_attention_equals_mha_with_repeated_kv_heads(n_kv_heads):
    """GQA = MHA whose key/value heads are copies: query head h reads kv head h // group."""
    torch.manual_seed(1)
    cfg = TransformerConfig(d_model=24, n_heads=6, n_kv_heads=n_kv_heads, pos="rope")
    gqa = Attention(cfg).double()
    mha = Attention(cfg.replace(n_kv_heads=6)).double()
    hd, group = cfg.head_dim, 6 // n_kv_heads
    w, b = gqa.qkv.weight.detach(), gqa.qkv.bias.detach()
    kv = n_kv_heads * hd

    def repeat_heads(t):  # (kv, ...) -> (6 * hd, ...), head blocks repeated group times
        return (
            t.reshape(n_kv_heads, hd, *t.shape[1:])
            .repeat_interleave(group, dim=0)
            .reshape(6 * hd, *t.shape[1:])
        )

    with torch.no_grad():
        mha.qkv.weight.copy_(
            torch.cat([w[:24], repeat_heads(w[24 : 24 + kv]), repeat_heads(w[24 + kv :])])
        )
        mha.qkv.bias.copy_(
            torch.cat([b[:24], repeat_heads(b[24 : 24 + kv]), repeat_heads(b[24 + kv :])])
        )
        mha.out.load_state_dict(gqa.out.state_dict())
    x = torch.randn(2, 9, 24, dtype=torch.float64)
    for need_weights in (False, True):
        torch.testing.assert_close(
            gqa(x, need_weights=need_weights)[0], mha(x, need_weights=need_weights)[0]
        )
    # and the fused path agrees with NumPy's grouped_query_attention on the projected heads
    q, k, v = gqa.qkv(x).split([24, kv, kv], dim=-1)
    q = q.view(2, 9, 6, hd).transpose(1, 2)
    k = k.view(2, 9, n_kv_heads, hd).transpose(1, 2)
    v = v.view(2, 9, n_kv_heads, hd).transpose(1, 2)
    pos = np.arange(9)
    q_np, k_np = (
        attnlab.apply_rope(q.detach().numpy(), pos),
        attnlab.apply_rope(k.detach().numpy(), pos),
    )
    heads = attnlab.grouped_query_attention(q_np, k_np, v.detach().numpy(), causal=True)
    ref = heads.transpose(0, 2, 1, 3).reshape(2, 9, 24) @ gqa.out.weight.detach().numpy().T
    ref = ref + gqa.out.bias.detach().numpy()
    np.testing.assert_allclose(gqa(x)[0].detach().numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("causal", [True, False])
def test_fused_path_equals_explicit_weights_path(pos, causal):
    torch.manual_seed(2)
    cfg = TransformerConfig(d_model=32, n_heads=4, n_kv_heads=2, pos=pos)
    attn = Attention(cfg, causal=causal)
    x = torch.randn(3, 11, 32)
    mask = torch.rand(3, 1, 1, 11) > 0.3
    mask[..., 0] = True  # every query keeps at least one key
    for m in (None, mask):
        fused, _ = attn(x, mask=m)
        explicit, weights = attn(x, mask=m, need_weights=True)
        torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
        assert weights.shape == (3, 4, 11, 11)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 11))
        if causal:
            assert (weights.triu(1) == 0).all()
        if m is not None:
            assert (weights.masked_select(~m.expand_as(weights)) == 0).all()


def test_alibi_weights_match_numpy_alibi_bias():
    torch.manual_seed(3)
    cfg = TransformerConfig(d_model=30, n_heads=5, pos="alibi", bias=False)  # 5: not a power of two
    attn = Attention(cfg, causal=True).double()
    x = torch.randn(1, 8, 30, dtype=torch.float64)
    _, weights = attn(x, need_weights=True)
    w_q, w_k, _, _ = numpy_weights(attn)
    q = (x.numpy() @ w_q).reshape(1, 8, 5, 6).transpose(0, 2, 1, 3)
    k = (x.numpy() @ w_k).reshape(1, 8, 5, 6).transpose(0, 2, 1, 3)
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(6) + attnlab.alibi_bias(5, 8)
    scores = np.where(attnlab.causal_mask(8), scores, -np.inf)
    np.testing.assert_allclose(weights.detach().numpy(), attnlab.softmax(scores), atol=1e-12)


def test_apply_rope_torch_matches_numpy_and_is_relative():
    torch.manual_seed(4)
    x = torch.randn(2, 3, 10, 16, dtype=torch.float64)
    positions = torch.arange(5, 15)
    got = apply_rope_torch(x, positions, base=500.0)
    ref = attnlab.apply_rope(x.numpy(), positions.numpy(), base=500.0)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-12)
    # q_m . k_n depends only on m - n: shift both positions by 7
    q, k = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)

    def score(m, n):
        qm = apply_rope_torch(q[None], torch.tensor([m]))[0]
        kn = apply_rope_torch(k[None], torch.tensor([n]))[0]
        return float(qm @ kn)

    assert score(9, 4) == pytest.approx(score(16, 11), abs=1e-12)
    assert score(9, 4) != pytest.approx(score(9, 5), abs=1e-6)


def test_sinusoidal_positions_are_the_numpy_table():
    torch.manual_seed(5)
    model = GPT(small_config(pos="sinusoidal", n_layers=1)).double()
    emb = torch.zeros(1, 24, 24, dtype=torch.float64)
    table = model.pos_emb(emb, start=0)[0]
    np.testing.assert_allclose(
        table.numpy(), attnlab.sinusoidal_positional_encoding(24, 24), atol=1e-7
    )
    np.testing.assert_allclose(model.pos_emb(emb[:, :5], start=10)[0].numpy(), table[10:15].numpy())


@pytest.mark.parametrize("kind", ["gelu", "gelu_tanh", "relu", "swiglu"])
def test_mlp_matches_numpy_formulas(kind):
    torch.manual_seed(6)
    cfg = TransformerConfig(d_model=12, mlp=kind, d_ff=20)
    mlp = MLP(cfg).double()
    x = torch.randn(4, 12, dtype=torch.float64)
    xn = x.numpy()
    up = xn @ mlp.up.weight.detach().numpy().T + mlp.up.bias.detach().numpy()
    down_w, down_b = mlp.down.weight.detach().numpy().T, mlp.down.bias.detach().numpy()
    if kind == "swiglu":
        gate = xn @ mlp.gate.weight.detach().numpy().T + mlp.gate.bias.detach().numpy()
        ref = (attnlab.silu(gate) * up) @ down_w + down_b
    elif kind == "relu":
        ref = np.maximum(up, 0) @ down_w + down_b
    else:
        ref = (
            attnlab.gelu(up, approximate="tanh" if kind == "gelu_tanh" else "none") @ down_w
            + down_b
        )
    np.testing.assert_allclose(mlp(x).detach().numpy(), ref, atol=1e-12)


def test_swiglu_mlp_is_attnlab_swiglu_without_bias():
    torch.manual_seed(7)
    mlp = MLP(TransformerConfig(d_model=12, mlp="swiglu", bias=False)).double()
    assert mlp.up.out_features == round(8 * 12 / 3)  # parameter-matched default width
    x = torch.randn(3, 12, dtype=torch.float64)
    w1, w2, w3 = (m.weight.detach().numpy().T for m in (mlp.gate, mlp.down, mlp.up))
    np.testing.assert_allclose(
        mlp(x).detach().numpy(), attnlab.swiglu(x.numpy(), w1, w2, w3), atol=1e-12
    )


@pytest.mark.parametrize("prenorm", [True, False])
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_block_wiring_pre_and_post_ln(prenorm, norm):
    """The block equals the textbook formulas built from the NumPy norms and its own sub-modules."""
    torch.manual_seed(8)
    cfg = TransformerConfig(d_model=20, n_heads=4, norm=norm, prenorm=prenorm, pos="none")
    block = TransformerBlock(cfg).double()
    with torch.no_grad():  # non-trivial norm parameters
        for p in (block.norm1.weight, block.norm2.weight):
            p.uniform_(0.5, 1.5)
    x = torch.randn(2, 6, 20, dtype=torch.float64)

    def norm_np(module, h):
        g = module.weight.detach().numpy()
        if norm == "layernorm":
            return attnlab.layer_norm(h, g, module.bias.detach().numpy(), eps=cfg.norm_eps)
        return attnlab.rms_norm(h, g, eps=cfg.norm_eps)

    def attn_np(h):
        return block.attn(torch.from_numpy(h))[0].detach().numpy()

    def mlp_np(h):
        return block.mlp(torch.from_numpy(h)).detach().numpy()

    xn = x.numpy()
    if prenorm:
        h = xn + attn_np(norm_np(block.norm1, xn))
        ref = h + mlp_np(norm_np(block.norm2, h))
    else:
        h = norm_np(block.norm1, xn + attn_np(xn))
        ref = norm_np(block.norm2, h + mlp_np(h))
    np.testing.assert_allclose(block(x)[0].detach().numpy(), ref, atol=1e-10)


def test_modern_style_block_has_no_biases_and_rope():
    cfg = GPTConfig.modern_style(vocab_size=11, d_model=16, n_heads=4, n_kv_heads=2)
    model = GPT(cfg)
    assert cfg.norm == "rmsnorm" and cfg.mlp == "swiglu" and cfg.pos == "rope"
    assert not [n for n, _ in model.named_parameters() if n.endswith("bias")]
    assert model.blocks[0].attn.qkv.out_features == 16 + 2 * 2 * 4


def test_dropout_only_in_training_mode():
    torch.manual_seed(9)
    model = GPT(small_config(dropout=0.5))
    x = torch.randint(0, 37, (2, 10))
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


def test_return_weights_per_layer_and_head():
    torch.manual_seed(10)
    model = GPT(small_config(n_layers=3))
    logits, weights = model(torch.randint(0, 37, (2, 9)), return_weights=True)
    assert logits.shape == (2, 9, 37)
    assert len(weights) == 3 and all(w.shape == (2, 6, 9, 9) for w in weights)


def test_tied_weights_and_parameter_count():
    model = GPT(small_config())
    assert model.lm_head.weight is model.tok_emb.weight
    untied = GPT(small_config(tie_weights=False))
    assert untied.num_parameters() == model.num_parameters() + 37 * 24


# ----------------------------------------------------------------------------- KV cache


def test_kv_cache_bytes_and_mha_gqa_ratio():
    for n_kv in (6, 3, 2, 1):
        cache = GPT(small_config(n_kv_heads=n_kv)).new_kv_cache(batch_size=2)
        nbytes = sum(c.nbytes for c in cache)
        # 2 (K, V) * layers * batch * kv heads * positions * head_dim * 4 bytes (float32)
        assert nbytes == 2 * 2 * 2 * n_kv * 24 * 4 * 4
        assert nbytes == attnlab.kv_cache_bytes(2, n_kv, 4, 24, batch=2, bytes_per_element=4)
    mha = sum(c.nbytes for c in GPT(small_config()).new_kv_cache(1))
    gqa = sum(c.nbytes for c in GPT(small_config(n_kv_heads=2)).new_kv_cache(1))
    assert mha / gqa == 6 / 2


def test_kv_cache_append_and_overflow():
    cache = KVCache(1, 2, max_len=4, head_dim=3)
    k = torch.randn(1, 2, 3, 3)
    keys, values = cache.append(k, k + 1)
    assert cache.length == 3 and torch.equal(keys, k) and torch.equal(values, k + 1)
    with pytest.raises(ValueError, match="max_len=4"):
        cache.append(k, k)
    with pytest.raises(ValueError, match="shape"):
        cache.append(torch.randn(1, 3, 1, 3), torch.randn(1, 3, 1, 3))


@pytest.mark.parametrize("pos", POSITIONS)
def test_cached_forward_matches_full_forward(pos):
    """Prefill in two chunks, then single tokens: logits equal the uncached forward's."""
    torch.manual_seed(11)
    model = GPT(small_config(pos=pos, n_kv_heads=3)).eval()
    idx = torch.randint(0, 37, (2, 12))
    full = model(idx)
    cache = model.new_kv_cache(2)
    pieces = [model(idx[:, :5], kv_cache=cache), model(idx[:, 5:9], kv_cache=cache)]
    pieces += [model(idx[:, t : t + 1], kv_cache=cache) for t in range(9, 12)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"d_model": 30, "n_heads": 4}, "n_heads=4 must divide d_model=30"),
        ({"n_heads": 6, "n_kv_heads": 4}, "n_kv_heads=4 must divide n_heads=6"),
        ({"n_heads": 0}, "n_heads must be a positive integer"),
        ({"norm": "batchnorm"}, "norm must be one of"),
        ({"pos": "rotary"}, "pos must be one of"),
        ({"mlp": "tanh"}, "mlp must be one of"),
        ({"d_model": 30, "n_heads": 10, "pos": "rope"}, "head_dim"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_config_errors_name_the_values(changes, message):
    with pytest.raises(ValueError, match=message):
        small_config(**changes)


def test_forward_errors_name_shapes_and_lengths():
    model = GPT(small_config())
    with pytest.raises(ValueError, match=r"sequence length 25 .* context_length=24"):
        model(torch.zeros(1, 25, dtype=torch.long))
    with pytest.raises(ValueError, match=r"idx must have shape \(batch, seq_len\)"):
        model(torch.zeros(25, dtype=torch.long))
    with pytest.raises(TypeError, match="idx must be an integer"):
        model(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="token id 37 outside"):
        model(torch.full((1, 5), 37))
    attn = Attention(TransformerConfig(d_model=24, n_heads=6))
    with pytest.raises(ValueError, match=r"d_model=24\), got \(2, 5, 20\)"):
        attn(torch.randn(2, 5, 20))
    with pytest.raises(ValueError, match=r"positions must have shape \(4,\)"):
        apply_rope_torch(torch.randn(4, 8), torch.arange(5))
    cache = model.new_kv_cache(1)
    model(torch.zeros(1, 20, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match=r"sequence length 25 \(idx has 5 tokens, 20 cached\)"):
        model(torch.zeros(1, 5, dtype=torch.long), kv_cache=cache)


def test_gradients_flow_through_both_attention_paths():
    torch.manual_seed(12)
    cfg = TransformerConfig(d_model=8, n_heads=4, n_kv_heads=2, pos="rope")
    attn = Attention(cfg).double()
    x = torch.randn(1, 3, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: attn(t)[0], (x,))
    assert torch.autograd.gradcheck(lambda t: attn(t, need_weights=True)[0], (x,))
