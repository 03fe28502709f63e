"""The normalized schema: migration of schema-1 and schema-2 files, opening reads no per-account data, single-row changes,
and a batch's statements touch only its own parties' rows (indexed, never a scan of a per-account table).
The migrations and the statement traces are SQLite's own; the single-row changes run on both backends."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import Target
from helpers import CATALOG, OCT, accounts, calls, official, repeat

from ocrledger.errors import OcrledgerError
from ocrledger.store.ledger import Ledger
from ocrledger.store.sqlite_sql import SqliteStore

DATA = Path(__file__).parent / "data"
PER_ACCOUNT = ("parties", "activations", "plans", "qps_addons", "alerts", "credentials", "counters", "pools",
               "plan_used", "daily", "qps_seconds", "late_records", "closed_bills", "deductions", "records")


def _v1_copy(tmp_path: Path) -> Path:
    path = tmp_path / "v1.sqlite"
    shutil.copy(DATA / "ledger_v1.sqlite", path)
    return path


def _answers_as_before(ledger: Ledger, want: dict[str, Any]) -> None:
    """Bills, quotas, call details, alerts, batches and QPS as the store that made the file answered."""
    for month in ("2026-10", "2026-11"):
        assert ledger.bill_texts(month) == want[month], month
    assert ledger.quota("u", at="2026-11-10T00:00:00+08:00") == want["quota_u"]
    assert ledger.quota("m", "marketplace", at="2026-11-10T00:00:00+08:00") == want["quota_m"]
    assert ledger.call_details() == want["details"]
    assert ledger.alerts() == want["alerts"]
    assert ledger.batches() == want["batches"]
    assert {k: list(v) for k, v in ledger.qps("u", "2026-10").items()} == want["qps"]


def test_a_schema_1_file_is_migrated_and_answers_as_before(tmp_path: Path) -> None:
    # ledger_v1.sqlite and ledger_v1_expected.json were made by the schema-1 store (data/make_v1_ledger.py)
    path = _v1_copy(tmp_path)
    want = json.loads((DATA / "ledger_v1_expected.json").read_text())
    with Ledger.open(path) as ledger:
        assert ledger.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)
        assert not ledger.db.execute("SELECT 1 FROM meta WHERE key = 'accounts'").fetchone()
        _answers_as_before(ledger, want)  # a closed October: the bytes frozen at close
        # the ghost account seen only in calls is an unlisted party; the stored setup is rows now
        assert ledger.db.execute("SELECT listed FROM parties WHERE account = 'ghost'").fetchone() == (0,)
        assert ledger.db.execute("SELECT SUM(units) FROM plan_used WHERE plan_id = 'p-ded'").fetchone() == (100,)
        # a committed batch replays as a no-op, an old record is a duplicate, new calls rate on top
        assert ledger.ingest(calls(repeat(3, "u", "RecognizeIdcard", OCT)), "oct-1").replayed
        again = calls([("a0001", "u", "RecognizeIdcard", "2026-11-05T00:00:00+08:00", 1),
                       ("new-1", "u", "RecognizeIdcard", "2026-11-05T00:00:00+08:00", 1)])
        res = ledger.ingest(again, "after-migration")
        assert res.duplicates == 1
        line = ledger.bills("2026-11", "u")[0].line("RecognizeIdcard")
        before = [b for b in want["2026-11"] if json.loads(b)["account"] == "u"][0]
        old_line = [x for x in json.loads(before)["lines"] if x["api"] == "RecognizeIdcard"][0]
        assert line.calls == old_line["calls"] + 1
    with Ledger.open(path) as ledger:  # migrated once: opened as schema 3 now
        assert ledger.db.execute("SELECT value FROM meta WHERE key = 'migrated_from'").fetchone() == ("1",)


def test_a_schema_1_file_that_cannot_be_written_says_it_needs_migrating(tmp_path: Path) -> None:
    with pytest.raises(OcrledgerError, match="schema 1 and must be migrated"):
        Ledger.open(_v1_copy(tmp_path), readonly=True)


def test_a_schema_2_file_is_migrated_and_answers_as_before(tmp_path: Path) -> None:
    # ledger_v2.sqlite and ledger_v2_expected.json were made by the schema-2 store (data/make_v2_ledger.py):
    # counters kept as JSON text become packed int64, and every answer stays what that store gave.
    path = tmp_path / "v2.sqlite"
    shutil.copy(DATA / "ledger_v2.sqlite", path)
    with pytest.raises(OcrledgerError, match="schema 2 and must be migrated"):
        Ledger.open(path, readonly=True)
    want = json.loads((DATA / "ledger_v2_expected.json").read_text())
    with Ledger.open(path) as ledger:
        assert ledger.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)
        assert ledger.db.execute("SELECT value FROM meta WHERE key = 'migrated_from'").fetchone() == ("2",)
        assert {t for (t,) in ledger.db.execute("SELECT DISTINCT typeof(counts) FROM counters")} == {"blob"}
        _answers_as_before(ledger, want)  # a closed October: the bytes frozen at close
        assert ledger.deductions(limit=10_000).rows == want["deductions"]
        assert [p.to_dict() for p in ledger.plan_states("u", at="2026-11-10T00:00:00+08:00")] == want["plans_u"]
        # New calls count on top of the migrated counters. u's November: RecognizeIdcard 47 of 200 free calls
        # used, so one more is free (48); the verification pool is used up, so a VerifyVATInvoice call is its
        # 7th PAYG call of the month.
        before = [json.loads(b) for b in want["2026-11"] if json.loads(b)["account"] == "u"][0]
        old = {x["api"]: x for x in before["lines"]}
        ledger.ingest(calls([("new-1", "u", "RecognizeIdcard", "2026-11-05T00:00:00+08:00", 1),
                             ("new-2", "u", "VerifyVATInvoice", "2026-11-05T00:00:01+08:00", 1)]), "after")
        bill = ledger.bills("2026-11", "u")[0]
        assert bill.line("RecognizeIdcard").free == old["RecognizeIdcard"]["free"] + 1 == 48
        assert bill.line("VerifyVATInvoice").payg == old["VerifyVATInvoice"]["payg"] + 1 == 7


class _Trace:
    """Every SQL statement the ledger's connections run (SQLite's trace callback, values expanded)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[str] = []
        original = SqliteStore._connect

        def connect(target: str, *, uri: bool, timeout: float) -> Any:
            db = original(target, uri=uri, timeout=timeout)
            db.set_trace_callback(self.statements.append)
            return db

        monkeypatch.setattr(SqliteStore, "_connect", staticmethod(connect))

    def take(self) -> list[str]:
        """The statements so far (commit times blanked), and a fresh start."""
        out, self.statements[:] = [re.sub(r"'\d{4}-\d\d-\d\dT[\d:]+Z'", "'<now>'", s) for s in self.statements], []
        return out


