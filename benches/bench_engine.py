"""The Engine built once over many listed accounts: rate() on small and large batches, beside the one-shot rate() (same run).

python benches/bench_engine.py [--quick] [--accounts N] [--build 1000000]

Prints, for an Engine over ``--accounts`` listed accounts (30% of (account, API) pairs with a
dedicated plan, 10% of accounts with a shared plan, benches/synth.py): the median time of a
100-call batch and calls/s of the median 10,000-call batch (over ``ROUNDS`` passes), with the calls given as pyarrow Tables and as
dicts of numpy columns; then with the per-call outcome columns (``.calls``) and the Bill objects
(``.bills``) asked for, both made on first access; and the one-shot
``ocrledger.rate(calls, catalog, accounts)``, which compiles the setup on every call: its time is
the baseline the ratio is taken against. ``--build N`` also times building the Engine for N listed
accounts loaded from account tables (Parquet): load, then compile.
``pytest benches/bench_engine.py`` runs a quick version that checks the ratio only (never a time).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synth import make  # noqa: E402

from ocrledger import Engine, load_accounts, rate  # noqa: E402


def batches(work, size: int, count: int, arrow: bool = False) -> list:  # type: ignore[no-untyped-def]
    """``count`` batches of ``size`` time-ordered calls: dicts of numpy columns, or pyarrow Tables."""
    cols = work.columns(shuffle=False)
    n = len(cols["ts"])
    starts = np.linspace(0, n - size, count).astype(np.int64)
    parts = [{k: v[s : s + size] for k, v in cols.items()} for s in starts.tolist()]
    if arrow:
        import pyarrow as pa

        parts = [pa.table({k: pa.array(v) for k, v in part.items()}) for part in parts]
    return parts


ROUNDS = 3
"""Passes over the batches: the median is taken over every batch of every pass, so one burst of another
process's work on a shared machine moves it less than a single pass of ~50 batches (0.2 s)."""


def median_ms(engine: Engine, parts: list, use=lambda r: r) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(ROUNDS):
        for part in parts:
            t = time.perf_counter()
            use(engine.rate(part))
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def calls_per_s(engine: Engine, parts: list, use=lambda r: r) -> float:  # type: ignore[no-untyped-def]
    """Calls per second of the median batch (a shared machine's stalls move the mean, not the median)."""
    return len(parts[0]["ts"]) / (median_ms(engine, parts, use) / 1e3)


def measure(n_accounts: int, small_count: int = 200, large_count: int = 20, baseline_count: int = 3) -> dict[str, float]:
    """Medians of 100-call batches and calls/s of 10,000-call batches through one Engine, with the calls as
    pyarrow Tables (the engine's own form) and as dicts of numpy columns (converted on the way in); then the
    same with the outcome columns (``.calls``) and the Bill objects (``.bills``) asked for; and the one-shot
    ``rate()`` (the setup compiled on every call) as the baseline of the ratio."""
    work = make(n_calls=max(200_000, 10_000 * large_count), n_accounts=n_accounts)
    t0 = time.perf_counter()
    engine = Engine(work.catalog, work.accounts)
    built = time.perf_counter() - t0
    small, large = batches(work, 100, small_count), batches(work, 10_000, large_count)
    small_a, large_a = batches(work, 100, small_count, True), batches(work, 10_000, large_count, True)
    for part in small[:20] + large[:2] + small_a[:20] + large_a[:2]:  # warm up: first-touched pages, caches
        engine.rate(part).bills
    calls = lambda r: r.calls  # noqa: E731
    bills = lambda r: r.bills  # noqa: E731
    got = {
        "accounts": n_accounts, "plans": len(work.accounts.plans), "build_s": built,
        "small_arrow_ms": median_ms(engine, small_a), "small_dict_ms": median_ms(engine, small),
        "large_arrow_per_s": calls_per_s(engine, large_a), "large_dict_per_s": calls_per_s(engine, large),
        "small_calls_ms": median_ms(engine, small_a, calls), "large_calls_per_s": calls_per_s(engine, large_a, calls),
        "small_bills_ms": median_ms(engine, small_a, bills), "large_bills_per_s": calls_per_s(engine, large_a, bills),
    }
    one_shot = []
    for part in small[:baseline_count]:
        t = time.perf_counter()
        rate(part, work.catalog, work.accounts)
        one_shot.append(time.perf_counter() - t)
    got["one_shot_ms"] = statistics.median(one_shot) * 1e3
    got["ratio"] = got["one_shot_ms"] / got["small_dict_ms"]
    return got


