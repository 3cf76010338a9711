"""Cheaper attention: sparse patterns, block-sparse attention, linear attention, Performer.

Full attention compares every query with every key: O(N^2) time and memory. Two ways out:
- sparsity: each query looks at a few keys only (local window, strides, global tokens,
  random keys; Child et al. 2019 "Generating Long Sequences with Sparse Transformers",
  Zaheer et al. 2020 "Big Bird: Transformers for Longer Sequences");
- kernels: replace exp(q.k) by phi(q).phi(k) so that (phi(Q) phi(K)^T) V = phi(Q) (phi(K)^T V)
  costs O(N) (Katharopoulos et al. 2020 "Transformers are RNNs"; Choromanski et al. 2021
  "Rethinking Attention with Performers").
NumPy in, NumPy out, shapes (..., N, d), except block_sparse_attention (torch).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from ._validate import as_float_array, as_qkv, require_positive_int
from .functional import causal_mask

__all__ = [
    "SPARSE_PATTERNS",
    "block_layout",
    "block_sparse_attention",
    "elu_feature_map",
    "linear_attention",
    "linear_attention_quadratic",
    "linear_attention_recurrent",
    "performer_attention",
    "performer_features",
    "random_feature_matrix",
    "sparse_mask",
    "sparse_mask_nnz",
]

SPARSE_PATTERNS = ("local", "strided", "fixed", "random", "bigbird")


# ============================================================================ sparse masks
def _require_nonneg_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _check_pattern_args(n, pattern, window, stride, n_global, n_random):
    n = require_positive_int("n", n)
    if pattern not in SPARSE_PATTERNS:
        raise ValueError(f"pattern must be one of {SPARSE_PATTERNS}, got {pattern!r}")
    window = _require_nonneg_int("window", window)
    stride = require_positive_int("stride", stride)
    n_global = _require_nonneg_int("n_global", n_global)
    n_random = _require_nonneg_int("n_random", n_random)
    return n, window, stride, n_global, n_random


def sparse_mask(
    n: int,
    pattern: str,
    window: int = 3,
    stride: int = 4,
    n_global: int = 1,
    n_random: int = 2,
    seed: int = 0,
    causal: bool = False,
) -> np.ndarray:
    """Boolean (n, n) attention mask, True where query i may attend key j.

    pattern:
      "local"   |i - j| <= window (a band: each query sees `window` neighbours per side);
      "strided" (i - j) % stride == 0 (every stride-th token; Child et al. 2019);
      "fixed"   the first n_global tokens are global: they attend to every token and every
                token attends to them (i < n_global or j < n_global);
      "random"  each query attends n_random keys drawn without replacement (seeded);
      "bigbird" the union local | fixed | random with the same arguments (Zaheer et al. 2020).
    causal=True intersects with the causal mask (j <= i); random keys are then drawn among
    j <= i, so a row gets min(n_random, i + 1) of them. Pass the result as `mask=` to
    attnlab.scaled_dot_product_attention. Counts: see sparse_mask_nnz.
    """
    n, window, stride, n_global, n_random = _check_pattern_args(
        n, pattern, window, stride, n_global, n_random
    )
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    allowed = causal_mask(n) if causal else np.ones((n, n), dtype=bool)

    if pattern == "local":
        mask = np.abs(i - j) <= window
    elif pattern == "strided":
        mask = (i - j) % stride == 0
    elif pattern == "fixed":
        mask = (i < n_global) | (j < n_global)
    elif pattern == "random":
        rng = np.random.default_rng(seed)
        priority = np.where(allowed, rng.random((n, n)), np.inf)  # lowest n_random win
        picked = np.argsort(priority, axis=1)[:, : min(n_random, n)]
        mask = np.zeros((n, n), dtype=bool)
        rows = np.broadcast_to(np.arange(n)[:, None], picked.shape)
        mask[rows, picked] = np.isfinite(priority[rows, picked])
    else:  # bigbird
        parts = [
            sparse_mask(n, p, window, stride, n_global, n_random, seed, causal)
            for p in ("local", "fixed", "random")
        ]
        mask = parts[0] | parts[1] | parts[2]
    return mask & allowed


def sparse_mask_nnz(
    n: int,
    pattern: str,
    window: int = 3,
    stride: int = 4,
    n_global: int = 1,
    n_random: int = 2,
    seed: int = 0,
    causal: bool = False,
) -> int:
    """Number of True entries of sparse_mask(...) from a closed form (the attention cost).

    With w = min(window, n-1), g = min(n_global, n), r = min(n_random, n), q, s = divmod(n, stride):
      local    n(2w+1) - w(w+1)                causal: n(w+1) - w(w+1)/2
      strided  s(q+1)^2 + (stride-s) q^2       causal: s(q+1)(q+2)/2 + (stride-s) q(q+1)/2
               (the residue classes mod stride have q+1 or q members; a class of c
               tokens contributes c^2 pairs, or c(c+1)/2 when causal)
      fixed    g(2n - g)                       causal: g(g+1)/2 + (n-g) g
      random   n r                             causal: r(r+1)/2 + (n-r) r
      bigbird  no closed form (random keys may land inside the window or on global
               tokens), so it is counted from the mask, which uses `seed`.
    Everything except bigbird is O(n) (for fixed w, stride, g, r) instead of n^2.
    """
    n, window, stride, n_global, n_random = _check_pattern_args(
        n, pattern, window, stride, n_global, n_random
    )
    if pattern == "local":
        w = min(window, n - 1)
        return n * (w + 1) - w * (w + 1) // 2 if causal else n * (2 * w + 1) - w * (w + 1)
    if pattern == "strided":
        q, s = divmod(n, stride)
        if causal:
            return s * (q + 1) * (q + 2) // 2 + (stride - s) * q * (q + 1) // 2
        return s * (q + 1) ** 2 + (stride - s) * q**2
    if pattern == "fixed":
        g = min(n_global, n)
        return g * (g + 1) // 2 + (n - g) * g if causal else g * (2 * n - g)
    if pattern == "random":
        r = min(n_random, n)
        return r * (r + 1) // 2 + (n - r) * r if causal else n * r
    return int(sparse_mask(n, pattern, window, stride, n_global, n_random, seed, causal).sum())


# ============================================================================ block sparse
def block_layout(mask: ArrayLike | torch.Tensor, block_size: int) -> np.ndarray:
    """Which (query block, key block) tiles of a boolean (Nq, Nk) mask contain any True.

    Returns a boolean (ceil(Nq / block_size), ceil(Nk / block_size)) array; False tiles
    are skipped entirely by block_sparse_attention. layout.mean() is the fraction computed.
    """
    mask = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask)
    if mask.dtype != bool or mask.ndim != 2:
        raise ValueError(f"mask must be a boolean (Nq, Nk) array, got {mask.dtype} {mask.shape}")
    block_size = require_positive_int("block_size", block_size)
    n_q, n_k = mask.shape
    nb_q, nb_k = -(-n_q // block_size), -(-n_k // block_size)
    padded = np.zeros((nb_q * block_size, nb_k * block_size), dtype=bool)
    padded[:n_q, :n_k] = mask
    return padded.reshape(nb_q, block_size, nb_k, block_size).any(axis=(1, 3))


def block_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: ArrayLike | torch.Tensor,
    block_size: int = 16,
) -> torch.Tensor:
    """Masked softmax attention (torch) that only computes tiles where the mask has a True.

    q: (..., Nq, d), k: (..., Nk, d), v: (..., Nk, d_v) torch tensors; mask: boolean
    (Nq, Nk) (NumPy or torch), True = may attend, shared by the leading axes. For each block
    of `block_size` queries, the keys of the non-empty key blocks are gathered and attended
    to with the mask applied inside them; empty blocks cost nothing. Equal to dense masked
    attention; a query with no allowed key gets a zero output. Returns (..., Nq, d_v).
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() < 2:
            raise ValueError(f"{name} must be a torch tensor of shape (..., N, d), got {type(t)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must share the last dimension, got {tuple(q.shape)} and {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of keys, got {tuple(k.shape)} and {tuple(v.shape)}"
        )
    n_q, n_k = q.shape[-2], k.shape[-2]
    mask_t = torch.as_tensor(np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask))
    if mask_t.shape != (n_q, n_k):
        raise ValueError(f"mask must have shape (Nq, Nk) = {(n_q, n_k)}, got {tuple(mask_t.shape)}")
    layout = block_layout(mask_t.numpy(), block_size)
    mask_t = mask_t.to(q.device)
    scale = q.shape[-1] ** -0.5
    out = q.new_zeros(q.shape[:-1] + (v.shape[-1],))
    for qb in range(layout.shape[0]):
        key_blocks = np.flatnonzero(layout[qb])
        if key_blocks.size == 0:
            continue  # this whole block of queries sees no key: output stays 0
        rows = slice(qb * block_size, min((qb + 1) * block_size, n_q))
        cols = torch.cat(
            [torch.arange(b * block_size, min((b + 1) * block_size, n_k)) for b in key_blocks]
        ).to(q.device)
        allowed = mask_t[rows][:, cols]
        scores = (q[..., rows, :] @ k[..., cols, :].transpose(-1, -2)) * scale
        scores = scores.masked_fill(~allowed, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        weights = weights.masked_fill(~allowed.any(dim=-1, keepdim=True), 0.0)  # all-masked rows
        out[..., rows, :] = weights @ v[..., cols, :]
    return out


# ============================================================================ linear attention
def _check_qkv(q, k, v, causal: bool):
    q, k, v = as_qkv(q, k, v)
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"causal linear attention needs as many queries as keys, got q {q.shape} and k {k.shape}"
        )
    return q, k, v, np.result_type(q, k, v)


