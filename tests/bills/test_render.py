"""Statements in every format: golden files, CSV formula neutralising, and the HTML parsed and checked."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import OCT, accounts, api, calls, catalog, official

from ocrledger.bills.html import chart_segments
from ocrledger.bills.render import CSV_COLUMNS, FORMATS, csv_cell, render
from ocrledger.engine.rate import rate
from ocrledger.model.bills import Bill, bills_from_json

GOLDEN = Path(__file__).parent / "golden"
STAMP = "2026-11-01T09:00:00+08:00"
TIERS = [{"upto": 10, "price": "0.0825"}, {"upto": 20, "price": "0.0495"}, {"price": "0.0415"}]


def scenario_bills() -> list[Bill]:
    """Four October bills: plans (dedicated and shared), three PAYG tiers, a volume-priced API,
    failed and duplicate records, calls rejected before activation, and a marketplace shop whose
    plan runs out (rejections)."""
    cat = catalog([
        api("A", name="ID card", free_monthly=5, shared_points=10, tiers=TIERS),
        api("B", name="Table", free_monthly=0, shared_points=20, tier_mode="volume", tiers=TIERS),
    ])
    acc = accounts(
        cat,
        account=[
            official("acme", "A", "B"),
            official("newco", "A", at="2026-10-15T00:00:00+08:00"),
            {"id": "shop", "channel": "marketplace"},
        ],
        plan=[
            {"id": "acme-ded-3", "account": "acme", "kind": "dedicated", "api": "A", "quantity": 3, "start": OCT},
            {"id": "acme-shared-100", "account": "acme", "kind": "shared", "apis": ["A", "B"], "quantity": 100,
             "start": OCT, "end": "2027-04-01T00:00:00+08:00"},
            {"id": "shop-shared-60", "account": "shop", "channel": "marketplace", "kind": "shared", "quantity": 60,
             "start": OCT},
        ],
    )
    t0 = 1_790_784_000_000  # 2026-10-01T00:00:00+08:00
    rows = []
    for i in range(40):  # 5 free, 3 dedicated, 10 shared (100 points), 22 PAYG over three tiers
        rows.append((f"a{i:03d}", "acme", "A", t0 + 60_000 * (i + 1), 1))
    rows += [("a-fail-1", "acme", "A", t0 + 3_000_000, 0), ("a-fail-2", "acme", "A", t0 + 3_100_000, 0)]
    rows.append(("a005", "acme", "A", t0 + 3_200_000, 1))  # a duplicate of a005
    rows += [(f"b{i:03d}", "acme", "B", t0 + 4_000_000 + 1000 * i, 1) for i in range(6)]  # volume PAYG
    rows += [(f"l{i:03d}", "newco", "A", t0 + 86_400_000 * (5 + 7 * i), 1) for i in range(4)]  # 2 rejected, 2 free
    rows += [(f"s{i:03d}", "shop", "A", t0 + 90_000 * i, 1, "marketplace") for i in range(8)]  # 6 paid, 2 rejected
    return rate(calls(rows), cat, acc).bills


@pytest.fixture(scope="module")
def bills() -> list[Bill]:
    return scenario_bills()


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("OCRLEDGER_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8", newline="")
    assert path.exists(), f"missing golden file {path}; run with OCRLEDGER_UPDATE_GOLDEN=1"
    assert text == path.read_bytes().decode("utf-8"), f"{name} differs from its golden file"


def test_scenario_is_what_the_goldens_claim(bills: list[Bill]) -> None:
    by = {b.account: b for b in bills}
    a = by["acme"].line("A")
    assert (a.calls, a.failed, a.free, a.dedicated, a.shared_calls, a.payg) == (42, 2, 5, 3, 10, 22)
    assert [(t.from_, t.calls) for t in a.tiers] == [(1, 10), (11, 10), (21, 2)]
    assert by["acme"].line("B").tiers[0].from_ == 1 and by["acme"].line("B").payg == 6
    assert by["newco"].line("A").rejected == 2 and by["newco"].line("A").free == 2
    assert (by["shop"].line("A").shared_calls, by["shop"].line("A").rejected) == (6, 2)
    assert by["shop"].free_remaining == ()


@pytest.mark.parametrize("fmt, name", [
    ("text", "statements.txt"), ("markdown", "statements.md"), ("csv", "statements.csv"),
    ("json", "statements.json"), ("html", "statements.html"),
])
def test_golden(bills: list[Bill], fmt: str, name: str) -> None:
    check_golden(name, render(bills, fmt, generated_at=STAMP))


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_bill_and_no_bills(bills: list[Bill], fmt: str) -> None:
    one = render(bills[:1], fmt, generated_at=STAMP)
    assert "acme" in one and "newco" not in one
    assert render([], fmt, generated_at=STAMP)


def test_json_round_trips(bills: list[Bill]) -> None:
    assert bills_from_json(render(bills, "json")) == bills


def test_csv_rows_and_amounts(bills: list[Bill]) -> None:
    rows = list(csv.DictReader(io.StringIO(render(bills, "csv"))))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    for bill in bills:
        mine = [r for r in rows if r["account"] == bill.account and r["channel"] == bill.channel]
        lines = [r for r in mine if r["row"] == "line"]
        assert [r["api"] for r in lines] == [ln.api for ln in bill.lines]
        for ln, r in zip(bill.lines, lines):
            assert (Decimal(r["amount_exact"]), Decimal(r["amount"])) == (ln.amount_exact, ln.amount)
            tiers = [t for t in mine if t["row"] == "tier" and t["api"] == ln.api]
            assert [(int(t["tier_from"]), t["tier_to"], int(t["tier_calls"]), Decimal(t["amount_exact"]))
                    for t in tiers] == [(t.from_, "" if t.to is None else str(t.to), t.calls, t.amount) for t in ln.tiers]
        (total,) = [r for r in mine if r["row"] == "total"]
        assert Decimal(total["amount"]) == bill.total


@pytest.mark.parametrize("text, safe", [
    ("=SUM(A1:A9)", "'=SUM(A1:A9)"), ("+1", "'+1"), ("-2+3", "'-2+3"), ("@cmd", "'@cmd"), ("\tx", "'\tx"),
    ("acme", "acme"), ("0.0825", "0.0825"), ("", ""),
])
def test_csv_cell_neutralises_formulas(text: str, safe: str) -> None:
    assert csv_cell(text) == safe


def test_csv_numbers_stay_numbers() -> None:
    # an adjustment of -2.60 is a number to a spreadsheet, not the text '-2.60; an id "-2" stays guarded text
    assert [csv_cell(Decimal("-2.60")), csv_cell(-3), csv_cell(Decimal("0.082500")), csv_cell("-2")] == \
        ["-2.60", "-3", "0.082500", "'-2"]


def test_csv_injection_in_a_bill(bills: list[Bill]) -> None:
    data = bills[0].to_dict()
    data["account"] = "=HYPERLINK(\"x\")"
    data["lines"][0]["api"] = "@SUM(1)"
    text = render([Bill.from_dict(data)], "csv")
    for row in list(csv.reader(io.StringIO(text)))[1:]:
        assert not any(cell[:1] in ("=", "+", "-", "@") for cell in row), row
    assert "'=HYPERLINK" in text and "'@SUM(1)" in text


def test_adjustments_and_qps_show_everywhere(bills: list[Bill]) -> None:
    data = bills[0].to_dict()
    data["adjustments"] = [{"period": "2026-09", "api": "A", "calls": 3, "amount_exact": "0.247500",
                            "amount": "0.24", "record_ids": ["x1", "x2", "x3"]}]
    data["lines"][0]["qps_peak"] = 14
    data["lines"][0]["qps_over_seconds"] = 2
    bill = Bill.from_dict(data)
    for fmt in ("text", "markdown", "html"):
        out = render([bill], fmt, generated_at=STAMP)
        assert "2026-09" in out and "0.247500" in out, fmt
        assert "14" in out
    rows = list(csv.DictReader(io.StringIO(render([bill], "csv"))))
    (adj,) = [r for r in rows if r["row"] == "adjustment"]
    assert (adj["adjusts_period"], adj["calls"], adj["amount"]) == ("2026-09", "3", "0.24")
    assert [r["qps_peak"] for r in rows if r["row"] == "line"][0] == "14"


def test_markdown_escapes_table_breakers(bills: list[Bill]) -> None:
    data = bills[0].to_dict()
    data["account"] = "a|b*c"
    out = render([Bill.from_dict(data)], "markdown", generated_at=STAMP)
    assert "a\\|b\\*c" in out and "a|b*c" not in out


# --- HTML ---------------------------------------------------------------------------------------


class Statement(HTMLParser):
    """Collects what the tests check: tags, URLs in attributes, chart rectangles and statement headers."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.sections: list[dict[str, str]] = []
        self.rects: list[dict[str, str]] = []
        self.bars: list[dict[str, str]] = []
        self.text: list[str] = []

    VOID = {"meta", "br", "img", "input", "link", "hr", "rect"}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        for key in ("href", "src", "xlink:href", "action", "data"):
            if key in a and not a[key].startswith("#"):
                self.urls.append(a[key])
        if tag == "section":
            self.sections.append(a)
        if tag == "rect":
            self.rects.append({**a, "section": str(len(self.sections) - 1)})
        if tag == "g" and "data-api" in a:
            self.bars.append({**a, "section": str(len(self.sections) - 1)})
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def parsed(bills: list[Bill]) -> tuple[str, Statement]:
    page = render(bills, "html", generated_at=STAMP)
    parser = Statement()
    parser.feed(page)
    parser.close()
    return page, parser


