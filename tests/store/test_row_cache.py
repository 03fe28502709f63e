"""The writer's kept rows (``RowCache``): another connection's commit, this connection's own lifecycle changes and a
failed batch all make the next batch read afresh, so the bills always equal one ``rate()`` of every call."""
from __future__ import annotations

from typing import Any

import pytest
from conftest import Target
from helpers import CATALOG, OCT, accounts, calls, official, repeat

from ocrledger.engine.rate import rate
from ocrledger.errors import OcrledgerError
from ocrledger.store.ledger import Ledger

ID, GEN, VAT = "RecognizeIdcard", "RecognizeGeneral", "VerifyVATInvoice"
NOV = "2026-11-01T00:00:00+08:00"


def _setup() -> dict[str, Any]:
    return {"account": [official("u", ID, VAT), official("v", ID)]}


def _bills(ledger: Ledger) -> list[str]:
    return [b.to_json() for month in ("2026-10", "2026-11") for b in ledger.bills(month)]


def _rated(rows: list[tuple[Any, ...]], setup: dict[str, Any]) -> list[str]:
    return [b.to_json() for b in rate(calls(rows), CATALOG, accounts(CATALOG, **setup)).bills]


def test_another_connections_batches_and_purchases_are_seen_by_the_next_batch(ledger_target: Target) -> None:
    where = ledger_target.new(persistent=True)
    setup = _setup()
    sent: list[tuple[Any, ...]] = []
    with Ledger.create(where, CATALOG, accounts(CATALOG, **setup)) as a, Ledger.open(where) as b:

        def send(ledger: Ledger, rows: list[tuple[Any, ...]], batch: str) -> None:
            ledger.ingest(calls(rows), batch)
            sent.extend(rows)

        # a: u's free quota 150 of 200 used, its verification pool 150 of 200; v 10
        send(a, repeat(150, "u", ID, OCT, prefix="a1-") + repeat(150, "u", VAT, OCT, prefix="a1v-")
             + repeat(10, "v", ID, OCT, prefix="a1w-"), "a1")
        # b (another connection) uses up both: a's kept counters and pool are stale now
        send(b, repeat(100, "u", ID, "2026-10-02T00:00:00+08:00", prefix="b1-")
             + repeat(100, "u", VAT, "2026-10-02T00:00:00+08:00", prefix="b1v-"), "b1")
        send(a, repeat(30, "u", ID, "2026-10-03T00:00:00+08:00", prefix="a2-")
             + repeat(30, "u", VAT, "2026-10-03T00:00:00+08:00", prefix="a2v-"), "a2")
        assert _bills(a) == _rated(sent, setup)
        # b buys a plan for u: a's kept plans of u are stale
        plan = {"id": "p1", "account": "u", "kind": "dedicated", "api": ID, "quantity": 1000,
                "start": "2026-10-04T00:00:00+08:00"}
        b.add_plan(**plan)
        setup["plan"] = [dict(plan)]
        send(a, repeat(40, "u", ID, "2026-10-05T00:00:00+08:00", prefix="a3-"), "a3")
        assert _bills(a) == _rated(sent, setup)
        # b refunds it
        b.refund("p1", "2026-10-06T00:00:00+08:00")
        setup["plan"][0]["refunded"] = "2026-10-06T00:00:00+08:00"
        send(a, repeat(20, "u", ID, "2026-10-07T00:00:00+08:00", prefix="a4-"), "a4")
        assert _bills(a) == _rated(sent, setup)
        # and a record b committed is a duplicate for a
        res = a.ingest(calls(repeat(1, "u", ID, "2026-10-02T00:00:00+08:00", prefix="b1-")), "a5")
        assert res.duplicates == 1
        assert _bills(a) == _rated(sent, setup)


