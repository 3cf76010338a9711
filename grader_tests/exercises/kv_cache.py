"""The KV cache: its size (zone 3b), one decoding step and grouped-query attention (zone 4)."""

from __future__ import annotations

import attnlab
import numpy as np

from ..registry import Case, Exercise, Mutant, register

# ================================================================ kv_cache_bytes


def _kv_cases():
    return [
        Case("GPT-2 small (12 layers, 12 kv heads of 64) at 1024 tokens", (12, 12, 64, 1024)),
        Case("Llama-2-7B (32 layers, 32 kv heads of 128) at 4096 tokens", (32, 32, 128, 4096)),
        Case(
            "Llama-3.1-8B (32 layers, 8 kv heads of 128, no sliding window) at 8192 tokens, batch 4",
            (32, 8, 128, 8192),
            {"batch": 4},
        ),
        Case(
            "fp32 (bytes_per_element=4): 4 layers, 2 kv heads of 16, 10 tokens",
            (4, 2, 16, 10),
            {"bytes_per_element": 4},
        ),
        Case(
            "fp32 (bytes_per_element=4): 6 layers, 4 kv heads of 32, 100 tokens, batch 2",
            (6, 4, 32, 100),
            {"batch": 2, "bytes_per_element": 4},
            hidden=True,
        ),
        Case(
            "Falcon-7B (MQA: 32 layers, 1 kv head of 64) at 2048 tokens, batch 8",
            (32, 1, 64, 2048),
            {"batch": 8},
            hidden=True,
        ),
        Case("a single token: 2 layers, 2 kv heads of 16", (2, 2, 16, 1), hidden=True),
        Case(
            "Llama-2-70B (80 layers, 8 kv heads of 128), 32768 tokens, int8 (1 byte)",
            (80, 8, 128, 32768),
            {"bytes_per_element": 1},
            hidden=True,
        ),
    ]


def _kv(n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element, kv=2, bits=1):
    return kv * n_layers * n_kv_heads * head_dim * seq_len * batch * bytes_per_element * bits


register(
    Exercise(
        name="kv_cache_bytes",
        zone="03_efficiency",
        reference=attnlab.kv_cache_bytes,
        points=2,
        cases=_kv_cases,
        rtol=0.0,
        atol=0.0,
        description="KV cache bytes: 2 * layers * kv heads * head_dim * tokens * batch * bytes",
        mutants=[
            Mutant(
                "K and V counted once",
                lambda n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2: _kv(
                    n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element, kv=1
                ),
                "the cache holds keys AND values: multiply by 2.",
            ),
            Mutant(
                "counted bits",
                lambda n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2: _kv(
                    n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element, bits=8
                ),
                "you counted bits: bytes_per_element is already in bytes (2 for fp16), do not "
                "multiply by 8.",
            ),
            Mutant(
                "counted elements",
                lambda n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2: _kv(
                    n_layers, n_kv_heads, head_dim, seq_len, batch, 1
                ),
                "you returned elements: multiply by bytes_per_element to get bytes.",
            ),
            Mutant(
                "forgot the batch",
                lambda n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2: _kv(
                    n_layers, n_kv_heads, head_dim, seq_len, 1, bytes_per_element
                ),
                "every sequence of the batch has its own cache: multiply by batch.",
            ),
            Mutant(
                "forgot the layers",
                lambda n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2: _kv(
                    1, n_kv_heads, head_dim, seq_len, batch, bytes_per_element
                ),
                "every layer has its own keys and values: multiply by n_layers.",
            ),
            Mutant(
                "K and V counted twice each",
                lambda n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2: _kv(
                    n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element, kv=4
                ),
                "K and V are one tensor each per layer: the factor is 2, not 4.",
            ),
        ],
    )
)


# ================================================================ kv_cache_attention_step


def _kv_cases():
    rng = np.random.default_rng(40)

    def arrays(lead, t, d_k, d_v, scale=1.0):
        q = scale * rng.normal(size=lead + (1, d_k))
        k = scale * rng.normal(size=lead + (1, d_k))
        v = rng.normal(size=lead + (1, d_v))
        return q, k, v, scale * rng.normal(size=lead + (t, d_k)), rng.normal(size=lead + (t, d_v))

    return [
        Case("H=2 heads, 3 cached tokens, d=4", arrays((2,), 3, 4, 4)),
        Case(
            "an empty cache (T=0): the first token can only attend to itself", arrays((2,), 0, 4, 4)
        ),
        Case(
            "a batch of 2 sequences, 3 heads, 5 cached tokens, d_k=8, d_v=6",
            arrays((2, 3), 5, 8, 6),
        ),
        Case("one cached token (T=1), 1 head, d=3", arrays((1,), 1, 3, 3), hidden=True),
        Case("large scores (q and k scaled by 20)", arrays((2,), 6, 4, 4, scale=20.0), hidden=True),
        Case(
            "two leading batch axes (2, 2), 2 heads, 4 cached tokens",
            arrays((2, 2, 2), 4, 3, 5),
            hidden=True,
        ),
        Case(
            "float32 inputs, 4 heads, 7 cached tokens",
            tuple(a.astype(np.float32) for a in arrays((4,), 7, 8, 8)),
            hidden=True,
            rtol=1e-4,
            atol=1e-6,
        ),
    ]


