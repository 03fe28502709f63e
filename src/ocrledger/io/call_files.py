"""Inputs of calls as streams of Arrow record batches: Parquet files and folders, CSV files, frames in memory."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..errors import CallsError
from . import csv_files, frames
from .messages import REQUIRED


@dataclass
class CallInput:
    """One input of calls, read as a stream of Arrow record batches of at most ``chunk_rows`` calls."""

    name: str
    base: int
    """Row number of the first record (2 for CSV with a header)."""
    rows: int | None
    batches: Callable[[], Iterator[Any]]
    lines: Any = None
    """A CSV file's ``CsvLines``: errors give the line a record starts on, as ``rate`` does."""
    size: int = 0
    """Bytes of a file whose row count is not known up front (a CSV file), for an estimate; else 0."""


def call_inputs(calls: Any, chunk_rows: int) -> list[CallInput]:
    """The inputs of ``calls``: a Parquet file, a folder of them (every ``.parquet`` below it, hidden and
    ``_`` names left out, in path order), a CSV file (plain or ``.csv.gz``), anything in memory that
    ``frames.to_arrow`` converts (a dict of columns, a list of records, a pandas or polars frame, a
    DuckDB relation, a pyarrow Table or RecordBatchReader, an Arrow PyCapsule), or a list of files and
    tables. The one reader of every entry point; errors name the file."""
    if frames.is_frame(calls):
        return [frame_input(calls, chunk_rows)]
    if isinstance(calls, (list, tuple)):
        return [inp for part in calls for inp in call_inputs(part, chunk_rows)]
    if not isinstance(calls, (str, Path)):
        frames.to_arrow(calls, "")  # raises the TypeError naming what is accepted
    path = Path(calls)
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*.parquet")
            if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
        )
        if not files:
            raise CallsError("the folder holds no .parquet files", file=str(path))
        return [parquet_input(p, chunk_rows) for p in files]
    if not path.exists():
        raise CallsError("cannot read: No such file or directory", file=str(path))
    if path.suffix.lower() == ".parquet":
        return [parquet_input(path, chunk_rows)]
    return [csv_input(path, chunk_rows)]


def frame_input(calls: Any, chunk_rows: int) -> CallInput:
    """An in-memory input, converted to Arrow once (``frames.to_arrow``); a stream is read as it comes."""
    import pyarrow as pa

    name = frames.kind_name(calls)
    data = frames.to_arrow(calls, name)
    if isinstance(data, pa.RecordBatchReader):
        reader = data

        def stream() -> Iterator[Any]:
            for batch in reader:
                for start in range(0, batch.num_rows, chunk_rows):
                    yield batch.slice(start, chunk_rows)

        return CallInput(name, 1, None, stream)
    if isinstance(data, pa.RecordBatch):
        if data.num_rows <= chunk_rows:
            return CallInput(name, 1, data.num_rows, lambda: iter([data]))
        data = pa.Table.from_batches([data])
    table = data
    if table.num_rows <= chunk_rows:
        return CallInput(name, 1, table.num_rows, lambda: iter([table]))
    return CallInput(name, 1, table.num_rows, lambda: iter(table.to_batches(max_chunksize=chunk_rows)))


def parquet_input(path: Path, chunk_rows: int, row_groups: Sequence[int] | None = None) -> CallInput:
    """A Parquet file as an input (``row_groups``: only these row groups, e.g. one worker's share)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
        names = meta.schema_arrow.names
        rows = meta.metadata.num_rows if row_groups is None else sum(
            meta.metadata.row_group(k).num_rows for k in row_groups)
    except (OSError, pa.ArrowInvalid) as exc:
        raise CallsError(f"cannot read Parquet: {exc}", file=str(path)) from None
    cols = [c for c in frames.CALL_COLUMNS if c in names]
    missing = [c for c in REQUIRED if c not in names and not (c == "account" and "credential" in names)]
    if missing:
        raise CallsError(f"missing column {missing[0]!r} (needs {', '.join(REQUIRED)})", file=str(path))

    def batches() -> Iterator[Any]:
        try:
            pf = pq.ParquetFile(path, read_dictionary=[c for c in ("account", "api", "channel") if c in names])
            yield from pf.iter_batches(batch_size=chunk_rows, columns=cols, row_groups=row_groups)
        except (OSError, pa.ArrowInvalid) as exc:
            raise CallsError(f"cannot read Parquet: {exc}", file=str(path)) from None

    return CallInput(str(path), 1, rows, batches)


def csv_input(path: Path, chunk_rows: int) -> CallInput:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def batches() -> Iterator[Any]:
        names = csv_files.csv_header(path)  # stripped, as rate() reads them
        try:
            reader = pacsv.open_csv(path, **csv_files.arrow_options(
                names, block_size=max(1 << 16, min(chunk_rows, 1 << 22) * 64)))
            for batch in reader:
                for start in range(0, batch.num_rows, chunk_rows):
                    yield batch.slice(start, chunk_rows)
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            raise csv_files.refused(path, exc) from None

    return CallInput(str(path), 2, None, batches, csv_files.CsvLines(path), path.stat().st_size)


def have_pyarrow() -> bool:
    """Whether pyarrow imports (a core dependency; a broken install gets one line, not a traceback)."""
    try:
        import pyarrow
    except ImportError:
        return False
    return pyarrow is not None
