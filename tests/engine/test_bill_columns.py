"""Bill columns and the compiled bill writer against the reference: ``make_bills`` + ``bills_to_json`` / ``render``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import OCT, accounts, api, calls, catalog, official, repeat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import scenarios

from ocrledger.bills import files as billfiles
from ocrledger.bills.render import render
from ocrledger.engine.bill_columns import LineArrays, bill_columns
from ocrledger.engine.billing import make_bills
from ocrledger.engine.encode import encode, party_list
from ocrledger.engine.qps import QpsArrays, addon_index, qps_lines, second_counts
from ocrledger.engine.rate import price_volume
from ocrledger.engine.tables import kernel_tables
from ocrledger.engine.usage import UsageCounts, summarize
from ocrledger.errors import MoneyError
from ocrledger.io.calls import read_calls
from ocrledger.kernel import select as _kernel
from ocrledger.kernel.contract import KernelState
from ocrledger.model.bills import bills_to_json
from ocrledger.model.clock import BillingClock, period_label

needs_writer = pytest.mark.skipif(not billfiles.available(), reason="compiled bill writer not built")


def rated(cat, acc, cols):  # type: ignore[no-untyped-def]
    """What ``rate()`` has before it makes bills: usage, parties, plans, QPS lines, kernel tables."""
    table = read_calls(cols, cat)
    parties = party_list(acc.parties(), table)
    tables, plans = kernel_tables(cat, acc, parties)
    state = KernelState.fresh(tables, plans.quantity)
    enc = encode(table, parties, cat.clock)
    out = _kernel.run(_kernel.get("cython"), tables, state, enc.batch)
    counted = UsageCounts(tables)
    counted.add(enc.batch, out)
    price_volume(cat, counted, enc.batch, out)
    qps = qps_lines(cat, addon_index(cat, acc), parties, *second_counts(enc.batch, out, tables.n_api))
    return summarize(tables, enc.batch, out), parties, plans, qps, tables  # qps: the mapping make_bills takes


def check_files(tmp_path: Path, cat, acc, cols) -> int:  # type: ignore[no-untyped-def]
    """Both files from columns equal the reference, for all periods and for each period alone; returns #bills."""
    usage, parties, plans, qps, tables = rated(cat, acc, cols)
    every = make_bills(usage, cat, parties, plans.objects(), qps)
    lines = LineArrays.from_lines(usage.lines, usage.width)
    for period in [None, *sorted({int(p) for p in lines.period.tolist()})]:
        wanted = every if period is None else [b for b in every if b.period == period_label(period)]
        got = bill_columns(lines, usage.plan_used, cat, parties, plans, QpsArrays.from_mapping(qps, len(cat.apis)),
                           tables, period)
        assert got is not None
        assert len(got) == len(wanted) and got.total() == sum(int(b.total.scaleb(6)) for b in wanted)
        billfiles.write(got, cat, parties, plans, tmp_path / "bills.json", tmp_path / "bills.txt")
        assert (tmp_path / "bills.json").read_text(encoding="utf-8") == bills_to_json(wanted) + "\n"
        assert (tmp_path / "bills.txt").read_text(encoding="utf-8") == render(wanted, "text")
    return len(every)


@needs_writer
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_columns_write_the_reference_bytes(tmp_path: Path, scenario) -> None:  # type: ignore[no-untyped-def]
    # random catalogs (graduated and volume tiers, every rounding mode, the verification pool), plans that
    # start, end and are refunded inside the window, three months in Shanghai, New York (DST) or UTC
    check_files(tmp_path, *scenario)


@needs_writer
def test_names_that_need_escaping_and_wide_characters(tmp_path: Path) -> None:
    # JSON escapes (quote, backslash, tab) in account and plan ids; non-ASCII codes and ids, whose text columns
    # are aligned by characters, not bytes; a tier label with an en dash; a QPS-over line; a refunded plan
    cat = catalog([api("Réçu", free_monthly=2, qps=1, tiers=[{"upto": 3, "price": "0.0825"}, {"price": "1"}]),
                   api("V", kind="verification", free_monthly=0, tiers=[{"price": "0.5"}])],
                  verification_free_total=3)
    names = ['quo"te', "back\\slash", "tab\there", "ünï"]
    acc = accounts(cat, account=[official(n, "Réçu", "V") for n in names], plan=[
        {"id": f'p"{k}é', "account": n, "kind": "dedicated", "api": "Réçu", "quantity": 2, "start": OCT,
         **({"refunded": "2026-10-20T00:00:00+08:00"} if k == 1 else {})}
        for k, n in enumerate(names)
    ])
    rows = []
    for k, n in enumerate(names):
        rows += repeat(8 + k, n, "Réçu", "2026-10-02T00:00:00+08:00", prefix=f"r{k}-", step_ms=100)
        rows += repeat(5, n, "V", "2026-10-05T00:00:00+08:00", prefix=f"v{k}-")
    assert check_files(tmp_path, cat, acc, calls(rows)) == len(names)


@needs_writer
def test_no_bills(tmp_path: Path) -> None:
    cat = catalog([api("A")])
    acc = accounts(cat, account=[official("a", "A")])
    assert check_files(tmp_path, cat, acc, calls([])) == 0
    assert (tmp_path / "bills.json").read_text() == "[]\n"


def test_a_sum_beyond_int64_falls_back_to_make_bills() -> None:
    # one call on each of two APIs at 5 * 10^12 CNY = 5 * 10^18 micro-units: each line fits int64, the bill
    # total (10^19) does not. The columns decline (their float check bounds sums at 2^62) and make_bills raises.
    price = [{"price": "5000000000000"}]
    cat = catalog([api("A", free_monthly=0, tiers=price), api("B", free_monthly=0, tiers=price)])
    acc = accounts(cat, account=[official("a", "A", "B")])
    cols = calls([("r1", "a", "A", "2026-10-02T00:00:00+08:00", 1), ("r2", "a", "B", "2026-10-03T00:00:00+08:00", 1)])
    usage, parties, plans, qps, tables = rated(cat, acc, cols)
    lines = LineArrays.from_lines(usage.lines, usage.width)
    assert bill_columns(lines, usage.plan_used, cat, parties, plans, QpsArrays.from_mapping(qps, 1), tables) is None
    with pytest.raises(MoneyError, match="bill total"):
        make_bills(usage, cat, parties, plans.objects(), qps)


@given(st.lists(st.integers(-(2**40), 2**42), max_size=40),
       st.sampled_from(["Asia/Shanghai", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]))
def test_labels_equal_label(instants: list[int], zone: str) -> None:
    clock = BillingClock.for_zone(zone)
    instants += [0, 1000, -1, 2**62, -(2**62), 253_402_300_799_999]  # whole seconds, far outside datetime's range
    assert clock.labels(np.array(instants, dtype=np.int64)) == [clock.label(t) for t in instants]
