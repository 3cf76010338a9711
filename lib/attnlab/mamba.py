"""Mamba in torch: the Mamba block and a small Mamba LM (the scans are in attnlab.mamba_scan).

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

from .mamba_scan import _scan_sequential, selective_scan_torch
from .nn import sample_next_token

if TYPE_CHECKING:
    from transformers import MambaForCausalLM
    from transformers.models.mamba.modeling_mamba import MambaMixer

__all__ = ["MambaBlock", "MambaLM"]


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
