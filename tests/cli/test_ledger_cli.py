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


def test_lifecycle_commands_on_an_existing_ledger(tmp_path: Path) -> None:
    assert run("demo", "--write", str(tmp_path)).returncode == 0
    db = str(tmp_path / "ledger.sqlite")
    assert run("ingest", "--db", db, "--accounts", str(tmp_path / "accounts.toml"), "--calls",
               str(tmp_path / "calls.csv")).returncode == 0
    oct1 = "2026-10-01T00:00:00+08:00"
    steps = [
        ("add-account", "--account", "new", "--activate", f"RecognizeIdcard={oct1}"),
        ("activate", "--account", "new", "--api", "RecognizeGeneral", "--at", oct1),
        ("buy-plan", "--id", "np", "--account", "new", "--kind", "dedicated", "--api", "RecognizeIdcard",
         "--quantity", "3", "--start", oct1),
        ("add-credential", "--key", "AK-new", "--account", "new"),
        ("add-qps-addon", "--account", "new", "--api", "RecognizeIdcard", "--qps", "5", "--start", oct1),
        ("add-alert", "--account", "new", "--kind", "plan_remaining", "--target", "np", "--threshold", "2"),
        ("retention", "--months", "12"),
    ]
    for step in steps:
        done = run(step[0], "--db", db, *step[1:])
        assert done.returncode == 0, (step, done.stderr)
    calls = tmp_path / "new.csv"
    # 203 calls by credential: 200 free, then the plan's 3 (remainders 2, 1, 0: below 2 at n201, used up at n202)
    calls.write_text("record_id,credential,api,ts,success\n" + "".join(
        f"n{k},AK-new,RecognizeIdcard,{1_790_784_000_000 + k * 1000},1\n" for k in range(203)))
    assert "203 calls rated" in run("ingest", "--db", db, "--calls", str(calls)).stdout
    plans = json.loads(run("plans", "--db", db, "--account", "new", "--at", "2026-10-02T00:00:00+08:00").stdout)
    assert [(p["id"], p["status"], p["remaining"]) for p in plans] == [("np", "exhausted", 0)]
    log = json.loads(run("log", "--db", db, "--plan", "np").stdout)
    assert [r["plan_remaining"] for r in log["rows"]] == [2, 1, 0] and log["next_after"] is None
    text = run("log", "--db", db, "--account", "new", "--limit", "2", "--format", "text").stdout
    assert text.splitlines()[-1].startswith("more: --after ")
    alerts = [json.loads(x) for x in run("alerts", "--db", db, "--peek").stdout.splitlines()]
    assert [(a["threshold"], a["record_id"]) for a in alerts] == [("2", "n201"), ("0", "n202")]
    assert "2 alerts acknowledged" in run("alerts", "--db", db, "--ack", str(alerts[-1]["id"])).stdout
    assert run("alerts", "--db", db).stdout == ""
    quota = run("quota", "--db", db, "--account", "new", "--format", "text", "--at", "2026-10-02T00:00:00+08:00")
    assert "plan np (dedicated): 0 of 3 left" in quota.stdout
    refund = run("refund", "--db", db, "--id", "np", "--at", "2026-10-05T00:00:00+08:00")
    assert refund.returncode == 0
    again = run("refund", "--db", db, "--id", "np", "--at", "2026-10-05T00:00:00+08:00")
    assert again.returncode == 2 and "refunded already" in again.stderr and again.stderr.count("\n") == 1
    bad = run("buy-plan", "--db", db, "--id", "x", "--account", "nobody", "--kind", "dedicated", "--api",
              "RecognizeIdcard", "--quantity", "1", "--start", oct1)
    assert bad.returncode == 2 and "not listed" in bad.stderr
    explained = json.loads(run("explain", "--db", db, "--record", "n202", "--format", "json").stdout)
    assert (explained[0]["plan"], explained[0]["plan_remaining"]) == ("np", 0)
