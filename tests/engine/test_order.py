"""Charge order and duplicate hashing: compiled helpers against numpy, and the Cython kernel's
packed-state paths (timestamp order, grouped, mid-batch errors) against the reference kernel."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import Scenario, kernel_inputs, scenarios

from ocrledger.engine import order as grouping
from ocrledger.kernel import select as _kernel
from ocrledger.kernel.contract import KernelState, Outcomes

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
