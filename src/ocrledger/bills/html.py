"""Bills as one self-contained, printable HTML file: inline CSS, an inline SVG chart, no external fetch.

Like every renderer it only formats what the bills carry. The chart draws counts that are on the
bill lines (free, dedicated, shared, PAYG per tier charge, rejected, failed); bar lengths are
pixel geometry, not money. The document names no URL at all (inline SVG needs no ``xmlns``), so
a browser opening it makes no request.
"""
from __future__ import annotations

from html import escape
from typing import Sequence

from ..model.bills import Bill, BillLine
from ..model.display import printable
from .format import NO_BILLS, count, money, tier_label

SOURCE_COLOURS = {
    "free": "#59a14f",
    "dedicated": "#4e79a7",
    "shared": "#b07aa1",
    "rejected": "#e15759",
    "failed": "#bab0ac",
}
PAYG_COLOURS = ("#fdd49e", "#fdbb84", "#fc8d59", "#e34a33", "#b30000", "#7f0000")
"""PAYG tier charges of a line, lightest for its first tier charge; the last colour repeats."""

SOURCE_LABELS = {
    "free": "free quota",
    "dedicated": "dedicated plan",
    "shared": "shared plan",
    "rejected": "rejected (not billed)",
    "failed": "failed (not billed)",
}

_CSS = """
:root { --ink: #1d1d1f; --muted: #5f6368; --rule: #d0d4d9; --band: #f4f6f8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); margin: 24px auto; max-width: 960px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 8px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
.generated { color: var(--muted); margin: 0 0 16px; }
section.statement { border-top: 3px solid var(--ink); padding-top: 12px; margin-top: 28px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 2px 16px; margin: 0 0 8px; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; font-weight: 600; }
p.total { font-size: 18px; font-weight: 700; margin: 8px 0; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
th, td { padding: 3px 8px; border-bottom: 1px solid var(--rule); text-align: right; white-space: nowrap; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
/* the lines table has 11 columns: headers wrap, ids break anywhere, numbers never, so it fits the page */
table.lines th { white-space: normal; vertical-align: bottom; }
table.lines th, table.lines td { padding: 3px 3px; font-size: 12px; }
td.text, dd { overflow-wrap: anywhere; word-break: break-word; }
td.text { white-space: normal; }
thead th { background: var(--band); font-weight: 600; }
tfoot td { font-weight: 700; border-top: 2px solid var(--ink); }
td.num, td.amount { font-variant-numeric: tabular-nums; }
.note { color: var(--muted); font-size: 12px; }
svg.chart { width: 100%; height: auto; max-width: 900px; }
svg.chart text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: var(--ink); }
ul.legend { list-style: none; padding: 0; margin: 4px 0 0; display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12px; }
ul.legend span.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px;
                        -webkit-print-color-adjust: exact; print-color-adjust: exact; }
@page { size: A4; margin: 12mm; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 11px; }
  /* A4 less its margins is 186 mm (703 px): the lines table of the widest month fits it at 9 px */
  table.lines th, table.lines td { font-size: 9px; padding: 2px 1px; }
  section.statement { break-before: page; border-top: none; margin-top: 0; }
  section.statement:first-of-type { break-before: auto; }
  svg.chart rect { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  table, svg.chart { break-inside: avoid; }
}
"""


def render_html(bills: Sequence[Bill], *, generated_at: str) -> str:
    """One HTML document holding a statement per bill (a summary table first when there are several)."""
    title = "Statement" if len(bills) == 1 else "Statements"
    if len(bills) == 1:
        b = bills[0]
        title = f"Statement {b.period} · {b.account} · {b.channel}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="generated">Generated at <time>{_e(generated_at)}</time></p>',
    ]
    if not bills:
        out.append(f"<p>{_e(NO_BILLS)}</p>")
    elif len(bills) > 1:
        out += _summary(bills)
    for k, bill in enumerate(bills, 1):
        out += _statement(bill, k, generated_at)
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def _e(text: object) -> str:
    return escape(printable(text), quote=True)  # control characters shown as escapes, as in text and Markdown


def _summary(bills: Sequence[Bill]) -> list[str]:
    rows = "".join(
        f'<tr><td class="text"><a href="#bill-{k}">{_e(b.account)}</a></td><td class="text">{_e(b.channel)}</td>'
        f'<td class="text">{_e(b.period)}</td><td class="text">{_e(b.currency)}</td>'
        f'<td class="amount">{_e(money(b.total))}</td></tr>'
        for k, b in enumerate(bills, 1)
    )
    return [
        '<table class="summary">',
        '<thead><tr><th>Account</th><th class="text">Channel</th><th class="text">Period</th>'
        '<th class="text">Currency</th><th>Total</th></tr></thead>',
        f"<tbody>{rows}</tbody>",
        "</table>",
    ]


