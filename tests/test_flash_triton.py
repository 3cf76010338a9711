"""Triton FlashAttention kernels under the CPU interpreter, against torch SDPA and autograd.

TRITON_INTERPRET=1 must be set before the kernels are first built; attnlab never imports
triton on its own, so setting it here works even when other test modules imported attnlab
first. Two checks run in fresh subprocesses: importing attnlab without triton, and
compiling the kernels for a Hopper GPU (sm_90) without one, which catches errors that the
interpreter does not (it is more permissive than the compiler).
"""

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported anywhere in this process

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

if "attnlab.flash.triton_kernels" in sys.modules and not sys.modules[
    "attnlab.flash.triton_kernels"
].INTERPRET:
    pytest.skip("Triton kernels were already built for a GPU in this process",
                allow_module_level=True)

from attnlab.flash.triton_kernels import load_tile, visible


def _mask(n_q, n_k):
    """Bottom-right aligned causal mask, built in torch independently of attnlab."""
    return torch.ones(n_q, n_k).tril(diagonal=n_k - n_q).bool()


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


@pytest.mark.parametrize("b,h,n_q,n_k,d,causal,dtype", CASES)
def test_forward_backward_match_torch(b, h, n_q, n_k, d, causal, dtype):
    torch.manual_seed(n_q * 31 + n_k)
    q = torch.randn(b, h, n_q, d, dtype=dtype)
    k = torch.randn(b, h, n_k, d, dtype=dtype)
    v = torch.randn(b, h, n_k, d, dtype=dtype)
    (rq, rk, rv), ref_out, ref_lse = _reference(q, k, v, causal)
    tol = 1e-5 if dtype == torch.float32 else 3e-3

    out, lse = flash_attention_triton_forward(q, k, v, causal=causal)
    assert out.dtype == dtype and lse.shape == (b, h, n_q) and lse.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref_out.detach(), atol=tol, rtol=tol)
    assert torch.equal(torch.isneginf(lse), torch.isneginf(ref_lse))
    finite = torch.isfinite(ref_lse)
    torch.testing.assert_close(lse.double()[finite], ref_lse.detach()[finite], atol=1e-5,
                               rtol=1e-5)

    dout = torch.randn_like(out)
    ref_out.backward(dout.double())
    qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
    flash_attention_triton(qg, kg, vg, causal=causal).backward(dout)
    for name, got, want in zip("qkv", (qg.grad, kg.grad, vg.grad), (rq, rk, rv)):
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), want.grad, atol=5 * tol, rtol=5 * tol,
                                   msg=lambda m, name=name: f"d{name}: {m}")


def test_rows_without_visible_key_give_zero_and_zero_gradients():
    torch.manual_seed(0)
    q = torch.randn(1, 1, 20, 16, requires_grad=True)
    k = torch.randn(1, 1, 6, 16, requires_grad=True)
    v = torch.randn(1, 1, 6, 16, requires_grad=True)
    out = flash_attention_triton(q, k, v, causal=True)
    out.sum().backward()
    # Bottom-right alignment: query i sees key j iff j <= i - 14, so rows 0..13 see nothing.
    assert torch.equal(out[..., :14, :], torch.zeros_like(out[..., :14, :]))
    assert torch.equal(q.grad[..., :14, :], torch.zeros_like(q.grad[..., :14, :]))
    assert torch.isfinite(k.grad).all() and torch.isfinite(v.grad).all()