def test_this_connections_own_lifecycle_changes_are_seen_by_the_next_batch(ledger_target: Target) -> None:
    setup = _setup()
    sent: list[tuple[Any, ...]] = []
    ledger = Ledger.create(ledger_target.new(), CATALOG, accounts(CATALOG, **setup))

    def send(rows: list[tuple[Any, ...]], batch: str) -> None:
        ledger.ingest(calls(rows), batch)
        sent.extend(rows)

    # v's GEN is not activated (rejected), w is not listed (rejected), u pays PAYG past its free quota
    send(repeat(250, "u", ID, OCT, prefix="1-") + repeat(5, "v", GEN, OCT, prefix="1v-")
         + repeat(5, "w", ID, OCT, prefix="1w-"), "1")
    ledger.add_plan(id="p1", account="u", kind="dedicated", api=ID, quantity=100, start="2026-10-02T00:00:00+08:00")
    ledger.activate("v", GEN, "2026-10-02T00:00:00+08:00")
    ledger.add_account("w", activated={ID: "2026-10-02T00:00:00+08:00"})
    setup["plan"] = [{"id": "p1", "account": "u", "kind": "dedicated", "api": ID, "quantity": 100,
                      "start": "2026-10-02T00:00:00+08:00"}]
    setup["account"][1]["activated"][GEN] = "2026-10-02T00:00:00+08:00"
    setup["account"].append(official("w", ID, at="2026-10-02T00:00:00+08:00"))
    send(repeat(30, "u", ID, "2026-10-03T00:00:00+08:00", prefix="2-")
         + repeat(5, "v", GEN, "2026-10-03T00:00:00+08:00", prefix="2v-")
         + repeat(5, "w", ID, "2026-10-03T00:00:00+08:00", prefix="2w-"), "2")
    assert _bills(ledger) == _rated(sent, setup)
    ledger.refund("p1", "2026-10-04T00:00:00+08:00")
    setup["plan"][0]["refunded"] = "2026-10-04T00:00:00+08:00"
    send(repeat(30, "u", ID, "2026-10-05T00:00:00+08:00", prefix="3-"), "3")
    assert _bills(ledger) == _rated(sent, setup)
    # a closed month: its late calls go to the next open bill (the kept counters of October stay exact)
    ledger.close_month("2026-10")
    ledger.ingest(calls(repeat(10, "u", ID, "2026-10-20T00:00:00+08:00", prefix="4-")
                        + repeat(10, "u", ID, NOV, prefix="4n-")), "4")
    ledger.ingest(calls(repeat(10, "u", ID, "2026-10-21T00:00:00+08:00", prefix="5-")
                        + repeat(10, "u", ID, "2026-11-02T00:00:00+08:00", prefix="5n-")), "5")
    (nov,) = ledger.bills("2026-11", "u")
    assert nov.line(ID).calls == 20
    assert [a.calls for a in nov.adjustments] == [20]


