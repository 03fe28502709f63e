"""Alerts: each kind raised with the record that crossed it, across batch edges, delivered once."""
from __future__ import annotations

from helpers import CATALOG, OCT, accounts, calls, official, repeat

from conftest import Target

from ocrledger.store.ledger import Ledger


def _ledger(target: Target) -> Ledger:
    acc = accounts(
        CATALOG,
        account=[official("u", "RecognizeIdcard", "VerifyVATInvoice")],
        plan=[{"id": "p", "account": "u", "kind": "dedicated", "api": "RecognizeIdcard", "quantity": 100,
               "start": OCT}],
        alert=[
            {"account": "u", "kind": "plan_remaining", "target": "p", "threshold": 10},
            {"account": "u", "kind": "plan_remaining", "target": "p", "threshold": "50%"},
            {"account": "u", "kind": "free_exhausted", "target": "RecognizeIdcard"},
            {"account": "u", "kind": "free_exhausted", "target": "VerifyVATInvoice"},
            {"account": "u", "kind": "payg_spend", "threshold": "1.00"},
        ],
    )
    return Ledger.create(target.new(), CATALOG, acc)


def test_every_alert_kind_names_the_crossing_record(ledger_target: Target) -> None:
    ledger = _ledger(ledger_target)
    idcard = repeat(400, "u", "RecognizeIdcard", OCT, prefix="r")
    verify = repeat(60, "u", "VerifyVATInvoice", "2026-10-20T00:00:00+08:00", prefix="v")
    raised = list(ledger.ingest(calls(idcard[:250]), "one").alerts)  # the batch edge falls inside the plan
    raised += ledger.ingest(calls(idcard[250:] + verify), "two").alerts
    got = {(e.kind, e.threshold, e.target): e.record_id for e in raised}
    assert got == {
        # calls r0..r199 are free: the 200th (r0000199) uses the last free call
        ("free_exhausted", "", "RecognizeIdcard"): "r0000199",
        # the plan pays r200..r299; remaining < 50% of 100 after its 51st call (49 left): r0000250
        ("plan_remaining", "50%", "p"): "r0000250",
        # remaining < 10 after its 91st call (9 left): r0000290
        ("plan_remaining", "10", "p"): "r0000290",
        # and again when it is used up, once for the plan although two alerts name it: its 100th call r0000299
        ("plan_remaining", "0", "p"): "r0000299",
        # PAYG from r300 at 0.0825: 12 calls = 0.99, 13 calls = 1.0725 > 1.00: r0000312
        ("payg_spend", "1.00", None): "r0000312",
        # the lifetime pool of 50 verification calls: the 50th (v0000049) empties it
        ("free_exhausted", "", "VerifyVATInvoice"): "v0000049",
    }
    assert len(raised) == 6


def test_alerts_are_delivered_once_and_never_raised_twice(ledger_target: Target) -> None:
    ledger = _ledger(ledger_target)
    ledger.ingest(calls(repeat(320, "u", "RecognizeIdcard", OCT)), "one")
    first = ledger.pending_alerts()
    # free used up, the plan below 50% and below 10, the plan used up, PAYG over 1.00 (13 calls at 0.0825)
    assert len(first) == 5 and all(a["record_id"] for a in first)
    assert ledger.pending_alerts() == []
    ledger.ingest(calls(repeat(50, "u", "RecognizeIdcard", "2026-10-09T00:00:00+08:00", prefix="z")), "two")
    assert ledger.pending_alerts() == []  # the same thresholds are not crossed again this month
    # next month the free quota runs out again: a new event
    ledger.ingest(calls(repeat(200, "u", "RecognizeIdcard", "2026-11-03T00:00:00+08:00", prefix="n")), "nov")
    (again,) = ledger.pending_alerts(acknowledge=False)
    assert (again["kind"], again["record_id"]) == ("free_exhausted", "n0000199")
    assert len(ledger.pending_alerts()) == 1 and ledger.pending_alerts() == []
