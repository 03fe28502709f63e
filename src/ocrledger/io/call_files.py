"""Inputs of calls as streams of Arrow record batches: Parquet files and folders, CSV files, Arrow tables."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..errors import CallsError
from . import csv_files
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


def call_inputs(calls: Any, chunk_rows: int) -> list[CallInput]:
    """The inputs of ``calls``: a Parquet file, a folder of them (every ``.parquet`` below it, hidden and
    ``_`` names left out, in path order), a CSV file (plain or ``.csv.gz``), an Arrow table or record
    batch, or a list of these. Errors name the file."""
    import pyarrow as pa

    if isinstance(calls, (list, tuple)):
        return [inp for part in calls for inp in call_inputs(part, chunk_rows)]
    if isinstance(calls, pa.Table):
        table = calls
        return [CallInput("<arrow table>", 1, table.num_rows, lambda: iter(table.to_batches(max_chunksize=chunk_rows)))]
    if isinstance(calls, pa.RecordBatch):
        return call_inputs(pa.Table.from_batches([calls]), chunk_rows)
    if not isinstance(calls, (str, Path)):
        raise TypeError(f"calls must be a path, a pyarrow Table or a list of them, not {type(calls).__name__}")
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
    cols = [c for c in (*REQUIRED, "channel") if c in names]
    missing = [c for c in REQUIRED if c not in names]
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

    return CallInput(str(path), 2, None, batches, csv_files.CsvLines(path))


def have_pyarrow() -> bool:
    """Whether pyarrow imports (a core dependency; a broken install gets one line, not a traceback)."""
    try:
        import pyarrow
    except ImportError:
        return False
    return pyarrow is not None
