"""``explain``: one call from each source, and rejected, duplicate and failed calls, checked against the counters."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import OCT, accounts, api, calls, catalog, official

from ocrledger.engine.explain import Explanation, explain
from ocrledger.errors import OcrledgerError

TIERS = [{"upto": 3, "price": "0.5"}, {"price": "0.25"}]
CAT = catalog([
    api("A", name="ID card", free_monthly=2, shared_points=10, tiers=TIERS),
    api("V", name="Verify", kind="verification", shared_points=10, tiers=TIERS),
    api("W", name="Volume", free_monthly=0, tier_mode="volume", tiers=TIERS),
], verification_free_total=1)
ACC = accounts(
    CAT,
    account=[official("u", "A", "V", "W"), official("late", "A", at="2026-10-10T00:00:00+08:00"),
             {"id": "shop", "channel": "marketplace"}],
    plan=[
        {"id": "ded", "account": "u", "kind": "dedicated", "api": "A", "quantity": 2, "start": OCT},
        {"id": "sh", "account": "u", "kind": "shared", "apis": ["A"], "quantity": 25, "start": OCT},
        {"id": "future", "account": "u", "kind": "shared", "apis": ["A"], "quantity": 100,
         "start": "2026-12-01T00:00:00+08:00"},
        {"id": "shop-sh", "account": "shop", "channel": "marketplace", "kind": "shared", "quantity": 20, "start": OCT},
    ],
)
T0 = 1_790_784_000_000  # 2026-10-01T00:00:00+08:00
ROWS = (
    # u/A: 2 free, 2 dedicated, 2 shared (20 of 25 points; 5 left is too little), then PAYG 1..6 across 2 tiers
    [(f"a{i}", "u", "A", T0 + 1000 * (i + 1), 1) for i in range(12)]
    + [("a-failed", "u", "A", T0 + 20_000, 0), ("a3", "u", "A", T0 + 30_000, 1)]  # a3 again: duplicate
    + [("v0", "u", "V", T0 + 40_000, 1), ("v1", "u", "V", T0 + 41_000, 1)]  # pool of 1, then PAYG
    + [(f"w{i}", "u", "W", T0 + 50_000 + i, 1) for i in range(5)]  # volume: 5 PAYG -> all at tier 2
    + [("late-0", "late", "A", T0 + 1000, 1), ("ghost-0", "nobody", "A", T0 + 1000, 1)]
    + [(f"s{i}", "shop", "A", T0 + 1000 * i, 1, "marketplace") for i in range(3)]  # 2 paid, 1 rejected
    + [("same-id", "u", "A", T0 + 60_000, 1), ("same-id", "shop", "A", T0 + 60_000, 1, "marketplace")]
)
CALLS = calls(ROWS)


def one(record: str, channel: str | None = None, kernel: str | None = None) -> Explanation:
    (e,) = explain(CALLS, record, CAT, ACC, channel=channel, kernel=kernel)
    return e


def test_free_call(kernel: str) -> None:
    e = one("a1", kernel=kernel)
    assert (e.status, e.source, e.amount_exact) == ("charged", "free", Decimal("0"))
    assert (e.free_kind, e.free_total, e.free_used_before, e.free_left_after) == ("monthly", 2, 1, 0)
    assert "Free quota comes first: 1 of A's 2 free calls" in e.text()


def test_dedicated_call_remainder_before_and_after() -> None:
    e, _ = explain(CALLS, "a3", CAT, ACC)  # the first a3 (the second is a duplicate on the same channel)
    assert (e.source, e.plan, e.plan_before, e.plan_after) == ("dedicated", "ded", 1, 0)
    assert e.free_left_after == 0


def test_shared_call_takes_points() -> None:
    e = one("a5")
    assert (e.source, e.plan, e.plan_before, e.plan_after) == ("shared", "sh", 15, 5)
    checks = {p.id: p.verdict for p in e.plans}
    assert checks == {"ded": "too little left", "sh": "paid", "future": "not reached"}
    assert "Plan sh (shared) paid: 15 points left before, it took 10, 5 left after." in e.text()


def test_payg_call_tier_position_and_price() -> None:
    e = one("a9")  # PAYG positions: a6=1, a7=2, a8=3, a9=4 -> tier 2
    assert (e.source, e.payg_position, e.tier, e.tier_from, e.tier_to) == ("payg", 4, 2, 4, None)
    assert (e.unit_price, e.amount_exact) == (Decimal("0.25"), Decimal("0.250000"))
    verdicts = {p.id: (p.verdict, p.remaining_before) for p in e.plans}
    assert verdicts == {"ded": ("too little left", 0), "sh": ("too little left", 5), "future": ("not started", 100)}
    text = e.text()
    assert "had 5 points left, fewer than the 10 the call needs" in text and "had not started yet" in text
    assert "PAYG call 4 of A in 2026-10" in text and "tier 2 (4 and up)" in text


def test_payg_first_tier() -> None:
    e = one("a6")
    assert (e.payg_position, e.tier, e.unit_price, e.amount_exact) == (1, 1, Decimal("0.5"), Decimal("0.500000"))


def test_verification_pool() -> None:
    first, second = one("v0"), one("v1")
    assert (first.source, first.free_kind, first.free_left_after) == ("free", "pool", 0)
    assert (second.source, second.free_used_before, second.payg_position) == ("payg", 1, 1)
    assert "lifetime pool of 1 free verification calls" in second.text()


def test_volume_tier_is_the_month_total() -> None:
    e = one("w0")
    assert (e.tier_mode, e.payg_position, e.month_payg_calls, e.tier) == ("volume", 1, 5, 2)
    assert e.amount_exact == Decimal("0.250000")
    assert "volume pricing" in e.text()


def test_failed_call() -> None:
    e = one("a-failed")
    assert (e.status, e.source, e.amount_exact) == ("failed", "none", Decimal("0"))
    assert "FAILED" in e.text() and "consume no free quota" in e.text()


def test_duplicate_call() -> None:
    first, dup = explain(CALLS, "a3", CAT, ACC)
    assert first.status == "charged" and dup.status == "duplicate"
    assert dup.duplicate_of == first.ts
    assert "never charged twice" in dup.text()


def test_rejected_before_activation() -> None:
    e = one("late-0")
    assert e.status == "rejected_inactive"
    assert "activated at 2026-10-10T00:00:00+08:00, after the call" in e.text()


def test_rejected_unknown_account() -> None:
    assert "is not listed on the official channel" in one("ghost-0").text()


def test_marketplace_plan_then_rejected() -> None:
    paid, rejected = one("s1", "marketplace"), one("s2", "marketplace")
    assert (paid.source, paid.plan, paid.plan_before, paid.plan_after) == ("shared", "shop-sh", 10, 0)
    assert paid.free_kind is None and "no free quota" in paid.text()
    assert rejected.status == "rejected_no_plan"
    assert [(p.id, p.verdict, p.remaining_before) for p in rejected.plans] == [("shop-sh", "too little left", 0)]


def test_same_id_on_two_channels() -> None:
    both = explain(CALLS, "same-id", CAT, ACC)
    assert sorted(e.channel for e in both) == ["marketplace", "official"]
    assert all(e.status != "duplicate" for e in both)
    assert [e.channel for e in explain(CALLS, "same-id", CAT, ACC, channel="official")] == ["official"]


def test_unknown_record() -> None:
    with pytest.raises(OcrledgerError, match="not in the calls"):
        explain(CALLS, "nope", CAT, ACC)


def test_amounts_agree_with_the_bill() -> None:
    from ocrledger.engine.rate import rate

    bill = rate(CALLS, CAT, ACC).bill("u", "2026-10")
    payg = [one(f"a{i}") for i in range(6, 12)] + [one("same-id", "official")]
    assert sum(e.amount_exact for e in payg) == bill.line("A").amount_exact


def test_json_dict_is_serialisable() -> None:
    data = json.loads(json.dumps(one("a5").to_dict()))
    assert data["plan"] == "sh" and data["plans"][1]["verdict"] == "paid"


def test_cli(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ocrledger", *args], capture_output=True, text=True, timeout=300)

    assert run("demo", "--write", str(tmp_path)).returncode == 0
    base = ["explain", "--accounts", str(tmp_path / "accounts.toml"), "--calls", str(tmp_path / "calls.csv")]
    proc = run(*base, "--record", "idc-010200")
    assert proc.returncode == 0, proc.stderr
    assert "PAYG call 10,001" in proc.stdout and "0.0495" in proc.stdout
    proc = run(*base, "--record", "gen-000500", "--format", "json")
    assert json.loads(proc.stdout)[0]["plan_after"] == 699
    proc = run(*base, "--record", "missing")
    assert proc.returncode == 2 and proc.stderr.startswith("ocrledger: error:") and proc.stderr.count("\n") == 1
