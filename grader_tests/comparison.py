"""Comparing a learner's output with the expected one: `compare()` and the short printed forms.

The NumPy routines used for comparing are bound when this module is imported (before any
learner code runs in a graded notebook), and outputs must be plain NumPy arrays / numbers /
tuples / dicts / strings (no objects with a custom `__eq__`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from attnlab.i18n import tr

# Bound at import time: a learner who later replaces numpy.allclose & co. does not change these.
_asarray = np.asarray
_isnan = np.isnan
_isinf = np.isinf
_isfinite = np.isfinite
_abs = np.abs
_all = np.all
_any = np.any
_array_equal = np.array_equal
_array2string = np.array2string
_issubdtype = np.issubdtype
_ndarray = np.ndarray
_generic = np.generic
_bool_ = np.bool_
_floating = np.floating
_number = np.number

__all__ = ["compare"]

MAX_DIFFS_SHOWN = 3
MAX_VALUES_SHOWN = 6


def _num(v) -> str:
    """One number, short: 4 significant digits, booleans and integers as they are."""
    if isinstance(v, (bool, _bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    try:
        return f"{float(v):.4g}"
    except (TypeError, ValueError):
        return repr(v)


def _values(x) -> str:
    """The first few entries of an array, flattened: "[0.09, 0.2447, ...]"."""
    flat = x.reshape(-1)
    shown = ", ".join(_num(v) for v in flat[:MAX_VALUES_SHOWN])
    return f"[{shown}{', ...' if flat.size > MAX_VALUES_SHOWN else ''}]"


def _fmt(x) -> str:
    """Short printable form of a value: arrays as shape, dtype and their first few values."""
    if type(x) is _ndarray:
        if x.ndim == 0:
            return f"{_num(x[()])} (dtype {x.dtype})"
        return f"shape {x.shape}, dtype {x.dtype}, values {_values(x)}"
    if isinstance(x, tuple):
        return (
            "("
            + ", ".join(_fmt(v) if type(v) is not _ndarray else f"array {v.shape}" for v in x)
            + ")"
        )
    if isinstance(x, (float, _floating)):
        return _num(x)
    text = repr(x)
    return text if len(text) < 120 else text[:120] + "..."


def _index(idx: tuple) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _differences(exp, arr, bad) -> list[str]:
    """Expected vs got on both arrays, and at the first few differing entries."""
    lines = [tr("  expected: {value}", value=_fmt(exp)), tr("  got:      {value}", value=_fmt(arr))]
    if exp.ndim == 0:
        return lines
    where = np.argwhere(bad)
    for idx in where[:MAX_DIFFS_SHOWN]:
        idx = tuple(idx)
        lines.append(
            tr(
                "  at {index}: expected {expected}, got {got}",
                index=_index(idx),
                expected=_num(exp[idx]),
                got=_num(arr[idx]),
            )
        )
    if len(where) > MAX_DIFFS_SHOWN:
        lines.append(tr("  ... and {n} more", n=len(where) - MAX_DIFFS_SHOWN))
    return lines


def _as_plain_array(got, where: str):
    """Convert a learner's output to an ndarray, refusing objects that are not plain data."""
    kind = type(got)
    if kind is _ndarray:
        return got
    if kind in (int, float, bool) or isinstance(got, _generic):
        return _asarray(got)
    if kind in (list, tuple):
        try:
            arr = _asarray(got)
        except Exception:  # ragged lists and the like
            return None
        if arr.dtype == object:
            return None
        return arr
    return None


