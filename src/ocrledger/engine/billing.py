"""Bills as columns with their names (``BillSet``), and the ``Bill`` objects made of them, whose figures they show."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..model.account_columns import PlanColumns
from ..model.accounts import OFFICIAL
from ..model.bills import Bill, BillLine, PlanBalance, TierCharge
from ..model.catalog import Catalog
from ..model.money import to_cents_decimal, to_decimal
from .bill_columns import BillColumns, period_labels


def bills_from_columns(cols: BillColumns, catalog: Catalog, parties: Sequence[tuple[str, str]],
                       plans: PlanColumns) -> list[Bill]:
    """One ``Bill`` per bill of ``cols`` (``bill_columns``), in its order (by account, channel, period).

    Every figure is the columns'; this only names them: account and channel of ``parties``, API
    codes, tier bounds and unit prices of ``catalog``, plan ids and ends of ``plans`` (the plans the
    columns were made with).
    """
    apis = catalog.apis
    codes = [a.code for a in apis]
    bounds = [(api.tier_from(t), tier.upto) for api in apis for t, tier in enumerate(api.tiers)]
    prices = [to_decimal(tier.price).normalize() for api in apis for tier in api.tiers]
    tiers = [TierCharge(*bounds[index], calls, prices[index], to_decimal(amount)) for index, calls, amount
             in zip(cols.tier_index.tolist(), cols.tier_calls.tolist(), cols.tier_amount.tolist())]
    tier_start = cols.tier_start.tolist()
    line_api = cols.line_api.tolist()
    lines = [
        BillLine(codes[api], *numbers, tuple(tiers[tier_start[k]:tier_start[k + 1]]), to_decimal(exact),
                 to_cents_decimal(amount), peak, over)
        for k, (api, numbers, exact, amount, (peak, over)) in enumerate(zip(
            line_api, cols.line_numbers.tolist(), cols.line_exact.tolist(), cols.line_amount.tolist(),
            cols.line_qps.tolist()))
    ]
    free_left = [(codes[api], left) for api, left in zip(line_api, cols.line_free_left.tolist())]
    shown = cols.plan_index
    ends = catalog.clock.labels(plans.effective_end[shown])
    ids = plans.ids
    balances = [PlanBalance(ids[k], used, remaining, end) for k, used, remaining, end
                in zip(shown.tolist(), cols.plan_used.tolist(), cols.plan_remaining.tolist(), ends)]
    line_start, plan_start, adj_start = cols.line_start.tolist(), cols.plan_start.tolist(), cols.adj_start.tolist()
    currency = catalog.currency
    bills = []
    for b, (party, period, total) in enumerate(zip(cols.bill_party.tolist(), period_labels(cols),
                                                   cols.bill_total.tolist())):
        account, channel = parties[party]
        lo, hi = line_start[b], line_start[b + 1]
        bills.append(Bill(
            account=account,
            channel=channel,
            period=period,
            currency=currency,
            lines=tuple(lines[lo:hi]),
            total=to_cents_decimal(total),
            plans=tuple(balances[plan_start[b]:plan_start[b + 1]]),
            free_remaining=tuple(free_left[lo:hi]) if channel == OFFICIAL else (),
            adjustments=cols.adjustments[adj_start[b]:adj_start[b + 1]],
        ))
    return bills


@dataclass(frozen=True)
class BillSet:
    """Bill columns (``bill_columns``) with what names them: the catalog, the parties their ``bill_party``
    indexes, the plan columns their ``plan_index`` indexes. What every face writes bills.json from
    (``bills.files``) and makes its ``Bill`` objects of (``bills()``)."""

    columns: BillColumns
    catalog: Catalog
    parties: Sequence[tuple[str, str]]
    plans: PlanColumns

    def __len__(self) -> int:
        return len(self.columns)

    def who(self) -> list[tuple[str, str]]:
        """(account, channel) of each bill, in order."""
        return [self.parties[p] for p in self.columns.bill_party.tolist()]

    def bills(self) -> list[Bill]:
        """One ``Bill`` per bill, in the columns' order (``bills_from_columns``)."""
        return bills_from_columns(self.columns, self.catalog, self.parties, self.plans)
