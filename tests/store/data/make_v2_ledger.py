"""Made ``ledger_v2.sqlite`` and ``ledger_v2_expected.json`` with the schema-2 ledger of commit 8ca2c09 (counters as
JSON text; kept to show what the file holds: the current store migrates such files to schema 3)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from make_v1_ledger import ACC, CAT, calls  # the same setup and calls as the schema-1 file

from ocrledger.store.ledger import Ledger


def main(path: str, expected_path: str) -> None:
    ledger = Ledger.create(path, CAT, ACC)
    ledger.ingest(calls("a", "u", "official", "RecognizeIdcard", "2026-10-02T00:00:00+08:00", 400), "oct-1")
    ledger.ingest(calls("v", "u", "official", "VerifyVATInvoice", "2026-10-03T00:00:00+08:00", 30), "oct-2")
    ledger.ingest(calls("m", "m", "marketplace", "RecognizeGeneral", "2026-10-04T00:00:00+08:00", 40), "oct-3")
    ledger.ingest(calls("w", "w", "official", "RecognizeIdcard", "2026-10-09T23:00:00+08:00", 90), "oct-4")
    ledger.ingest(calls("g", "ghost", "official", "RecognizeIdcard", "2026-10-05T00:00:00+08:00", 3), "oct-5")
    ledger.ingest(calls("n", "u", "official", "RecognizeIdcard", "2026-11-02T00:00:00+08:00", 50), "nov-1")
    ledger.close_month("2026-10")
    ledger.ingest(calls("late", "u", "official", "RecognizeIdcard", "2026-10-31T23:00:00+08:00", 4), "late-1")
    ledger.ingest(calls("v2", "u", "official", "VerifyVATInvoice", "2026-11-03T00:00:00+08:00", 30), "nov-2")
    ledger.ingest(calls("m2", "m", "marketplace", "RecognizeGeneral", "2026-11-20T00:00:00+08:00", 5), "nov-3")
    expected = {month: ledger.bill_texts(month) for month in ("2026-10", "2026-11")}
    expected.update(quota_u=ledger.quota("u", at="2026-11-10T00:00:00+08:00"),
                    quota_m=ledger.quota("m", "marketplace", at="2026-11-10T00:00:00+08:00"),
                    details=ledger.call_details(), alerts=ledger.alerts(), batches=ledger.batches(),
                    qps={k: list(v) for k, v in ledger.qps("u", "2026-10").items()},
                    deductions=ledger.deductions(limit=10_000).rows,
                    plans_u=[p.to_dict() for p in ledger.plan_states("u", at="2026-11-10T00:00:00+08:00")])
    ledger.close()
    Path(expected_path).write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
