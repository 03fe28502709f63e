"""The readable text statements of bills (``render_text``): the twin of bills.txt and ``--format text``."""
from __future__ import annotations

from typing import Iterator, Sequence

from ..model.bills import Bill
from ..model.display import printable as shown
from .format import NO_BILLS, aligned_table, count, money, tier_label


def statement_pieces(bills: Sequence[Bill]) -> Iterator[str]:
    """``render(bills, "text")`` one statement at a time: the statements joined by a blank line, or the no-bills line."""
    if not bills:
        yield NO_BILLS + "\n"
    for k, bill in enumerate(bills):
        yield ("\n" if k else "") + render_text(bill)


def render_text(bill: Bill) -> str:
    """A readable statement of one bill: lines, PAYG tiers, total, plan balances, free quota left."""
    cur = bill.currency
    # ids and names are shown with control characters escaped (``model.display``): no terminal escapes
    out = [f"Bill {shown(bill.period)}  account {shown(bill.account)}  channel {shown(bill.channel)}  currency "
           f"{shown(cur)}", ""]
    cur = shown(cur)
    rows = [
        [
            shown(ln.api), count(ln.calls), count(ln.failed), count(ln.rejected), count(ln.free), count(ln.dedicated),
            count(ln.shared_calls), count(ln.shared_points), count(ln.payg), money(ln.amount),
        ]
        for ln in bill.lines
    ]
    out += aligned_table(
        ["API", "Calls", "Failed", "Rejected", "Free", "Dedicated", "Shared", "Points", "PAYG", f"Amount {cur}"], rows
    )
    for ln in bill.lines:
        if not ln.tiers:
            continue
        out += ["", f"PAYG tiers of {shown(ln.api)}"]
        tier_rows = [
            [
                tier_label(t.from_, t.to),
                count(t.calls),
                str(t.unit_price),
                money(t.amount),
            ]
            for t in ln.tiers
        ]
        tier_rows.append(["exact sum", "", "", money(ln.amount_exact)])
        tier_rows.append(["billed (rounded once)", "", "", money(ln.amount)])
        out += ["  " + r for r in aligned_table(["Positions", "Calls", "Unit price", f"Amount {cur}"], tier_rows)]
    if bill.adjustments:
        out += ["", "Adjustments (late calls of closed months)"]
        out += [
            "  " + r
            for r in aligned_table(
                ["Month", "API", "Calls", f"Exact {cur}", f"Amount {cur}"],
                [[shown(a.period), shown(a.api), count(a.calls), money(a.amount_exact), money(a.amount)] for a in bill.adjustments],
                left=2,
            )
        ]
    out += ["", f"Total  {cur} {money(bill.total)}"]
    over = [ln for ln in bill.lines if ln.qps_over_seconds]
    if over:
        out += ["", "QPS over the entitled limit: " + ", ".join(
            f"{shown(ln.api)} peak {count(ln.qps_peak)}/s, {count(ln.qps_over_seconds)} s over" for ln in over
        )]
    if bill.plans:
        out += ["", "Resource plans"]
        out += [
            "  " + r
            for r in aligned_table(
                ["Plan", "Used this month", "Remaining", "Ends"],
                [[shown(p.id), count(p.used), count(p.remaining), shown(p.end)] for p in bill.plans],
            )
        ]
    if bill.free_remaining:
        out += ["", "Free quota left: " + ", ".join(f"{shown(api)} {count(n)}" for api, n in bill.free_remaining)]
    return "\n".join(out) + "\n"
