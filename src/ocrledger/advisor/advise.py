"""The plan advisor: the provably cheapest mix of catalog plan offers (plus PAYG) for an account's past usage.

The model (docs/statements.md, "Plan advisor") in short:

* The window is whole months ``M1..Mk`` of one account on one channel. Its **demand** is, per
  month and API, the calls a plan or PAYG had to pay in the actual rating: successful, not
  duplicate, not rejected for activation, beyond the free quota (free quota is used first
  whatever plans exist, so it is the same under any mix). On the marketplace, calls rejected
  for want of a plan are demand too, and a mix must pay for all of them (there is no PAYG).
* A mix is a count of each offer, all **bought at the start of the window**; an offer whose
  validity is shorter than the window is left out. Plans of the same kind, APIs and validity
  pool their capacity (one *dimension*): dedicated capacity is calls of one API, shared capacity
  points.
* A mix is charged **month by month**, and in each month API by API in catalog order:
  dedicated capacity first, then shared pools (shorter validity first, then catalog order),
  whole calls only (``pool // points``), the rest PAYG at the API's tiers (graduated or volume),
  each (month, API) line rounded once as a bill does. Capacity left at the end is not credited.
* The cost of a mix is its offer prices plus that PAYG.

Exactness: every mix has a capacity per dimension; capacity at or above the dimension's whole
demand is equivalent to exactly that demand. ``cheapest[d][c]`` — the least price that buys
exactly ``c`` units in dimension ``d`` — is an exact integer knapsack (binary splitting of the
counts, vectorised). The search then evaluates *every* reachable capacity vector (outer
dimensions enumerated, the largest one vectorised), so the minimum it returns is the optimum of
the model over all mixes, with no monotonicity assumption. The chosen mix is re-rated through
the engine (``rate``) with its plans as real plans, and that figure is reported beside the
model's; they agree whenever a shared pool is not exhausted inside a month while two APIs of
different points draw on it (the engine then serves calls in time order, the model API order).
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import numpy as np

from ..bills.format import aligned_table
from ..codes import Source, Status
from ..engine.rate import as_accounts, as_catalog, rate
from ..errors import OcrledgerError
from ..model.accounts import MARKETPLACE, OFFICIAL, Accounts, Plan
from ..model.catalog import OFFER_DEDICATED, VOLUME, Api, Catalog, PlanOffer
from ..model.clock import parse_period, period_label
from ..model.money import CENT, round_lines, to_decimal

INF = 1 << 62
"""Price of an unreachable capacity or an infeasible mix (a marketplace call left unpaid)."""
MAX_UNITS = 2_000_000
"""Largest capacity table (in units of the offers' common divisor) the exact search accepts."""
MAX_VECTORS = 20_000_000
"""Largest number of capacity vectors the exhaustive search evaluates."""


@dataclass(frozen=True)
class Purchase:
    offer: PlanOffer
    count: int


@dataclass(frozen=True)
class LineCost:
    """One (month, API) under a mix: how its demand was paid and what the PAYG line costs (rounded)."""

    period: str
    api: str
    demand: int
    dedicated: int
    shared: int
    payg: int
    amount: int
    """Micro-units, rounded once like a bill line."""


@dataclass(frozen=True)
class Mix:
    purchases: tuple[Purchase, ...]
    plan_cost: int
    payg_cost: int
    lines: tuple[LineCost, ...]
    feasible: bool = True

    @property
    def total(self) -> int:
        return self.plan_cost + self.payg_cost


@dataclass(frozen=True)
class OfferAlone:
    """The best count of one offer bought alone (plus PAYG), against PAYG only."""

    offer: PlanOffer
    count: int
    total: int
    saving: int
    """Against PAYG only (positive: the offer beats PAYG)."""
    feasible: bool = True
    """False on the marketplace when this offer alone cannot pay for every call."""


@dataclass(frozen=True)
class Advice:
    account: str
    channel: str
    periods: tuple[str, ...]
    currency: str
    demand: tuple[tuple[str, str, int, int], ...]
    """(period, API, calls, points) the mix must pay for."""
    actual_bills: int
    actual_plans: tuple[tuple[str, int | None], ...]
    """Plans the account bought in the window (id, price or None if the accounts file gives none)."""
    baseline: Mix
    """PAYG only (no plans); infeasible on the marketplace when there is demand."""
    best: Mix
    verified: int | None
    """The engine's cost of ``best``: its plans re-rated as real plans, plus their prices."""
    alone: tuple[OfferAlone, ...]
    skipped: tuple[tuple[str, str], ...]
    """Offers left out, with why."""
    vectors: int
    """Capacity vectors evaluated (every reachable one)."""
    notes: tuple[str, ...] = field(default=())

    @property
    def actual(self) -> int:
        return self.actual_bills + sum(p or 0 for _, p in self.actual_plans)

    @property
    def saving(self) -> int:
        return self.actual - self.best.total

    def to_dict(self) -> dict[str, Any]:
        def money(micro: int | None) -> str | None:
            return None if micro is None else str(to_decimal(micro))

        def mix(m: Mix) -> dict[str, Any]:
            return {
                "feasible": m.feasible,
                "plans": [{"offer": p.offer.name, "count": p.count, "price": money(p.offer.price)} for p in m.purchases],
                "plan_cost": money(m.plan_cost),
                "payg_cost": money(m.payg_cost) if m.feasible else None,
                "total": money(m.total) if m.feasible else None,
                "lines": [
                    {"period": ln.period, "api": ln.api, "demand": ln.demand, "dedicated": ln.dedicated,
                     "shared": ln.shared, "payg": ln.payg, "amount": money(ln.amount)}
                    for ln in m.lines
                ],
            }

        return {
            "account": self.account,
            "channel": self.channel,
            "months": list(self.periods),
            "currency": self.currency,
            "demand": [{"period": p, "api": a, "calls": c, "points": pt} for p, a, c, pt in self.demand],
            "actual": {
                "bills": money(self.actual_bills),
                "plans": [{"id": i, "price": money(p)} for i, p in self.actual_plans],
                "total": money(self.actual),
            },
            "payg_only": mix(self.baseline),
            "best": mix(self.best),
            "verified_total": money(self.verified),
            "saving": money(self.saving),
            "offers_alone": [
                {"offer": a.offer.name, "count": a.count, "total": money(a.total) if a.feasible else None,
                 "saving": money(a.saving)}
                for a in self.alone
            ],
            "skipped_offers": [{"offer": n, "why": w} for n, w in self.skipped],
            "capacity_vectors_evaluated": self.vectors,
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def text(self) -> str:
        cur = self.currency
        span = self.periods[0] if len(self.periods) == 1 else f"{self.periods[0]}..{self.periods[-1]}"
        out = [f"Plan advice for account {self.account} ({self.channel}), {span}, {cur}", ""]
        if not self.demand:
            out.append("No calls in the window needed a plan or PAYG: nothing to buy.")
        else:
            out.append("Usage a plan or PAYG had to pay (beyond the free quota):")
            rows = [[p, a, f"{c:,}", f"{pt:,}"] for p, a, c, pt in self.demand]
            out += ["  " + r for r in aligned_table(["Month", "API", "Calls", "Shared points"], rows, left=2)]
        out.append("")
        plans_bought = sum(p or 0 for _, p in self.actual_plans)
        out.append(
            f"What the account paid:  {cur} {_m(self.actual)}  (bills {_m(self.actual_bills)} + plans bought in the "
            f"window {_m(plans_bought)})"
        )
        if self.baseline.feasible:
            out.append(f"Pay-as-you-go only:     {cur} {_m(self.baseline.total)}")
        else:
            out.append("Pay-as-you-go only:     not possible (the marketplace has no PAYG)")
        if not self.best.feasible:
            out.append("No mix of the offers can pay for every call (the marketplace has no PAYG).")
            return "\n".join(out) + "\n"
        out.append(
            f"Cheapest mix:           {cur} {_m(self.best.total)}  (plans {_m(self.best.plan_cost)} + PAYG "
            f"{_m(self.best.payg_cost)})"
        )
        if self.best.purchases:
            for p in self.best.purchases:
                out.append(f"  {p.count} x {p.offer.name} at {cur} {_m(p.offer.price)}")
        else:
            out.append("  no plan: pay-as-you-go is already the cheapest")
        pct = f" ({Decimal(abs(self.saving) * 100) / Decimal(self.actual):.1f}%)" if self.actual > 0 else ""
        word = "Saving" if self.saving >= 0 else "Extra cost"
        out.append(f"{word} against what was paid: {cur} {_m(abs(self.saving))}{pct}")
        if self.verified is not None:
            same = "the same" if self.verified == self.best.total else "DIFFERENT (see the notes)"
            out.append(
                f"Re-rated through the engine with these plans bought on {self.periods[0]}-01: "
                f"{cur} {_m(self.verified)} ({same})"
            )
        if self.best.purchases and self.best.lines:
            out += ["", "Month by month with the cheapest mix:"]
            rows = [
                [ln.period, ln.api, f"{ln.demand:,}", f"{ln.dedicated:,}", f"{ln.shared:,}", f"{ln.payg:,}", _m(ln.amount)]
                for ln in self.best.lines
            ]
            out += [
                "  " + r
                for r in aligned_table(["Month", "API", "Calls", "Dedicated", "Shared", "PAYG", f"PAYG {cur}"], rows, left=2)
            ]
        if self.alone:
            out += ["", "Each offer on its own (best count, plus PAYG), against PAYG only:"]
            rows = [
                [a.offer.name, f"{a.count:,}", _m(a.total) if a.feasible else "-",
                 (f"saves {_m(a.saving)}" if a.saving > 0 else "does not beat PAYG" if a.feasible
                  else "cannot pay for every call")]
                for a in self.alone
            ]
            out += ["  " + r for r in aligned_table(["Offer", "Count", f"Total {cur}", "Against PAYG"], rows)]
        for name, why in self.skipped:
            out.append(f"Left out: {name}: {why}")
        out += [
            "",
            f"Why this is the cheapest: every reachable plan capacity was tried ({self.vectors:,} combinations, each "
            "priced at the least it costs to buy exactly that capacity), with the calls charged month by month: "
            "free quota, dedicated, shared, then PAYG tiers. Plans are bought at the start of the window and "
            "what is left at its end is not credited.",
        ]
        out += self.notes
        return "\n".join(out) + "\n"


def _m(micro: int) -> str:
    """Micro-units as an amount: two places when whole cents, else the exact places."""
    d = to_decimal(micro)
    return f"{d.quantize(Decimal('0.01')):,}" if micro % CENT == 0 else f"{d.normalize():,}"


def parse_months(text: str) -> list[int]:
    """``"2026-08..2026-10"`` (or one ``"2026-10"``) -> month indices, at most 120."""
    first, sep, last = text.partition("..")
    a = parse_period(first, what="first month")
    b = parse_period(last, what="last month") if sep else a
    if b < a:
        raise OcrledgerError(f"months {text!r}: the last month is before the first")
    if b - a >= 120:
        raise OcrledgerError(f"months {text!r}: at most 120 months")
    return list(range(a, b + 1))


# --- the exact search -------------------------------------------------------------------------


@dataclass
class _Dim:
    """One capacity dimension: offers of the same kind, APIs and validity (they pool)."""

    kind: str
    apis: tuple[str, ...]
    validity: int
    offers: list[PlanOffer]
    unit: int = 1
    need: int = 0
    """Capacity that pays for every call it can (calls or points); more changes nothing."""
    values: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    prices: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    h: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))

    def prepare(self) -> None:
        """``h[c]``: least price of exactly ``c`` units (INF if unreachable); reachable capacities below
        ``need`` plus one capped value (the cheapest way to reach at least ``need``)."""
        self.unit = math.gcd(*[o.quantity for o in self.offers])
        n_need = -(-self.need // self.unit)
        size = n_need + max(o.quantity for o in self.offers) // self.unit
        if size > MAX_UNITS:
            raise OcrledgerError(
                f"the offers for {'/'.join(self.apis) if len(self.apis) < 3 else 'shared plans'} would need a table of "
                f"{size:,} capacities (their sizes share only a unit of {self.unit:,}); at most {MAX_UNITS:,}"
            )
        h = np.full(size + 1, INF, dtype=np.int64)
        h[0] = 0
        for offer in self.offers:
            q = offer.quantity // self.unit
            most = size // q
            k = 1
            while most > 0:  # binary splitting: items of 1, 2, 4, ... copies cover every count up to `most`
                take = min(k, most)
                w, p = q * take, offer.price * take
                if p < INF:
                    cand = np.minimum(h[:-w] + p, INF) if w <= size else np.empty(0, dtype=np.int64)
                    np.minimum(h[w:], cand, out=h[w:])
                most -= take
                k *= 2
        self.h = h
        below = np.flatnonzero(h[:n_need] < INF)
        top = int(h[n_need:].min()) if n_need <= size else INF
        self.values = np.concatenate([below * self.unit, [self.need]]).astype(np.int64)
        self.prices = np.concatenate([h[below], [top]]).astype(np.int64)
        if top >= INF:  # pragma: no cover - the table always reaches past need
            self.values, self.prices = self.values[:-1], self.prices[:-1]

    def buy(self, capacity: int) -> list[Purchase]:
        """A cheapest multiset of offers with exactly ``capacity`` (or, for the capped value, at least need)."""
        n_need = -(-self.need // self.unit)
        c = capacity // self.unit
        if capacity >= self.need and self.need > 0:
            c = n_need + int(np.argmin(self.h[n_need:]))
        counts = [0] * len(self.offers)
        while c > 0:
            for k, offer in enumerate(self.offers):
                q = offer.quantity // self.unit
                if q <= c and self.h[c - q] < INF and self.h[c - q] + offer.price == self.h[c]:
                    counts[k] += 1
                    c -= q
                    break
            else:  # pragma: no cover - h[c] is always reached by some offer
                raise OcrledgerError("internal error: cannot rebuild the plan mix")
        return [Purchase(o, n) for o, n in zip(self.offers, counts) if n]


class _Model:
    """Demand of one account in a window, and the month-by-month charging of a capacity vector."""

    def __init__(self, catalog: Catalog, periods: Sequence[int], demand: dict[tuple[int, str], int], market: bool):
        self.catalog = catalog
        self.periods = list(periods)
        self.market = market
        self.apis = [a for a in catalog.apis if any(demand.get((p, a.code), 0) for p in periods)]
        self.demand = demand

    def charge(self, dims: Sequence[_Dim], caps: Sequence[np.ndarray | int], size: int) -> tuple[np.ndarray, list[Any]]:
        """PAYG cost (micro-units, INF if infeasible) of ``size`` capacity vectors at once, and per-line detail."""
        ded = {d.apis[0]: np.broadcast_to(np.asarray(c, dtype=np.int64), (size,)).copy()
               for d, c in zip(dims, caps) if d.kind == OFFER_DEDICATED}
        pools = [(d, np.broadcast_to(np.asarray(c, dtype=np.int64), (size,)).copy())
                 for d, c in zip(dims, caps) if d.kind != OFFER_DEDICATED]
        pools.sort(key=lambda dc: dc[0].validity)  # stable: catalog order within a validity
        total = np.zeros(size, dtype=np.int64)
        bad = np.zeros(size, dtype=bool)
        detail = []
        for period in self.periods:
            for api in self.apis:
                rest = np.full(size, self.demand.get((period, api.code), 0), dtype=np.int64)
                if not rest.any():
                    continue
                dedicated = shared = np.zeros(size, dtype=np.int64)
                if api.code in ded and api.dedicated:
                    dedicated = np.minimum(rest, ded[api.code])
                    ded[api.code] -= dedicated
                    rest = rest - dedicated
                shared = np.zeros(size, dtype=np.int64)
                if api.shared:
                    for dim, left in pools:
                        if api.code in dim.apis:
                            take = np.minimum(rest, left // api.shared_points)
                            left -= take * api.shared_points
                            shared = shared + take
                            rest = rest - take
                if self.market:
                    bad |= rest > 0
                    amount = np.zeros(size, dtype=np.int64)
                else:
                    amount = round_lines(payg_cost(api, rest), api.rounding)
                    total += amount
                detail.append((period_label(period), api.code, dedicated, shared, rest, amount))
        total[bad] = INF
        return total, detail


def payg_cost(api: Api, calls: np.ndarray) -> np.ndarray:
    """Exact PAYG charge (micro-units) of ``calls`` PAYG calls in one month, graduated or volume."""
    calls = np.asarray(calls, dtype=np.int64)
    if api.tier_mode == VOLUME:
        bounds = np.array([t.upto if t.upto is not None else INF for t in api.tiers], dtype=np.int64)
        prices = np.array([t.price for t in api.tiers], dtype=np.int64)
        return calls * prices[np.searchsorted(bounds, calls, side="left")]
    cost = np.zeros_like(calls)
    low = 0
    for tier in api.tiers:
        high = tier.upto if tier.upto is not None else INF
        cost += np.clip(calls - low, 0, high - low) * tier.price
        low = high
    return cost


def advise(
    calls: Any,
    account: str,
    months: str | Sequence[int],
    catalog: Catalog | str | Path | None = None,
    accounts: Accounts | str | Path | None = None,
    *,
    channel: str = OFFICIAL,
    kernel: str | ModuleType | None = None,
    verify: bool = True,
) -> Advice:
    """Find the cheapest mix of the catalog's plan offers for ``account``'s usage in ``months``.

    ``months`` is ``"YYYY-MM..YYYY-MM"`` (or one month) or a list of month indices. The calls are
    rated as they are (``rate``) to learn what the account paid and what had to be paid; the
    search is exact for the model in this module's docstring. Raises ``OcrledgerError`` on bad input.
    """
    cat = as_catalog(catalog)
    acc = as_accounts(accounts, cat)
    periods = parse_months(months) if isinstance(months, str) else list(months)
    result = rate(calls, cat, acc, kernel=kernel)
    cols = result.calls
    labels = [period_label(p) for p in periods]
    party = (cols["account"] == account) & (cols["channel"] == channel)
    if not party.any():
        raise OcrledgerError(f"account {account!r} has no calls on the {channel} channel")
    in_window = party & np.isin(cols["period"], labels)
    status, source = cols["status"], cols["source"]
    paid = (status == Status.CHARGED) & np.isin(source, [Source.DEDICATED, Source.SHARED, Source.PAYG])
    market = channel == MARKETPLACE
    needs = in_window & (paid | ((status == Status.REJECTED_NO_PLAN) if market else False))
    demand: dict[tuple[int, str], int] = {}
    keys, counts = np.unique(np.char.add(np.char.add(cols["period"][needs], "|"), cols["api"][needs]), return_counts=True)
    for key, n in zip(keys.tolist(), counts.tolist()):
        label, code = key.split("|", 1)
        demand[(parse_period(label), code)] = int(n)

    # What the account paid: its bills in the window plus plans bought in it.
    clock = cat.clock
    w_start, w_end = int(clock.month_starts[periods[0]]), int(clock.month_starts[periods[-1] + 1])
    actual_bills = sum(
        int(b.total.scaleb(6)) for b in result.bills
        if b.account == account and b.channel == channel and b.period in labels
    )
    mine = [p for p in acc.plans if p.account == account and p.channel == channel]
    bought = tuple((p.id, p.price) for p in mine if w_start <= p.start < w_end)
    notes: list[str] = []
    unpriced = [i for i, price in bought if price is None]
    if unpriced:
        notes.append(f"Note: plan(s) {', '.join(unpriced)} give no price in the accounts file; counted as 0.")
    older = sorted(set(cols["plan"][in_window & paid & (cols["plan"] != "")].tolist()) - {i for i, _ in bought})
    if older:
        notes.append(
            f"Note: plan(s) {', '.join(older)}, bought before the window, paid for some of its calls; their price is "
            "not in what the account paid, so the saving shown is smaller than it would be with them counted."
        )

    # Dimensions: offers grouped by kind, APIs and validity, keeping those that can pay for some demand.
    used_apis = {code for (_, code) in demand}
    skipped: list[tuple[str, str]] = []
    dims: dict[tuple[str, tuple[str, ...], int], _Dim] = {}
    for offer in cat.plan_offers:
        if offer.validity_months < len(periods):
            skipped.append((offer.name, f"valid {offer.validity_months} months, shorter than the {len(periods)}-month window"))
            continue
        if not used_apis & set(offer.apis):
            skipped.append((offer.name, "pays for no API with calls to pay in the window"))
            continue
        key = (offer.kind, offer.apis, offer.validity_months)
        dims.setdefault(key, _Dim(offer.kind, offer.apis, offer.validity_months, [])).offers.append(offer)
    model = _Model(cat, periods, demand, market)
    points = {a.code: a.shared_points for a in cat.apis}
    dim_list = list(dims.values())
    for dim in dim_list:
        if dim.kind == OFFER_DEDICATED:
            dim.need = sum(n for (_, c), n in demand.items() if c == dim.apis[0])
        else:
            dim.need = sum(n * points[c] for (_, c), n in demand.items() if c in dim.apis and cat.api(c).shared)
        dim.prepare()

    best, vectors = _search(model, dim_list)
    baseline = _mix(model, dim_list, [0] * len(dim_list))
    alone = []
    for dim in dim_list:
        for offer in dim.offers:  # the same search with this one offer on sale
            single = _Dim(dim.kind, dim.apis, dim.validity, [offer], need=dim.need)
            single.prepare()
            choice, _ = _search(model, [single])
            count = sum(p.count for p in choice.purchases)
            saving = baseline.total - choice.total if baseline.feasible and choice.feasible else 0
            alone.append(OfferAlone(offer, count, choice.total, saving, choice.feasible))
    verified = _verify(cat, acc, cols, account, channel, periods, best, dim_list, kernel) if verify and best.feasible else None
    if verified is not None and verified != best.total:
        notes.append(
            "Note: the engine charges calls in time order; where a shared pool runs out inside a month while APIs of "
            "different points draw on it, its split between those APIs (and so the PAYG) can differ from the model's "
            "API-by-API order. The model's figure is the one optimised."
        )
    demand_rows = tuple(
        (period_label(p), a.code, demand[(p, a.code)], demand[(p, a.code)] * a.shared_points)
        for p in periods for a in cat.apis if demand.get((p, a.code))
    )
    return Advice(
        account, channel, tuple(labels), cat.currency, demand_rows, actual_bills, bought, baseline, best, verified,
        tuple(alone), tuple(skipped), vectors, tuple(notes),
    )


def _search(model: _Model, dims: list[_Dim]) -> tuple[Mix, int]:
    """Evaluate every reachable capacity vector; the largest dimension is vectorised, the others enumerated."""
    if not dims:
        return _mix(model, [], []), 1
    inner = max(range(len(dims)), key=lambda k: len(dims[k].values))
    outer = [k for k in range(len(dims)) if k != inner]
    n_vectors = math.prod(len(d.values) for d in dims)
    if n_vectors > MAX_VECTORS:
        raise OcrledgerError(f"{n_vectors:,} plan capacity combinations to try; at most {MAX_VECTORS:,}")
    best_cost, best_caps = INF, None
    for pick in itertools.product(*[range(len(dims[k].values)) for k in outer]):
        caps: list[Any] = [None] * len(dims)
        fixed = 0
        for k, j in zip(outer, pick):
            caps[k] = int(dims[k].values[j])
            fixed += int(dims[k].prices[j])
        if fixed >= best_cost:
            continue
        caps[inner] = dims[inner].values
        payg, _ = model.charge(dims, caps, len(dims[inner].values))
        cost = np.where(payg >= INF, INF, np.minimum(payg + dims[inner].prices + fixed, INF))
        j = int(np.argmin(cost))  # first minimum: the cheapest capacity among equal totals
        if int(cost[j]) < best_cost:
            best_cost = int(cost[j])
            best_caps = [c if k != inner else int(dims[inner].values[j]) for k, c in enumerate(caps)]
    if best_caps is None:  # every vector infeasible (marketplace, offers cannot cover)
        top = [int(d.values[-1]) for d in dims]
        mix = _mix(model, dims, top)
        return Mix(mix.purchases, mix.plan_cost, 0, mix.lines, feasible=False), n_vectors
    return _mix(model, dims, best_caps), n_vectors


def _mix(model: _Model, dims: list[_Dim], caps: list[int]) -> Mix:
    purchases = [p for d, c in zip(dims, caps) for p in d.buy(c)] if dims else []
    payg, detail = model.charge(dims, caps, 1)
    lines = tuple(
        LineCost(period, code, int(ded[0] + sh[0] + rest[0]), int(ded[0]), int(sh[0]), int(rest[0]), int(amount[0]))
        for period, code, ded, sh, rest, amount in detail
    )
    feasible = int(payg[0]) < INF
    plan_cost = sum(p.offer.price * p.count for p in purchases)
    return Mix(tuple(purchases), plan_cost, int(payg[0]) if feasible else 0, lines, feasible)


def _verify(
    cat: Catalog, acc: Accounts, cols: dict[str, np.ndarray], account: str, channel: str, periods: list[int],
    mix: Mix, dims: list[_Dim], kernel: str | ModuleType | None,
) -> int:
    """Re-rate the account's calls with the mix as real plans (bought at the window start, no other plan)."""
    clock = cat.clock
    start = int(clock.month_starts[periods[0]])
    plans: list[Plan] = []
    rank = {id(d): k for k, d in enumerate(sorted(dims, key=lambda d: d.validity))}
    for purchase in mix.purchases:
        dim = next(d for d in dims if purchase.offer in d.offers)
        months = purchase.offer.validity_months
        if months % 12 == 0:  # whole years: the same rule as a plan without an end (29 Feb -> 28 Feb)
            end = start
            for _ in range(months // 12):
                end = clock.plus_one_year(end)
        else:
            end = int(clock.month_starts[min(periods[0] + months, len(clock.month_starts) - 1)])
        for n in range(purchase.count):
            plans.append(Plan(
                f"advice-{rank[id(dim)]:02d}-{len(plans):04d}", account, channel, purchase.offer.kind,
                purchase.offer.apis, purchase.offer.quantity, start, end, purchase.offer.price,
            ))
    me = [a for a in acc.accounts if a.id == account and a.channel == channel]
    trial = Accounts(tuple(me), tuple(plans), source="<advice>")
    keep = (cols["account"] == account) & (cols["channel"] == channel) & (cols["status"] != Status.REJECTED_CREDENTIAL)
    calls = {
        "record_id": cols["record_id"][keep],
        "account": cols["account"][keep],
        "channel": cols["channel"][keep],
        "api": cols["api"][keep],
        "ts": cols["ts"][keep],
        "success": (cols["status"][keep] != Status.FAILED).astype(np.int8),
    }
    labels = {period_label(p) for p in periods}
    bills = rate(calls, cat, trial, kernel=kernel).bills
    return sum(int(b.total.scaleb(6)) for b in bills if b.period in labels) + mix.plan_cost


__all__ = ["Advice", "Mix", "OfferAlone", "Purchase", "advise", "parse_months", "payg_cost"]
