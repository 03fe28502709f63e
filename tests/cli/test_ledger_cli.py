"""The ledger's sub-commands end to end: ingest (creating the file), bill, quota, close, alerts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocrledger", *args], capture_output=True, text=True, timeout=300)


def test_ledger_commands(tmp_path: Path) -> None:
    assert run("demo", "--write", str(tmp_path)).returncode == 0
    db = str(tmp_path / "ledger.sqlite")
    calls = str(tmp_path / "calls.csv")
    missing = run("ingest", "--db", db, "--calls", calls)
    assert missing.returncode == 2 and "give --accounts" in missing.stderr and "Traceback" not in missing.stderr
    first = run("ingest", "--db", db, "--accounts", str(tmp_path / "accounts.toml"), "--calls", calls)
    assert first.returncode == 0, first.stderr
    assert "127,440 calls rated" in first.stdout
    again = run("ingest", "--db", db, "--calls", calls)
    assert again.returncode == 0 and "already committed" in again.stdout
    provisional = run("bill", "--db", db, "--month", "2026-10", "--account", "seed-idcard")
    assert json.loads(provisional.stdout)[0]["total"] == "6110.00"
    text = run("bill", "--db", db, "--month", "2026-10", "--format", "text")
    assert "Total  CNY 6,110.00" in text.stdout
    assert run("close", "--db", db, "--month", "2026-10").stdout.startswith("closed 2026-10: 4 bills")
    closed = run("bill", "--db", db, "--month", "2026-10")
    assert [b["account"] for b in json.loads(closed.stdout)] == ["fin-7", "seed-idcard", "seed-plan", "shop-42"]
    quota = json.loads(run("quota", "--db", db, "--account", "fin-7", "--at", "2026-10-15T00:00:00+08:00").stdout)
    assert quota["verification_pool_remaining"] == 0
    # remaining counts every committed use; the table plan (500) paid 291 calls before its refund
    assert {p["id"]: p["remaining"] for p in quota["plans"]} == {"fin-7-shared-10000": 0, "fin-7-table-500": 209}
    assert run("alerts", "--db", db).stdout == ""
    twice = run("close", "--db", db, "--month", "2026-10")
    assert twice.returncode == 2 and twice.stderr.count("\n") == 1 and "already closed" in twice.stderr
