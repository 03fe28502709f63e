"""Validating calls held as Arrow columns (a record batch or table), without per-row Python: the one
validator of ``rerate`` and Dask, and of ``rate`` and ``Ledger.ingest`` for files and Arrow tables.

Text columns are dictionary-encoded and only their distinct values are looked at; instants and
flags are converted in bulk (``arrow_columns``). Ids are exact (nothing trimmed; docs/decisions.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import CallsError, OcrledgerError
from ..kernel import select as _kernel
from ..model.accounts import MARKETPLACE, OFFICIAL
from ..model.catalog import Catalog
from . import arrow_columns as ac
from .messages import REQUIRED, api_message, channel_message


@dataclass
class Chunk:
    """One validated chunk of calls (input order)."""

    rid: Any
    """pyarrow StringArray, exact (nothing stripped), never null or empty."""
    account: np.ndarray
    """Integer index into ``accounts``."""
    accounts: Any
    """pyarrow StringArray of account ids, exact and distinct (none is null or empty)."""
    channel: np.ndarray
    """int8: 0 official, 1 marketplace."""
    api: np.ndarray
    """int16 catalog index."""
    ts: np.ndarray
    ok: np.ndarray
    source: str = ""
    """The input's name (for errors)."""
    row0: int = 0
    """Row number (as errors give it) of the chunk's first call."""
    bad: np.ndarray | None = None
    """Calls named by a ``credential`` that is unknown or not valid at their instant (``io.calls.resolved_chunk``):
    rejected, never charged (``kernel.select.hold_back``); None: none."""


def validate_chunk(raw: Any, catalog: Catalog, name: str, row_base: int) -> Chunk:
    """Check and encode one Arrow record batch or table of calls (SPEC §6) without per-row Python.

    Text columns are dictionary-encoded (if they are not already) and only their distinct
    values are looked at. Errors name ``name``, the row (``row_base`` is the first record's) and
    the field, like ``calls.validate_columns``.
    """
    import pyarrow as pa

    names = list(raw.schema.names)
    for col in REQUIRED:
        if col not in names:
            raise CallsError(f"missing column {col!r} (needs {', '.join(REQUIRED)})", file=name)

    def fail_at(col: str) -> Callable[[str, int], OcrledgerError]:
        return lambda message, i: CallsError(message, file=name, row=row_base + int(i), field=col)

    def column(col: str) -> Any:
        arr = raw.column(names.index(col))
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        t = arr.type.value_type if pa.types.is_dictionary(arr.type) else arr.type
        if str(t) == "string_view":  # polars' text (Utf8View): the same strings, plain layout
            arr = (arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr).cast(pa.string())
        return arr

    n = raw.num_rows
    core = _kernel.helpers()  # once: the compiled string checks, or None for their Arrow twins
    rid = column("record_id")
    if pa.types.is_dictionary(rid.type):
        rid = rid.dictionary_decode()
    if not (pa.types.is_string(rid.type) or pa.types.is_large_string(rid.type) or pa.types.is_null(rid.type)):
        raise fail_at("record_id")(f"must be text, not a column of type {rid.type}", 0)
    if pa.types.is_null(rid.type):
        rid = rid.cast(pa.string())
    if not _plain_ends(rid, core):  # some id may be null or empty (ids are exact: nothing is trimmed)
        blank = ac.is_empty(rid)
        if blank.any():
            raise fail_at("record_id")("is empty", int(np.argmax(blank)))
    if pa.types.is_large_string(rid.type):
        rid = rid.cast(pa.string())
    acc_idx, accounts, acc_blank = _dict_column(column("account"), fail_at("account"), core)
    i = _first_row(acc_idx, acc_blank)
    if i is not None:
        raise fail_at("account")("is empty", i)
    if "channel" in names:
        ch_idx, ch_vals, ch_blank = _dict_column(column("channel"), fail_at("channel"), core)
        words = ch_vals.to_pylist() + [None]
        ch_code = np.array([0 if blank or w == OFFICIAL else 1 if w == MARKETPLACE else -1
                            for w, blank in zip(words, ch_blank.tolist())], dtype=np.int8)  # empty -> official
        i = _first_row(ch_idx, ch_code < 0)
        if i is not None:
            raise fail_at("channel")(channel_message(words[ch_idx[i]]), i)
        channel = ch_code[ch_idx]
    else:
        channel = np.zeros(n, dtype=np.int8)
    api_idx, api_vals, api_blank = _dict_column(column("api"), fail_at("api"), core)
    words = api_vals.to_pylist() + [None]
    api_code = np.array([-1 if blank else catalog.index.get(w, -1) for w, blank in zip(words, api_blank.tolist())],
                        dtype=np.int16)
    i = _first_row(api_idx, api_code < 0)
    if i is not None:
        k = api_idx[i]
        raise fail_at("api")("is empty" if api_blank[k] else api_message(words[k], catalog), i)
    ts_col = column("ts")
    if ts_col.null_count:
        raise fail_at("ts")("is empty", int(np.argmax(ts_col.is_null().to_numpy(zero_copy_only=False))))
    ts = ac.instants(ts_col, catalog.clock, fail_at("ts"), naive_ok=False, what="ts")
    ok_col = column("success")
    if ok_col.null_count:
        raise fail_at("success")("is empty", int(np.argmax(ok_col.is_null().to_numpy(zero_copy_only=False))))
    ok = ac.flags(ok_col, fail_at("success"))
    return Chunk(rid, acc_idx, accounts, channel, api_code[api_idx], ts, ok, name, row_base)


