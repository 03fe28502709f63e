"""The kernel on pre-encoded columns: Cython in timestamp order and grouped by party, both kernels
side by side on a small batch, and the grouping that rate() does around the kernel."""
from __future__ import annotations

import pytest
from conftest import kernel_round

from ocrledger.engine import order as grouping
from ocrledger.kernel import select as _kernel


def test_cython_ts_order(benchmark, work) -> None:  # type: ignore[no-untyped-def]
    benchmark.extra_info["calls"] = len(work.batch)
    benchmark.pedantic(_kernel.get("cython").rate_batch, setup=kernel_round(work, work.batch), rounds=7)


def test_cython_grouped(benchmark, work) -> None:  # type: ignore[no-untyped-def]
    grouped = work.grouped()
    benchmark.extra_info["calls"] = len(grouped)
    benchmark.pedantic(_kernel.get("cython").rate_batch, setup=kernel_round(work, grouped), rounds=7)


@pytest.mark.parametrize("kernel", ["cython", "reference"])
def test_small_batch(benchmark, small, kernel) -> None:  # type: ignore[no-untyped-def]
    benchmark.extra_info["calls"] = len(small.batch)
    rounds = 20 if kernel == "cython" else 3
    benchmark.pedantic(_kernel.get(kernel).rate_batch, setup=kernel_round(small, small.batch), rounds=rounds)


def test_group_by_party(benchmark, work) -> None:  # type: ignore[no-untyped-def]
    benchmark.extra_info["calls"] = len(work.batch)
    benchmark.pedantic(grouping.group_by_party, args=(work.batch, work.tables.n_party), rounds=7)


def test_ungroup(benchmark, work) -> None:  # type: ignore[no-untyped-def]
    perm, grouped = grouping.group_by_party(work.batch, work.tables.n_party)
    state = work.state()
    out = _kernel.run(_kernel.get("cython"), work.tables, state, grouped)
    benchmark.pedantic(grouping.ungroup, args=(perm, out), rounds=7)


def test_run_grouped(benchmark, work) -> None:  # type: ignore[no-untyped-def]
    """What rate() pays: check, state copy, group, kernel, scatter back."""
    impl = _kernel.get("cython")
    benchmark.pedantic(grouping.run_grouped, setup=lambda: ((impl, work.tables, work.state(), work.batch), {}),
                       rounds=5)


def test_run_ts_order(benchmark, work) -> None:  # type: ignore[no-untyped-def]
    """The same without grouping (what rate() did before)."""
    impl = _kernel.get("cython")
    benchmark.pedantic(_kernel.run, setup=lambda: ((impl, work.tables, work.state(), work.batch), {}), rounds=5)
