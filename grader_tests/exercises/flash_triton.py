"""The inner loop of attnlab's Triton FlashAttention forward (zone 4).

`forward_with_inner(inner)` runs attnlab's Triton FlashAttention forward with the learner's
@triton.jit inner loop (on tiny shapes; natively on a GPU, in Triton's interpreter on a CPU)
and returns NumPy (out, lse), checked against torch's SDPA. Without Triton installed it
raises TritonNotInstalled: the exercise scores 0 as "not attempted", nothing crashes. It
pickles as the inner loop's source, so the hidden checks can run in the clean grading process.

The catalogued mistakes are attnlab's own inner loop (attn_fwd_inner) with one line changed.
"""

from __future__ import annotations

import inspect
import linecache
import math
import os
import sys
import textwrap
from collections.abc import Callable

import attnlab
import numpy as np

from ..registry import Case, Exercise, Mutant, register

__all__ = ["TritonNotInstalled", "forward_with_inner"]

_TRITON_HINT = (
    "Install it with pip install 'attnlab[triton]' (Linux; it runs on a CPU through Triton's "
    "interpreter), restart the kernel and run the notebook again."
)


class TritonNotInstalled(RuntimeError):
    """Raised by forward_with_inner when triton cannot be imported: the exercise is not attempted."""


def _triton_kernels():
    """attnlab's kernel module; without a GPU, Triton's interpreter unless triton was imported already.

    The interpreter must be chosen before triton is first imported (its own library of
    @triton.jit functions is built then), so a notebook sets TRITON_INTERPRET itself, first thing.
    """
    import torch

    if "triton" not in sys.modules and not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    try:
        import triton  # noqa: F401
    except ImportError:
        raise TritonNotInstalled(
            f"Triton is not installed, so this exercise is not attempted (0 points). {_TRITON_HINT}"
        ) from None
    return attnlab.load_triton_kernels()


def _function_source(fn):
    """The source of a (possibly @triton.jit) function from its `def` line, or None."""
    fn = getattr(fn, "fn", fn)
    try:
        lines = textwrap.dedent(inspect.getsource(fn)).splitlines(keepends=True)
    except (OSError, TypeError):
        return None
    for i, line in enumerate(lines):
        if line.startswith("def "):
            return "".join(lines[i:])
    return None


class _TritonForward:
    """NumPy (out, lse) of attnlab.flash_attention_triton_forward with a given inner loop.

    Pickles as the inner function's source, which is compiled again with triton.jit where
    it is unpickled (the clean grading process), with tl, triton, load_tile and visible in scope.
    """

    def __init__(self, inner):
        self.inner = inner
        self.name = getattr(getattr(inner, "fn", inner), "__name__", "inner")
        self.module = getattr(getattr(inner, "fn", inner), "__module__", None)
        self.source = _function_source(inner)
        self.filename = f"<your {self.name}>"

    @classmethod
    def from_source(cls, source: str, name: str, filename: str) -> _TritonForward:
        """The forward with an inner loop given as source, compiled on first use."""
        forward = cls.__new__(cls)
        forward.__setstate__(
            {"name": name, "module": __name__, "source": source, "filename": filename}
        )
        return forward

    def __getstate__(self):
        return {
            "name": self.name,
            "module": self.module,
            "source": self.source,
            "filename": self.filename,
        }

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.inner = None

    def _jitted(self, kernels):
        if self.module == kernels.__name__:
            raise ValueError("this is attnlab's own inner loop: write yours in the exercise cell")
        if self.inner is not None:
            return self.inner
        if self.source is None:
            raise ValueError(f"the source of {self.name} could not be read, so it cannot be graded")
        import triton
        import triton.language as tl

        filename = getattr(self, "filename", None) or f"<your {self.name}>"
        linecache.cache[filename] = (len(self.source), None, self.source.splitlines(True), filename)
        scope = {
            "triton": triton,
            "tl": tl,
            "load_tile": kernels.load_tile,
            "visible": kernels.visible,
            "score_block": kernels.score_block,
        }
        exec(compile(self.source, filename, "exec"), scope)  # the learner's own code
        self.inner = triton.jit(scope[self.name])
        return self.inner

    def __call__(self, q, k, v, causal=False, sm_scale=None):
        import torch

        kernels = _triton_kernels()
        inner = self._jitted(kernels)
        q, k, v = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in (q, k, v))
        device = "cpu" if kernels.INTERPRET else "cuda"
        try:
            out, lse = attnlab.flash_attention_triton_forward(
                q.to(device),
                k.to(device),
                v.to(device),
                causal=causal,
                sm_scale=sm_scale,
                inner=inner,
            )
        except Exception as exc:
            if "NotImplementedError" in f"{type(exc).__name__}: {exc}":
                raise NotImplementedError() from None
            raise
        return out.cpu().numpy(), lse.cpu().numpy()


