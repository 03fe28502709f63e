"""Bills as columns: ``make_bills``' figures for every line, tier, plan balance and bill at once, in numpy.

``billing.make_bills`` is the reference: it builds one ``Bill`` object per bill, line by line. The
rerater has hundreds of thousands of lines and needs only their files, so it computes the same
figures here as arrays and writes ``bills.json`` / ``bills.txt`` from them (``billfiles``) without
building a single object. ``tests/engine/test_bill_columns.py`` checks the bytes against ``make_bills`` and
``render``. ``bill_columns`` returns None where an amount could leave int64 (the object path then
raises its exact error) and when there are adjustments (only the ledger has them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..kernel.contract import KernelTables
from ..model.account_columns import PlanColumns
from ..model.accounts import OFFICIAL
from ..model.catalog import VOLUME, Catalog
from ..model.clock import period_label
from ..model.money import MODE_CODES, round_lines
from .qps import QpsArrays
from .ragged import ragged
from .usage import (
    DEDICATED,
    FAILED,
    FREE,
    REJECTED,
    SHARED,
    TIER0,
    LineArrays,
)

SAFE = float(1 << 62)
"""Sums are checked in float64 against this bound before they are taken in int64 (no silent wrap)."""

NUMBERS = ("calls", "failed", "rejected", "free", "dedicated", "shared_calls", "shared_points", "payg")
"""The count columns of a line, in the order of ``BillColumns.line_numbers``."""


@dataclass
class BillColumns:
    """The bills of a usage, sorted by (account, channel, period) like ``make_bills``' list.

    Bills index lines by ``line_start`` (lines of bill b are ``line_start[b]:line_start[b+1]``, in
    API order), lines index tier rows by ``tier_start`` and bills index plan rows by ``plan_start``.
    Money is in micro-units (int64).
    """

    bill_party: np.ndarray
    bill_period: np.ndarray
    bill_total: np.ndarray
    bill_official: np.ndarray
    """int8: 1 when the bill shows free quota left (official channel)."""
    line_start: np.ndarray
    line_api: np.ndarray
    line_numbers: np.ndarray
    """(lines, 8) int64 in the order of NUMBERS."""
    line_exact: np.ndarray
    line_amount: np.ndarray
    line_qps: np.ndarray
    """(lines, 2) int64: peak calls in one second, seconds over the limit."""
    line_free_left: np.ndarray
    tier_start: np.ndarray
    tier_index: np.ndarray
    """Catalog-wide tier index (``KernelTables.tier_offset[api] + t``)."""
    tier_calls: np.ndarray
    tier_amount: np.ndarray
    plan_start: np.ndarray
    plan_index: np.ndarray
    plan_used: np.ndarray
    plan_remaining: np.ndarray

    def __len__(self) -> int:
        return len(self.bill_party)

    def total(self) -> int:
        """Sum of the bill totals (micro-units)."""
        return int(self.bill_total.sum())


def _running_total(party: np.ndarray, period: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For rows sorted by (owner, period): the sum of ``values`` over the owner's rows of periods <= each row's."""
    n = len(party)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    group_new = np.r_[True, (party[1:] != party[:-1]) | (period[1:] != period[:-1])]
    group = np.cumsum(group_new) - 1
    starts = np.flatnonzero(group_new)
    sums = np.add.reduceat(values, starts)
    running = np.cumsum(sums)
    party_new = np.r_[True, party[starts][1:] != party[starts][:-1]]
    first = np.maximum.accumulate(np.where(party_new, np.arange(len(starts)), 0))
    before = running[first] - sums[first]
    return (running - before)[group]


