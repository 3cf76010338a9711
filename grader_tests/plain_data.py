"""Plain data across the sandbox wall: values that can be read without running any code.

What a learner's function returned inside the grading sandbox travels to the trusted grader
as one JSON file plus one `.npz` of arrays, read back with `allow_pickle=False`: numbers,
booleans, strings, None, arrays of numbers or booleans, and tuples / lists / dicts of
those. Anything else (an object with a custom `__eq__`, a generator, a tensor) is written
as `{"type": "object", "name": ...}` and compares unequal to every expected value.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ForeignObject", "decode", "encode", "read_record", "write_record"]

MAX_RECORD_BYTES = 64 * 2**20  # a record larger than this is refused, not read
MAX_DEPTH = 8


class ForeignObject:
    """Stands for a value that was not plain data inside the sandbox (its type name only)."""

    def __init__(self, name: str):
        self.name = str(name)[:100]

    def __repr__(self) -> str:
        return f"<an object of type {self.name}>"


def encode(value: Any, arrays: dict[str, np.ndarray], depth: int = 0) -> Any:
    """`value` as JSON-ready data; arrays are stored in `arrays` under a fresh key."""
    kind = type(value)
    if value is None or kind in (bool, str):
        return {"type": kind.__name__ if value is not None else "none", "value": value}
    if kind is int:
        return {"type": "int", "value": str(value)}  # big ints stay exact
    if kind is float:
        return {"type": "float", "value": repr(value)}  # inf and nan survive
    if isinstance(value, np.generic) and kind.__module__ == "numpy":
        value = np.asarray(value)
        kind = np.ndarray
    if kind is np.ndarray and (value.dtype.kind in "biufc"):
        key = f"a{len(arrays)}"
        arrays[key] = np.array(value, copy=True)
        return {"type": "array", "key": key, "scalar": value.ndim == 0}
    if kind in (tuple, list) and depth < MAX_DEPTH:
        return {"type": kind.__name__, "items": [encode(v, arrays, depth + 1) for v in value]}
    if kind is dict and depth < MAX_DEPTH and all(type(k) is str for k in value):
        return {
            "type": "dict",
            "items": {k: encode(v, arrays, depth + 1) for k, v in value.items()},
        }
    return {"type": "object", "name": getattr(kind, "__qualname__", "?")}


def decode(data: Any, arrays: dict[str, np.ndarray], depth: int = 0) -> Any:
    """The inverse of `encode`, trusting nothing: malformed data raises ValueError."""
    if not isinstance(data, dict) or depth > MAX_DEPTH + 1:
        raise ValueError("malformed record")
    kind = data.get("type")
    if kind == "none":
        return None
    if kind == "bool" and type(data.get("value")) is bool:
        return data["value"]
    if kind == "str" and type(data.get("value")) is str:
        return data["value"]
    if kind == "int":
        return int(str(data.get("value"))[:5000])
    if kind == "float":
        return float(str(data.get("value"))[:100])  # repr() of a float: "inf" and "nan" too
    if kind == "array":
        array = arrays.get(str(data.get("key")))
        if array is None:
            raise ValueError("malformed record: missing array")
        return array[()] if data.get("scalar") is True and array.ndim == 0 else array
    if kind in ("tuple", "list") and isinstance(data.get("items"), list):
        items = [decode(v, arrays, depth + 1) for v in data["items"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict" and isinstance(data.get("items"), dict):
        return {str(k): decode(v, arrays, depth + 1) for k, v in data["items"].items()}
    if kind == "object":
        return ForeignObject(data.get("name", "?"))
    raise ValueError(f"malformed record: unknown type {kind!r}")


def write_record(path: Path, record: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write `record` (JSON-ready) and its arrays as one `.npz` file (arrays + `record.json`)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with zipfile.ZipFile(buffer, "a") as zf:
        zf.writestr("record.json", json.dumps(record, allow_nan=False))
    tmp = Path(str(path) + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


def read_record(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read what `write_record` wrote, refusing pickles, oversize files and links."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise ValueError(f"{path.name}: not a regular file")
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise ValueError(f"{path.name}: larger than {MAX_RECORD_BYTES // 2**20} MiB")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        total = sum(info.file_size for info in zf.infolist())
        if total > 4 * MAX_RECORD_BYTES:
            raise ValueError(
                f"{path.name}: expands to more than {4 * MAX_RECORD_BYTES // 2**20} MiB"
            )
        record = json.loads(zf.read("record.json"))
    arrays = {}
    with np.load(path, allow_pickle=False) as npz:
        for name in names:
            if name.endswith(".npy"):
                arrays[name[:-4]] = npz[name[:-4]]
    if not isinstance(record, dict):
        raise ValueError(f"{path.name}: malformed record")
    return record, arrays
