"""Why one call cost what it did: its source, plan remainders, free quota, PAYG position — or why it was not charged.

``explain()`` rates the whole input with ``rate()`` (so the answer is the one the bills were built
from) and then reads the per-call outcome columns, which are in charge order: the state just
before a call is what the calls of the same party before it consumed. Nothing here re-decides a
charge; it recounts the counters the kernel kept (free calls used, plan units taken, PAYG
positions) up to that call, from the kernel's own outcomes.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import numpy as np

from ..codes import Source, Status
from ..errors import OcrledgerError
from ..model.accounts import MARKETPLACE, Accounts, Plan
from ..model.catalog import VERIFICATION, VOLUME, Catalog
from ..model.display import printable
from ..model.money import to_decimal
from .rate import as_accounts, as_catalog, rate
from .tables import plan_order

_SOURCE_WORDS = {
    Source.FREE: "the free quota",
    Source.DEDICATED: "a dedicated resource plan",
    Source.SHARED: "a shared resource plan",
    Source.PAYG: "pay-as-you-go",
}


@dataclass(frozen=True)
class PlanCheck:
    """One plan that could cover the call's API, as it stood when the call came."""

    id: str
    kind: str
    need: int
    """Units the call takes from it: 1 call (dedicated) or the API's shared points (shared)."""
    remaining_before: int
    remaining_after: int
    verdict: str
    """'paid', 'not started', 'ended', 'refunded', 'too little left', 'not reached' (an earlier plan paid),
    'not tried' (the call was paid before plans were reached, or was not charged)."""


@dataclass(frozen=True)
class Explanation:
    """Everything about one call record's charge; ``text()`` says it in sentences."""

    record_id: str
    account: str
    channel: str
    api: str
    api_name: str
    ts: str
    period: str
    status: str
    source: str
    amount_exact: Decimal
    currency: str
    plan: str | None = None
    plan_before: int | None = None
    plan_after: int | None = None
    free_kind: str | None = None
    """'monthly' (a recognition API's calls this month), 'pool' (verification lifetime pool), None (marketplace)."""
    free_total: int | None = None
    free_used_before: int | None = None
    free_left_after: int | None = None
    payg_position: int | None = None
    tier: int | None = None
    """1-based PAYG tier the call was priced at."""
    tier_from: int | None = None
    tier_to: int | None = None
    unit_price: Decimal | None = None
    tier_mode: str | None = None
    month_payg_calls: int | None = None
    """PAYG calls of this API in this month in all (decides the tier under volume pricing)."""
    duplicate_of: str | None = None
    """Instant of the first record with the same id on this channel, for a duplicate."""
    plans: tuple[PlanCheck, ...] = ()
    reasons: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["amount_exact"] = str(self.amount_exact)
        data["unit_price"] = None if self.unit_price is None else str(self.unit_price)
        data["plans"] = [asdict(p) for p in self.plans]
        data["reasons"] = list(self.reasons)
        return data

    def text(self) -> str:
        head = (
            f"Record {self.record_id}: {self.api} ({self.api_name}), account {self.account} on the {self.channel} "
            f"channel, at {self.ts} (month {self.period})"
        )
        # ids are shown with control characters escaped: an id cannot send escape sequences to the terminal
        return "\n".join(printable(line) for line in [head, *("  " + r for r in self.reasons)]) + "\n"


def explain(
    calls: Any,
    record_id: str,
    catalog: Catalog | str | Path | None = None,
    accounts: Accounts | str | Path | None = None,
    *,
    channel: str | None = None,
    kernel: str | ModuleType | None = None,
) -> list[Explanation]:
    """Explain every occurrence of ``record_id`` (on ``channel`` if given), in charge order.

    A record id is unique per channel, so there is one explanation per channel it was charged on,
    plus one per repeat (a duplicate). Raises ``OcrledgerError`` if the id is not in the calls.
    """
    cat = as_catalog(catalog)
    acc = as_accounts(accounts, cat)
    result = rate(calls, cat, acc, kernel=kernel)
    cols = result.calls
    hits = np.flatnonzero(cols["record_id"] == record_id)
    if channel is not None:
        hits = hits[cols["channel"][hits] == channel]
    if len(hits) == 0:
        where = f" on the {channel} channel" if channel else ""
        raise OcrledgerError(f"record {record_id!r} is not in the calls{where}")
    return [_explain_one(int(i), cols, cat, acc) for i in hits]


