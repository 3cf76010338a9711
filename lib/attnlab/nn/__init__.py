"""Torch modules: attention with KV cache and grouped heads, blocks, GPT, BERT-style encoder, HF loaders."""

__all__: list[str] = []
