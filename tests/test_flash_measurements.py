"""The measured GPU table (attnlab.gpu_measurements): it loads, ships with the package, and the
printed ratios are those of its rows; bench/flash_gpu.py writes the same format."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import tomllib
from pathlib import Path

import attnlab
from attnlab.flash import gpu_results

ROOT = Path(__file__).resolve().parent.parent
PASSES = ("fwd", "bwd")


def _table_rows(text: str) -> list[list[str]]:
    """The data lines of format_gpu_measurements' table, split into cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("-"))
    return [line.split() for line in lines[start + 1 :]]


def test_data_loads_and_every_row_has_the_fields():
    run = attnlab.gpu_measurements()
    for key in ("gpu", "torch", "triton", "batch", "heads", "peak_tflops", "date", "rows"):
        assert run[key], key
    assert run["rows"]
    for row in run["rows"]:
        assert set(gpu_results.ROW_FIELDS) <= set(row)
        assert row["dtype"] in ("float16", "bfloat16", "float32")
        assert isinstance(row["causal"], bool)
        for p in PASSES:
            assert row["tflops"]["attnlab"][p] > 0, row
        for impl in run["implementations"]:  # a backend that refused a shape has None
            assert row["tflops"][impl] is None or set(PASSES) <= set(row["tflops"][impl]), row


def test_printed_numbers_and_ratios_are_those_of_the_rows():
    run = attnlab.gpu_measurements()
    printed = _table_rows(attnlab.format_gpu_measurements(run))
    assert len(printed) == len(run["rows"])
    impls = list(run["implementations"])
    for row, cells in zip(run["rows"], printed):
        t = row["tflops"]
        assert cells[2:4] == [str(row["d"]), str(row["N"])]
        assert cells[4 : 4 + 2 * len(impls)] == [f"{t[i][p]:.0f}" for i in impls for p in PASSES]
        expected = [
            f"{t['attnlab'][p] / t[ref][p]:.2f}"
            for ref in ("sdpa-flash", "sdpa-cudnn")
            for p in PASSES
        ]
        expected += [f"{100 * t['attnlab'][p] / run['peak_tflops']:.0f}%" for p in PASSES]
        assert cells[4 + 2 * len(impls) :] == expected


def test_missing_numbers_print_as_na():
    run = attnlab.gpu_measurements()
    run["rows"] = [dict(run["rows"][0], tflops={**run["rows"][0]["tflops"], "sdpa-cudnn": None})]
    cells = _table_rows(attnlab.format_gpu_measurements(run))[0]
    assert cells.count("n/a") == 4  # cuDNN fwd, bwd and the two ratios to it


def test_data_file_is_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["attnlab.flash"]
    assert any(fnmatch.fnmatch(gpu_results.MEASUREMENTS, p) for p in patterns)
    assert (ROOT / "lib/attnlab/flash" / gpu_results.MEASUREMENTS).is_file()


def test_bench_json_out_is_read_back(tmp_path):
    spec = importlib.util.spec_from_file_location("flash_gpu", ROOT / "bench/flash_gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    records = [
        {
            "dtype": "float16",
            "causal": True,
            "d": 64,
            "N": 1024,
            "tflops": {
                "attnlab": (300.0, 250.0, 260.0),
                "sdpa-flash": (200.0, 200.0, 200.0),
                "sdpa-cudnn": None,
            },
        }
    ]
    run = bench.measurements_json(
        records, gpu="GPU X", peak=1000.0, batch=2, heads=3, torch_version="t", triton_version="tr"
    )
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    loaded = attnlab.gpu_measurements(path)
    assert loaded["rows"][0]["tflops"]["attnlab"] == {"fwd": 300.0, "bwd": 250.0, "fwd+bwd": 260.0}
    cells = _table_rows(attnlab.format_gpu_measurements(loaded))[0]
    assert cells[-6:] == [
        f"{300 / 200:.2f}",
        f"{250 / 200:.2f}",
        "n/a",
        "n/a",
        f"{100 * 300 / 1000:.0f}%",
        f"{100 * 250 / 1000:.0f}%",
    ]