def _explain_one(i: int, cols: dict[str, np.ndarray], cat: Catalog, acc: Accounts) -> Explanation:
    account, channel, code = str(cols["account"][i]), str(cols["channel"][i]), str(cols["api"][i])
    api = cat.api(code)
    ts = int(cols["ts"][i])
    period = str(cols["period"][i])
    status = Status(int(cols["status"][i]))
    source = Source(int(cols["source"][i]))
    clock = cat.clock
    cur = cat.currency
    amount = to_decimal(int(cols["amount"][i]))
    party = (cols["account"] == account) & (cols["channel"] == channel)
    before = party.copy()
    before[i:] = False  # charge order: these calls were rated before this one
    charged = cols["status"] == Status.CHARGED
    base: dict[str, Any] = dict(
        record_id=str(cols["record_id"][i]), account=account, channel=channel, api=code, api_name=api.name,
        ts=clock.label(ts), period=period, status=status.name.lower(), source=source.name.lower(),
        amount_exact=amount, currency=cur,
    )
    reasons: list[str] = []

    # Free quota as it stood (counted from the free-paid calls before this one).
    free: dict[str, Any] = {}
    if channel != MARKETPLACE:
        if api.kind == VERIFICATION:
            verif = np.isin(cols["api"], [a.code for a in cat.apis if a.kind == VERIFICATION])
            used = int(np.count_nonzero(before & verif & (cols["source"] == Source.FREE)))
            total = cat.verification_free_total
            free = dict(free_kind="pool", free_total=total, free_used_before=used)
            pool_words = f"the account's lifetime pool of {total:,} free verification calls"
        else:
            same = before & (cols["api"] == code) & (cols["period"] == period)
            used = int(np.count_nonzero(same & (cols["source"] == Source.FREE)))
            total = api.free_monthly
            free = dict(free_kind="monthly", free_total=total, free_used_before=used)
            pool_words = f"{code}'s {total:,} free calls of {period}"
        took = 1 if source == Source.FREE else 0
        free["free_left_after"] = max(0, total - used - took)
    plans = _plan_checks(i, cols, cat, acc, before, account, channel, code, ts, status, source)
    paid = next((p for p in plans if p.verdict == "paid"), None)

    if status == Status.DUPLICATE:
        first = np.flatnonzero(
            (cols["record_id"] == cols["record_id"][i]) & (cols["channel"] == channel) & (cols["status"] != Status.DUPLICATE)
        )
        first_at = clock.label(int(cols["ts"][first[0]])) if len(first) else None
        reasons.append(
            f"DUPLICATE: record id {base['record_id']} was already seen on the {channel} channel"
            + (f" (the record at {first_at}, which is the one charged)" if first_at else "")
            + ". A record is never charged twice: this copy costs nothing, consumes nothing and appears in no count."
        )
        return Explanation(**base, duplicate_of=first_at, plans=plans, reasons=tuple(reasons))
    if status == Status.FAILED:
        reasons.append(
            "FAILED: the call did not succeed (success = 0). Failed calls consume no free quota and no plan and "
            f"cost nothing; the bill counts it under 'failed'. {cur} 0."
        )
        return Explanation(**base, **free, plans=plans, reasons=tuple(reasons))
    if status == Status.REJECTED_INACTIVE:
        reasons.append("REJECTED (not billed): " + _inactive_reason(acc, account, channel, code, ts, clock))
        return Explanation(**base, plans=plans, reasons=tuple(reasons))
    if status == Status.REJECTED_NO_PLAN:
        reasons.append(
            "REJECTED (not billed): the marketplace channel has no free quota and no pay-as-you-go, and no "
            "resource plan could pay for this call."
        )
        reasons += _plan_lines(plans, code, none_words="The account has no plan that covers this API on the marketplace.")
        return Explanation(**base, plans=plans, reasons=tuple(reasons))
    if status == Status.REJECTED_CREDENTIAL:
        reasons.append("REJECTED (not billed): the call's credential was unknown or not valid at the call's time.")
        return Explanation(**base, plans=plans, reasons=tuple(reasons))
    if status != Status.CHARGED:
        raise OcrledgerError(f"record {base['record_id']}: unexpected status {status.name}")

    reasons.append(f"PAID BY {_SOURCE_WORDS[source].upper()}: {cur} {amount} (exact; lines are rounded on the bill).")
    if channel == MARKETPLACE:
        reasons.append("The marketplace channel has no free quota, so plans come first.")
    elif source == Source.FREE:
        reasons.append(
            f"Free quota comes first: {free['free_used_before']:,} of {pool_words} were used before this call; "
            f"{free['free_left_after']:,} left after it."
        )
    else:
        reasons.append(f"Free quota comes first, but all of {pool_words} were used before this call.")
    extra: dict[str, Any] = {}
    if source in (Source.DEDICATED, Source.SHARED):
        if paid is None:  # pragma: no cover - the outcome names a plan of the party
            raise OcrledgerError(f"record {base['record_id']}: the plan that paid is not in the accounts")
        unit = "calls" if paid.kind == "dedicated" else "points"
        reasons += _plan_lines(plans, code, none_words="")
        reasons.append(
            f"Plan {paid.id} ({paid.kind}) paid: {paid.remaining_before:,} {unit} left before, it took "
            f"{paid.need:,}, {paid.remaining_after:,} left after."
        )
        extra = dict(plan=paid.id, plan_before=paid.remaining_before, plan_after=paid.remaining_after)
    elif source == Source.PAYG:
        reasons += _plan_lines(plans, code, none_words="No resource plan of the account covers this API.")
        same = party & (cols["api"] == code) & (cols["period"] == period) & charged & (cols["source"] == Source.PAYG)
        position = int(np.count_nonzero(same[: i + 1]))
        month_total = int(np.count_nonzero(same))
        t = int(cols["tier"][i])
        tier = api.tiers[t]
        t_from, t_to = api.tier_from(t), tier.upto
        price = to_decimal(tier.price).normalize()
        bounds = f"{t_from:,} – {t_to:,}" if t_to is not None else f"{t_from:,} and up"
        if api.tier_mode == VOLUME:
            reasons.append(
                f"Pay-as-you-go, volume pricing: it is PAYG call {position:,} of {month_total:,} of {code} in {period}; "
                f"the month's total falls in tier {t + 1} ({bounds}), so every PAYG call of the month costs "
                f"{cur} {price}."
            )
        else:
            reasons.append(
                f"Pay-as-you-go, graduated pricing: it is PAYG call {position:,} of {code} in {period} (free and plan "
                f"calls do not count), in tier {t + 1} ({bounds}) at {cur} {price} a call."
            )
        extra = dict(
            payg_position=position, tier=t + 1, tier_from=t_from, tier_to=t_to, unit_price=price,
            tier_mode=api.tier_mode, month_payg_calls=month_total,
        )
    return Explanation(**base, **free, **extra, plans=plans, reasons=tuple(reasons))


