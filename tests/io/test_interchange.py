"""Calls in any in-memory form (dicts, records, pandas, polars, DuckDB, pyarrow, the Arrow PyCapsule interface)
are converted to Arrow once and judged by the one validator: the same bills, or the same error, from each."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from helpers import CATALOG, OCT, accounts, ms, official

from ocrledger.codes import Status
from ocrledger.engine.rate import Engine, rate
from ocrledger.errors import OcrledgerError
from ocrledger.model.bills import bills_to_json
from ocrledger.rerate.rerater import rerate
from ocrledger.store.ledger import Ledger

ACC = accounts(CATALOG, account=[official("u", "RecognizeIdcard", "RecognizeGeneral"),
                                 official("v", "RecognizeIdcard")])
T0 = ms(OCT)
N = 350


def columns() -> dict[str, list[Any]]:
    return {
        "record_id": [f"r{i:04d}" for i in range(N)] + ["r0000"],  # the last one repeats r0000: a duplicate
        "account": ["u" if i % 5 else "v" for i in range(N)] + ["u"],
        "api": ["RecognizeIdcard" if i % 7 else "RecognizeGeneral" for i in range(N)] + ["RecognizeIdcard"],
        "ts": [T0 + 1000 * i for i in range(N)] + [T0 + 1000 * N],
        "success": [0 if i % 11 == 0 else 1 for i in range(N)] + [1],
    }


class Stream:
    """Anything that speaks the Arrow PyCapsule stream interface (here a wrapped pyarrow table)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self.table.__arrow_c_stream__(requested_schema)


class ArrayCapsule:
    """The PyCapsule array interface (one record batch)."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.batch = batch

    def __arrow_c_array__(self, requested_schema: Any = None) -> Any:
        return self.batch.__arrow_c_array__(requested_schema)


def forms(cols: dict[str, list[Any]]) -> dict[str, Callable[[], Any]]:
    """Each in-memory form of the same calls (made fresh: a stream is read once)."""
    table = pa.table(cols)
    records = [dict(zip(cols, values)) for values in zip(*cols.values())]
    return {
        "dict of lists": lambda: cols,
        "dict of numpy": lambda: {k: np.array(v, dtype=object if isinstance(v[0], str) else None) for k, v in cols.items()},
        "list of records": lambda: records,
        "pandas": lambda: pd.DataFrame(cols),
        "pyarrow table": lambda: table,
        "pyarrow record batch": lambda: table.to_batches()[0],
        "pyarrow reader (3 batches)": lambda: pa.RecordBatchReader.from_batches(
            table.schema, table.to_batches(max_chunksize=100)),
        "PyCapsule stream": lambda: Stream(table),
        "PyCapsule array": lambda: ArrayCapsule(table.combine_chunks().to_batches()[0]),
        "polars": lambda: pl.DataFrame(cols),
        "polars lazy": lambda: pl.DataFrame(cols).lazy(),
        "duckdb relation": lambda: duckdb.from_arrow(table),
    }


FORMS = list(forms(columns()))


@pytest.fixture(scope="module")
def expected() -> str:
    res = rate(columns(), CATALOG, ACC)
    bills = json.loads(bills_to_json(res.bills))
    u_card = next(line for b in bills if b["account"] == "u" for line in b["lines"] if line["api"] == "RecognizeIdcard")
    # u's RecognizeIdcard calls: i % 5 != 0 and i % 7 != 0 of 0..349: 350 - 70 - 50 + 10 (i % 35 == 0) = 240;
    # failed (i % 11 == 0) among them: 32 - 7 (i % 55) - 5 (i % 77) + 1 (i % 385) = 21; so 219 succeed:
    # 200 free, 19 PAYG at 0.0825 = 1.5675 exact, 1.56 rounded down
    assert (u_card["calls"], u_card["failed"], u_card["free"], u_card["payg"]) == (240, 21, 200, 19)
    assert (u_card["amount_exact"], u_card["amount"]) == ("1.567500", "1.56")
    assert (res.calls["status"] == Status.DUPLICATE).sum() == 1
    return bills_to_json(res.bills)


@pytest.mark.parametrize("form", FORMS)
def test_every_form_gives_the_same_bills_everywhere(form: str, expected: str, tmp_path: Path) -> None:
    make = forms(columns())[form]
    assert bills_to_json(rate(make(), CATALOG, ACC).bills) == expected
    assert bills_to_json(Engine(CATALOG, ACC).rate(make()).bills) == expected
    ledger = Ledger.create(":memory:", CATALOG, ACC)
    assert ledger.ingest(make(), "b1").duplicates == 1
    assert bills_to_json(ledger.bills("2026-10")) == expected
    assert bills_to_json(rerate(make(), CATALOG, ACC, out=tmp_path / "out").bills) == expected


def bad(cols: dict[str, list[Any]], col: str, row: int, value: Any) -> dict[str, list[Any]]:
    out = {k: list(v) for k, v in cols.items()}
    out[col][row - 1] = value
    return out


NAMES = {"dict of lists": "<columns>", "dict of numpy": "<columns>", "list of records": "<records>",
         "pandas": "<dataframe>", "pyarrow table": "<arrow table>", "pyarrow record batch": "<arrow table>",
         "pyarrow reader (3 batches)": "<arrow stream>", "PyCapsule stream": "<Stream>",
         "PyCapsule array": "<ArrayCapsule>", "polars": "<polars DataFrame>", "polars lazy": "<polars LazyFrame>",
         "duckdb relation": "<duckdb DuckDBPyRelation>"}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("col", "value", "message"), [
    ("api", "Nope", "field api: API 'Nope' is not in the catalog"),
    ("record_id", None, "field record_id: is empty"),
    ("ts", None, "field ts: is empty"),
    ("account", "", "field account: is empty"),
    ("success", None, "field success: is empty"),
])
def test_a_bad_cell_at_row_n_is_named_alike_in_every_form(form: str, col: str, value: Any, message: str) -> None:
    cols = bad(columns(), col, 137, value)  # row 137: the second batch of the 100-row reader
    calls = forms(cols)[form]()
    with pytest.raises(OcrledgerError) as err:
        rate(calls, CATALOG, ACC)
    assert str(err.value) == f"{NAMES[form]}: row 137: {message}"


@pytest.mark.parametrize(("col", "value", "message"), [
    ("record_id", 5, "field record_id: must be text, not 5"),
    ("account", 1.5, "field account: must be text, not 1.5"),
    ("ts", 1.5, "field ts: 1.5 is a float; give epoch milliseconds as an integer or ISO 8601"),
    ("ts", "tomorrow", "field ts: "),
    ("success", "maybe", "field success: must be 1/0 or true/false, not 'maybe'"),
    ("success", b"1", "field success: must be 1/0 or true/false, not b'1'"),
    ("ts", 2 ** 70, "field ts: "),
])
def test_a_mixed_column_is_refused_at_its_odd_cell(col: str, value: Any, message: str) -> None:
    """A column Arrow cannot hold as one type (5 among text) is read cell by cell, as a CSV file's text would be."""
    for make in (lambda c: c, lambda c: [dict(zip(c, v)) for v in zip(*c.values())]):
        with pytest.raises(OcrledgerError) as err:
            rate(make(bad(columns(), col, 42, value)), CATALOG, ACC)
        text = str(err.value)
        assert "row 42: " + message in text and "\n" not in text, text


