"""The kernel contract: the compiled kernel is the one loaded, codes agree, batches carry counters."""
from __future__ import annotations

import os
from dataclasses import fields

import numpy as np
import pytest
from helpers import (
    CATALOG,
    OCT,
    accounts,
    build_tables,
    calls,
    official,
    overflow_setup,
    repeat,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import scenarios

from ocrledger.codes import Fault, Source, Status
from ocrledger.engine.encode import encode, party_list
from ocrledger.engine.tables import extend_tables, plan_order
from ocrledger.io.calls import read_calls
from ocrledger.kernel import reference as _reference
from ocrledger.kernel import select as _kernel
from ocrledger.kernel.contract import KernelState, Outcomes
from ocrledger.model.accounts import Plan


def test_compiled_kernel_is_loaded() -> None:
    if os.environ.get("OCRLEDGER_PURE_PYTHON") == "1":
        pytest.skip("pure-Python run requested")
    from ocrledger.kernel import _core

    assert _kernel.IMPLEMENTATION == "cython"
    assert _kernel.default is _core
    assert _core.__file__.endswith((".so", ".pyd"))
    assert "cython" in _kernel.KERNELS and "reference" in _kernel.KERNELS


def test_c_enums_match_python_codes() -> None:
    from ocrledger.kernel import _core

    values = _core.enum_values()
    assert values["source"] == {s.name: s.value for s in Source}
    assert values["status"] == {s.name: s.value for s in (*Status, *Fault)}  # outcomes, then the stop codes


def _setup(rows, acc):  # type: ignore[no-untyped-def]
    table = read_calls(calls(rows), CATALOG)
    parties = party_list(acc.parties(), table)
    tables, plans = build_tables(CATALOG, acc, parties)
    enc = encode(table, parties, CATALOG.clock)
    return tables, np.array([p.quantity for p in plans], dtype=np.int64), enc.batch


@pytest.mark.parametrize("cuts", [[1], [100, 250], [7, 8, 9, 300], list(range(0, 640, 37))])
def test_batches_carry_counters(kernel: str, cuts: list[int]) -> None:
    acc = accounts(
        CATALOG,
        account=[official("u", "RecognizeIdcard", "RecognizeGeneral", "VerifyVATInvoice")],
        plan=[{"id": "p", "account": "u", "kind": "shared", "quantity": 500, "start": OCT}],
    )
    rows = (repeat(300, "u", "RecognizeIdcard", OCT, prefix="a")
            + repeat(250, "u", "RecognizeGeneral", OCT, prefix="b")
            + repeat(90, "u", "VerifyVATInvoice", OCT, prefix="c"))
    tables, quantity, batch = _setup(rows, acc)
    impl = _kernel.get(kernel)
    whole_state = KernelState.fresh(tables, quantity)
    whole = _kernel.run(impl, tables, whole_state, batch)
    state = KernelState.fresh(tables, quantity)
    edges = [0, *cuts, len(batch)]
    parts = [_kernel.run(impl, tables, state, batch.take(np.arange(a, b))) for a, b in zip(edges, edges[1:])]
    for name in ("status", "source", "plan", "tier", "amount"):
        assert np.array_equal(np.concatenate([getattr(p, name) for p in parts]), getattr(whole, name)), name
    for name, arr in whole_state.counters().items():
        assert np.array_equal(state.counters()[name], arr), name


@pytest.mark.parametrize("step", [1, 37, 300, 10_000])
def test_stepped_run_gives_the_same_outcomes_and_reports_progress(kernel: str, step: int) -> None:
    acc = accounts(
        CATALOG,
        account=[official("u", "RecognizeIdcard", "RecognizeGeneral")],
        plan=[{"id": "p", "account": "u", "kind": "shared", "quantity": 200, "start": OCT}],
    )
    rows = repeat(300, "u", "RecognizeIdcard", OCT, prefix="a") + repeat(150, "u", "RecognizeGeneral", OCT, prefix="b")
    tables, quantity, batch = _setup(rows, acc)
    impl = _kernel.get(kernel)
    whole_state = KernelState.fresh(tables, quantity)
    whole = _kernel.run(impl, tables, whole_state, batch)
    state = KernelState.fresh(tables, quantity)
    seen: list[int] = []
    out = Outcomes.empty(len(batch))
    got = _kernel.run(impl, tables, state, batch, out=out, step=step, progress=seen.append)
    assert got is out
    assert seen == [min(len(batch), k) for k in range(step, len(batch) + step, step)]
    for name in ("status", "source", "plan", "tier", "amount"):
        assert np.array_equal(getattr(out, name), getattr(whole, name)), name
    for name, arr in whole_state.counters().items():
        assert np.array_equal(state.counters()[name], arr), name


def test_stepped_run_is_all_or_nothing(kernel: str) -> None:
    # the error is in the second step: the counters of the step already rated are restored too
    cat, acc = overflow_setup()
    table = read_calls(calls(repeat(5, "u", "A", OCT)), cat)
    parties = party_list(acc.parties(), table)
    tables, plans = build_tables(cat, acc, parties)
    batch = encode(table, parties, cat.clock).batch
    state = KernelState.fresh(tables, np.zeros(0, np.int64))
    before = {k: v.copy() for k, v in state.counters().items()}
    seen: list[int] = []
    from ocrledger.errors import MoneyError

    with pytest.raises(MoneyError, match="call 1 of the batch"):
        _kernel.run(_kernel.get(kernel), tables, state, batch, step=1, progress=seen.append)
    assert seen == [1]  # the first call fits; 2 x 5e18 micro-units does not
    for name, arr in before.items():
        assert np.array_equal(state.counters()[name], arr)


def test_late_month_is_an_error_and_restores_state(kernel: str) -> None:
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard")])
    tables, quantity, batch = _setup(
        [("a", "u", "RecognizeIdcard", "2026-11-02T00:00:00+08:00", 1),
         ("b", "u", "RecognizeIdcard", "2026-10-02T00:00:00+08:00", 1)], acc)
    state = KernelState.fresh(tables, quantity)
    impl = _kernel.get(kernel)
    first = batch.take(np.array([1]))  # November call
    _kernel.run(impl, tables, state, first)
    before = {k: v.copy() for k, v in state.counters().items()}
    from ocrledger.errors import StateError

    with pytest.raises(StateError):
        _kernel.run(impl, tables, state, batch.take(np.array([0])))  # October after November
    for name, arr in before.items():
        assert np.array_equal(state.counters()[name], arr)


def test_reference_kernel_has_the_same_signature() -> None:
    import inspect

    from ocrledger.kernel import _core

    ref = inspect.signature(_reference.rate_batch)
    assert list(ref.parameters) == ["tables", "state", "batch", "out"]
    assert "rate_batch(tables, state, batch, out)" in (_core.rate_batch.__doc__ or "")


@given(st.lists(st.tuples(st.text(alphabet="aAb\u00e9\u4e2d\U0001f600\0 ", min_size=1, max_size=3),
                          st.integers(0, 3), st.integers(0, 3)), max_size=30, unique_by=lambda t: t[0]))
def test_plan_order_is_end_start_then_id_bytes(rows: list[tuple[str, int, int]]) -> None:
    # plan_order sorts with numpy (ids as a unicode array); the rule is the plain sort below, on UTF-8 bytes
    plans = [Plan(i, "a", "official", "dedicated", ("A",), 1, start, start + 1 + extra) for i, start, extra in rows]
    assert plan_order(plans) == sorted(plans, key=lambda p: (p.end, p.start, p.id.encode("utf-8")))


@settings(max_examples=60, deadline=None)
@given(scenario=scenarios())
def test_tables_of_listed_parties_extended_equal_tables_of_all(scenario) -> None:  # type: ignore[no-untyped-def]
    # the rerater builds the listed parties' tables while it reads the calls, then appends the unknown ones
    cat, acc, cols = scenario
    parties = party_list(acc.parties(), read_calls(cols, cat))
    known = list(acc.parties())
    assert parties[: len(known)] == known
    whole, plans = build_tables(cat, acc, parties)
    listed, listed_plans = build_tables(cat, acc, known)
    extended = extend_tables(listed, parties[len(known):])
    assert plans == listed_plans
    for f in fields(whole):
        a, b = getattr(whole, f.name), getattr(extended, f.name)
        assert np.array_equal(a, b) and (not isinstance(a, np.ndarray) or a.dtype == b.dtype), f.name
