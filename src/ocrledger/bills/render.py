"""Rendering bills: text, Markdown, CSV, JSON (SPEC §6) and HTML (``render_html``).

Every renderer reads bills and only formats what is on them: amounts are printed as the bill
carries them (exact tier and line amounts, rounded line amounts, the total), never added up,
rounded or recomputed here.
"""
from __future__ import annotations

import csv
import io
import os
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Sequence

from ..engine.billing import BillSet
from ..model.bills import Bill, BillLine
from ..model.display import printable as shown
from .files import json_text, text_text
from .format import NO_BILLS, count, money, tier_label
from .html import render_html

FORMATS = ("json", "text", "markdown", "csv", "html")
"""Output formats of every command that prints bills (``--format``)."""


def render(bills: Sequence[Bill] | BillSet, fmt: str, *, generated_at: str | None = None) -> str:
    """Render a list of bills (one or many) in ``fmt`` (one of FORMATS).

    ``bills`` is a list of ``Bill`` objects or, better for json and text, a ``BillSet`` (``RatingResult.bill_set``):
    its columns are written by the one bill writer (``files``) without making an object per bill.
    ``generated_at`` is the statement date the HTML and Markdown headers show (ISO 8601 text);
    ``None`` means now (or ``SOURCE_DATE_EPOCH`` when set, for reproducible output), in UTC.
    """
    if fmt == "json":
        return json_text(bills)
    if fmt == "text":
        return text_text(bills)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    bills = bills.bills() if isinstance(bills, BillSet) else bills
    if fmt == "markdown":
        return render_markdown(bills, generated_at=generated_at or generated_now())
    if fmt == "csv":
        return render_csv(bills)
    if fmt == "html":
        return render_html(bills, generated_at=generated_at or generated_now())
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def generated_now(tz: object | None = None) -> str:
    """Now as ISO 8601 to the second (``SOURCE_DATE_EPOCH`` wins when set), in ``tz`` or UTC."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (
        datetime.fromtimestamp(int(epoch), timezone.utc)
        if epoch and epoch.strip().isdigit()
        else datetime.now(timezone.utc)
    )
    return when.astimezone(tz).isoformat(timespec="seconds") if tz is not None else when.isoformat(timespec="seconds")  # type: ignore[arg-type]


def plain(amount: Decimal) -> str:
    """An amount exactly as the bill carries it, without separators (for CSV cells)."""
    return format(amount, "f")


# --- Markdown --------------------------------------------------------------------------------

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|~"})
_SCHEME_COLON = re.compile(r"(?<=[A-Za-z]):")
"""A colon after a letter (``https:``, ``mailto:``, ``xmpp:``): escaped, so GFM makes no link of it."""
_WWW = re.compile(r"(?i)\b(www)\.")
"""``www.``: escaped, so GFM's extended autolinks make no link of it."""
_LONGEST_TICKS = re.compile(r"`+")


def md(text: object) -> str:
    """Text safe inside a Markdown table cell or heading: control characters escaped (``model.display``),
    whitespace runs made one space, Markdown specials backslash-escaped, and nothing GFM would turn into a
    link: a scheme's colon and ``www.`` are escaped; text with an ``@`` (an e-mail autolink, which no
    escape stops) is a code span."""
    s = " ".join(shown(text).split())
    if "@" in s:
        return _code_span(s)
    return _WWW.sub(r"\1\\.", _SCHEME_COLON.sub(r"\\:", s.translate(_MD_SPECIAL)))


def _code_span(s: str) -> str:
    """``s`` as a GFM code span inside a table cell: a fence longer than any run of backticks in it,
    pipes escaped (GFM tables read ``\\|`` as ``|`` even in code), padded when it starts or ends with a tick."""
    fence = "`" * (max(map(len, _LONGEST_TICKS.findall(s)), default=0) + 1)
    body = s.replace("|", "\\|")
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int | set[int] = 1) -> list[str]:
    """A pipe table; columns in ``left`` (the first ``left`` ones, or that set) left-aligned, the rest right."""
    lefts = set(range(left)) if isinstance(left, int) else left
    align = ["---" if k in lefts else "---:" for k in range(len(header))]
    return ["| " + " | ".join(r) + " |" for r in [list(header), align, *rows]]


def render_markdown(bills: Sequence[Bill], *, generated_at: str) -> str:
    """Bills as one Markdown document: a section per bill with its lines, tiers, plans and free quota."""
    if not bills:
        return f"# Statements\n\n{NO_BILLS}\n"
    out = ["# Statements" if len(bills) > 1 else "# Statement", "", f"Generated at {md(generated_at)}.", ""]
    if len(bills) > 1:
        out += _md_table(
            ["Account", "Channel", "Period", "Total"],
            [[md(b.account), md(b.channel), md(b.period), f"{md(b.currency)} {money(b.total)}"] for b in bills],
            left=3,
        )
        out.append("")
    for bill in bills:
        out += _markdown_bill(bill)
    return "\n".join(out).rstrip("\n") + "\n"


