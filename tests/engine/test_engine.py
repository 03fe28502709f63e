"""The Engine: tables sliced for a batch's parties equal the whole setup's; rating a batch equals rating over every party."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import OCT, accounts, api, calls, catalog, official, repeat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import scenarios

from ocrledger import Engine, rate
from ocrledger.engine.bill_columns import bill_columns
from ocrledger.engine.billing import bills_from_columns
from ocrledger.engine.encode import encode, party_list
from ocrledger.engine.qps import addon_index, qps_arrays, second_counts
from ocrledger.engine.rate import outcome_columns, price_volume
from ocrledger.engine.tables import SetupTables
from ocrledger.engine.usage import UsageCounts
from ocrledger.io.calls import read_calls
from ocrledger.kernel import select as _kernel
from ocrledger.kernel.contract import KernelState
from ocrledger.model.bills import bills_to_json


def whole_setup_rate(cat, acc, cols, kernel):  # type: ignore[no-untyped-def]
    """The rating before the Engine: kernel tables and bills over every listed party, then the batch's unknown ones."""
    table = read_calls(cols, cat)
    parties = party_list(acc.parties(), table)
    tables, plan_cols = SetupTables(cat, acc).tables(parties)
    enc = encode(table, parties, cat.clock)
    out = _kernel.run(_kernel.get(kernel), tables, KernelState.fresh(tables, plan_cols.quantity), enc.batch)
    counted = UsageCounts(tables)
    counted.add(enc.batch, out)
    price_volume(cat, counted, enc.batch, out)
    qps = qps_arrays(cat, addon_index(cat, acc), parties, *second_counts(enc.batch, out, tables.n_api))
    cols = bill_columns(counted.line_arrays(), counted.plan_used, cat, parties, plan_cols.columns, qps, tables)
    bills = bills_from_columns(cols, cat, parties, plan_cols.columns)
    return bills, outcome_columns(cat, table.record_id, enc, out, plan_cols.ids_of(out.plan))


def pair_plans(setup: SetupTables, parties, party: int):  # type: ignore[no-untyped-def]
    """(activation row, dedicated plan ids per API, shared plan ids per API) of one party in ``setup.tables(parties)``."""
    tables, plans = setup.tables(parties)
    n_api = tables.n_api
    rows = []
    for offset, listed in ((tables.ded_offset, tables.ded_plans), (tables.sh_offset, tables.sh_plans)):
        rows.append([[plans.columns.ids[k] for k in listed[offset[party * n_api + a]:offset[party * n_api + a + 1]]]
                     for a in range(n_api)])
    activation = tables.activation[party * n_api:(party + 1) * n_api].tolist()
    return activation, rows, int(tables.party_official[party])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), data=st.data())
def test_tables_of_some_parties_are_the_whole_setup_tables_of_those_parties(scenario, data) -> None:  # type: ignore[no-untyped-def]
    cat, acc, _ = scenario
    setup = SetupTables(cat, acc)
    listed = acc.parties()
    unknown = [("nobody", "official"), ("nobody", "marketplace")]
    whole = listed + unknown
    some = data.draw(st.permutations(whole).flatmap(lambda p: st.integers(0, len(p)).map(lambda k: p[:k])))
    for i, party in enumerate(some):
        assert pair_plans(setup, some, i) == pair_plans(setup, whole, whole.index(party))


@pytest.mark.skipif(_kernel.helpers() is None, reason="the compiled helpers are not loaded")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), data=st.data())
def test_the_compiled_slice_equals_its_numpy_twin(scenario, data) -> None:  # type: ignore[no-untyped-def]
    """``slice_setup`` (one compiled pass over the parties' packed rows) gives the numpy twin's arrays, bit for bit,
    for parties in any order, listed or not, repeated or not."""
    cat, acc, _ = scenario
    setup = SetupTables(cat, acc)
    whole = acc.parties() + [("nobody", "official"), ("nobody", "marketplace")]
    some = data.draw(st.lists(st.sampled_from(whole), max_size=2 * len(whole)))
    market = np.array([ch != "official" for _, ch in some], dtype=np.int8)
    sel = setup.finder.find([a for a, _ in some], market) if some else np.zeros(0, dtype=np.int64)
    got = []
    with pytest.MonkeyPatch.context() as mp:
        for pure in ("0", "1"):
            mp.setenv("OCRLEDGER_PURE_PYTHON", pure)
            tables, plans = setup._slice(sel, some)
            got.append([tables.activation, tables.party_official, tables.plan_start, tables.plan_end, tables.ded_offset,
                        tables.ded_plans, tables.sh_offset, tables.sh_plans, plans.rows, plans.quantity])
    for compiled, twin in zip(*got):
        assert compiled.dtype == twin.dtype and np.array_equal(compiled, twin)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_engine_rate_equals_rating_over_the_whole_setup(scenario, kernel) -> None:  # type: ignore[no-untyped-def]
    cat, acc, cols = scenario
    got = Engine(cat, acc, kernel=kernel).rate(cols)
    bills, columns = whole_setup_rate(cat, acc, cols, kernel)
    assert bills_to_json(got.bills) == bills_to_json(bills)
    assert got.calls.keys() == columns.keys()
    for name in columns:
        assert np.array_equal(got.calls[name], columns[name]), name


def test_one_engine_rates_many_batches_each_from_scratch(kernel) -> None:  # type: ignore[no-untyped-def]
    cat = catalog([api("A", free_monthly=2), api("B", free_monthly=0)])
    acc = accounts(cat, account=[official("a", "A", "B"), official("b", "A"), official("c", "B")],
                   plan=[{"id": "pa", "account": "a", "kind": "dedicated", "api": "A", "quantity": 3,
                          "start": "2026-09-01T00:00:00+08:00"}])
    engine = Engine(cat, acc, kernel=kernel)
    first = calls(repeat(6, "a", "A", OCT) + repeat(2, "b", "A", OCT, prefix="b"))
    second = calls(repeat(3, "c", "B", OCT, prefix="c") + repeat(1, "zz", "A", OCT, prefix="z"))
    for batch in (first, second, first):
        assert bills_to_json(engine.rate(batch).bills) == bills_to_json(rate(batch, cat, acc, kernel=kernel).bills)
    # a: 2 free, 3 from the plan, 1 PAYG; the engine's own state is not changed by rating
    line = engine.rate(first).bill("a", "2026-10").line("A")
    assert (line.free, line.dedicated, line.payg) == (2, 3, 1)
    # only the batch's parties are billed: c and the unknown zz, not a or b
    assert [b.account for b in engine.rate(second).bills] == ["c", "zz"]
