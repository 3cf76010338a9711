"""Zone 4 helpers (attnlab.demos.kv_cache, selective_scan; attnlab.plots.flash_tiles) and the
zone's grading wrappers (grader_tests.exercises: memory_limited, loop_limited, forward_with_inner).

Each helper is compared with something computed independently: torch's SDPA, plain Python
loops, closed forms, the library's step-by-step references.
"""

import os
import pickle
import sys
import tracemalloc

import numpy as np
import pytest
import torch

os.environ.setdefault("ATTNLAB_STATIC", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if not torch.cuda.is_available():  # before anything imports triton (transformers does)
    os.environ.setdefault("TRITON_INTERPRET", "1")

try:  # kernels read triton.language as a global, like a notebook's kernels do
    import triton
    import triton.language as tl
except ImportError:  # the Triton tests below are skipped
    triton = tl = None

import attnlab

from grader_tests import run_check
from grader_tests.exercises import (
    NotTiledError,
    TimeLoopError,
    TritonNotInstalled,
    forward_with_inner,
    loop_limited,
    memory_limited,
)


def _torch_causal(q, k, v):
    t = [torch.from_numpy(a) for a in (q, k, v)]
    return torch.nn.functional.scaled_dot_product_attention(*t, is_causal=True).numpy()


# ----------------------------------------------------------------------------- experiments
def test_incremental_attention_equals_causal_attention():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 9, 4)) for _ in range(3))
    out, k_cache, v_cache = attnlab.incremental_attention(attnlab.kv_cache_attention_step, q, k, v)
    np.testing.assert_allclose(out, _torch_causal(q, k, v), atol=1e-12)
    np.testing.assert_array_equal(k_cache, k)
    np.testing.assert_array_equal(v_cache, v)


def test_attention_module_numpy_matches_the_module_with_gqa():
    torch.manual_seed(0)
    config = attnlab.GPTConfig(
        vocab_size=10, context_length=16, d_model=24, n_layers=1, n_heads=6, n_kv_heads=2
    )
    module = attnlab.Attention(config, causal=True).double()
    x = torch.randn(2, 7, 24, dtype=torch.float64)
    with torch.no_grad():
        expected, _ = module(x)
    np.testing.assert_allclose(
        attnlab.attention_module_numpy(module, x.numpy()), expected.numpy(), atol=1e-12
    )
    with pytest.raises(ValueError, match="RoPE"):
        attnlab.attention_module_numpy(attnlab.Attention(config.replace(pos="rope")), x.numpy())


def test_generation_comparison_greedy_and_sampled():
    torch.manual_seed(0)
    model = attnlab.GPT(
        attnlab.GPTConfig(vocab_size=20, context_length=32, d_model=16, n_layers=1, n_heads=2)
    )
    prompt = torch.randint(0, 20, (2, 3))
    for options in ({"temperature": 0.0}, {"temperature": 1.0, "top_k": 5}):
        result = attnlab.generation_comparison(model, prompt, 10, **options)
        assert result["same"]
        assert result["tokens_cached"].shape == (2, 13)
        assert torch.equal(result["tokens_cached"][:, :3], prompt)
        assert result["seconds_cached"] > 0 and result["speedup"] > 0


def test_peak_memory_counts_numpy_buffers_and_keeps_outer_tracing():
    result, peak = attnlab.peak_memory(np.ones, (1000, 1000))
    assert result.shape == (1000, 1000)
    assert 8_000_000 <= peak < 9_000_000
    tracemalloc.start()
    try:
        attnlab.peak_memory(np.zeros, 10)
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()
    assert attnlab.best_time(sum, [1, 2], repeats=2) >= 0


def _python_recurrence(a, b):
    h, out = 0.0, []
    for a_t, b_t in zip(a, b):
        h = a_t * h + b_t
        out.append(h)
    return np.array(out)


def test_scan_loop_and_parallel_scan_match_a_python_recurrence():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-1, 1, (3, 37)), rng.standard_normal((3, 37))
    a[1, [5, 6]] = 0.0
    expected = np.stack([_python_recurrence(a[i], b[i]) for i in range(3)])
    np.testing.assert_allclose(attnlab.scan_loop(a, b), expected, atol=1e-12)
    np.testing.assert_allclose(attnlab.parallel_scan(a, b), expected, atol=1e-12)


def test_selective_scan_with_parallel_scan_equals_the_stepwise_scan():
    rng = np.random.default_rng(2)
    batch, d_inner, d_state, length = 2, 3, 4, 11
    u = rng.standard_normal((batch, d_inner, length))
    delta = rng.uniform(0.05, 0.5, (batch, d_inner, length))
    A = -rng.uniform(0.5, 2.0, (d_inner, d_state))
    B, C = (
        rng.standard_normal((batch, d_state, length)),
        rng.standard_normal((batch, d_state, length)),
    )
    D = rng.standard_normal(d_inner)
    expected = attnlab.selective_scan(u, delta, A, B, C, D)
    np.testing.assert_allclose(
        attnlab.selective_scan_with(attnlab.parallel_scan, u, delta, A, B, C, D),
        expected,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        attnlab.selective_scan_with(attnlab.scan_loop, u, delta, A, B, C),
        attnlab.selective_scan(u, delta, A, B, C),
        atol=1e-12,
    )
    with pytest.raises(ValueError, match="expected u"):
        attnlab.selective_scan_with(attnlab.scan_loop, u, delta, A, B[..., :-1], C)


