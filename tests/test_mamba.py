"""Mamba in torch: the scans (attnlab.mamba_scan), MambaBlock vs transformers' MambaMixer and
MambaLM (attnlab.mamba).

Independent references: transformers' MambaMixer / MambaForCausalLM (slow torch path) with
the same weights, its mamba_selective_scan, and attnlab's NumPy selective_scan in float64.
"""

from __future__ import annotations

import attnlab
import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is a dev extra")
from transformers import MambaConfig, MambaForCausalLM
from transformers.models.mamba.modeling_mamba import MambaMixer, mamba_selective_scan

transformers.logging.set_verbosity_error()


def _scan_inputs(batch=2, d_inner=6, d_state=4, L=37, delta_scale=1.0, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, d_inner, L, generator=g)
    delta = delta_scale * torch.nn.functional.softplus(
        torch.randn(batch, d_inner, L, generator=g) - 1
    )
    A = -torch.exp(torch.randn(d_inner, d_state, generator=g))
    B = torch.randn(batch, d_state, L, generator=g)
    C = torch.randn(batch, d_state, L, generator=g)
    D = torch.randn(d_inner, generator=g)
    return [t.to(dtype) for t in (u, delta, A, B, C, D)]


# ----------------------------------------------------------------------------- scans
@pytest.mark.parametrize("chunk_size", [1, 5, 16, 64])
@pytest.mark.parametrize("delta_scale", [1.0, 30.0])
def test_parallel_scan_equals_sequential_float32(chunk_size, delta_scale):
    # delta_scale=30 makes the decays span more than float32 can hold in one chunk: split path
    args = _scan_inputs(delta_scale=delta_scale)
    seq = attnlab.selective_scan_torch(*args, mode="sequential")
    par = attnlab.selective_scan_torch(*args, mode="parallel", chunk_size=chunk_size)
    assert torch.isfinite(par).all()
    torch.testing.assert_close(par, seq, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_torch_scan_matches_numpy_reference_and_transformers(mode):
    args = _scan_inputs(dtype=torch.float64, seed=1)
    ours = attnlab.selective_scan_torch(*args, mode=mode)
    numpy_ref = attnlab.selective_scan(*(t.numpy() for t in args))
    np.testing.assert_allclose(ours.numpy(), numpy_ref, rtol=1e-10, atol=1e-10)
    hf = mamba_selective_scan(*[t.float() for t in args[:5]], D=args[5].float())
    torch.testing.assert_close(ours.float(), hf, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_scan_continues_from_a_state(mode):
    u, delta, A, B, C, D = _scan_inputs()
    full, h_full = attnlab.selective_scan_torch(
        u, delta, A, B, C, D, mode=mode, return_last_state=True
    )
    first, h = attnlab.selective_scan_torch(
        u[..., :20],
        delta[..., :20],
        A,
        B[..., :20],
        C[..., :20],
        D,
        mode=mode,
        return_last_state=True,
    )
    rest, h_end = attnlab.selective_scan_torch(
        u[..., 20:],
        delta[..., 20:],
        A,
        B[..., 20:],
        C[..., 20:],
        D,
        mode=mode,
        initial_state=h,
        return_last_state=True,
    )
    torch.testing.assert_close(torch.cat([first, rest], -1), full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h_end, h_full, rtol=1e-5, atol=1e-5)


def test_parallel_scan_gradients_match_sequential():
    args = _scan_inputs(L=12, dtype=torch.float64, seed=2)
    grads = []
    for mode in ("sequential", "parallel"):
        leaves = [t.clone().requires_grad_(True) for t in args]
        attnlab.selective_scan_torch(*leaves, mode=mode, chunk_size=5).square().sum().backward()
        grads.append([t.grad for t in leaves])
    for g_seq, g_par in zip(*grads):
        torch.testing.assert_close(g_par, g_seq)


@pytest.mark.parametrize(
    "index, value, match",
    [
        (2, lambda A: A.abs(), "A must be strictly negative"),
        (2, lambda A: A[:3], r"A must have shape \(d_inner=6, d_state\)"),
        (1, lambda d: d[..., :-1], "delta must have the shape of u"),
        (3, lambda B: B[:, :2], r"B must have shape \(batch, d_state, L\)"),
        (4, lambda C: C[:1], r"C must have shape \(batch, d_state, L\)"),
        (5, lambda D: D[:2], r"D must have shape \(d_inner,\)"),
    ],
)
def test_scan_errors_name_the_argument(index, value, match):
    args = _scan_inputs()
    args[index] = value(args[index])
    with pytest.raises(ValueError, match=match):
        attnlab.selective_scan_torch(*args)


def test_scan_mode_errors():
    args = _scan_inputs()
    with pytest.raises(ValueError, match="mode must be one of"):
        attnlab.selective_scan_torch(*args, mode="blelloch")
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        attnlab.selective_scan_torch(*args, chunk_size=0)
    with pytest.raises(ValueError, match="initial_state must have shape"):
        attnlab.selective_scan_torch(*args, initial_state=torch.zeros(2, 6, 5))


# ----------------------------------------------------------------------------- block vs HF
def _random_config(seed, use_bias, use_conv_bias, **extra):
    rng = np.random.default_rng(seed)
    hidden = int(rng.integers(8, 33))
    return MambaConfig(
        hidden_size=hidden,
        intermediate_size=int(rng.integers(hidden, 3 * hidden)),
        state_size=int(rng.integers(2, 9)),
        conv_kernel=int(rng.integers(2, 5)),
        time_step_rank=int(rng.integers(1, 9)),
        use_bias=use_bias,
        use_conv_bias=use_conv_bias,
        vocab_size=40,
        num_hidden_layers=2,
        **extra,
    )


def _perturb(module, seed):
    """Random weights everywhere (so that biases, D and dt matter), A_log kept real."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return module


@pytest.mark.parametrize(
    "seed, use_bias, use_conv_bias",
    [(0, False, True), (1, True, False), (2, True, True), (3, False, False)],
)
def test_block_from_hf_matches_mamba_mixer(seed, use_bias, use_conv_bias):
    torch.manual_seed(seed)
    mixer = _perturb(
        MambaMixer(_random_config(seed, use_bias, use_conv_bias), layer_idx=0), seed
    ).eval()
    block = attnlab.MambaBlock.from_hf(mixer)
    assert (block.in_proj.bias is not None) == use_bias and (
        block.conv1d.bias is not None
    ) == use_conv_bias
    x = torch.randn(2, 29, mixer.hidden_size)
    with torch.no_grad():
        expected = mixer(x)
        for mode in ("sequential", "parallel"):
            torch.testing.assert_close(block(x, scan_mode=mode), expected, rtol=1e-5, atol=1e-5)


def test_block_step_by_step_equals_forward():
    torch.manual_seed(4)
    mixer = _perturb(MambaMixer(_random_config(4, True, True), layer_idx=0), 4).eval()
    block = attnlab.MambaBlock.from_hf(mixer)
    x = torch.randn(3, 25, mixer.hidden_size)
    with torch.no_grad():
        full = block(x)
        prefix, state = block(x[:, :10], return_state=True)  # prefill, then one token at a time
        outs = [prefix]
        for t in range(10, 25):
            y, state = block.step(x[:, t], state)
            outs.append(y[:, None])
        torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-5, atol=1e-5)
        state = block.init_state(3)  # and from an empty state
        steps = []
        for t in range(25):
            y, state = block.step(x[:, t], state)
            steps.append(y)
        torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-5, atol=1e-5)


def test_block_backward_and_errors():
    block = attnlab.MambaBlock(16, d_state=4)
    x = torch.randn(2, 9, 16, requires_grad=True)
    block(x).sum().backward()
    assert x.grad is not None and block.A_log.grad is not None
    with pytest.raises(ValueError, match=r"hidden_states must have shape \(batch, L, d_model=16\)"):
        block(torch.randn(2, 9, 15))
    with pytest.raises(ValueError, match="d_state must be a positive integer"):
        attnlab.MambaBlock(16, d_state=0)


# ----------------------------------------------------------------------------- language model
@pytest.fixture(scope="module")
def hf_and_ours():
    torch.manual_seed(5)
    hf = _perturb(MambaForCausalLM(_random_config(5, False, True)), 5).eval()
    return hf, attnlab.MambaLM.from_hf(hf).eval()


def test_lm_from_hf_matches_logits(hf_and_ours):
    hf, lm = hf_and_ours
    idx = torch.randint(0, 40, (2, 21))
    with torch.no_grad():
        torch.testing.assert_close(lm(idx), hf(idx).logits, rtol=1e-4, atol=1e-4)


def test_lm_recurrent_inference_equals_full_forward(hf_and_ours):
    _, lm = hf_and_ours
    idx = torch.randint(0, 40, (2, 18))
    with torch.no_grad():
        full = lm(idx)
        states = lm.init_state(2)
        steps = []
        for t in range(18):
            logits, states = lm.step(idx[:, t], states)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-5, atol=1e-5)


def test_lm_generate_with_state_equals_without_and_hf(hf_and_ours):
    hf, lm = hf_and_ours
    prompt = torch.randint(0, 40, (2, 6))
    with_state = lm.generate(prompt, 12, temperature=0)
    without = lm.generate(prompt, 12, temperature=0, use_state=False)
    torch.testing.assert_close(with_state, without)
    torch.testing.assert_close(with_state, hf.generate(prompt, max_new_tokens=12, do_sample=False))
    torch.manual_seed(0)
    sampled = lm.generate(prompt, 5, temperature=0.8, top_k=5)
    assert sampled.shape == (2, 11) and torch.equal(sampled[:, :6], prompt)


def test_lm_trains_and_errors():
    torch.manual_seed(0)
    lm = attnlab.MambaLM(12, d_model=16, n_layers=1, d_state=4)
    idx = torch.randint(0, 12, (4, 10))
    loss = attnlab.next_token_loss(lm, (idx[:, :-1], idx[:, 1:]))
    loss.backward()
    assert torch.isfinite(loss) and lm.embeddings.weight.grad is not None
    with pytest.raises(ValueError, match=r"idx must be a \(batch, L\) long tensor"):
        lm(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="max_new_tokens must be a non-negative integer"):
        lm.generate(idx, -1)
