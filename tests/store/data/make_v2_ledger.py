"""Made ``ledger_v2.sqlite`` and ``ledger_v2_expected.json`` with the schema-2 ledger of commit 8ca2c09 (counters as
JSON text; kept to show what the file holds: the current store migrates such files to schema 3)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ocrledger.model.accounts import parse_accounts
from ocrledger.model.catalog import default_catalog
from ocrledger.store.ledger import Ledger

CAT = default_catalog()
ACC = parse_accounts({
    "account": [
        {"id": "u", "channel": "official", "activated": {"RecognizeIdcard": "2026-01-01T00:00:00+08:00",
                                                         "VerifyVATInvoice": "2026-01-01T00:00:00+08:00"}},
        {"id": "w", "channel": "official", "activated": {"RecognizeIdcard": "2026-10-10T00:00:00+08:00"}},
        {"id": "m", "channel": "marketplace"},
    ],
    "plan": [
        {"id": "p-ded", "account": "u", "kind": "dedicated", "api": "RecognizeIdcard", "quantity": 100,
         "start": "2026-10-01T00:00:00+08:00"},
        {"id": "p-sh", "account": "m", "channel": "marketplace", "kind": "shared", "quantity": 500,
         "start": "2026-10-01T00:00:00+08:00", "refunded": "2026-11-15T00:00:00+08:00"},
    ],
    "qps_addon": [{"account": "u", "api": "RecognizeIdcard", "qps": 5, "start": "2026-10-01T00:00:00+08:00"}],
    "alert": [{"account": "u", "kind": "plan_remaining", "target": "p-ded", "threshold": "10%"}],
    "credential": [{"key": "AK-u", "account": "u", "until": "2027-01-01T00:00:00+08:00"}],
}, CAT)


def calls(prefix: str, account: str, channel: str, api: str, start: str, n: int, step: int = 60_000) -> dict:
    t0 = CAT.clock.instant(start, what="t")
    return {"record_id": np.array([f"{prefix}{k:04d}" for k in range(n)], dtype=object),
            "account": np.array([account] * n, dtype=object), "channel": np.array([channel] * n, dtype=object),
            "api": np.array([api] * n, dtype=object), "ts": np.arange(n, dtype=np.int64) * step + t0,
            "success": np.array([1 if k % 17 else 0 for k in range(n)], dtype=np.int8)}


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
