"""GPU benchmark: attnlab's Triton FlashAttention vs PyTorch SDPA (flash and cuDNN backends).

For B = 4, H = 32, N = 1k ... 16k, d = 64 and 128, causal and not, float16 and bfloat16, prints
TFLOP/s of the forward, of the backward alone and of forward + backward, the ratio to SDPA's
flash backend and the fraction of the GPU's dense fp16/bf16 peak. FLOPs: forward
4 * B * H * N^2 * d (two matmuls of 2 N^2 d each), half of it when causal; backward 2.5x the
forward (five matmuls instead of two).
Targets (issue 4): forward >= 0.9x SDPA-flash at d = 64, N >= 4096; backward >= 0.7x.

One command on a GPU machine:
    python bench/flash_gpu.py                 # full sweep
    python bench/flash_gpu.py --quick         # d = 64, 128 at N = 4096, 8192, float16
    python bench/flash_gpu.py --out results.md --configs-out configs.json
    python bench/flash_gpu.py --json-out lib/attnlab/flash/measurements/flash_gpu.json

--json-out writes the table as data in the format of attnlab.gpu_measurements(); written to
that path it replaces the run the course notebooks print (04_implementation).

The first run of each shape compiles and times the few autotuning candidates of its head-dim
class (attnlab.flash.triton_autotune.CONFIGS); compiled kernels and autotuning timings are
cached on disk under TRITON_CACHE_DIR (default ~/.triton/cache), so a second run on the same
machine skips both. The configurations the autotuner chose are listed after the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date

import attnlab
import torch

# Dense (no sparsity) fp16/bf16 tensor-core peaks in TFLOP/s, from the vendor data sheets.
PEAK_TFLOPS = {
    "H200": 989.4,
    "H100 SXM": 989.4,
    "H100 80GB HBM3": 989.4,
    "H100 PCIe": 756.0,
    "H100": 989.4,
    "A100": 312.0,
    "L40S": 362.0,
    "4090": 165.2,
}


def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    for key, value in PEAK_TFLOPS.items():
        if key in name:
            return value
    return None


def forward_flops(b, h, n, d, causal) -> float:
    flops = 4.0 * b * h * n * n * d
    return flops / 2 if causal else flops


def implementations():
    """name -> attention function (q, k, v, causal) -> out, or None where unavailable."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def sdpa(backend):
        def run(q, k, v, causal):
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)

        return run

    impls = {
        "attnlab": lambda q, k, v, causal: attnlab.flash_attention_triton(q, k, v, causal=causal),
        "sdpa-flash": sdpa(SDPBackend.FLASH_ATTENTION),
    }
    if hasattr(SDPBackend, "CUDNN_ATTENTION"):
        impls["sdpa-cudnn"] = sdpa(SDPBackend.CUDNN_ATTENTION)
    return impls


def time_ms(fn) -> float:
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=100)


def measure(fn, q, k, v, causal):
    """(forward ms, backward-alone ms, forward+backward ms), or None if the backend refuses."""
    try:
        out = fn(q, k, v, causal)
    except RuntimeError as err:  # e.g. a backend that does not support this shape or GPU
        print(f"    skipped: {str(err).splitlines()[0][:100]}", file=sys.stderr)
        return None
    dout = torch.randn_like(out)
    fwd = time_ms(lambda: fn(q, k, v, causal))
    bwd = time_ms(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True))

    def fwd_bwd():
        torch.autograd.grad(fn(q, k, v, causal), (q, k, v), dout)

    return fwd, bwd, time_ms(fwd_bwd)


def check_correctness(dtype) -> None:
    """Outputs and gradients of attnlab vs SDPA on one small case before timing."""
    torch.manual_seed(0)
    q, k, v = (
        torch.randn(2, 4, 333, 64, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3)
    )
    for causal in (False, True):
        out = attnlab.flash_attention_triton(q, k, v, causal=causal)
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        dout = torch.randn_like(out)
        got = torch.autograd.grad(out, (q, k, v), dout)
        want = torch.autograd.grad(ref, (q, k, v), dout)
        for a, b in zip((out, *got), (ref, *want)):
            torch.testing.assert_close(a, b, atol=3e-2, rtol=3e-2)
    print(f"# correctness vs SDPA ({dtype}): ok")