def bill_columns(
    lines: LineArrays,
    plan_used: Mapping[tuple[int, int], int],
    catalog: Catalog,
    parties: Sequence[tuple[str, str]],
    plans: PlanColumns,
    qps: QpsArrays,
    tables: KernelTables,
    period: int | None = None,
) -> BillColumns | None:
    """The figures of ``make_bills(...)`` (only the bills of ``period`` when given), or None when a
    sum could leave int64 (then ``make_bills`` must run, and raises its error). ``tables`` are the
    kernel tables of ``parties`` and ``plans`` (``kernel_tables``). A counted line that ``qps`` does not
    list shows a peak of one call per second (the rerater lists only seconds with two or more calls)."""
    apis = catalog.apis
    width = lines.counts.shape[1]
    verification = np.array([a.kind == "verification" for a in apis], dtype=bool)
    n_tiers = np.array([len(a.tiers) for a in apis], dtype=np.int64)
    tier_offset = np.r_[0, np.cumsum(n_tiers)].astype(np.int64)
    tier_price = np.array([t.price for a in apis for t in a.tiers], dtype=np.int64)
    if width - TIER0 < int(n_tiers.max()):
        return None

    o = np.lexsort((lines.api, lines.period, lines.party))
    party, per, api, m = lines.party[o], lines.period[o], lines.api[o], lines.counts[o]
    pool = _running_total(party, per, np.where(verification[api], m[:, FREE], 0))
    keep = LineArrays(party, per, api, m).counted()
    if period is not None:
        keep &= per == period
    party, per, api, m, pool = party[keep], per[keep], api[keep], m[keep], pool[keep]

    # bills: runs of (party, period), ordered by (account, channel, period) as Bill.key sorts
    n = len(party)
    new = np.r_[True, (party[1:] != party[:-1]) | (per[1:] != per[:-1])] if n else np.zeros(0, dtype=bool)
    bill_of = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    rank = np.empty(len(parties), dtype=np.int64)
    rank[sorted(range(len(parties)), key=parties.__getitem__)] = np.arange(len(parties))
    border = np.lexsort((per[starts], rank[party[starts]]))
    place = np.empty(len(border), dtype=np.int64)
    place[border] = np.arange(len(border))
    lo = np.argsort(place[bill_of], kind="stable")
    party, per, api, m, pool = party[lo], per[lo], api[lo], m[lo], pool[lo]
    bill_of = place[bill_of[lo]]
    n_bills = len(border)
    line_start = np.searchsorted(bill_of, np.arange(n_bills + 1)).astype(np.int64)

    # tiers: by position (graduated) or the month total's tier (volume)
    paygs = m[:, TIER0:]
    payg = paygs.sum(axis=1)
    tcounts = paygs.copy()
    for a, spec in enumerate(apis):
        if spec.tier_mode != VOLUME:
            continue
        rows = np.flatnonzero((api == a) & (payg > 0))
        if len(rows):
            upto = np.array([t.upto if t.upto is not None else np.iinfo(np.int64).max for t in spec.tiers])
            vt = np.searchsorted(upto, payg[rows], side="left")
            tcounts[rows] = 0
            tcounts[rows, vt] = payg[rows]
    tl, tt = np.nonzero(tcounts)
    t_calls = tcounts[tl, tt]
    t_index = tier_offset[api[tl]] + tt
    t_price = tier_price[t_index]
    products = t_calls.astype(np.float64) * t_price
    if len(products) and (products.max() >= SAFE or products.sum() >= SAFE):
        return None
    t_amount = t_calls * t_price
    tier_start = np.searchsorted(tl, np.arange(n + 1)).astype(np.int64)
    running = np.r_[0, np.cumsum(t_amount)]
    exact = running[tier_start[1:]] - running[tier_start[:-1]]
    modes = np.array([MODE_CODES[a.rounding] for a in apis], dtype=np.int64)
    amount = round_lines(exact, modes[api])
    totals = np.r_[0, np.cumsum(amount)]
    bill_total = totals[line_start[1:]] - totals[line_start[:-1]]

    points = np.array([a.shared_points for a in apis], dtype=np.int64)
    if n and (m[:, SHARED].astype(np.float64) * points[api]).max() >= SAFE:
        return None
    numbers = np.empty((n, len(NUMBERS)), dtype=np.int64)
    numbers[:, 0] = m[:, FAILED] + m[:, REJECTED] + m[:, FREE] + m[:, DEDICATED] + m[:, SHARED] + payg
    numbers[:, 1] = m[:, FAILED]
    numbers[:, 2] = m[:, REJECTED]
    numbers[:, 3] = m[:, FREE]
    numbers[:, 4] = m[:, DEDICATED]
    numbers[:, 5] = m[:, SHARED]
    numbers[:, 6] = m[:, SHARED] * points[api]
    numbers[:, 7] = payg

    line_qps = np.stack(qps.lookup(party, per, api, missing=(1, 0)), axis=1) if n else np.zeros((0, 2), np.int64)
    free_monthly = np.array([a.free_monthly for a in apis], dtype=np.int64)
    free_left = np.where(verification[api], np.maximum(0, catalog.verification_free_total - pool),
                         np.maximum(0, free_monthly[api] - m[:, FREE]))
    b_party, b_period = party[line_start[:-1]], per[line_start[:-1]]
    official = np.array([ch == OFFICIAL for _, ch in parties], dtype=np.int8)

    plan_start, plan_index, used_now, remaining = _balances(catalog, tables, plans, plan_used, b_party, b_period)
    return BillColumns(
        bill_party=b_party, bill_period=b_period, bill_total=bill_total,
        bill_official=official[b_party] if n_bills else np.zeros(0, np.int8), line_start=line_start,
        line_api=api, line_numbers=numbers, line_exact=exact, line_amount=amount, line_qps=line_qps,
        line_free_left=free_left, tier_start=tier_start, tier_index=t_index, tier_calls=t_calls,
        tier_amount=t_amount, plan_start=plan_start, plan_index=plan_index, plan_used=used_now,
        plan_remaining=remaining,
    )


