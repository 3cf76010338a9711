"""Torch modules: attention with KV cache and grouped heads, blocks, GPT, BERT-style encoder, HF loaders."""

from .attention import *  # noqa: F401,F403
from .attention import __all__ as _attention_all
from .block import *  # noqa: F401,F403
from .block import __all__ as _block_all
from .config import *  # noqa: F401,F403
from .config import __all__ as _config_all
from .encoder import *  # noqa: F401,F403
from .encoder import __all__ as _encoder_all
from .gpt import *  # noqa: F401,F403
from .gpt import __all__ as _gpt_all
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layers_all

__all__ = [*_config_all, *_layers_all, *_attention_all, *_block_all, *_gpt_all, *_encoder_all]
