"""Grouping by party, charge order and duplicate hashing: compiled helpers against numpy, and the
Cython kernel's packed-state paths (timestamp order, grouped, mid-batch errors) against the
reference kernel."""
from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from helpers import CATALOG, OCT, accounts, calls, official, repeat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import Scenario, kernel_inputs, scenarios

from ocrledger.codes import Status
from ocrledger.engine import order as grouping
from ocrledger.engine.encode import encode, party_list
from ocrledger.engine.tables import build_tables
from ocrledger.errors import MoneyError
from ocrledger.io.calls import read_calls
from ocrledger.kernel import select as _kernel
from ocrledger.kernel.contract import Batch, KernelState, Outcomes

needs_cython = pytest.mark.skipif(grouping._core is None, reason="the compiled helpers are not loaded")
QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
OUT = ("status", "source", "plan", "tier", "amount")


def random_ids(rng: np.random.Generator, n: int, pool: int) -> np.ndarray:
    """Record-id-like strings with repeats, uneven lengths and a non-ASCII character."""
    picks = rng.integers(0, pool, n)
    return np.array([f"id-{p}" + ("é" * (p % 3)) for p in picks.tolist()], dtype=str)


@pytest.mark.parametrize("seed", range(5))
def test_charge_order_is_ts_then_record_id(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    ts = rng.integers(0, 200, n).astype(np.int64)  # many ties
    rid = random_ids(rng, n, 1500)
    _, rank = np.unique(rid, return_inverse=True)
    expected = np.lexsort((rank.reshape(-1), ts))
    assert np.array_equal(grouping.charge_order(ts, rid), expected)
    assert grouping.charge_order(ts[:0], rid[:0]).shape == (0,)


@needs_cython
@pytest.mark.parametrize("seed", range(5))
def test_repeats_hashed_equal_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 5000 + seed * 1000
    rid = random_ids(rng, n, n // 2 if seed % 2 else n * 50)
    tag = rng.integers(0, 2, n).astype(np.int8)
    order = rng.permutation(n).astype(np.int64)
    hashed = grouping.repeats(rid, tag, order, compiled=True)
    plain = grouping.repeats(rid, tag, order, compiled=False)
    assert hashed.dtype == plain.dtype == np.int8
    assert np.array_equal(hashed, plain)


@needs_cython
def test_repeats_edge_cases() -> None:
    one = np.array(["a"], dtype=str)
    assert grouping.repeats(one, np.zeros(1, np.int8), np.zeros(1, np.int64), compiled=True).tolist() == [0]
    same = np.array(["x"] * 5, dtype=str)
    order = np.array([4, 2, 0, 1, 3], dtype=np.int64)
    tag = np.array([0, 0, 1, 0, 1], dtype=np.int8)  # the tag (channel) is part of the key
    for compiled in (True, False):
        assert grouping.repeats(same, tag, order, compiled=compiled).tolist() == [0, 1, 0, 1, 1]
    empty = np.array([""] * 3, dtype=str)  # itemsize 4 with an all-zero key
    assert grouping.repeats(empty, np.zeros(3, np.int8), np.arange(3), compiled=True).tolist() == [0, 1, 1]


@needs_cython
def test_dictionary_encode_hashed() -> None:
    rng = np.random.default_rng(7)
    values = random_ids(rng, 20_000, 700)
    for compiled in (True, False):
        code, uniques = grouping.dictionary_encode(values, compiled=compiled)
        assert code.dtype == np.int32
        assert np.array_equal(uniques[code], values)
        assert len(uniques) == len(set(values.tolist()))


@needs_cython
@pytest.mark.parametrize("n_party", [1, 3, 1000])
def test_group_by_party_is_a_stable_partition(n_party: int) -> None:
    rng = np.random.default_rng(n_party)
    n = 10_000
    batch = Batch(
        party=rng.integers(0, n_party, n).astype(np.int32), api=rng.integers(0, 9, n).astype(np.int32),
        ts=np.sort(rng.integers(0, 10**9, n)).astype(np.int64), period=rng.integers(0, 9, n).astype(np.int32),
        success=rng.integers(0, 2, n).astype(np.int8), duplicate=rng.integers(0, 2, n).astype(np.int8),
    )
    perm, grouped = grouping.group_by_party(batch, n_party, compiled=True)
    plain_perm, plain = grouping.group_by_party(batch, n_party, compiled=False)
    assert np.array_equal(perm, plain_perm)
    for f in fields(Batch):
        assert np.array_equal(getattr(grouped, f.name), getattr(plain, f.name)), f.name
    outs = Outcomes(
        status=rng.integers(0, 5, n).astype(np.int8), source=rng.integers(0, 5, n).astype(np.int8),
        plan=rng.integers(-1, 50, n).astype(np.int32), tier=rng.integers(-1, 5, n).astype(np.int16),
        amount=rng.integers(0, 10**6, n).astype(np.int64),
    )
    back = grouping.ungroup(perm, outs, compiled=True)
    plain_back = grouping.ungroup(perm, outs, compiled=False)
    for name in OUT:
        assert np.array_equal(getattr(back, name), getattr(plain_back, name)), name
        assert np.array_equal(getattr(back, name)[perm], getattr(outs, name)), name
    bad = batch.take(np.arange(n))
    bad.party[5] = n_party
    with pytest.raises(IndexError):
        grouping.group_by_party(bad, n_party, compiled=True)


def raw(kernel: str, tables, quantity, batch, spend=None):  # type: ignore[no-untyped-def]
    """rate_batch called directly (no restore), so a stop mid-batch shows the counters it left."""
    state = KernelState.fresh(tables, quantity)
    if spend is not None:
        state.payg_spend[:] = spend
        state.pair_period[:] = batch.period.min() if len(batch) else 0
    out = Outcomes.empty(len(batch))
    done = _kernel.get(kernel).rate_batch(tables, state, batch, out)
    return done, out, state.counters()


@needs_cython
@settings(max_examples=300, deadline=None, suppress_health_check=QUIET)
@given(scenario=scenarios(max_calls=120), grouped=st.booleans(), near_overflow=st.booleans())
def test_cython_packed_paths_agree_with_reference(scenario: Scenario, grouped: bool, near_overflow: bool) -> None:
    # Timestamp-ordered batches take the pack-everything path with prefetching (when large
    # enough against the pair count), grouped ones the pack-on-first-use path; a spend counter
    # near INT64_MAX makes the kernel stop mid-batch, after which the counters must still hold
    # every call before the stop.
    tables, quantity, batch = kernel_inputs(scenario)
    if grouped:
        batch = batch.take(np.argsort(batch.party, kind="stable"))
    spend = np.iinfo(np.int64).max - 3 * 10**5 if near_overflow else None
    done_c, out_c, counters_c = raw("cython", tables, quantity, batch, spend)
    done_r, out_r, counters_r = raw("reference", tables, quantity, batch, spend)
    assert done_c == done_r
    for name in OUT:
        assert np.array_equal(getattr(out_c, name)[: done_c + 1], getattr(out_r, name)[: done_r + 1]), name
    for name, arr in counters_r.items():
        assert np.array_equal(counters_c[name], arr), name


@settings(max_examples=150, deadline=None, suppress_health_check=QUIET)
@given(scenario=scenarios(max_calls=120))
def test_run_grouped_equals_run_in_charge_order(kernel: str, scenario: Scenario) -> None:
    tables, quantity, batch = kernel_inputs(scenario)
    impl = _kernel.get(kernel)
    plain_state = KernelState.fresh(tables, quantity)
    plain = _kernel.run(impl, tables, plain_state, batch)
    state = KernelState.fresh(tables, quantity)
    out = grouping.run_grouped(impl, tables, state, batch)
    for name in OUT:
        assert np.array_equal(getattr(out, name), getattr(plain, name)), name
    for name, arr in plain_state.counters().items():
        assert np.array_equal(state.counters()[name], arr), name


def test_run_grouped_raises_what_charge_order_raises(kernel: str) -> None:
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard"), official("v", "RecognizeIdcard")])
    rows = repeat(5, "u", "RecognizeIdcard", OCT, prefix="u") + repeat(5, "v", "RecognizeIdcard", OCT, prefix="v")
    table = read_calls(calls(rows), CATALOG)
    parties = party_list(acc.parties(), table)
    tables, _ = build_tables(CATALOG, acc, parties)
    batch = encode(table, parties, CATALOG.clock).batch
    impl = _kernel.get(kernel)
    messages = []
    for runner in (_kernel.run, grouping.run_grouped):
        state = KernelState.fresh(tables, np.zeros(0, dtype=np.int64))
        state.pair_period[:] = batch.period.min()
        state.free_used[:] = 200  # free quota used up: every call is PAYG
        state.payg_spend[:] = np.iinfo(np.int64).max - 1  # and the first PAYG call overflows
        before = {k: v.copy() for k, v in state.counters().items()}
        with pytest.raises(MoneyError) as info:
            runner(impl, tables, state, batch)
        messages.append(str(info.value))
        for name, arr in before.items():
            assert np.array_equal(state.counters()[name], arr), name
    assert messages[0] == messages[1]
    assert Status.ERR_OVERFLOW in {int(s) for s in Status}
