"""The per-call deduction log as users read it: paged, filtered pages of rows, and each plan's state."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..codes import REJECTED, Source, Status
from ..errors import OcrledgerError
from ..model.accounts import MARKETPLACE, OFFICIAL, Plan
from ..model.catalog import Catalog
from ..model.clock import BillingClock, period_label
from ..model.money import format_exact

STATUS_NAMES = {s.name.lower(): int(s) for s in Status if s < 64}
"""Status filters by name; ``rejected`` means all three rejections."""
MAX_PAGE = 10_000


@dataclass(frozen=True)
class LogPage:
    """One page of log rows (oldest first) and where the next page starts (None: this was the last)."""

    rows: list[dict[str, Any]]
    next_after: int | None


@dataclass(frozen=True)
class PlanState:
    """A plan as ``QueryResourcePackageInstances`` shows it, at one instant."""

    id: str
    kind: str
    apis: tuple[str, ...]
    total: int
    used: int
    remaining: int
    start: str
    end: str
    status: str
    """available, exhausted, expired or refunded."""
    refunded: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "apis": list(self.apis), "total": self.total, "used": self.used,
                "remaining": self.remaining, "start": self.start, "end": self.end, "status": self.status,
                "refunded": self.refunded}


def plan_state(plan: Plan, used: int, at: int, clock: BillingClock) -> PlanState:
    """The state of ``plan`` at instant ``at``: refunded (at or after its refund), expired (at or after its
    end), exhausted (nothing left), else available; what is left is lost once it is refunded or expired."""
    left = plan.quantity - used
    if plan.refunded is not None and at >= plan.refunded:
        status = "refunded"
    elif at >= plan.end:
        status = "expired"
    elif left <= 0:
        status = "exhausted"
    else:
        status = "available"
    return PlanState(plan.id, plan.kind, plan.apis, plan.quantity, used, left if status in ("available", "exhausted")
                     else 0, clock.label(plan.start), clock.label(plan.end), status,
                     None if plan.refunded is None else clock.label(plan.refunded))


def _statuses(names: Sequence[str] | None) -> list[int] | None:
    if names is None:
        return None
    out: list[int] = []
    for name in names:
        if name == "rejected":
            out += [int(s) for s in REJECTED]
        elif name in STATUS_NAMES:
            out.append(STATUS_NAMES[name])
        else:
            raise OcrledgerError(f"unknown status {name!r} (one of rejected, {', '.join(STATUS_NAMES)})",
                                 field="status")
    return out


def log_page(store: Any, catalog: Catalog, *, account: str | None = None, channel: str | None = None,
             api: str | None = None, plan: str | None = None, record_id: str | None = None, since: Any = None,
             until: Any = None, status: Sequence[str] | None = None, after: int = 0, limit: int = 100) -> LogPage:
    """Rows of the log matching every filter given (``since <= ts < until``), ``limit`` at most, after row ``after``.

    A channel without an account filters the rows of the page (a page may then hold fewer rows).
    """
    clock = catalog.clock
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise OcrledgerError(f"limit must be 1 to {MAX_PAGE:,}, not {limit!r}", field="limit")
    if api is not None and api not in catalog.index:
        raise OcrledgerError(f"unknown API {api!r}", field="api")
    parties = None
    if account is not None:
        channels = [channel] if channel is not None else [MARKETPLACE, OFFICIAL]
        found = store.find_parties([(account, c) for c in channels])
        parties = [found[(account, c)][0] for c in channels if (account, c) in found]
        if not parties:
            return LogPage([], None)
    lo = None if since is None else clock.instant(since, what="since")
    hi = None if until is None else clock.instant(until, what="until")
    rows = store.deductions(parties=parties, api=api, plan=plan, record_id=record_id, since=lo, until=hi,
                            statuses=_statuses(status), after=after, limit=limit)
    names = store.party_names(sorted({r[2] for r in rows}))
    batch_ids = store.batch_names(sorted({r[1] for r in rows}))
    out = []
    for seq, batch, party, code, rid, ts, period, st, source, plan_id, tier, amount, remaining in rows:
        acc, ch, _ = names[party]
        if channel is not None and ch != channel:
            continue
        out.append({
            "seq": seq, "batch_id": batch_ids.get(batch), "record_id": rid, "account": acc, "channel": ch,
            "api": code, "ts": clock.label(ts), "month": period_label(period), "status": Status(st).name.lower(),
            "source": Source(source).name.lower(), "plan": plan_id, "tier": None if tier < 0 else tier + 1,
            "amount": format_exact(amount), "plan_remaining": remaining,
        })
    return LogPage(out, rows[-1][0] if len(rows) == limit else None)
