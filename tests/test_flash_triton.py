"""Triton FlashAttention kernels against torch SDPA and autograd: natively on a CUDA GPU, in
Triton's CPU interpreter otherwise.

Which of the two is fixed when triton is first imported; tests/conftest.py decides it for the
whole run (TRITON_INTERPRET=1 when torch sees no CUDA GPU, unless TRITON_INTERPRET is already
set), before any test module or library imports triton. The same cases run in both modes,
on CUDA tensors natively and CPU tensors under the interpreter; a few larger ones (128-row
tiles, bfloat16, d = 64, 80, 128) run on a GPU only. Two checks run in fresh subprocesses:
importing attnlab without triton, and compiling the kernels for a Hopper GPU (sm_90) without
one, which catches errors the interpreter does not (it is more permissive than the compiler)
and checks that the autotuning candidates fit in Hopper's shared memory.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

triton = pytest.importorskip("triton", reason="the Triton kernels need the optional triton extra")
tl = pytest.importorskip("triton.language")

import attnlab
from attnlab import (
    flash_attention_triton,
    flash_attention_triton_backward,
    flash_attention_triton_forward,
)

try:
    KERNELS = attnlab.load_triton_kernels()
except RuntimeError as err:  # e.g. TRITON_INTERPRET=0 set by hand on a machine without a GPU
    pytest.skip(f"the Triton kernels cannot run in this process: {err}", allow_module_level=True)

from attnlab.flash import triton_autotune
from attnlab.flash.triton_kernels import score_block

NATIVE = not KERNELS.INTERPRET
DEVICE = "cuda" if NATIVE else "cpu"


def _tol(dtype):
    """Tolerance of outputs against a float64 reference (gradients get 5x).

    Natively, tl.dot multiplies float32 inputs in TF32 (10-bit mantissa), as Triton does by
    default; the interpreter multiplies them in float32.
    """
    if NATIVE:
        return {torch.float32: 1e-2, torch.float16: 5e-3, torch.bfloat16: 3e-2}[dtype]
    return 1e-5 if dtype == torch.float32 else 3e-3


def _randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype, device=DEVICE)


def _mask(n_q, n_k):
    """Bottom-right aligned causal mask, built in torch independently of attnlab."""
    return torch.ones(n_q, n_k, device=DEVICE).tril(diagonal=n_k - n_q).bool()


def _reference(q, k, v, causal):
    """float64 torch SDPA output and log-sum-exp, differentiable."""
    q, k, v = (t.detach().double().requires_grad_() for t in (q, k, v))
    mask = _mask(q.shape[2], k.shape[2]) if causal else None
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if causal:
        scores = scores.masked_fill(~mask, float("-inf"))
    return (q, k, v), out, torch.logsumexp(scores, dim=-1)


# (B, H, Nq, Nk, d, causal, dtype): odd lengths (tails), Nq != Nk both ways, rows with no
# visible key (causal, Nq > Nk), a head dim that is not a power of two, decoding (Nq = 1).
CASES = [
    (1, 2, 17, 17, 16, False, torch.float32),
    (2, 1, 19, 19, 16, True, torch.float32),
    (1, 2, 23, 9, 16, True, torch.float32),
    (1, 1, 20, 37, 32, True, torch.float32),
    (1, 1, 1, 21, 16, True, torch.float32),
    (1, 2, 33, 20, 24, False, torch.float16),
    (1, 1, 40, 37, 16, True, torch.float16),
]
# GPU only (too slow for the interpreter): several 128-row tiles with tails, the head dims of
# the two autotuning classes, bfloat16, decoding against a long cache.
GPU_CASES = [
    (2, 3, 300, 300, 64, True, torch.bfloat16),
    (1, 2, 385, 129, 128, True, torch.float16),
    (1, 2, 129, 385, 80, False, torch.bfloat16),
    (1, 2, 1, 513, 64, True, torch.float16),
]
GPU_ONLY = pytest.mark.skipif(not NATIVE, reason="large cases run natively on a GPU only")


@pytest.mark.parametrize(
    "b,h,n_q,n_k,d,causal,dtype",
    CASES + [pytest.param(*case, marks=GPU_ONLY) for case in GPU_CASES],
)
def test_forward_backward_match_torch(b, h, n_q, n_k, d, causal, dtype):
    torch.manual_seed(n_q * 31 + n_k)
    q = _randn(b, h, n_q, d, dtype=dtype)
    k = _randn(b, h, n_k, d, dtype=dtype)
    v = _randn(b, h, n_k, d, dtype=dtype)
    (rq, rk, rv), ref_out, ref_lse = _reference(q, k, v, causal)
    tol = _tol(dtype)

    out, lse = flash_attention_triton_forward(q, k, v, causal=causal)
    assert out.dtype == dtype and lse.shape == (b, h, n_q) and lse.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref_out.detach(), atol=tol, rtol=tol)
    assert torch.equal(torch.isneginf(lse), torch.isneginf(ref_lse))
    finite = torch.isfinite(ref_lse)
    lse_tol = tol if NATIVE else 1e-5
    torch.testing.assert_close(
        lse.double()[finite], ref_lse.detach()[finite], atol=lse_tol, rtol=lse_tol
    )

    dout = torch.randn_like(out)
    ref_out.backward(dout.double())
    qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
    flash_attention_triton(qg, kg, vg, causal=causal).backward(dout)
    for name, got, want in zip("qkv", (qg.grad, kg.grad, vg.grad), (rq, rk, rv)):
        assert got.dtype == dtype
        torch.testing.assert_close(
            got.double(),
            want.grad,
            atol=5 * tol,
            rtol=5 * tol,
            msg=lambda m, name=name: f"d{name}: {m}",
        )


def test_rows_without_visible_key_give_zero_and_zero_gradients():
    torch.manual_seed(0)
    q, k, v = (_randn(1, 1, n, 16).requires_grad_() for n in (20, 6, 6))
    out = flash_attention_triton(q, k, v, causal=True)
    out.sum().backward()
    # Bottom-right alignment: query i sees key j iff j <= i - 14, so rows 0..13 see nothing.
    assert torch.equal(out[..., :14, :], torch.zeros_like(out[..., :14, :]))
    assert torch.equal(q.grad[..., :14, :], torch.zeros_like(q.grad[..., :14, :]))
    assert torch.isfinite(k.grad).all() and torch.isfinite(v.grad).all()


def test_custom_sm_scale_and_backward_function():
    torch.manual_seed(1)
    q, k, v = (_randn(1, 2, 18, 16) for _ in range(3))
    tol = _tol(torch.float32)
    out, lse = flash_attention_triton_forward(q, k, v, sm_scale=0.3)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(out, ref, atol=tol, rtol=tol)
    dout = torch.randn_like(out)
    dq, dk, dv = flash_attention_triton_backward(q, k, v, out, lse, dout, sm_scale=0.3)
    qr, kr, vr = (t.clone().requires_grad_() for t in (q, k, v))
    torch.nn.functional.scaled_dot_product_attention(qr, kr, vr, scale=0.3).backward(dout)
    for got, want in zip((dq, dk, dv), (qr.grad, kr.grad, vr.grad)):
        torch.testing.assert_close(got, want, atol=5 * tol, rtol=5 * tol)


@triton.jit
def _inner_without_rescale(
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
    """A typical wrong inner loop: forgets to rescale the old state by exp2(m_old - m_new)."""
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
        p = tl.exp2(s - m_shift[:, None])
        l_i = l_i + tl.sum(p, 1)
        acc = acc + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    return acc, l_i, m_i


def test_forward_runs_a_learner_supplied_inner_loop():
    torch.manual_seed(2)
    q, k, v = (_randn(1, 1, 36, 16) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    good, _ = flash_attention_triton_forward(q, k, v, causal=True, inner=KERNELS.attn_fwd_inner)
    tol = _tol(torch.float32)
    torch.testing.assert_close(good, ref, atol=tol, rtol=tol)
    wrong, _ = flash_attention_triton_forward(q, k, v, causal=True, inner=_inner_without_rescale)
    assert (wrong - ref).abs().max() > 1e-2
    with pytest.raises(TypeError, match=r"triton\.jit"):
        flash_attention_triton_forward(q, k, v, inner=lambda *args: args)


def test_bad_inputs_raise_clear_errors():
    x = _randn(1, 1, 8, 16)
    with pytest.raises(ValueError, match="q must have shape"):
        flash_attention_triton(x[0], x, x)
    with pytest.raises(ValueError, match="head dim"):
        y = _randn(1, 1, 8, 160)
        flash_attention_triton(y, y, y)
    with pytest.raises(ValueError, match="k and v"):
        flash_attention_triton(x, x, _randn(1, 1, 9, 16))
    if NATIVE:
        with pytest.raises(RuntimeError, match="CUDA tensors"):
            flash_attention_triton(x.cpu(), x.cpu(), x.cpu())
    else:
        with pytest.raises(TypeError, match="bfloat16"):
            b = x.bfloat16()
            flash_attention_triton(b, b, b)


def test_autotuning_candidates_are_hopper_tiles():
    """Few candidates per head-dim class (a fresh GPU compiles each one), one class per call."""
    configs, config_class = triton_autotune.CONFIGS, triton_autotune.config_class
    assert [config_class(d, 2) for d in (16, 64, 65, 128)] == ["64", "64", "128", "128"]
    assert config_class(64, 4) == "fp32"
    for cls in ("64", "128"):
        for c in configs["fwd"][cls]:
            assert c.kwargs["BLOCK_M"] == 128 and c.kwargs["BLOCK_N"] in (64, 128)
            assert c.num_warps in (4, 8) and 2 <= c.num_stages <= 4
    for kernel in configs.values():
        assert sum(len(v) for v in kernel.values()) <= 12


@pytest.mark.skipif(not NATIVE, reason="autotuning runs natively on a GPU only")
def test_autotuner_picks_a_listed_candidate_and_caches_timings():
    q, k, v = (_randn(1, 2, 256, 64, dtype=torch.float16).requires_grad_() for _ in range(3))
    flash_attention_triton(q, k, v, causal=True).sum().backward()
    for name, kernel in zip(("fwd", "dkdv", "dq"), triton_autotune.autotuned()):
        assert kernel.cache_results
        assert kernel.best_config in triton_autotune.CONFIGS[name]["64"], name


def _run_python(code: str, unset_interpret: bool) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if unset_interpret:
        env.pop("TRITON_INTERPRET", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_without_triton_and_clear_errors():
    """attnlab imports where triton is missing and the Triton functions say how to install;
    with triton but neither a GPU nor TRITON_INTERPRET=1 they say how to run on the CPU."""
    code = """
        import sys
        sys.modules["triton"] = None  # makes `import triton` raise ImportError
        import torch, attnlab
        assert "attnlab.flash.triton_kernels" not in sys.modules
        x = torch.zeros(1, 1, 4, 16)
        try:
            attnlab.flash_attention_triton(x, x, x)
            raise AssertionError("no error without triton")
        except RuntimeError as err:
            assert "pip install 'attnlab[triton]'" in str(err), err
            assert "TRITON_INTERPRET" in str(err), err
        del sys.modules["triton"]  # triton is installed after all
        if not torch.cuda.is_available():
            try:
                attnlab.flash_attention_triton(x, x, x)
                raise AssertionError("no error without a GPU and without the interpreter")
            except RuntimeError as err:
                assert "TRITON_INTERPRET" in str(err) and "CUDA" in str(err), err
        print("OK")
    """
    result = _run_python(code, unset_interpret=True)
    assert result.stdout.strip() == "OK", result.stderr


def test_kernels_compile_for_hopper():
    """Compile forward and backward kernels for sm_90 ahead of time (no GPU needed), each with
    the autotuning candidate of class "128" and of class "fp32" that needs the most shared
    memory, and check it fits in Hopper's 227 KiB. ATTNLAB_COMPILE_ALL_CONFIGS=1 compiles
    every candidate (about 1.5 s each on a CI core)."""
    code = """
        import os
        import triton
        from triton.backends.compiler import GPUTarget
        from attnlab.flash import triton_autotune as T, triton_backward as B, triton_kernels as K
        assert not K.INTERPRET
        HOPPER_SHARED = 232448  # bytes of shared memory a block may use on sm_90

        def signature(fn, consts, elem):
            sig = {}
            for name in fn.arg_names:
                if name in consts:
                    sig[name] = "constexpr"
                elif name in ("Lse", "Delta"):
                    sig[name] = "*fp32"
                elif name in ("H", "N_Q", "N_K") or name.startswith("stride"):
                    sig[name] = "i32"
                elif name == "sm_scale":
                    sig[name] = "fp32"
                else:
                    sig[name] = elem
            return sig

        def size(c):
            return c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] * c.num_stages

        target = GPUTarget("cuda", 90, 32)
        every = os.environ.get("ATTNLAB_COMPILE_ALL_CONFIGS") == "1"
        kernels = {"fwd": (K.attn_fwd_kernel, dict(INNER=K.attn_fwd_inner)),
                   "dkdv": (B.attn_bwd_dkdv_kernel, {}), "dq": (B.attn_bwd_dq_kernel, {})}
        # (class, HEAD_DIM, BLOCK_D, element type): bf16 at d = 80 also checks a head dim
        # narrower than its tile.
        classes = [("64", 64, 64, "*fp16"), ("128", 80, 128, "*bf16"), ("fp32", 128, 128, "*fp32")]
        for name, (fn, extra) in kernels.items():
            for cls, head_dim, block_d, elem in classes:
                candidates = T.CONFIGS[name][cls]
                if not every:
                    if cls == "64":
                        continue
                    candidates = [max(candidates, key=size)]
                for cfg in candidates:
                    consts = dict(HEAD_DIM=head_dim, BLOCK_D=block_d, CAUSAL=True, **extra,
                                  **cfg.kwargs)
                    sig = signature(fn, consts, elem)
                    # What launching specialises on real tensors: 16-byte aligned pointers and
                    # strides, which lets the compiler vectorise and pipeline the loads.
                    aligned = {(i,): [["tt.divisibility", 16]]
                               for i, arg in enumerate(fn.arg_names)
                               if sig[arg].startswith("*") or arg.startswith("stride")}
                    src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=consts,
                                                    attrs=aligned)
                    compiled = triton.compile(src, target=target, options=dict(
                        num_warps=cfg.num_warps, num_stages=cfg.num_stages))
                    what = f"{name} {cls} {cfg}"
                    assert "wgmma" in compiled.asm["ptx"], what  # Hopper tensor-core MMA
                    assert compiled.metadata.shared <= HOPPER_SHARED, (
                        what, compiled.metadata.shared)
        print("OK")
    """
    result = _run_python(code, unset_interpret=True)
    if "ptxas" in result.stderr and "not found" in result.stderr:
        pytest.skip("this triton build has no ptxas to compile for a GPU")
    assert result.stdout.strip() == "OK", result.stderr[-3000:]