def build_from_tables(n_accounts: int) -> dict[str, float]:
    """Seconds to load ``n_accounts`` listed accounts (one activation each of 8 APIs, a dedicated plan for 30%)
    from Parquet account tables, then to compile the Engine."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ocrledger import default_catalog

    cat = default_catalog()
    ids = [f"acc{i:07d}" for i in range(n_accounts)]
    codes = [a.code for a in cat.apis if a.kind == "recognition"][:6]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pq.write_table(pa.table({"id": ids, "channel": ["official"] * n_accounts}), root / "accounts.parquet")
        pq.write_table(pa.table({
            "account": [i for i in ids for _ in codes], "channel": ["official"] * (n_accounts * len(codes)),
            "api": codes * n_accounts, "activated": ["2026-01-01T00:00:00+08:00"] * (n_accounts * len(codes)),
        }), root / "activations.parquet")
        owners = ids[: int(n_accounts * 0.3)]
        pq.write_table(pa.table({
            "id": [f"p-{a}" for a in owners], "account": owners, "kind": ["dedicated"] * len(owners),
            "api": ["RecognizeIdcard"] * len(owners), "quantity": pa.array([10_000] * len(owners), pa.int64()),
            "start": ["2026-03-01T00:00:00+08:00"] * len(owners),
        }), root / "plans.parquet")
        t0 = time.perf_counter()
        accounts = load_accounts(root, cat)
        loaded = time.perf_counter() - t0
        t0 = time.perf_counter()
        Engine(cat, accounts)
        compiled = time.perf_counter() - t0
    return {"accounts": n_accounts, "load_s": loaded, "compile_s": compiled}


def test_engine_beats_the_one_shot_rate() -> None:
    """Quick: with 20,000 listed accounts a 100-call batch through a built Engine is far cheaper than a one-shot rate()."""
    got = measure(20_000, small_count=40, large_count=2, baseline_count=3)
    print(f"\n{got}")
    assert got["ratio"] > 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--accounts", type=int, nargs="*", default=None)
    parser.add_argument("--build", type=int, default=0, help="also time an Engine over N accounts from tables")
    args = parser.parse_args()
    sizes = args.accounts or ([2_000] if args.quick else [1_000, 100_000])
    print("accounts    plans  build s | 100-call median ms: arrow  dict  +calls  +bills | 10k-call batches,"
          " calls/s: arrow  dict  +calls  +bills | one-shot 100-call ms  ratio")
    for n in sizes:
        r = measure(n, small_count=50 if args.quick else 200, large_count=4 if args.quick else 50)
        print(f"{r['accounts']:>8,} {r['plans']:>8,} {r['build_s']:>8.2f} | {r['small_arrow_ms']:>25.3f}"
              f" {r['small_dict_ms']:>5.3f} {r['small_calls_ms']:>7.3f} {r['small_bills_ms']:>7.3f} |"
              f" {r['large_arrow_per_s']:>31,.0f} {r['large_dict_per_s']:>9,.0f} {r['large_calls_per_s']:>9,.0f}"
              f" {r['large_bills_per_s']:>9,.0f} | {r['one_shot_ms']:>20.1f} {r['ratio']:>5.0f}x")
    if args.build:
        r = build_from_tables(args.build)
        print(f"Engine over {r['accounts']:,} accounts from account tables: load {r['load_s']:.2f} s,"
              f" compile {r['compile_s']:.2f} s")


if __name__ == "__main__":
    main()
