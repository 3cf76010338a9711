"""Real and randomly initialised Hugging Face models: MiniLM's attention maps (with a clearly
labelled random fallback), GPT-2 blocks and a Mamba mixer to check attnlab against (Zones 2-4)."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import DTypeLike

from .._validate import require_positive_int
from ..blocks import GPT2_BLOCK_KEYS
from ..i18n import tr
from ..nn import Encoder, EncoderConfig, GPTConfig, TransformerBlock, load_minilm
from ..nn.gpt import gpt2_block_state_dict

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import GPT2LMHeadModel
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block
    from transformers.models.mamba.modeling_mamba import MambaMixer

__all__ = [
    "MODELS_INSTALL",
    "gpt2_block_hf",
    "gpt2_block_torch",
    "minilm_attention",
    "random_encoder_attention",
    "random_gpt2_block_params",
    "random_hf_gpt2",
    "random_hf_mamba_mixer",
    "sentence_attention",
    "transformers_available",
]


MODELS_INSTALL = "pip install 'attnlab[models]'"


# ------------------------------------------------------------------------------------------
# Attention maps of a real encoder
# ------------------------------------------------------------------------------------------


@torch.no_grad()
def minilm_attention(
    sentence: str, model: tuple[Encoder, Tokenizer] | None = None
) -> tuple[list[str], np.ndarray]:
    """Tokens and attention weights of the pretrained MiniLM (Wang et al. 2020) on one sentence.

    model: (encoder, tokenizer) from attnlab.load_minilm(), loaded here if None. Returns the
    word-piece tokens (with [CLS] and [SEP]) and weights (n_layers, n_heads, N, N).
    Raises ModuleNotFoundError without the optional models extra.
    """
    encoder, tokenizer = load_minilm() if model is None else model
    encoding = tokenizer.encode(sentence)
    _, weights = encoder(torch.tensor([encoding.ids]), return_weights=True)
    return list(encoding.tokens), torch.stack([w[0] for w in weights]).numpy()


@torch.no_grad()
def random_encoder_attention(
    sentence: str, n_layers: int = 6, n_heads: int = 12, seed: int = 0
) -> tuple[list[str], np.ndarray]:
    """The fallback when MiniLM is not installed: the same shapes from an UNTRAINED encoder.

    Words and punctuation are split by a regular expression and numbered in order of first
    appearance (no real tokenizer); the encoder has random weights, so its maps show what
    attention looks like before any learning. Returns (tokens, weights (L, H, N, N)).
    """
    words = re.findall(r"\w+|[^\w\s]", sentence.lower())
    tokens = ["[CLS]", *words, "[SEP]"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    torch.manual_seed(seed)
    config = EncoderConfig(
        vocab_size=len(vocab),
        context_length=max(len(tokens), 8),
        d_model=8 * n_heads,
        n_layers=n_layers,
        n_heads=n_heads,
    )
    encoder = Encoder(config).eval()
    ids = torch.tensor([[vocab[t] for t in tokens]])
    _, weights = encoder(ids, return_weights=True)
    return tokens, torch.stack([w[0] for w in weights]).numpy()


def sentence_attention(
    sentence: str, model: tuple[Encoder, Tokenizer] | None = None
) -> tuple[list[str], np.ndarray, str]:
    """MiniLM's attention on a sentence if the models extra is installed, else the random fallback.

    Returns (tokens, weights (L, H, N, N), source), source naming which model produced them.
    """
    try:
        tokens, weights = minilm_attention(sentence, model)
        return tokens, weights, tr("pretrained MiniLM (all-MiniLM-L6-v2)")
    except ModuleNotFoundError:
        tokens, weights = random_encoder_attention(sentence)
        return tokens, weights, tr("RANDOM, UNTRAINED encoder (MiniLM not installed)")


# ============================================================================ GPT-2 block
def random_gpt2_block_params(
    d_model: int, d_ff: int | None = None, seed: int = 0, dtype: DTypeLike = np.float64
) -> dict:
    """Random weights for one GPT-2 block, keyed like Hugging Face's GPT2Block state_dict.

    Matrices use HF's Conv1D layout (in, out) with entries N(0, 1/in), so activations stay
    of order 1 and every part of the block matters; LayerNorm weights 1 + N(0, 0.1^2) and
    all biases N(0, 0.1^2). d_ff defaults to 4 * d_model. Returns a dict of NumPy arrays.
    """
    d = require_positive_int("d_model", d_model)
    d_ff = 4 * d if d_ff is None else require_positive_int("d_ff", d_ff)
    rng = np.random.default_rng(seed)
    shapes = {
        "ln_1.weight": (d,),
        "ln_1.bias": (d,),
        "attn.c_attn.weight": (d, 3 * d),
        "attn.c_attn.bias": (3 * d,),
        "attn.c_proj.weight": (d, d),
        "attn.c_proj.bias": (d,),
        "ln_2.weight": (d,),
        "ln_2.bias": (d,),
        "mlp.c_fc.weight": (d, d_ff),
        "mlp.c_fc.bias": (d_ff,),
        "mlp.c_proj.weight": (d_ff, d),
        "mlp.c_proj.bias": (d,),
    }
    params = {}
    for key in GPT2_BLOCK_KEYS:
        shape = shapes[key]
        if len(shape) == 2:
            value = rng.normal(size=shape) / math.sqrt(shape[0])
        elif key.startswith("ln") and key.endswith("weight"):
            value = 1.0 + 0.1 * rng.normal(size=shape)
        else:
            value = 0.1 * rng.normal(size=shape)
        params[key] = value.astype(dtype)
    return params


def _block_shapes(params: dict, n_heads: int) -> tuple[int, int]:
    missing = [key for key in GPT2_BLOCK_KEYS if key not in params]
    if missing:
        raise ValueError(f"params is missing the keys {missing}")
    d_model, d_ff = np.shape(params["mlp.c_fc.weight"])
    require_positive_int("n_heads", n_heads)
    if d_model % n_heads:
        raise ValueError(f"n_heads={n_heads} must divide d_model={d_model}")
    return d_model, d_ff


def gpt2_block_torch(params: dict, n_heads: int, eps: float = 1e-5) -> TransformerBlock:
    """attnlab's torch TransformerBlock (GPT-2 style, float64, eval mode) holding `params`.

    params: as for attnlab.gpt2_block. HF's Conv1D stores weights as (in, out) while
    nn.Linear stores (out, in), so every matrix is transposed on the way in.
    """
    d_model, d_ff = _block_shapes(params, n_heads)
    config = GPTConfig.gpt2_style(
        d_model=d_model, n_heads=n_heads, d_ff=d_ff, n_layers=1, norm_eps=eps
    )
    block = TransformerBlock(config, causal=True).double().eval()
    block.load_state_dict(
        gpt2_block_state_dict({k: np.asarray(v, dtype=np.float64) for k, v in params.items()})
    )
    return block


def gpt2_block_hf(params: dict, n_heads: int, eps: float = 1e-5) -> GPT2Block:
    """Hugging Face's GPT2Block (float64, eval mode, eager attention) holding `params`.

    Needs the optional `transformers` package (in attnlab's dev extra): raises ImportError
    with the install command otherwise. HF's block takes the causal mask from its caller, as
    an additive (1, 1, N, N) tensor of 0 (may attend) and -inf (may not).
    """
    try:
        from transformers import GPT2Config
        from transformers.models.gpt2.modeling_gpt2 import GPT2Block
    except ImportError as err:
        raise ImportError(
            "gpt2_block_hf needs Hugging Face transformers: pip install transformers "
            '(or pip install -e ".[dev]" in the attnlab repository)'
        ) from err
    d_model, d_ff = _block_shapes(params, n_heads)
    config = GPT2Config(
        n_embd=d_model,
        n_head=n_heads,
        n_inner=d_ff,
        n_layer=1,
        layer_norm_epsilon=eps,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
    )
    config._attn_implementation = "eager"
    block = GPT2Block(config, layer_idx=0).double().eval()
    state = {
        key: torch.as_tensor(np.asarray(params[key], dtype=np.float64)) for key in GPT2_BLOCK_KEYS
    }
    block.load_state_dict(state)
    return block


# ============================================================================ Hugging Face
def transformers_available() -> bool:
    """True when Hugging Face transformers can be imported (it is in the dev extra only)."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def random_hf_gpt2(seed: int = 0, **config: Any) -> GPT2LMHeadModel | None:
    """A transformers GPT2LMHeadModel with random weights built from GPT2Config(**config), in eval mode.

    Nothing is downloaded. Returns None when transformers is not installed.
    """
    if not transformers_available():
        return None
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(bos_token_id=0, eos_token_id=0, **config)
    return transformers.GPT2LMHeadModel(cfg).eval()


def random_hf_mamba_mixer(seed: int = 0, **config: Any) -> MambaMixer | None:
    """A transformers MambaMixer (one Mamba block) with random weights from MambaConfig(**config).

    Nothing is downloaded; on a CPU transformers runs its reference PyTorch path (no CUDA
    kernels). Returns None when transformers is not installed.
    """
    if not transformers_available():
        return None
    import logging

    import transformers
    from transformers.models.mamba.modeling_mamba import MambaMixer

    # transformers warns once that the fused CUDA kernels are missing; on a CPU that is expected.
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.manual_seed(seed)
    return MambaMixer(transformers.MambaConfig(**config), layer_idx=0).eval()
