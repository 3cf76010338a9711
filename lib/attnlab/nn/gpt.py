"""A decoder-only GPT: token embedding, a stack of causal blocks, a language-model head.

Loads Hugging Face GPT-2 weights (`GPT.from_hf_gpt2`) and generates with a KV cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import require_positive_int
from .attention import KVCache
from .block import TransformerBlock
from .config import GPTConfig
from .layers import PositionalEmbedding, check_token_ids, init_weights, make_norm

if TYPE_CHECKING:
    from transformers import GPT2LMHeadModel

__all__ = ["GPT", "sample_next_token"]


class GPT(nn.Module):
    """Decoder-only Transformer: idx (B, N) token ids -> logits (B, N, vocab_size).

    model(idx) returns the logits; model(idx, return_weights=True) returns (logits, weights),
    weights a list with one (B, n_heads, N, N_keys) tensor per layer.
    With kv_cache (a list from new_kv_cache), idx holds only the new tokens: their keys and
    values are appended to the cache and the queries attend to everything cached.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = PositionalEmbedding(config)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(config, causal=True) for _ in range(config.n_layers)
        )
        # Pre-LN leaves the residual stream unnormalised, so a last norm precedes the head.
        self.norm_f = make_norm(config) if config.prenorm else nn.Identity()
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.tok_emb.weight
        init_weights(self, config.n_layers)

    def num_parameters(self) -> int:
        """Number of distinct parameters (a tied embedding counts once)."""
        return sum(p.numel() for p in self.parameters())

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> list[KVCache]:
        """One empty preallocated KVCache per layer, room for max_len (default context_length) positions."""
        cfg = self.config
        max_len = (
            cfg.context_length if max_len is None else require_positive_int("max_len", max_len)
        )
        weight = self.tok_emb.weight
        return [
            KVCache(
                batch_size,
                cfg.n_kv_heads,
                max_len,
                cfg.head_dim,
                dtype=weight.dtype,
                device=weight.device,
            )
            for _ in range(cfg.n_layers)
        ]

    def hidden_states(
        self, idx: torch.Tensor, kv_cache: list[KVCache] | None = None, need_weights: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """The final normalised hidden states (B, N, d_model) and the per-layer weights (or Nones)."""
        cfg = self.config
        check_token_ids("idx", idx, cfg.vocab_size)
        start = 0
        if kv_cache is not None:
            if len(kv_cache) != cfg.n_layers:
                raise ValueError(
                    f"kv_cache must hold one KVCache per layer ({cfg.n_layers}), got {len(kv_cache)}"
                )
            start = kv_cache[0].length
        n_total = start + idx.shape[1]
        if n_total > cfg.context_length:
            raise ValueError(
                f"sequence length {n_total} (idx has {idx.shape[1]} tokens, {start} cached) "
                f"exceeds context_length={cfg.context_length}"
            )
        x = self.drop(self.pos_emb(self.tok_emb(idx), start))
        weights = []
        for i, block in enumerate(self.blocks):
            x, w = block(x, None if kv_cache is None else kv_cache[i], need_weights=need_weights)
            weights.append(w)
        return self.norm_f(x), weights

    def forward(
        self, idx: torch.Tensor, kv_cache: list[KVCache] | None = None, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, N, vocab_size), and the per-layer attention weights if return_weights."""
        h, weights = self.hidden_states(idx, kv_cache, need_weights=return_weights)
        logits = self.lm_head(h)
        return (logits, weights) if return_weights else logits

    @torch.inference_mode()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Append max_new_tokens sampled tokens to idx (B, N); returns (B, N + max_new_tokens).

        temperature=0 (or top_k=1) is greedy decoding. use_cache=True runs the prompt once and
        then feeds one token per step, reusing cached keys and values; use_cache=False recomputes
        the whole sequence each step (same tokens, much slower). The model never slides: if
        N + max_new_tokens exceeds context_length a ValueError is raised before any work.
        """
        cfg = self.config
        check_token_ids("idx", idx, cfg.vocab_size)
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
        if top_k is not None:
            require_positive_int("top_k", top_k)
        total = idx.shape[1] + max_new_tokens
        if total > cfg.context_length:
            raise ValueError(
                f"prompt length {idx.shape[1]} + max_new_tokens={max_new_tokens} = {total} "
                f"exceeds context_length={cfg.context_length}; shorten the prompt or generate fewer tokens"
            )
        was_training = self.training
        self.eval()
        cache = self.new_kv_cache(idx.shape[0], max_len=total) if use_cache else None
        new_input = idx  # with the cache: only the tokens not seen yet
        for _ in range(max_new_tokens):
            h, _ = self.hidden_states(new_input if use_cache else idx, cache)
            logits = self.lm_head(h[:, -1])  # only the last position is needed
            next_token = sample_next_token(logits, temperature, top_k)
            idx = torch.cat([idx, next_token], dim=1)
            new_input = next_token
        self.train(was_training)
        return idx

    @classmethod
    def from_hf_gpt2(cls, hf_model: GPT2LMHeadModel) -> GPT:
        """A GPT with the weights of a transformers GPT2LMHeadModel (same logits to float precision).

        GPT-2's Conv1D layers store weights as (in, out); nn.Linear wants (out, in), so each
        matrix is transposed. The fused c_attn matrix maps to our fused qkv layer unchanged.
        """
        hf_cfg = getattr(hf_model, "config", None)
        if getattr(hf_cfg, "model_type", None) != "gpt2" or not hasattr(hf_model, "lm_head"):
            raise TypeError(
                f"hf_model must be a transformers GPT2LMHeadModel, got {type(hf_model).__name__}"
            )
        if not hf_cfg.scale_attn_weights or hf_cfg.scale_attn_by_inverse_layer_idx:
            raise ValueError(
                "from_hf_gpt2 supports the standard 1/sqrt(head_dim) scaling only: got "
                f"scale_attn_weights={hf_cfg.scale_attn_weights}, "
                f"scale_attn_by_inverse_layer_idx={hf_cfg.scale_attn_by_inverse_layer_idx}"
            )
        activations = {
            "gelu_new": "gelu_tanh",
            "gelu_pytorch_tanh": "gelu_tanh",
            "gelu": "gelu",
            "relu": "relu",
        }
        if hf_cfg.activation_function not in activations:
            raise ValueError(
                f"unsupported GPT-2 activation_function={hf_cfg.activation_function!r}"
            )
        tied = hf_model.lm_head.weight is hf_model.transformer.wte.weight
        config = GPTConfig(
            vocab_size=hf_cfg.vocab_size,
            context_length=hf_cfg.n_positions,
            d_model=hf_cfg.n_embd,
            n_layers=hf_cfg.n_layer,
            n_heads=hf_cfg.n_head,
            d_ff=hf_cfg.n_inner or 4 * hf_cfg.n_embd,
            norm="layernorm",
            mlp=activations[hf_cfg.activation_function],
            pos="learned",
            bias=True,
            prenorm=True,
            dropout=0.0,
            norm_eps=hf_cfg.layer_norm_epsilon,
            tie_weights=tied,
        )
        model = cls(config)
        sd = hf_model.state_dict()
        ours = {
            "tok_emb.weight": sd["transformer.wte.weight"],
            "pos_emb.table.weight": sd["transformer.wpe.weight"],
            "norm_f.weight": sd["transformer.ln_f.weight"],
            "norm_f.bias": sd["transformer.ln_f.bias"],
            "lm_head.weight": sd["lm_head.weight"]
            if "lm_head.weight" in sd
            else sd["transformer.wte.weight"],
        }
        for i in range(config.n_layers):
            prefix = f"transformer.h.{i}."
            block = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
            for name, tensor in gpt2_block_state_dict(block).items():
                ours[f"blocks.{i}.{name}"] = tensor
        model.load_state_dict(ours)
        return model.to(sd["transformer.wte.weight"].dtype).eval()


# Hugging Face GPT2Block parameter names -> attnlab TransformerBlock names.
GPT2_BLOCK_NAMES = {
    "ln_1": "norm1",
    "ln_2": "norm2",
    "attn.c_attn": "attn.qkv",
    "attn.c_proj": "attn.out",
    "mlp.c_fc": "mlp.up",
    "mlp.c_proj": "mlp.down",
}


def gpt2_block_state_dict(hf_block_state: dict) -> dict:
    """A TransformerBlock state dict from one HF GPT2Block's tensors (keys like "attn.c_attn.weight").

    GPT-2's Conv1D layers store weights as (in, out); nn.Linear wants (out, in), so every
    matrix is transposed. LayerNorm weights and all biases are copied as they are.
    """
    ours = {}
    for hf_name, our_name in GPT2_BLOCK_NAMES.items():
        weight = torch.as_tensor(hf_block_state[f"{hf_name}.weight"])
        ours[f"{our_name}.weight"] = weight if hf_name.startswith("ln") else weight.t()
        ours[f"{our_name}.bias"] = torch.as_tensor(hf_block_state[f"{hf_name}.bias"])
    return ours


def sample_next_token(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None
) -> torch.Tensor:
    """Pick one token per row of logits (B, vocab_size) -> (B, 1).

    temperature=0 or top_k=1: argmax (greedy). Otherwise sample from softmax(logits / temperature)
    restricted to the top_k largest logits when top_k is given.
    """
    if temperature == 0 or top_k == 1:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth_largest = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    return torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
