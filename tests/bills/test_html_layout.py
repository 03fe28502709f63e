"""The HTML statement fits its 960 px page on screen and an A4 page in print: laid out by headless Chromium
(Debian's chromium-headless-shell, which .ci/run installs), every table's right edge stays inside the page's
content box and nothing is wider than the page. A script added to the page measures the screen layout and
writes it into the DOM, which ``--dump-dom`` prints; a screenshot is written beside it for a person to look at.

Printed (``--print-to-pdf``, measured with poppler's pdftoppm and pdftotext): every page is A4; a 100 mm
black bar added at the top of the page is 100 mm wide on the rendered page (Chromium shrinks a page whose
content is wider than the paper to fit it, so a table wider than A4 less its margins shows as a shorter
bar), and no word ends right of the 12 mm right margin.

The layout check, stated: for the demo bills and for a bill of the widest figures a month can hold
(every count 123,456,789, amounts of 12,345,678.123456, a 40-character API code and a 60-character plan
id), ``table.getBoundingClientRect().right <= the body's content right edge`` and
``document.documentElement.scrollWidth <= window.innerWidth``.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ocrledger.bills.render import render
from ocrledger.engine.rate import rate
from ocrledger.io.demo import demo_accounts, demo_calls
from ocrledger.model.bills import bills_from_json
from ocrledger.model.catalog import default_catalog

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium-headless-shell", "chromium", "chromium-browser"))
                 if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install chromium-headless-shell)")
needs_poppler = pytest.mark.skipif(not (shutil.which("pdftoppm") and shutil.which("pdftotext")),
                                   reason="no poppler (apt-get install poppler-utils)")

MEASURE = """<script>
const body = document.body.getBoundingClientRect();
const pad = parseFloat(getComputedStyle(document.body).paddingRight);
const right = body.right - pad;
const over = [...document.querySelectorAll('table, svg, dl')].map((t, i) => [t.tagName + i, t.getBoundingClientRect().right - right])
  .filter(([, d]) => d > 0.5);
document.body.setAttribute('data-layout', JSON.stringify({over, scroll: document.documentElement.scrollWidth,
  inner: window.innerWidth, width: body.width}));
</script></body>"""


def widest_bills() -> str:
    """The demo's JSON bills with every figure made as wide as a month's can be."""
    cat = default_catalog()
    bills = json.loads(render(rate(demo_calls(cat), cat, demo_accounts(cat)).bills, "json"))
    for bill in bills:
        bill["account"] = "account-" + "x" * 40
        for line in bill["lines"]:
            line["api"] = "Recognize" + "Y" * 31
            for key in ("calls", "failed", "rejected", "free", "dedicated", "shared_calls", "shared_points", "payg"):
                line[key] = 123_456_789
            line["amount_exact"], line["amount"] = "12345678.123456", "12345678.12"
            for tier in line["tiers"]:
                tier.update(calls=123_456_789, amount="12345678.123456")
        bill["total"] = "123456789.12"
        for plan in bill["plans"]:
            plan["id"] = "plan-" + "z" * 55
            plan["used"] = plan["remaining"] = 123_456_789
    return json.dumps(bills)


def layout(tmp_path: Path, name: str, html: str) -> dict[str, object]:
    page = tmp_path / f"{name}.html"
    page.write_text(html.replace("</body>", MEASURE, 1), encoding="utf-8")
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600", "--virtual-time-budget=2000"]
    subprocess.run([*argv, f"--screenshot={tmp_path / name}.png", page.as_uri()], capture_output=True, timeout=120)
    dom = subprocess.run([*argv, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = re.search(r"data-layout=\"([^\"]*)\"", dom)
    assert found, dom[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"'))  # type: ignore[no-any-return]


def statement(which: str) -> str:
    cat = default_catalog()
    bills = rate(demo_calls(cat), cat, demo_accounts(cat)).bills if which == "demo" else bills_from_json(widest_bills())
    return render(bills, "html", generated_at="2026-11-01T09:00:00+08:00")


@needs_chromium
@pytest.mark.parametrize("which", ["demo", "widest"])
def test_the_html_statement_fits_its_page(tmp_path: Path, which: str) -> None:
    got = layout(tmp_path, which, statement(which))
    assert got["width"] == 960  # the page: max-width 960 px in a 1280 px window
    assert got["over"] == [], got
    assert got["scroll"] <= got["inner"], got  # type: ignore[operator]


A4_PT = (595.28, 841.89)  # 210 x 297 mm in PDF points
MARGIN_PT = 12 / 25.4 * 72  # the statement's @page margin
BAR = '<div style="width: 100mm; height: 3mm; background: #000; print-color-adjust: exact; ' \
      '-webkit-print-color-adjust: exact"></div>'


def bar_width_mm(pgm: bytes, dpi: int) -> float:
    """The longest run of dark pixels in one row of a binary PGM page (P5, 8 bit), in mm."""
    head, width_height, _, pixels = pgm.split(b"\n", 3)
    assert head == b"P5", head
    width, height = map(int, width_height.split())
    longest = max(sum(1 for p in pixels[y * width:(y + 1) * width] if p < 64) for y in range(height // 4))
    return longest / dpi * 25.4


@needs_chromium
@needs_poppler
@pytest.mark.parametrize("which", ["demo", "widest"])
def test_the_html_statement_fits_an_a4_page_in_print(tmp_path: Path, which: str) -> None:
    page, pdf = tmp_path / f"{which}.html", tmp_path / f"{which}.pdf"
    page.write_text(statement(which).replace("<body>", "<body>" + BAR, 1), encoding="utf-8")
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                    f"--print-to-pdf={pdf}", page.as_uri()], capture_output=True, timeout=120)
    assert pdf.exists() and pdf.stat().st_size > 0
    subprocess.run(["pdftoppm", "-f", "1", "-l", "1", "-r", "254", "-gray", str(pdf), str(tmp_path / "page")],
                   check=True, timeout=120)
    (first,) = tmp_path.glob("page-*.pgm")
    assert bar_width_mm(first.read_bytes(), 254) == pytest.approx(100, abs=0.3)  # not shrunk to fit
    boxes = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True,
                           timeout=120).stdout
    pages = [tuple(map(float, p)) for p in re.findall(r'<page width="([0-9.]+)" height="([0-9.]+)"', boxes)]
    assert pages and all(w == pytest.approx(A4_PT[0], abs=1) and h == pytest.approx(A4_PT[1], abs=1)
                         for w, h in pages), pages
    right = max(float(x) for x in re.findall(r'<word [^>]*xMax="([0-9.]+)"', boxes))
    assert right <= A4_PT[0] - MARGIN_PT + 0.5, right
