"""Seeded workloads for the benchmarks; OCRLEDGER_BENCH_QUICK=1 shrinks them to run in seconds."""
from __future__ import annotations

import os

import numpy as np
import pytest
import synth

from ocrledger.kernel.contract import Outcomes

QUICK = os.environ.get("OCRLEDGER_BENCH_QUICK") == "1"
KERNEL_CALLS = 200_000 if QUICK else 10_000_000
ACCOUNTS = 2_000 if QUICK else 20_000
SMALL_CALLS = 20_000  # both kernels side by side (the reference rates ~10^5 calls/s)
ENCODE_CALLS = 100_000 if QUICK else 1_000_000


@pytest.fixture(scope="session")
def work() -> synth.Workload:
    return synth.make(KERNEL_CALLS, ACCOUNTS)


@pytest.fixture(scope="session")
def small() -> synth.Workload:
    return synth.make(SMALL_CALLS, 2_000)


@pytest.fixture(scope="session")
def encode_work() -> synth.Workload:
    return synth.make(ENCODE_CALLS, ACCOUNTS)


def outcomes(n: int) -> Outcomes:
    """Outcome columns with their pages already touched (the caller preallocates them)."""
    out = Outcomes.empty(n)
    for col in (out.status, out.source, out.amount):
        col.fill(0)
    return out


def kernel_round(work: synth.Workload, batch):  # type: ignore[no-untyped-def]
    """benchmark.pedantic setup: fresh counters and outcomes each round (the kernel mutates both)."""
    def setup():  # type: ignore[no-untyped-def]
        return (work.tables, work.state(), batch, outcomes(len(batch))), {}
    return setup


def ids(values: np.ndarray) -> str:
    return f"{len(values):,}"