def chosen_configs() -> list[dict]:
    """The configuration the autotuner chose for each kernel and tuning key, in this process."""
    from attnlab.flash import triton_autotune

    rows = []
    for name, kernel in zip(("fwd", "dkdv", "dq"), triton_autotune.autotuned()):
        for key, cfg in kernel.cache.items():
            n_q, n_k, d, causal, *dtypes = key
            rows.append(
                {
                    "kernel": name,
                    "N_Q": n_q,
                    "N_K": n_k,
                    "d": d,
                    "causal": causal,
                    "dtype": dtypes[0] if dtypes else None,
                    **cfg.kwargs,
                    "num_warps": cfg.num_warps,
                    "num_stages": cfg.num_stages,
                }
            )
    return rows


IMPLEMENTATIONS = {
    "attnlab": "attnlab.flash_attention_triton",
    "sdpa-flash": "torch SDPA, SDPBackend.FLASH_ATTENTION",
    "sdpa-cudnn": "torch SDPA, SDPBackend.CUDNN_ATTENTION",
}


def measurements_json(
    records, *, gpu, peak, batch, heads, torch_version, triton_version, day=None
) -> dict:
    """The run in attnlab.gpu_measurements()' format, so it can replace the stored one.

    records: dicts with dtype, causal, d, N and tflops {implementation: (fwd, bwd, fwd+bwd)
    TFLOP/s, or None where the backend refused the shape}.
    """
    impls = list(records[0]["tflops"]) if records else []
    rows = [
        {
            **r,
            "tflops": {
                i: None
                if t is None
                else dict(zip(("fwd", "bwd", "fwd+bwd"), (round(x, 1) for x in t)))
                for i, t in r["tflops"].items()
            },
        }
        for r in records
    ]
    return {
        "source": "bench/flash_gpu.py",
        "date": str(day or date.today()),
        "gpu": gpu,
        "torch": torch_version,
        "triton": triton_version,
        "batch": batch,
        "heads": heads,
        "peak_tflops": peak,
        "peak_source": "dense fp16/bf16 tensor-core peak, vendor datasheet "
        "(bench/flash_gpu.py PEAK_TFLOPS or --peak-tflops)",
        "flops": "forward 4*B*H*N^2*d (half when causal); backward 2.5x the forward",
        "implementations": {i: IMPLEMENTATIONS.get(i, i) for i in impls},
        "rows": rows,
    }


