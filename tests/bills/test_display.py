"""Ids as people see them: control characters (terminal escape sequences) are escaped in text, Markdown,
HTML and ``explain``, the compiled bills.txt writer shows them the same way, and GFM makes no link of a
URL or e-mail address inside an id (checked with cmark-gfm, GitHub's renderer). JSON keeps the exact id."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import OCT, accounts, api, catalog, ms, official

from ocrledger.bills import files as billfiles
from ocrledger.bills.render import md, render
from ocrledger.engine.explain import explain
from ocrledger.engine.rate import rate
from ocrledger.model.display import printable
from ocrledger.rerate.rerater import rerate

TITLE = "\x1b]0;pwned\x07"  # OSC: set the terminal's title
CLEAR = "\x1b[2J"  # CSI: clear the screen
NASTY = f"acme{TITLE}{CLEAR}\u202egnp.exe\x9b1m"  # and a bidi override, and C1 CSI
URLS = ["https://evil.example/pay", "www.evil.example", "billing@evil.example", "mailto:x@evil.example",
        "ftp://evil.example", "HTTP://EVIL.EXAMPLE"]


def setup(ids: list[str]):  # type: ignore[no-untyped-def]
    cat = catalog([api("A", free_monthly=1, tiers=[{"upto": 10, "price": "0.0825"}, {"price": "0.0495"}])])
    acc = accounts(cat, account=[official(i, "A") for i in ids],
                   plan=[{"id": f"plan-{i}", "account": i, "kind": "dedicated", "api": "A", "quantity": 1,
                          "start": OCT} for i in ids])
    t0 = ms(OCT)
    cols = {
        "record_id": [f"{i}/r{k}" for i in ids for k in range(3)],
        "account": [i for i in ids for _ in range(3)],
        "api": ["A"] * 3 * len(ids),
        "ts": [t0 + 1000 * k for _ in ids for k in range(3)],
        "success": [1] * 3 * len(ids),
    }
    return cat, acc, pa.table({**cols, "ts": pa.array(cols["ts"], pa.int64()), "success": pa.array(cols["success"], pa.int8())})


def test_printable_escapes_controls_only() -> None:
    assert printable(NASTY) == "acme\\x1b]0;pwned\\x07\\x1b[2J\\u202egnp.exe\\x9b1m"
    assert printable("plain id é 中 \\ back") == "plain id é 中 \\ back"
    assert printable("a\tb\nc\x7f") == "a\\x09b\\x0ac\\x7f"


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_no_control_character_reaches_the_reader(fmt: str) -> None:
    cat, acc, table = setup([NASTY])
    bills = rate(table, cat, acc).bills
    out = render(bills, fmt, generated_at="2026-11-01T09:00:00+08:00")
    assert not any(ch in out for ch in ("\x1b", "\x07", "\u202e", "\x9b")), repr(out)
    seen = re.sub(r"\\(.)", r"\1", out) if fmt == "markdown" else out  # Markdown's backslash escapes undone
    assert "acme\\x1b]0;pwned\\x07\\x1b[2J\\u202egnp.exe\\x9b1m" in seen
    assert NASTY in json.loads(render(bills, "json"))[0]["account"]  # JSON keeps the exact id


def test_explain_escapes_controls() -> None:
    cat, acc, table = setup([NASTY])
    [item] = explain(table, f"{NASTY}/r0", cat, acc)
    text = item.text()
    assert "\x1b" not in text and "\\x1b]0;pwned" in text
    assert item.record_id == f"{NASTY}/r0"  # the data keeps it exact


@pytest.mark.skipif(not billfiles.available(), reason="compiled bill writer not built")
def test_compiled_bills_txt_shows_ids_as_render_does(tmp_path: Path) -> None:
    cat, acc, table = setup([NASTY, "plain"])
    result = rerate(table, cat, acc, out=tmp_path / "out")
    written = (tmp_path / "out" / "bills.txt").read_text(encoding="utf-8")
    assert written == render(result.bills, "text")
    assert "\x1b" not in written and "plan-acme\\x1b]0;pwned" in written


def test_markdown_makes_no_links_of_urls_or_addresses() -> None:
    cmarkgfm = pytest.importorskip("cmarkgfm")
    cat, acc, table = setup(URLS)
    doc = render(rate(table, cat, acc).bills, "markdown", generated_at="2026-11-01T09:00:00+08:00")
    html = cmarkgfm.github_flavored_markdown_to_html(doc)
    assert "<a " not in html, [line for line in html.splitlines() if "<a " in line]
    for url in URLS:  # still shown, as written
        assert url in html
    # the same check on single cells, with the specials a code span must keep
    for text in ["a|b@c.example", "``x`@y.example", "https://a.example/`x`|y"]:
        cell = cmarkgfm.github_flavored_markdown_to_html(f"| h |\n|---|\n| {md(text)} |\n")
        assert "<a " not in cell and cell.count("<td>") == 1, cell