def test_random_hugging_face_models():
    pytest.importorskip("transformers", reason="the Hugging Face builders need transformers")
    hf = attnlab.random_hf_gpt2(
        seed=3, vocab_size=50, n_positions=16, n_embd=24, n_layer=1, n_head=2
    )
    again = attnlab.random_hf_gpt2(
        seed=3, vocab_size=50, n_positions=16, n_embd=24, n_layer=1, n_head=2
    )
    assert not hf.training
    assert all(torch.equal(p, r) for p, r in zip(hf.parameters(), again.parameters()))
    mixer = attnlab.random_hf_mamba_mixer(
        seed=0,
        hidden_size=16,
        state_size=4,
        intermediate_size=32,
        num_hidden_layers=1,
        vocab_size=10,
    )
    block = attnlab.MambaBlock.from_hf(mixer)
    x = torch.randn(1, 7, 16)
    with torch.no_grad():
        torch.testing.assert_close(block(x), mixer(x), atol=1e-5, rtol=0)


def test_missing_triton_stand_ins_let_kernel_definitions_load():
    triton, tl = attnlab.missing_triton()

    @triton.jit
    def kernel(x, BLOCK: tl.constexpr):
        return x + 1

    assert kernel(1, 16) == 2
    assert triton.jit(kernel) is kernel and triton.jit()(kernel) is kernel


# ----------------------------------------------------------------------------- widgets
def _tile_counts_brute_force(n_q, n_k, block, causal):
    offset = n_k - n_q
    counts = {"skipped": 0, "full": 0, "masked": 0}
    for r0 in range(0, n_q, block):
        for c0 in range(0, n_k, block):
            seen = [
                (j <= i + offset) or not causal
                for i in range(r0, min(r0 + block, n_q))
                for j in range(c0, min(c0 + block, n_k))
            ]
            counts["skipped" if not any(seen) else "full" if all(seen) else "masked"] += 1
    return counts


@pytest.mark.parametrize(
    "n_q,n_k,block,causal",
    [(64, 64, 16, True), (50, 70, 16, True), (70, 30, 8, True), (40, 40, 16, False)],
)
def test_flash_tile_counts(n_q, n_k, block, causal):
    counts = attnlab.flash_tile_counts(n_q, n_k, block, causal)
    assert {key: counts[key] for key in ("skipped", "full", "masked")} == _tile_counts_brute_force(
        n_q, n_k, block, causal
    )
    if n_q == n_k and n_q % block == 0 and causal:  # closed form for the square case
        tiles = n_q // block
        assert (
            counts["masked"] == tiles
            and counts["full"] == counts["skipped"] == tiles * (tiles - 1) // 2
        )
    if not causal:
        assert counts["computed_fraction"] == 1.0


def test_zone4_pictures_draw_headless(capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert attnlab.flash_tile_explorer(n=64, block_size=16) is None  # static under ATTNLAB_STATIC=1
    assert "skipped 6, full (no mask) 6, masked 4" in capsys.readouterr().out
    history = {"step": [1, 2, 3], "loss": [3.0, 2.5, 2.0], "eval_step": [3], "eval_loss": [2.2]}
    assert attnlab.plot_training(history).axes
    assert attnlab.plot_scan_rounds(8).axes
    plt.close("all")


# ----------------------------------------------------------------------------- grading wrappers
def _full_attention(q, k, v, causal=False, block_size=64):
    return attnlab.scaled_dot_product_attention(q, k, v, causal=causal)[0]


def test_memory_limited_passes_tiled_and_fails_full_attention():
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((1024, 4)) for _ in range(3))
    tiled = memory_limited(lambda *a, **kw: attnlab.flash_attention_numpy(*a, **kw))
    np.testing.assert_allclose(
        tiled(q, k, v, causal=True, block_size=32), _torch_causal(q, k, v), atol=1e-12
    )
    with pytest.raises(NotTiledError, match=r"\(1024, 1024\) score matrix"):
        memory_limited(_full_attention)(q, k, v, causal=True)
    small = rng.standard_normal((8, 4))
    memory_limited(_full_attention)(small, small, small)  # small inputs are not measured
    assert not tracemalloc.is_tracing()
    failures = run_check("flash_attention_numpy", memory_limited(_full_attention), hidden=False)
    assert (
        "NotTiledError" in failures[0] and "builds the whole (Nq, Nk) score matrix" in failures[0]
    )


