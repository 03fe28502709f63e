"""Alerts (SPEC §5): finding, in a rated batch, the record that crossed each configured threshold or used a plan up."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..codes import Source
from ..kernel.contract import Batch, KernelTables, Outcomes
from ..model.accounts import Alert, Plan
from ..model.catalog import Catalog
from ..model.money import format_exact, parse_amount


EXHAUSTED = "0"
"""``threshold`` of the event raised when a plan is used up (one per plan, beside the threshold's own)."""


@dataclass(frozen=True)
class AlertEvent:
    """One crossing: raised once per (alert, key) and kept until delivered."""

    account: str
    channel: str
    kind: str
    target: str | None
    threshold: str
    key: str
    """What it is about (plan id, API and month, ...): the same key never fires twice."""
    record_id: str
    ts: int
    message: str


def detect(
    alerts: Sequence[Alert],
    catalog: Catalog,
    tables: KernelTables,
    parties: Sequence[tuple[str, str]],
    plans: Sequence[Plan],
    batch: Batch,
    out: Outcomes,
    record_id: np.ndarray,
    remaining_before: np.ndarray,
    pool_before: np.ndarray,
    free_before: Callable[[int, int, int], int],
    spend_before: Callable[[int, int, int | None], int],
) -> list[AlertEvent]:
    """Events raised by this batch (charge order); the caller drops keys that already fired.

    ``free_before(party, period, api)`` and ``spend_before(party, period, api or None)`` give
    the counters before the batch.
    """
    index = {p: i for i, p in enumerate(parties)}
    events: list[AlertEvent] = []
    for alert in alerts:
        party = index.get((alert.account, alert.channel))
        if party is None:
            continue
        mine = batch.party == party

        def event(key: str, i: int, message: str) -> None:
            events.append(AlertEvent(alert.account, alert.channel, alert.kind, alert.target, alert.threshold,
                                     key, str(record_id[i]), int(batch.ts[i]), message))

        if alert.kind == "plan_remaining":
            for k, plan in enumerate(plans):
                if (plan.account, plan.channel) != (alert.account, alert.channel):
                    continue
                if alert.target is not None and plan.id != alert.target:
                    continue
                rows = np.flatnonzero(mine & (out.plan == k))
                if not len(rows):
                    continue
                units = np.where(out.source[rows] == Source.SHARED, tables.api_points[batch.api[rows]], 1)
                after = int(remaining_before[k]) - np.cumsum(units)
                limit = _plan_limit(alert.threshold, plan.quantity)
                below = np.flatnonzero(after < limit)
                if len(below):
                    i = int(rows[below[0]])
                    event(plan.id, i, f"plan {plan.id} has {int(after[below[0]]):,} left, below {alert.threshold}")
                empty = np.flatnonzero(after == 0)
                if len(empty):  # Alibaba's rule: again at exhaustion, once per plan (whatever alerts name it)
                    i = int(rows[empty[0]])
                    events.append(AlertEvent(alert.account, alert.channel, alert.kind, plan.id, EXHAUSTED,
                                             f"{plan.id}:exhausted", str(record_id[i]), int(batch.ts[i]),
                                             f"plan {plan.id} is used up"))
        elif alert.kind == "free_exhausted":
            free = mine & (out.source == Source.FREE)
            for api_index, api in enumerate(catalog.apis):
                if alert.target is not None and api.code != alert.target:
                    continue
                rows = np.flatnonzero(free & (batch.api == api_index))
                if not len(rows):
                    continue
                if api.kind == "verification":
                    used = int(pool_before[party]) + np.arange(1, len(rows) + 1)
                    hit = np.flatnonzero(used == tables.pool_total)
                    if len(hit):
                        event("verification-pool", int(rows[hit[0]]), "the lifetime verification free pool is used up")
                    continue
                for period in np.unique(batch.period[rows]).tolist():
                    sub = rows[batch.period[rows] == period]
                    used = free_before(party, period, api_index) + np.arange(1, len(sub) + 1)
                    hit = np.flatnonzero(used == api.free_monthly)
                    if len(hit):
                        event(f"{api.code}:{period}", int(sub[hit[0]]), f"the free quota of {api.code} is used up")
        elif alert.kind == "payg_spend":
            limit = parse_amount(alert.threshold)
            api_filter = catalog.index.get(alert.target) if alert.target else None
            rows_all = mine & (out.source == Source.PAYG)
            if api_filter is not None:
                rows_all &= batch.api == api_filter
            rows_all = np.flatnonzero(rows_all)
            for period in np.unique(batch.period[rows_all]).tolist():
                sub = rows_all[batch.period[rows_all] == period]
                spend = spend_before(party, period, api_filter) + np.cumsum(out.amount[sub].astype(object))
                over = np.flatnonzero(spend > limit)
                if len(over):
                    i = int(sub[over[0]])
                    event(f"{alert.target or '*'}:{period}", i,
                          f"PAYG spend this month reached {format_exact(int(spend[over[0]]))}, above {alert.threshold}")
    return events


def _plan_limit(threshold: str, quantity: int) -> int:
    """Remaining below this fires. A percentage p of the quantity q: remaining * 100 < p * q,
    which for integers is remaining < ceil(p * q / 100)."""
    if threshold.endswith("%"):
        return -(-int(threshold[:-1]) * quantity // 100)
    return int(threshold)
