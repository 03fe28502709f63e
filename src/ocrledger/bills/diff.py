"""Differences between two sets of bills: the adjustments a finance team would issue after a rerate.

Bills are matched by (account, channel, period) and their lines by API. For every line that
differs the diff gives the old and new calls by source (failed, rejected, free, dedicated, shared,
PAYG) and amounts (exact and billed), and the change; a line or bill present on one side only is
``added`` or ``removed``. Reads bills, never computes money beyond subtracting billed amounts.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

from ..errors import OcrledgerError
from ..model.bills import Bill, BillLine, bills_from_json
from .format import aligned_table, count, money

COUNTS = ("calls", "failed", "rejected", "free", "dedicated", "shared_calls", "shared_points", "payg")
"""Line counts compared (see SPEC §6, Bill)."""
_ZERO = Decimal("0.00")


class DiffError(OcrledgerError):
    """A bills file for ``diff`` cannot be read."""


@dataclass(frozen=True)
class LineDiff:
    """One API line of one bill that differs."""

    account: str
    channel: str
    period: str
    api: str
    change: str
    """``changed``, ``added`` (only in the new bills) or ``removed`` (only in the old)."""
    currency: str
    old: dict[str, int]
    new: dict[str, int]
    old_amount_exact: Decimal
    new_amount_exact: Decimal
    old_amount: Decimal
    new_amount: Decimal

    @property
    def delta(self) -> dict[str, int]:
        return {k: self.new[k] - self.old[k] for k in COUNTS}

    @property
    def amount_delta(self) -> Decimal:
        return self.new_amount - self.old_amount

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "channel": self.channel,
            "period": self.period,
            "api": self.api,
            "change": self.change,
            "currency": self.currency,
            "old": {**self.old, "amount_exact": str(self.old_amount_exact), "amount": str(self.old_amount)},
            "new": {**self.new, "amount_exact": str(self.new_amount_exact), "amount": str(self.new_amount)},
            "delta": {
                **self.delta,
                "amount_exact": str(self.new_amount_exact - self.old_amount_exact),
                "amount": str(self.amount_delta),
            },
        }


@dataclass(frozen=True)
class BillTotalDiff:
    account: str
    channel: str
    period: str
    change: str
    currency: str
    old_total: Decimal
    new_total: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account, "channel": self.channel, "period": self.period, "change": self.change,
            "currency": self.currency, "old_total": str(self.old_total), "new_total": str(self.new_total),
            "delta": str(self.new_total - self.old_total),
        }


@dataclass
class BillDiff:
    old_name: str
    new_name: str
    lines: list[LineDiff] = field(default_factory=list)
    bills: list[BillTotalDiff] = field(default_factory=list)
    unchanged: int = 0
    """Bills that are identical on both sides (lines and totals)."""
    totals: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    """currency -> (old sum of bill totals, new sum), over every bill on each side."""

    @property
    def has_changes(self) -> bool:
        return bool(self.lines or self.bills)

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old_name,
            "new": self.new_name,
            "lines": [d.to_dict() for d in self.lines],
            "bills": [b.to_dict() for b in self.bills],
            "unchanged_bills": self.unchanged,
            "totals": {
                cur: {"old": str(o), "new": str(n), "delta": str(n - o)} for cur, (o, n) in sorted(self.totals.items())
            },
        }

    def to_text(self) -> str:
        out = [f"Bill differences: {self.old_name} -> {self.new_name}", ""]
        if not self.has_changes:
            out.append(f"No differences ({self.unchanged:,} bills compared).")
            return "\n".join(out) + "\n"
        header = ["Account", "Channel", "Period", "API", "Change", "Calls", "Failed", "Rejected", "Free",
                  "Dedicated", "Shared", "PAYG", "Old amount", "New amount", "Delta"]
        rows = []
        for d in self.lines:
            delta = d.delta
            rows.append([
                d.account, d.channel, d.period, d.api, d.change,
                *[_signed(delta[k]) for k in ("calls", "failed", "rejected", "free", "dedicated", "shared_calls",
                                               "payg")],
                money(d.old_amount), money(d.new_amount), _signed_money(d.amount_delta, money),
            ])
        out += aligned_table(header, rows, left=5)
        out += ["", "Bill totals that changed"]
        rows = [[b.account, b.channel, b.period, b.change, b.currency, money(b.old_total), money(b.new_total),
                 _signed_money(b.new_total - b.old_total, money)] for b in self.bills]
        out += ["  " + r for r in aligned_table(["Account", "Channel", "Period", "Change", "Currency", "Old total",
                                          "New total", "Delta"], rows, left=5)]
        out.append("")
        for cur, (o, n) in sorted(self.totals.items()):
            out.append(f"All bills {cur}: old {money(o)}, new {money(n)}, delta {_signed_money(n - o, money)}")
        out.append(f"{count(len(self.bills))} bills differ, {count(self.unchanged)} unchanged.")
        return "\n".join(out) + "\n"


def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def _signed_money(d: Decimal, money: Any) -> str:
    return ("+" if d > 0 else "") + money(d)


def load_bills(path: str | Path) -> list[Bill]:
    """Bills from a JSON file (a list of bills or one bill) or a folder.

    A folder is read as its ``bills.json`` (a rerate output folder) if it has one, else as every
    ``*.json`` file in it, in name order. A bill key (account, channel, period) may appear once.
    """
    p = Path(path)
    if p.is_dir():
        files = [p / "bills.json"] if (p / "bills.json").is_file() else sorted(p.glob("*.json"))
        if not files:
            raise DiffError("the folder holds no bills.json and no *.json files", file=str(p))
    else:
        files = [p]
    bills: list[Bill] = []
    seen: dict[tuple[str, str, str], str] = {}
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except OSError as exc:
            raise DiffError(f"cannot read: {exc.strerror}", file=str(f)) from None
        try:
            loaded = bills_from_json(text)
        except json.JSONDecodeError as exc:
            raise DiffError(f"is not JSON: {exc.msg} (line {exc.lineno})", file=str(f)) from None
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise DiffError(f"is not a list of bills (docs/spec.md §6): {type(exc).__name__} {exc}", file=str(f)) from None
        for b in loaded:
            if b.key in seen:
                raise DiffError(f"bill {'/'.join(b.key)} appears twice (also in {seen[b.key]})", file=str(f))
            seen[b.key] = str(f)
            bills.append(b)
    return bills


def diff_bills(old: Sequence[Bill], new: Sequence[Bill], *, old_name: str = "old", new_name: str = "new") -> BillDiff:
    """Compare two sets of bills line by line (sorted by account, channel, period, API)."""
    result = BillDiff(old_name, new_name)
    old_by = {b.key: b for b in old}
    new_by = {b.key: b for b in new}
    for side, bills in ((0, old), (1, new)):
        for b in bills:
            pair = list(result.totals.get(b.currency, (_ZERO, _ZERO)))
            pair[side] += b.total
            result.totals[b.currency] = (pair[0], pair[1])
    for key in sorted(set(old_by) | set(new_by)):
        o, n = old_by.get(key), new_by.get(key)
        change = "changed" if o is not None and n is not None else ("added" if o is None else "removed")
        currency = (n or o).currency  # type: ignore[union-attr]
        o_lines = {ln.api: ln for ln in o.lines} if o is not None else {}
        n_lines = {ln.api: ln for ln in n.lines} if n is not None else {}
        differs = False
        for api in sorted(set(o_lines) | set(n_lines)):
            ol, nl = o_lines.get(api), n_lines.get(api)
            if ol is not None and nl is not None and _same(ol, nl):
                continue
            differs = True
            line_change = "changed" if ol is not None and nl is not None else ("added" if ol is None else "removed")
            result.lines.append(
                LineDiff(
                    *key, api, line_change, currency, _counts(ol), _counts(nl),
                    ol.amount_exact if ol else Decimal("0.000000"), nl.amount_exact if nl else Decimal("0.000000"),
                    ol.amount if ol else _ZERO, nl.amount if nl else _ZERO,
                )
            )
        old_total = o.total if o is not None else _ZERO
        new_total = n.total if n is not None else _ZERO
        if differs or old_total != new_total or change != "changed":
            result.bills.append(BillTotalDiff(*key, change, currency, old_total, new_total))
        else:
            result.unchanged += 1
    return result


def _counts(line: BillLine | None) -> dict[str, int]:
    return {k: (getattr(line, k) if line is not None else 0) for k in COUNTS}


def _same(a: BillLine, b: BillLine) -> bool:
    return _counts(a) == _counts(b) and a.amount_exact == b.amount_exact and a.amount == b.amount