def _markdown_bill(bill: Bill) -> list[str]:
    cur = md(bill.currency)
    out = [
        f"## {md(bill.account)} · {md(bill.channel)} · {md(bill.period)}",
        "",
        f"- Account: {md(bill.account)}",
        f"- Channel: {md(bill.channel)}",
        f"- Period: {md(bill.period)}",
        f"- Currency: {cur}",
        f"- **Total: {cur} {money(bill.total)}**",
        "",
        "### Lines",
        "",
    ]
    out += _md_table(
        ["API", "Calls", "Failed", "Rejected", "Free", "Dedicated", "Shared calls", "Shared points", "PAYG",
         f"Exact {cur}", f"Amount {cur}"],
        [
            [md(ln.api), count(ln.calls), count(ln.failed), count(ln.rejected), count(ln.free), count(ln.dedicated),
             count(ln.shared_calls), count(ln.shared_points), count(ln.payg), money(ln.amount_exact), money(ln.amount)]
            for ln in bill.lines
        ],
    )
    for ln in bill.lines:
        if not ln.tiers:
            continue
        out += ["", f"### Pay-as-you-go tiers of {md(ln.api)}", ""]
        rows = [[tier_label(t.from_, t.to), count(t.calls), str(t.unit_price), money(t.amount)] for t in ln.tiers]
        rows.append(["exact sum", "", "", money(ln.amount_exact)])
        rows.append(["**billed (rounded once)**", "", "", f"**{money(ln.amount)}**"])
        out += _md_table(["PAYG positions", "Calls", f"Unit price {cur}", f"Amount {cur}"], rows)
    if bill.adjustments:
        out += ["", "### Adjustments (late calls of closed months)", ""]
        out += _md_table(
            ["Month", "API", "Calls", f"Exact {cur}", f"Amount {cur}"],
            [[md(a.period), md(a.api), count(a.calls), money(a.amount_exact), money(a.amount)] for a in bill.adjustments],
            left=2,
        )
    if any(ln.qps_peak for ln in bill.lines):
        out += ["", "### Calls per second", ""]
        out += _md_table(
            ["API", "Peak calls in one second", "Seconds over the limit"],
            [[md(ln.api), count(ln.qps_peak), count(ln.qps_over_seconds)] for ln in bill.lines],
        )
    if bill.plans:
        out += ["", "### Resource plans", ""]
        out += _md_table(
            ["Plan", "Used this month", "Remaining", "Ends"],
            [[md(p.id), count(p.used), count(p.remaining), md(p.end)] for p in bill.plans],
            left={0, 3},
        )
    if bill.free_remaining:
        out += ["", "### Free quota left", ""]
        out += _md_table(["API", "Free calls left"], [[md(api), count(n)] for api, n in bill.free_remaining])
    out.append("")
    return out


# --- CSV -------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "account", "channel", "period", "currency", "api", "row", "calls", "failed", "rejected", "free", "dedicated",
    "shared_calls", "shared_points", "payg", "tier_from", "tier_to", "tier_calls", "unit_price",
    "amount_exact", "amount", "qps_peak", "qps_over_seconds", "adjusts_period",
)
"""One ``line`` row per bill line, then one ``tier`` row per PAYG tier of it; an ``adjustment`` row per
late charge of a closed month (``adjusts_period``); then a ``total`` row per bill."""

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula: text starting with = + - @ (or a
    tab or carriage return) gets a leading apostrophe (OWASP's advice on CSV injection). Numbers
    (``int``, ``Decimal``) are written as numbers, so a negative amount stays a number."""
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_csv(bills: Sequence[Bill]) -> str:
    """Bills as CSV: exact amounts on tier and line rows, the rounded amount on line and total rows.

    Only ``line`` rows carry counts; a spreadsheet sums the ``amount`` of ``line`` rows (or reads
    the ``total`` rows) and the ``amount_exact`` of ``tier`` rows, as the columns say.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for bill in bills:
        head = [bill.account, bill.channel, bill.period, bill.currency]
        for ln in bill.lines:
            writer.writerow([csv_cell(c) for c in head + _csv_line(ln)])
            for t in ln.tiers:
                writer.writerow([csv_cell(c) for c in head + [
                    ln.api, "tier", "", "", "", "", "", "", "", "", t.from_,
                    "" if t.to is None else t.to, t.calls, t.unit_price, t.amount, "", "", "", "",
                ]])
        for a in bill.adjustments:
            writer.writerow([csv_cell(c) for c in head + [
                a.api, "adjustment", a.calls, "", "", "", "", "", "", "", "", "", "", "",
                a.amount_exact, a.amount, "", "", a.period,
            ]])
        writer.writerow([csv_cell(c) for c in head + ["", "total"] + [""] * 13 + [bill.total, "", "", ""]])
    return buf.getvalue()


def _csv_line(ln: BillLine) -> list[object]:
    return [
        ln.api, "line", ln.calls, ln.failed, ln.rejected, ln.free, ln.dedicated, ln.shared_calls, ln.shared_points,
        ln.payg, "", "", "", "", ln.amount_exact, ln.amount, ln.qps_peak, ln.qps_over_seconds, "",
    ]
