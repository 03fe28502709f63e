"""One engine behind every face: rate, Ledger.ingest (one batch), rerate and the Dask rerate give byte-identical bills,
through the compiled bill formatter and through its twin; a ledger's bill with adjustments is the same through both."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import CATALOG, OCT, accounts, ms, official
from hypothesis import HealthCheck, given, settings
from strategies import scenarios

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from ocrledger import Ledger, rate  # noqa: E402
from ocrledger import dask as odask  # noqa: E402
from ocrledger.bills import files as billfiles  # noqa: E402
from ocrledger.bills.render import render  # noqa: E402
from ocrledger.model.bills import bills_to_json  # noqa: E402
from ocrledger.rerate.rerater import rerate  # noqa: E402

CHOOSE = """
import importlib
from ocrledger.bills import files
try:
    files._billfmt = None if twin else importlib.import_module("ocrledger.bills._billfmt")
except ImportError:
    files._billfmt = None
"""
"""Run (``exec``) here and on every Dask worker: the compiled bill formatter hidden (``twin``), as without a
compiler, or given back."""
CHOSEN = "__import__('ocrledger.bills.files', fromlist=['files']).available()"
"""Whether ``bills.files.formatter()`` picks the compiled formatter (``eval``, on a worker)."""


def choose(twin: bool, client) -> list[bool]:  # type: ignore[no-untyped-def]
    """The twin or the compiled formatter here and on the workers; whether each now picks the compiled one."""
    exec(CHOOSE, {"twin": twin})
    client.run(exec, CHOOSE, {"twin": twin})
    return [billfiles.available(), *client.run(eval, CHOSEN).values()]


@pytest.fixture(params=["compiled", "twin"])
def formatter(request: pytest.FixtureRequest, client):  # type: ignore[no-untyped-def]
    """Every face, here and on the Dask workers, formats bills with the compiled formatter or with its twin."""
    twin = request.param == "twin"
    if not twin and not billfiles.available():
        pytest.skip("the compiled bill formatter is not built")
    assert choose(twin, client) == [not twin] * 3
    yield request.param
    choose(False, client)


def arrow(cols: dict) -> object:
    return pa.table({k: (v.tolist() if v.dtype.kind in "UO" else v) for k, v in cols.items()})


def every_face(cat, acc, cols, client) -> str:  # type: ignore[no-untyped-def]
    """bills.json of rate (objects and the writer), the Ledger's bill texts, rerate's file and the Dask rerate's
    bills, asserted byte-identical; returns it."""
    rated = rate(cols, cat, acc)
    expected = bills_to_json(rated.bills)
    assert render(rated.bill_set, "json") == expected + "\n"  # rate's face: the writer on the bill columns
    assert render(rated.bill_set, "text") == render(rated.bills, "text")
    months = sorted({b.period for b in rated.bills})

    ledger = Ledger.create(":memory:", cat, acc)
    ledger.ingest(cols, batch_id="one")
    for month in months:  # the ledger's face: its bill texts, each as Bill.to_json
        assert ledger.bill_texts(month) == [b.to_json() for b in rated.bills if b.period == month]
    ingested = sorted((b for m in months for b in ledger.bills(m)), key=lambda b: b.key)
    assert bills_to_json(ingested) == expected

    with tempfile.TemporaryDirectory() as folder:
        result = rerate(arrow(cols), cat, acc, out=Path(folder))
        assert bills_to_json(result.bills) == expected
        assert (Path(folder) / "bills.json").read_text(encoding="utf-8") == expected + "\n"  # ends its last line

    frame = arrow(cols).to_pandas()
    with tempfile.TemporaryDirectory() as folder:
        on_dask = odask.rerate(dd.from_pandas(frame, npartitions=2), cat, acc, out=Path(folder))
        assert bills_to_json(on_dask.bills) == expected
        assert (Path(folder) / "bills.json").read_text(encoding="utf-8") == expected + "\n"
    return expected


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario=scenarios(max_calls=60))
def test_rate_ingest_rerate_and_dask_write_the_same_bills(scenario, client, formatter) -> None:  # type: ignore[no-untyped-def]
    every_face(*scenario, client)


HOSTILE = ["nul\x00", "new\nline", 'quo"te', "back\\slash", "ünï中", "sep\u2028ar", "ctl\x1f\x7f", "nul\x00\x00"]
"""Ids JSON must escape exactly as json.dumps(ensure_ascii=False) does (or must not escape: U+2028, DEL, non-ASCII);
two differ only by a trailing NUL."""


def hostile_setup():  # type: ignore[no-untyped-def]
    plans = [{"id": f"plan {a}", "account": a, "kind": "dedicated", "api": "RecognizeIdcard", "quantity": 100,
              "start": OCT} for a in HOSTILE[:4]]
    return accounts(CATALOG, account=[official(a, "RecognizeIdcard") for a in HOSTILE], plan=plans)


def hostile_calls(rows: list[tuple[str, str, str]]) -> dict[str, np.ndarray]:
    """(record_id, account, ts) rows as object columns (the exact strings: a trailing NUL stays)."""
    return {
        "record_id": np.array([r[0] for r in rows], dtype=object),
        "account": np.array([r[1] for r in rows], dtype=object),
        "api": np.array(["RecognizeIdcard"] * len(rows), dtype=object),
        "ts": np.array([ms(r[2]) for r in rows], dtype=np.int64),
        "success": np.ones(len(rows), dtype=np.int8),
        "channel": np.array(["official"] * len(rows), dtype=object),
    }


def test_hostile_ids_are_the_same_bytes_through_every_face(client, formatter) -> None:  # type: ignore[no-untyped-def]
    rows = [(f"r{k}{a}", a, f"2026-10-0{2 + k % 3}T00:00:00+08:00") for a in HOSTILE for k in range(300)]
    expected = every_face(CATALOG, hostile_setup(), hostile_calls(rows), client)
    assert [b["account"] for b in json.loads(expected)] == sorted(HOSTILE)  # no two merged, every id exact


def test_a_ledger_bill_with_adjustments_is_the_same_through_both_formatters(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    if not billfiles.available():
        pytest.skip("the compiled bill formatter is not built")
    ledger = Ledger.create(":memory:", CATALOG, hostile_setup())
    early = [(f"r{k}{a}", a, "2026-10-02T00:00:00+08:00") for a in HOSTILE for k in range(250)]
    november = [(f"n{k}{a}", a, "2026-11-02T00:00:00+08:00") for a in HOSTILE[::2] for k in range(2)]
    ledger.ingest(hostile_calls(early + november), "one")
    closed = ledger.close_month("2026-10")
    assert ledger.bill_texts("2026-10") == [b.to_json() for b in closed]  # stored at close by the compiled writer
    late = [(f"late{k}{a}", a, "2026-10-31T23:59:59+08:00") for a in HOSTILE for k in range(3)]
    ledger.ingest(hostile_calls(late), "late")

    compiled = ledger.bill_texts("2026-11")
    monkeypatch.setattr(billfiles, "_billfmt", None)  # as without a compiler: the twin, Bill.to_json
    assert not billfiles.available()
    assert ledger.bill_texts("2026-11") == compiled
    bills = [json.loads(text) for text in compiled]
    assert sorted(b["account"] for b in bills) == sorted(HOSTILE)  # bills with calls or only adjustments
    assert [a["record_ids"] for b in bills for a in b["adjustments"]] == [
        [f"late{k}{b['account']}" for k in range(3)] for b in bills]
    monkeypatch.undo()  # the compiled formatter again, but OCRLEDGER_PURE_PYTHON=1: the one rule for every compiled module
    monkeypatch.setenv("OCRLEDGER_PURE_PYTHON", "1")
    assert billfiles.formatter() is None and ledger.bill_texts("2026-11") == compiled
