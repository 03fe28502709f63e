"""Bills and per-call outcomes in Arrow and pandas form: exact decimal128 money, words instead of codes."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import CATALOG, OCT, accounts, calls, official, repeat

import ocrledger
from ocrledger.codes import Fault, Source, Status
from ocrledger.model.bill_tables import bills_to_arrow, bills_to_pandas
from ocrledger.model.bills import bills_to_json
from ocrledger.rerate.rerater import rerate
from ocrledger.store.ledger import Ledger

ACC = accounts(CATALOG, account=[official("u", "RecognizeIdcard", "RecognizeGeneral"), official("w")])


def month() -> dict:  # type: ignore[type-arg]
    # u: 10,300 RecognizeIdcard calls -> 200 free, 10,000 PAYG at 0.0825 = 825.00, 100 at 0.0495 = 4.95;
    # u: 3 RecognizeGeneral calls (free); w: 2 calls of an API it never activated (rejected)
    return calls(repeat(10_300, "u", "RecognizeIdcard", OCT, step_ms=100)
                 + repeat(3, "u", "RecognizeGeneral", OCT, prefix="g")
                 + repeat(2, "w", "RecognizeIdcard", OCT, prefix="x"))


def test_bill_lines_as_arrow_carry_exact_decimals() -> None:
    res = ocrledger.rate(month(), CATALOG, ACC)
    table = res.bills_table()
    assert table.schema.field("amount").type == pa.decimal128(38, 2)
    assert table.schema.field("amount_exact").type == pa.decimal128(38, 6)
    assert table.num_rows == sum(len(b.lines) for b in res.bills) == 3
    rows = {(r["account"], r["api"]): r for r in table.to_pylist()}
    card = rows[("u", "RecognizeIdcard")]
    assert (card["free"], card["payg"]) == (200, 10_100)
    assert [(t["calls"], t["unit_price"], t["amount"]) for t in card["tiers"]] == [
        (10_000, Decimal("0.0825"), Decimal("825")), (100, Decimal("0.0495"), Decimal("4.95"))]
    assert card["amount"] == Decimal("829.95") == card["bill_total"]  # 825.00 + 4.95
    assert rows[("w", "RecognizeIdcard")]["rejected"] == 2
    for bill in res.bills:  # every figure equals the Bill object's
        for line in bill.lines:
            row = rows[(bill.account, line.api)]
            assert (row["amount"], row["amount_exact"], row["calls"]) == (line.amount, line.amount_exact, line.calls)


def test_bills_as_pandas_keep_decimal128_not_objects() -> None:
    res = ocrledger.rate(month(), CATALOG, ACC)
    frame = res.bills_frame()
    assert isinstance(frame["amount"].dtype, pd.ArrowDtype)
    assert frame["amount"].dtype.pyarrow_dtype == pa.decimal128(38, 2)
    assert frame["calls"].dtype.pyarrow_dtype == pa.int64()
    assert frame.groupby("account")["amount"].sum()["u"] == Decimal("829.95")  # exact, no float on the way
    nested = bills_to_pandas(res.bills, lines=False)
    assert list(nested["total"]) == [b.total for b in res.bills]


def test_nested_bills_match_their_json(tmp_path: Path) -> None:
    """One row per bill, as the JSON form: the same values (adjustments included, from a ledger)."""
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard")])
    ledger = Ledger.create(":memory:", CATALOG, acc)
    ledger.ingest(calls(repeat(10_200, "u", "RecognizeIdcard", OCT, step_ms=100)), "oct")
    ledger.ingest(calls(repeat(5, "u", "RecognizeIdcard", "2026-11-02T00:00:00+08:00", prefix="nov")), "nov")
    ledger.close_month("2026-10")
    ledger.ingest(calls([(f"late-{k}", "u", "RecognizeIdcard", "2026-10-31T23:59:59+08:00", 1) for k in range(3)]),
                  "late")
    bills = ledger.bills("2026-11")
    row = bills_to_arrow(bills, lines=False).to_pylist()[0]
    want = json.loads(bills_to_json(bills))[0]
    # three late October calls at 0.0495 = 0.1485 exact, 0.14 rounded down, on November's bill
    assert [(a["period"], a["calls"], a["amount_exact"], a["amount"]) for a in row["adjustments"]] == [
        ("2026-10", 3, Decimal("0.148500"), Decimal("0.14"))]
    assert row["total"] == Decimal(want["total"]) == Decimal("0.14")
    assert dict(row["free_remaining"]) == want["free_remaining"]
    assert [(ln["api"], ln["calls"], str(ln["amount_exact"])) for ln in row["lines"]] == [
        (ln["api"], ln["calls"], ln["amount_exact"]) for ln in want["lines"]]
    assert bills_to_arrow([], lines=False).num_rows == 0 and bills_to_arrow([]).num_rows == 0


def test_calls_table_gives_the_words_of_calls_parquet(tmp_path: Path) -> None:
    cols = month()
    res = ocrledger.rate(cols, CATALOG, ACC)
    table = res.calls_table()
    rerate(cols, CATALOG, ACC, out=tmp_path / "out")
    written = pq.read_table(tmp_path / "out" / "calls.parquet")
    assert table.schema == written.schema
    key = lambda r: r["record_id"]  # noqa: E731
    assert sorted(table.to_pylist(), key=key) == sorted(written.to_pylist(), key=key)
    words = table.column("status").to_pylist()
    assert words.count("rejected_inactive") == 2 and set(words) == {"charged", "rejected_inactive"}
    source = table.column("source").to_pylist()
    assert source.count("free") == 203 and source.count("payg") == 10_100 and source.count(None) == 2
    # the int8 codes and the words agree
    assert [Status(c).name.lower() for c in res.calls["status"].tolist()] == words
    assert [Source(c).name.lower() if c else None for c in res.calls["source"].tolist()] == source


def test_the_public_status_carries_only_outcomes() -> None:
    assert [s.name for s in Status] == ["CHARGED", "FAILED", "DUPLICATE", "REJECTED_INACTIVE", "REJECTED_NO_PLAN",
                                        "REJECTED_CREDENTIAL"]
    assert not hasattr(Status, "ERR_LATE") and not hasattr(Status, "ERR_OVERFLOW")
    assert {f.name: int(f) for f in Fault} == {"ERR_LATE": 64, "ERR_OVERFLOW": 65}
    with pytest.raises(ValueError):
        Status(64)
