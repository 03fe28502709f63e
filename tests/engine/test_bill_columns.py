"""Bill columns, the one bill implementation, against a line-by-line reference (``reference_bills``, the
object path as it was): the same ``Bill`` objects, the same JSON and text bytes from the compiled writer,
the same ``MoneyError`` where an amount passes int64, adjustments included."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pytest
from helpers import OCT, accounts, api, calls, catalog, kernel_tables, official, repeat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import scenarios

from ocrledger.bills import files as billfiles
from ocrledger.bills.render import render
from ocrledger.engine.bill_columns import LineArrays, bill_columns, line_exact
from ocrledger.engine.billing import bills_from_columns
from ocrledger.engine.encode import encode, party_list
from ocrledger.engine.qps import QpsArrays, addon_index, qps_lines, second_counts
from ocrledger.engine.rate import price_volume
from ocrledger.engine.usage import (
    DEDICATED,
    DUPLICATE,
    FAILED,
    FREE,
    REJECTED,
    SHARED,
    TIER0,
    Usage,
    UsageCounts,
    summarize,
)
from ocrledger.errors import MoneyError
from ocrledger.io.calls import read_calls
from ocrledger.kernel import select as _kernel
from ocrledger.kernel.contract import KernelState
from ocrledger.model.accounts import OFFICIAL, Plan
from ocrledger.model.bills import (
    Adjustment,
    Bill,
    BillLine,
    PlanBalance,
    TierCharge,
    bills_to_json,
)
from ocrledger.model.catalog import VOLUME, Api, Catalog
from ocrledger.model.clock import BillingClock, period_label
from ocrledger.model.money import check_int64, round_line, to_cents_decimal, to_decimal

needs_writer = pytest.mark.skipif(not billfiles.available(), reason="compiled bill writer not built")


# -- the reference: the object path, line by line (the deliberate twin of bill_columns) -----------------

def _reference_volume_tier(api: Api, total: int) -> int:
    """The tier that a month total of ``total`` PAYG calls reaches (volume pricing)."""
    for t, tier in enumerate(api.tiers):
        if tier.upto is None or total <= tier.upto:
            return t
    raise AssertionError("tier tables end with an open tier")


def _reference_tier_calls(api: Api, counts: Sequence[int]) -> list[tuple[int, int]]:
    """(tier, calls) of a line's PAYG calls, as billed: by position (graduated) or by total (volume)."""
    payg = sum(counts[TIER0:])
    if api.tier_mode == VOLUME:
        return [(_reference_volume_tier(api, payg), payg)] if payg else []
    return [(t, counts[TIER0 + t]) for t in range(len(api.tiers)) if counts[TIER0 + t]]


def reference_bills(
    usage: Usage,
    catalog: Catalog,
    parties: Sequence[tuple[str, str]],
    plans: Sequence[Plan],
    qps: Mapping[tuple[int, int, int], tuple[int, int]] | None = None,
    adjustments: Mapping[tuple[int, int], Sequence[Adjustment]] | None = None,
) -> list[Bill]:
    """The bills as the object path made them before bill columns were the one implementation (kept only
    here, as the reference): one bill per (party, month) with at least one counted record or an
    adjustment, sorted by account, channel, period, built line by line in Python integers.

    ``usage`` must hold the party's whole history (plans and the verification pool span months);
    ``qps`` gives (peak, seconds over) per (party, period, api), see ``qps.qps_lines``;
    ``adjustments`` (party, period) -> late charges of closed months put on that bill (which then
    exists even without records of its own).
    """
    qps = qps or {}
    adjustments = adjustments or {}
    clock = catalog.clock
    verification = [a.kind == "verification" for a in catalog.apis]
    by_bill: dict[tuple[int, int], list[int]] = defaultdict(list)
    # Cumulative verification pool use and plan use, month by month.
    pool_by_period: dict[int, dict[int, int]] = defaultdict(dict)
    for (party, period, api_index), counts in usage.lines.items():
        if sum(counts) - counts[DUPLICATE] > 0:
            by_bill[(party, period)].append(api_index)
        if verification[api_index] and counts[FREE]:
            pool_by_period[party][period] = pool_by_period[party].get(period, 0) + counts[FREE]
    for key in adjustments:
        by_bill.setdefault(key, [])
    plan_by_period: dict[int, dict[int, int]] = defaultdict(dict)
    for (plan, period), units in usage.plan_used.items():
        plan_by_period[plan][period] = units
    month_starts = clock.month_starts.tolist()
    plan_info = [(p.start, p.effective_end, p.quantity, p.id) for p in plans]
    end_labels = clock.labels(np.fromiter((p.effective_end for p in plans), dtype=np.int64, count=len(plans)))
    plans_of: dict[tuple[str, str], list[int]] = defaultdict(list)
    for k, plan in enumerate(plans):
        plans_of[(plan.account, plan.channel)].append(k)

    bills = []
    for (party, period), apis in by_bill.items():
        account, channel = parties[party]
        month_start, month_end = month_starts[period], month_starts[period + 1]
        lines = []
        total = 0
        for api_index in sorted(apis):
            peak, over = qps.get((party, period, api_index), (0, 0))
            line, rounded = _reference_line(catalog.apis[api_index], usage.lines[(party, period, api_index)], peak, over)
            lines.append(line)
            total += rounded
        adjusted = tuple(adjustments.get((party, period), ()))
        total = check_int64(total + sum(int(a.amount.scaleb(6)) for a in adjusted), what="bill total")
        balances = []
        for k in plans_of.get((account, channel), []):
            start, end, quantity, pid = plan_info[k]
            used_now = plan_by_period.get(k, {}).get(period, 0)
            if not (start < month_end and end > month_start) and not used_now:
                continue
            used_through = sum(u for p, u in plan_by_period.get(k, {}).items() if p <= period)
            remaining = quantity - used_through if end > month_end else 0
            balances.append(PlanBalance(pid, used_now, remaining, end_labels[k]))
        free_left: list[tuple[str, int]] = []
        if channel == OFFICIAL:
            pool_used = sum(u for p, u in pool_by_period.get(party, {}).items() if p <= period)
            for line in lines:
                api = catalog.api(line.api)
                if api.kind == "verification":
                    free_left.append((api.code, max(0, catalog.verification_free_total - pool_used)))
                else:
                    free_left.append((api.code, max(0, api.free_monthly - line.free)))
        bills.append(
            Bill(
                account=account,
                channel=channel,
                period=period_label(period),
                currency=catalog.currency,
                lines=tuple(lines),
                total=to_cents_decimal(total),
                plans=tuple(balances),
                free_remaining=tuple(free_left),
                adjustments=adjusted,
            )
        )
    return sorted(bills, key=lambda b: b.key)