def elu_feature_map(x: ArrayLike) -> np.ndarray:
    """phi(x) = elu(x) + 1 = x + 1 for x > 0, exp(x) for x <= 0: positive, so weights stay >= 0."""
    x = as_float_array("x", x)
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0))).astype(x.dtype, copy=False)


def _feature_attention(phi_q, phi_k, v, causal: bool) -> np.ndarray:
    """out_i = phi(q_i) S / phi(q_i) z with S = sum_j phi(k_j)^T v_j, z = sum_j phi(k_j).

    Associativity: (phi(Q) phi(K)^T) V = phi(Q) (phi(K)^T V), an (m, d_v) summary instead of an
    (N, N) matrix. Causal: S and z become prefix sums over j <= i, shape (..., N, m, d_v).
    """
    if causal:
        S = np.cumsum(phi_k[..., :, :, None] * v[..., :, None, :], axis=-3)  # (..., N, m, d_v)
        z = np.cumsum(phi_k, axis=-2)  # (..., N, m)
        numerator = np.einsum("...nm,...nmv->...nv", phi_q, S)
        denominator = np.einsum("...nm,...nm->...n", phi_q, z)
    else:
        S = np.swapaxes(phi_k, -1, -2) @ v  # (..., m, d_v)
        z = phi_k.sum(axis=-2)  # (..., m)
        numerator = phi_q @ S
        denominator = phi_q @ z[..., :, None]
        denominator = denominator[..., 0]
    return numerator / denominator[..., None]