def forward_with_inner(inner: Callable) -> _TritonForward:
    """A NumPy-in, NumPy-out attnlab.flash_attention_triton_forward that uses `inner`
    (a @triton.jit function with the signature of attnlab.flash.triton_kernels.attn_fwd_inner)
    as its inner loop over key/value blocks. Returns (out, lse) like the library's forward."""
    return _TritonForward(inner)


def _sdpa_with_lse(q, k, v, causal=False, sm_scale=None, inner=None):
    """(out, lse) from torch's SDPA in float64; rows that see no key give 0 and -inf."""
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in (q, k, v))
    n_q, n_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / math.sqrt(d) if sm_scale is None else sm_scale
    scores = q @ k.transpose(-1, -2) * scale
    mask = None
    if causal:
        mask = torch.ones(n_q, n_k, dtype=torch.bool).tril(diagonal=n_k - n_q)
        scores = scores.masked_fill(~mask, float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    lse = torch.logsumexp(scores, dim=-1)
    out = torch.where(torch.isneginf(lse)[..., None], 0.0, out)
    return out.numpy(), lse.numpy()


_sdpa_with_lse.__signature__ = inspect.signature(attnlab.flash_attention_triton_forward)


def _triton_cases():
    rng = np.random.default_rng(43)
    extra = np.random.default_rng(
        143
    )  # the visible cases added later: the hidden inputs stay as they were

    def qkv(b, h, n_q, n_k, d, scale=1.0, gen=None):
        gen = gen or rng

        def normal(n):
            return (scale * gen.normal(size=(b, h, n, d))).astype(np.float32)

        return normal(n_q), normal(n_k), gen.normal(size=(b, h, n_k, d)).astype(np.float32)

    return [
        Case(
            "B=1, H=2, 19 queries and keys, d=16 (two key blocks of 16, the second partial)",
            qkv(1, 2, 19, 19, 16),
        ),
        Case("causal=True, B=2, H=1, 19 tokens, d=16", qkv(2, 1, 19, 19, 16), {"causal": True}),
        Case(
            "causal, 20 queries and 7 keys: the first 13 queries see no key (out 0, lse -inf)",
            qkv(1, 1, 20, 7, 16, gen=extra),
            {"causal": True},
        ),
        Case(
            "causal, 23 queries and 9 keys: the first 14 queries see no key (out 0, lse -inf)",
            qkv(1, 1, 23, 9, 16),
            {"causal": True},
            hidden=True,
        ),
        Case(
            "causal decoding: 1 query and 21 keys",
            qkv(1, 2, 1, 21, 16),
            {"causal": True},
            hidden=True,
        ),
        Case(
            "d=24 (not a power of two), 33 queries and 20 keys", qkv(1, 1, 33, 20, 24), hidden=True
        ),
        Case(
            "larger scores (q and k scaled by 3), causal",
            qkv(1, 1, 18, 18, 16, scale=3.0),
            {"causal": True},
            hidden=True,
        ),
    ]


# Each catalogued mistake: (what attnlab's attn_fwd_inner says, what the mistake says instead).
_INNER_MISTAKES = {
    "no_rescale": [("acc = acc * alpha[:, None] + tl.dot(", "acc = acc + tl.dot(")],
    "l_not_rescaled": [("l_i = l_i * alpha + tl.sum(p, 1)", "l_i = l_i + tl.sum(p, 1)")],
    # exp, but the scores are in log2 units (for both alpha and p)
    "natural_exp": [("tl.exp2(", "tl.exp(")],
    # -inf - (-inf) = NaN for a row with no key yet
    "no_empty_guard": [
        ('m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)', "m_shift = m_new")
    ],
    # the state forgets its maximum
    "m_not_updated": [("        m_i = m_new\n", "")],
}


def _inner_source(kernels, mistake: str | None = None) -> str:
    """The source of attnlab's attn_fwd_inner with one catalogued mistake made in it (None: as is)."""
    source = _function_source(kernels.attn_fwd_inner)
    for right, wrong in _INNER_MISTAKES[mistake] if mistake else ():
        if right not in source:
            raise RuntimeError(f"attn_fwd_inner no longer says {right!r}: update mistake {mistake}")
        source = source.replace(right, wrong)
    return source


def _triton_variant(mistake: str | None = None):
    """(out, lse) of attnlab's Triton forward whose inner loop has one catalogued mistake; with
    none, the library's own inner loop (compiled from its source like a learner's)."""
    forward = None

    def wrong(q, k, v, causal=False, sm_scale=None):
        nonlocal forward
        try:
            if forward is None:
                source = _inner_source(_triton_kernels(), mistake)
                label = f"<attnlab's attn_fwd_inner, mistake {mistake}>"
                forward = _TritonForward.from_source(source, "attn_fwd_inner", label)
            return forward(q, k, v, causal=causal, sm_scale=sm_scale)
        except TritonNotInstalled:  # not the learner's error message, so no hint is matched to it
            raise RuntimeError("the catalogued mistakes of this exercise need Triton") from None

    return wrong


register(
    Exercise(
        name="flash_attention_triton_forward",
        zone="04_implementation",
        reference=_sdpa_with_lse,
        # The reference is torch's SDPA (independent of attnlab); the exercise is named after
        # the attnlab function whose inner loop the learner writes.
        reference_name="torch.nn.functional.scaled_dot_product_attention",
        points=4,
        cases=_triton_cases,
        rtol=1e-4,
        atol=2e-5,
        timeout_s=60.0,
        description="the inner loop of attnlab's Triton FlashAttention forward, checked through "
        "the library's kernel against torch SDPA: returns (out, lse)",
        mutants=[
            Mutant(
                "tile merge without rescale",
                _triton_variant("no_rescale"),
                "acc is not rescaled when the running maximum grows: "
                "acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v).",
            ),
            Mutant(
                "l not rescaled",
                _triton_variant("l_not_rescaled"),
                "the running sum is not rescaled: l_i = l_i * alpha + tl.sum(p, 1).",
            ),
            Mutant(
                "natural exponential on log2 scores",
                _triton_variant("natural_exp"),
                "the scores s are in log2 units (qk_scale includes log2(e)), so use tl.exp2, "
                "not tl.exp, for both alpha and p.",
            ),
            Mutant(
                "NaN for queries that see no key",
                _triton_variant("no_empty_guard"),
                "a row that has seen no key keeps m = -inf and exp2(-inf - (-inf)) is NaN: "
                "subtract m_shift = tl.where(m_new == float('-inf'), 0.0, m_new) instead of m_new.",
            ),
            Mutant(
                "running maximum not updated",
                _triton_variant("m_not_updated"),
                "m_i is never updated: end each block with m_i = m_new, or the next block "
                "rescales the state with a stale maximum.",
            ),
        ],
    )
)