def _big(path: Path, n: int) -> Ledger:
    acc = accounts(CATALOG, account=[official(f"a{k:05d}", "RecognizeIdcard") for k in range(n)],
                   plan=[{"id": f"p{k}", "account": f"a{k:05d}", "kind": "dedicated", "api": "RecognizeIdcard",
                          "quantity": 5, "start": OCT} for k in range(0, n, 3)])
    return Ledger.create(path, CATALOG, acc)


def _tables(statement: str) -> set[str]:
    words = statement.replace("(", " ").replace(",", " ").split()
    return {w for w in words if w in PER_ACCOUNT}


def test_opening_reads_no_per_account_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _big(tmp_path / "l.sqlite", 300).close()
    trace = _Trace(monkeypatch)
    Ledger.open(tmp_path / "l.sqlite").close()
    touched = set().union(*(_tables(s) for s in trace.take()))
    assert touched == set()


def test_every_statement_of_a_batch_and_of_a_plan_purchase_is_the_same_for_300_and_3000_accounts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = calls(repeat(40, "a00001", "RecognizeIdcard", OCT) + repeat(20, "a00002", "RecognizeIdcard", OCT,
                                                                       prefix="b"))
    traces = []
    for n in (300, 3000):
        _big(tmp_path / f"l{n}.sqlite", n).close()
        trace = _Trace(monkeypatch)
        with Ledger.open(tmp_path / f"l{n}.sqlite") as ledger:
            trace.take()
            ledger.ingest(batch, "b1")
            ingest = trace.take()
            ledger.add_plan(id="new", account="a00002", kind="dedicated", api="RecognizeIdcard", quantity=10,
                            start=OCT)
            buy = trace.take()
            ledger.bills("2026-10", "a00001")
            bill = trace.take()
            for statement in ingest + buy + bill:  # no full scan of a per-account table in any of them
                if not _tables(statement) or not statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE")):
                    continue
                plan = " ".join(str(r[-1]) for r in ledger.db.execute(f"EXPLAIN QUERY PLAN {statement}"))
                for table in _tables(statement):
                    assert f"SCAN {table}" not in plan.replace("SCAN json_each", ""), (statement, plan)
        traces.append((ingest, buy, bill))
    assert traces[0] == traces[1]  # the same statements with the same values: the cost does not follow the setup