def _reference_line(api: Api, counts: Sequence[int], qps_peak: int, qps_over: int) -> tuple[BillLine, int]:
    """The line and its rounded amount in micro-units."""
    tiers = []
    exact = 0
    payg = sum(counts[TIER0:])
    if payg:
        for t, calls in _reference_tier_calls(api, counts):
            tier = api.tiers[t]
            amount = check_int64(calls * tier.price, what=f"{api.code} tier {t + 1} amount")
            exact += amount
            tiers.append(TierCharge(api.tier_from(t), tier.upto, calls, to_decimal(tier.price).normalize(),
                                    to_decimal(amount)))
        exact = check_int64(exact, what=f"{api.code} line amount")
    rounded = round_line(exact, api.rounding)
    shared_calls = counts[SHARED]
    line = BillLine(
        api=api.code,
        calls=counts[FAILED] + counts[REJECTED] + counts[FREE] + counts[DEDICATED] + shared_calls + payg,
        failed=counts[FAILED],
        rejected=counts[REJECTED],
        free=counts[FREE],
        dedicated=counts[DEDICATED],
        shared_calls=shared_calls,
        shared_points=shared_calls * api.shared_points,
        payg=payg,
        tiers=tuple(tiers),
        amount_exact=to_decimal(exact),
        amount=to_cents_decimal(rounded),
        qps_peak=qps_peak,
        qps_over_seconds=qps_over,
    )
    return line, rounded


# -- the tests ---------------------------------------------------------------------------------------


def rated(cat, acc, cols):  # type: ignore[no-untyped-def]
    """What ``rate()`` has before it makes bills: usage, parties, plans, QPS lines, kernel tables."""
    table = read_calls(cols, cat)
    parties = party_list(acc.parties(), table)
    tables, plans = kernel_tables(cat, acc, parties)
    state = KernelState.fresh(tables, plans.quantity)
    enc = encode(table, parties, cat.clock)
    out = _kernel.run(_kernel.get("cython"), tables, state, enc.batch)
    counted = UsageCounts(tables)
    counted.add(enc.batch, out)
    price_volume(cat, counted, enc.batch, out)
    qps = qps_lines(cat, addon_index(cat, acc), parties, *second_counts(enc.batch, out, tables.n_api))
    return summarize(tables, enc.batch, out), parties, plans, qps, tables  # qps: the mapping reference_bills takes


def columns_of(usage, cat, parties, plans, qps, tables, period=None, adjustments=None):  # type: ignore[no-untyped-def]
    lines = LineArrays.from_lines(usage.lines, usage.width)
    return bill_columns(lines, usage.plan_used, cat, parties, plans, QpsArrays.from_mapping(qps, len(cat.apis)),
                        tables, period, adjustments=adjustments)


