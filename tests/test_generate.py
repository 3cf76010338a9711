"""GPT.generate: the KV cache changes the speed, never the tokens."""

import pytest
import torch
from attnlab import GPT, GPTConfig
from attnlab.nn.gpt import sample_next_token

ATTENTION_KINDS = {"MHA": 6, "GQA": 2, "MQA": 1}


def tiny_gpt(seed=0, **changes) -> GPT:
    torch.manual_seed(seed)
    fields = {"vocab_size": 41, "context_length": 40, "d_model": 36, "n_layers": 3, "n_heads": 6}
    return GPT(GPTConfig(**{**fields, **changes})).eval()


def greedy_by_hand(model, idx, n):
    """Greedy decoding written out directly: argmax of the full forward's last logits."""
    with torch.no_grad():
        for _ in range(n):
            idx = torch.cat([idx, model(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
@pytest.mark.parametrize("pos", ["rope", "learned", "alibi", "sinusoidal"])
def test_greedy_generation_identical_with_and_without_cache(kind, pos):
    model = tiny_gpt(n_kv_heads=ATTENTION_KINDS[kind], pos=pos)
    prompt = torch.randint(0, 41, (2, 6))
    cached = model.generate(prompt, 30, temperature=0, use_cache=True)
    uncached = model.generate(prompt, 30, temperature=0, use_cache=False)
    assert cached.shape == (2, 36)
    assert torch.equal(cached[:, :6], prompt)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached, greedy_by_hand(model, prompt, 30))


def test_modern_style_greedy_generation_with_cache():
    model = tiny_gpt(
        seed=3,
        **{
            k: v
            for k, v in vars(GPTConfig.modern_style()).items()
            if k in ("norm", "mlp", "pos", "bias")
        },
        n_kv_heads=2,
    )
    prompt = torch.randint(0, 41, (1, 4))
    assert torch.equal(
        model.generate(prompt, 25, top_k=1), model.generate(prompt, 25, top_k=1, use_cache=False)
    )


def test_sampling_is_reproducible_and_cache_independent():
    model = tiny_gpt(seed=1, n_kv_heads=2, pos="rope")
    prompt = torch.randint(0, 41, (3, 5))
    torch.manual_seed(123)
    a = model.generate(prompt, 20, temperature=0.8, top_k=5)
    torch.manual_seed(123)
    b = model.generate(prompt, 20, temperature=0.8, top_k=5, use_cache=False)
    assert torch.equal(a, b)


def test_top_k_keeps_only_the_k_largest():
    torch.manual_seed(2)
    logits = torch.randn(4, 30)
    allowed = logits.topk(3, dim=-1).indices
    for _ in range(50):
        picked = sample_next_token(logits, temperature=1.5, top_k=3)
        assert (picked == allowed).any(dim=-1).all()
    assert torch.equal(sample_next_token(logits, temperature=0), logits.argmax(-1, keepdim=True))


def test_low_temperature_approaches_greedy():
    torch.manual_seed(4)
    logits = torch.randn(200, 10)
    picked = sample_next_token(logits, temperature=1e-3)
    assert torch.equal(picked, logits.argmax(-1, keepdim=True))


def test_generation_beyond_context_is_a_clear_error():
    model = tiny_gpt()
    prompt = torch.zeros(1, 30, dtype=torch.long)
    with pytest.raises(
        ValueError, match=r"prompt length 30 \+ max_new_tokens=11 = 41 exceeds context_length=40"
    ):
        model.generate(prompt, 11)
    assert model.generate(prompt, 10, temperature=0).shape == (1, 40)  # exactly the context is fine


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_new_tokens": -1}, "max_new_tokens must be a non-negative integer"),
        ({"max_new_tokens": 3, "temperature": -1.0}, "temperature must be >= 0"),
        ({"max_new_tokens": 3, "top_k": 0}, "top_k must be a positive integer"),
    ],
)
def test_generate_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_gpt().generate(torch.zeros(1, 3, dtype=torch.long), **kwargs)


def test_generate_restores_training_mode_and_zero_tokens():
    model = tiny_gpt().train()
    prompt = torch.randint(0, 41, (2, 3))
    assert torch.equal(model.generate(prompt, 0), prompt)
    assert model.training
