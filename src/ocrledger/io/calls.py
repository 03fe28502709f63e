"""Call records: reading CSV, Parquet, DataFrames, Arrow tables or dicts into validated columns."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import CallsError, OcrledgerError
from ..model.accounts import CHANNELS, OFFICIAL
from ..model.catalog import Catalog
from ..model.clock import BillingClock
from .arrow_calls import validate_chunk
from .csv_files import LINE, at_line, read_csv, texts
from .messages import OPTIONAL, REQUIRED, api_message, channel_message, show

_TRUE = {"1", "true", "True", "TRUE"}
_FALSE = {"0", "false", "False", "FALSE"}


@dataclass
class CallTable:
    """Validated call records in input order, held as the engine reads them (Arrow and numpy columns).

    Text is exact, as read: never fixed-width (one long id would widen every cell), never stripped,
    a trailing NUL kept (see docs/decisions.md, "Ids are exact strings"). ``record_id``, ``account``
    and ``channel`` give the text as numpy object arrays of ``str``, made on first use.
    """

    rid: Any
    """pyarrow StringArray of the record ids."""
    account_code: np.ndarray
    """Integer index of each record's account into ``account_names``."""
    account_names: Any
    """pyarrow StringArray of account ids (a name may repeat)."""
    market: np.ndarray
    """int8 channel: 0 official, 1 marketplace."""
    api: np.ndarray  # int32 catalog index
    ts: np.ndarray  # int64 epoch ms
    success: np.ndarray  # int8
    source: str
    row_base: int
    """Row number of the first record in error messages (2 for a CSV file with a header)."""
    lines: Any = None
    """The line each record starts on (indexable), when read from a CSV file (blank lines and quoted
    line breaks make it differ from ``row_base + index``)."""

    def __len__(self) -> int:
        return len(self.ts)

    def row(self, index: int) -> int:
        """The row number that messages give for record ``index`` (input order)."""
        return int(self.lines[index]) if self.lines is not None else self.row_base + int(index)

    @cached_property
    def record_id(self) -> np.ndarray:
        return self.rid.to_numpy(zero_copy_only=False).astype(object, copy=False)

    @cached_property
    def account(self) -> np.ndarray:
        names = self.account_names.to_numpy(zero_copy_only=False).astype(object, copy=False)
        return names[self.account_code] if len(names) else texts([])

    @cached_property
    def channel(self) -> np.ndarray:
        return CHANNEL_TEXTS[self.market]

    @classmethod
    def of_texts(cls, record_id: np.ndarray, account: np.ndarray, channel: np.ndarray, api: np.ndarray,
                 ts: np.ndarray, success: np.ndarray, source: str, row_base: int, lines: Any = None) -> "CallTable":
        """A table of checked columns whose text comes as object arrays of ``str`` (channel names checked)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        accounts = pc.dictionary_encode(_arrow_text(account))
        table = cls(_arrow_text(record_id), accounts.indices.to_numpy(zero_copy_only=False), accounts.dictionary,
                    (channel != OFFICIAL).astype(np.int8), api, ts, success, source, row_base, lines)
        table.__dict__.update(record_id=record_id, account=account, channel=channel)
        return table


CHANNEL_TEXTS = texts(list(CHANNELS))
"""Channel name by code (0 official, 1 marketplace)."""


def _arrow_text(values: np.ndarray) -> Any:
    """An Arrow string array of an object array of ``str`` (large_string past 2 GiB of text)."""
    import pyarrow as pa

    arr = pa.array(values, type=pa.string())
    return arr.cast(pa.large_string()).combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def read_calls(calls: Any, catalog: Catalog, *, source: str | None = None) -> CallTable:
    """Read and validate call records from a path, a DataFrame, an Arrow table or a dict of columns."""
    columns, name, base = read_columns(calls, source=source)
    return validate_columns(columns, catalog, name, base)


def read_columns(calls: Any, *, source: str | None = None) -> tuple[dict[str, Any], str, int]:
    """The raw columns of a calls input, its name for messages, and the row number of its first record."""
    if isinstance(calls, (str, Path)):
        path = Path(calls)
        if path.suffix.lower() == ".parquet" or path.is_dir():
            return _read_parquet(path), str(path), 1
        return read_csv(path), str(path), 2
    if hasattr(calls, "schema") and hasattr(calls, "column_names"):  # pyarrow.Table: kept as Arrow, as rerate
        return {c: calls.column(c) for c in calls.column_names}, source or "<arrow table>", 1
    if hasattr(calls, "columns") and hasattr(calls, "to_numpy"):  # pandas.DataFrame
        return {str(c): calls[c].to_numpy() for c in calls.columns}, source or "<dataframe>", 1
    if isinstance(calls, Mapping):
        return dict(calls), source or "<columns>", 1
    raise TypeError(f"calls must be a path, DataFrame, pyarrow Table or dict of arrays, not {type(calls).__name__}")


def _read_parquet(path: Path) -> dict[str, Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CallsError("reading Parquet needs pyarrow: pip install 'ocrledger[parquet]'", file=str(path)) from None
    if not path.exists():
        raise CallsError("cannot read: No such file or directory", file=str(path))  # as the CSV reader and rerate
    try:
        table = pq.read_table(path) if path.is_dir() else pq.ParquetFile(path).read()  # no dataset layer for a file
    except (OSError, ValueError) as exc:
        raise CallsError(f"cannot read Parquet: {exc}", file=str(path)) from None
    return {c: table.column(c) for c in table.column_names}


def validate_columns(columns: Mapping[str, Any], catalog: Catalog, name: str, base: int) -> CallTable:
    """Check and decode raw columns; errors name ``name``, the row (``base`` = first record) and field."""
    lines = columns.get(LINE)
    for col in REQUIRED:
        if col not in columns:
            raise CallsError(f"missing column {col!r} (needs {', '.join(REQUIRED)})", file=name)
    if all(_is_arrow(columns[c]) for c in (*REQUIRED, *OPTIONAL) if c in columns):
        return _arrow_table(columns, catalog, name, base, lines)

    def fail(message: str, index: int, field: str) -> CallsError:
        row = int(lines[int(index)]) if lines is not None else base + int(index)
        return CallsError(message, file=name, row=row, field=field)

    columns = {c: _arrow_column(columns[c], c, fail, catalog.clock) if _is_arrow(columns[c])
               else _column(columns[c], c, name) for c in (*REQUIRED, *OPTIONAL) if c in columns}
    n = len(columns["record_id"])
    for col, values in columns.items():
        if len(values) != n:
            raise CallsError(f"column {col!r} has {len(values)} values, record_id has {n}", file=name)

    record_id = _strings(columns["record_id"], "record_id", fail)
    account = _strings(columns["account"], "account", fail)
    channel = (
        _strings(columns["channel"], "channel", fail, default=OFFICIAL)
        if "channel" in columns
        else np.full(n, OFFICIAL, dtype=object)
    )
    bad = (channel != CHANNELS[0]) & (channel != CHANNELS[1])  # exact (np.isin would make a fixed-width copy)
    if bad.any():
        i = int(np.argmax(bad))
        raise fail(channel_message(channel[i]), i, "channel")
    api = _codes(_strings(columns["api"], "api", fail), catalog, fail)
    ts = parse_instants(columns["ts"], catalog.clock, fail)
    success = _flags(columns["success"], fail)
    return CallTable.of_texts(record_id, account, channel, api, ts, success, name, base, lines)


def _arrow_table(columns: Mapping[str, Any], catalog: Catalog, name: str, base: int, lines: Any) -> CallTable:
    """Arrow columns (a CSV or Parquet file, an Arrow table) checked by the rerater's validator
    (``arrow_calls.validate_chunk``): the same errors as ``rerate`` and Dask, by construction."""
    import pyarrow as pa


    names = [c for c in (*REQUIRED, *OPTIONAL) if c in columns]
    n = len(columns["record_id"])
    for col in names:
        if len(columns[col]) != n:
            raise CallsError(f"column {col!r} has {len(columns[col])} values, record_id has {n}", file=name)
    try:
        chunk = validate_chunk(pa.table({c: columns[c] for c in names}), catalog, name, base)
    except CallsError as exc:
        raise at_line(exc, lines, base) from None
    return CallTable(
        rid=chunk.rid, account_code=chunk.account, account_names=chunk.accounts, market=chunk.channel.astype(np.int8),
        api=chunk.api.astype(np.int32), ts=np.asarray(chunk.ts, dtype=np.int64),
        success=np.asarray(chunk.ok, dtype=np.int8), source=name, row_base=base, lines=lines,
    )


def _is_arrow(values: Any) -> bool:
    return hasattr(values, "type") and hasattr(values, "null_count") and hasattr(values, "to_numpy")


def _arrow_column(values: Any, field: str, fail_at: Any, clock: BillingClock) -> Any:
    """An Arrow column checked and converted with the rerater's rules (``arrow_columns``): a null cell
    is empty (channel: official); instants and flags are converted in bulk, so a Parquet file gives
    the same errors through ``rate``, ``ingest`` and ``rerate``. Text comes back as an object array."""
    import pyarrow as pa

    from . import arrow_columns as ac

    def fail(message: str, i: int) -> OcrledgerError:
        return fail_at(message, i, field)

    arr = values.combine_chunks() if hasattr(values, "combine_chunks") else values
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if field == "ts" or field == "success":
        if arr.null_count:
            raise fail("is empty", int(np.argmax(arr.is_null().to_numpy(zero_copy_only=False))))
        return ac.instants(arr, clock, fail, naive_ok=False, what="ts") if field == "ts" else ac.flags(arr, fail)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_null(arr.type)):
        raise fail(f"must be text, not a column of type {arr.type}", 0)
    return arr.to_numpy(zero_copy_only=False).astype(object, copy=False)


def _column(values: Any, field: str, name: str) -> np.ndarray:
    """A one-dimensional array of the column's cells (object dtype when the cells are mixed or text)."""
    if isinstance(values, (list, tuple)) and all(isinstance(v, str) for v in values):
        return texts(values)
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):
        arr = None
    if arr is not None and arr.ndim == 1:
        return arr
    if isinstance(values, np.ndarray) or arr is not None and arr.ndim == 0:
        raise CallsError(f"column {field!r} must be a one-dimensional sequence of values", file=name)
    cells = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        cells[i] = value
    return cells


