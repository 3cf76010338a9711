"""Configuration of the torch models: one dataclass drives every block, decoder and encoder.

The same fields switch between the two families the lecture contrasts:
GPT-2 style (LayerNorm, GELU MLP, learned positions, biases, Pre-LN) and the modern
style (RMSNorm, SwiGLU, RoPE, no biases, grouped-query attention).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Self

from .._validate import require_divides, require_positive_int

__all__ = ["EncoderConfig", "GPTConfig", "TransformerConfig"]

NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "gelu_tanh", "relu", "swiglu")
POSITIONS = ("learned", "sinusoidal", "rope", "alibi", "none")


def _require_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


@dataclass
class TransformerConfig:
    """Fields shared by every block, the GPT decoder and the encoder.

    vocab_size, context_length: token ids in [0, vocab_size); at most context_length positions.
    d_model, n_layers, n_heads: width, depth and number of query heads (n_heads divides d_model).
    n_kv_heads: key/value heads; None = n_heads (MHA), 1 = MQA, any divisor of n_heads = GQA.
    d_ff: hidden width of the MLP; None = 4 * d_model, or round(8 * d_model / 3) for SwiGLU so
        that the three SwiGLU matrices hold as many parameters as the two GELU ones
        (Shazeer 2020, "GLU Variants Improve Transformer").
    norm: "layernorm" | "rmsnorm"; mlp: "gelu" (exact erf) | "gelu_tanh" (GPT-2's
        approximation) | "relu" | "swiglu".
    pos: "learned" | "sinusoidal" (added to the embeddings) | "rope" (rotates q and k) |
        "alibi" (bias on the scores) | "none"; rope_base: the RoPE base (10000 in RoFormer).
    bias: biases in the linear layers and LayerNorm; prenorm: Pre-LN (True) or Post-LN (False).
    dropout: on embeddings, attention weights and residual branches (training only).
    norm_eps: epsilon of the normalisation layers.
    """

    vocab_size: int = 256
    context_length: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None
    d_ff: int | None = None
    norm: str = "layernorm"
    mlp: str = "gelu"
    pos: str = "learned"
    rope_base: float = 10000.0
    bias: bool = True
    prenorm: bool = True
    dropout: float = 0.0
    norm_eps: float = 1e-5

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            require_positive_int(name, getattr(self, name))
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        require_positive_int("n_kv_heads", self.n_kv_heads)
        require_divides("n_heads", self.n_heads, "d_model", self.d_model)
        require_divides("n_kv_heads", self.n_kv_heads, "n_heads", self.n_heads)
        if self.d_ff is None:
            self.d_ff = round(8 * self.d_model / 3) if self.mlp == "swiglu" else 4 * self.d_model
        require_positive_int("d_ff", self.d_ff)
        _require_choice("norm", self.norm, NORMS)
        _require_choice("mlp", self.mlp, MLPS)
        _require_choice("pos", self.pos, POSITIONS)
        if self.pos == "rope" and self.head_dim % 2:
            raise ValueError(
                f"pos='rope' rotates pairs of features, so head_dim = d_model / n_heads must be "
                f"even, got d_model={self.d_model} / n_heads={self.n_heads} = {self.head_dim}"
            )
        if self.pos == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"pos='sinusoidal' needs an even d_model, got d_model={self.d_model}")
        if self.rope_base <= 1:
            raise ValueError(f"rope_base must be > 1, got {self.rope_base}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.norm_eps <= 0:
            raise ValueError(f"norm_eps must be positive, got {self.norm_eps}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head, d_model / n_heads."""
        return self.d_model // self.n_heads

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


@dataclass
class GPTConfig(TransformerConfig):
    """A decoder-only GPT. tie_weights: the output layer reuses the token embedding matrix."""

    tie_weights: bool = True

    @classmethod
    def gpt2_style(cls, **changes: Any) -> GPTConfig:
        """GPT-2's choices (Radford et al. 2019): LayerNorm, tanh-GELU, learned positions, Pre-LN."""
        fields = {
            "norm": "layernorm",
            "mlp": "gelu_tanh",
            "pos": "learned",
            "bias": True,
            "prenorm": True,
        }
        return cls(**{**fields, **changes})

    @classmethod
    def modern_style(cls, **changes: Any) -> GPTConfig:
        """LLaMA-like choices (Touvron et al. 2023): RMSNorm, SwiGLU, RoPE, no biases, Pre-LN.

        Pass n_kv_heads to get grouped-query attention.
        """
        fields = {"norm": "rmsnorm", "mlp": "swiglu", "pos": "rope", "bias": False, "prenorm": True}
        return cls(**{**fields, **changes})


@dataclass
class EncoderConfig(TransformerConfig):
    """A BERT-style bidirectional encoder (Devlin et al. 2019): Post-LN by default.

    type_vocab_size: number of segment (token type) embeddings, 0 for none.
    embedding_norm: normalise the summed embeddings, as BERT does.
    """

    prenorm: bool = False
    norm_eps: float = 1e-12
    type_vocab_size: int = 2
    embedding_norm: bool = True

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.type_vocab_size, bool) or self.type_vocab_size < 0:
            raise ValueError(f"type_vocab_size must be >= 0, got {self.type_vocab_size!r}")