def check_bills(tmp_path: Path, cat, acc, cols, adjustments=None) -> int:  # type: ignore[no-untyped-def]
    """Bills from columns equal the reference's, objects and (with the compiled writer) both files, for all
    periods and for each period alone; returns the number of bills."""
    usage, parties, plans, qps, tables = rated(cat, acc, cols)
    every = reference_bills(usage, cat, parties, plans.objects(), qps, adjustments)
    periods = {q for _, q in (adjustments or {})} | {p for _, p, _ in usage.lines}
    for period in [None, *sorted(periods)]:
        wanted = every if period is None else [b for b in every if b.period == period_label(period)]
        got = columns_of(usage, cat, parties, plans, qps, tables, period, adjustments)
        assert len(got) == len(wanted) and got.total() == sum(int(b.total.scaleb(6)) for b in wanted)
        made = bills_from_columns(got, cat, parties, plans)
        assert made == wanted
        assert bills_to_json(made) == bills_to_json(wanted)
        if billfiles.available() and not adjustments:
            billfiles.write(got, cat, parties, plans, tmp_path / "bills.json", tmp_path / "bills.txt")
            assert (tmp_path / "bills.json").read_text(encoding="utf-8") == bills_to_json(wanted) + "\n"
            assert (tmp_path / "bills.txt").read_text(encoding="utf-8") == render(wanted, "text")
    return len(every)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_columns_make_the_reference_bills_and_bytes(tmp_path: Path, scenario) -> None:  # type: ignore[no-untyped-def]
    # random catalogs (graduated and volume tiers, every rounding mode, the verification pool), plans that
    # start, end and are refunded inside the window, three months in Shanghai, New York (DST) or UTC
    check_bills(tmp_path, *scenario)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario=scenarios(), data=st.data())
def test_adjustments_are_carried_and_added_to_the_total(tmp_path: Path, scenario, data) -> None:  # type: ignore[no-untyped-def]
    # late charges of either sign on bills with records of their own and on bills that have none
    cat, acc, cols = scenario
    usage, parties, _, _, _ = rated(cat, acc, cols)
    if not parties:
        return
    keys = data.draw(st.lists(st.tuples(st.integers(0, len(parties) - 1), st.sampled_from(
        sorted({p for _, p, _ in usage.lines} or {0}) + [700])), max_size=4, unique=True))
    adjustments = {key: [Adjustment(period_label(key[1] - 1), cat.apis[0].code, calls, to_decimal(exact),
                                    to_cents_decimal(round_line(exact, cat.apis[0].rounding)), (f"late-{k}",))
                         for k, (calls, exact) in enumerate(data.draw(st.lists(st.tuples(
                             st.integers(1, 5), st.integers(-10**9, 10**9)), min_size=1, max_size=2)))]
                   for key in keys}
    check_bills(tmp_path, cat, acc, cols, adjustments)


@needs_writer
def test_names_that_need_escaping_and_wide_characters(tmp_path: Path) -> None:
    # JSON escapes (quote, backslash, tab) in account and plan ids; non-ASCII codes and ids, whose text columns
    # are aligned by characters, not bytes; a tier label with an en dash; a QPS-over line; a refunded plan
    cat = catalog([api("Réçu", free_monthly=2, qps=1, tiers=[{"upto": 3, "price": "0.0825"}, {"price": "1"}]),
                   api("V", kind="verification", free_monthly=0, tiers=[{"price": "0.5"}])],
                  verification_free_total=3)
    names = ['quo"te', "back\\slash", "tab\there", "ünï"]
    acc = accounts(cat, account=[official(n, "Réçu", "V") for n in names], plan=[
        {"id": f'p"{k}é', "account": n, "kind": "dedicated", "api": "Réçu", "quantity": 2, "start": OCT,
         **({"refunded": "2026-10-20T00:00:00+08:00"} if k == 1 else {})}
        for k, n in enumerate(names)
    ])
    rows = []
    for k, n in enumerate(names):
        rows += repeat(8 + k, n, "Réçu", "2026-10-02T00:00:00+08:00", prefix=f"r{k}-", step_ms=100)
        rows += repeat(5, n, "V", "2026-10-05T00:00:00+08:00", prefix=f"v{k}-")
    assert check_bills(tmp_path, cat, acc, calls(rows)) == len(names)


@needs_writer
def test_no_bills(tmp_path: Path) -> None:
    cat = catalog([api("A")])
    acc = accounts(cat, account=[official("a", "A")])
    assert check_bills(tmp_path, cat, acc, calls([])) == 0
    assert (tmp_path / "bills.json").read_text() == "[]\n"


