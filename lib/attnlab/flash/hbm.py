"""HBM traffic of standard attention vs FlashAttention (Dao et al. 2022, arXiv:2205.14135).

A GPU has a large slow memory (HBM) and a small fast one (SRAM, M elements). Attention is
memory-bound, so the number of elements moved between the two decides the speed.
`hbm_traffic` is the closed-form count; `count_hbm_traffic` runs both algorithms on real
data through arrays that count every element read from or written to "HBM", so the formula
can be checked against an actual execution.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .._validate import as_float_array, require_ndim, require_positive_int
from ..functional import softmax
from .numpy_tiled import online_softmax_merge

__all__ = ["HBMCount", "count_hbm_traffic", "flash_block_sizes", "hbm_traffic"]


def flash_block_sizes(d: int, sram_bytes: int, bytes_per_element: int = 2) -> tuple[int, int]:
    """Block sizes (Br, Bc) of FlashAttention's Algorithm 1 for head dim d and SRAM size M.

    M = sram_bytes // bytes_per_element elements; Bc = ceil(M / (4d)), Br = min(Bc, d)
    (Dao et al. 2022, Algorithm 1, line 1).
    """
    d = require_positive_int("d", d)
    bytes_per_element = require_positive_int("bytes_per_element", bytes_per_element)
    sram_bytes = require_positive_int("sram_bytes", sram_bytes)
    m_elements = sram_bytes // bytes_per_element
    if m_elements < 1:
        raise ValueError(
            f"sram_bytes={sram_bytes} holds no element of bytes_per_element={bytes_per_element}"
        )
    block_c = math.ceil(m_elements / (4 * d))
    return min(block_c, d), block_c


def hbm_traffic(n: int, d: int, sram_bytes: int, bytes_per_element: int = 2) -> tuple[int, int]:
    """HBM bytes read + written by standard attention and by FlashAttention, for one head.

    Sequence length n, head dim d, SRAM of sram_bytes, elements of bytes_per_element bytes
    (2 for fp16). Counts follow the algorithms of Dao et al. 2022 (arXiv:2205.14135).

    Standard attention (Algorithm 0), in elements:
        read Q, K (2nd); write S = QK^T (n^2); read S (n^2); write P = softmax(S) (n^2);
        read P (n^2) and V (nd); write O (nd)
        total = 4nd + 4n^2.
    FlashAttention (Algorithm 1), with M = sram_bytes // bytes_per_element elements,
    Bc = ceil(M / (4d)), Br = min(Bc, d) and Tc = ceil(n / Bc) blocks of K/V:
        line 2, initialise O (nd), l (n), m (n) in HBM:       nd + 2n written
        line 6, outer loop loads K_j, V_j once each:          2nd read
        line 8, inner loop loads Q_i, O_i, l_i, m_i:          Tc (2nd + 2n) read
        lines 12-13, inner loop writes O_i, l_i, m_i back:    Tc (nd + 2n) written
        total = nd + 2n + 2nd + Tc (3nd + 4n).
    Since Tc ~ 4nd / M, FlashAttention moves Theta(n^2 d^2 / M) elements (the paper's
    Theorem 2) against Theta(n^2) for the standard algorithm. Br does not change the total:
    the inner loop reads every row of Q, O, l, m once per K/V block whatever its height.
    Returns (standard_bytes, flash_bytes).
    """
    n = require_positive_int("n", n)
    d = require_positive_int("d", d)
    _, block_c = flash_block_sizes(d, sram_bytes, bytes_per_element)
    standard = 4 * n * d + 4 * n * n
    t_c = math.ceil(n / block_c)
    flash = (n * d + 2 * n) + 2 * n * d + t_c * (3 * n * d + 4 * n)
    return standard * bytes_per_element, flash * bytes_per_element


class HBMCount(NamedTuple):
    """Result of `count_hbm_traffic`: counted bytes and the outputs each algorithm produced."""

    standard_bytes: int
    flash_bytes: int
    standard_out: np.ndarray
    flash_out: np.ndarray


class _HBM:
    """A toy HBM: named arrays whose every element read or written is counted."""

    def __init__(self, **arrays):
        self.arrays = {name: np.array(a) for name, a in arrays.items()}
        self.elements_moved = 0

    def alloc(self, name, value):
        """Write a whole new array (e.g. initialising O = 0), counting every element."""
        self.arrays[name] = np.array(value)
        self.elements_moved += self.arrays[name].size

    def read(self, name, rows=slice(None)):
        """Load rows of an array into SRAM (a copy), counting the elements loaded."""
        block = self.arrays[name][rows].copy()
        self.elements_moved += block.size
        return block

    def write(self, name, rows, value):
        """Store a block from SRAM into rows of an array, counting the elements stored."""
        self.arrays[name][rows] = value
        self.elements_moved += np.asarray(value).size


def _standard_attention(hbm: _HBM, n: int, d: int) -> None:
    """Algorithm 0 of Dao et al. 2022: S and P make a round trip through HBM."""
    q, k = hbm.read("Q"), hbm.read("K")
    hbm.alloc("S", q @ k.T / np.sqrt(d))
    s = hbm.read("S")
    hbm.alloc("P", softmax(s, axis=-1))
    p, v = hbm.read("P"), hbm.read("V")
    hbm.alloc("O", p @ v)


def _flash_attention(hbm: _HBM, n: int, d: int, sram_bytes: int, bytes_per_element: int) -> None:
    """Algorithm 1 of Dao et al. 2022: K/V blocks outside, Q/O/l/m blocks inside."""
    block_r, block_c = flash_block_sizes(d, sram_bytes, bytes_per_element)
    hbm.alloc("O", np.zeros((n, d)))
    hbm.alloc("l", np.zeros(n))
    hbm.alloc("m", np.full(n, -np.inf))
    for c0 in range(0, n, block_c):
        cols = slice(c0, min(c0 + block_c, n))
        k_j, v_j = hbm.read("K", cols), hbm.read("V", cols)
        for r0 in range(0, n, block_r):
            rows = slice(r0, min(r0 + block_r, n))
            q_i, o_i = hbm.read("Q", rows), hbm.read("O", rows)
            l_i, m_i = hbm.read("l", rows), hbm.read("m", rows)
            s_ij = q_i @ k_j.T / np.sqrt(d)
            m_ij = s_ij.max(axis=-1)
            p_ij = np.exp(s_ij - m_ij[:, None])
            # O is stored normalised (O = acc / l), so acc = l * O.
            m_new, l_new, acc = online_softmax_merge(
                m_i, l_i, l_i[:, None] * o_i, m_ij, p_ij.sum(axis=-1), p_ij @ v_j
            )
            hbm.write("O", rows, acc / l_new[:, None])
            hbm.write("l", rows, l_new)
            hbm.write("m", rows, m_new)


def count_hbm_traffic(
    q: ArrayLike, k: ArrayLike, v: ArrayLike, sram_bytes: int, bytes_per_element: int = 2
) -> HBMCount:
    """Run standard attention and FlashAttention (Algorithm 1) on q, k, v (n, d), counting HBM traffic.

    Every block loaded from or stored to the simulated HBM adds its element count; the
    totals times bytes_per_element are returned with both outputs (which must agree), so
    `hbm_traffic(n, d, sram_bytes, bytes_per_element)` can be checked against a real run.
    """
    q, k, v = (as_float_array(name, a) for name, a in (("q", q), ("k", k), ("v", v)))
    for name, arr in (("q", q), ("k", k), ("v", v)):
        require_ndim(name, arr, 2)
        if arr.ndim != 2 or arr.shape != q.shape:
            raise ValueError(
                f"q, k and v must all have the same shape (n, d), got {name} "
                f"{arr.shape} and q {q.shape}"
            )
    n, d = q.shape
    standard = _HBM(Q=q, K=k, V=v)
    _standard_attention(standard, n, d)
    flash = _HBM(Q=q, K=k, V=v)
    _flash_attention(flash, n, d, sram_bytes, bytes_per_element)
    return HBMCount(
        standard_bytes=standard.elements_moved * bytes_per_element,
        flash_bytes=flash.elements_moved * bytes_per_element,
        standard_out=standard.arrays["O"],
        flash_out=flash.arrays["O"],
    )
