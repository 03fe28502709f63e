"""The embedded ledger: batches equal one rate, replays, duplicates, close and adjustments, quota, QPS, credentials."""
from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pytest
from helpers import CATALOG, OCT, accounts, calls, ms, official, overflow_setup, repeat
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_scenarios import charge_order, scenario, take

from conftest import Target

from ocrledger.engine.rate import rate
from ocrledger.errors import MoneyError, OcrledgerError, StateError
from ocrledger.store.ledger import Ledger


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.floats(0, 1), min_size=49, max_size=49))
def test_fifty_time_ordered_batches_equal_one_rate(ledger_target: Target, seed: int, cuts: list[float]) -> None:
    cat, acc, data = scenario(seed)
    order = charge_order(data)
    n = len(order)
    edges = [0, *sorted(int(c * n) for c in cuts), n]  # 50 random-sized batches, some empty
    ledger = Ledger.create(ledger_target.new(), cat, acc)
    for k, (lo, hi) in enumerate(zip(edges, edges[1:])):
        ledger.ingest(take(data, order[lo:hi]), f"batch-{k}")
    want = rate(data, cat, acc).bills
    for month in ("2026-10", "2026-11"):
        got = ledger.bills(month)
        assert [b.to_json() for b in got] == [b.to_json() for b in want if b.period == month]


def test_both_kernels_give_the_same_ledger(ledger_target: Target, kernel: str) -> None:
    cat, acc, data = scenario(7)
    order = charge_order(data)
    ledger = Ledger.create(ledger_target.new(), cat, acc, kernel=kernel)
    for k in range(0, len(order), 40):
        ledger.ingest(take(data, order[k : k + 40]), f"b{k}")
    assert [b.to_json() for b in ledger.bills("2026-10")] == [
        b.to_json() for b in rate(data, cat, acc, kernel="reference").bills if b.period == "2026-10"
    ]


def _idcard_ledger(where: str) -> Ledger:
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard")])
    return Ledger.create(where, CATALOG, acc)


def test_replaying_a_batch_is_a_noop_and_records_are_never_charged_twice(ledger_target: Target) -> None:
    ledger = _idcard_ledger(ledger_target.new())
    first = calls(repeat(300, "u", "RecognizeIdcard", OCT))
    assert not ledger.ingest(first, "b1").replayed
    before = ledger.bills("2026-10")[0].to_json()
    again = ledger.ingest(first, "b1")
    assert again.replayed and ledger.bills("2026-10")[0].to_json() == before
    # A new batch re-sending 100 old records and 50 new ones: 100 duplicates, 50 charged
    # (positions 101..150 of PAYG at 0.0825: 50 x 0.0825 = 4.125 more).
    mixed = calls(repeat(300, "u", "RecognizeIdcard", OCT)[200:] + repeat(50, "u", "RecognizeIdcard",
                                                                            "2026-10-05T00:00:00+08:00", prefix="n"))
    res = ledger.ingest(mixed, "b2")
    assert res.duplicates == 100
    line = ledger.bills("2026-10")[0].line("RecognizeIdcard")
    assert (line.calls, line.free, line.payg) == (350, 200, 150)  # duplicates appear in no count
    assert line.amount_exact == Decimal("12.375000")  # 150 x 0.0825
    assert sum(d["duplicates"] for d in ledger.call_details("u")) == 100


def test_duplicate_lookup_uses_the_index_not_a_scan() -> None:
    ledger = _idcard_ledger(":memory:")  # SQLite only: its query plan (PostgreSQL looks records up by primary key too)
    plan = ledger.db.execute(
        "EXPLAIN QUERY PLAN SELECT record_id FROM records WHERE channel = ? AND record_id IN (?, ?)", ("official", "a", "b")
    ).fetchall()
    text = " ".join(str(row[-1]) for row in plan)
    assert "PRIMARY KEY" in text and "SCAN" not in text


def test_a_failed_batch_leaves_nothing_behind(ledger_target: Target) -> None:
    ledger = _idcard_ledger(ledger_target.new())
    ledger.ingest(calls(repeat(10, "u", "RecognizeIdcard", OCT)), "ok")
    bad = calls(repeat(5, "u", "RecognizeIdcard", OCT, prefix="x"))
    bad["api"][3] = "NoSuchApi"
    with pytest.raises(OcrledgerError, match="row 4: field api"):
        ledger.ingest(bad, "bad")
    assert ledger.batches() == ["ok"]
    assert ledger.bills("2026-10")[0].line("RecognizeIdcard").calls == 10