def _plan_party(tables: KernelTables) -> np.ndarray:
    """The party of each plan, read off the per-(party, API) plan lists of the kernel tables."""
    party = np.full(tables.n_plan, -1, dtype=np.int64)
    for offset, listed in ((tables.ded_offset, tables.ded_plans), (tables.sh_offset, tables.sh_plans)):
        pair = np.repeat(np.arange(len(offset) - 1), np.diff(offset))
        party[listed] = pair // tables.n_api
    return party


def _balances(
    catalog: Catalog,
    tables: KernelTables,
    plans: PlanColumns,
    plan_used: Mapping[tuple[int, int], int],
    b_party: np.ndarray,
    b_period: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Plan rows per bill: the party's plans (list order) that overlap the month or paid in it."""
    n_bills = len(b_party)
    plan_party = _plan_party(tables)
    by_party = np.argsort(plan_party, kind="stable")
    sorted_party = plan_party[by_party]
    first = np.searchsorted(sorted_party, b_party, side="left")
    count = np.searchsorted(sorted_party, b_party, side="right") - first
    owner, offset = ragged(count)
    k = by_party[first[owner] + offset] if len(owner) else np.zeros(0, dtype=np.int64)
    pperiod = b_period[owner]
    starts = catalog.clock.month_starts
    month_start, month_end = starts[pperiod], starts[pperiod + 1]
    p_start, p_end = tables.plan_start, tables.plan_end
    quantity = plans.quantity
    # plan use per (plan, period) and its running total through each period
    ukeys = np.array(list(plan_used.keys()), dtype=np.int64).reshape(len(plan_used), 2)
    uvals = np.array(list(plan_used.values()), dtype=np.int64)
    uo = np.lexsort((ukeys[:, 1], ukeys[:, 0]))
    ukeys, uvals = ukeys[uo], uvals[uo]
    ucum = _running_total(ukeys[:, 0], ukeys[:, 1], uvals)
    used_now = np.zeros(len(k), dtype=np.int64)
    used_through = np.zeros(len(k), dtype=np.int64)
    if len(uvals) and len(k):
        span = len(starts)
        flat = ukeys[:, 0] * span + ukeys[:, 1]
        want = k * span + pperiod
        at = np.maximum(np.searchsorted(flat, want, side="right") - 1, 0)
        same_plan = ukeys[at, 0] == k
        same_plan &= flat[at] <= want
        used_through = np.where(same_plan, ucum[at], 0)
        used_now = np.where(same_plan & (flat[at] == want), uvals[at], 0)
    show = ((p_start[k] < month_end) & (p_end[k] > month_start)) | (used_now != 0)
    remaining = np.where(p_end[k] > month_end, quantity[k] - used_through, 0)
    owner, k, used_now, remaining = owner[show], k[show], used_now[show], remaining[show]
    plan_start = np.searchsorted(owner, np.arange(n_bills + 1)).astype(np.int64)
    return plan_start, k.astype(np.int64), used_now.astype(np.int64), remaining.astype(np.int64)


def period_labels(cols: BillColumns) -> list[str]:
    """The bills' periods as labels ("2026-10")."""
    return [period_label(p) for p in cols.bill_period.tolist()]
