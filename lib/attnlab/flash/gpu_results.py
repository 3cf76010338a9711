"""Measured GPU speed of attnlab's Triton FlashAttention next to PyTorch SDPA, as data.

The numbers come from a run of bench/flash_gpu.py (`--json-out` writes this format), kept in
`measurements/flash_gpu.json` inside the package so the notebooks print them from the data
rather than from prose; a new GPU run replaces that file.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

__all__ = ["format_gpu_measurements", "gpu_measurement_ratios", "gpu_measurements"]

MEASUREMENTS = "measurements/flash_gpu.json"  # inside the attnlab.flash package
ROW_FIELDS = ("dtype", "causal", "d", "N", "tflops")
PASSES = ("fwd", "bwd")


def gpu_measurements(path: str | Path | None = None) -> dict:
    """The stored run: metadata (gpu, torch, triton, batch, heads, peak_tflops, ...) and rows.

    Each row has dtype, causal, d, N and tflops[implementation][pass] in TFLOP/s ("fwd",
    "bwd", optionally "fwd+bwd"; None where that backend refused the shape). `path` reads
    another file of the same format, e.g. one just written by bench/flash_gpu.py.
    """
    if path is None:
        text = resources.files(__package__).joinpath(MEASUREMENTS).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    run = json.loads(text)
    for i, row in enumerate(run["rows"]):
        missing = [f for f in ROW_FIELDS if f not in row]
        if missing:
            raise ValueError(f"row {i} of the GPU measurements lacks {missing}")
    return run


def _ratio(a, b):
    return a / b if a is not None and b else None


def gpu_measurement_ratios(row: dict, peak_tflops: float | None) -> dict:
    """attnlab / SDPA-flash, attnlab / cuDNN and attnlab's % of peak, per pass, for one row.

    Keys like "fwd / sdpa-flash" and "fwd % peak"; None where a number is missing.
    """
    ours = row["tflops"].get("attnlab") or {}
    out = {}
    for ref in ("sdpa-flash", "sdpa-cudnn"):
        theirs = row["tflops"].get(ref) or {}
        for p in PASSES:
            out[f"{p} / {ref}"] = _ratio(ours.get(p), theirs.get(p))
    for p in PASSES:
        frac = _ratio(ours.get(p), peak_tflops)
        out[f"{p} % peak"] = None if frac is None else 100 * frac
    return out


def format_gpu_measurements(run: dict | None = None) -> str:
    """The run as a text table: TFLOP/s of each implementation, then the ratios computed above.

    Ratios have 2 decimals, % of peak none; "n/a" where a number is missing.
    """
    run = gpu_measurements() if run is None else run
    impls = list(run.get("implementations") or run["rows"][0]["tflops"])
    names = {"attnlab": "attnlab", "sdpa-flash": "SDPA-flash", "sdpa-cudnn": "cuDNN"}
    groups = [names.get(i, i) for i in impls]
    groups += [f"attnlab/{names[r]}" for r in ("sdpa-flash", "sdpa-cudnn")] + ["% of peak"]
    short = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}
    rows = []
    for row in run["rows"]:
        cells = [
            short.get(row["dtype"], row["dtype"]),
            "yes" if row["causal"] else "no",
            str(row["d"]),
            str(row["N"]),
        ]
        for impl in impls:
            for p in PASSES:
                x = (row["tflops"].get(impl) or {}).get(p)
                cells.append("n/a" if x is None else f"{x:.0f}")
        ratios = gpu_measurement_ratios(row, run.get("peak_tflops"))
        for r in ("sdpa-flash", "sdpa-cudnn"):
            for p in PASSES:
                x = ratios[f"{p} / {r}"]
                cells.append("n/a" if x is None else f"{x:.2f}")
        for p in PASSES:
            x = ratios[f"{p} % peak"]
            cells.append("n/a" if x is None else f"{x:.0f}%")
        rows.append(cells)
    sub = ["dtype", "causal", "d", "N"] + list(PASSES) * len(groups)
    widths = [max(len(r[c]) for r in [sub, *rows]) for c in range(len(sub))]
    for g, label in enumerate(groups):  # widen a pair of columns to fit its group's label
        a, b = 4 + 2 * g, 5 + 2 * g
        extra = len(label) - (widths[a] + 2 + widths[b])
        if extra > 0:
            widths[a] += extra // 2
            widths[b] += extra - extra // 2
    top = [" " * sum(widths[:4]) + " " * 6]
    top += [
        label.center(widths[4 + 2 * g] + 2 + widths[5 + 2 * g]) for g, label in enumerate(groups)
    ]
    lines = [
        (
            f"{run['gpu']}, torch {run['torch']}, triton {run['triton']}, B={run['batch']}, "
            f"H={run['heads']}; {run['date']}"
        ),
        f"TFLOP/s: {run.get('flops', '')}",
        f"peak {run.get('peak_tflops', '?')} TFLOP/s: {run.get('peak_source', 'dense fp16/bf16')}",
        "",
        "    ".join(top).rstrip(),
    ]
    for i, cells in enumerate([sub, *rows]):
        lines.append(_join(cells, widths))
        if i == 0:
            lines.append(_join(["-" * w for w in widths], widths))
    return "\n".join(lines)


def _join(cells, widths):
    """Columns right-aligned; 2 spaces inside a (fwd, bwd) pair, 4 between groups."""
    out = ""
    for c, (cell, w) in enumerate(zip(cells, widths)):
        if c:
            out += "    " if c >= 4 and c % 2 == 0 else "  "
        out += cell.rjust(w)
    return out