def test_late_calls_after_close_become_an_adjustment(ledger_target: Target) -> None:
    ledger = _idcard_ledger(ledger_target.new())
    # October: 10,200 calls -> 200 free + 10,000 PAYG at 0.0825 = 825.00
    ledger.ingest(calls(repeat(10_200, "u", "RecognizeIdcard", OCT, step_ms=100)), "oct")
    ledger.ingest(calls(repeat(5, "u", "RecognizeIdcard", "2026-11-02T00:00:00+08:00", prefix="nov")), "nov")
    ledger.close_month("2026-10")
    closed = ledger.bill_texts("2026-10")
    assert json.loads(closed[0])["total"] == "825.00"
    # Three October calls arrive late: PAYG positions 10,001..10,003 of October at 0.0495 = 0.1485,
    # rounded down once: 0.14; they land on November's open bill.
    late = calls([(f"late-{k}", "u", "RecognizeIdcard", "2026-10-31T23:59:59+08:00", 1) for k in range(3)])
    assert ledger.ingest(late, "late").late == 3
    assert ledger.bill_texts("2026-10") == closed  # the closed bill is byte-identical
    nov = ledger.bills("2026-11")[0]
    (adj,) = nov.adjustments
    assert (adj.period, adj.api, adj.calls, adj.amount_exact, adj.amount) == (
        "2026-10", "RecognizeIdcard", 3, Decimal("0.148500"), Decimal("0.14"))
    assert adj.record_ids == ("late-0", "late-1", "late-2")
    assert nov.total == Decimal("0.14")  # November's 5 calls are free
    with pytest.raises(StateError):
        ledger.close_month("2026-10")


def test_cannot_close_a_month_while_an_earlier_one_with_calls_is_open(ledger_target: Target) -> None:
    ledger = _idcard_ledger(ledger_target.new())
    ledger.ingest(calls(repeat(3, "u", "RecognizeIdcard", OCT)), "b")
    with pytest.raises(StateError, match="close 2026-10 first"):
        ledger.close_month("2026-11")


def test_plans_bought_and_refunded_while_running_take_effect_from_their_times(ledger_target: Target) -> None:
    ledger = _idcard_ledger(ledger_target.new())
    ledger.ingest(calls(repeat(200, "u", "RecognizeIdcard", OCT)), "free")  # uses the free quota
    ledger.add_plan(id="p", account="u", kind="dedicated", api="RecognizeIdcard", quantity=100,
                    start="2026-10-10T00:00:00+08:00")
    ledger.refund("p", "2026-10-20T00:00:00+08:00")
    ledger.ingest(calls(repeat(10, "u", "RecognizeIdcard", "2026-10-05T00:00:00+08:00", prefix="a")
                        + repeat(30, "u", "RecognizeIdcard", "2026-10-15T00:00:00+08:00", prefix="b")
                        + repeat(20, "u", "RecognizeIdcard", "2026-10-25T00:00:00+08:00", prefix="c")), "mix")
    line = ledger.bills("2026-10")[0].line("RecognizeIdcard")
    # before the plan's start: 10 PAYG; inside [10th, 20th): 30 from the plan; after the refund: 20 PAYG
    assert (line.free, line.dedicated, line.payg) == (200, 30, 30)
    q = ledger.quota("u", at="2026-10-16T00:00:00+08:00")
    assert q["plans"][0]["remaining"] == 70 and q["plans"][0]["active"]
    assert ledger.quota("u", at="2026-10-21T00:00:00+08:00")["plans"][0]["remaining"] == 0


def test_quota_free_and_verification_pool(ledger_target: Target) -> None:
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard", "VerifyVATInvoice", "VerifyBusinessLicense")])
    ledger = Ledger.create(ledger_target.new(), CATALOG, acc)
    ledger.ingest(calls(repeat(30, "u", "RecognizeIdcard", OCT, prefix="i")
                        + repeat(20, "u", "VerifyVATInvoice", OCT, prefix="v")
                        + repeat(12, "u", "VerifyBusinessLicense", OCT, prefix="b")), "b")
    q = ledger.quota("u", at="2026-10-31T00:00:00+08:00")
    assert q["free_remaining"]["RecognizeIdcard"] == 170  # 200 - 30
    assert q["verification_pool_remaining"] == 18  # 50 - 20 - 12, shared by both verification APIs
    assert ledger.quota("u", at="2026-11-02T00:00:00+08:00")["free_remaining"]["RecognizeIdcard"] == 200


def test_credentials_resolve_at_the_call_time(ledger_target: Target) -> None:
    acc = accounts(
        CATALOG, account=[official("u", "RecognizeIdcard")],
        credential=[{"key": "AK1", "account": "u", "until": "2026-10-10T00:00:00+08:00"}],
    )
    ledger = Ledger.create(ledger_target.new(), CATALOG, acc)
    data = calls([("a", "u", "RecognizeIdcard", "2026-10-02T00:00:00+08:00", 1),
                  ("b", "u", "RecognizeIdcard", "2026-10-12T00:00:00+08:00", 1),
                  ("c", "u", "RecognizeIdcard", "2026-10-03T00:00:00+08:00", 1)])
    del data["account"], data["channel"]
    data["credential"] = np.array(["AK1", "AK1", "NOPE"])
    res = ledger.ingest(data, "b")
    assert res.calls["status"].tolist() == [0, 5, 5]  # a charged; NOPE unknown, AK1 expired -> REJECTED_CREDENTIAL
    bills = {b.account: b for b in ledger.bills("2026-10")}
    assert bills["u"].line("RecognizeIdcard").free == 1
    assert bills["u"].line("RecognizeIdcard").calls == 1
    assert bills["AK1"].line("RecognizeIdcard").rejected == 1  # an expired key is counted under the key
    assert bills["NOPE"].line("RecognizeIdcard").rejected == 1  # and so is an unknown one


