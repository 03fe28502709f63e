"""The Dask rerate's steps run one after the other in this process (no cluster), with and without the compiled
helpers: the ranges' bills and calls equal the local rerate's."""
from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import scenarios

pa = pytest.importorskip("pyarrow")

import pyarrow.parquet as pq  # noqa: E402

from ocrledger.cluster import dask as steps  # noqa: E402
from ocrledger.model.bills import bills_to_json  # noqa: E402
from ocrledger.rerate import memory  # noqa: E402
from ocrledger.rerate.rerater import rerate  # noqa: E402


def arrow(cols: dict) -> object:
    return pa.table({k: (v.tolist() if v.dtype.kind in "UO" else v) for k, v in cols.items()})


def sorted_rows(table: object) -> list[tuple]:
    return sorted(zip(*(c.to_pylist() for c in table.columns)), key=repr)  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(max_calls=80), buckets=st.integers(1, 4), budget=st.integers(1, 40), compiled=st.booleans())
def test_the_steps_give_the_local_rerate(scenario, buckets: int, budget: int, compiled: bool) -> None:  # type: ignore[no-untyped-def]
    cat, acc, cols = scenario
    table = arrow(cols)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        local = rerate(table, cat, acc, out=tmp / "local")
        work, _ = steps.units(table, 7)  # chunks of 7 calls: several per unit
        setup = steps.Setup(f"steps-{id(acc)}", cat, acc, None)
        reads = [steps.read_unit(u, None, setup, cat.clock.max_ms, buckets, 7) for u in work]
        counts = steps.add_counts([steps.counts_of(r) for r in reads])[0]
        assert int(counts.column("n").to_numpy().sum()) == table.num_rows  # type: ignore[attr-defined]
        starts, sizes = steps.account_ranges(counts, budget)
        settled = [steps.settle_duplicates([steps.piece(r, b) for r in reads], starts) for b in range(buckets)]
        plain = mock.patch.object(memory, "rate_in_memory", side_effect=AssertionError("not the plain passes"))
        with mock.patch.object(memory, "available", lambda: compiled and memory._core is not None), \
                (plain if not compiled else mock.patch.object(memory, "tick")):
            parts = [steps.rate_range([steps.piece(s, j) for s in settled], setup, None, str(tmp / f"part-{j}"),
                                      True, True) for j in range(len(starts))]
        assert [p.summary["calls"] for p in parts] == sizes
        bills = sorted((b for p in parts for b in p.bills or []), key=lambda b: b.key)
        assert bills_to_json(bills) == bills_to_json(local.bills)
        got = pa.concat_tables([pq.read_table(tmp / f"part-{j}" / "calls.parquet") for j in range(len(starts))])
        assert sorted_rows(got) == sorted_rows(pq.read_table(tmp / "local" / "calls.parquet"))
