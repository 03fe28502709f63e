"""Rendering bills for people (text) and programs (JSON); reads bills, never computes money."""
from __future__ import annotations

from decimal import Decimal
from typing import Sequence

from .bills import Bill, bills_to_json

FORMATS = ("json", "text")


def render(bills: Sequence[Bill], fmt: str) -> str:
    """Render a list of bills in ``fmt`` (one of FORMATS)."""
    if fmt == "json":
        return bills_to_json(bills) + "\n"
    if fmt == "text":
        return "\n".join(render_text(b) for b in bills) if bills else "No bills: no call records in the input.\n"
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def count(n: int) -> str:
    return f"{n:,}"


def money(amount: Decimal) -> str:
    """Thousands separators, the amount's own decimal places: 6110.00 -> '6,110.00'."""
    return f"{amount:,}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Aligned columns: the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(str(r[k])) for r in [header, *rows]) for k in range(len(header))]
    out = []
    for r in [header, *rows]:
        cells = [str(c).ljust(w) if k < left else str(c).rjust(w) for k, (c, w) in enumerate(zip(r, widths))]
        out.append("  ".join(cells).rstrip())
    return out


def render_text(bill: Bill) -> str:
    """A readable statement of one bill: lines, PAYG tiers, total, plan balances, free quota left."""
    cur = bill.currency
    out = [f"Bill {bill.period}  account {bill.account}  channel {bill.channel}  currency {cur}", ""]
    rows = [
        [
            ln.api, count(ln.calls), count(ln.failed), count(ln.rejected), count(ln.free), count(ln.dedicated),
            count(ln.shared_calls), count(ln.shared_points), count(ln.payg), money(ln.amount),
        ]
        for ln in bill.lines
    ]
    out += _table(
        ["API", "Calls", "Failed", "Rejected", "Free", "Dedicated", "Shared", "Points", "PAYG", f"Amount {cur}"], rows
    )
    for ln in bill.lines:
        if not ln.tiers:
            continue
        out += ["", f"PAYG tiers of {ln.api}"]
        tier_rows = [
            [
                f"{count(t.from_)} – {count(t.to) if t.to is not None else '…'}",
                count(t.calls),
                str(t.unit_price),
                money(t.amount),
            ]
            for t in ln.tiers
        ]
        tier_rows.append(["exact sum", "", "", money(ln.amount_exact)])
        tier_rows.append(["billed (rounded once)", "", "", money(ln.amount)])
        out += ["  " + r for r in _table(["Positions", "Calls", "Unit price", f"Amount {cur}"], tier_rows)]
    out += ["", f"Total  {cur} {money(bill.total)}"]
    if bill.plans:
        out += ["", "Resource plans"]
        out += [
            "  " + r
            for r in _table(
                ["Plan", "Used this month", "Remaining", "Ends"],
                [[p.id, count(p.used), count(p.remaining), p.end] for p in bill.plans],
            )
        ]
    if bill.free_remaining:
        out += ["", "Free quota left: " + ", ".join(f"{api} {count(n)}" for api, n in bill.free_remaining)]
    return "\n".join(out) + "\n"
