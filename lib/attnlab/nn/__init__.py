"""Torch modules: attention with KV cache and grouped heads, blocks, GPT, BERT-style encoder, HF loaders."""

from .attention import Attention, KVCache
from .block import TransformerBlock
from .config import EncoderConfig, GPTConfig, TransformerConfig
from .encoder import Encoder, load_minilm, minilm_path
from .gpt import GPT, sample_next_token
from .layers import MLP, PositionalEmbedding, apply_rope_torch, make_norm

__all__ = [
    "GPT",
    "MLP",
    "Attention",
    "Encoder",
    "EncoderConfig",
    "GPTConfig",
    "KVCache",
    "PositionalEmbedding",
    "TransformerBlock",
    "TransformerConfig",
    "apply_rope_torch",
    "load_minilm",
    "make_norm",
    "minilm_path",
    "sample_next_token",
]
