"""Bills as plain frozen dataclasses with Decimal amounts, and their JSON form (SPEC §6)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class TierCharge:
    """PAYG calls of one price tier on a bill line."""

    from_: int
    to: int | None
    calls: int
    unit_price: Decimal
    amount: Decimal
    """Exact: calls x unit_price (6 places)."""

    def to_dict(self) -> dict[str, Any]:
        """This as the JSON object bills.json holds (money as decimal strings, exact)."""
        return {
            "from": self.from_,
            "to": self.to,
            "calls": self.calls,
            "unit_price": _price(self.unit_price),
            "amount": str(self.amount),
        }


@dataclass(frozen=True)
class BillLine:
    """One API on one bill: ``calls = failed + rejected + free + dedicated + shared_calls + payg``."""

    api: str
    calls: int
    failed: int
    rejected: int
    free: int
    dedicated: int
    shared_calls: int
    shared_points: int
    payg: int
    tiers: tuple[TierCharge, ...]
    amount_exact: Decimal
    amount: Decimal
    """amount_exact rounded once to 0.01 with the catalog's rounding mode."""
    qps_peak: int = 0
    """Most calls (non-duplicate records, failed included) in any one second of the month."""
    qps_over_seconds: int = 0
    """Seconds of the month with more calls than the entitled QPS (API default plus add-ons)."""

    def to_dict(self) -> dict[str, Any]:
        """This as the JSON object bills.json holds (money as decimal strings, exact)."""
        return {
            "api": self.api,
            "calls": self.calls,
            "failed": self.failed,
            "rejected": self.rejected,
            "free": self.free,
            "dedicated": self.dedicated,
            "shared_calls": self.shared_calls,
            "shared_points": self.shared_points,
            "payg": self.payg,
            "tiers": [t.to_dict() for t in self.tiers],
            "amount_exact": str(self.amount_exact),
            "amount": str(self.amount),
            "qps_peak": self.qps_peak,
            "qps_over_seconds": self.qps_over_seconds,
        }


@dataclass(frozen=True)
class Adjustment:
    """Calls of a closed month that arrived after its close, charged on a later open bill."""

    period: str
    """The closed month the calls belong to."""
    api: str
    calls: int
    """Late records (distinct, non-duplicate)."""
    amount_exact: Decimal
    """What the closed month's line would now be, minus what it was billed at (exact)."""
    amount: Decimal
    """amount_exact rounded once to 0.01."""
    record_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """This as the JSON object bills.json holds (money as decimal strings, exact)."""
        return {
            "period": self.period,
            "api": self.api,
            "calls": self.calls,
            "amount_exact": str(self.amount_exact),
            "amount": str(self.amount),
            "record_ids": list(self.record_ids),
        }


@dataclass(frozen=True)
class PlanBalance:
    """A resource plan as it stood at the end of the bill's month."""

    id: str
    used: int
    """Calls (dedicated) or points (shared) it paid for in this month."""
    remaining: int
    """What is left to use after the month; 0 once the plan has ended or was refunded."""
    end: str
    """When it stops paying (its end, or its refund if earlier), ISO 8601 in the billing zone."""

    def to_dict(self) -> dict[str, Any]:
        """This as the JSON object bills.json holds (money as decimal strings, exact)."""
        return {"id": self.id, "used": self.used, "remaining": self.remaining, "end": self.end}


@dataclass(frozen=True)
class Bill:
    """The bill of one account on one channel for one calendar month.

    ``total`` is the sum of the rounded line amounts plus the rounded adjustments.
    """

    account: str
    channel: str
    period: str
    currency: str
    lines: tuple[BillLine, ...]
    total: Decimal
    plans: tuple[PlanBalance, ...]
    free_remaining: tuple[tuple[str, int], ...]
    """(API code, free calls left after the month) for each line's API; verification APIs show
    the lifetime pool. Empty on the marketplace, which has no free quota."""
    adjustments: tuple[Adjustment, ...] = ()
    """Late calls of closed months carried onto this bill (only from an embedded ledger)."""

    @property
    def key(self) -> tuple[str, str, str]:
        """(account, channel, period): what identifies a bill."""
        return (self.account, self.channel, self.period)

    def line(self, api: str) -> BillLine:
        """The line of API ``api`` (KeyError when the bill has none)."""
        for line in self.lines:
            if line.api == api:
                return line
        raise KeyError(api)

    def to_dict(self) -> dict[str, Any]:
        """This as the JSON object bills.json holds (money as decimal strings, exact)."""
        return {
            "account": self.account,
            "channel": self.channel,
            "period": self.period,
            "currency": self.currency,
            "lines": [line.to_dict() for line in self.lines],
            "total": str(self.total),
            "plans": [p.to_dict() for p in self.plans],
            "free_remaining": dict(self.free_remaining),
            "adjustments": [a.to_dict() for a in self.adjustments],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The bill as JSON text, as one entry of bills.json (the twin of the compiled bill formatter, which every face
        uses where it is built: ``ocrledger.bills.files``; the bytes are the same)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Bill":
        """The bill of a bills.json entry (``to_dict``'s inverse; money read as exact decimals)."""
        return cls(
            account=data["account"],
            channel=data["channel"],
            period=data["period"],
            currency=data["currency"],
            lines=tuple(
                BillLine(
                    api=ln["api"],
                    calls=ln["calls"],
                    failed=ln["failed"],
                    rejected=ln["rejected"],
                    free=ln["free"],
                    dedicated=ln["dedicated"],
                    shared_calls=ln["shared_calls"],
                    shared_points=ln["shared_points"],
                    payg=ln["payg"],
                    tiers=tuple(
                        TierCharge(t["from"], t["to"], t["calls"], Decimal(t["unit_price"]), Decimal(t["amount"]))
                        for t in ln["tiers"]
                    ),
                    amount_exact=Decimal(ln["amount_exact"]),
                    amount=Decimal(ln["amount"]),
                    qps_peak=ln.get("qps_peak", 0),
                    qps_over_seconds=ln.get("qps_over_seconds", 0),
                )
                for ln in data["lines"]
            ),
            total=Decimal(data["total"]),
            plans=tuple(PlanBalance(p["id"], p["used"], p["remaining"], p["end"]) for p in data["plans"]),
            free_remaining=tuple((k, int(v)) for k, v in data["free_remaining"].items()),
            adjustments=tuple(
                Adjustment(a["period"], a["api"], a["calls"], Decimal(a["amount_exact"]), Decimal(a["amount"]),
                           tuple(a["record_ids"]))
                for a in data.get("adjustments", [])
            ),
        )


def bills_to_json(bills: Iterable[Bill], indent: int | None = 2) -> str:
    """A JSON list of bill objects, in the order given (bills.json without its final newline; the twin of the
    compiled bill formatter, as ``Bill.to_json``)."""
    return json.dumps([b.to_dict() for b in bills], indent=indent, ensure_ascii=False)


def bills_from_json(text: str) -> list[Bill]:
    """The bills of a bills.json text (a JSON list of ``Bill.to_dict`` objects)."""
    data = json.loads(text)
    return [Bill.from_dict(d) for d in (data if isinstance(data, list) else [data])]


def _price(value: Decimal) -> str:
    return format(value, "f")
