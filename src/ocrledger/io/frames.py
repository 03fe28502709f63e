"""Calls held in memory (dicts, records, pandas, polars, DuckDB, Arrow and its PyCapsule interface) as one Arrow table.

Conversion only: every cell is kept as given (text stays exact text, numbers stay numbers) and the
one validator (``arrow_calls.validate_chunk``) then judges the table, as it judges a CSV or
Parquet file. Only what Arrow cannot hold in one column (a column of mixed kinds, say 5 beside
"r1") is looked at here, cell by cell, and turned into the column Arrow reads from a CSV file
(text), or refused at its row.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Mapping

import numpy as np

from ..errors import CallsError
from .messages import OPTIONAL, REQUIRED, show

CALL_COLUMNS = (*REQUIRED, *OPTIONAL, "credential")
"""The columns a calls input is read for (others are ignored)."""
TEXT = ("record_id", "account", "api", "channel", "credential")


def kind_name(calls: Any) -> str:
    """The name errors give an in-memory input (it has no file name)."""
    import pyarrow as pa

    if type(calls) is dict:
        return "<columns>"
    if isinstance(calls, (pa.Table, pa.RecordBatch)):
        return "<arrow table>"
    if isinstance(calls, pa.RecordBatchReader):
        return "<arrow stream>"
    if isinstance(calls, Mapping):
        return "<columns>"
    if isinstance(calls, (list, tuple)):
        return "<records>"
    module = type(calls).__module__.split(".")[0]
    if module == "pandas":
        return "<dataframe>"
    if module in ("polars", "duckdb"):
        return f"<{module} {type(calls).__name__}>"
    return f"<{type(calls).__name__}>"


def is_records(calls: Any) -> bool:
    """A list of call records (one dict per call), as opposed to a list of files or tables."""
    return isinstance(calls, (list, tuple)) and len(calls) > 0 and all(isinstance(r, Mapping) for r in calls)


def is_frame(calls: Any) -> bool:
    """Whether ``calls`` is an in-memory input ``to_arrow`` converts (not a path, not a list of inputs)."""
    import pyarrow as pa

    if type(calls) is dict:
        return True
    return (isinstance(calls, (Mapping, pa.Table, pa.RecordBatch, pa.RecordBatchReader)) or is_records(calls)
            or hasattr(calls, "__arrow_c_stream__") or hasattr(calls, "__arrow_c_array__")
            or _pandas(calls) or _lazy(calls) or _duckdb(calls))


def to_arrow(calls: Any, name: str) -> Any:
    """A pyarrow Table or RecordBatch (or, for a stream, a RecordBatchReader) of the call columns of ``calls``.

    Accepts a pyarrow Table, RecordBatch or RecordBatchReader; anything with ``__arrow_c_stream__``
    or ``__arrow_c_array__`` (the Arrow PyCapsule interface: polars, DuckDB, nanoarrow, ...); a polars
    LazyFrame (collected); a DuckDB relation; a pandas DataFrame; a dict of columns (lists, numpy
    arrays, pandas Series, Arrow arrays); a list of records (one dict per call).
    """
    import pyarrow as pa

    if type(calls) is dict:
        return _from_columns(calls, name)
    if isinstance(calls, (pa.Table, pa.RecordBatch, pa.RecordBatchReader)):
        return calls
    if _lazy(calls):  # a polars LazyFrame: the plan runs here, once
        calls = calls.collect()
    if _pandas(calls):
        return _from_columns({str(c): calls[c] for c in calls.columns}, name)
    if isinstance(calls, Mapping):
        return _from_columns(calls, name)
    if is_records(calls):
        fast = _records_table(calls)
        if fast is not None:
            return fast
        keys: dict[str, None] = {}
        for record in calls:
            keys.update(dict.fromkeys(map(str, record)))
        return _from_columns({k: [r.get(k) for r in calls] for k in keys if k in CALL_COLUMNS}, name)
    if _duckdb(calls):  # read whole: a stream left open by an error would block the user's DuckDB connection
        for method in ("to_arrow_table", "fetch_arrow_table", "arrow"):
            if hasattr(calls, method):
                got = getattr(calls, method)()
                return got.read_all() if isinstance(got, pa.RecordBatchReader) else got
    if hasattr(calls, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(calls)
    if hasattr(calls, "__arrow_c_array__"):
        return pa.record_batch(calls)
    raise TypeError(
        "calls must be a path, a list of paths or tables, a dict of columns, a list of records, a pandas or "
        "polars DataFrame, a DuckDB relation, a pyarrow Table or RecordBatchReader, or an object with "
        f"__arrow_c_stream__, not {type(calls).__name__}")


def _records_table(records: Any) -> Any:
    """``pa.Table.from_pylist`` of the records (C speed) when it keeps every cell as it is: every record's
    keys become columns (from_pylist takes the first record's), no column of mixed kinds, no float among
    the instants or flags; else None (the column-by-column path then names the odd cell)."""
    import pyarrow as pa

    keys = set().union(*records)
    if not all(isinstance(k, str) for k in keys):
        return None
    try:
        table = pa.Table.from_pylist(records)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    if set(table.column_names) != keys:
        return None
    table = table.select([c for c in table.column_names if c in CALL_COLUMNS])
    for f in table.schema:
        t = f.type
        if (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_nested(t)
                or pa.types.is_floating(t) or pa.types.is_null(t) and f.name in ("ts", "success")):
            return None
    return table


def _pandas(calls: Any) -> bool:
    return type(calls).__module__.split(".")[0] == "pandas" and hasattr(calls, "columns")


def _lazy(calls: Any) -> bool:
    return type(calls).__module__.split(".")[0] == "polars" and hasattr(calls, "collect")


def _duckdb(calls: Any) -> bool:
    return type(calls).__module__.split(".")[0] == "duckdb" and hasattr(calls, "arrow")


def _from_columns(columns: Mapping[str, Any], name: str) -> Any:
    import pyarrow as pa

    arrays = {str(k): _column(v, str(k), name) for k, v in columns.items() if str(k) in CALL_COLUMNS}
    n = len(arrays["record_id"]) if "record_id" in arrays else None
    for col, arr in arrays.items():
        if n is not None and len(arr) != n:
            raise CallsError(f"column {col!r} has {len(arr)} values, record_id has {n}", file=name)
    if not arrays:
        return pa.table({})
    if not any(isinstance(a, pa.ChunkedArray) for a in arrays.values()):  # one batch: no chunks to combine later
        return pa.RecordBatch.from_pydict(arrays)
    return pa.table(arrays)


def _column(values: Any, field: str, name: str) -> Any:
    """One column as an Arrow array: as Arrow infers it, or (mixed kinds) as text, cell by cell."""
    import pyarrow as pa

    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "Uiub":  # the common case
        return pa.array(values)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if type(values).__module__.split(".")[0] == "pandas":  # a Series: NaN/None/NA are missing cells
        try:
            return pa.array(values, from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            values = values.to_numpy(dtype=object)
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise CallsError(f"column {field!r} must be a one-dimensional sequence of values", file=name)
        if values.dtype.kind == "S":  # bytes are not text
            raise CallsError(f"row 1: field {field}: must be text, not {show(values[0])}" if len(values) else
                             f"column {field!r} holds bytes, not text", file=name)
    elif isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise CallsError(f"column {field!r} must be a one-dimensional sequence of values", file=name)
    try:
        arr = pa.array(values)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        cells = values.tolist() if isinstance(values, np.ndarray) else list(values)
        return _mixed(cells, field, name)
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type) or pa.types.is_nested(arr.type):
        return _mixed(arr.to_pylist(), field, name)
    if pa.types.is_floating(arr.type) and not isinstance(values, np.ndarray):  # one float among integers
        return _mixed(list(values), field, name)  # is refused at its own row (a float column: at row 1)
    return arr


def _mixed(cells: list[Any], field: str, name: str) -> Any:
    """A column Arrow cannot hold as one type: each cell as the text a CSV file would give, or the error
    at the first cell no CSV cell could stand for."""
    import pyarrow as pa

    out: list[str | None] = []
    for i, v in enumerate(cells):
        text = _text(v, field)
        if text is _BAD:
            raise CallsError(_refusal(v, field), file=name, row=1 + i, field=field)
        out.append(text)  # type: ignore[arg-type]
    return pa.array(out, type=pa.string())


_BAD = object()


def _text(v: Any, field: str) -> Any:
    if v is None or isinstance(v, float) and v != v:  # None, NaN: a missing cell
        return None
    if isinstance(v, str):
        return v
    if field in TEXT:
        return _BAD
    if isinstance(v, (bool, np.bool_)):
        return ("true" if v else "false") if field == "success" else _BAD
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if field == "ts" and isinstance(v, _dt.datetime):
        return v.isoformat()
    return _BAD


def _refusal(v: Any, field: str) -> str:
    if field in TEXT:
        return f"must be text, not {show(v)}"
    if field == "ts" and isinstance(v, (float, np.floating)):
        return f"{show(v)} is a float; give epoch milliseconds as an integer or ISO 8601"
    if field == "ts":
        return f"{show(v)} is not an instant (epoch milliseconds or ISO 8601 with an offset)"
    return f"must be 1/0 or true/false, not {show(v)}"