def compare(
    expected: Any,
    got: Any,
    rtol: float,
    atol: float,
    check_dtype: bool = False,
    where: str | None = None,
) -> str | None:
    """Return None when `got` matches `expected`, else a sentence saying what differs."""
    where = tr("output") if where is None else where
    if isinstance(expected, tuple):
        if type(got) not in (tuple, list):
            return tr(
                "{where}: expected a tuple of {n} values, got {kind}",
                where=where,
                n=len(expected),
                kind=type(got).__name__,
            )
        if len(got) != len(expected):
            return tr(
                "{where}: expected {n} values, got {m}", where=where, n=len(expected), m=len(got)
            )
        for i, (e, g) in enumerate(zip(expected, got)):
            msg = compare(e, g, rtol, atol, check_dtype, where=f"{where}[{i}]")
            if msg:
                return msg
        return None
    if isinstance(expected, dict):
        if type(got) is not dict:
            return tr("{where}: expected a dict, got {kind}", where=where, kind=type(got).__name__)
        if sorted(map(str, got)) != sorted(map(str, expected)):
            return tr(
                "{where}: expected keys {expected}, got {got}",
                where=where,
                expected=sorted(expected),
                got=sorted(got),
            )
        for key in expected:
            msg = compare(
                expected[key], got[key], rtol, atol, check_dtype, where=f"{where}[{key!r}]"
            )
            if msg:
                return msg
        return None
    if isinstance(expected, str):
        if type(got) is not str:
            return tr(
                "{where}: expected a string, got {kind}", where=where, kind=type(got).__name__
            )
        return (
            None
            if got.strip().lower() == expected.strip().lower()
            else (
                tr(
                    "{where}: expected {expected}, got {got}",
                    where=where,
                    expected=repr(expected),
                    got=repr(got),
                )
            )
        )
    exp = _asarray(expected)
    arr = _as_plain_array(got, where)
    if arr is None:
        return tr(
            "{where}: expected a NumPy array or number, got an object of type {kind}",
            where=where,
            kind=type(got).__name__,
        )
    if exp.dtype == _bool_:
        if arr.dtype != _bool_:
            return tr(
                "{where}: expected a boolean array (True/False), got dtype {dtype}",
                where=where,
                dtype=arr.dtype,
            )
        if arr.shape != exp.shape:
            return tr(
                "{where}: shape: expected {expected}, got {got}",
                where=where,
                expected=exp.shape,
                got=arr.shape,
            )
        if not _array_equal(arr, exp):
            bad = arr != exp
            return "\n".join(
                [
                    tr(
                        "{where}: {n} of {size} entries differ",
                        where=where,
                        n=int(bad.sum()),
                        size=exp.size,
                    )
                ]
                + _differences(exp, arr, bad)
            )
        return None
    if not (_issubdtype(arr.dtype, _number) or arr.dtype == _bool_):
        return tr("{where}: expected numbers, got dtype {dtype}", where=where, dtype=arr.dtype)
    if arr.shape != exp.shape:
        return tr(
            "{where}: shape: expected {expected}, got {got} (dtype {dtype})",
            where=where,
            expected=exp.shape,
            got=arr.shape,
            dtype=arr.dtype,
        )
    if check_dtype and _issubdtype(exp.dtype, _floating) and arr.dtype != exp.dtype:
        return tr(
            "{where}: dtype: expected {expected} (the input's dtype), got {got}; keep the "
            "input's floating type",
            where=where,
            expected=exp.dtype,
            got=arr.dtype,
        )
    shown = arr
    arr = arr.astype(float)
    expf = exp.astype(float)
    same_inf = (_isinf(expf) & (arr == expf)) | (_isnan(expf) & _isnan(arr))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = _abs(arr - expf)
        ok = same_inf | (diff <= atol + rtol * _abs(expf))
    if _all(ok):
        return None
    bad = ~ok
    tolerance = tr("tolerance rtol={rtol:g}, atol={atol:g}", rtol=rtol, atol=atol)
    new_nan = _isnan(arr) & ~_isnan(expf)
    if _any(new_nan):
        headline = tr(
            "{where}: {n} of {size} values are NaN where the correct result has none",
            where=where,
            n=int(new_nan.sum()),
            size=expf.size,
        )
    elif expf.ndim == 0:
        return tr(
            "{where}: expected {expected}, got {got} ({tolerance})",
            where=where,
            expected=_num(exp[()]),
            got=_num(shown[()]),
            tolerance=tolerance,
        )
    else:
        finite = bad & _isfinite(diff)
        worst = f"{float(diff[finite].max()):.3g}" if _any(finite) else "inf"
        headline = tr(
            "{where}: {n} of {size} values differ (largest difference {worst}; {tolerance})",
            where=where,
            n=int(bad.sum()),
            size=expf.size,
            worst=worst,
            tolerance=tolerance,
        )
    return "\n".join([headline] + _differences(exp, shown, bad))
