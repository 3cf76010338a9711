"""FlashAttention's reason to exist (zone 3b): the HBM traffic of standard attention vs tiled."""

from __future__ import annotations

import math

import attnlab

from ..registry import Case, Exercise, Mutant, register

# ================================================================ hbm_traffic
A100_SRAM = 100 * 1024  # about the shared memory of one A100 streaming multiprocessor


def _hbm_cases():
    return [
        Case("n=2048, d=64, 100 KiB of SRAM, fp16 (2 bytes)", (2048, 64, A100_SRAM)),
        Case("n=8192, d=64, 100 KiB of SRAM, fp16", (8192, 64, A100_SRAM)),
        Case(
            "n=1000, d=128, 192 KiB of SRAM, fp16 (the last K/V block is partial)",
            (1000, 128, 192 * 1024),
        ),
        Case(
            "fp32: n=512, d=32, 64 KiB, bytes_per_element=4",
            (512, 32, 64 * 1024),
            {"bytes_per_element": 4},
        ),
        Case(
            "fp32: n=4096, d=64, 100 KiB, bytes_per_element=4",
            (4096, 64, A100_SRAM),
            {"bytes_per_element": 4},
            hidden=True,
        ),
        Case(
            "SRAM holds the whole K and V: n=128, d=32, 1 MiB (one block, Tc = 1)",
            (128, 32, 1 << 20),
            hidden=True,
        ),
        Case("tiny SRAM of 2 bytes (blocks of one key): n=10, d=4", (10, 4, 2), hidden=True),
        Case("one token: n=1, d=16, 100 KiB", (1, 16, A100_SRAM), hidden=True),
        Case("n=3000, d=80, 48 KiB, fp16", (3000, 80, 48 * 1024), hidden=True),
    ]


def _hbm_parts(n, d, sram_bytes, bytes_per_element, m_elements=None, ceil=math.ceil):
    """Element counts (standard, flash) of Dao et al. 2022's Algorithms 0 and 1."""
    m = sram_bytes // bytes_per_element if m_elements is None else m_elements
    block_c = math.ceil(m / (4 * d))
    t_c = ceil(n / block_c)
    standard = 4 * n * d + 4 * n * n
    flash = n * d + 2 * n + 2 * n * d + t_c * (3 * n * d + 4 * n)
    return standard, flash, t_c


def _hbm_no_n2(n, d, sram_bytes, bytes_per_element=2):
    _, flash, _ = _hbm_parts(n, d, sram_bytes, bytes_per_element)
    return 4 * n * d * bytes_per_element, flash * bytes_per_element


def _hbm_s_once(n, d, sram_bytes, bytes_per_element=2):
    _, flash, _ = _hbm_parts(n, d, sram_bytes, bytes_per_element)
    return (4 * n * d + 2 * n * n) * bytes_per_element, flash * bytes_per_element


def _hbm_bits(n, d, sram_bytes, bytes_per_element=2):
    standard, flash, _ = _hbm_parts(n, d, sram_bytes, bytes_per_element)
    return 8 * standard * bytes_per_element, 8 * flash * bytes_per_element


def _hbm_elements(n, d, sram_bytes, bytes_per_element=2):
    standard, flash, _ = _hbm_parts(n, d, sram_bytes, bytes_per_element)
    return standard, flash


def _hbm_sram_as_elements(n, d, sram_bytes, bytes_per_element=2):
    standard, flash, _ = _hbm_parts(n, d, sram_bytes, bytes_per_element, m_elements=sram_bytes)
    return standard * bytes_per_element, flash * bytes_per_element


def _hbm_floor_blocks(n, d, sram_bytes, bytes_per_element=2):
    standard, flash, _ = _hbm_parts(
        n, d, sram_bytes, bytes_per_element, ceil=lambda x: max(1, math.floor(x))
    )
    return standard * bytes_per_element, flash * bytes_per_element


def _hbm_no_statistics(n, d, sram_bytes, bytes_per_element=2):
    standard, _, t_c = _hbm_parts(n, d, sram_bytes, bytes_per_element)
    flash = n * d + 2 * n * d + t_c * 3 * n * d
    return standard * bytes_per_element, flash * bytes_per_element


def _hbm_swapped(n, d, sram_bytes, bytes_per_element=2):
    standard, flash = attnlab.hbm_traffic(n, d, sram_bytes, bytes_per_element)
    return flash, standard


register(
    Exercise(
        name="hbm_traffic",
        zone="03_efficiency",
        reference=attnlab.hbm_traffic,
        points=3,
        cases=_hbm_cases,
        rtol=0.0,
        atol=0.0,
        description="HBM bytes moved by standard attention and FlashAttention (Dao et al. 2022)",
        mutants=[
            Mutant(
                "standard without the N^2 terms",
                _hbm_no_n2,
                "standard attention is missing its N^2 terms: S = QK^T and P = softmax(S) are "
                "(N, N) matrices, each written to HBM and read back: 4N^2 elements on top of 4Nd.",
            ),
            Mutant(
                "S and P counted once",
                _hbm_s_once,
                "the (N, N) matrices make a round trip each: S is written then read, P is written "
                "then read, so 4 N^2 elements, not 2 N^2.",
            ),
            Mutant(
                "counted bits",
                _hbm_bits,
                "you counted bits: multiply elements by bytes_per_element (2 for fp16), not by "
                "8 * bytes_per_element.",
            ),
            Mutant(
                "counted elements",
                _hbm_elements,
                "you returned elements, not bytes: multiply both totals by bytes_per_element.",
            ),
            Mutant(
                "SRAM size used as elements",
                _hbm_sram_as_elements,
                "the SRAM holds M = sram_bytes // bytes_per_element elements; use M (not "
                "sram_bytes) in Bc = ceil(M / (4d)).",
            ),
            Mutant(
                "floor instead of ceil",
                _hbm_floor_blocks,
                "the number of K/V blocks is Tc = ceil(N / Bc): a partial last block is still "
                "loaded. Use math.ceil (or -(-N // Bc)).",
            ),
            Mutant(
                "forgot the softmax statistics",
                _hbm_no_statistics,
                "FlashAttention also stores and reloads the row statistics m and l: 2N at "
                "initialisation, and Tc * (2N read + 2N written) in the loops.",
            ),
            Mutant(
                "outputs swapped",
                _hbm_swapped,
                "the two results are swapped: return (standard_bytes, flash_bytes).",
            ),
        ],
    )
)
