"""Benchmark: Mamba selective scans and blocks, and recurrent vs KV-cached generation, on CPU.

Part 1 (d_inner=1536, d_state=16, batch 1, the Mamba-130M widths, random weights): for each
sequence length L, times (seconds)
  - attnlab.selective_scan_torch in "sequential" mode (seq: the reference loop of mamba_ssm,
    discretise all steps then recur) and "parallel" mode (par: chunked scan) on the same inputs,
  - Hugging Face transformers' own slow-path scan (mamba_selective_scan) on those inputs,
  - for context, a loop that discretises inside each step (fused, see fused_loop_scan),
  - a whole transformers MambaMixer (slow path: no mamba_ssm kernels) against
    attnlab.MambaBlock.from_hf(mixer) on the same weights and input,
and prints the ratios. Targets: parallel >= 3x sequential at L=2048; our block >= 2x HF.
Part 2: decode tokens/s after prompts of growing length: attnlab.MambaLM's recurrent state
(the step() calls of MambaLM.generate) against attnlab.GPT's KV cache (the single-token
forward passes of GPT.generate(use_cache=True)); the prompt's prefill is not timed.

    python bench/scan.py            # full run (a few minutes on 2 cores)
    python bench/scan.py --quick    # L in {256, 1024}, short generation
    python bench/scan.py --threads 1 --clock cpu   # CPU time: stable on a machine shared with others
Timings are the minimum over --repeats runs, measured in one process, interleaved.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings
from functools import partial

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import attnlab
import torch

CLOCK = time.perf_counter  # wall time; --clock cpu switches to this process's CPU time


def best_time(fn, repeats: int) -> float:
    """Minimum time of fn() over `repeats` calls (after one untimed warm-up if repeats > 1)."""
    if repeats > 1:
        fn()
    times = []
    for _ in range(repeats):
        start = CLOCK()
        fn()
        times.append(CLOCK() - start)
    return min(times)


def hf_mixer(d_model: int, d_inner: int, d_state: int):
    """A transformers MambaMixer with random weights, slow (pure torch) path, eval mode."""
    import transformers
    from transformers import MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer

    transformers.logging.set_verbosity_error()
    config = MambaConfig(
        hidden_size=d_model,
        intermediate_size=d_inner,
        state_size=d_state,
        num_hidden_layers=1,
        use_mambapy=False,
    )
    return MambaMixer(config, layer_idx=0).eval()


def fused_loop_scan(u, delta, A, B, C, D):
    """For context only: a loop over time that discretises inside each step (as
    attnlab.selective_scan does in NumPy) instead of materialising (batch, d_inner, L, d_state)
    tensors first. Not part of the library: it shows how much of the sequential cost is the
    materialisation."""
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[-1]):
        dt = delta[:, :, t, None]
        h = torch.exp(dt * A) * h + (dt * u[:, :, t, None]) * B[:, None, :, t]
        ys.append((h @ C[:, :, t, None])[..., 0])
    return torch.stack(ys, dim=-1) + D[:, None] * u


@torch.no_grad()
def bench_scans(lengths, repeats: int, d_inner: int = 1536, d_state: int = 16):
    from transformers.models.mamba.modeling_mamba import mamba_selective_scan

    torch.manual_seed(0)
    mixer = hf_mixer(d_inner // 2, d_inner, d_state)
    block = attnlab.MambaBlock.from_hf(mixer).eval()
    rows = []
    header = (
        f"{'L':>5} {'seq':>7} {'par':>7} {'HF scan':>7} {'fused':>7} {'seq/par':>7} "
        f"{'HFscan/par':>10} {'fused/par':>9} | {'HF mixer':>8} {'our block':>9} "
        f"{'HF/ours':>7} {'max|diff|':>9}"
    )
    print(header)
    print("-" * len(header))
    for L in lengths:
        x = torch.randn(1, L, d_inner // 2)
        s = block.scan_inputs(x)
        args = (s["u"], s["delta"], s["A"], s["B"], s["C"], s["D"])
        slow_repeats = max(1, repeats - 1) if L >= 2048 else repeats
        times = {}
        # interleave the candidates so that a burst of load on the machine hits all of them
        for _ in range(slow_repeats):
            for name, fn in (
                ("seq", partial(attnlab.selective_scan_torch, *args, mode="sequential")),
                ("par", partial(attnlab.selective_scan_torch, *args, mode="parallel")),
                ("hf_scan", partial(mamba_selective_scan, *args)),
                ("fused", partial(fused_loop_scan, *args)),
                ("hf", partial(mixer, x)),
                ("ours", partial(block, x)),
            ):
                times[name] = min(times.get(name, float("inf")), best_time(fn, 1))
        diff = (block(x) - mixer(x)).abs().max().item()
        row = dict(L=L, diff=diff, **times)
        rows.append(row)
        t = times
        print(
            f"{L:>5} {t['seq']:>7.3f} {t['par']:>7.3f} {t['hf_scan']:>7.3f} {t['fused']:>7.3f} "
            f"{t['seq'] / t['par']:>7.1f} {t['hf_scan'] / t['par']:>10.1f} "
            f"{t['fused'] / t['par']:>9.1f} | {t['hf']:>8.3f} {t['ours']:>9.3f} "
            f"{t['hf'] / t['ours']:>7.1f} {diff:>9.1e}",
            flush=True,
        )
    return rows


@torch.no_grad()
def gpt_decode_rate(gpt, prompt, new_tokens: int) -> float:
    """Tokens/s of GPT's cached decoding: the prompt fills a KV cache once (not timed), then
    each greedy token is one forward pass of a single token against the cache, exactly the
    calls GPT.generate(use_cache=True) makes."""
    cache = gpt.new_kv_cache(prompt.shape[0], max_len=prompt.shape[1] + new_tokens)
    logits = gpt(prompt, kv_cache=cache)[:, -1]
    start = CLOCK()
    for _ in range(new_tokens):
        token = logits.argmax(dim=-1, keepdim=True)
        logits = gpt(token, kv_cache=cache)[:, -1]
    return new_tokens / (CLOCK() - start)


@torch.no_grad()
def mamba_decode_rate(mamba, prompt, new_tokens: int) -> float:
    """Tokens/s of MambaLM's recurrent decoding: the prompt gives the state once (not timed),
    then each greedy token is one step() of the fixed-size state, as in MambaLM.generate."""
    logits, states = mamba(prompt, return_state=True)
    logits = logits[:, -1]
    start = CLOCK()
    for _ in range(new_tokens):
        token = logits.argmax(dim=-1)
        logits, states = mamba.step(token, states)
    return new_tokens / (CLOCK() - start)


@torch.no_grad()
def bench_generation(
    contexts, new_tokens: int, repeats: int, d_model: int = 256, n_layers: int = 4
):
    """Decode tokens/s after a prompt of each length (best of `repeats`), GPT vs Mamba."""
    torch.manual_seed(0)
    vocab = 256
    max_len = max(contexts) + new_tokens
    gpt = attnlab.GPT(
        attnlab.GPTConfig(
            vocab_size=vocab, context_length=max_len, d_model=d_model, n_layers=n_layers, n_heads=4
        )
    ).eval()
    # a Mamba layer holds ~3 * expand * d^2 = 6 d^2 weights, a GPT block 12 d^2: twice the layers
    mamba = attnlab.MambaLM(vocab, d_model=d_model, n_layers=2 * n_layers).eval()
    n_gpt = sum(p.numel() for p in gpt.parameters())
    n_mamba = sum(p.numel() for p in mamba.parameters())
    print(
        f"\nGPT: {n_gpt / 1e6:.2f}M params incl. a {max_len}-position table ({n_layers} layers); "
        f"MambaLM: {n_mamba / 1e6:.2f}M params ({2 * n_layers} layers); d_model={d_model}; "
        f"greedy decoding of {new_tokens} tokens, batch 1"
    )
    header = f"{'context':>8} {'GPT tok/s':>10} {'Mamba tok/s':>12} {'Mamba/GPT':>10}"
    print(header)
    print("-" * len(header))
    rows = []
    for n_ctx in contexts:
        prompt = torch.randint(0, vocab, (1, n_ctx))
        gpt_rate = max(gpt_decode_rate(gpt, prompt, new_tokens) for _ in range(repeats))
        mamba_rate = max(mamba_decode_rate(mamba, prompt, new_tokens) for _ in range(repeats))
        rows.append({"context": n_ctx, "gpt": gpt_rate, "mamba": mamba_rate})
        print(
            f"{n_ctx:>8} {gpt_rate:>10.0f} {mamba_rate:>12.0f} {mamba_rate / gpt_rate:>10.2f}",
            flush=True,
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="L in {256, 1024}, fewer tokens")
    parser.add_argument("--lengths", type=int, nargs="+", default=None, help="sequence lengths")
    parser.add_argument("--contexts", type=int, nargs="+", default=None, help="prompt lengths")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens generated per run")
    parser.add_argument("--repeats", type=int, default=3, help="timings keep the minimum")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: this process's CPU time, robust on a shared machine (needs --threads 1)",
    )
    parser.add_argument("--no-generation", action="store_true", help="skip part 2")
    args = parser.parse_args()
    lengths = args.lengths or ([256, 1024] if args.quick else [256, 512, 1024, 2048, 4096])
    contexts = args.contexts or ([64, 512] if args.quick else [64, 256, 1024, 4096])
    new_tokens = args.new_tokens or (16 if args.quick else 64)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        if torch.get_num_threads() != 1:
            parser.error("--clock cpu sums the CPU time of all threads: use it with --threads 1")
        global CLOCK
        CLOCK = time.process_time

    print(
        f"# bench/scan.py  {datetime.date.today()}  {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock"
    )
    print(
        "\nPart 1: selective scan and Mamba block, d_inner=1536, d_state=16, batch 1 (seconds, "
        "minimum over interleaved repeats)"
    )
    rows = bench_scans(lengths, args.repeats)
    at_2048 = [r for r in rows if r["L"] == 2048]
    if at_2048:
        r = at_2048[0]
        print(
            f"\nat L=2048: parallel/sequential speed-up {r['seq'] / r['par']:.1f}x (target >= 3x), "
            f"our block vs HF slow path {r['hf'] / r['ours']:.1f}x (target >= 2x)"
        )
    if not args.no_generation:
        print("\nPart 2: decode tokens/s after a prompt of the given length")
        bench_generation(contexts, new_tokens, max(1, args.repeats - 1))


if __name__ == "__main__":
    main()
