"""Ledger ingest throughput, SQLite commit included, beside rating alone on the same calls (same run).

pytest benches/bench_ledger.py --benchmark-only        (pytest-benchmark tables)
python benches/bench_ledger.py [--quick]               (calls/s and the ratio, printed)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from synth import make  # noqa: E402

from ocrledger.engine.rate import rate  # noqa: E402
from ocrledger.store.ledger import Ledger  # noqa: E402


def _batches(n_calls: int, batch: int, n_accounts: int) -> tuple[object, list[dict[str, np.ndarray]]]:
    work = make(n_calls=n_calls, n_accounts=n_accounts)
    cols = work.columns(shuffle=False)
    order = np.lexsort((cols["record_id"], cols["ts"]))
    parts = [{k: v[order[i : i + batch]] for k, v in cols.items()} for i in range(0, n_calls, batch)]
    return work, parts


def measure(n_calls: int, batch: int, n_accounts: int = 2_000) -> dict[str, float]:
    """Seconds and calls/s for ingesting ``n_calls`` in batches of ``batch`` into a fresh file."""
    work, parts = _batches(n_calls, batch, n_accounts)
    with tempfile.TemporaryDirectory() as folder:
        ledger = Ledger.create(Path(folder) / "bench.sqlite", work.catalog, work.accounts)
        started = time.perf_counter()
        times = []
        for k, part in enumerate(parts):
            t0 = time.perf_counter()
            ledger.ingest(part, f"b{k}")
            times.append(time.perf_counter() - t0)
        ingest = time.perf_counter() - started
        ledger.close_connection()
    started = time.perf_counter()
    for part in parts:
        rate(part, work.catalog, work.accounts)
    rating = time.perf_counter() - started
    k = max(1, len(times) // 5)
    return {"calls": n_calls, "batch": batch, "ingest_s": ingest, "ingest_calls_per_s": n_calls / ingest,
            "first_batches_s": sum(times[1 : k + 1]) / k, "last_batches_s": sum(times[-k:]) / k,
            "rate_s": rating, "rate_calls_per_s": n_calls / rating}


QUICK = os.environ.get("OCRLEDGER_BENCH_QUICK") == "1"
SIZES = [10_000, 100_000] if QUICK else [10_000, 1_000_000]


@pytest.mark.parametrize("batch", SIZES)
def test_ledger_ingest(benchmark, batch: int) -> None:  # type: ignore[no-untyped-def]
    """One batch into a warm ledger file (one batch already in): rating, duplicate look-ups, the commit."""
    work, parts = _batches(2 * batch, batch, 2_000)
    counter = iter(range(10**9))

    def setup():  # type: ignore[no-untyped-def]
        folder = tempfile.mkdtemp()
        ledger = Ledger.create(Path(folder) / f"b{next(counter)}.sqlite", work.catalog, work.accounts)
        ledger.ingest(parts[0], "warm-up")
        return (ledger,), {}

    benchmark.pedantic(lambda ledger: ledger.ingest(parts[1], "measured"), setup=setup, rounds=3, iterations=1)
    benchmark.extra_info["calls_per_s"] = batch / benchmark.stats.stats.median


@pytest.mark.parametrize("batch", SIZES)
def test_rate_only(benchmark, batch: int) -> None:  # type: ignore[no-untyped-def]
    """The same batch through rate() alone, no store: the ingest figure's baseline in this run."""
    work, parts = _batches(2 * batch, batch, 2_000)
    benchmark.pedantic(lambda: rate(parts[1], work.catalog, work.accounts), rounds=3, iterations=1)
    benchmark.extra_info["calls_per_s"] = batch / benchmark.stats.stats.median


def lookups(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000, 3_000_000)) -> list[tuple[int, float]]:
    """Seconds for 10,000 duplicate look-ups as the records table grows (an index, never a scan)."""
    from ocrledger.model.catalog import default_catalog

    out = []
    with tempfile.TemporaryDirectory() as folder:
        ledger = Ledger.create(Path(folder) / "lookups.sqlite", default_catalog())
        probe = np.array([f"q{i:09d}" for i in range(10_000)])
        channel = np.full(len(probe), "official")
        have = 0
        for size in sizes:
            ledger.db.execute("BEGIN")
            ledger.db.executemany("INSERT INTO records VALUES ('official', ?, 'b')",
                                  ((f"r{i:09d}",) for i in range(have, size)))
            ledger.db.execute("COMMIT")
            have = size
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                ledger._seen(probe, channel)
                best = min(best, time.perf_counter() - started)
            out.append((size, best))
        ledger.close_connection()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 calls only")
    args = parser.parse_args()
    cases = [(100_000, 10_000)] if args.quick else [(1_000_000, 10_000), (1_000_000, 1_000_000)]
    for n, b in cases:
        r = measure(n, b)
        print(f"{n:>10,} calls in batches of {b:>9,}: ingest {r['ingest_calls_per_s']:>12,.0f} calls/s "
              f"({r['ingest_s']:.2f} s), rate only {r['rate_calls_per_s']:>12,.0f} calls/s ({r['rate_s']:.2f} s), "
              f"ingest/rate time {r['ingest_s'] / r['rate_s']:.1f}x")
        if len(range(0, n, b)) > 5:  # the duplicate look-ups must not slow down as the ledger grows
            print(f"{'':>10}  seconds a batch, early batches {r['first_batches_s']:.3f} vs last {r['last_batches_s']:.3f}")
    for size, seconds in lookups((10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000, 3_000_000)):
        print(f"duplicate look-ups: 10,000 ids against {size:>9,} stored records in {seconds * 1000:.1f} ms")


if __name__ == "__main__":
    main()
