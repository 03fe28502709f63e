"""Bills from usage: tier charges, exact line sums, the one rounding per line, plan balances, free quota left."""
from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Sequence

import numpy as np

from ..model.accounts import OFFICIAL, Plan
from ..model.bills import Adjustment, Bill, BillLine, PlanBalance, TierCharge
from ..model.catalog import VOLUME, Api, Catalog
from ..model.clock import period_label
from ..model.money import check_int64, round_line, to_cents_decimal, to_decimal
from .pricing import volume_tier
from .usage import DEDICATED, DUPLICATE, FAILED, FREE, REJECTED, SHARED, TIER0, Usage


def tier_calls(api: Api, counts: Sequence[int]) -> list[tuple[int, int]]:
    """(tier, calls) of a line's PAYG calls, as billed: by position (graduated) or by total (volume)."""
    payg = sum(counts[TIER0:])
    if api.tier_mode == VOLUME:
        return [(volume_tier(api, payg), payg)] if payg else []
    return [(t, counts[TIER0 + t]) for t in range(len(api.tiers)) if counts[TIER0 + t]]


QpsLines = Mapping[tuple[int, int, int], tuple[int, int]]


def make_bills(
    usage: Usage,
    catalog: Catalog,
    parties: Sequence[tuple[str, str]],
    plans: Sequence[Plan],
    qps: QpsLines | None = None,
    adjustments: Mapping[tuple[int, int], Sequence[Adjustment]] | None = None,
) -> list[Bill]:
    """One bill per (party, month) with at least one counted record, sorted by account, channel, period.

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
    for (party, period, api), counts in usage.lines.items():
        if sum(counts) - counts[DUPLICATE] > 0:
            by_bill[(party, period)].append(api)
        if verification[api] and counts[FREE]:
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
            line, rounded = _line(catalog.apis[api_index], usage.lines[(party, period, api_index)], peak, over)
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


def bill_line(api: Api, counts: Sequence[int], qps_peak: int = 0, qps_over: int = 0) -> BillLine:
    """The bill line of one API from its counters (see ``usage``): tiers, exact sum, one rounding."""
    return _line(api, counts, qps_peak, qps_over)[0]


def _line(api: Api, counts: Sequence[int], qps_peak: int, qps_over: int) -> tuple[BillLine, int]:
    """The line and its rounded amount in micro-units."""
    tiers = []
    exact = 0
    payg = sum(counts[TIER0:])
    if payg:
        for t, calls in tier_calls(api, counts):
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