def _strings(values: Any, field: str, fail: Any, default: str | None = None) -> np.ndarray:
    """The cells as an object array of exact ``str`` (nothing stripped); a null or empty cell is an
    error ("is empty") or, given a ``default``, that value."""
    arr = np.asarray(values)
    if arr.dtype.kind == "U":  # a caller's fixed-width array: its cells are what numpy kept
        arr = arr.astype(object)
    elif arr.dtype != object or not set(map(type, arr.tolist())) <= {str}:
        cells = arr.tolist()
        bad = next((i for i, v in enumerate(cells) if v is not None and not isinstance(v, str)), None)
        if bad is not None:
            raise fail(f"must be text, not {show(arr[bad])}", bad, field)
        arr = texts(["" if v is None else str(v) for v in cells])
    empty = arr == ""
    if len(arr) and empty.any():
        if default is None:
            raise fail("is empty", int(np.argmax(empty)), field)
        arr = arr.copy()
        arr[empty] = default
    return arr


def _codes(api: np.ndarray, catalog: Catalog, fail: Any) -> np.ndarray:
    """Catalog index of each code (exact strings); the first unknown code in row order is the error."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(api):
        return np.empty(0, dtype=np.int32)
    enc = pc.dictionary_encode(pa.array(api, type=pa.string()))  # distinct codes in order of first appearance
    inverse = enc.indices.to_numpy(zero_copy_only=False)
    mapping = np.empty(len(enc.dictionary), dtype=np.int32)
    for k, code in enumerate(enc.dictionary.to_pylist()):
        if code not in catalog.index:
            raise fail(api_message(code, catalog), int(np.argmax(inverse == k)), "api")
        mapping[k] = catalog.index[code]
    return mapping[inverse]


def parse_instants(values: Any, clock: BillingClock, fail: Any) -> np.ndarray:
    """Epoch ms (int64) of a ``ts`` column of integers, datetimes or text; ``fail(message, row, field)`` for a bad one."""
    if _is_arrow(values):
        return _arrow_column(values, "ts", fail, clock)
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        ts = arr.astype(np.int64)
    elif arr.dtype.kind == "M":
        ts = arr.astype("datetime64[ms]").astype(np.int64)
    else:
        ts = np.empty(len(arr), dtype=np.int64)
        for i, v in enumerate(arr):
            if v is None or isinstance(v, str) and not v.strip():
                raise fail("is empty", i, "ts")
            if isinstance(v, float) or isinstance(v, np.floating):
                raise fail(f"{show(v)} is a float; give epoch milliseconds as an integer or ISO 8601", i, "ts")
            try:
                ts[i] = clock.instant(v if not isinstance(v, np.integer) else int(v), what="ts", naive_ok=False)
            except OcrledgerError as exc:
                raise fail(exc.message, i, "ts") from None
        return ts
    bad = (ts < clock.min_ms) | (ts >= clock.max_ms)
    if bad.any():
        i = int(np.argmax(bad))
        raise fail(f"{int(ts[i])} ms is outside the supported range 1970..2099 ({clock.tz_name})", i, "ts")
    return ts


def _flags(values: Any, fail: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        return arr.astype(np.int8)
    if arr.dtype.kind in "iu":
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            i = int(np.argmax(bad))
            raise fail(f"must be 1/0 or true/false, not {show(arr[i])}", i, "success")
        return arr.astype(np.int8)
    out = np.empty(len(arr), dtype=np.int8)
    for i, v in enumerate(arr):
        if isinstance(v, str):
            text = v.strip()
            flag = 1 if text in _TRUE else 0 if text in _FALSE else None
        elif isinstance(v, (bool, np.bool_)):
            flag = int(v)
        elif isinstance(v, (int, np.integer)) and v in (0, 1):
            flag = int(v)
        else:
            flag = None
        if flag is not None:
            out[i] = flag
        else:
            raise fail(f"must be 1/0 or true/false, not {show(v)}", i, "success")
    return out
