"""Edges: tier positions beyond int32, INT64 money limits, a million accounts, 10^5 plans, empty and all-failed months."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    CATALOG,
    OCT,
    accounts,
    api,
    build_tables,
    calls,
    catalog,
    official,
    overflow_setup,
    repeat,
)

from ocrledger.engine.bill_columns import line_exact
from ocrledger.engine.encode import encode, party_list
from ocrledger.engine.rate import rate
from ocrledger.engine.usage import TIER0
from ocrledger.errors import MoneyError
from ocrledger.io.calls import read_calls
from ocrledger.kernel import select as _kernel
from ocrledger.kernel.contract import KernelState


def _prepared(rows, acc, cat=CATALOG):  # type: ignore[no-untyped-def]
    table = read_calls(calls(rows), cat)
    parties = party_list(acc.parties(), table)
    tables, plans = build_tables(cat, acc, parties)
    return tables, KernelState.fresh(tables, np.array([p.quantity for p in plans], dtype=np.int64)), encode(
        table, parties, cat.clock).batch


def test_a_billion_payg_calls_in_a_month(kernel: str) -> None:
    # The pair has already made 2^31 - 3 PAYG calls this month: the next positions pass int32.
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard")])
    tables, state, batch = _prepared(repeat(5, "u", "RecognizeIdcard", OCT), acc)
    state.pair_period[:] = batch.period[0]
    state.free_used[:] = 200
    state.payg_calls[:] = 2**31 - 3
    out = _kernel.run(_kernel.get(kernel), tables, state, batch)
    # positions 2^31 - 2 .. 2^31 + 2 all fall in the open tier (index 4) at 0.009
    assert out.tier.tolist() == [4] * 5 and out.amount.tolist() == [9_000] * 5
    assert int(state.payg_calls[0]) == 2**31 + 2
    assert int(state.payg_spend[0]) == 5 * 9_000
    # The month's line for 10^9 + 200 calls: 200 free, then
    # 10,000 x 0.0825 + 90,000 x 0.0495 + 400,000 x 0.0415 + 500,000 x 0.0248 + 999,000,000 x 0.009
    # = 825 + 4,455 + 16,600 + 12,400 + 8,991,000 = 9,025,280.00
    counts = [0] * (TIER0 + 5)
    counts[2] = 200
    counts[TIER0:] = [10_000, 90_000, 400_000, 500_000, 999_000_000]
    assert sum(counts[TIER0:]) == 10**9
    assert line_exact(CATALOG, np.array([CATALOG.index["RecognizeIdcard"]]), np.array([counts])) == [9_025_280 * 10**6]


def test_money_past_int64_is_an_error_not_a_wrap(kernel: str, tmp_path: Path) -> None:
    # 5,000,000,000,000 CNY a call is 5e18 micro-units: fits int64; two calls (1e19) do not.
    cat, acc = overflow_setup()
    one = rate(calls(repeat(1, "u", "A", OCT)), cat, acc, kernel=kernel)
    assert one.bills[0].total == Decimal("5000000000000.00")
    with pytest.raises(MoneyError, match="INT64_MAX"):
        rate(calls(repeat(2, "u", "A", OCT)), cat, acc, kernel=kernel)
    # volume pricing overflows in the bill's arithmetic (calls x price), also an error
    # (provisional spend 1 + 1 + 4e12 CNY fits; the month's 3 calls at the volume price 4e12 do not)
    vol = catalog([api("A", free_monthly=0, tier_mode="volume", tiers=[{"upto": 2, "price": "1"},
                                                                        {"price": "4000000000000"}])])
    result = rate(calls(repeat(3, "u", "A", OCT)), vol, accounts(vol, account=[official("u", "A")]), kernel=kernel)
    assert result.calls["amount"].tolist() == [4 * 10**18] * 3  # each call's exact amount fits
    with pytest.raises(MoneyError, match="overflows int64"):
        result.bills  # made on first access: the line (3 x 4e18 micro-units) does not fit


def test_a_million_accounts() -> None:
    # 10^6 distinct accounts, one call each: unknown accounts are rejected and each still gets a bill.
    n = 1_000_000
    start = CATALOG.clock.instant(OCT, what="t")
    data = {
        "record_id": np.char.add("r", np.arange(n).astype(str)),
        "account": np.char.add("acct-", np.arange(n).astype(str)),
        "api": np.full(n, "RecognizeIdcard"),
        "ts": start + np.arange(n, dtype=np.int64),
        "success": np.ones(n, dtype=np.int8),
    }
    result = rate(data, CATALOG)
    assert len(result.bills) == n
    assert all(b.lines[0].rejected == 1 for b in result.bills[:1000])
    assert int((result.calls["status"] == 3).sum()) == n


def test_a_hundred_thousand_plans_on_one_account(kernel: str) -> None:
    # 10^5 one-call plans; each call is paid by the plan that expires first (plan k ends k minutes
    # after the month starts + 40 days), so call i is paid by plan i.
    n_plans, n_calls = 100_000, 2_000
    start = CATALOG.clock.instant(OCT, what="t")
    plans = [{"id": f"p{k:06d}", "account": "u", "kind": "dedicated", "api": "RecognizeIdcard", "quantity": 1,
              "start": start, "end": start + 40 * 86_400_000 + k * 60_000} for k in range(n_plans)]
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard")], plan=plans)
    result = rate(calls(repeat(200 + n_calls, "u", "RecognizeIdcard", OCT)), CATALOG, acc, kernel=kernel)
    paid = result.calls["plan"][200:]
    assert paid.tolist() == [f"p{k:06d}" for k in range(n_calls)]
    assert result.bills[0].line("RecognizeIdcard").dedicated == n_calls


def test_empty_calls_give_no_bills(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text("record_id,account,api,ts,success\n")
    assert rate(path).bills == []
    proc = subprocess.run([sys.executable, "-m", "ocrledger", "rate", "--calls", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout) == []


def test_a_month_of_only_failed_calls(kernel: str) -> None:
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard")])
    bill = rate(calls(repeat(500, "u", "RecognizeIdcard", OCT, success=0)), CATALOG, acc, kernel=kernel).bills[0]
    line = bill.line("RecognizeIdcard")
    assert (line.calls, line.failed, line.free, line.payg) == (500, 500, 0, 0)
    assert bill.total == Decimal("0.00") and bill.free_remaining == (("RecognizeIdcard", 200),)


def test_daylight_saving_zone_months_and_plan_years() -> None:
    ny = catalog([api("A", free_monthly=1)], timezone="America/New_York")
    clock = ny.clock
    # November 2026 starts at 00:00 EDT (UTC-4) = 04:00Z; March 2027 at 00:00 EST (UTC-5) = 05:00Z
    assert clock.instant("2026-11-01", what="t") == clock.instant("2026-11-01T04:00:00Z", what="t")
    assert clock.instant("2027-03-01", what="t") == clock.instant("2027-03-01T05:00:00Z", what="t")
    acc = accounts(ny, account=[official("u", "A", at="2026-01-01T00:00:00-05:00")],
                   plan=[{"id": "p", "account": "u", "kind": "dedicated", "api": "A", "quantity": 5,
                          "start": "2026-07-01T12:00:00-04:00"}])
    # the plan year ends at the same wall time a year later: 2027-07-01T12:00 EDT
    assert acc.plans[0].end == clock.instant("2027-07-01T12:00:00-04:00", what="t")
    rows = [("a", "u", "A", "2026-11-01T03:59:59.999Z", 1), ("b", "u", "A", "2026-11-01T04:00:00Z", 1)]
    result = rate(calls(rows), ny, acc)
    assert [b.period for b in result.bills] == ["2026-10", "2026-11"]
    assert [b.lines[0].free for b in result.bills] == [1, 1]  # each month has its own free call