def _statement(bill: Bill, k: int, generated_at: str) -> list[str]:
    cur = _e(bill.currency)
    out = [
        f'<section class="statement" id="bill-{k}" data-account="{_e(bill.account)}" '
        f'data-channel="{_e(bill.channel)}" data-period="{_e(bill.period)}">',
        f"<h2>{_e(bill.account)} · {_e(bill.period)}</h2>",
        '<dl class="meta">',
        f"<dt>Account</dt><dd>{_e(bill.account)}</dd>",
        f"<dt>Channel</dt><dd>{_e(bill.channel)}</dd>",
        f"<dt>Period</dt><dd>{_e(bill.period)}</dd>",
        f"<dt>Currency</dt><dd>{cur}</dd>",
        f"<dt>Generated at</dt><dd>{_e(generated_at)}</dd>",
        "</dl>",
        f'<p class="total">Total {cur} <span class="amount" data-total="{_e(bill.total)}">{_e(money(bill.total))}</span></p>',
        "<h3>Calls by source</h3>",
        *_chart(bill, k),
        "<h3>Lines</h3>",
        *_lines_table(bill),
    ]
    for line in bill.lines:
        if line.tiers:
            out += _tiers_table(bill, line)
    if bill.adjustments:
        rows = "".join(
            f'<tr><td class="text">{_e(a.period)}</td><td class="text">{_e(a.api)}</td><td class="num">{count(a.calls)}</td>'
            f'<td class="amount">{_e(money(a.amount_exact))}</td><td class="amount">{_e(money(a.amount))}</td></tr>'
            for a in bill.adjustments
        )
        out += [
            "<h3>Adjustments</h3>",
            '<table class="adjustments">',
            f'<thead><tr><th>Month</th><th class="text">API</th><th>Late calls</th><th>Exact {cur}</th>'
            f"<th>Amount {cur}</th></tr></thead>",
            f"<tbody>{rows}</tbody>",
            "</table>",
            '<p class="note">Calls of a closed month that arrived after its close are charged here; the closed '
            "bill is never changed.</p>",
        ]
    if any(ln.qps_peak for ln in bill.lines):
        rows = "".join(
            f'<tr><td class="text">{_e(ln.api)}</td><td class="num">{count(ln.qps_peak)}</td>'
            f'<td class="num">{count(ln.qps_over_seconds)}</td></tr>'
            for ln in bill.lines
        )
        out += [
            "<h3>Calls per second</h3>",
            '<table class="qps">',
            "<thead><tr><th>API</th><th>Peak calls in one second</th><th>Seconds over the limit</th></tr></thead>",
            f"<tbody>{rows}</tbody>",
            "</table>",
        ]
    out.append("<h3>Resource plans</h3>")
    if bill.plans:
        rows = "".join(
            f'<tr><td class="text">{_e(p.id)}</td><td class="num">{count(p.used)}</td>'
            f'<td class="num">{count(p.remaining)}</td><td class="text">{_e(p.end)}</td></tr>'
            for p in bill.plans
        )
        out += [
            '<table class="plans">',
            '<thead><tr><th>Plan</th><th>Used this month</th><th>Remaining</th><th class="text">Ends</th></tr></thead>',
            f"<tbody>{rows}</tbody>",
            "</table>",
            '<p class="note">Used and remaining are calls for dedicated plans and points for shared plans; '
            "a plan pays for calls before its end, and what is left then is lost.</p>",
        ]
    else:
        out.append("<p>No resource plan was active in this month.</p>")
    out.append("<h3>Free quota left</h3>")
    if bill.free_remaining:
        rows = "".join(
            f'<tr><td class="text">{_e(api)}</td><td class="num">{count(n)}</td></tr>' for api, n in bill.free_remaining
        )
        out += [
            '<table class="free">',
            "<thead><tr><th>API</th><th>Free calls left</th></tr></thead>",
            f"<tbody>{rows}</tbody>",
            "</table>",
            '<p class="note">Recognition APIs: free calls left in this month. Verification APIs: what is left of '
            "the account's lifetime pool.</p>",
        ]
    else:
        out.append("<p>No free quota on this channel.</p>")
    out += [
        '<p class="note">Each line is the exact sum of its pay-as-you-go tiers, rounded once to 0.01; '
        "the total is the sum of the rounded lines.</p>",
        "</section>",
    ]
    return out


def _lines_table(bill: Bill) -> list[str]:
    cur = _e(bill.currency)
    rows = "".join(
        f'<tr><td class="text">{_e(ln.api)}</td>'
        + "".join(
            f'<td class="num">{count(v)}</td>'
            for v in (ln.calls, ln.failed, ln.rejected, ln.free, ln.dedicated, ln.shared_calls, ln.shared_points, ln.payg)
        )
        + f'<td class="amount">{_e(money(ln.amount_exact))}</td><td class="amount">{_e(money(ln.amount))}</td></tr>'
        for ln in bill.lines
    )
    return [
        '<table class="lines">',
        "<thead><tr><th>API</th><th>Calls</th><th>Failed</th><th>Rejected</th><th>Free</th><th>Dedicated</th>"
        f"<th>Shared calls</th><th>Shared points</th><th>PAYG</th><th>Exact {cur}</th><th>Amount {cur}</th></tr></thead>",
        f"<tbody>{rows}</tbody>",
        f'<tfoot><tr><td class="text" colspan="10">Total{" (with adjustments)" if bill.adjustments else ""}</td>'
        f'<td class="amount">{_e(money(bill.total))}</td></tr></tfoot>',
        "</table>",
    ]