def linear_attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, causal: bool = False) -> np.ndarray:
    """Linear attention (Katharopoulos et al. 2020) with phi = elu + 1, in O(N) by associativity.

    out_i = phi(q_i) (sum_j phi(k_j)^T v_j) / phi(q_i) (sum_j phi(k_j)), with j <= i when causal
    (computed by prefix sums). q, k: (..., N, d_k), v: (..., N, d_v) -> (..., N, d_v).
    Equals linear_attention_quadratic and (causal) linear_attention_recurrent.
    """
    q, k, v, dtype = _check_qkv(q, k, v, causal)
    out = _feature_attention(elu_feature_map(q), elu_feature_map(k), v, causal)
    return out.astype(dtype, copy=False)


def linear_attention_recurrent(q: ArrayLike, k: ArrayLike, v: ArrayLike) -> np.ndarray:
    """Causal linear attention as an RNN: S_i = S_{i-1} + phi(k_i)^T v_i, z_i = z_{i-1} + phi(k_i),
    out_i = phi(q_i) S_i / phi(q_i) z_i. Constant memory per step: the state is (S, z).

    q, k: (..., N, d_k), v: (..., N, d_v) -> (..., N, d_v).
    """
    q, k, v, dtype = _check_qkv(q, k, v, causal=True)
    phi_q, phi_k = elu_feature_map(q), elu_feature_map(k)
    S = np.zeros(phi_k.shape[:-2] + (phi_k.shape[-1], v.shape[-1]), dtype=dtype)
    z = np.zeros(phi_k.shape[:-2] + (phi_k.shape[-1],), dtype=dtype)
    out = np.empty(q.shape[:-1] + (v.shape[-1],), dtype=dtype)
    for i in range(q.shape[-2]):
        S = S + phi_k[..., i, :, None] * v[..., i, None, :]
        z = z + phi_k[..., i, :]
        numerator = np.einsum("...m,...mv->...v", phi_q[..., i, :], S)
        out[..., i, :] = numerator / np.sum(phi_q[..., i, :] * z, axis=-1)[..., None]
    return out


