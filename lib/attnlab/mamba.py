"""Mamba in torch: selective scans (sequential and parallel), the Mamba block, a small Mamba LM.

Mamba (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces")
replaces attention by a selective state space model: for every channel d of the inner
width and every state index n,
    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,      y_t = C_t . h_t + D u_t,
with delta_t, B_t, C_t computed from the input (that is the "selective" part). The state
has a fixed size, so generation costs the same per token at any context length, unlike
attention whose KV cache grows. The NumPy reference is attnlab.selective_scan; the module
layout and parameter names follow Hugging Face transformers' MambaMixer, so its weights load
directly (MambaBlock.from_hf, MambaLM.from_hf).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from .nn import sample_next_token

if TYPE_CHECKING:
    from transformers import MambaForCausalLM
    from transformers.models.mamba.modeling_mamba import MambaMixer

__all__ = ["MambaBlock", "MambaLM", "selective_scan_torch"]

SCAN_MODES = ("sequential", "parallel")


# ============================================================================ scans
def _check_scan_args(u, delta, A, B, C, D, initial_state):
    for name, t in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor, got {type(t).__name__}")
    if u.dim() != 3:
        raise ValueError(f"u must have shape (batch, d_inner, L), got {tuple(u.shape)}")
    batch, d_inner, L = u.shape
    if L == 0:
        raise ValueError(f"u must hold at least one time step, got shape {tuple(u.shape)}")
    if delta.shape != u.shape:
        raise ValueError(
            f"delta must have the shape of u {tuple(u.shape)}, got {tuple(delta.shape)}"
        )
    if A.dim() != 2 or A.shape[0] != d_inner:
        raise ValueError(f"A must have shape (d_inner={d_inner}, d_state), got {tuple(A.shape)}")
    d_state = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        if t.shape != (batch, d_state, L):
            raise ValueError(
                f"{name} must have shape (batch, d_state, L) = {(batch, d_state, L)}, got {tuple(t.shape)}"
            )
    if D is not None and D.shape != (d_inner,):
        raise ValueError(f"D must have shape (d_inner,) = ({d_inner},), got {tuple(D.shape)}")
    if initial_state is not None and initial_state.shape != (batch, d_inner, d_state):
        raise ValueError(
            f"initial_state must have shape (batch, d_inner, d_state) = {(batch, d_inner, d_state)}, "
            f"got {tuple(initial_state.shape)}"
        )
    if not bool((A < 0).all()):
        raise ValueError(
            f"A must be strictly negative for a stable scan (Mamba uses A = -exp(A_log)), "
            f"got max {A.max().item():g}"
        )


def _scan_sequential(u, delta, A, B, C, h):
    """The reference algorithm (mamba_ssm's selective_scan_ref, transformers' slow path):
    discretise every step first, then run the recurrence one time step after the other."""
    A_bar = torch.exp(delta[..., None] * A[:, None, :])  # (batch, d_inner, L, d_state)
    Bu_bar = (delta * u)[..., None] * B.transpose(1, 2)[:, None]  # delta_t B_t u_t, same shape
    ys = []
    for t in range(u.shape[-1]):
        h = A_bar[:, :, t] * h + Bu_bar[:, :, t]
        ys.append((h @ C[:, :, t, None])[..., 0])  # C_t . h_t -> (batch, d_inner)
    return torch.stack(ys, dim=-1), h


def _scan_chunk(x, delta, A, B, C, h, y, work):
    """All T steps of one chunk at once, starting from the state h that enters the chunk.

    Time-major: x = delta * u and delta (batch, T, d_inner), B, C (batch, T, d_state),
    h (batch, d_inner, d_state); the outputs are written into y (batch, T, d_inner) and the
    state after the chunk is returned. With the cumulative log-decay
    G_t = A (delta_1 + ... + delta_t), which is <= 0 and decreasing,
        h_t = exp(G_t) * (h + sum_{s<=t} exp(-G_s) delta_s B_s u_s),
    and both running sums over time are one matrix product with a lower-triangular matrix
    of ones: no loop over time. exp(-G_s) grows along the chunk; if the decays inside it
    span more than exp(max_log_range) it could overflow, so such a chunk is split in two
    halves scanned one after the other, down to single steps if need be.
    `work` (see _scan_parallel) holds that limit, each channel's largest |A|, the matrix of
    ones and three (batch, chunk_size, d_inner, d_state) buffers reused by every chunk (None
    when gradients are needed: autograd cannot track writes into given buffers).
    """
    T = x.shape[1]
    if T == 1:  # a single step: the recurrence itself (exp(G) may underflow to 0, no division)
        h = torch.exp(delta[:, 0, :, None] * A) * h + x[:, 0, :, None] * B[:, 0, None, :]
        y[:, 0] = (h @ C[:, 0, :, None])[..., 0]
        return h
    ones_lower = work["ones_lower"][:T, :T]
    S = ones_lower @ delta  # running sums delta_1 + ... + delta_t: (batch, T, d_inner)
    if (S[:, -1] * work["max_rate"]).max().item() > work["max_log_range"]:  # largest -G_T
        half = T // 2
        for part in (slice(0, half), slice(half, T)):
            h = _scan_chunk(
                x[:, part], delta[:, part], A, B[:, part], C[:, part], h, y[:, part], work
            )
        return h
    buffers = work["buffers"]
    decay, W, H = (None, None, None) if buffers is None else (buf[:, :T] for buf in buffers)
    decay = torch.exp_(torch.mul(S[..., None], A, out=decay))  # exp(G_t), in (0, 1]
    W = torch.mul(x[..., None], B[:, :, None, :], out=W)  # delta_s u_s B_s
    W.div_(decay)  # times exp(-G_s)
    W[:, 0] += h  # the entering state joins the first step's term
    H = torch.matmul(ones_lower, W.flatten(2), out=None if H is None else H.flatten(2))
    H = H.view_as(W).mul_(decay)  # prefix sums over s <= t, times exp(G_t): H[:, t] = h_t
    y[:] = torch.einsum("btdn,btn->btd", H, C)  # y_t = C_t . h_t
    return H[:, -1].clone()


def _scan_parallel(u, delta, A, B, C, h, chunk_size):
    """Chunked scan: inside a chunk every step at once (_scan_chunk), chunks one after another.

    Work stays O(L d_inner d_state) like the loop, but each chunk is a few large vectorised
    operations and two matrix products on cache-sized buffers (reused: no allocation per
    chunk) instead of chunk_size steps of small ones; nothing of size (L, d_inner, d_state)
    is ever stored.
    """
    x = (delta * u).transpose(1, 2).contiguous()  # time-major (batch, L, d_inner)
    delta = delta.transpose(1, 2).contiguous()
    B = B.transpose(1, 2).contiguous()  # (batch, L, d_state)
    C = C.transpose(1, 2).contiguous()
    batch, L, d_inner = x.shape
    T = min(chunk_size, L)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, delta, A, B, C, h))
    work = {
        "max_log_range": 0.45 * math.log(torch.finfo(x.dtype).max),  # ~40 float32, ~319 float64
        "max_rate": -A.min(dim=-1).values,  # A < 0: the fastest decay of each channel
        "ones_lower": torch.ones(T, T, dtype=x.dtype, device=x.device).tril_(),
        "buffers": None
        if needs_grad
        else [x.new_empty(batch, T, d_inner, A.shape[1]) for _ in range(3)],
    }
    y = x.new_empty(batch, L, d_inner)
    for start in range(0, L, T):
        part = slice(start, start + T)
        h = _scan_chunk(x[:, part], delta[:, part], A, B[:, part], C[:, part], h, y[:, part], work)
    return y.transpose(1, 2), h


def selective_scan_torch(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    mode: str = "parallel",
    chunk_size: int = 16,
    initial_state: torch.Tensor | None = None,
    return_last_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Mamba's selective scan in torch; the same maths as attnlab.selective_scan (NumPy).

    u, delta: (batch, d_inner, L); A: (d_inner, d_state) < 0; B, C: (batch, d_state, L);
    D: (d_inner,) skip. mode "sequential" is the reference loop over time (as in mamba_ssm's
    selective_scan_ref); "parallel" scans chunks of chunk_size steps at once with cumulative
    log-decays and a triangular matrix product (see _scan_chunk). Both agree to float32
    rounding. initial_state (batch, d_inner, d_state) continues a previous scan;
    return_last_state=True also returns h_L for recurrent decoding. Returns y (batch, d_inner, L).
    """
    _check_scan_args(u, delta, A, B, C, D, initial_state)
    if mode not in SCAN_MODES:
        raise ValueError(f"mode must be one of {SCAN_MODES}, got {mode!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    batch, d_inner, _ = u.shape
    dtype = torch.promote_types(u.dtype, A.dtype)
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    if initial_state is None:
        h = torch.zeros(batch, d_inner, A.shape[1], dtype=dtype, device=u.device)
    else:
        h = initial_state.to(dtype)
    if mode == "sequential":
        y, h = _scan_sequential(u, delta, A, B, C, h)
    else:
        y, h = _scan_parallel(u, delta, A, B, C, h, chunk_size)
    if D is not None:
        y = y.addcmul_(
            D.to(dtype)[:, None], u
        )  # y + D u, in place: no new (batch, d_inner, L) array
    return (y, h) if return_last_state else y


# ============================================================================ block
class MambaBlock(nn.Module):
    """The Mamba mixer: in_proj -> (x, z); x -> causal depthwise conv1d -> SiLU -> selective SSM
    (delta, B, C from x_proj, delta = softplus(dt_proj(.)), A = -exp(A_log), D skip);
    output y * SiLU(z) -> out_proj. Input and output (batch, L, d_model).

    Parameter names and shapes equal transformers' MambaMixer, so from_hf copies its weights.
    dt_rank defaults to ceil(d_model / 16) as in the paper; A_log starts at log(1..d_state)
    (S4D-real) and the delta bias so that softplus(bias) lies in [dt_min, dt_max].
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        d_inner: int | None = None,
        bias: bool = False,
        conv_bias: bool = True,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
    ):
        super().__init__()
        for name, value in (
            ("d_model", d_model),
            ("d_state", d_state),
            ("d_conv", d_conv),
            ("expand", expand),
        ):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = d_inner if d_inner is not None else expand * d_model
        self.dt_rank = dt_rank if dt_rank is not None else math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(
            self.d_inner,
            self.d_inner,
            d_conv,
            groups=self.d_inner,
            padding=d_conv - 1,
            bias=conv_bias,
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)
        with torch.no_grad():  # delta starts log-uniform in [dt_min, dt_max] (Gu & Dao 2023)
            dt = torch.exp(
                torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
            )
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus

    @classmethod
    def from_hf(cls, hf_mixer: MambaMixer) -> MambaBlock:
        """A MambaBlock with the weights of a transformers MambaMixer (same outputs)."""
        activation = getattr(hf_mixer, "activation", "silu")
        if activation != "silu":
            raise ValueError(f"hf_mixer.activation must be 'silu', got {activation!r}")
        block = cls(
            d_model=hf_mixer.in_proj.in_features,
            d_state=hf_mixer.A_log.shape[1],
            d_conv=hf_mixer.conv1d.kernel_size[0],
            dt_rank=hf_mixer.dt_proj.in_features,
            d_inner=hf_mixer.A_log.shape[0],
            bias=hf_mixer.in_proj.bias is not None,
            conv_bias=hf_mixer.conv1d.bias is not None,
        )
        block.load_state_dict(hf_mixer.state_dict())
        return block.to(hf_mixer.A_log.dtype)

    def _ssm_inputs(self, x):
        """From the conv output x (..., d_inner): delta (..., d_inner), B and C (..., d_state)."""
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        return F.softplus(self.dt_proj(dt)), B, C

    def _check_input(self, hidden_states):
        if hidden_states.dim() != 3 or hidden_states.shape[-1] != self.d_model:
            raise ValueError(
                f"hidden_states must have shape (batch, L, d_model={self.d_model}), "
                f"got {tuple(hidden_states.shape)}"
            )

    def scan_inputs(self, hidden_states: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything the selective scan sees, for hidden_states (batch, L, d_model):
        a dict with u, delta (batch, d_inner, L), A (d_inner, d_state), B, C (batch, d_state, L),
        D (d_inner,), the gate z (batch, L, d_inner) and conv_input (batch, d_inner, L)."""
        self._check_input(hidden_states)
        L = hidden_states.shape[1]
        x, z = self.in_proj(hidden_states).chunk(2, dim=-1)  # (batch, L, d_inner) each
        conv_input = x.transpose(1, 2)
        # causal: keep the first L outputs; stored time-major (batch, L, d_inner) for the scan
        x = F.silu(self.conv1d(conv_input)[..., :L]).transpose(1, 2).contiguous()
        delta, B, C = self._ssm_inputs(x)
        return {
            "u": x.transpose(1, 2),
            "delta": delta.transpose(1, 2),
            "A": -torch.exp(self.A_log),
            "B": B.transpose(1, 2),
            "C": C.transpose(1, 2),
            "D": self.D,
            "z": z,
            "conv_input": conv_input,
        }

    def forward(
        self, hidden_states: torch.Tensor, scan_mode: str = "parallel", return_state: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(batch, L, d_model) -> (batch, L, d_model). return_state=True also returns the state
        (conv_state, ssm_state) after the last token, to continue with step()."""
        s = self.scan_inputs(hidden_states)
        y, ssm_state = selective_scan_torch(
            s["u"],
            s["delta"],
            s["A"],
            s["B"],
            s["C"],
            s["D"],
            mode=scan_mode,
            return_last_state=True,
        )
        out = self.out_proj(y.transpose(1, 2) * F.silu(s["z"]))
        if not return_state:
            return out
        # the conv state is the last d_conv - 1 conv inputs (zeros before the sequence start)
        conv_state = F.pad(s["conv_input"], (self.d_conv - 1, 0))[..., s["conv_input"].shape[-1] :]
        return out, (conv_state, ssm_state)

    def init_state(
        self,
        batch_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero state for step(): conv_state (batch, d_inner, d_conv - 1) holds the previous
        conv inputs, ssm_state (batch, d_inner, d_state) the SSM's h."""
        dtype = dtype or self.A_log.dtype
        return (
            torch.zeros(batch_size, self.d_inner, self.d_conv - 1, device=device, dtype=dtype),
            torch.zeros(batch_size, self.d_inner, self.d_state, device=device, dtype=dtype),
        )

    def step(
        self, hidden_state: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One token: (batch, d_model) and state -> (batch, d_model), new state. O(1) in length."""
        conv_state, ssm_state = state
        x, z = self.in_proj(hidden_state).chunk(2, dim=-1)  # (batch, d_inner)
        window = torch.cat([conv_state, x[..., None]], dim=-1)  # the last d_conv conv inputs
        x = (window * self.conv1d.weight[:, 0, :]).sum(dim=-1)
        if self.conv1d.bias is not None:
            x = x + self.conv1d.bias
        x = F.silu(x)
        delta, B, C = self._ssm_inputs(x)
        # one step of the recurrence: the reference scan over a sequence of length 1, continuing
        # from the state (called directly: the arguments are known to be valid)
        y, ssm_state = _scan_sequential(
            x[..., None],
            delta[..., None],
            -torch.exp(self.A_log),
            B[..., None],
            C[..., None],
            ssm_state,
        )
        y = y[..., 0] + self.D * x
        out = self.out_proj(y * F.silu(z))
        return out, (window[..., 1:], ssm_state)


# ============================================================================ language model
class _ResidualMambaLayer(nn.Module):
    """x + mixer(RMSNorm(x)), the pre-norm residual layer of a Mamba LM (names as in transformers)."""

    def __init__(self, d_model: int, eps: float, **block_kwargs):
        super().__init__()
        self.norm = nn.RMSNorm(d_model, eps=eps)
        self.mixer = MambaBlock(d_model, **block_kwargs)

    def forward(self, x, scan_mode="parallel", return_state=False):
        if return_state:
            y, state = self.mixer(self.norm(x), scan_mode=scan_mode, return_state=True)
            return x + y, state
        return x + self.mixer(self.norm(x), scan_mode=scan_mode)

    def step(self, x, state):
        y, state = self.mixer.step(self.norm(x), state)
        return x + y, state


class MambaLM(nn.Module):
    """A small Mamba language model: embedding, n_layers residual Mamba layers, RMSNorm, tied head.

    forward(idx) gives logits for a whole sequence with the parallel scan; step(token, state)
    continues one token at a time from a fixed-size state (conv window + SSM state per layer),
    with the same logits. generate() uses the prompt's final state, then step().
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        n_layers: int = 2,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        eps: float = 1e-5,
        **block_kwargs: Any,
    ):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("n_layers", n_layers)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.vocab_size = vocab_size
        self.embeddings = nn.Embedding(vocab_size, d_model)
        self.layers = nn.ModuleList(
            _ResidualMambaLayer(
                d_model, eps, d_state=d_state, d_conv=d_conv, expand=expand, **block_kwargs
            )
            for _ in range(n_layers)
        )
        self.norm_f = nn.RMSNorm(d_model, eps=eps)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.embeddings.weight  # tied, as in the Mamba LMs
        nn.init.normal_(self.embeddings.weight, std=0.02)

    @classmethod
    def from_hf(cls, hf_model: MambaForCausalLM) -> MambaLM:
        """A MambaLM with the weights of a transformers MambaForCausalLM (same logits)."""
        cfg = hf_model.config
        model = cls(
            cfg.vocab_size,
            cfg.hidden_size,
            cfg.num_hidden_layers,
            d_state=cfg.state_size,
            d_conv=cfg.conv_kernel,
            d_inner=cfg.intermediate_size,
            dt_rank=hf_model.backbone.layers[0].mixer.dt_proj.in_features,
            eps=cfg.layer_norm_epsilon,
            bias=cfg.use_bias,
            conv_bias=cfg.use_conv_bias,
        )
        state = {k.removeprefix("backbone."): v for k, v in hf_model.state_dict().items()}
        state.setdefault("lm_head.weight", state["embeddings.weight"])
        if not torch.equal(state["lm_head.weight"], state["embeddings.weight"]):
            raise ValueError(
                "hf_model must tie lm_head to the embeddings (tie_word_embeddings=True)"
            )
        model.load_state_dict(state)
        return model

    def _check_idx(self, idx):
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(
                f"idx must be a (batch, L) long tensor, got {getattr(idx, 'shape', idx)}"
            )

    def forward(
        self, idx: torch.Tensor, scan_mode: str = "parallel", return_state: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """idx (batch, L) token ids -> logits (batch, L, vocab_size) [, per-layer states]."""
        self._check_idx(idx)
        x = self.embeddings(idx)
        states = []
        for layer in self.layers:
            if return_state:
                x, state = layer(x, scan_mode, return_state=True)
                states.append(state)
            else:
                x = layer(x, scan_mode)
        logits = self.lm_head(self.norm_f(x))
        return (logits, states) if return_state else logits

    def init_state(self, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Zero per-layer states, to start step() from an empty context."""
        p = self.embeddings.weight
        return [layer.mixer.init_state(batch_size, p.device, p.dtype) for layer in self.layers]

    def step(
        self, token: torch.Tensor, states: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """token (batch,) ids and per-layer states -> logits (batch, vocab_size), new states."""
        x = self.embeddings(token)
        new_states = []
        for layer, state in zip(self.layers, states):
            x, state = layer.step(x, state)
            new_states.append(state)
        return self.lm_head(self.norm_f(x)), new_states

    @torch.inference_mode()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        use_state: bool = True,
    ) -> torch.Tensor:
        """Append max_new_tokens sampled tokens to idx (batch, L); returns (batch, L + max_new_tokens).

        Same interface as attnlab.GPT.generate: temperature=0 (or top_k=1) is greedy.
        use_state=True reads the prompt once, then steps the fixed-size recurrent state (constant
        cost per token at any context length); use_state=False recomputes the whole sequence
        every token (same tokens, for checking).
        """
        self._check_idx(idx)
        if (
            isinstance(max_new_tokens, bool)
            or not isinstance(max_new_tokens, int)
            or max_new_tokens < 0
        ):
            raise ValueError(
                f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}"
            )
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        was_training = self.training
        self.eval()
        states = None
        for _ in range(max_new_tokens):
            if not use_state:
                logits = self(idx)[:, -1]
            elif states is None:
                logits, states = self(idx, return_state=True)
                logits = logits[:, -1]
            else:
                logits, states = self.step(idx[:, -1], states)
            idx = torch.cat([idx, sample_next_token(logits, temperature, top_k)], dim=1)
        self.train(was_training)
        return idx