def test_mixed_instants_are_read_as_a_csv_file_would_give_them() -> None:
    cols = columns()
    cols["ts"] = [str(t) if i % 2 else t for i, t in enumerate(cols["ts"])]  # epoch ms as text and as numbers
    cols["ts"][3] = "2026-10-01T00:00:03+08:00"  # = T0 + 3000 (OCT is 2026-10-01 00:00 +08:00)
    cols["success"] = [bool(s) if i % 3 else s for i, s in enumerate(cols["success"])]
    assert bills_to_json(rate(cols, CATALOG, ACC).bills) == bills_to_json(rate(columns(), CATALOG, ACC).bills)


def test_naive_datetimes_are_refused_as_in_parquet() -> None:
    cols: dict[str, Any] = columns()
    cols["ts"] = np.array(cols["ts"], dtype="datetime64[ms]")
    for calls in (cols, pd.DataFrame(cols)):
        with pytest.raises(OcrledgerError, match=r"row 1: field ts: has no UTC offset"):
            rate(calls, CATALOG, ACC)
    aware = pd.DataFrame({**cols, "ts": pd.to_datetime(columns()["ts"], unit="ms", utc=True)})
    assert bills_to_json(rate(aware, CATALOG, ACC).bills) == bills_to_json(rate(columns(), CATALOG, ACC).bills)


def test_pandas_missing_text_is_empty_not_nan() -> None:
    df = pd.DataFrame(bad(columns(), "account", 9, None))
    assert df["account"].isna().sum() == 1
    with pytest.raises(OcrledgerError, match=r"^<dataframe>: row 9: field account: is empty$"):
        rate(df, CATALOG, ACC)


def test_records_with_a_missing_key_name_its_row() -> None:
    records = [dict(zip(columns(), v)) for v in zip(*columns().values())]
    del records[20]["api"]
    with pytest.raises(OcrledgerError, match=r"^<records>: row 21: field api: is empty$"):
        rate(records, CATALOG, ACC)


def test_columns_of_unequal_length_and_odd_shapes() -> None:
    cols: dict[str, Any] = columns()
    cols["ts"] = cols["ts"][:-1]
    with pytest.raises(OcrledgerError, match=r"^<columns>: column 'ts' has 350 values, record_id has 351$"):
        rate(cols, CATALOG, ACC)
    with pytest.raises(OcrledgerError, match=r"column 'ts' must be a one-dimensional"):
        rate({**columns(), "ts": np.zeros((351, 2), dtype=np.int64)}, CATALOG, ACC)
    with pytest.raises(TypeError, match=r"calls must be a path.*not int"):
        rate(5, CATALOG, ACC)


def test_uint64_instants_past_int64_are_out_of_range() -> None:
    cols: dict[str, Any] = columns()
    ts = np.array(cols["ts"], dtype=np.uint64)
    ts[7] = np.uint64(2 ** 63 + 5)
    cols["ts"] = ts
    with pytest.raises(OcrledgerError, match=r"^<columns>: row 8: field ts: 9223372036854775813 ms is outside"):
        rate(cols, CATALOG, ACC)
    with pytest.raises(OcrledgerError, match=r"^<arrow table>: row 8: field ts: 9223372036854775813 ms is outside"):
        rerate(pa.table(cols), CATALOG, ACC)
