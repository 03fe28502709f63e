"""The per-call deduction log: rows agree with rate(), paging and filters, plan states, retention, explain --db."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from typing import Any

import numpy as np
import pytest
from helpers import CATALOG, OCT, accounts, calls, official, repeat
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_scenarios import charge_order, scenario, take

from ocrledger.codes import Source, Status
from ocrledger.engine.rate import rate
from ocrledger.errors import OcrledgerError
from ocrledger.model.money import format_exact
from conftest import Target

from ocrledger.store.ledger import Ledger


def _all(ledger: Ledger, **filters: Any) -> list[dict[str, Any]]:
    rows, after = [], 0
    while True:
        page = ledger.deductions(after=after, limit=7, **filters)  # small pages: the paging is exercised
        rows += page.rows
        if page.next_after is None:
            return rows
        after = page.next_after


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_batches=st.integers(1, 12))
def test_the_log_rows_agree_with_rate_on_the_same_calls(ledger_target: Target, seed: int, n_batches: int) -> None:
    cat, acc, data = scenario(seed)
    order = charge_order(data)
    ledger = Ledger.create(ledger_target.new(), cat, acc)
    for k, rows in enumerate(np.array_split(order, n_batches)):
        ledger.ingest(take(data, rows), f"b{k}")
    want = rate(data, cat, acc).calls
    volume = {a.code for a in cat.apis if a.tier_mode == "volume"}
    points = {a.code: a.shared_points for a in cat.apis}
    quantity = {p.id: p.quantity for p in acc.plans}
    left = dict(quantity)
    expected = []
    for i in range(len(want["ts"])):  # rate's columns are in charge order: the plan remainders follow it
        plan = str(want["plan"][i])
        remaining = None
        if plan:
            left[plan] -= points[want["api"][i]] if want["source"][i] == Source.SHARED else 1
            remaining = left[plan]
        # volume-tier PAYG calls: the log keeps the position price the kernel charged; the bill reprices
        # them at the tier the month's total reaches (docs/decisions.md), so only graduated amounts compare
        priced = want["api"][i] not in volume
        expected.append((str(want["record_id"][i]), str(want["account"][i]), str(want["channel"][i]),
                         str(want["api"][i]), Status(int(want["status"][i])).name.lower(),
                         Source(int(want["source"][i])).name.lower(), plan or None,
                         int(want["tier"][i]) + 1 if want["tier"][i] >= 0 and priced else None,
                         format_exact(int(want["amount"][i])) if priced else None, remaining))
    got = [(r["record_id"], r["account"], r["channel"], r["api"], r["status"], r["source"], r["plan"],
            r["tier"] if r["api"] not in volume else None, r["amount"] if r["api"] not in volume else None,
            r["plan_remaining"]) for r in _all(ledger)]
    assert Counter(got) == Counter(expected)
    assert len(got) == len(data["ts"])  # one row per call, duplicates included


def _ledger(target: Target) -> Ledger:
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard", "RecognizeGeneral"), official("w", "RecognizeIdcard")],
                   plan=[{"id": "p", "account": "u", "kind": "dedicated", "api": "RecognizeIdcard", "quantity": 50,
                          "start": OCT}])
    ledger = Ledger.create(target.new(), CATALOG, acc)
    ledger.ingest(calls(repeat(260, "u", "RecognizeIdcard", OCT, step_ms=60_000)
                        + repeat(10, "u", "RecognizeGeneral", "2026-10-02T00:00:00+08:00", prefix="g", success=0)
                        + repeat(5, "w", "RecognizeIdcard", "2026-10-03T00:00:00+08:00", prefix="w")), "b1")
    ledger.ingest(calls(repeat(3, "u", "RecognizeIdcard", OCT)), "b2")  # three duplicates
    return ledger


def test_filters_and_paging_of_the_log(ledger_target: Target) -> None:
    ledger = _ledger(ledger_target)
    everything = _all(ledger)
    assert len(everything) == 278 and [r["seq"] for r in everything] == sorted(r["seq"] for r in everything)
    # u's ID card calls, 260: 200 free, then the plan pays 50 (remainder 49 .. 0), then 10 PAYG at tiers 1
    plan_rows = _all(ledger, plan="p")
    assert [r["plan_remaining"] for r in plan_rows] == list(range(49, -1, -1))
    assert {r["source"] for r in plan_rows} == {"dedicated"}
    payg = _all(ledger, account="u", api="RecognizeIdcard", status=["charged"])
    assert Counter(r["source"] for r in payg) == {"free": 200, "dedicated": 50, "payg": 10}
    assert {r["amount"] for r in payg if r["source"] == "payg"} == {"0.082500"}  # tier 1 of the ID card
    assert len(_all(ledger, status=["failed"])) == 10
    assert [r["batch_id"] for r in _all(ledger, status=["duplicate"])] == ["b2"] * 3
    assert len(_all(ledger, account="w")) == 5
    # a time range: since <= ts < until; the ID card calls are one a minute from OCT
    window = _all(ledger, account="u", api="RecognizeIdcard", since="2026-10-01T01:00:00+08:00",
                  until="2026-10-01T02:00:00+08:00", status=["charged"])
    assert len(window) == 60 and window[0]["ts"] == "2026-10-01T01:00:00+08:00"
    page = ledger.deductions(account="u", limit=5)
    assert len(page.rows) == 5 and page.next_after == page.rows[-1]["seq"]
    assert ledger.deductions(account="nobody").rows == []
    with pytest.raises(OcrledgerError, match="unknown status"):
        ledger.deductions(status=["nope"])
    with pytest.raises(OcrledgerError, match="limit"):
        ledger.deductions(limit=0)


def test_plan_states_available_exhausted_expired_refunded(ledger_target: Target) -> None:
    ledger = _ledger(ledger_target)
    ledger.add_plan(id="q", account="u", kind="dedicated", api="RecognizeGeneral", quantity=5, start=OCT,
                    end="2026-10-20T00:00:00+08:00")
    ledger.add_plan(id="r", account="u", kind="shared", quantity=100, start=OCT)
    ledger.refund("r", "2026-10-15T00:00:00+08:00")

    def states(at: str) -> dict[str, tuple[str, int]]:
        return {s.id: (s.status, s.remaining) for s in ledger.plan_states("u", at=at)}

    # p paid 50 of 50; q and r paid nothing (the General calls failed)
    assert states("2026-10-10T00:00:00+08:00") == {"p": ("exhausted", 0), "q": ("available", 5),
                                                    "r": ("available", 100)}
    assert states("2026-10-16T00:00:00+08:00")["r"] == ("refunded", 0)
    assert states("2026-10-21T00:00:00+08:00")["q"] == ("expired", 0)


def test_retention_prunes_the_log_of_old_closed_months_and_duplicates_are_still_caught(ledger_target: Target) -> None:
    ledger = _ledger(ledger_target)
    ledger.set_retention(1)
    ledger.ingest(calls(repeat(4, "u", "RecognizeIdcard", "2026-11-02T00:00:00+08:00", prefix="n")), "nov")
    ledger.close_month("2026-10")  # keeps the last closed month: October's rows stay
    assert len(_all(ledger, since="2026-10-01T00:00:00+08:00", until="2026-11-01T00:00:00+08:00")) == 278
    ledger.ingest(calls(repeat(2, "u", "RecognizeIdcard", "2026-12-02T00:00:00+08:00", prefix="d")), "dec")
    ledger.close_month("2026-11")  # October is now older than the one month kept
    assert _all(ledger, until="2026-11-01T00:00:00+08:00") == []
    assert len(_all(ledger)) == 6
    # the record ids stay: an October record sent again is a duplicate, never charged
    before = ledger.bill_texts("2026-12")
    again = ledger.ingest(calls(repeat(1, "u", "RecognizeIdcard", OCT)), "resend")
    assert again.duplicates == 1 and again.late == 0
    assert ledger.bill_texts("2026-12") == before  # no adjustment lands on the open bill
    assert ledger.explain("r0000000") == [] and ledger.committed_by("r0000000") == "b1"  # pruned, still known
    with pytest.raises(OcrledgerError, match="at least 1"):
        ledger.set_retention(0)


def test_explain_from_the_log_on_the_command_line(ledger_target: Target) -> None:
    path = ledger_target.new(persistent=True)
    ledger = Ledger.create(path, CATALOG, accounts(CATALOG, account=[official("u", "RecognizeIdcard")]))
    ledger.ingest(calls(repeat(201, "u", "RecognizeIdcard", OCT)), "b1")
    ledger.close()
    run = [sys.executable, "-m", "ocrledger", "explain", "--db", path, "--record"]
    out = subprocess.run([*run, "r0000200", "--format", "json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    # the 201st call: the 200 free calls are used, PAYG position 1 at tier 1, 0.0825
    assert (row["source"], row["tier"], row["amount"], row["batch_id"]) == ("payg", 1, "0.082500", "b1")
    text = subprocess.run([*run, "r0000000"], capture_output=True, text=True, timeout=120)
    assert "charged, paid by free" in text.stdout
    missing = subprocess.run([*run, "nope"], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no record 'nope'" in missing.stderr


def test_call_details_per_day_filtered_and_paged(ledger_target: Target) -> None:
    ledger = _ledger(ledger_target)
    # u: 260 ID card calls on 1 Oct from 00:00, one a minute (200 free, 50 from plan p, 10 PAYG; b2 sent 3 of
    # them again: duplicates), 10 failed general calls on 2 Oct; w: 5 free ID card calls on 3 Oct
    rows = ledger.call_details()
    assert [(r["account"], r["api"], r["day"]) for r in rows] == [
        ("u", "RecognizeGeneral", "2026-10-02"), ("u", "RecognizeIdcard", "2026-10-01"), ("w", "RecognizeIdcard", "2026-10-03")]
    assert {k: rows[1][k] for k in ("calls", "duplicates", "free", "dedicated", "payg")} == {
        "calls": 260, "duplicates": 3, "free": 200, "dedicated": 50, "payg": 10}
    assert (rows[0]["calls"], rows[0]["failed"]) == (10, 10)
    assert [r["account"] for r in ledger.call_details(api="RecognizeIdcard")] == ["u", "w"]
    by_plan = ledger.call_details(plan="p")  # only the calls the plan paid: minutes 200..249
    assert [(r["calls"], r["dedicated"], r["free"]) for r in by_plan] == [(50, 50, 0)]
    hour = ledger.call_details("u", api="RecognizeIdcard", since="2026-10-01T01:00:00+08:00",
                               until="2026-10-01T02:00:00+08:00")  # minutes 60..119: all free
    assert [(r["calls"], r["free"], r["duplicates"]) for r in hour] == [(60, 60, 0)]
    assert ledger.call_details(after=1, limit=1) == [rows[1]]
    assert ledger.call_details(after=3) == [] and ledger.call_details("nobody") == []
    with pytest.raises(OcrledgerError, match="negative"):
        ledger.call_details(after=-1)
    # the command line: the same rows, a page at a time, ids escaped in text
    db = ledger_target.new(persistent=True)
    acc = accounts(CATALOG, account=[official("u\x1b[2J", "RecognizeIdcard")])
    with Ledger.create(db, CATALOG, acc) as file_ledger:
        file_ledger.ingest(calls(repeat(3, "u\x1b[2J", "RecognizeIdcard", OCT)), "b1")
        file_ledger.ingest(calls(repeat(2, "u\x1b[2J", "RecognizeIdcard", "2026-10-05T00:00:00+08:00", prefix="x")),
                           "b2")
    cli = [sys.executable, "-m", "ocrledger", "details", "--db", str(db)]
    page = json.loads(subprocess.run([*cli, "--limit", "1"], capture_output=True, text=True, check=True).stdout)
    assert [(r["account"], r["day"], r["calls"]) for r in page["rows"]] == [("u\x1b[2J", "2026-10-01", 3)]
    assert page["next_after"] == 1
    text = subprocess.run([*cli, "--after", "1", "--format", "text"], capture_output=True, text=True, check=True).stdout
    assert text.startswith("2026-10-05 u\\x1b[2J official RecognizeIdcard calls 2 ") and "\x1b" not in text
    bad = subprocess.run([*cli, "--limit", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--limit" in bad.stderr
