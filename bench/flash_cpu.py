"""CPU benchmark: naive NumPy attention vs the tiled FlashAttention forward (float32, d = 64).

Prints, for N = 1024 ... 8192, the best-of-repeats time and the tracemalloc peak memory of
  naive-min  softmax(q k^T / sqrt(d)) v in three float32 lines (an (N, N) matrix),
  naive-lib  attnlab.scaled_dot_product_attention (the course's reference; also returns the
             weights and handles masks),
  tiled      attnlab.flash_attention_numpy(block_size=B),
and the ratios tiled / naive. Targets (issue 4): at N = 4096 tiled peak memory >= 50x smaller
than naive-min, and tiled time <= 1.5x naive-min at every N.

BLAS runs single-threaded by default (--blas-threads): on a small shared machine, threaded
OpenBLAS on small tiles mostly waits for busy cores, which would measure the neighbours.

    python bench/flash_cpu.py [--block-size 256] [--sizes 1024 2048 4096 8192]
"""

from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__":  # must happen before NumPy loads its BLAS
    _threads = "1"
    if "--blas-threads" in sys.argv:
        _threads = sys.argv[sys.argv.index("--blas-threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)

import math
import platform
from datetime import date

import attnlab
import numpy as np


def naive_min(q, k, v):
    """softmax(q k^T / sqrt(d)) v, materialising the (N, N) scores, all in float32."""
    s = (q @ k.T) * (1.0 / math.sqrt(q.shape[-1]))
    s = np.exp(s - s.max(axis=-1, keepdims=True))
    return (s / s.sum(axis=-1, keepdims=True)) @ v


def peak_bytes(fn) -> int:
    """tracemalloc peak of one call (attnlab.peak_memory)."""
    return attnlab.peak_memory(fn)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()

    print(
        f"# {date.today()}  {platform.machine()} {os.cpu_count()} cores  numpy {np.__version__}"
        f"  BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS')}  d={args.d} float32  "
        f"block_size={args.block_size}"
    )
    header = (
        "N",
        "naive-min ms",
        "naive-lib ms",
        "tiled ms",
        "tiled/min time",
        "tiled/lib time",
        "naive-min MiB",
        "naive-lib MiB",
        "tiled MiB",
        "min/tiled mem",
        "lib/tiled mem",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    rng = np.random.default_rng(0)
    results = {}
    for n in args.sizes:
        q, k, v = (rng.standard_normal((n, args.d)).astype(np.float32) for _ in range(3))
        fns = {
            "min": lambda q=q, k=k, v=v: naive_min(q, k, v),
            "lib": lambda q=q, k=k, v=v: attnlab.scaled_dot_product_attention(q, k, v)[0],
            "tiled": lambda q=q, k=k, v=v: attnlab.flash_attention_numpy(
                q, k, v, block_size=args.block_size
            ),
        }
        ref = fns["min"]()
        assert np.allclose(fns["tiled"](), ref, atol=1e-4), "tiled output differs from naive"
        repeats = 3 if n <= 4096 else 2
        t = {name: attnlab.best_time(fn, repeats=repeats) for name, fn in fns.items()}
        m = {name: peak_bytes(fn) for name, fn in fns.items()}
        results[n] = (t, m)
        mib = 2**20
        print(
            f"| {n} | {t['min'] * 1e3:.0f} | {t['lib'] * 1e3:.0f} | {t['tiled'] * 1e3:.0f} | "
            f"{t['tiled'] / t['min']:.2f} | {t['tiled'] / t['lib']:.2f} | "
            f"{m['min'] / mib:.1f} | {m['lib'] / mib:.1f} | {m['tiled'] / mib:.2f} | "
            f"{m['min'] / m['tiled']:.0f}x | {m['lib'] / m['tiled']:.0f}x |",
            flush=True,
        )

    worst_time = max(t["tiled"] / t["min"] for t, _ in results.values())
    print(
        f"\ntarget tiled time <= 1.5x naive-min at every N: worst {worst_time:.2f}x -> "
        f"{'PASS' if worst_time <= 1.5 else 'FAIL'}"
    )
    if 4096 in results:
        t, m = results[4096]
        ratio = m["min"] / m["tiled"]
        print(
            f"target peak memory >= 50x smaller at N=4096: {ratio:.0f}x -> "
            f"{'PASS' if ratio >= 50 else 'FAIL'}"
        )


if __name__ == "__main__":
    main()
