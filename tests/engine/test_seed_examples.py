"""The billing page's two worked examples, through rate(), the demo and the command line."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from helpers import CATALOG, OCT, accounts, calls, official, repeat

from ocrledger.engine.rate import rate


def test_idcard_120200_calls_cost_6110(kernel: str) -> None:
    # 120,200 calls, 200 free -> 120,000 PAYG:
    # 10,000 x 0.0825 = 825 ; 90,000 x 0.0495 = 4,455 ; 20,000 x 0.0415 = 830 ; total 6,110.00
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard")])
    result = rate(calls(repeat(120_200, "u", "RecognizeIdcard", OCT, step_ms=10_000)), CATALOG, acc, kernel=kernel)
    bill = result.bill("u", "2026-10")
    line = bill.line("RecognizeIdcard")
    assert (line.calls, line.free, line.payg) == (120_200, 200, 120_000)
    assert [(t.from_, t.to, t.calls, t.amount) for t in line.tiers] == [
        (1, 10_000, 10_000, Decimal("825.000000")),
        (10_001, 100_000, 90_000, Decimal("4455.000000")),
        (100_001, 500_000, 20_000, Decimal("830.000000")),
    ]
    assert bill.total == Decimal("6110.00")
    assert int(result.calls["amount"].sum()) == 6_110_000_000  # per-call micro-units add up to the line


def test_dedicated_plan_1000_with_5000_calls(kernel: str) -> None:
    # 5,000 calls: 200 free, then the 1,000-call plan, then 3,800 PAYG at 0.0825 = 313.50
    acc = accounts(
        CATALOG,
        account=[official("u", "RecognizeGeneral")],
        plan=[{"id": "p", "account": "u", "kind": "dedicated", "api": "RecognizeGeneral", "quantity": 1000,
               "start": OCT}],
    )
    bill = rate(calls(repeat(5_000, "u", "RecognizeGeneral", OCT)), CATALOG, acc, kernel=kernel).bill("u", "2026-10")
    line = bill.line("RecognizeGeneral")
    assert (line.free, line.dedicated, line.payg) == (200, 1_000, 3_800)
    assert bill.total == Decimal("313.50")
    assert [(p.id, p.used, p.remaining) for p in bill.plans] == [("p", 1000, 0)]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocrledger", *args], capture_output=True, text=True, timeout=300)


def test_demo_prints_both_examples() -> None:
    proc = run_cli("demo")
    assert proc.returncode == 0, proc.stderr
    assert "Total  CNY 6,110.00" in proc.stdout
    assert "RecognizeGeneral  5,000       0         0   200      1,000" in proc.stdout


def test_rate_cli_on_demo_files(tmp_path: Path) -> None:
    assert run_cli("demo", "--write", str(tmp_path)).returncode == 0
    proc = run_cli("rate", "--accounts", str(tmp_path / "accounts.toml"), "--calls", str(tmp_path / "calls.csv"),
                   "--month", "2026-10", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    bills = json.loads(proc.stdout)
    keys = [(b["account"], b["channel"], b["period"]) for b in bills]
    assert keys == sorted(keys) and len(keys) == 4
    by_account = {b["account"]: b for b in bills}
    assert by_account["seed-idcard"]["total"] == "6110.00"
    line = by_account["seed-plan"]["lines"][0]
    assert (line["free"], line["dedicated"], line["payg"]) == (200, 1000, 3800)
