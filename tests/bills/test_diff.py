"""Bill diffs: per account, channel, month and API, calls by source and amounts; text, JSON and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import CATALOG, OCT, accounts, calls, official, repeat

from ocrledger.bills.diff import DiffError, diff_bills, load_bills
from ocrledger.engine.rate import rate
from ocrledger.model.bills import bills_to_json


@pytest.fixture(scope="module")
def bills() -> list:
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard", "RecognizeGeneral"), official("v", "RecognizeIdcard")])
    rows = (repeat(500, "u", "RecognizeIdcard", OCT) + repeat(300, "u", "RecognizeGeneral", OCT, prefix="g")
            + repeat(250, "v", "RecognizeIdcard", OCT, prefix="v"))
    return rate(calls(rows), CATALOG, acc).bills


def test_identical_bills_have_no_differences(bills: list) -> None:
    d = diff_bills(bills, bills)
    assert not d.has_changes and d.unchanged == 2
    assert "No differences (2 bills compared)" in d.to_text()


def test_changed_added_and_removed_lines(bills: list) -> None:
    u, v = bills
    line = u.line("RecognizeIdcard")
    fewer = replace(line, calls=line.calls - 100, payg=line.payg - 100, amount=line.amount - Decimal("8.25"),
                    amount_exact=line.amount_exact - Decimal("8.25"))
    old_u = replace(u, lines=(fewer,), total=fewer.amount)  # the General line was not billed before
    d = diff_bills([old_u], [u, v], old_name="issued", new_name="rerated")
    by_api = {(x.account, x.api): x for x in d.lines}
    changed = by_api[("u", "RecognizeIdcard")]
    assert changed.change == "changed" and changed.delta["payg"] == 100 and changed.delta["free"] == 0
    assert changed.amount_delta == Decimal("8.25")
    assert by_api[("u", "RecognizeGeneral")].change == "added"
    assert by_api[("v", "RecognizeIdcard")].change == "added"
    assert [(b.account, b.change) for b in d.bills] == [("u", "changed"), ("v", "added")]
    data = d.to_dict()
    assert data["old"] == "issued" and data["totals"]["CNY"]["delta"] == str(u.total + v.total - old_u.total)
    assert data["lines"][0]["delta"]["amount"] == "8.25"
    text = d.to_text()
    assert "RecognizeGeneral" in text and "+100" in text and "2 bills differ" in text
    back = diff_bills([u, v], [old_u])
    assert {x.change for x in back.lines} == {"changed", "removed"}


def test_load_bills_from_files_and_folders(tmp_path: Path, bills: list) -> None:
    (tmp_path / "a.json").write_text(bills_to_json(bills[:1]))
    (tmp_path / "b.json").write_text(bills[1].to_json())
    assert [b.key for b in load_bills(tmp_path)] == [b.key for b in bills]
    out = tmp_path / "out"
    out.mkdir()
    (out / "bills.json").write_text(bills_to_json(bills))
    (out / "summary.json").write_text("{}")
    assert len(load_bills(out)) == 2
    (tmp_path / "c.json").write_text(bills_to_json(bills[:1]))
    with pytest.raises(DiffError, match="appears twice"):
        load_bills(tmp_path)
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(DiffError, match="bad.json: is not JSON"):
        load_bills(tmp_path / "bad.json")


def test_cli_diff_text_json_and_exit_code(tmp_path: Path, bills: list) -> None:
    (tmp_path / "new.json").write_text(bills_to_json(bills))
    (tmp_path / "old.json").write_text(bills_to_json(bills[:1]))
    run = lambda *a: subprocess.run([sys.executable, "-m", "ocrledger", "diff", *a], capture_output=True,  # noqa: E731
                                    text=True, timeout=120)
    proc = run(str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [(x["account"], x["change"]) for x in data["bills"]] == [("v", "added")]
    assert run(str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--exit-code").returncode == 1
    assert run(str(tmp_path / "new.json"), str(tmp_path / "new.json"), "--exit-code").returncode == 0
    missing = run(str(tmp_path / "nope.json"), str(tmp_path / "new.json"))
    assert missing.returncode == 2 and "nope.json: cannot read" in missing.stderr
