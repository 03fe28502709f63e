"""The HTML statement fits its 960 px page: laid out by headless Chromium (Debian's chromium-headless-shell,
which .ci/run installs), every table's right edge stays inside the page's content box and nothing is
wider than the page. A script added to the page measures the layout and writes it into the DOM, which
``--dump-dom`` prints; a screenshot is written beside it for a person to look at.

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


@needs_chromium
@pytest.mark.parametrize("which", ["demo", "widest"])
def test_the_html_statement_fits_its_page(tmp_path: Path, which: str) -> None:
    cat = default_catalog()
    bills = rate(demo_calls(cat), cat, demo_accounts(cat)).bills if which == "demo" else bills_from_json(widest_bills())
    got = layout(tmp_path, which, render(bills, "html", generated_at="2026-11-01T09:00:00+08:00"))
    assert got["width"] == 960  # the page: max-width 960 px in a 1280 px window
    assert got["over"] == [], got
    assert got["scroll"] <= got["inner"], got  # type: ignore[operator]