def main() -> None:
    started = time.time()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--dtypes", nargs="+", default=["float16", "bfloat16"])
    parser.add_argument("--causal", nargs="+", default=["false", "true"])
    parser.add_argument(
        "--quick", action="store_true", help="d = 64, 128 at N = 4096, 8192, float16 only"
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="GPU dense fp16 peak, if its name is not in the built-in table",
    )
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    parser.add_argument(
        "--json-out",
        default=None,
        help="write the TFLOP/s as JSON (the format of attnlab.gpu_measurements)",
    )
    parser.add_argument(
        "--configs-out", default=None, help="write the autotuned configurations here as JSON"
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("flash_gpu.py needs a CUDA GPU (for the CPU use bench/flash_cpu.py)")
    if args.quick:
        args.sizes, args.dtypes = [4096, 8192], ["float16"]

    name = torch.cuda.get_device_name()
    peak = peak_tflops(name, args.peak_tflops)
    import triton

    lines = [
        (
            f"# {date.today()}  {name}  torch {torch.__version__}  triton {triton.__version__}  "
            f"B={args.batch} H={args.heads}  peak {peak or '?'} TFLOP/s (dense fp16/bf16)"
        ),
    ]
    print(lines[0], flush=True)
    for dtype_name in args.dtypes:
        check_correctness(getattr(torch, dtype_name))

    impls = implementations()
    header = ["dtype", "causal", "d", "N"]
    for impl in impls:
        header += [f"{impl} fwd", f"{impl} bwd", f"{impl} fwd+bwd"]
    header += ["fwd / flash", "bwd / flash", "fwd % peak", "fwd+bwd % peak"]
    lines += ["", "TFLOP/s", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    print("\n".join(lines[1:]), flush=True)

    checks = []
    records = []  # the same numbers for --json-out
    for dtype_name in args.dtypes:
        dtype = getattr(torch, dtype_name)
        for causal in (c.lower() in ("1", "true", "yes") for c in args.causal):
            for d in args.dims:
                for n in args.sizes:
                    torch.manual_seed(0)
                    q, k, v = (
                        torch.randn(
                            args.batch,
                            args.heads,
                            n,
                            d,
                            device="cuda",
                            dtype=dtype,
                            requires_grad=True,
                        )
                        for _ in range(3)
                    )
                    fwd_flops = forward_flops(args.batch, args.heads, n, d, causal)
                    tflops = {}
                    for impl, fn in impls.items():
                        times = measure(fn, q, k, v, causal)
                        if times is not None:
                            fwd_ms, bwd_ms, both_ms = times
                            tflops[impl] = (
                                fwd_flops / fwd_ms * 1e-9,
                                2.5 * fwd_flops / bwd_ms * 1e-9,
                                3.5 * fwd_flops / both_ms * 1e-9,
                            )
                    records.append(
                        {
                            "dtype": dtype_name,
                            "causal": causal,
                            "d": d,
                            "N": n,
                            "tflops": {i: tflops.get(i) for i in impls},
                        }
                    )
                    row = [dtype_name, str(causal), str(d), str(n)]
                    for impl in impls:
                        row += [f"{x:.0f}" for x in tflops[impl]] if impl in tflops else ["n/a"] * 3
                    ours, flash = tflops.get("attnlab"), tflops.get("sdpa-flash")
                    if ours and flash:
                        fwd_ratio, bwd_ratio = ours[0] / flash[0], ours[1] / flash[1]
                        row += [f"{fwd_ratio:.2f}", f"{bwd_ratio:.2f}"]
                        if d == 64 and n >= 4096:
                            checks.append((fwd_ratio, bwd_ratio))
                    else:
                        row += ["n/a", "n/a"]
                    if ours and peak:
                        row += [f"{100 * ours[0] / peak:.0f}%", f"{100 * ours[2] / peak:.0f}%"]
                    else:
                        row += ["n/a", "n/a"]
                    lines.append("| " + " | ".join(row) + " |")
                    print(lines[-1], flush=True)
                    del q, k, v
                    torch.cuda.empty_cache()

    if checks:
        worst_fwd = min(c[0] for c in checks)
        worst_bwd = min(c[1] for c in checks)
        lines += [
            "",
            (
                f"target forward >= 0.9x sdpa-flash (d=64, N>=4096): worst {worst_fwd:.2f}x -> "
                f"{'PASS' if worst_fwd >= 0.9 else 'FAIL'}"
            ),
            (
                f"target backward >= 0.7x sdpa-flash (d=64, N>=4096): worst {worst_bwd:.2f}x -> "
                f"{'PASS' if worst_bwd >= 0.7 else 'FAIL'}"
            ),
        ]
        print("\n".join(lines[-3:]))
    configs = chosen_configs()
    lines += [
        "",
        "Autotuned configurations (kernel, N_Q, N_K, d, causal, dtype -> BLOCK_M, "
        "BLOCK_N, num_warps, num_stages):",
        "",
    ]
    lines += [
        f"- {c['kernel']} {c['N_Q']} {c['N_K']} {c['d']} {c['causal']} {c['dtype']} -> "
        f"{c['BLOCK_M']} {c['BLOCK_N']} {c['num_warps']} {c['num_stages']}"
        for c in configs
    ]
    lines += ["", f"Total time {time.time() - started:.0f} s (compiling and autotuning included)."]
    print("\n".join(lines[-len(configs) - 5 :]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    if args.json_out:
        run = measurements_json(
            records,
            gpu=name,
            peak=peak,
            batch=args.batch,
            heads=args.heads,
            torch_version=torch.__version__,
            triton_version=triton.__version__,
        )
        with open(args.json_out, "w") as f:
            json.dump(run, f, indent=1)
            f.write("\n")
    if args.configs_out:
        with open(args.configs_out, "w") as f:
            json.dump(
                {
                    "device": name,
                    "torch": torch.__version__,
                    "triton": triton.__version__,
                    "configs": configs,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