def _tiers_table(bill: Bill, line: BillLine) -> list[str]:
    cur = _e(bill.currency)
    rows = "".join(
        f'<tr><td class="text">{_e(tier_label(t.from_, t.to))}</td><td class="num">{count(t.calls)}</td>'
        f'<td class="num">{_e(t.unit_price)}</td><td class="amount">{_e(money(t.amount))}</td></tr>'
        for t in line.tiers
    )
    return [
        f"<h3>Pay-as-you-go tiers of {_e(line.api)}</h3>",
        f'<table class="tiers" data-api="{_e(line.api)}">',
        f"<thead><tr><th>PAYG positions</th><th>Calls</th><th>Unit price {cur}</th><th>Amount {cur}</th></tr></thead>",
        f"<tbody>{rows}</tbody>",
        f'<tfoot><tr><td class="text" colspan="3">Exact sum</td><td class="amount">{_e(money(line.amount_exact))}</td></tr>'
        f'<tr><td class="text" colspan="3">Billed (rounded once)</td><td class="amount">{_e(money(line.amount))}</td></tr>'
        "</tfoot>",
        "</table>",
    ]


def chart_segments(line: BillLine) -> list[tuple[str, str, int]]:
    """(source key, label, calls) of one line's bar, in drawing order; zero counts left out.

    The counts add up to ``line.calls``: every distinct record of the line lands in one segment.
    """
    segments = [
        ("free", SOURCE_LABELS["free"], line.free),
        ("dedicated", SOURCE_LABELS["dedicated"], line.dedicated),
        ("shared", SOURCE_LABELS["shared"], line.shared_calls),
    ]
    segments += [
        (f"payg-{k + 1}", f"PAYG positions {tier_label(t.from_, t.to)} at {t.unit_price}", t.calls)
        for k, t in enumerate(line.tiers)
    ]
    segments += [
        ("rejected", SOURCE_LABELS["rejected"], line.rejected),
        ("failed", SOURCE_LABELS["failed"], line.failed),
    ]
    return [s for s in segments if s[2] > 0]


def _colour(key: str) -> str:
    if key.startswith("payg-"):
        return PAYG_COLOURS[min(int(key[5:]) - 1, len(PAYG_COLOURS) - 1)]
    return SOURCE_COLOURS[key]


def _chart(bill: Bill, k: int) -> list[str]:
    """A horizontal stacked bar per API on one scale (the largest line fills the bar area)."""
    label_w, bar_w, number_w, row_h, bar_h, top = 200, 560, 100, 30, 18, 8
    width = label_w + bar_w + number_w
    height = top * 2 + row_h * len(bill.lines)
    largest = max((ln.calls for ln in bill.lines), default=0) or 1
    out = [
        f'<svg class="chart" id="chart-{k}" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="chart-{k}-title">',
        f'<title id="chart-{k}-title">Calls of {_e(bill.account)} in {_e(bill.period)} by what paid for them, per API</title>',
    ]
    for row, line in enumerate(bill.lines):
        y = top + row * row_h
        out.append(f'<g class="bar" data-api="{_e(line.api)}" data-calls="{line.calls}">')
        out.append(
            f'<text x="{label_w - 8}" y="{y + bar_h - 4}" text-anchor="end">{_e(line.api)}</text>'
        )
        done = 0
        for key, label, calls in chart_segments(line):
            # Integer geometry from cumulative counts, so segments abut and the bar ends where its total says.
            x0 = label_w + done * bar_w // largest
            done += calls
            x1 = label_w + done * bar_w // largest
            out.append(
                f'<rect x="{x0}" y="{y}" width="{x1 - x0}" height="{bar_h}" fill="{_colour(key)}" '
                f'data-source="{key}" data-calls="{calls}"><title>{_e(line.api)}: {_e(label)}: '
                f"{count(calls)} calls</title></rect>"
            )
        out.append(
            f'<text class="count" x="{label_w + done * bar_w // largest + 6}" y="{y + bar_h - 4}">{count(line.calls)}</text>'
        )
        out.append("</g>")
    out.append("</svg>")
    keys = ["free", "dedicated", "shared"]
    tiers = max((len(ln.tiers) for ln in bill.lines), default=0)
    keys += [f"payg-{t + 1}" for t in range(tiers)] + ["rejected", "failed"]
    legend = "".join(
        f'<li><span class="swatch" style="background:{_colour(key)}"></span>'
        f"{_e(SOURCE_LABELS.get(key) or _payg_legend(key))}</li>"
        for key in keys
    )
    out.append(f'<ul class="legend">{legend}</ul>')
    return out


def _payg_legend(key: str) -> str:
    n = int(key[5:])
    return f"pay-as-you-go, {_ordinal(n)} tier charged"


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")