def _concat(cache, new, axis=-2, new_first=False):
    parts = [new, cache] if new_first else [cache, new]
    return np.concatenate(parts, axis=axis)


def _kv_step(
    q_new,
    k_new,
    v_new,
    k_cache,
    v_cache,
    *,
    axis=-2,
    new_first=False,
    scale=True,
    keep_old_cache=False,
    cache_only=False,
    top_left=False,
    softmax_axis=-1,
):
    """The correct step, with one mistake switched on by a keyword."""
    k_all = _concat(k_cache, k_new, axis, new_first)
    v_all = _concat(v_cache, v_new, axis, new_first)
    k_att, v_att = (k_cache, v_cache) if cache_only else (k_all, v_all)
    scores = q_new @ np.swapaxes(k_att, -1, -2)
    if scale:
        scores = scores / np.sqrt(q_new.shape[-1])
    if top_left:
        scores = np.where(np.tril(np.ones(scores.shape[-2:], dtype=bool)), scores, -np.inf)
    out = attnlab.softmax(scores, axis=softmax_axis) @ v_att
    if keep_old_cache:
        return out, k_cache, v_cache
    return out, k_all, v_all


def _kv_mutant(**mistake):
    return lambda q_new, k_new, v_new, k_cache, v_cache: _kv_step(
        q_new, k_new, v_new, k_cache, v_cache, **mistake
    )


register(
    Exercise(
        name="kv_cache_attention_step",
        zone="04_implementation",
        reference=attnlab.kv_cache_attention_step,
        points=3,
        cases=_kv_cases,
        description="one decoding step: append k_new, v_new to the caches and attend from q_new",
        mutants=[
            Mutant(
                "cache not appended",
                _kv_mutant(keep_old_cache=True),
                "the caches you return did not grow: return k_cache and v_cache with the new "
                "key and value appended (np.concatenate([k_cache, k_new], axis=-2)), so the "
                "next step sees this token.",
            ),
            Mutant(
                "new token not attended",
                _kv_mutant(cache_only=True),
                "the new query attends only to the old cache: append k_new and v_new first, "
                "then attend over all T + 1 keys (a token may look at itself).",
            ),
            Mutant(
                "appended on the wrong axis",
                _kv_mutant(axis=0),
                "concatenated on the wrong axis: tokens live on axis -2 of (..., H, T, d); use "
                "np.concatenate([k_cache, k_new], axis=-2).",
            ),
            Mutant(
                "new token put first",
                _kv_mutant(new_first=True),
                "the new key/value is put in front of the cache: append it at the end "
                "([k_cache, k_new]) so position t of the cache is token t.",
            ),
            Mutant(
                "missing 1/sqrt(d)",
                _kv_mutant(scale=False),
                "the scores are not scaled: divide q_new @ k^T by sqrt(d_k), d_k = q_new.shape[-1].",
            ),
            Mutant(
                "causal mask on the single query",
                _kv_mutant(top_left=True),
                "a causal mask applied to the single new query hides the cache (np.tril of a "
                "1 x (T+1) matrix keeps only key 0). The newest token may see every cached "
                "key: no mask is needed, or a bottom-right aligned one (attnlab.causal_mask(1, T + 1)).",
            ),
            Mutant(
                "softmax over the query axis",
                _kv_mutant(softmax_axis=-2),
                "softmax over the wrong axis: with one query, normalising over queries makes "
                "every weight 1. Normalise over the keys, the last axis.",
            ),
        ],
    )
)

# ================================================================ grouped_query_attention


