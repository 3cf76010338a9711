"""FlashAttention: NumPy tiled reference and Triton kernels."""

__all__: list[str] = []