def test_wrappers_refuse_the_library_function_and_show_the_learner_code():
    with pytest.raises(ValueError, match="itself"):
        memory_limited(attnlab.flash_attention_numpy)(
            np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 2))
        )

    def parallel_scan(a, b):
        return attnlab.parallel_scan(a, b)

    wrapped = loop_limited(parallel_scan)
    assert wrapped.__code__ is parallel_scan.__code__ and wrapped.__module__ == __name__
    restored = pickle.loads(pickle.dumps(loop_limited(attnlab.scan_loop)))
    np.testing.assert_allclose(restored(np.ones(3), np.ones(3)), [1.0, 2.0, 3.0])


def test_loop_limited_catches_a_loop_over_time_and_restores_tracing():
    rng = np.random.default_rng(4)
    a, b = rng.uniform(0, 1, 8192), rng.standard_normal(8192)
    np.testing.assert_allclose(
        loop_limited(lambda a, b: attnlab.parallel_scan(a, b))(a, b),
        attnlab.scan_loop(a, b),
        atol=1e-10,
    )
    before = sys.gettrace()
    with pytest.raises(TimeLoopError, match="8192 time steps"):
        loop_limited(attnlab.scan_loop)(a, b)
    assert sys.gettrace() is before


# ----------------------------------------------------------------------------- Triton wrapper
def test_forward_with_inner_without_triton(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # import triton now raises ImportError
    stand_in, stand_in_tl = attnlab.missing_triton()

    @stand_in.jit
    def inner(acc, l_i, m_i, HEAD_DIM: stand_in_tl.constexpr):
        return acc, l_i, m_i

    x = np.zeros((1, 1, 4, 16), dtype=np.float32)
    with pytest.raises(TritonNotInstalled, match="not attempted"):
        forward_with_inner(inner)(x, x, x)
    failures = run_check("flash_attention_triton_forward", forward_with_inner(inner))
    assert "TritonNotInstalled" in failures[0] and "pip install 'attnlab[triton]'" in failures[0]
    assert "Likely mistake" not in failures[0]  # not attempted is not a catalogued mistake


@pytest.fixture(scope="module")
def kernels():
    if triton is None:
        pytest.skip("the Triton kernels need the optional triton extra")
    if not torch.cuda.is_available() and not triton.knobs.runtime.interpret:
        pytest.skip("triton was imported before TRITON_INTERPRET=1 was set in this process")
    try:
        return attnlab.load_triton_kernels()
    except RuntimeError as err:
        pytest.skip(f"the Triton kernels cannot run here: {err}")


def test_forward_with_inner_rebuilds_the_kernel_from_its_source(kernels):
    global score_block  # a kernel reads other @triton.jit functions as globals, as in a notebook
    score_block = kernels.score_block

    # The library's loop, written out here: a learner-defined @triton.jit function.
    @triton.jit
    def attn_fwd_inner(
        acc,
        l_i,
        m_i,
        q,
        K,
        V,
        stride_kn,
        stride_vn,
        offs_m,
        lo,
        hi,
        n_k,
        causal_offset,
        qk_scale,
        HEAD_DIM: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_D: tl.constexpr,
        CAUSAL: tl.constexpr,
        MASKED: tl.constexpr,
    ):
        for start_n in range(lo, hi, BLOCK_N):
            s, v = score_block(
                q,
                K,
                V,
                stride_kn,
                stride_vn,
                offs_m,
                start_n,
                n_k,
                causal_offset,
                qk_scale,
                HEAD_DIM,
                BLOCK_N,
                BLOCK_D,
                CAUSAL,
                MASKED,
            )
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp2(m_i - m_shift)
            p = tl.exp2(s - m_shift[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m_i = m_new
        return acc, l_i, m_i

    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((1, 2, 20, 16)).astype(np.float32) for _ in range(3))
    expected = _torch_causal(q, k, v)
    wrapper = forward_with_inner(attn_fwd_inner)
    out, lse = wrapper(q, k, v, causal=True)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert lse.shape == (1, 2, 20)

    import cloudpickle

    rebuilt = pickle.loads(cloudpickle.dumps(wrapper))
    assert rebuilt.inner is None and "def attn_fwd_inner" in rebuilt.source
    out_rebuilt, _ = rebuilt(q, k, v, causal=True)
    np.testing.assert_allclose(out_rebuilt, expected, atol=1e-5)

    with pytest.raises(ValueError, match="attnlab's own inner loop"):
        forward_with_inner(kernels.attn_fwd_inner)(q, k, v)


def test_forward_with_inner_reports_an_unfinished_loop_as_not_implemented(kernels):
    @triton.jit
    def attn_fwd_inner(
        acc,
        l_i,
        m_i,
        q,
        K,
        V,
        stride_kn,
        stride_vn,
        offs_m,
        lo,
        hi,
        n_k,
        causal_offset,
        qk_scale,
        HEAD_DIM: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_D: tl.constexpr,
        CAUSAL: tl.constexpr,
        MASKED: tl.constexpr,
    ):
        for _start_n in range(lo, hi, BLOCK_N):
            # YOUR CODE HERE
            raise NotImplementedError()
        return acc, l_i, m_i

    failures = run_check("flash_attention_triton_forward", forward_with_inner(attn_fwd_inner))
    assert "not implemented yet" in failures[0]