def test_qps_peak_and_seconds_over_with_an_addon(ledger_target: Target) -> None:
    acc = accounts(
        CATALOG, account=[official("u", "RecognizeIdcard")],
        qps_addon=[{"account": "u", "api": "RecognizeIdcard", "qps": 5, "start": "2026-10-02T00:00:00+08:00",
                    "end": "2026-10-03T00:00:00+08:00"}],
    )
    second_a, second_b = ms("2026-10-01T12:00:00+08:00"), ms("2026-10-02T12:00:00+08:00")
    rows = ([(f"a{k}", "u", "RecognizeIdcard", second_a + k, 1) for k in range(12)]
            + [(f"b{k}", "u", "RecognizeIdcard", second_b + k, 1) for k in range(14)]
            + [(f"c{k}", "u", "RecognizeIdcard", second_b + 1000 + k, 0) for k in range(16)])
    ledger = Ledger.create(ledger_target.new(), CATALOG, acc)
    ledger.ingest(calls(rows[:20]), "1")
    ledger.ingest(calls(rows[20:]), "2")  # the second at second_b spans both batches
    # 12 calls at second_a > 10: over; 14 at second_b <= 10 + 5: not over; 16 failed calls at the next
    # second > 15: over (failed calls still hit the API). Peak 16, seconds over 2.
    assert ledger.qps("u", "2026-10") == {"RecognizeIdcard": (16, 2)}
    line = rate(calls(rows), CATALOG, acc).bill("u", "2026-10").line("RecognizeIdcard")
    assert (line.qps_peak, line.qps_over_seconds) == (16, 2)


def test_an_existing_file_is_reopened_with_its_state(ledger_target: Target) -> None:
    path = ledger_target.new(persistent=True)
    ledger = _idcard_ledger(path)
    ledger.ingest(calls(repeat(250, "u", "RecognizeIdcard", OCT)), "b1")
    ledger.close_connection()
    with Ledger.open(path) as again:
        again.ingest(calls(repeat(10, "u", "RecognizeIdcard", OCT, prefix="z")), "b2")
        line = again.bills("2026-10")[0].line("RecognizeIdcard")
        assert (line.free, line.payg) == (200, 60)
    with pytest.raises(OcrledgerError, match="already exists"):
        Ledger.create(path, CATALOG)


def test_copies_of_one_record_at_one_instant_are_charged_the_same_whatever_the_row_order(ledger_target: Target) -> None:
    # Same record id, same instant: the copy charged is the failed one of API A (account, API, failed
    # first), in the ledger and in rate(), whichever order the rows come in.
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard", "RecognizeGeneral")])
    rows = [("r1", "u", "RecognizeGeneral", OCT, 1), ("r1", "u", "RecognizeIdcard", OCT, 1),
            ("r1", "u", "RecognizeIdcard", OCT, 0)]
    results = []
    for order in ([0, 1, 2], [2, 1, 0], [1, 0, 2]):
        ledger = Ledger.create(ledger_target.new(), CATALOG, acc)
        ledger.ingest(calls([rows[i] for i in order]), "b")
        results.append([b.to_json() for b in ledger.bills("2026-10")])
        assert results[-1] == [b.to_json() for b in rate(calls([rows[i] for i in order]), CATALOG, acc).bills]
    assert results[0] == results[1] == results[2]
    (line,) = ledger.bills("2026-10")[0].lines
    assert (line.api, line.failed, line.calls) == ("RecognizeIdcard", 1, 1)


def test_stored_spend_near_int64_is_summed_exactly_and_the_overflowing_call_named() -> None:
    # One call of API "A" costs 5e18 micro-units (overflow_setup): the stored November line holds it, which is
    # past the int64 fast path's guard (2^62 = 4.6e18), so the ledger sums it exactly; a second call would make
    # 1e19 > INT64_MAX: the kernel refuses it, naming the record, and the batch leaves nothing behind.
    cat, acc = overflow_setup()
    ledger = Ledger.create(":memory:", cat, acc)
    ledger.ingest(calls([("r0", "u", "A", OCT, 1)]), "b0")
    before = [b.to_json() for b in ledger.bills("2026-10")]
    with pytest.raises(MoneyError, match="record r1: its PAYG spend"):
        ledger.ingest(calls([("r1", "u", "A", ms(OCT) + 1, 1)]), "b1")
    assert [b.to_json() for b in ledger.bills("2026-10")] == before
    assert ledger.batches() == ["b0"]
    assert ledger.bills("2026-10")[0].line("A").amount == Decimal("5000000000000.00")
