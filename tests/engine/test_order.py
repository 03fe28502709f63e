"""The charge order and duplicate rule (``engine.order.charge``) against the SPEC in plain Python, compiled
helpers against their plain twins, and the Cython kernel's
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


KERNELS = [pytest.param(True, marks=needs_cython, id="compiled"), pytest.param(False, id="plain")]
TEXT = st.text(alphabet=st.sampled_from(["a", "b", "A", " ", "\x00", "\t", "é", "中", "\U0001f600", "\x7f"]),
               max_size=4)


def model(ts: list[int], ids: list[str], accounts: list[str], market: list[int], api: list[int],
          ok: list[int]) -> tuple[list[int], list[int]]:
    """The SPEC in plain Python: rows sorted by (ts, record_id bytes, account bytes, channel, API, success,
    input row); a row is a duplicate if its (record_id, channel) came earlier in that order."""
    order = sorted(range(len(ts)), key=lambda i: (ts[i], ids[i].encode("utf-8"), accounts[i].encode("utf-8"),
                                                  market[i], api[i], ok[i], i))
    seen: set[tuple[str, int]] = set()
    dup = [0] * len(ts)
    for i in order:
        dup[i] = int((ids[i], market[i]) in seen)
        seen.add((ids[i], market[i]))
    return order, dup


def keys(ids: list[str], accounts: list[str], market: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, data, party of each row, rank of each party) as the passes hand them to ``charge``."""
    pairs = sorted(set(zip(accounts, market)))
    at = {p: k for k, p in enumerate(pairs)}
    party = np.array([at[p] for p in zip(accounts, market)], dtype=np.int32).reshape(len(ids))
    rank = grouping.party_ranks([a for a, _ in pairs], [m for _, m in pairs])
    offsets, data = grouping.id_buffers(np.array(ids, dtype=object).reshape(len(ids)))
    return offsets, data, party, rank


@st.composite
def call_keys(draw: st.DrawFn) -> tuple[list[int], ...]:
    n = draw(st.integers(0, 40))
    accounts = draw(st.lists(TEXT, min_size=1, max_size=4))
    ids = draw(st.lists(TEXT, min_size=1, max_size=6))
    far = draw(st.booleans())  # instants spanning more than 2**32 ms: numpy's sort instead of the radix one
    instants = [0, 1, 2, 2**33] if far else [0, 1, 2]
    row = st.tuples(st.sampled_from(instants), st.sampled_from(ids), st.sampled_from(accounts), st.integers(0, 1),
                    st.integers(0, 2), st.integers(0, 1))
    rows = draw(st.lists(row, min_size=n, max_size=n))
    return tuple(list(col) for col in zip(*rows)) if rows else ([], [], [], [], [], [])  # type: ignore[return-value]


@pytest.mark.parametrize("compiled", KERNELS)
@settings(max_examples=300, deadline=None, suppress_health_check=QUIET)
@given(calls=call_keys(), data=st.data())
def test_charge_is_the_spec(compiled: bool, calls: tuple[list[int], ...], data: st.DataObject) -> None:
    ts, ids, accounts, market, api, ok = calls
    n = len(ts)
    offsets, data_, party, rank = keys(ids, accounts, market)  # type: ignore[arg-type]
    cols = [np.array(c, dtype=t).reshape(n) for c, t in ((ts, np.int64), (market, np.int8), (api, np.int32),
                                                         (ok, np.int8))]
    order, dup = grouping.charge(cols[0], offsets, data_, cols[1], party, rank, cols[2], cols[3], compiled=compiled)
    want_order, want_dup = model(ts, ids, accounts, market, api, ok)  # type: ignore[arg-type]
    assert order.dtype == np.int64 and dup.dtype == np.int8
    assert order.tolist() == want_order
    assert dup.tolist() == want_dup
    # the spill passes sort rows that lost their input order, with the flags as the last key: same sequence
    perm = np.array(data.draw(st.permutations(range(n))), dtype=np.int64).reshape(n)
    o2 = grouping.charge_order(cols[0][perm], *grouping.id_buffers(np.array(ids, dtype=object)[perm]), party[perm],
                               rank, cols[2][perm], cols[3][perm], dup[perm], compiled=compiled)

    def sequence(rows: list[int]) -> list[tuple[object, ...]]:  # rows equal in every key may swap places
        return [(ts[i], ids[i], accounts[i], market[i], api[i], ok[i], want_dup[i]) for i in rows]

    assert sequence(perm[o2].tolist()) == sequence(want_order)


@needs_cython
@pytest.mark.parametrize("seed", range(4))
def test_charge_compiled_equals_plain(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000 if seed < 2 else 70_000  # 70,000: the partitioned hash and radix sort
    ids = random_ids(rng, n, n // 2 if seed % 2 else n * 50).astype(object)
    accounts = rng.choice(["a", "b", "é", "a\x00"], n).tolist()
    market = rng.integers(0, 2, n).tolist()
    offsets, data, party, rank = keys(ids.tolist(), accounts, market)
    ts = rng.integers(0, 200 if seed % 2 else 10**6, n).astype(np.int64)  # many ties
    api = rng.integers(0, 3, n).astype(np.int32)
    ok = rng.integers(0, 2, n).astype(np.int8)
    tag = np.array(market, dtype=np.int8)
    hashed = grouping.charge(ts, offsets, data, tag, party, rank, api, ok, compiled=True)
    plain = grouping.charge(ts, offsets, data, tag, party, rank, api, ok, compiled=False)
    assert np.array_equal(hashed[0], plain[0]) and np.array_equal(hashed[1], plain[1])
    assert int(hashed[1].sum()) > 0


@pytest.mark.parametrize("compiled", KERNELS)
def test_charge_edge_cases(compiled: bool) -> None:
    for ids in ([], ["x"]):
        offsets, data, party, rank = keys(ids, ["a"] * len(ids), [0] * len(ids))
        col = np.zeros(len(ids), dtype=np.int64)
        order, dup = grouping.charge(col, offsets, data, col.astype(np.int8), party, rank, col, col, compiled=compiled)
        assert order.tolist() == list(range(len(ids))) and dup.tolist() == [0] * len(ids)
    ids = [""] * 5  # empty ids are a key too; the channel is part of it
    market = [0, 0, 1, 0, 1]
    offsets, data, party, rank = keys(ids, ["a"] * 5, market)
    ts = np.array([4, 2, 0, 1, 3], dtype=np.int64)
    zero = np.zeros(5, dtype=np.int64)
    order, dup = grouping.charge(ts, offsets, data, np.array(market, np.int8), party, rank, zero, zero,
                                 compiled=compiled)
    assert order.tolist() == [2, 3, 1, 4, 0] and dup.tolist() == [1, 1, 0, 0, 1]


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