def test_a_failed_batch_leaves_nothing_kept(ledger_target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    setup = _setup()
    ledger = Ledger.create(ledger_target.new(), CATALOG, accounts(CATALOG, **setup))
    first = repeat(150, "u", ID, OCT, prefix="1-")
    ledger.ingest(calls(first), "1")
    # the batch fails after its counters, pool and new party were written: rolled back whole
    failing = repeat(100, "u", ID, "2026-10-02T00:00:00+08:00", prefix="2-") + repeat(3, "x", ID, OCT, prefix="2x-")

    def boom(*args: Any) -> None:
        raise OcrledgerError("injected failure")

    with monkeypatch.context() as m:
        m.setattr(ledger.store, "add_batch", boom)
        with pytest.raises(OcrledgerError, match="injected"):
            ledger.ingest(calls(failing), "2")
    # another new party now gets the id the failed batch's party had; then the failed batch is sent again
    other = repeat(2, "y", ID, OCT, prefix="3y-") + repeat(10, "u", ID, "2026-10-03T00:00:00+08:00", prefix="3-")
    ledger.ingest(calls(other), "3")
    ledger.ingest(calls(failing), "2")
    assert _bills(ledger) == _rated(first + other + failing, setup)
    assert ledger.batches() == ["1", "3", "2"]


def test_a_second_batch_of_the_same_parties_reads_no_setup_rows_until_another_connection_commits(
        tmp_path: Any) -> None:
    where = str(tmp_path / "l.sqlite")
    setup = {**_setup(), "plan": [{"id": "p1", "account": "u", "kind": "dedicated", "api": ID, "quantity": 10,
                                   "start": OCT}]}
    statements: list[str] = []
    with Ledger.create(where, CATALOG, accounts(CATALOG, **setup)) as a, Ledger.open(where) as b:
        a.ingest(calls(repeat(5, "u", ID, OCT, prefix="1-")), "1")
        a.db.set_trace_callback(statements.append)

        def reads(batch: str, prefix: str, at: str) -> set[str]:
            statements.clear()
            a.ingest(calls(repeat(5, "u", ID, at, prefix=prefix)), batch)
            return {t for s in statements for t in ("activations", "plans", "counters", "pools", "parties")
                    if s.lstrip().upper().startswith("SELECT") and f" {t} " in f" {s} ".replace("(", " ")}

        assert reads("2", "2-", "2026-10-02T00:00:00+08:00") == set()  # kept: nothing read again
        b.ingest(calls(repeat(5, "v", ID, OCT, prefix="b-")), "b")  # another connection commits
        assert reads("3", "3-", "2026-10-03T00:00:00+08:00") == {"activations", "plans", "counters", "pools", "parties"}
        assert reads("4", "4-", "2026-10-04T00:00:00+08:00") == set()
        a.add_plan(id="p2", account="v", kind="dedicated", api=ID, quantity=10, start=OCT)  # its own change
        assert reads("5", "5-", "2026-10-05T00:00:00+08:00") == {"activations", "plans", "counters", "pools", "parties"}
    with Ledger.open(where) as again:
        want = _rated([*repeat(5, "u", ID, OCT, prefix="1-"), *repeat(5, "v", ID, OCT, prefix="b-"),
                       *(r for k in range(2, 6) for r in repeat(5, "u", ID, f"2026-10-0{k}T00:00:00+08:00",
                                                                 prefix=f"{k}-"))],
                      {**setup, "plan": [*setup["plan"], {"id": "p2", "account": "v", "kind": "dedicated",
                                                           "api": ID, "quantity": 10, "start": OCT}]})
        assert _bills(again) == want


def test_bounded_memory_forgets_the_oldest_rows_and_stays_exact(ledger_target: Target) -> None:
    names = [f"a{k}" for k in range(12)]
    setup = {"account": [official(n, ID, VAT) for n in names],
             "plan": [{"id": f"p{k}", "account": n, "kind": "dedicated", "api": ID, "quantity": 7, "start": OCT}
                      for k, n in enumerate(names) if k % 2]}
    ledger = Ledger.create(ledger_target.new(), CATALOG, accounts(CATALOG, **setup))
    ledger._rows.max_parties, ledger._rows.max_lines = 3, 4  # a few parties kept, forgotten in turn
    sent: list[tuple[Any, ...]] = []
    for b in range(12):
        rows = [r for k in (b, (b * 5) % 12, (b * 7 + 3) % 12)
                for r in repeat(90, names[k], (ID, VAT)[k % 2], f"2026-10-{b + 2:02d}T00:00:00+08:00",
                                prefix=f"{b}-{k}-")]
        ledger.ingest(calls(rows), f"b{b}")
        sent.extend(rows)
        assert len(ledger._rows._names) <= 3 + 3 and len(ledger._rows._lines) <= 4 + 3
    assert _bills(ledger) == _rated(sent, setup)


def test_a_batch_of_mostly_new_parties_past_the_bound_reads_the_store_and_what_is_kept_stays_exact(
        ledger_target: Target) -> None:
    names = [f"a{k}" for k in range(10)]
    setup = {"account": [official(n, ID, VAT) for n in names],
             "plan": [{"id": f"p{k}", "account": n, "kind": "dedicated", "api": ID, "quantity": 50, "start": OCT}
                      for k, n in enumerate(names)]}
    ledger = Ledger.create(ledger_target.new(), CATALOG, accounts(CATALOG, **setup))
    ledger._rows.max_parties = 4
    sent: list[tuple[Any, ...]] = []
    widths = []
    for b, group in enumerate([names[:2], names, names[:2], names[2:], names[:3], names[1:2], names]):
        rows = [r for k, n in enumerate(group)
                for r in repeat(40, n, (ID, VAT)[(b + k) % 2], f"2026-10-{b + 2:02d}T00:00:00+08:00",
                                prefix=f"{b}-{n}-")]
        ledger.ingest(calls(rows), f"b{b}")
        sent.extend(rows)
        widths.append(ledger._rows.active)
        assert _bills(ledger) == _rated(sent, setup)
    if not ledger_target.postgres:  # the wide batches read the store; the narrow ones what is kept
        assert widths == [True, False, True, False, True, True, False]
