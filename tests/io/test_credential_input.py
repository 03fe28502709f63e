"""Calls that name their caller by ``credential`` (the ledger) are read by the one input layer in every form."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import CATALOG, accounts, ms, official

from ocrledger.errors import OcrledgerError
from ocrledger.model.bills import bills_to_json
from ocrledger.store.ledger import Ledger

ACC = accounts(CATALOG, account=[official("u", "RecognizeIdcard")],
               credential=[{"key": "AK1", "account": "u", "until": "2026-10-10T00:00:00+08:00"}])
COLS: dict[str, list[Any]] = {
    "record_id": ["a", "b", "c"], "credential": ["AK1", "AK1", "NOPE"], "api": ["RecognizeIdcard"] * 3,
    "ts": [ms("2026-10-02T00:00:00+08:00"), ms("2026-10-12T00:00:00+08:00"), ms("2026-10-03T00:00:00+08:00")],
    "success": [1, 1, 1],
}


def _csv(path: Path, cols: dict[str, list[Any]]) -> Path:
    lines = [",".join(cols)] + [",".join(str(v) for v in row) for row in zip(*cols.values())]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("form", ["columns", "records", "csv", "parquet"])
def test_credentials_resolve_alike_in_every_form(form: str, tmp_path: Path) -> None:
    calls: Any = {
        "columns": lambda: COLS,
        "records": lambda: [dict(zip(COLS, v)) for v in zip(*COLS.values())],
        "csv": lambda: _csv(tmp_path / "c.csv", COLS),
        "parquet": lambda: (pq.write_table(pa.table(COLS), tmp_path / "c.parquet"), tmp_path / "c.parquet")[1],
    }[form]()
    ledger = Ledger.create(":memory:", CATALOG, ACC)
    res = ledger.ingest(calls, "b")
    # a: AK1 valid on 2 Oct -> u, charged (free); b: AK1 expired on 12 Oct; c: NOPE unknown -> REJECTED_CREDENTIAL (5)
    assert dict(zip(res.calls["record_id"].tolist(), res.calls["status"].tolist())) == {"a": 0, "b": 5, "c": 5}
    reference = Ledger.create(":memory:", CATALOG, ACC)
    reference.ingest(COLS, "b")
    assert bills_to_json(ledger.bills("2026-10")) == bills_to_json(reference.bills("2026-10"))


def test_an_empty_credential_names_its_field(tmp_path: Path) -> None:
    cols = {**COLS, "credential": ["AK1", "", "NOPE"]}
    for calls, name in ((cols, "<columns>"), (_csv(tmp_path / "c.csv", cols), str(tmp_path / "c.csv"))):
        with pytest.raises(OcrledgerError) as err:
            Ledger.create(":memory:", CATALOG, ACC).ingest(calls, "b")
        row = 2 if name == "<columns>" else 3  # the second record: record 2, line 3 of the CSV file
        assert str(err.value) == f"{name}: row {row}: field credential: is empty"
