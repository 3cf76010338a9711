"""HBM traffic formula vs an instrumented run of standard attention and FlashAttention."""

import numpy as np
import pytest
import torch
from attnlab import count_hbm_traffic, flash_block_sizes, hbm_traffic


@pytest.mark.parametrize(
    "n,d,sram_bytes,bytes_per_element",
    [
        (64, 8, 1024, 2),  # Bc = 32 divides n
        (70, 8, 1024, 2),  # ragged last K/V block
        (33, 4, 256, 4),  # Br = d < Bc
        (20, 16, 100_000, 2),  # one block holds everything: Tc = 1
        (45, 6, 200, 2),  # Bc = ceil(100 / 24) = 5
        (9, 3, 2, 2),  # one element of SRAM: Bc = 1
    ],
)
def test_formula_equals_counted_run(n, d, sram_bytes, bytes_per_element):
    rng = np.random.default_rng(n + d)
    q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
    counted = count_hbm_traffic(q, k, v, sram_bytes, bytes_per_element)
    assert hbm_traffic(n, d, sram_bytes, bytes_per_element) == (
        counted.standard_bytes,
        counted.flash_bytes,
    )
    # Both simulated algorithms really compute attention.
    ref = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(a) for a in (q, k, v))
    ).numpy()
    np.testing.assert_allclose(counted.standard_out, ref, atol=1e-12)
    np.testing.assert_allclose(counted.flash_out, ref, atol=1e-12)


def test_block_sizes_follow_algorithm_1():
    # M = 1000 elements, d = 16: Bc = ceil(1000 / 64) = 16, Br = min(16, 16).
    assert flash_block_sizes(16, 2000, 2) == (16, 16)
    # M = 1000, d = 8: Bc = ceil(1000 / 32) = 32, Br = d = 8.
    assert flash_block_sizes(8, 4000, 4) == (8, 32)


def test_flash_wins_at_long_context_and_scales_with_sram():
    """Standard traffic grows like n^2; FlashAttention's like n^2 d^2 / M (Theorem 2)."""
    d, sram = 64, 100 * 1024  # an A100-sized shared memory per SM
    std_2k, flash_2k = hbm_traffic(2048, d, sram)
    std_8k, flash_8k = hbm_traffic(8192, d, sram)
    assert flash_2k < std_2k and flash_8k < std_8k
    assert std_8k / flash_8k > std_2k / flash_2k  # the saving grows with n
    # Quadrupling M cuts the dominant Tc * 3nd term by about 4.
    _, flash_big_sram = hbm_traffic(8192, d, 4 * sram)
    assert 3.0 < (flash_8k - 3 * 8192 * d * 2) / (flash_big_sram - 3 * 8192 * d * 2) < 4.5


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="n"):
        hbm_traffic(0, 64, 1024)
    with pytest.raises(ValueError, match="sram_bytes"):
        hbm_traffic(128, 64, 1)
    with pytest.raises(ValueError, match="bytes_per_element"):
        hbm_traffic(128, 64, 1024, bytes_per_element=0)
    with pytest.raises(ValueError, match="same shape"):
        count_hbm_traffic(np.zeros((4, 2)), np.zeros((5, 2)), np.zeros((5, 2)), 64)