def test_html_is_self_contained(parsed: tuple[str, Statement]) -> None:
    page, doc = parsed
    assert "http" not in page.lower()  # no URL of any scheme, not even an SVG namespace
    assert "//" not in page.replace("<!--", "")
    assert doc.urls == []
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(doc.tags)
    assert doc.stack == []  # every element closed
    assert "style" in doc.tags and "svg" in doc.tags
    assert "@media print" in page


def test_html_headers(parsed: tuple[str, Statement], bills: list[Bill]) -> None:
    page, doc = parsed
    assert [(s["data-account"], s["data-channel"], s["data-period"]) for s in doc.sections] == [b.key for b in bills]
    text = "".join(doc.text)
    for label in ("Account", "Channel", "Period", "Currency", "Generated at", "Free quota left", "Resource plans"):
        assert label in text
    assert STAMP in text
    for bill in bills:
        assert f'data-total="{bill.total}"' in page
        for plan in bill.plans:
            assert plan.id in text and plan.end in text


def test_html_chart_matches_bills(parsed: tuple[str, Statement], bills: list[Bill]) -> None:
    _, doc = parsed
    rects = iter(doc.rects)  # in document order: bill by bill, line by line, segment by segment
    for k, bill in enumerate(bills):
        bars = [b for b in doc.bars if b["section"] == str(k)]
        assert [(b["data-api"], int(b["data-calls"])) for b in bars] == [(ln.api, ln.calls) for ln in bill.lines]
        for line in bill.lines:
            got: dict[str, int] = {}
            for _ in chart_segments(line):
                r = next(rects)
                assert r["section"] == str(k)
                got[r["data-source"]] = int(r["data-calls"])
            # The chart's numbers are the bill's numbers, source by source and tier by tier.
            assert got.get("free", 0) == line.free and got.get("dedicated", 0) == line.dedicated
            assert got.get("shared", 0) == line.shared_calls
            assert got.get("rejected", 0) == line.rejected and got.get("failed", 0) == line.failed
            assert [got.get(f"payg-{i + 1}", 0) for i in range(len(line.tiers))] == [t.calls for t in line.tiers]
            assert sum(got.values()) == line.calls
    assert next(rects, None) is None