def _plain_ends(arr: Any, core: Any = None) -> bool:
    """True when no string of ``arr`` is null or empty or could start or end with whitespace (compiled check,
    ``core`` the compiled helpers or None for none)."""
    if core is None or arr.null_count or not len(arr):
        return False
    offsets, data = ac.string_buffers(arr)
    return bool(core.plain_ends(offsets, data))


def _dict_column(col: Any, fail: Callable[[str, int], OcrledgerError], core: Any = None
                 ) -> tuple[np.ndarray, Any, np.ndarray]:
    """(index per row, dictionary values as an Arrow string array, empty flag per value) of a text column,
    values exact (nothing trimmed) and distinct. Null rows get the index ``len(values)``, whose flag (the
    last) is set when there are any."""
    import pyarrow as pa

    t = col.type
    fresh = not pa.types.is_dictionary(t)
    if fresh:
        if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)):
            raise fail(f"must be text, not a column of type {t}", 0)
        col = col.dictionary_encode()  # the method: no compute-wrapper overhead on a small batch
        t = col.type
    vt = t.value_type
    if not (pa.types.is_string(vt) or pa.types.is_large_string(vt) or pa.types.is_null(vt)):
        raise fail(f"must be text, not a column of type {vt}", 0)
    values = col.dictionary if pa.types.is_string(vt) else col.dictionary.cast(pa.string())
    indices = col.indices  # (a new wrapper on every access)
    nulls = indices.null_count
    idx = (indices.fill_null(len(values)) if nulls else indices).to_numpy(zero_copy_only=False)
    if not fresh:  # a dictionary of the input may repeat a value (chunks combined): one index per value
        distinct = values.dictionary_encode()
        if len(distinct.dictionary) < len(values):
            remap = np.append(distinct.indices.to_numpy(zero_copy_only=False), len(distinct.dictionary))
            values, idx = distinct.dictionary, remap[idx]
    n_values = len(values)
    blank = np.zeros(n_values + 1, dtype=bool)
    if not _plain_ends(values, core):  # some value may be null or empty
        blank[:-1] = ac.is_empty(values)
    blank[-1] = nulls > 0  # null rows only; no row has that index otherwise
    return idx, values, blank


def _first_row(idx: np.ndarray, bad: np.ndarray) -> int | None:
    """The first row whose dictionary index is flagged in ``bad``, or None."""
    if not bad.any() or not (bad & (np.bincount(idx, minlength=len(bad)) > 0)).any():
        return None
    return int(np.argmax(bad[idx]))
