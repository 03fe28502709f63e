"""Bills as columns, the one implementation of every bill figure: tier charges, exact line sums, the one
rounding per line, totals (adjustments included), plan balances and free quota left, for all bills at once.

``billing.bills_from_columns`` makes ``Bill`` objects of them (``Engine.bills``, the ledger, the rerater's
``bills``); the rerater also writes ``bills.json`` / ``bills.txt`` straight from them (``bills.files``)
without building an object. Amounts are int64 micro-units, checked exactly: an amount beyond int64 is
the ``MoneyError`` naming it, never a wrap. ``tests/engine/test_bill_columns.py`` checks them against a
line-by-line reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..errors import MoneyError
from ..kernel.contract import KernelTables
from ..model.account_columns import PlanColumns
from ..model.accounts import OFFICIAL
from ..model.bills import Adjustment
from ..model.catalog import VOLUME, Catalog
from ..model.clock import N_PERIODS, period_label
from ..model.money import INT64_MAX, MODE_CODES, check_int64, round_line, round_lines
from .pricing import volume_tiers
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
"""Amounts are first bounded in float64 against this; a bill that may pass it is checked again in exact
integers (``_check_exact``), which raise the ``MoneyError`` of the first amount beyond int64."""

NUMBERS = ("calls", "failed", "rejected", "free", "dedicated", "shared_calls", "shared_points", "payg")
"""The count columns of a line, in the order of ``BillColumns.line_numbers``."""

Adjustments = Mapping[tuple[int, int], Sequence[Adjustment]]
"""(party, period) -> late charges of closed months put on that bill (the ledger's)."""


@dataclass
class BillColumns:
    """The bills of a usage, sorted by (account, channel, period) as ``Bill.key`` sorts.

    Bills index lines by ``line_start`` (lines of bill b are ``line_start[b]:line_start[b+1]``, in
    API order), lines index tier rows by ``tier_start``, bills index plan rows by ``plan_start`` and
    adjustments by ``adj_start``. Money is in micro-units (int64).
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
    adj_start: np.ndarray
    adjustments: tuple[Adjustment, ...] = ()
    """The adjustments of every bill, in bill order (only the ledger has any)."""

    def __len__(self) -> int:
        return len(self.bill_party)

    def total(self) -> int:
        """Sum of the bill totals (micro-units)."""
        return sum(self.bill_total.tolist())


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


def _segment_sums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """``values[bounds[i]:bounds[i + 1]].sum()`` for each i (``bounds[-1] == len(values)``).

    In int64 a segment's sum is exact whenever it fits int64, whatever its partial sums.
    """
    out = np.zeros(len(bounds) - 1, dtype=values.dtype)
    filled = bounds[1:] > bounds[:-1]
    if filled.any():
        out[filled] = np.add.reduceat(values, bounds[:-1][filled])
    return out


@dataclass
class _Charges:
    """The PAYG charges of some lines: tier rows (``tier_start`` per line), exact sums, rounded amounts."""

    tier_start: np.ndarray
    tier_index: np.ndarray
    tier_calls: np.ndarray
    tier_amount: np.ndarray
    exact: np.ndarray
    amount: np.ndarray
    risky: np.ndarray
    """bool per line: a tier amount or the line's sum may pass int64 (then ``_check_exact`` decides)."""


def _charges(catalog: Catalog, api: np.ndarray, counts: np.ndarray) -> _Charges:
    """Tiers by position (graduated) or the month total's tier (volume), calls x unit price, one
    rounding per line (``round_lines``). Exact wherever no line is ``risky``."""
    apis = catalog.apis
    n_tiers = np.array([len(a.tiers) for a in apis], dtype=np.int64)
    tier_offset = np.r_[0, np.cumsum(n_tiers)].astype(np.int64)
    tier_price = np.array([t.price for a in apis for t in a.tiers], dtype=np.int64)
    paygs = counts[:, TIER0:]
    if paygs.shape[1] < int(n_tiers.max()):  # narrower counters: the missing tiers have no calls
        paygs = np.pad(paygs, ((0, 0), (0, int(n_tiers.max()) - paygs.shape[1])))
    payg = paygs.sum(axis=1)
    tcounts = paygs.copy()
    for a, spec in enumerate(apis):
        if spec.tier_mode != VOLUME:
            continue
        rows = np.flatnonzero((api == a) & (payg > 0))
        if len(rows):
            tcounts[rows] = 0
            tcounts[rows, volume_tiers(spec, payg[rows])] = payg[rows]
    tl, tt = np.nonzero(tcounts)
    t_calls = tcounts[tl, tt]
    t_index = tier_offset[api[tl]] + tt
    t_price = tier_price[t_index]
    t_amount = t_calls * t_price
    tier_start = np.searchsorted(tl, np.arange(len(api) + 1)).astype(np.int64)
    line_float = _segment_sums(t_calls.astype(np.float64) * t_price, tier_start)
    risky = line_float >= SAFE  # a tier amount is at most its line's sum (all are >= 0)
    exact = _segment_sums(t_amount, tier_start)
    modes = np.array([MODE_CODES[a.rounding] for a in apis], dtype=np.int64)
    amount = round_lines(np.where(risky, 0, exact), modes[api])
    return _Charges(tier_start, t_index, t_calls, t_amount, exact, amount, risky)


def _exact_line(catalog: Catalog, api: int, tier_index: Sequence[int], tier_calls: Sequence[int]) -> int:
    """One line's exact sum in Python integers, with the ``MoneyError`` of a tier or sum beyond int64."""
    spec = catalog.apis[api]
    first = sum(len(a.tiers) for a in catalog.apis[:api])
    exact = 0
    for index, calls in zip(tier_index, tier_calls):
        t = index - first
        exact += check_int64(calls * spec.tiers[t].price, what=f"{spec.code} tier {t + 1} amount")
    return check_int64(exact, what=f"{spec.code} line amount")


def line_exact(catalog: Catalog, api: np.ndarray, counts: np.ndarray) -> list[int]:
    """The exact PAYG amount (micro-units) of each line (``api``, counters ``counts``) as its bill
    line shows it; raises the ``MoneyError`` of the first tier amount or line sum beyond int64."""
    ch = _charges(catalog, np.asarray(api, dtype=np.int64), np.asarray(counts, dtype=np.int64).reshape(len(api), -1))
    exact = ch.exact.tolist()
    for k in np.flatnonzero(ch.risky).tolist():
        lo, hi = int(ch.tier_start[k]), int(ch.tier_start[k + 1])
        exact[k] = _exact_line(catalog, int(api[k]), ch.tier_index[lo:hi].tolist(), ch.tier_calls[lo:hi].tolist())
    return exact


def _check_exact(catalog: Catalog, bills: np.ndarray, line_start: np.ndarray, api: np.ndarray, ch: _Charges,
                 adjusted: Sequence[int]) -> dict[int, tuple[list[int], list[int], int]]:
    """Bills ``bills`` (in the order their errors take) again in Python integers: each one's exact
    line sums, rounded line amounts and total, or the ``MoneyError`` of the first amount beyond int64
    (a tier, a line's sum, the bill total, then a rounded line amount, which only the total can carry)."""
    checked = {}
    for b in bills.tolist():
        exacts, rounded = [], []
        for k in range(int(line_start[b]), int(line_start[b + 1])):
            lo, hi = int(ch.tier_start[k]), int(ch.tier_start[k + 1])
            exact = _exact_line(catalog, int(api[k]), ch.tier_index[lo:hi].tolist(), ch.tier_calls[lo:hi].tolist())
            exacts.append(exact)
            rounded.append(round_line(exact, catalog.apis[int(api[k])].rounding))
        total = check_int64(sum(rounded) + adjusted[b], what="bill total")
        for k, amount in zip(range(int(line_start[b]), int(line_start[b + 1])), rounded):
            check_int64(amount, what=f"{catalog.apis[int(api[k])].code} line amount")
        checked[b] = (exacts, rounded, total)
    return checked


def bill_columns(
    lines: LineArrays,
    plan_used: Mapping[tuple[int, int], int],
    catalog: Catalog,
    parties: Sequence[tuple[str, str]],
    plans: PlanColumns,
    qps: QpsArrays,
    tables: KernelTables,
    period: int | None = None,
    *,
    adjustments: Adjustments | None = None,
    qps_missing: tuple[int, int] = (0, 0),
) -> BillColumns:
    """One bill per (party, month) with a counted record or an adjustment (only the bills of ``period``
    when given): tier charges, exact line sums, the one rounding per line, totals, plan balances,
    free quota left.

    ``lines`` and ``plan_used`` must hold the parties' whole history (plans and the verification pool
    span months); ``tables`` are the kernel tables of ``parties`` and ``plans`` (``SetupTables.tables``);
    ``qps`` gives (peak, seconds over) per line, ``qps_missing`` for a counted line it does not list
    (the rerater lists only seconds with two or more calls: (1, 0)); ``adjustments`` are added to
    their bill's total (which then exists even without records of its own). Raises the ``MoneyError``
    of the first amount (tier, line sum, bill total) beyond int64, bills in (party, period) order.
    """
    apis = catalog.apis
    adjustments = adjustments or {}
    verification = np.array([a.kind == "verification" for a in apis], dtype=bool)

    o = np.lexsort((lines.api, lines.period, lines.party))
    party, per, api, m = lines.party[o], lines.period[o], lines.api[o], lines.counts[o]
    pool = _running_total(party, per, np.where(verification[api], m[:, FREE], 0))
    keep = LineArrays(party, per, api, m).counted()
    if period is not None:
        keep &= per == period
    party, per, api, m, pool = party[keep], per[keep], api[keep], m[keep], pool[keep]

    # bills: the (party, period) of each counted line or adjustment, ordered by (account, channel, period)
    n = len(party)
    line_key = party.astype(np.int64) * N_PERIODS + per
    adj_keys = [p * N_PERIODS + q for (p, q), items in adjustments.items() if items and (period is None or q == period)]
    keys = np.union1d(line_key, np.array(adj_keys, dtype=np.int64))
    k_party, k_period = np.divmod(keys, N_PERIODS)
    rank = np.empty(len(parties), dtype=np.int64)
    rank[sorted(range(len(parties)), key=parties.__getitem__)] = np.arange(len(parties))
    border = np.lexsort((k_period, rank[k_party]))
    place = np.empty(len(border), dtype=np.int64)
    place[border] = np.arange(len(border))
    bill_of = place[np.searchsorted(keys, line_key)]
    lo = np.argsort(bill_of, kind="stable")
    party, per, api, m, pool = party[lo], per[lo], api[lo], m[lo], pool[lo]
    bill_of = bill_of[lo]
    n_bills = len(border)
    b_party, b_period = k_party[border], k_period[border]
    line_start = np.searchsorted(bill_of, np.arange(n_bills + 1)).astype(np.int64)

    ch = _charges(catalog, api, m)
    adj_items = [tuple(adjustments.get((p, q), ())) for p, q in zip(b_party.tolist(), b_period.tolist())]
    adjusted = [sum(int(a.amount.scaleb(6)) for a in items) for items in adj_items]
    bill_float = _segment_sums(np.where(ch.risky, 2 * SAFE, ch.amount.astype(np.float64)), line_start)
    bill_float += np.array(adjusted, dtype=np.float64)
    # a bill with adjustments, or one whose sums may pass int64, is summed again in Python integers
    again = np.flatnonzero((np.abs(bill_float) >= SAFE) | np.array([bool(a) for a in adj_items], dtype=bool))
    exact, amount = ch.exact, ch.amount
    bill_total = _segment_sums(amount, line_start)
    if len(again):
        checked = _check_exact(catalog, again[np.argsort(keys[border][again])], line_start, api, ch, adjusted)
        for b, (exacts, rounded, total) in checked.items():  # every one fits int64
            exact[line_start[b]:line_start[b + 1]] = exacts
            amount[line_start[b]:line_start[b + 1]] = rounded
            bill_total[b] = total

    points = np.array([a.shared_points for a in apis], dtype=np.int64)
    over = np.flatnonzero(m[:, SHARED].astype(np.float64) * points[api] >= SAFE)
    for k in over.tolist():
        shared = int(m[k, SHARED]) * int(points[api[k]])
        if shared > INT64_MAX:
            raise MoneyError(f"{apis[int(api[k])].code} shared points of {shared} overflow int64")
    numbers = np.empty((n, len(NUMBERS)), dtype=np.int64)
    numbers[:, 0] = m[:, FAILED] + m[:, REJECTED] + m[:, FREE] + m[:, DEDICATED] + m[:, SHARED] + m[:, TIER0:].sum(axis=1)
    numbers[:, 1] = m[:, FAILED]
    numbers[:, 2] = m[:, REJECTED]
    numbers[:, 3] = m[:, FREE]
    numbers[:, 4] = m[:, DEDICATED]
    numbers[:, 5] = m[:, SHARED]
    numbers[:, 6] = m[:, SHARED] * points[api]
    numbers[:, 7] = m[:, TIER0:].sum(axis=1)

    line_qps = (np.stack(qps.lookup(party, per, api, missing=qps_missing), axis=1) if n
                else np.zeros((0, 2), np.int64))
    free_monthly = np.array([a.free_monthly for a in apis], dtype=np.int64)
    free_left = np.where(verification[api], np.maximum(0, catalog.verification_free_total - pool),
                         np.maximum(0, free_monthly[api] - m[:, FREE]))
    official = np.array([channel == OFFICIAL for _, channel in parties], dtype=np.int8)

    plan_start, plan_index, used_now, remaining = _balances(catalog, tables, plans, plan_used, b_party, b_period)
    adj_start = np.r_[0, np.cumsum([len(items) for items in adj_items], dtype=np.int64)].astype(np.int64)
    return BillColumns(
        bill_party=b_party, bill_period=b_period, bill_total=bill_total,
        bill_official=official[b_party] if n_bills else np.zeros(0, np.int8), line_start=line_start,
        line_api=api, line_numbers=numbers, line_exact=exact, line_amount=amount, line_qps=line_qps,
        line_free_left=free_left, tier_start=ch.tier_start, tier_index=ch.tier_index, tier_calls=ch.tier_calls,
        tier_amount=ch.tier_amount, plan_start=plan_start, plan_index=plan_index, plan_used=used_now,
        plan_remaining=remaining, adj_start=adj_start, adjustments=tuple(a for items in adj_items for a in items),
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
