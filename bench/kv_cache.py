"""Benchmark: greedy generation with vs without the KV cache, and against Hugging Face, on CPU.

A GPT-2-small-sized model (124M parameters: 12 layers, 12 heads, width 768, vocabulary
50257) with random weights, built as a transformers GPT2LMHeadModel and copied into
attnlab.GPT with GPT.from_hf_gpt2, so both run the same weights. Batch 1, a short random
prompt, 200 greedy tokens. Prints one table, measured in one process:
  - attnlab GPT.generate(use_cache=True) vs GPT.generate(use_cache=False): target >= 4x;
  - attnlab cached vs transformers GPT2LMHeadModel.generate(use_cache=True, do_sample=False):
    target >= 1.0x their tokens/s.

    python bench/kv_cache.py            # the full run (a few minutes on 2 cores)
    python bench/kv_cache.py --quick    # a small model and 64 tokens, seconds
Each run is timed --repeats times (minimum kept) after a short untimed warm-up.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from attnlab import GPT, best_time


def build_models(quick: bool):
    """The same random weights as a transformers GPT2LMHeadModel and as an attnlab GPT."""
    from transformers import GPT2Config, GPT2LMHeadModel

    size = (
        {"n_embd": 192, "n_layer": 4, "n_head": 6, "vocab_size": 8000} if quick else {}
    )  # defaults = GPT-2 small
    config = GPT2Config(n_positions=1024, bos_token_id=0, eos_token_id=0, **size)
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(config).eval()
    return hf, GPT.from_hf_gpt2(hf)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small model, 64 new tokens")
    parser.add_argument(
        "--new-tokens", type=int, default=None, help="tokens to generate (default 200, quick 64)"
    )
    parser.add_argument("--prompt", type=int, default=8, help="prompt length")
    parser.add_argument(
        "--repeats", type=int, default=1, help="timed runs per row (the minimum is kept)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_new = args.new_tokens or (64 if args.quick else 200)

    hf, model = build_models(args.quick)
    torch.manual_seed(1)
    prompt = torch.randint(0, hf.config.vocab_size, (1, args.prompt))
    ones = torch.ones_like(prompt)

    def ours(use_cache: bool, n: int):
        return lambda: model.generate(prompt, n, temperature=0, use_cache=use_cache)

    def hf_cached(n: int):
        def run():
            with torch.inference_mode():
                return hf.generate(
                    prompt,
                    attention_mask=ones,
                    max_new_tokens=n,
                    min_new_tokens=n,
                    do_sample=False,
                    use_cache=True,
                    pad_token_id=0,
                )

        return run

    for warm_up in (ours(True, 4), ours(False, 4), hf_cached(4)):  # first-call overheads
        warm_up()
    runs = {"cached": ours(True, n_new), "uncached": ours(False, n_new), "hf": hf_cached(n_new)}
    t_cached, t_uncached, t_hf = (best_time(run, repeats=args.repeats) for run in runs.values())
    # The tokens each one generates: all three must agree.
    out_cached, out_uncached, out_hf = (run() for run in runs.values())
    same = torch.equal(out_cached, out_uncached) and torch.equal(out_cached, out_hf)

    cache_bytes = sum(c.nbytes for c in model.new_kv_cache(1, args.prompt + n_new))
    n_params = model.num_parameters()
    print(
        f"# KV-cache benchmark, {datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"# model: {n_params / 1e6:.1f}M parameters, {model.config.n_layers} layers, {model.config.n_heads} heads, "
        f"width {model.config.d_model}; prompt {args.prompt} tokens, {n_new} greedy tokens, batch 1"
    )
    print(
        f"# KV cache for {args.prompt + n_new} positions: {cache_bytes / 2**20:.2f} MiB (float32); "
        f"identical tokens in all three runs: {'yes' if same else 'NO'}"
    )
    print()
    speedup, vs_hf = t_uncached / t_cached, t_hf / t_cached

    def verdict(ratio, target):
        return f"{ratio:.2f}x (target >= {target}x: {'met' if ratio >= target else 'MISSED'})"

    print("| run | seconds | tokens/s | ratio |")
    print("| --- | ---: | ---: | --- |")
    print(f"| attnlab GPT.generate, no cache | {t_uncached:.2f} | {n_new / t_uncached:.1f} | |")
    print(
        f"| attnlab GPT.generate, KV cache | {t_cached:.2f} | {n_new / t_cached:.1f} | "
        f"vs no cache {verdict(speedup, 4)}; vs transformers {verdict(vs_hf, 1.0)} |"
    )
    print(
        f"| transformers GPT2LMHeadModel.generate, KV cache | {t_hf:.2f} | {n_new / t_hf:.1f} | |"
    )


if __name__ == "__main__":
    main()