def test_html_bar_geometry_is_proportional(parsed: tuple[str, Statement], bills: list[Bill]) -> None:
    _, doc = parsed
    for k, bill in enumerate(bills):
        rects = [r for r in doc.rects if r["section"] == str(k)]
        ends: dict[str, int] = {}
        for r in rects:
            ends.setdefault(r["y"], 0)
            ends[r["y"]] = max(ends[r["y"]], int(r["x"]) + int(r["width"]))
        largest = max(ln.calls for ln in bill.lines)
        for line, end in zip(bill.lines, ends.values()):
            assert end == 200 + line.calls * 560 // largest


def test_html_escapes_bill_text(bills: list[Bill]) -> None:
    data = bills[0].to_dict()
    data["account"] = "<script>alert(1)</script>"
    page = render([Bill.from_dict(data)], "html", generated_at=STAMP)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_cli_format_choices(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ocrledger", *args], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "SOURCE_DATE_EPOCH": "1793491200"})

    assert run("demo", "--write", str(tmp_path)).returncode == 0
    for fmt in FORMATS:
        proc = run("rate", "--accounts", str(tmp_path / "accounts.toml"), "--calls", str(tmp_path / "calls.csv"),
                   "--format", fmt)
        assert proc.returncode == 0, proc.stderr
        assert "seed-idcard" in proc.stdout
    html = run("demo", "--format", "html").stdout
    assert "2026-11-01T00:00:00+00:00" in html and "6,110.00" in html
    assert json.loads(run("demo", "--format", "json").stdout)[1]["total"] == "6110.00"
