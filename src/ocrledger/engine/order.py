"""The engine's array work before the kernel: charge order, duplicate marking, dictionary encoding.

Each function uses the compiled helper of ``kernel/_core.pyx`` when it is loaded and falls back
to the plain-numpy equivalent otherwise (``OCRLEDGER_PURE_PYTHON=1`` or no build); the two give
identical results (``tests/engine/test_order.py``).
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ..kernel import select as _kernel

_core = _kernel.helpers()

_MAX_HASHED = 2**31 - 2
"""Largest key count the compiled hash encodes (its codes are int32)."""


def _core_or(compiled: bool | None) -> ModuleType | None:
    """The compiled helpers unless ``compiled`` is False (True insists on them)."""
    if compiled is False:
        return None
    if compiled and _core is None:
        raise RuntimeError("the compiled helpers of ocrledger.kernel._core are not loaded")
    return _core


def charge_order(ts: np.ndarray, record_id: np.ndarray) -> np.ndarray:
    """Positions in (ts, record_id) order, ties kept in input order (int64).

    Equal to ``np.lexsort((record_id, ts))``, but record ids are compared only inside runs of
    equal ts, which are short, so the cost is one integer sort.
    """
    n = len(ts)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(ts, kind="stable").astype(np.int64, copy=False)
    sorted_ts = ts[order]
    tie = np.zeros(n, dtype=bool)
    same = sorted_ts[1:] == sorted_ts[:-1]
    tie[1:] |= same
    tie[:-1] |= same
    if tie.any():
        at = np.nonzero(tie)[0]  # whole runs of equal ts, in ts order
        sub = order[at]
        order[at] = sub[np.lexsort((record_id[sub], ts[sub]))]
    return order


def _as_rows(values: np.ndarray) -> np.ndarray:
    """A fixed-width ``U``/``S`` array as an (n, itemsize) uint8 view (a copy if not contiguous)."""
    arr = np.ascontiguousarray(values)
    if arr.dtype.kind not in "US":
        raise TypeError(f"expected a numpy U or S array, not {arr.dtype}")
    width = max(arr.dtype.itemsize, 1)
    if arr.dtype.itemsize == 0:
        return np.zeros((len(arr), 1), dtype=np.uint8)
    return arr.view(np.uint8).reshape(len(arr), width)


def _arrow_strings(values: np.ndarray) -> Any:
    """An Arrow string array of an object array of ``str`` (None if pyarrow is missing or a cell is not text)."""
    try:
        import pyarrow as pa
    except ImportError:
        return None
    try:
        arr = pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return None if arr.null_count else arr


def repeats(record_id: np.ndarray, tag: np.ndarray, order: np.ndarray, *, compiled: bool | None = None) -> np.ndarray:
    """int8 per position of ``order``: 1 if (record_id, tag) was already seen earlier in that order.

    ``record_id`` is an object array of ``str`` (or a numpy ``U``/``S`` array) in input order,
    ``tag`` an int8 array that is part of the key (the channel), ``order`` the visiting order.
    Numpy equivalent: ``np.unique`` of the keys in order with ``return_index``; the compiled
    version hashes the strings' UTF-8 bytes in an Arrow buffer (``string_repeats``, the rerater's
    duplicate hash) or a fixed-width array's bytes.
    """
    n = len(order)
    core = _core_or(compiled)
    duplicate = np.zeros(n, dtype=np.int8)
    if core is not None and 1 < n <= _MAX_HASHED and record_id.dtype == object and hasattr(core, "string_repeats"):
        arr = _arrow_strings(record_id)
        if arr is not None:
            from ..io.arrow_columns import string_buffers

            offsets, data = string_buffers(arr)
            later = np.empty(n, dtype=np.int32)  # only the first m entries are written
            first_of = np.empty(n, dtype=np.int32)
            _, m = core.string_repeats(offsets, data, np.ascontiguousarray(tag, dtype=np.int8), later, first_of)
            if m == 0:
                return duplicate
            position = np.empty(n, dtype=np.int64)  # charge position of each input row
            position[order] = np.arange(n, dtype=np.int64)
            firsts = np.unique(first_of[:m])
            rows = np.concatenate([firsts, later[:m]])  # every row of a repeated key ...
            key = np.concatenate([firsts, first_of[:m]])  # ... and its key (its first row)
            at = position[rows]
            by_key = np.lexsort((at, key))
            sorted_key = key[by_key]
            again = np.r_[False, sorted_key[1:] == sorted_key[:-1]]  # not the first of its key in charge order
            duplicate[at[by_key[again]]] = 1
            return duplicate
    if core is not None and 0 < n <= _MAX_HASHED and record_id.dtype.kind in "US":
        # Hash in input order (keys read sequentially); only keys seen more than once, which
        # are few, need their charge positions.
        code = np.empty(n, dtype=np.int32)
        first = np.empty(n, dtype=np.int64)
        repeated = np.empty(n, dtype=np.uint8)
        distinct = core.dictionary_codes(_as_rows(record_id), np.ascontiguousarray(tag, dtype=np.int8), None,
                                         code, first, repeated)
        if distinct == n:
            return duplicate
        at = np.flatnonzero(repeated.view(bool)[order])  # charge positions of repeated keys
        key = code[order[at]]
        by_key = np.lexsort((at, key))
        sorted_key = key[by_key]
        later = np.zeros(len(at), dtype=bool)  # not the first of its key in charge order
        later[1:] = sorted_key[1:] == sorted_key[:-1]
        duplicate[at[by_key[later]]] = 1
        return duplicate
    if n:
        duplicate[:] = 1
        _, rid_code = np.unique(record_id, return_inverse=True)
        key = rid_code.reshape(-1).astype(np.int64)[order] * 2 + tag[order].astype(np.int64)
        _, first_at = np.unique(key, return_index=True)
        duplicate[first_at] = 0
    return duplicate


def dictionary_encode(values: np.ndarray, *, compiled: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques) of a ``U``/``S`` array: ``uniques[codes] == values``, int32 codes.

    Uniques come in first-appearance order (compiled) or sorted order (numpy); callers use
    only the mapping, never the order.
    """
    n = len(values)
    core = _core_or(compiled)
    if core is not None and 0 < n <= _MAX_HASHED and values.dtype == object:
        arr = _arrow_strings(values)
        if arr is not None:
            import pyarrow.compute as pc

            enc = pc.dictionary_encode(arr)
            code = enc.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
            return code, enc.dictionary.to_numpy(zero_copy_only=False).astype(object, copy=False)
    if core is not None and 0 < n <= _MAX_HASHED and values.dtype.kind in "US":
        code = np.empty(n, dtype=np.int32)
        first = np.empty(n, dtype=np.int64)
        distinct = core.dictionary_codes(_as_rows(values), None, None, code, first, None)
        return code, values[first[:distinct]]
    uniques, inverse = np.unique(values, return_inverse=True)
    return inverse.reshape(-1).astype(np.int32), uniques