def test_single_row_changes_take_effect_from_their_instant_and_are_checked(ledger_target: Target) -> None:
    ledger = Ledger.create(ledger_target.new(persistent=True), CATALOG)
    ledger.add_account("n")
    # not activated yet: 3 calls rejected
    ledger.ingest(calls(repeat(3, "n", "RecognizeIdcard", OCT)), "before")
    ledger.activate("n", "RecognizeIdcard", "2026-10-02T00:00:00+08:00")
    ledger.add_plan(id="p", account="n", kind="dedicated", api="RecognizeIdcard", quantity=300,
                    start="2026-10-03T00:00:00+08:00")
    # 2026-10-02: 5 calls free (activated); from 10-03 the free quota still pays first: 195 free, then 5 plan
    ledger.ingest(calls(repeat(5, "n", "RecognizeIdcard", "2026-10-02T00:00:00+08:00", prefix="x")
                        + repeat(200, "n", "RecognizeIdcard", "2026-10-03T00:00:00+08:00", prefix="y")), "after")
    line = ledger.bills("2026-10", "n")[0].line("RecognizeIdcard")
    assert (line.rejected, line.free, line.dedicated, line.payg) == (3, 200, 5, 0)
    with pytest.raises(OcrledgerError, match="listed already"):
        ledger.add_account("n")
    with pytest.raises(OcrledgerError, match="exists already"):
        ledger.add_plan(id="p", account="n", kind="dedicated", api="RecognizeIdcard", quantity=1, start=OCT)
    with pytest.raises(OcrledgerError, match="not listed"):
        ledger.add_plan(id="q", account="nobody", kind="dedicated", api="RecognizeIdcard", quantity=1, start=OCT)
    with pytest.raises(OcrledgerError, match="quantity"):
        ledger.add_plan(id="q", account="n", kind="dedicated", api="RecognizeIdcard", quantity=0, start=OCT)
    ledger.refund("p", "2026-10-20T00:00:00+08:00")
    with pytest.raises(OcrledgerError, match="refunded already"):
        ledger.refund("p", "2026-10-21T00:00:00+08:00")
    assert ledger.db.execute("SELECT COUNT(*) FROM plans").fetchone() == (1,)


def test_an_account_seen_in_calls_before_it_is_listed_keeps_its_counters(ledger_target: Target) -> None:
    ledger = Ledger.create(ledger_target.new(), CATALOG)
    ledger.ingest(calls(repeat(2, "late-comer", "RecognizeIdcard", OCT)), "early")  # unlisted: rejected
    ledger.add_account("late-comer", activated={"RecognizeIdcard": OCT})
    ledger.ingest(calls(repeat(2, "late-comer", "RecognizeIdcard", "2026-10-05T00:00:00+08:00", prefix="z")), "b")
    (bill,) = ledger.bills("2026-10", "late-comer")
    line = bill.line("RecognizeIdcard")
    assert (line.calls, line.rejected, line.free) == (4, 2, 2)
