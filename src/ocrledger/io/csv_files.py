"""Reading calls from CSV: one reader for ``rate``, ``Ledger.ingest`` and ``rerate``.

A CSV file (or ``.csv.gz``) is read by pyarrow's CSV reader with every column as exact text (no
type or null inference: an empty field is ""), header names stripped (they are column names, not
ids), a BOM ignored and quoted line breaks allowed. When pyarrow refuses a file, the csv module
reads it again to give the exact error (``read_csv_python``: line numbers, field counts), and the
line a record starts on is found the same way, only when a message needs it (``CsvLines``).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CallsError

LINE = "__line__"
"""Key of the per-record line numbers a CSV reader adds to the columns (for messages)."""
_FIELD_LIMIT = (1 << 31) - 1
"""Longest CSV field read (the csv module's limit is global; its default is 128 KiB)."""


def texts(cells: Any) -> np.ndarray:
    """An object array of the cells as given (numpy's fixed-width ``U`` copy would drop trailing NULs
    and give every cell the longest cell's width)."""
    out = np.empty(len(cells), dtype=object)
    out[:] = cells
    return out


def text_file(path: Path) -> Any:
    """A CSV file opened as text for ``csv.reader``: gzip-compressed when its name ends in ``.gz``; a BOM
    (spreadsheet exports) is not part of the header."""
    if path.suffix.lower() == ".gz":
        import gzip

        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return open(path, newline="", encoding="utf-8-sig")


def header_names(path: Path) -> list[str]:
    """The header's column names, stripped (names are not ids: " ts" is the ts column); [] if none."""
    with text_file(path) as fh:
        return [h.strip() for h in next(csv.reader(fh), [])]


def read_csv_python(path: Path) -> dict[str, Any]:
    """The columns (object arrays of str) and record lines (under ``LINE``) of a CSV file, read with the
    csv module: the exact messages and line numbers (blank lines and quoted line breaks counted)."""
    name = str(path)
    try:
        fh = text_file(path)
    except OSError as exc:
        raise CallsError(f"cannot read: {exc.strerror}", file=name) from None
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)  # the default 131,072 would refuse an id that rerate reads
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
            if header is None:
                raise CallsError("the file is empty (no header row)", file=name)
            header = [h.strip() for h in header]
            width = len(header)
            columns: list[list[str]] = [[] for _ in header]
            lines: list[int] = []
            start = reader.line_num + 1  # the line a record starts on (quoted fields may span lines)
            for row in reader:
                line, start = start, reader.line_num + 1
                if len(row) != width:
                    if not row:
                        continue  # blank line
                    missing = header[len(row)] if len(row) < width else None
                    detail = f"missing column {missing!r}" if missing else "more fields than the header"
                    raise CallsError(
                        f"has {len(row)} fields, the header has {width} ({detail})", file=name, row=line
                    )
                lines.append(line)
                for col, value in zip(columns, row):
                    col.append(value)
        except UnicodeDecodeError as exc:
            raise CallsError(f"is not UTF-8 text ({exc.reason})", file=name) from None
        except (OSError, EOFError) as exc:  # a broken .gz file
            raise CallsError(f"cannot read: {exc}", file=name) from None
        except csv.Error as exc:
            raise CallsError(f"CSV error: {exc}", file=name, row=reader.line_num) from None
    if len(set(header)) != width:
        raise CallsError("the header names a column twice", file=name, row=1)
    out: dict[str, Any] = {h: texts(col) for h, col in zip(header, columns)}
    out[LINE] = np.array(lines, dtype=np.int64)
    return out


class CsvLines:
    """The line each record of a CSV file starts on, found (by ``read_csv_python``) on first use:
    messages need it, reading does not."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: np.ndarray | None = None

    def __getitem__(self, index: int) -> int:
        if self._lines is None:
            self._lines = read_csv_python(self.path)[LINE]
        return int(self._lines[index])


def at_line(exc: CallsError, lines: Any, base: int) -> CallsError:
    """``exc`` with its row (``base`` + record index) replaced by the line the record starts on."""
    if lines is None or exc.row is None or exc.row < base:
        return exc
    return CallsError(exc.message, file=exc.file, row=lines[exc.row - base], field=exc.field)


def arrow_options(names: list[str], block_size: int | None = None) -> dict[str, Any]:
    """Keyword arguments of ``pyarrow.csv.read_csv``/``open_csv`` for a calls file whose (stripped) header
    is ``names``: every column exact text, empty fields "" (not null), quoted line breaks allowed."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read = pacsv.ReadOptions(column_names=names, skip_rows=1, **({"block_size": block_size} if block_size else {}))
    return {
        "read_options": read,
        "parse_options": pacsv.ParseOptions(newlines_in_values=True),
        "convert_options": pacsv.ConvertOptions(column_types={c: pa.string() for c in names},
                                                strings_can_be_null=False),
    }


def csv_header(path: Path) -> list[str]:
    """The stripped header names, or the exact error of the file (empty, not UTF-8, a name twice...)."""
    try:
        names = header_names(path)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error):
        names = []
    if not names or len(set(names)) != len(names):
        read_csv_python(path)  # raises the exact error
    return names


def refused(path: Path, exc: Exception) -> CallsError:
    """The error for a CSV file pyarrow refused: the csv module's exact message if it finds one."""
    try:
        read_csv_python(path)
    except CallsError as err:
        return err
    return CallsError(f"CSV error: {exc}", file=str(path))


def read_csv(path: Path) -> dict[str, Any]:
    """The columns of a CSV calls file as Arrow string arrays, plus their record lines (``CsvLines``)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = csv_header(path)
    try:
        table = pacsv.read_csv(path, **arrow_options(names))
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        raise refused(path, exc) from None
    out: dict[str, Any] = {name: table.column(i) for i, name in enumerate(names)}
    out[LINE] = CsvLines(path)
    return out
