"""SPEC §2 and §3, one rule at a time: small hand-worked cases through ``rate()`` on both kernels.

Every test states its arithmetic in a comment; the expected values come from that arithmetic and
the SPEC, never from running the engine. Amounts in ``result.calls["amount"]`` are micro-units.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from helpers import CATALOG, accounts, api, calls, catalog, ms, official, repeat

from ocrledger.codes import Source, Status
from ocrledger.engine.rate import RatingResult, rate
from ocrledger.errors import AccountsError
from ocrledger.model.bills import Bill
from ocrledger.model.clock import BillingClock

M = 1_000_000  # micro-units per currency unit
OCT = "2026-10-01T00:00:00+08:00"
SEP = "2026-09-01T00:00:00+08:00"  # activation instant used unless a test is about activation


def flat(code: str, price: str = "1", **fields: Any) -> dict[str, Any]:
    """An API with one open tier (so every PAYG call costs ``price``)."""
    return api(code, tiers=[{"price": price}], **fields)


def on(day: int, hms: str = "12:00:00", month: str = "2026-10") -> str:
    """A local (Asia/Shanghai) instant in ``month``."""
    return f"{month}-{day:02d}T{hms}+08:00"


def outcome(result: RatingResult, rid: str, channel: str = "official") -> tuple[str, str, str, int, int]:
    """(status, source, plan id, tier, amount) of the one non-duplicate record ``rid`` on ``channel``."""
    c = result.calls
    hits = [
        i for i in range(len(c["ts"]))
        if c["record_id"][i] == rid and c["channel"][i] == channel and c["status"][i] != Status.DUPLICATE
    ]
    assert len(hits) == 1, (rid, channel, hits)
    i = hits[0]
    return (
        Status(int(c["status"][i])).name,
        Source(int(c["source"][i])).name,
        str(c["plan"][i]),
        int(c["tier"][i]),
        int(c["amount"][i]),
    )


def FREE() -> tuple[str, str, str, int, int]:
    return ("CHARGED", "FREE", "", -1, 0)


def PAYG(tier: int, amount: int) -> tuple[str, str, str, int, int]:
    return ("CHARGED", "PAYG", "", tier, amount)


def PLAN(plan: str, kind: str = "DEDICATED") -> tuple[str, str, str, int, int]:
    return ("CHARGED", kind, plan, -1, 0)


def REJECTED(why: str = "REJECTED_INACTIVE") -> tuple[str, str, str, int, int]:
    return (why, "NONE", "", -1, 0)


FAILED = ("FAILED", "NONE", "", -1, 0)


def counts(bill: Bill, code: str) -> tuple[int, int, int, int, int, int, int]:
    """(calls, failed, rejected, free, dedicated, shared_calls, payg) of one line."""
    ln = bill.line(code)
    return (ln.calls, ln.failed, ln.rejected, ln.free, ln.dedicated, ln.shared_calls, ln.payg)


def balances(bill: Bill) -> list[tuple[str, int, int, str]]:
    return [(p.id, p.used, p.remaining, p.end) for p in bill.plans]


def check_identities(result: RatingResult) -> None:
    """SPEC §6: calls = failed + rejected + free + dedicated + shared_calls + payg; total = sum of lines."""
    for bill in result.bills:
        for ln in bill.lines:
            assert ln.calls == ln.failed + ln.rejected + ln.free + ln.dedicated + ln.shared_calls + ln.payg
            assert ln.payg == sum(t.calls for t in ln.tiers)
            assert ln.amount_exact == sum((t.amount for t in ln.tiers), Decimal(0))
        assert bill.total == sum((ln.amount for ln in bill.lines), Decimal("0.00"))


def bulk(n: int, account: str, code: str, start: str, step_ms: int = 1000) -> dict[str, np.ndarray]:
    """n successful calls one step apart, as columns (cheap for hundreds of thousands of calls)."""
    return {
        "record_id": np.char.add("r", np.char.zfill(np.arange(n).astype(str), 7)),
        "account": np.full(n, account),
        "api": np.full(n, code),
        "ts": ms(start) + np.arange(n, dtype=np.int64) * step_ms,
        "success": np.ones(n, dtype=np.int8),
    }


# ---------------------------------------------------------------- PAYG tiers


SMALL_TIERS = [{"upto": 3, "price": "1"}, {"upto": 5, "price": "0.1"}, {"price": "0.01"}]


def test_tier_bounds_are_upper_inclusive_per_call(kernel: str) -> None:
    # Tiers {upto 3: 1.00}, {upto 5: 0.10}, {open: 0.01}; no free quota. 7 PAYG calls:
    # positions 1-3 -> tier 0, 4-5 -> tier 1, 6-7 -> tier 2.
    # 3 x 1.00 + 2 x 0.10 + 2 x 0.01 = 3.22
    cat = catalog([api("A", free_monthly=0, tiers=SMALL_TIERS)])
    acc = accounts(cat, account=[official("u", "A", at=SEP)])
    result = rate(calls(repeat(7, "u", "A", OCT)), cat, acc, kernel=kernel)
    assert result.calls["tier"].tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert result.calls["amount"].tolist() == [M, M, M, M // 10, M // 10, M // 100, M // 100]
    bill = result.bill("u", "2026-10")
    assert [(t.from_, t.to, t.calls, t.unit_price, t.amount) for t in bill.line("A").tiers] == [
        (1, 3, 3, Decimal("1"), Decimal("3.000000")),
        (4, 5, 2, Decimal("0.1"), Decimal("0.200000")),
        (6, None, 2, Decimal("0.01"), Decimal("0.020000")),
    ]
    assert bill.total == Decimal("3.22")


@pytest.mark.parametrize(
    ("n", "tiers", "total"),
    [
        (3, [(1, 3, 3)], "3.00"),  # exactly at the first bound: still all tier 0
        (4, [(1, 3, 3), (4, 5, 1)], "3.10"),  # 3 x 1.00 + 1 x 0.10
        (5, [(1, 3, 3), (4, 5, 2)], "3.20"),  # 3 x 1.00 + 2 x 0.10
        (6, [(1, 3, 3), (4, 5, 2), (6, None, 1)], "3.21"),  # + 1 x 0.01
    ],
)
def test_tier_bounds_on_the_bill(kernel: str, n: int, tiers: list[tuple[Any, ...]], total: str) -> None:
    cat = catalog([api("A", free_monthly=0, tiers=SMALL_TIERS)])
    acc = accounts(cat, account=[official("u", "A", at=SEP)])
    bill = rate(calls(repeat(n, "u", "A", OCT)), cat, acc, kernel=kernel).bill("u", "2026-10")
    assert [(t.from_, t.to, t.calls) for t in bill.line("A").tiers] == tiers
    assert bill.total == Decimal(total)


def test_tier_bounds_10000_100000_500000(kernel: str) -> None:
    # The default bounds (10k / 100k / 500k / open), no free quota, 500,001 PAYG calls in October:
    # position 10,000 is tier 0 and 10,001 tier 1; 100,000 tier 1, 100,001 tier 2;
    # 500,000 tier 2, 500,001 tier 3.
    # 10,000 x 0.0825 = 825 ; 90,000 x 0.0495 = 4,455 ; 400,000 x 0.0415 = 16,600 ; 1 x 0.0248
    # = 21,880.0248 exact -> 21,880.02 (rounded down).
    tiers = [
        {"upto": 10_000, "price": "0.0825"}, {"upto": 100_000, "price": "0.0495"},
        {"upto": 500_000, "price": "0.0415"}, {"price": "0.0248"},
    ]
    cat = catalog([api("A", free_monthly=0, tiers=tiers)])
    acc = accounts(cat, account=[official("u", "A", at=SEP)])
    result = rate(bulk(500_001, "u", "A", OCT, step_ms=1000), cat, acc, kernel=kernel)
    tier = result.calls["tier"]
    amount = result.calls["amount"]
    for position, expected_tier, price in [
        (1, 0, 82_500), (10_000, 0, 82_500), (10_001, 1, 49_500), (100_000, 1, 49_500),
        (100_001, 2, 41_500), (500_000, 2, 41_500), (500_001, 3, 24_800),
    ]:
        assert (int(tier[position - 1]), int(amount[position - 1])) == (expected_tier, price), position
    line = result.bill("u", "2026-10").line("A")
    assert [(t.from_, t.to, t.calls, t.amount) for t in line.tiers] == [
        (1, 10_000, 10_000, Decimal("825.000000")),
        (10_001, 100_000, 90_000, Decimal("4455.000000")),
        (100_001, 500_000, 400_000, Decimal("16600.000000")),
        (500_001, None, 1, Decimal("0.024800")),
    ]
    assert line.amount_exact == Decimal("21880.024800")
    assert line.amount == Decimal("21880.02")


def test_default_catalog_10000_and_10001_payg_calls(kernel: str) -> None:
    # RecognizeIdcard, 200 free a month. 10,200 calls = 200 free + 10,000 PAYG, all in tier 1:
    # 10,000 x 0.0825 = 825.00. 10,201 calls: one more PAYG call at position 10,001, tier 2:
    # 825 + 0.0495 = 825.0495 -> 825.04 (down).
    idc = "RecognizeIdcard"
    acc = accounts(CATALOG, account=[official("a", idc, at=SEP), official("b", idc, at=SEP)])
    rows = repeat(10_200, "a", idc, OCT, prefix="a") + repeat(10_201, "b", idc, OCT, prefix="b")
    result = rate(calls(rows), CATALOG, acc, kernel=kernel)
    a = result.bill("a", "2026-10")
    assert [(t.from_, t.to, t.calls) for t in a.line("RecognizeIdcard").tiers] == [(1, 10_000, 10_000)]
    assert (a.line("RecognizeIdcard").free, a.total) == (200, Decimal("825.00"))
    b = result.bill("b", "2026-10")
    assert [(t.from_, t.to, t.calls) for t in b.line(idc).tiers] == [(1, 10_000, 10_000), (10_001, 100_000, 1)]
    assert (b.line("RecognizeIdcard").amount_exact, b.total) == (Decimal("825.049500"), Decimal("825.04"))
    assert outcome(result, "b0010200") == PAYG(1, 49_500)  # the 10,201st call = PAYG position 10,001
    assert outcome(result, "b0010199") == PAYG(0, 82_500)


def test_deduction_order_free_dedicated_shared_payg(kernel: str) -> None:
    # free 1, a 1-call dedicated plan and a 1-call shared plan, all able to pay every call.
    # c1 free, c2 dedicated, c3 shared, c4 PAYG 1.00 (SPEC §2: the first source that can pay).
    cat = catalog([flat("A", free_monthly=1)])
    acc = accounts(
        cat, account=[official("u", "A", at=SEP)],
        plan=[{"id": "s", "account": "u", "kind": "shared", "quantity": 1, "start": OCT},
              {"id": "d", "account": "u", "kind": "dedicated", "api": "A", "quantity": 1, "start": on(1, "00:00:01")}],
    )
    rows = [(f"c{k}", "u", "A", on(k + 1), 1) for k in range(1, 5)]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert [outcome(result, f"c{k}") for k in range(1, 5)] == [FREE(), PLAN("d"), PLAN("s", "SHARED"), PAYG(0, M)]
    assert counts(result.bill("u", "2026-10"), "A") == (4, 0, 0, 1, 1, 1, 1)


def test_payg_position_counts_only_payg_calls(kernel: str) -> None:
    # free 2 a month; tiers {upto 3: 1.00}, {open: 0.10}; a 2-call dedicated plan from 10 Oct.
    # c1 free, c2 failed, c3 free, c4 PAYG pos 1, c5 PAYG pos 2, c6/c7 plan, c8 PAYG pos 3 (tier 0:
    # had free, failed or plan calls moved the position it would be 8 -> tier 1), c9 PAYG pos 4 (tier 1).
    # 3 x 1.00 + 1 x 0.10 = 3.10
    cat = catalog([api("A", free_monthly=2, tiers=[{"upto": 3, "price": "1"}, {"price": "0.1"}])])
    acc = accounts(
        cat, account=[official("u", "A", at=SEP)],
        plan=[{"id": "p", "account": "u", "kind": "dedicated", "api": "A", "quantity": 2, "start": on(10, "00:00:00")}],
    )
    days = {"c1": 2, "c2": 3, "c3": 4, "c4": 5, "c5": 6, "c6": 10, "c7": 11, "c8": 12, "c9": 13}
    rows = [(rid, "u", "A", on(d), 0 if rid == "c2" else 1) for rid, d in days.items()]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    got = {rid: outcome(result, rid) for rid in days}
    assert got == {
        "c1": FREE(), "c2": FAILED, "c3": FREE(), "c4": PAYG(0, M), "c5": PAYG(0, M),
        "c6": PLAN("p"), "c7": PLAN("p"), "c8": PAYG(0, M), "c9": PAYG(1, M // 10),
    }
    bill = result.bill("u", "2026-10")
    assert counts(bill, "A") == (9, 1, 0, 2, 2, 0, 4)
    assert bill.total == Decimal("3.10")


def test_volume_tiers_price_every_call_at_the_month_total(kernel: str) -> None:
    # volume tiers {upto 3: 1.00}, {upto 5: 0.50}, {open: 0.25}; no free quota.
    # u3: 3 calls -> total 3 is in tier 0 (upper-inclusive): 3 x 1.00 = 3.00
    # u4: 4 -> tier 1: 4 x 0.50 = 2.00 ; u5: 5 -> tier 1: 5 x 0.50 = 2.50 ; u6: 6 -> tier 2: 6 x 0.25 = 1.50
    # u6 in November: 1 call, a new month total -> tier 0: 1.00
    tiers = [{"upto": 3, "price": "1"}, {"upto": 5, "price": "0.5"}, {"price": "0.25"}]
    cat = catalog([api("A", free_monthly=0, tier_mode="volume", tiers=tiers)])
    acc = accounts(cat, account=[official(f"u{n}", "A", at=SEP) for n in (3, 4, 5, 6)])
    rows = [r for n in (3, 4, 5, 6) for r in repeat(n, f"u{n}", "A", OCT, prefix=f"u{n}-")]
    rows.append(("nov", "u6", "A", ms("2026-11-03T00:00:00+08:00"), 1))
    result = rate(calls(rows), cat, acc, kernel=kernel)
    expected = {3: (0, M, "3.00"), 4: (1, M // 2, "2.00"), 5: (1, M // 2, "2.50"), 6: (2, M // 4, "1.50")}
    for n, (tier, price, total) in expected.items():
        mine = (result.calls["account"] == f"u{n}") & (result.calls["period"] == "2026-10")
        assert result.calls["tier"][mine].tolist() == [tier] * n
        assert result.calls["amount"][mine].tolist() == [price] * n
        bill = result.bill(f"u{n}", "2026-10")
        assert [(t.calls, t.unit_price) for t in bill.line("A").tiers] == [(n, Decimal(price) / M)]
        assert bill.total == Decimal(total)
    assert outcome(result, "nov") == PAYG(0, M)
    assert result.bill("u6", "2026-11").total == Decimal("1.00")


# ---------------------------------------------------------------- time


def test_month_boundary_is_midnight_in_shanghai(kernel: str) -> None:
    # Asia/Shanghai is UTC+8: 1 Nov 00:00 local = 31 Oct 16:00:00.000Z.
    # free 1 a month, PAYG 1.00. a: October free; b (15:59:59.999Z) still October -> PAYG;
    # c (16:00:00.000Z) November -> the free quota has reset -> free; d November -> PAYG.
    cat = catalog([flat("A", free_monthly=1)])
    acc = accounts(cat, account=[official("u", "A", at=SEP)])
    rows = [
        ("a", "u", "A", "2026-10-05T00:00:00+08:00", 1),
        ("b", "u", "A", "2026-10-31T15:59:59.999Z", 1),
        ("c", "u", "A", "2026-10-31T16:00:00.000Z", 1),
        ("d", "u", "A", "2026-10-31T16:00:00.001Z", 1),
    ]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert result.calls["period"].tolist() == ["2026-10", "2026-10", "2026-11", "2026-11"]
    assert [outcome(result, r) for r in "abcd"] == [FREE(), PAYG(0, M), FREE(), PAYG(0, M)]
    for period in ("2026-10", "2026-11"):
        bill = result.bill("u", period)
        assert counts(bill, "A") == (2, 0, 0, 1, 0, 0, 1)
        assert bill.total == Decimal("1.00")
        assert dict(bill.free_remaining) == {"A": 0}


def test_month_boundary_in_a_dst_time_zone(kernel: str) -> None:
    # America/New_York: 1 Nov 2026 00:00 is still EDT (UTC-4; DST ends at 02:00 that day) = 04:00Z;
    # 1 Dec 2026 00:00 is EST (UTC-5) = 05:00Z. A fixed offset would get one of the two wrong.
    # free 1 a month. a (03:59:59.999Z) October, free; b (04:00Z) November, free;
    # c (1 Dec 04:59:59.999Z = 30 Nov 23:59:59.999 EST) still November -> PAYG; d (05:00Z) December, free.
    cat = catalog([flat("A", free_monthly=1)], timezone="America/New_York")
    acc = accounts(cat, account=[official("u", "A", at="2026-01-01T00:00:00-05:00")])
    ny = BillingClock.for_zone("America/New_York")
    rows = [
        ("a", "u", "A", ms("2026-11-01T03:59:59.999Z", ny), 1),
        ("b", "u", "A", ms("2026-11-01T04:00:00Z", ny), 1),
        ("c", "u", "A", ms("2026-12-01T04:59:59.999Z", ny), 1),
        ("d", "u", "A", ms("2026-12-01T05:00:00Z", ny), 1),
    ]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert result.calls["period"].tolist() == ["2026-10", "2026-11", "2026-11", "2026-12"]
    assert [outcome(result, r) for r in "abcd"] == [FREE(), FREE(), PAYG(0, M), FREE()]
    assert [b.period for b in result.bills] == ["2026-10", "2026-11", "2026-12"]
    assert counts(result.bill("u", "2026-11"), "A") == (2, 0, 0, 1, 0, 0, 1)


def test_plan_bought_on_29_february_ends_on_28_february(kernel: str) -> None:
    # Bought 2028-02-29 10:00 local, no end given: one calendar year later is 2029-02-28 10:00
    # (29 Feb maps to 28 Feb), same local time. Free 0, PAYG 1.00.
    # a (2028-02-29 09:59:59.999) before start -> PAYG; b (2029-02-28 09:59:59.999) -> plan;
    # c (2029-02-28 10:00:00.000) at the end -> PAYG.
    cat = catalog([flat("A", free_monthly=0)])
    acc = accounts(
        cat, account=[official("u", "A", at="2028-01-01T00:00:00+08:00")],
        plan=[{"id": "p", "account": "u", "kind": "dedicated", "api": "A", "quantity": 10,
               "start": "2028-02-29T10:00:00+08:00"}],
    )
    assert acc.plans[0].end == ms("2029-02-28T10:00:00+08:00")
    rows = [
        ("a", "u", "A", "2028-02-29T09:59:59.999+08:00", 1),
        ("b", "u", "A", "2029-02-28T09:59:59.999+08:00", 1),
        ("c", "u", "A", "2029-02-28T10:00:00.000+08:00", 1),
    ]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert [outcome(result, r) for r in "abc"] == [PAYG(0, M), PLAN("p"), PAYG(0, M)]
    # February 2028: the plan is active but unused -> used 0, all 10 left.
    assert balances(result.bill("u", "2028-02")) == [("p", 0, 10, "2029-02-28T10:00:00+08:00")]
    # February 2029: it paid 1 and ended within the month -> nothing left.
    assert balances(result.bill("u", "2029-02")) == [("p", 1, 0, "2029-02-28T10:00:00+08:00")]


def test_plan_year_is_a_calendar_year_in_the_billing_zone(kernel: str) -> None:
    # America/New_York: bought 2026-03-10 12:00 EDT (16:00Z); one calendar year later is
    # 2027-03-10 12:00 local, which is still EST (DST starts 14 March 2027) = 17:00Z, so the plan
    # lasts 365 days and 1 hour. A call at 16:30Z that day is inside it (a UTC year would end at 16:00Z).
    cat = catalog([flat("A", free_monthly=0)], timezone="America/New_York")
    ny = BillingClock.for_zone("America/New_York")
    acc = accounts(
        cat, account=[official("u", "A", at="2026-01-01T00:00:00-05:00")],
        plan=[{"id": "p", "account": "u", "kind": "dedicated", "api": "A", "quantity": 5,
               "start": "2026-03-10T12:00:00-04:00"}],
    )
    assert acc.plans[0].end == ms("2027-03-10T17:00:00Z", ny)
    rows = [("in", "u", "A", ms("2027-03-10T16:30:00Z", ny), 1), ("out", "u", "A", ms("2027-03-10T17:00:00Z", ny), 1)]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert [outcome(result, r) for r in ("in", "out")] == [PLAN("p"), PAYG(0, M)]
    assert balances(result.bill("u", "2027-03")) == [("p", 1, 0, "2027-03-10T12:00:00-05:00")]


def test_ts_then_record_id_order(kernel: str) -> None:
    # Two calls at the same instant with one free call left: record ids compare as text, so
    # "r10" < "r9" and r10 is charged first and takes the free call; r9 pays 1.00.
    # Given in the opposite order, so input order cannot be what decides.
    cat = catalog([flat("A", free_monthly=1)])
    acc = accounts(cat, account=[official("u", "A", at=SEP)])
    t = on(5)
    result = rate(calls([("r9", "u", "A", t, 1), ("r10", "u", "A", t, 1)]), cat, acc, kernel=kernel)
    assert result.calls["record_id"].tolist() == ["r10", "r9"]
    assert outcome(result, "r10") == FREE()
    assert outcome(result, "r9") == PAYG(0, M)


# ---------------------------------------------------------------- plans


def test_plan_pays_only_from_start_to_before_end(kernel: str) -> None:
    # Plan valid [10 Oct 00:00, 20 Oct 00:00) local. Free 0, PAYG 1.00.
    # a 9 Oct 23:59:59.999 -> PAYG ; b 10 Oct 00:00 -> plan ; c 19 Oct 23:59:59.999 -> plan ;
    # d 20 Oct 00:00 -> PAYG. Total 2 x 1.00 = 2.00; plan used 2, nothing left (ended in October).
    cat = catalog([flat("A", free_monthly=0)])
    acc = accounts(
        cat, account=[official("u", "A", at=SEP)],
        plan=[{"id": "p", "account": "u", "kind": "dedicated", "api": "A", "quantity": 10,
               "start": "2026-10-10T00:00:00+08:00", "end": "2026-10-20T00:00:00+08:00"}],
    )
    rows = [
        ("a", "u", "A", "2026-10-09T23:59:59.999+08:00", 1),
        ("b", "u", "A", "2026-10-10T00:00:00+08:00", 1),
        ("c", "u", "A", "2026-10-19T23:59:59.999+08:00", 1),
        ("d", "u", "A", "2026-10-20T00:00:00+08:00", 1),
    ]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert [outcome(result, r) for r in "abcd"] == [PAYG(0, M), PLAN("p"), PLAN("p"), PAYG(0, M)]
    bill = result.bill("u", "2026-10")
    assert counts(bill, "A") == (4, 0, 0, 0, 2, 0, 2)
    assert bill.total == Decimal("2.00")
    assert balances(bill) == [("p", 2, 0, "2026-10-20T00:00:00+08:00")]


def test_refunded_plan_pays_nothing_from_the_refund_on(kernel: str) -> None:
    # 10-call plan from 1 Oct (ends a year later), refunded 15 Oct 12:00 local.
    # a (refund - 1 ms) -> plan ; b (refund) -> PAYG ; c (20 Oct) -> PAYG: 2 x 1.00 = 2.00.
    # The balance shows the refund as its end and nothing left.
    cat = catalog([flat("A", free_monthly=0)])
    acc = accounts(
        cat, account=[official("u", "A", at=SEP)],
        plan=[{"id": "p", "account": "u", "kind": "dedicated", "api": "A", "quantity": 10, "start": OCT,
               "refunded": "2026-10-15T12:00:00+08:00"}],
    )
    rows = [
        ("a", "u", "A", "2026-10-15T11:59:59.999+08:00", 1),
        ("b", "u", "A", "2026-10-15T12:00:00+08:00", 1),
        ("c", "u", "A", "2026-10-20T00:00:00+08:00", 1),
    ]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert [outcome(result, r) for r in "abc"] == [PLAN("p"), PAYG(0, M), PAYG(0, M)]
    bill = result.bill("u", "2026-10")
    assert bill.total == Decimal("2.00")
    assert balances(bill) == [("p", 1, 0, "2026-10-15T12:00:00+08:00")]


@pytest.mark.parametrize("kind", ["dedicated", "shared"])
def test_plan_that_expires_first_pays_first(kernel: str, kind: str) -> None:
    # "long": from 1 Oct for a year, 5 calls. "short": from 5 Oct to 15 Nov, 2 calls. Free 0.
    # a (2 Oct): only "long" is valid -> long. b, c (6, 7 Oct): both valid, "short" expires first
    # -> short, short. d (8 Oct): "short" is used up -> long.
    # Listed short-last, so file order cannot be what decides.
    cat = catalog([flat("A", free_monthly=0)])
    target = {"api": "A"} if kind == "dedicated" else {"apis": ["A"]}
    acc = accounts(
        cat, account=[official("u", "A", at=SEP)],
        plan=[
            {"id": "long", "account": "u", "kind": kind, "quantity": 5, "start": OCT, **target},
            {"id": "short", "account": "u", "kind": kind, "quantity": 2, "start": on(5, "00:00:00"),
             "end": "2026-11-15T00:00:00+08:00", **target},
        ],
    )
    rows = [(r, "u", "A", on(d), 1) for r, d in (("a", 2), ("b", 6), ("c", 7), ("d", 8))]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    src = kind.upper()
    assert [outcome(result, r) for r in "abcd"] == [PLAN("long", src), PLAN("short", src), PLAN("short", src),
                                                    PLAN("long", src)]
    assert [(p.id, p.used, p.remaining) for p in result.bill("u", "2026-10").plans] == [("short", 2, 0), ("long", 2, 3)]


@pytest.mark.parametrize(
    ("first", "second", "why"),
    [
        ("b", "a", "same end: the earlier start pays first although 'a' < 'b'"),
        ("p10", "p2", "same end and start: byte order, '1' < '2'"),
        ("plan-B", "plan-a", "byte order: 'B' (0x42) < 'a' (0x61)"),
        ("z", "\u00e9", "byte order: 'z' (0x7a) < 'é' (0xc3 0xa9)"),
    ],
)
def test_plans_expiring_the_same_instant(kernel: str, first: str, second: str, why: str) -> None:
    # Two 1-call plans ending 1 Nov 00:00. Calls on 6, 7, 8 Oct: first plan, second plan, PAYG.
    # For the first case "b" starts 1 Oct and "a" 5 Oct; otherwise both start 1 Oct.
    cat = catalog([flat("A", free_monthly=0)])
    start = {first: OCT, second: on(5, "00:00:00") if why.startswith("same end:") else OCT}
    acc = accounts(
        cat, account=[official("u", "A", at=SEP)],
        plan=[
            {"id": pid, "account": "u", "kind": "dedicated", "api": "A", "quantity": 1, "start": start[pid],
             "end": "2026-11-01T00:00:00+08:00"}
            for pid in (second, first)  # listed in the "wrong" order
        ],
    )
    rows = [(r, "u", "A", on(d), 1) for r, d in (("a", 6), ("b", 7), ("c", 8))]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert [outcome(result, r) for r in "abc"] == [PLAN(first), PLAN(second), PAYG(0, M)], why


def test_shared_plan_remainder_too_small_is_passed_over(kernel: str) -> None:
    # A takes 3 points. Shared plans: s1 4 points (ends 1 Dec), s2 10 points (ends 1 Jan). Free 0.
    # a1: s1 expires first -> s1 (4 -> 1). a2: s1 has 1 < 3, passed over -> s2 (10 -> 7).
    # a3: -> s2 (7 -> 4). s1 keeps its 1 point. Line: 3 shared calls, 9 points.
    # Account v: plan t of 2 points < 3 -> A is paid PAYG (1.00) and t keeps its 2 points.
    cat = catalog([flat("A", free_monthly=0, shared_points=3)])
    acc = accounts(
        cat, account=[official("u", "A", at=SEP), official("v", "A", at=SEP)],
        plan=[
            {"id": "s2", "account": "u", "kind": "shared", "quantity": 10, "start": OCT,
             "end": "2027-01-01T00:00:00+08:00"},
            {"id": "s1", "account": "u", "kind": "shared", "quantity": 4, "start": OCT,
             "end": "2026-12-01T00:00:00+08:00"},
            {"id": "t", "account": "v", "kind": "shared", "quantity": 2, "start": OCT},
        ],
    )
    rows = [(r, "u", "A", on(d), 1) for r, d in (("a1", 2), ("a2", 3), ("a3", 4))] + [("v1", "v", "A", on(2), 1)]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert [outcome(result, r) for r in ("a1", "a2", "a3")] == [PLAN("s1", "SHARED"), PLAN("s2", "SHARED"),
                                                                PLAN("s2", "SHARED")]
    u = result.bill("u", "2026-10")
    assert (u.line("A").shared_calls, u.line("A").shared_points) == (3, 9)
    assert balances(u) == [("s1", 3, 1, "2026-12-01T00:00:00+08:00"), ("s2", 6, 4, "2027-01-01T00:00:00+08:00")]
    assert outcome(result, "v1") == PAYG(0, M)
    v = result.bill("v", "2026-10")
    assert [(p.id, p.used, p.remaining) for p in v.plans] == [("t", 0, 2)]
    assert v.total == Decimal("1.00")


def test_shared_points_per_api_default_catalog(kernel: str) -> None:
    # Marketplace (no free quota, no PAYG), shared plan of 50 points. RecognizeAdvanced takes 20
    # points, RecognizeIdcard 10. adv1 -> 30 left, adv2 -> 10 left, adv3 needs 20 > 10 -> rejected,
    # idc1 takes the last 10 -> 0 left.
    acc = accounts(
        CATALOG, account=[{"id": "m", "channel": "marketplace"}],
        plan=[{"id": "s", "account": "m", "channel": "marketplace", "kind": "shared", "quantity": 50, "start": OCT}],
    )
    rows = [(r, "m", code, on(d), 1, "marketplace") for r, code, d in (
        ("adv1", "RecognizeAdvanced", 2), ("adv2", "RecognizeAdvanced", 3), ("adv3", "RecognizeAdvanced", 4),
        ("idc1", "RecognizeIdcard", 5))]
    result = rate(calls(rows), CATALOG, acc, kernel=kernel)
    assert [outcome(result, r, "marketplace") for r in ("adv1", "adv2", "adv3", "idc1")] == [
        PLAN("s", "SHARED"), PLAN("s", "SHARED"), REJECTED("REJECTED_NO_PLAN"), PLAN("s", "SHARED")]
    bill = result.bill("m", "2026-10", "marketplace")
    adv, idc = bill.line("RecognizeAdvanced"), bill.line("RecognizeIdcard")
    assert (adv.shared_calls, adv.shared_points, adv.rejected) == (2, 40, 1)
    assert (idc.shared_calls, idc.shared_points) == (1, 10)
    assert [(p.id, p.used, p.remaining) for p in bill.plans] == [("s", 50, 0)]
    assert bill.total == Decimal("0.00")


def test_dedicated_only_and_shared_only_apis(kernel: str) -> None:
    # D accepts dedicated plans only, S shared plans only. A shared plan with no 'apis' covers
    # every API that accepts shared plans: S, not D. Free 0, PAYG 1.00.
    # d1 -> dedicated plan; d2 -> the dedicated plan is used up, the shared plan refuses D -> PAYG;
    # s1 -> shared plan.
    cat = catalog([flat("D", free_monthly=0, shared=False), flat("S", free_monthly=0, dedicated=False)])
    acc = accounts(
        cat, account=[official("u", "D", "S", at=SEP)],
        plan=[
            {"id": "ded", "account": "u", "kind": "dedicated", "api": "D", "quantity": 1, "start": OCT},
            {"id": "sh", "account": "u", "kind": "shared", "quantity": 10, "start": OCT},
        ],
    )
    assert acc.plans[1].apis == ("S",)
    rows = [("d1", "u", "D", on(2), 1), ("d2", "u", "D", on(3), 1), ("s1", "u", "S", on(4), 1)]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert [outcome(result, r) for r in ("d1", "d2", "s1")] == [PLAN("ded"), PAYG(0, M), PLAN("sh", "SHARED")]
    with pytest.raises(AccountsError, match="does not accept dedicated plans") as err:
        accounts(cat, account=[official("u", "S")],
                 plan=[{"id": "x", "account": "u", "kind": "dedicated", "api": "S", "quantity": 1, "start": OCT}])
    assert err.value.field == "plan x.api"
    with pytest.raises(AccountsError, match="does not accept shared plans") as err:
        accounts(cat, account=[official("u", "D")],
                 plan=[{"id": "y", "account": "u", "kind": "shared", "apis": ["D"], "quantity": 1, "start": OCT}])
    assert err.value.field == "plan y.apis"


def test_recognize_all_text_takes_shared_plans_only(kernel: str) -> None:
    # The unified API refuses dedicated plans: the accounts loader rejects one. A shared plan
    # without 'apis' covers it; it takes 20 points a call. 200 free first, then 2 calls from the
    # shared plan of 50 points: 40 used, 10 left.
    with pytest.raises(AccountsError, match="RecognizeAllText") as err:
        accounts(CATALOG, account=[official("u", "RecognizeAllText")],
                 plan=[{"id": "x", "account": "u", "kind": "dedicated", "api": "RecognizeAllText", "quantity": 5,
                        "start": OCT}])
    assert err.value.field == "plan x.api"
    acc = accounts(CATALOG, account=[official("u", "RecognizeAllText", at=SEP)],
                   plan=[{"id": "s", "account": "u", "kind": "shared", "quantity": 50, "start": OCT}])
    assert "RecognizeAllText" in acc.plans[0].apis
    bill = rate(calls(repeat(202, "u", "RecognizeAllText", OCT)), CATALOG, acc, kernel=kernel).bill("u", "2026-10")
    ln = bill.line("RecognizeAllText")
    assert (ln.free, ln.shared_calls, ln.shared_points, ln.payg) == (200, 2, 40, 0)
    assert [(p.id, p.used, p.remaining) for p in bill.plans] == [("s", 40, 10)]


def test_plan_balances_across_months(kernel: str) -> None:
    # free 3 a month, 5-call dedicated plan from 1 Oct for a year.
    # Oct: 5 calls = 3 free + 2 plan (3 left). Nov: 4 calls = 3 free + 1 plan (2 left).
    # Dec: 1 call = free (2 free left, plan used 0, still 2 left).
    cat = catalog([flat("A", free_monthly=3)])
    acc = accounts(cat, account=[official("u", "A", at=SEP)],
                   plan=[{"id": "p", "account": "u", "kind": "dedicated", "api": "A", "quantity": 5, "start": OCT}])
    rows = (repeat(5, "u", "A", OCT, prefix="o") + repeat(4, "u", "A", "2026-11-01T00:00:00+08:00", prefix="n")
            + repeat(1, "u", "A", "2026-12-01T00:00:00+08:00", prefix="d"))
    result = rate(calls(rows), cat, acc, kernel=kernel)
    end = "2027-10-01T00:00:00+08:00"
    expect = {"2026-10": (3, 2, 0, [("p", 2, 3, end)]), "2026-11": (3, 1, 0, [("p", 1, 2, end)]),
              "2026-12": (1, 0, 2, [("p", 0, 2, end)])}
    for period, (free, ded, free_left, plans) in expect.items():
        bill = result.bill("u", period)
        assert (bill.line("A").free, bill.line("A").dedicated) == (free, ded), period
        assert dict(bill.free_remaining) == {"A": free_left}, period
        assert balances(bill) == plans, period


# ---------------------------------------------------------------- free quota


def test_free_quota_is_per_api_and_not_carried_over(kernel: str) -> None:
    # A and B: 2 free calls each a month, PAYG 1.00.
    # Oct: A x1 -> free (1 left); B x3 -> 2 free + 1 PAYG (B's quota is not A's).
    # Nov: A x3 -> 2 free + 1 PAYG: A's unused October call does not carry over (that would give 3 free).
    cat = catalog([flat("A", free_monthly=2), flat("B", free_monthly=2)])
    acc = accounts(cat, account=[official("u", "A", "B", at=SEP)])
    rows = (repeat(1, "u", "A", OCT, prefix="oa") + repeat(3, "u", "B", OCT, prefix="ob")
            + repeat(3, "u", "A", "2026-11-02T00:00:00+08:00", prefix="na"))
    result = rate(calls(rows), cat, acc, kernel=kernel)
    oct_, nov = result.bill("u", "2026-10"), result.bill("u", "2026-11")
    assert counts(oct_, "A") == (1, 0, 0, 1, 0, 0, 0)
    assert counts(oct_, "B") == (3, 0, 0, 2, 0, 0, 1)
    assert dict(oct_.free_remaining) == {"A": 1, "B": 0}
    assert oct_.total == Decimal("1.00")
    assert counts(nov, "A") == (3, 0, 0, 2, 0, 0, 1)
    assert dict(nov.free_remaining) == {"A": 0}
    assert nov.total == Decimal("1.00")


def test_verification_pool_is_lifetime_and_shared(kernel: str) -> None:
    # V1, V2 verification (V1 says free_monthly = 5: ignored, verification uses the pool);
    # pool of 3 for the account's lifetime; R recognition with its own 1 free call a month.
    # u Oct: v1a, v2a, v1b free (pool 3 -> 0), v2b PAYG; r1 free from R's own quota.
    # u Nov: v1c PAYG, the pool never resets.
    # w: Oct v2 free (2 left), Nov v1 x2 free (0 left), Dec v2 PAYG.
    cat = catalog([flat("R", free_monthly=1), flat("V1", kind="verification", free_monthly=5),
                   flat("V2", kind="verification")], verification_free_total=3)
    acc = accounts(cat, account=[official("u", "R", "V1", "V2", at=SEP), official("w", "V1", "V2", at=SEP)])
    rows = [
        ("v1a", "u", "V1", on(2), 1), ("v2a", "u", "V2", on(3), 1), ("v1b", "u", "V1", on(4), 1),
        ("v2b", "u", "V2", on(5), 1), ("r1", "u", "R", on(6), 1),
        ("v1c", "u", "V1", on(2, month="2026-11"), 1),
        ("w1", "w", "V2", on(2), 1), ("w2", "w", "V1", on(2, month="2026-11"), 1),
        ("w3", "w", "V1", on(3, month="2026-11"), 1), ("w4", "w", "V2", on(2, month="2026-12"), 1),
    ]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    got = {r: outcome(result, r) for r, *_ in rows}
    assert got == {
        "v1a": FREE(), "v2a": FREE(), "v1b": FREE(), "v2b": PAYG(0, M), "r1": FREE(), "v1c": PAYG(0, M),
        "w1": FREE(), "w2": FREE(), "w3": FREE(), "w4": PAYG(0, M),
    }
    assert dict(result.bill("u", "2026-10").free_remaining) == {"R": 0, "V1": 0, "V2": 0}
    assert dict(result.bill("u", "2026-11").free_remaining) == {"V1": 0}
    assert dict(result.bill("w", "2026-10").free_remaining) == {"V2": 2}
    assert dict(result.bill("w", "2026-11").free_remaining) == {"V1": 0}
    assert dict(result.bill("w", "2026-12").free_remaining) == {"V2": 0}


# ---------------------------------------------------------------- channels, activation, accounts


def test_marketplace_is_plans_only(kernel: str) -> None:
    # Marketplace: no free quota (A's 5 free calls do not apply), no activation, no PAYG.
    # m with a 1-call shared plan: m1 -> plan, m2 -> rejected. n with no plan: rejected.
    # A verification API gets no pool there either: mv -> rejected.
    cat = catalog([flat("A", free_monthly=5), flat("V", kind="verification")])
    acc = accounts(
        cat, account=[{"id": "m", "channel": "marketplace"}, {"id": "n", "channel": "marketplace"}],
        plan=[{"id": "s", "account": "m", "channel": "marketplace", "kind": "shared", "apis": ["A"], "quantity": 1,
               "start": OCT}],
    )
    rows = [("m1", "m", "A", on(2), 1, "marketplace"), ("m2", "m", "A", on(3), 1, "marketplace"),
            ("mv", "m", "V", on(3), 1, "marketplace"), ("n1", "n", "A", on(2), 1, "marketplace")]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert [outcome(result, r, "marketplace") for r in ("m1", "m2", "mv", "n1")] == [
        PLAN("s", "SHARED"), REJECTED("REJECTED_NO_PLAN"), REJECTED("REJECTED_NO_PLAN"), REJECTED("REJECTED_NO_PLAN")]
    m = result.bill("m", "2026-10", "marketplace")
    assert counts(m, "A") == (2, 0, 1, 0, 0, 1, 0)
    assert (m.total, m.free_remaining) == (Decimal("0.00"), ())
    assert counts(result.bill("n", "2026-10", "marketplace"), "A") == (1, 0, 1, 0, 0, 0, 0)


def test_official_calls_before_activation_are_rejected(kernel: str) -> None:
    # A activated 10 Oct 12:00; a dedicated plan from 1 Oct could pay but must not before that.
    # a (11:59:59.999) -> rejected, plan untouched; b (12:00:00.000, the instant itself) -> plan;
    # c to B, never activated -> rejected.
    cat = catalog([flat("A", free_monthly=0), flat("B", free_monthly=0)])
    acc = accounts(
        cat, account=[official("u", "A", at="2026-10-10T12:00:00+08:00")],
        plan=[{"id": "p", "account": "u", "kind": "dedicated", "api": "A", "quantity": 5, "start": OCT}],
    )
    rows = [("a", "u", "A", "2026-10-10T11:59:59.999+08:00", 1), ("b", "u", "A", "2026-10-10T12:00:00+08:00", 1),
            ("c", "u", "B", "2026-10-11T00:00:00+08:00", 1)]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert [outcome(result, r) for r in "abc"] == [REJECTED(), PLAN("p"), REJECTED()]
    bill = result.bill("u", "2026-10")
    assert counts(bill, "A") == (2, 0, 1, 0, 1, 0, 0)
    assert counts(bill, "B") == (1, 0, 1, 0, 0, 0, 0)
    assert [(p.id, p.used, p.remaining) for p in bill.plans] == [("p", 1, 4)]
    assert bill.total == Decimal("0.00")


def test_unknown_account_is_rejected_but_billed(kernel: str) -> None:
    # "ghost" is in no accounts file: no activation, no plan -> rejected on both channels (the
    # failed call is failed). Each channel still gets a bill, with nothing to pay.
    cat = catalog([flat("A", free_monthly=5)])
    acc = accounts(cat, account=[official("u", "A", at=SEP)])
    rows = [("g1", "ghost", "A", on(2), 1), ("g2", "ghost", "A", on(3), 0),
            ("g3", "ghost", "A", on(2), 1, "marketplace"), ("u1", "u", "A", on(2), 1)]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert outcome(result, "g1") == REJECTED("REJECTED_INACTIVE")
    assert outcome(result, "g2") == FAILED
    assert outcome(result, "g3", "marketplace") == REJECTED("REJECTED_NO_PLAN")
    official_bill = result.bill("ghost", "2026-10")
    assert counts(official_bill, "A") == (2, 1, 1, 0, 0, 0, 0)
    assert official_bill.total == Decimal("0.00")
    assert counts(result.bill("ghost", "2026-10", "marketplace"), "A") == (1, 0, 1, 0, 0, 0, 0)
    assert outcome(result, "u1") == FREE()


def test_failed_calls_consume_nothing(kernel: str) -> None:
    # free 1; A activated 10 Oct; a 1-call plan from 13 Oct. PAYG 1.00.
    # f0 (5 Oct, failed, before activation) -> failed, not rejected. f1 (11 Oct, failed) -> failed.
    # s1 (12 Oct) -> free: the failed calls took none. f2 (13 Oct, failed) -> failed.
    # s2 (14 Oct) -> plan: f2 did not use it. s3 (15 Oct) -> PAYG position 1, tier 0.
    # m1 (marketplace, no plan, failed) -> failed, not rejected.
    cat = catalog([api("A", free_monthly=1, tiers=[{"upto": 1, "price": "1"}, {"price": "0.5"}])])
    acc = accounts(
        cat, account=[official("u", "A", at="2026-10-10T00:00:00+08:00"), {"id": "m", "channel": "marketplace"}],
        plan=[{"id": "p", "account": "u", "kind": "dedicated", "api": "A", "quantity": 1,
               "start": "2026-10-13T00:00:00+08:00"}],
    )
    rows = [("f0", "u", "A", on(5), 0), ("f1", "u", "A", on(11), 0), ("s1", "u", "A", on(12), 1),
            ("f2", "u", "A", on(13), 0), ("s2", "u", "A", on(14), 1), ("s3", "u", "A", on(15), 1),
            ("m1", "m", "A", on(15), 0, "marketplace")]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    got = [outcome(result, r) for r in ("f0", "f1", "s1", "f2", "s2", "s3")]
    assert got == [FAILED, FAILED, FREE(), FAILED, PLAN("p"), PAYG(0, M)]
    assert outcome(result, "m1", "marketplace") == FAILED
    assert counts(result.bill("u", "2026-10"), "A") == (6, 3, 0, 1, 1, 0, 1)
    assert counts(result.bill("m", "2026-10", "marketplace"), "A") == (1, 1, 0, 0, 0, 0, 0)


def test_duplicate_record_ids(kernel: str) -> None:
    # free 1, PAYG 1.00; u also on the marketplace with a 5-call shared plan.
    # r1 (2 Oct) free; r1 again (3 Oct) duplicate: not charged (else it would be PAYG), no count.
    # r1 on the marketplace is another record: paid by the marketplace plan.
    # r2 (4 Oct) PAYG; an identical copy is a duplicate.
    # r4: the copy first in (ts, record_id) order (failed, 6 Oct) is the record; the later
    #     successful copy (7 Oct) is a duplicate and is not charged.
    # r3 (5 Oct) and a copy in November: November has no new record, so no November bill.
    cat = catalog([flat("A", free_monthly=1)])
    acc = accounts(
        cat, account=[official("u", "A", at=SEP), {"id": "u", "channel": "marketplace"}],
        plan=[{"id": "s", "account": "u", "channel": "marketplace", "kind": "shared", "quantity": 5, "start": OCT}],
    )
    rows = [("r1", "u", "A", on(2), 1), ("r1", "u", "A", on(3), 1), ("r1", "u", "A", on(2), 1, "marketplace"),
            ("r2", "u", "A", on(4), 1), ("r2", "u", "A", on(4), 1),
            ("r4", "u", "A", on(7), 1), ("r4", "u", "A", on(6), 0),
            ("r3", "u", "A", on(5), 1), ("r3", "u", "A", on(5, month="2026-11"), 1)]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert outcome(result, "r1") == FREE()
    assert outcome(result, "r1", "marketplace") == PLAN("s", "SHARED")
    assert outcome(result, "r2") == PAYG(0, M)
    assert outcome(result, "r3") == PAYG(0, M)
    assert outcome(result, "r4") == FAILED
    dup = result.calls["status"] == Status.DUPLICATE
    assert sorted(result.calls["record_id"][dup].tolist()) == ["r1", "r2", "r3", "r4"]
    assert result.calls["source"][dup].tolist() == [Source.NONE] * 4
    assert result.calls["amount"][dup].tolist() == [0] * 4
    bill = result.bill("u", "2026-10")
    assert counts(bill, "A") == (4, 1, 0, 1, 0, 0, 2)
    assert bill.total == Decimal("2.00")
    assert counts(result.bill("u", "2026-10", "marketplace"), "A") == (1, 0, 0, 0, 0, 1, 0)
    with pytest.raises(KeyError):
        result.bill("u", "2026-11")


def test_channels_keep_separate_usage_plans_and_bills(kernel: str) -> None:
    # Account id "u" on both channels. free 1 (official only), PAYG 1.00.
    # official: plan po (1 call); marketplace: plan pm (1 call).
    # official o1 free, o2 po, o3 PAYG (pm is not the official account's).
    # marketplace k1 pm (the official free call and po are not the marketplace account's), k2 rejected.
    cat = catalog([flat("A", free_monthly=1)])
    acc = accounts(
        cat, account=[official("u", "A", at=SEP), {"id": "u", "channel": "marketplace"}],
        plan=[{"id": "pm", "account": "u", "channel": "marketplace", "kind": "dedicated", "api": "A", "quantity": 1,
               "start": OCT, "end": "2026-12-01T00:00:00+08:00"},
              {"id": "po", "account": "u", "kind": "dedicated", "api": "A", "quantity": 1, "start": OCT}],
    )
    rows = [("o1", "u", "A", on(2), 1), ("o2", "u", "A", on(3), 1), ("o3", "u", "A", on(4), 1),
            ("k1", "u", "A", on(2), 1, "marketplace"), ("k2", "u", "A", on(3), 1, "marketplace")]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    assert [outcome(result, r) for r in ("o1", "o2", "o3")] == [FREE(), PLAN("po"), PAYG(0, M)]
    assert [outcome(result, r, "marketplace") for r in ("k1", "k2")] == [PLAN("pm"), REJECTED("REJECTED_NO_PLAN")]
    off, mkt = result.bill("u", "2026-10", "official"), result.bill("u", "2026-10", "marketplace")
    assert counts(off, "A") == (3, 0, 0, 1, 1, 0, 1)
    assert counts(mkt, "A") == (2, 0, 1, 0, 1, 0, 0)
    assert [p.id for p in off.plans] == ["po"] and [p.id for p in mkt.plans] == ["pm"]
    assert (off.total, mkt.total) == (Decimal("1.00"), Decimal("0.00"))


# ---------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("mode", "a", "b", "total"),
    [
        # A: 3 x 0.0825 = 0.2475 ; B: 2 x 0.0825 = 0.165 (an exact .xx5 tie)
        ("down", "0.24", "0.16", "0.40"),
        ("half_up", "0.25", "0.17", "0.42"),
        ("half_even", "0.25", "0.16", "0.41"),  # 0.165 -> 0.16 (6 is even); 0.2475 is no tie -> 0.25
        ("up", "0.25", "0.17", "0.42"),
    ],
)
def test_rounding_once_per_line(kernel: str, mode: str, a: str, b: str, total: str) -> None:
    # Rounding each call instead would give half_up 0.08 x 5 = 0.40 and up 0.09 x 5 = 0.45;
    # rounding the bill's exact sum 0.4125 instead of each line would give down 0.41.
    cat = catalog([flat("A", "0.0825", free_monthly=0), flat("B", "0.0825", free_monthly=0)], rounding=mode)
    acc = accounts(cat, account=[official("u", "A", "B", at=SEP)])
    rows = repeat(3, "u", "A", OCT, prefix="a") + repeat(2, "u", "B", OCT, prefix="b")
    result = rate(calls(rows), cat, acc, kernel=kernel)
    bill = result.bill("u", "2026-10")
    assert (bill.line("A").amount_exact, bill.line("B").amount_exact) == (Decimal("0.247500"), Decimal("0.165000"))
    assert (bill.line("A").amount, bill.line("B").amount) == (Decimal(a), Decimal(b))
    assert bill.total == Decimal(total)
    assert str(bill.total) == total  # two places, as a decimal string
    assert int(result.calls["amount"].sum()) == 5 * 82_500  # per call exact, never rounded


def test_calls_add_up_on_every_line(kernel: str) -> None:
    # One line with one call of every kind, plus a duplicate that is in no count:
    # failed 1 + rejected 1 (before activation) + free 1 + dedicated 1 + shared 1 + PAYG 1 = 6 calls.
    # Free 1, PAYG 1.00 -> total 1.00.
    cat = catalog([flat("A", free_monthly=1)])
    acc = accounts(
        cat, account=[official("u", "A", at="2026-10-02T00:00:00+08:00")],
        plan=[{"id": "d", "account": "u", "kind": "dedicated", "api": "A", "quantity": 1, "start": OCT},
              {"id": "s", "account": "u", "kind": "shared", "quantity": 1, "start": OCT}],
    )
    rows = [("rej", "u", "A", on(1), 1), ("fail", "u", "A", on(3), 0), ("free", "u", "A", on(3), 1),
            ("ded", "u", "A", on(4), 1), ("sh", "u", "A", on(5), 1), ("payg", "u", "A", on(6), 1),
            ("payg", "u", "A", on(7), 1)]
    result = rate(calls(rows), cat, acc, kernel=kernel)
    bill = result.bill("u", "2026-10")
    assert counts(bill, "A") == (6, 1, 1, 1, 1, 1, 1)
    assert bill.line("A").shared_points == 1
    assert bill.total == Decimal("1.00")
    check_identities(result)


def test_identities_hold_on_every_bill_of_a_mixed_month(kernel: str) -> None:
    # The default catalog with a bit of everything; the identities are checked, not the amounts.
    acc = accounts(
        CATALOG,
        account=[official("u", "RecognizeIdcard", "VerifyVATInvoice", "RecognizeAllText",
                          at="2026-10-03T00:00:00+08:00"),
                 {"id": "m", "channel": "marketplace"}],
        plan=[{"id": "s", "account": "u", "kind": "shared", "quantity": 500, "start": OCT},
              {"id": "k", "account": "m", "channel": "marketplace", "kind": "shared", "quantity": 300, "start": OCT}],
    )
    rows = (repeat(400, "u", "RecognizeIdcard", OCT, prefix="a", step_ms=600_000)
            + repeat(120, "u", "VerifyVATInvoice", OCT, prefix="b", step_ms=3_600_000, success=1)
            + repeat(260, "u", "RecognizeAllText", OCT, prefix="c", step_ms=3_000_000)
            + repeat(40, "m", "RecognizeAllText", OCT, prefix="d", channel="marketplace", step_ms=86_400_000)
            + repeat(30, "u", "RecognizeIdcard", OCT, prefix="e", success=0)
            + repeat(10, "x", "RecognizeIdcard", OCT, prefix="a"))  # duplicates of a0000000..a0000009
    result = rate(calls(rows), CATALOG, acc, kernel=kernel)
    assert len(result.bills) >= 3
    check_identities(result)
    assert int((result.calls["status"] == Status.DUPLICATE).sum()) == 10
    total_calls = sum(ln.calls for b in result.bills for ln in b.lines)
    assert total_calls == len(rows) - 10