def overflowing(prices, tier_mode="graduated", n_calls=(1, 1)):  # type: ignore[no-untyped-def]
    """Usage of ``n_calls`` PAYG calls on APIs A and B, each with tiers ``prices``."""
    cat = catalog([api(code, free_monthly=0, tier_mode=tier_mode, tiers=prices) for code in "AB"])
    acc = accounts(cat, account=[official("a", "A", "B")])
    rows = [(f"{code}{k}", "a", code, f"2026-10-0{2 + k % 5}T00:00:00+08:00", 1)
            for code, n in zip("AB", n_calls) for k in range(n)]
    return (cat, acc, calls(rows))


def same_error(cat, acc, cols, counts=None) -> str:  # type: ignore[no-untyped-def]
    """The reference and the columns raise the same MoneyError (with the first line's counters set to ``counts``:
    sums the kernel itself refuses to reach)."""
    usage, parties, plans, qps, tables = rated(cat, acc, cols)
    if counts is not None:
        first = next(iter(usage.lines))
        usage.lines[first] = counts + [0] * (usage.width - len(counts))
    with pytest.raises(MoneyError) as expected:
        reference_bills(usage, cat, parties, plans.objects(), qps)
    with pytest.raises(MoneyError) as got:
        columns_of(usage, cat, parties, plans, qps, tables)
    assert str(got.value) == str(expected.value)
    return str(got.value)


def test_a_bill_total_beyond_int64_is_the_reference_error() -> None:
    # one call on each of two APIs at 5 * 10^12 CNY = 5 * 10^18 micro-units: each line fits int64, the bill
    # total (10^19) does not
    assert "bill total of 10000000000000000000 micro-units" in same_error(*overflowing([{"price": "5000000000000"}]))


def test_a_line_sum_beyond_int64_is_the_reference_error() -> None:
    # two tiers of one line at 5 * 10^18 micro-units each: each fits, their sum does not (the kernel refuses
    # such a month's spend before any bill; the line's counters are set by hand)
    prices = [{"upto": 1, "price": "5000000000000"}, {"price": "5000000000000"}]
    counts = [0] * TIER0 + [1, 1]
    assert same_error(*overflowing(prices, n_calls=(1, 0)), counts=counts).startswith(
        "A line amount of 10000000000000000000")


def test_a_tier_amount_beyond_int64_is_the_reference_error() -> None:
    # volume pricing: three calls at 4 * 10^12 CNY (each call's own amount fits, the tier's does not)
    prices = [{"upto": 2, "price": "1"}, {"price": "4000000000000"}]
    assert same_error(*overflowing(prices, "volume", n_calls=(0, 3))).startswith("B tier 2 amount of 12")


def test_shared_points_beyond_int64_are_an_error_not_a_wrap() -> None:
    # two shared calls of 2^62 points each (a sum the kernel's plans would have to hold; counters set by hand)
    cat = catalog([api("A", free_monthly=0, shared_points=2**62)])
    acc = accounts(cat, account=[official("a", "A")])
    usage, parties, plans, qps, tables = rated(cat, acc, calls([("r1", "a", "A", "2026-10-02T00:00:00+08:00", 1)]))
    usage.lines[next(iter(usage.lines))] = [0] * SHARED + [2] + [0] * (usage.width - SHARED - 1)
    with pytest.raises(MoneyError, match="A shared points of 9223372036854775808 overflow int64"):
        columns_of(usage, cat, parties, plans, qps, tables)


def test_amounts_between_2_62_and_int64_are_exact(tmp_path: Path) -> None:
    # 4.6 * 10^18 < 2^62 < 5 * 10^18 < 2^63: past the float bound, checked again in integers, and they fit
    assert check_bills(tmp_path, *overflowing([{"price": "5000000000000"}], n_calls=(1, 0))) == 1
    assert check_bills(tmp_path, *overflowing([{"price": "4611686018427.387904"}], n_calls=(1, 1))) == 1


def test_line_exact_is_the_bill_lines_sum() -> None:
    # the ledger prices adjustments with it: 10^9 + 200 calls on the bundled catalog's ID card line
    from ocrledger import default_catalog

    cat = default_catalog()
    counts = [0] * (TIER0 + 5)
    counts[FREE] = 200
    counts[TIER0:] = [10_000, 90_000, 400_000, 500_000, 999_000_000]
    index = cat.index["RecognizeIdcard"]
    assert line_exact(cat, np.array([index]), np.array([counts])) == [9_025_280 * 10**6]
    line, _ = _reference_line(cat.apis[index], counts, 0, 0)
    assert line.amount_exact == Decimal("9025280.000000")


@given(st.lists(st.integers(-(2**40), 2**42), max_size=40),
       st.sampled_from(["Asia/Shanghai", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]))
def test_labels_equal_label(instants: list[int], zone: str) -> None:
    clock = BillingClock.for_zone(zone)
    instants += [0, 1000, -1, 2**62, -(2**62), 253_402_300_799_999]  # whole seconds, far outside datetime's range
    assert clock.labels(np.array(instants, dtype=np.int64)) == [clock.label(t) for t in instants]