def test_custom_sm_scale_and_backward_function():
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 2, 18, 16) for _ in range(3))
    out, lse = flash_attention_triton_forward(q, k, v, sm_scale=0.3)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    dout = torch.randn_like(out)
    dq, dk, dv = flash_attention_triton_backward(q, k, v, out, lse, dout, sm_scale=0.3)
    qr, kr, vr = (t.clone().requires_grad_() for t in (q, k, v))
    torch.nn.functional.scaled_dot_product_attention(qr, kr, vr, scale=0.3).backward(dout)
    for got, want in zip((dq, dk, dv), (qr.grad, kr.grad, vr.grad)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@triton.jit
def _inner_without_rescale(acc, l_i, m_i, q, K, V, stride_kn, stride_vn, offs_m, lo, hi, n_k,
                           causal_offset, qk_scale, HEAD_DIM: tl.constexpr,
                           BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                           CAUSAL: tl.constexpr, MASKED: tl.constexpr):
    """A typical wrong inner loop: forgets to rescale the old state by exp2(m_old - m_new)."""
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k = load_tile(K, offs_n, stride_kn, n_k, HEAD_DIM, BLOCK_D, MASKED)
        v = load_tile(V, offs_n, stride_vn, n_k, HEAD_DIM, BLOCK_D, MASKED)
        s = tl.dot(q, tl.trans(k)) * qk_scale
        if MASKED:
            keep = visible(offs_m[:, None], offs_n[None, :], n_k, causal_offset, CAUSAL)
            s = tl.where(keep, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp2(s - m_shift[:, None])
        l_i = l_i + tl.sum(p, 1)
        acc = acc + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    return acc, l_i, m_i


def test_forward_runs_a_learner_supplied_inner_loop():
    torch.manual_seed(2)
    q, k, v = (torch.randn(1, 1, 36, 16) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    kernels = attnlab.load_triton_kernels()
    good, _ = flash_attention_triton_forward(q, k, v, causal=True, inner=kernels.attn_fwd_inner)
    torch.testing.assert_close(good, ref, atol=1e-5, rtol=1e-5)
    wrong, _ = flash_attention_triton_forward(q, k, v, causal=True, inner=_inner_without_rescale)
    assert (wrong - ref).abs().max() > 1e-2
    with pytest.raises(TypeError, match=r"triton\.jit"):
        flash_attention_triton_forward(q, k, v, inner=lambda *args: args)


def test_bad_inputs_raise_clear_errors():
    x = torch.randn(1, 1, 8, 16)
    with pytest.raises(ValueError, match="q must have shape"):
        flash_attention_triton(x[0], x, x)
    with pytest.raises(ValueError, match="head dim"):
        y = torch.randn(1, 1, 8, 160)
        flash_attention_triton(y, y, y)
    with pytest.raises(TypeError, match="bfloat16"):
        b = x.bfloat16()
        flash_attention_triton(b, b, b)
    with pytest.raises(ValueError, match="k and v"):
        flash_attention_triton(x, x, torch.randn(1, 1, 9, 16))


def _run_python(code: str, unset_interpret: bool) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if unset_interpret:
        env.pop("TRITON_INTERPRET", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, check=False,
                          capture_output=True, text=True, timeout=120)


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
    """Compile forward and backward kernels for sm_90 ahead of time (no GPU needed)."""
    code = """
        import triton
        from triton.backends.compiler import GPUTarget
        from attnlab.flash import triton_kernels as K
        assert not K.INTERPRET

        def signature(fn, consts):
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
                    sig[name] = "*bf16"
            return sig

        target = GPUTarget("cuda", 90, 32)
        base = dict(HEAD_DIM=80, BLOCK_D=128, CAUSAL=True)
        for fn, extra in ((K.attn_fwd_kernel, dict(INNER=K.attn_fwd_inner, BLOCK_M=64, BLOCK_N=64)),
                          (K.attn_bwd_dkdv_kernel, dict(BLOCK_M=32, BLOCK_N=64)),
                          (K.attn_bwd_dq_kernel, dict(BLOCK_M=64, BLOCK_N=32))):
            consts = dict(base, **extra)
            sig = signature(fn, consts)
            # What launching specialises on real tensors: 16-byte aligned pointers and
            # strides, which lets the compiler vectorise and pipeline the loads.
            aligned = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(fn.arg_names)
                       if sig[name].startswith("*") or name.startswith("stride")}
            src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=consts,
                                            attrs=aligned)
            compiled = triton.compile(src, target=target, options=dict(num_warps=4, num_stages=2))
            assert "wgmma" in compiled.asm["ptx"], fn.__name__  # Hopper tensor-core MMA
        print("OK")
    """
    result = _run_python(code, unset_interpret=True)
    if "ptxas" in result.stderr and "not found" in result.stderr:
        pytest.skip("this triton build has no ptxas to compile for a GPU")
    assert result.stdout.strip() == "OK", result.stderr[-3000:]