def _plan_checks(
    i: int, cols: dict[str, np.ndarray], cat: Catalog, acc: Accounts, before: np.ndarray,
    account: str, channel: str, code: str, ts: int, status: Status, source: Source,
) -> tuple[PlanCheck, ...]:
    """The party's plans that cover the API, dedicated first, each level in the kernel's expire-first order."""
    api = cat.api(code)
    mine = [p for p in plan_order(acc.plans) if p.account == account and p.channel == channel and code in p.apis]
    ordered = [p for p in mine if p.kind == "dedicated" and api.dedicated] + [
        p for p in mine if p.kind == "shared" and api.shared
    ]
    points = {a.code: a.shared_points for a in cat.apis}
    paid_plan = str(cols["plan"][i]) or None
    tried = status == Status.CHARGED and source != Source.FREE or status == Status.REJECTED_NO_PLAN
    checks = []
    reached_payer = False
    for plan in ordered:
        need = 1 if plan.kind == "dedicated" else api.shared_points
        used = _units_before(cols, before, plan, points)
        left = plan.quantity - used
        if plan.id == paid_plan:
            verdict, after, reached_payer = "paid", left - need, True
        else:
            after = left
            if not tried:
                verdict = "not tried"
            elif reached_payer:
                verdict = "not reached"
            elif ts < plan.start:
                verdict = "not started"
            elif ts >= plan.effective_end:
                verdict = "refunded" if plan.refunded is not None and plan.refunded < plan.end else "ended"
            elif left < need:
                verdict = "too little left"
            else:  # pragma: no cover - the kernel would have used it
                raise OcrledgerError(f"plan {plan.id} could have paid record {cols['record_id'][i]} but did not")
        checks.append(PlanCheck(plan.id, plan.kind, need, left, after, verdict))
    return tuple(checks)


def _units_before(cols: dict[str, np.ndarray], before: np.ndarray, plan: Plan, points: dict[str, int]) -> int:
    paid = before & (cols["plan"] == plan.id)
    if plan.kind == "dedicated":
        return int(np.count_nonzero(paid))
    codes, counts = np.unique(cols["api"][paid], return_counts=True)
    return sum(points[str(c)] * int(n) for c, n in zip(codes, counts))


def _plan_lines(plans: Sequence[PlanCheck], code: str, *, none_words: str) -> list[str]:
    lines = []
    if not plans and none_words:
        lines.append(none_words)
    for p in plans:
        unit = "calls" if p.kind == "dedicated" else "points"
        if p.verdict in ("paid", "not reached"):
            continue
        why = {
            "not started": "had not started yet",
            "ended": "had ended",
            "refunded": "was refunded before the call",
            "too little left": f"had {p.remaining_before:,} {unit} left, fewer than the {p.need:,} the call needs "
            "(a call is never split)",
            "not tried": "was not needed",
        }[p.verdict]
        lines.append(f"Plan {p.id} ({p.kind}, covers {code}) {why}.")
    return lines


def _inactive_reason(acc: Accounts, account: str, channel: str, code: str, ts: int, clock: Any) -> str:
    listed = next((a for a in acc.accounts if a.id == account and a.channel == channel), None)
    if listed is None:
        return (
            f"account {account!r} is not listed on the {channel} channel in the accounts file, so it has no "
            "activations and no plans."
        )
    when = listed.activated.get(code)
    if when is None:
        return f"{code} was never activated for this account; an official-channel API must be activated before use."
    return (
        f"{code} was activated at {clock.label(when)}, after the call; calls before the activation are rejected "
        "even if a plan could pay."
    )


def explanations_json(items: Sequence[Explanation]) -> str:
    return json.dumps([e.to_dict() for e in items], indent=2, ensure_ascii=False) + "\n"
