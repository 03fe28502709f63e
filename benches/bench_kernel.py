"""The kernel on pre-encoded columns: Cython in timestamp order and grouped by party, both kernels
side by side on a small batch, and the checked run that rate() does around the kernel."""
from __future__ import annotations

import pytest
from conftest import kernel_round

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


def test_run_ts_order(benchmark, work) -> None:  # type: ignore[no-untyped-def]
    """What rate() pays: check, state copy, the kernel in charge order."""
    impl = _kernel.get("cython")
    benchmark.pedantic(_kernel.run, setup=lambda: ((impl, work.tables, work.state(), work.batch), {}), rounds=5)