def _gqa_cases():
    rng = np.random.default_rng(41)
    extra = np.random.default_rng(
        141
    )  # the visible cases added later: the hidden inputs stay as they were

    def qkv(lead, h, h_kv, n_q, n_k, d, scale=1.0, gen=None):
        gen = gen or rng
        q = scale * gen.normal(size=lead + (h, n_q, d))
        k = scale * gen.normal(size=lead + (h_kv, n_k, d))
        return q, k, gen.normal(size=lead + (h_kv, n_k, d))

    return [
        Case("H=4 query heads sharing H_kv=2 key/value heads, N=5, d=8", qkv((), 4, 2, 5, 5, 8)),
        Case("multi-query attention: H=4 query heads, one key/value head", qkv((), 4, 1, 5, 5, 8)),
        Case("causal=True, H=6 query heads, H_kv=3, N=7", qkv((), 6, 3, 7, 7, 4), {"causal": True}),
        Case(
            "causal with 2 queries and 5 keys: query i sees keys j <= i + 3 (bottom-right aligned)",
            qkv((), 4, 2, 2, 5, 8, gen=extra),
            {"causal": True},
        ),
        Case("H_kv = H = 3 (plain multi-head attention)", qkv((), 3, 3, 4, 4, 5), hidden=True),
        Case(
            "a batch of 2, H=8, H_kv=2, N=6, causal",
            qkv((2,), 8, 2, 6, 6, 4),
            {"causal": True},
            hidden=True,
        ),
        Case(
            "causal with 3 queries and 7 keys (bottom-right aligned, as after a KV cache)",
            qkv((), 4, 2, 3, 7, 8),
            {"causal": True},
            hidden=True,
        ),
        Case(
            "large scores (q and k scaled by 10)", qkv((), 4, 2, 5, 5, 8, scale=10.0), hidden=True
        ),
        Case(
            "float32 inputs",
            tuple(a.astype(np.float32) for a in qkv((2,), 6, 2, 5, 5, 8)),
            hidden=True,
            rtol=1e-4,
            atol=1e-6,
        ),
    ]


def _gqa(q, k, v, causal=False, *, kv_index=None, scale=True, causal_fn=None, use_causal=True):
    """Grouped-query attention with one mistake switched on; kv_index(h, H, H_kv) picks the kv head."""
    n_heads, n_kv = q.shape[-3], k.shape[-3]
    if kv_index is None:

        def kv_index(h, n_heads, n_kv):
            return h // (n_heads // n_kv)

    heads = [kv_index(h, n_heads, n_kv) for h in range(n_heads)]
    k, v = np.take(k, heads, axis=-3), np.take(v, heads, axis=-3)
    scores = q @ np.swapaxes(k, -1, -2)
    if scale:
        scores = scores / np.sqrt(q.shape[-1])
    if causal and use_causal:
        mask = (causal_fn or attnlab.causal_mask)(q.shape[-2], k.shape[-2])
        scores = np.where(mask, scores, -np.inf)
    return attnlab.softmax(scores, axis=-1) @ v


def _gqa_mutant(**mistake):
    return lambda q, k, v, causal=False: _gqa(q, k, v, causal, **mistake)


register(
    Exercise(
        name="grouped_query_attention",
        zone="04_implementation",
        reference=attnlab.grouped_query_attention,
        points=3,
        cases=_gqa_cases,
        description="H query heads share H_kv key/value heads: head h reads kv head h // (H // H_kv)",
        mutants=[
            Mutant(
                "heads mapped with h % H_kv",
                _gqa_mutant(kv_index=lambda h, n, n_kv: h % n_kv),
                "query heads are dealt to key/value heads round-robin (h % H_kv, np.tile). "
                "Consecutive query heads share a kv head: head h uses kv head h // (H // H_kv) "
                "(np.repeat(k, H // H_kv, axis=-3)).",
            ),
            Mutant(
                "group size taken as H_kv",
                _gqa_mutant(kv_index=lambda h, n, n_kv: h // n_kv),
                "each kv head serves H // H_kv query heads (the group size), so head h uses kv "
                "head h // (H // H_kv), not h // H_kv.",
            ),
            Mutant(
                "every head reads kv head 0",
                _gqa_mutant(kv_index=lambda h, n, n_kv: 0),
                "every query head reads key/value head 0: with H_kv > 1 each group of "
                "H // H_kv query heads has its own kv head.",
            ),
            Mutant(
                "missing 1/sqrt(d)",
                _gqa_mutant(scale=False),
                "the scores are not scaled: divide q @ k^T by sqrt(d_k), d_k = q.shape[-1].",
            ),
            Mutant(
                "causal ignored",
                _gqa_mutant(use_causal=False),
                "causal=True is ignored: hide future keys with attnlab.causal_mask(N_q, N_k) "
                "before the softmax.",
            ),
            Mutant(
                "causal mask top-left aligned",
                _gqa_mutant(causal_fn=lambda n_q, n_k: np.tril(np.ones((n_q, n_k), dtype=bool))),
                "causal mask aligned top-left: with fewer queries than keys, query i may see "
                "keys j <= i + (N_k - N_q); use attnlab.causal_mask(N_q, N_k).",
            ),
        ],
    )
)