def linear_attention_quadratic(
    q: ArrayLike, k: ArrayLike, v: ArrayLike, causal: bool = False
) -> np.ndarray:
    """The explicit O(N^2) form of linear attention, for checking: weights
    w_ij = phi(q_i).phi(k_j) / sum_j' phi(q_i).phi(k_j') (j <= i when causal), out = w V."""
    q, k, v, dtype = _check_qkv(q, k, v, causal)
    similarity = elu_feature_map(q) @ np.swapaxes(elu_feature_map(k), -1, -2)
    if causal:
        similarity = np.where(causal_mask(q.shape[-2]), similarity, 0.0)
    weights = similarity / similarity.sum(axis=-1, keepdims=True)
    return (weights @ v).astype(dtype, copy=False)


# ============================================================================ Performer
def random_feature_matrix(d: int, m: int, orthogonal: bool = False, seed: int = 0) -> np.ndarray:
    """Random projections omega (m, d) with rows distributed as N(0, I_d) (float64).

    orthogonal=True draws the rows in blocks of d exactly orthogonal directions (QR of a
    Gaussian matrix), each rescaled to the length of an independent Gaussian vector, so
    every row is still N(0, I) but rows within a block do not repeat each other: lower
    variance (Choromanski et al. 2021, "orthogonal random features").
    """
    d = require_positive_int("d", d)
    m = require_positive_int("m", m)
    rng = np.random.default_rng(seed)
    if not orthogonal:
        return rng.standard_normal((m, d))
    blocks = []
    for _ in range(-(-m // d)):
        Q, R = np.linalg.qr(rng.standard_normal((d, d)))
        Q = Q * np.sign(np.diag(R))  # make the QR factor uniformly distributed (Haar)
        lengths = np.linalg.norm(rng.standard_normal((d, d)), axis=1)
        blocks.append(Q.T * lengths[:, None])
    return np.concatenate(blocks, axis=0)[:m]


def _performer_log_features(x, omega):
    """log of the positive random features before the 1/sqrt(m): omega x - |x|^2 / 2."""
    return x @ omega.T - 0.5 * np.sum(x * x, axis=-1, keepdims=True)


def performer_features(x: ArrayLike, omega: ArrayLike) -> np.ndarray:
    """Positive random features phi(x) = exp(omega x - |x|^2 / 2) / sqrt(m) (FAVOR+).

    For omega with N(0, I) rows, E[phi(x).phi(y)] = exp(x.y), the softmax kernel, and every
    feature is positive (Choromanski et al. 2021). x: (..., N, d), omega: (m, d) -> (..., N, m).
    """
    x = as_float_array("x", x)
    omega = as_float_array("omega", omega)
    if omega.ndim != 2 or omega.shape[1] != x.shape[-1]:
        raise ValueError(f"omega must have shape (m, d={x.shape[-1]}), got {omega.shape}")
    phi = np.exp(_performer_log_features(x, omega)) / np.sqrt(omega.shape[0])
    return phi.astype(x.dtype, copy=False)


def performer_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    m: int = 64,
    orthogonal: bool = True,
    seed: int = 0,
    causal: bool = False,
) -> np.ndarray:
    """Performer (FAVOR+) approximation of softmax(q k^T / sqrt(d)) v in O(N m d).

    q and k are scaled by d^(-1/4) so that exp(q'.k') = exp(q.k / sqrt(d)), mapped through
    m positive random features, then attended linearly (same code as linear_attention).
    Constant factors per query row or shared by all keys cancel in the normalisation, so
    each is divided out before exp() to avoid overflow. The error falls like 1/sqrt(m).
    q, k: (..., N, d), v: (..., N, d_v) -> (..., N, d_v).
    """
    q, k, v, dtype = _check_qkv(q, k, v, causal)
    m = require_positive_int("m", m)
    d = q.shape[-1]
    omega = random_feature_matrix(d, m, orthogonal=orthogonal, seed=seed)
    log_q = _performer_log_features(q / d**0.25, omega)
    log_k = _performer_log_features(k / d**0.25, omega)
    phi_q = np.exp(log_q - log_q.max(axis=-1, keepdims=True))  # per-query constant
    phi_k = np.exp(log_k - log_k.max(axis=(-2, -1), keepdims=True))  # one constant per head
    return _feature_attention(phi_q, phi_k, v, causal).astype(dtype, copy=False)
