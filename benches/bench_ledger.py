"""The ledger beside the SQLite floor measured in the same run: ingest, reopen, add_plan, bills; and the ledger on
PostgreSQL beside a COPY floor, with one worker and two workers on disjoint accounts.

The workload is the issue's: the default catalog, every API activated, 30% of (account, API) pairs
with a dedicated plan, 10% of the accounts with a shared plan, time-ordered calls of random accounts.
The floor inserts the same record ids into a SQLite table (channel, record_id, batch_id; primary key;
WAL; synchronous=FULL; one transaction per batch): what SQLite itself allows for one row per call.

The PostgreSQL figures use a server this run starts (tests/pg_server.py: initdb, fsync and synchronous_commit
on, as SQLite's synchronous=FULL); its floor COPYs the same record ids into a table with its primary key, one
transaction per batch.

python benches/bench_ledger.py [--accounts 1000 100000] [--quick] [--no-postgres]   (the issue's table, printed)
pytest benches/bench_ledger.py --benchmark-only                     (pytest-benchmark tables)
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))  # pg_server: the tests' throw-away server

import pg_server  # noqa: E402

from ocrledger.model.account_entries import Account, Plan  # noqa: E402
from ocrledger.model.accounts import Accounts  # noqa: E402
from ocrledger.model.catalog import Catalog, default_catalog  # noqa: E402
from ocrledger.store.ledger import Ledger  # noqa: E402

OCT_MS = 1_790_784_000_000  # 2026-10-01T00:00:00+08:00
DAY = 86_400_000


def setup(n_accounts: int, seed: int = 13) -> tuple[Catalog, Accounts]:
    """The issue's accounts: every API activated, 30% of pairs with a dedicated plan, 10% with a shared one."""
    cat = default_catalog()
    rng = np.random.default_rng(seed)
    before = OCT_MS - 90 * DAY
    accounts = [Account(f"acct-{k:07d}", "official", {a.code: before for a in cat.apis}) for k in range(n_accounts)]
    plans = []
    dedicated = [a.code for a in cat.apis if a.dedicated]
    for k in range(n_accounts):
        for code in dedicated:
            if rng.random() < 0.3:
                start = before + int(rng.integers(0, 120 * DAY))
                plans.append(Plan(f"d-{k}-{code}", f"acct-{k:07d}", "official", "dedicated", (code,),
                                  int(rng.integers(100, 5000)), start, start + 365 * DAY))
        if rng.random() < 0.1:
            plans.append(Plan(f"s-{k}", f"acct-{k:07d}", "official", "shared",
                              tuple(a.code for a in cat.apis if a.shared), int(rng.integers(1000, 50_000)) * 10,
                              before, before + 365 * DAY))
    return cat, Accounts(tuple(accounts), tuple(plans))


def calls(cat: Catalog, n_accounts: int, n: int, start: int, prefix: str, seed: int, *, half: int | None = None
          ) -> dict[str, np.ndarray]:
    """``n`` time-ordered calls of random accounts and APIs from instant ``start``, one ms or more apart
    (``half`` 0 or 1: of the even or the odd accounts only, two disjoint halves)."""
    rng = np.random.default_rng(seed)
    codes = np.array([a.code for a in cat.apis], dtype=object)
    who = rng.integers(0, n_accounts, n) if half is None else 2 * rng.integers(0, n_accounts // 2, n) + half
    return {
        "record_id": np.array([f"{prefix}{k:09d}" for k in range(n)], dtype=object),
        "account": np.array([f"acct-{k:07d}" for k in who], dtype=object),
        "api": codes[rng.integers(0, len(codes), n)],
        "ts": start + np.cumsum(rng.integers(1, 20, n)).astype(np.int64),
        "success": (rng.random(n) < 0.97).astype(np.int8),
    }


def split(cols: dict[str, np.ndarray], size: int) -> list[dict[str, np.ndarray]]:
    n = len(cols["ts"])
    return [{k: v[i : i + size] for k, v in cols.items()} for i in range(0, n, size)]


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def floor(parts: list[dict[str, np.ndarray]], folder: Path) -> list[float]:
    """Seconds of each batch inserted into the floor's table (WAL, synchronous=FULL, a transaction a batch)."""
    path = folder / f"floor-{len(parts[0]['ts'])}.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE records(channel TEXT NOT NULL, record_id TEXT NOT NULL, batch_id TEXT NOT NULL, "
               "PRIMARY KEY(channel, record_id)) WITHOUT ROWID")
    times = []
    for k, part in enumerate(parts):
        t = time.perf_counter()
        db.execute("BEGIN")
        db.executemany("INSERT INTO records VALUES ('official', ?, ?)",
                       zip(part["record_id"].tolist(), [f"b{k}"] * len(part["ts"])))
        db.execute("COMMIT")
        times.append(time.perf_counter() - t)
    db.close()
    return times


def ingest(ledger: Ledger, parts: list[dict[str, np.ndarray]], tag: str) -> list[float]:
    return [timed(lambda: ledger.ingest(part, f"{tag}-{k}")) for k, part in enumerate(parts)]


def rate_of(times: list[float], size: int) -> float:
    return size * len(times) / sum(times)


def measure(n_accounts: int, *, big: int = 10_000, n_big: int = 10, n_small: int = 200) -> dict[str, float]:
    """Every figure of the issue's table for ``n_accounts`` listed accounts (seconds, calls/s), floor included."""
    cat, acc = setup(n_accounts)
    out: dict[str, float] = {"accounts": n_accounts, "plans": len(acc.plans)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "bench.sqlite"
        out["create_s"] = timed(lambda: Ledger.create(path, cat, acc).close())
        ledger = Ledger.open(path)
        warm = calls(cat, n_accounts, 2 * big, OCT_MS, "w", 1)
        ingest(ledger, split(warm, big), "warm")  # warm-up: the file's pages, the imports
        big_parts = split(calls(cat, n_accounts, n_big * big, OCT_MS + DAY, "b", 2), big)
        t_big = ingest(ledger, big_parts, "big")
        small_parts = split(calls(cat, n_accounts, n_small * 100, OCT_MS + 2 * DAY, "s", 3), 100)
        t_small = ingest(ledger, small_parts, "small")
        out.update(big_calls_per_s=rate_of(t_big, big), big_p50_s=float(np.median(t_big)),
                   small_calls_per_s=rate_of(t_small, 100), small_p50_s=float(np.median(t_small)),
                   small_p99_s=float(np.percentile(t_small, 99)))
        ledger.close()
        one = calls(cat, n_accounts, 100, OCT_MS + 3 * DAY, "r", 4)

        def reopen() -> None:
            with Ledger.open(path) as again:
                again.ingest(one, "reopen")

        out["reopen_batch_s"] = timed(reopen)
        ledger = Ledger.open(path)
        buys = [timed(lambda k=k: ledger.add_plan(id=f"bought-{k}", account=f"acct-{(k * 7919) % n_accounts:07d}",
                                                  kind="shared", quantity=1000, start=OCT_MS + 4 * DAY))
                for k in range(20)]
        out["add_plan_s"] = float(np.median(buys))
        bill = [timed(lambda k=k: ledger.bills("2026-10", f"acct-{(k * 104729) % n_accounts:07d}")) for k in range(20)]
        out["one_bill_s"] = float(np.median(bill))
        every: list[Any] = []
        out["all_bills_s"] = timed(lambda: every.extend(ledger.bill_texts("2026-10")))
        out["bills"] = len(every)
        ledger.close()
        f_big = floor(split(calls(cat, n_accounts, n_big * big, OCT_MS, "fb", 5), big), folder)
        f_small = floor(split(calls(cat, n_accounts, n_small * 100, OCT_MS, "fs", 6), 100), folder)
        out.update(floor_big_per_s=rate_of(f_big, big), floor_small_per_s=rate_of(f_small, 100),
                   floor_small_p50_s=float(np.median(f_small)))
    return out


def copy_batches(db: Any, parts: list[dict[str, np.ndarray]], tag: str) -> None:
    """The COPY floor: each batch's record ids COPY'd into ``floor``, one transaction a batch."""
    for k, part in enumerate(parts):
        with db.transaction(), db.cursor().copy("COPY floor(channel, record_id, batch_id) FROM STDIN "
                                                 "(FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "text"])
            batch = f"{tag}-{k}"
            for r in part["record_id"].tolist():
                copy.write_row(("official", r, batch))


def _worker(kind: str, url: str, parts: list[dict[str, np.ndarray]], tag: str, go: Any, out: Any) -> None:
    """One process: its own connection (a ledger, or a plain one for the floor), its batches after the common
    start; reports (start, end)."""
    import psycopg

    conn = Ledger.open(url) if kind == "ledger" else psycopg.connect(url, autocommit=True)
    with conn:
        go.wait()
        t = time.perf_counter()
        ingest(conn, parts, tag) if kind == "ledger" else copy_batches(conn, parts, tag)
        out.put((t, time.perf_counter()))


def floor_table(url: str) -> None:
    """A new, empty ``floor`` table: (channel, record_id, batch_id), its primary key as the records table's."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS public.floor")
        db.execute("CREATE TABLE public.floor(channel TEXT NOT NULL, record_id TEXT NOT NULL, batch_id TEXT NOT "
                   "NULL, PRIMARY KEY(channel, record_id))")


def parallel(kind: str, url: str, jobs: list[list[dict[str, np.ndarray]]], tag: str) -> float:
    """Calls per second of ``len(jobs)`` processes at once (all calls over the span from first start to last end)."""
    ctx = multiprocessing.get_context("fork")
    go, out = ctx.Barrier(len(jobs)), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(kind, url, parts, f"{tag}{w}", go, out))
             for w, parts in enumerate(jobs)]
    for p in procs:
        p.start()
    spans = [out.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
        assert p.exitcode == 0, f"a {tag} worker failed"
    n = sum(len(part["ts"]) for parts in jobs for part in parts)
    return n / (max(e for _, e in spans) - min(s for s, _ in spans))


def measure_pg(n_accounts: int, *, big: int = 10_000, n_big: int = 10) -> dict[str, float]:
    """The ledger on PostgreSQL: 10,000-call batches with one worker and with two on disjoint accounts, and the
    COPY floor (one and two workers) in the same run, on a server with fsync and synchronous_commit on."""
    server = pg_server.server(durable=True)
    cat, acc = setup(n_accounts)
    url = server.url("bench")
    out: dict[str, float] = {"accounts": n_accounts}
    out["pg_create_s"] = timed(lambda: Ledger.create(url, cat, acc).close())
    with Ledger.open(url) as ledger:
        ingest(ledger, split(calls(cat, n_accounts, 2 * big, OCT_MS, "w", 1), big), "warm")
    one = split(calls(cat, n_accounts, n_big * big, OCT_MS + DAY, "p", 2), big)
    out["pg_1w_calls_per_s"] = parallel("ledger", url, [one], "one")
    two = [split(calls(cat, n_accounts, n_big * big, OCT_MS + 2 * DAY, f"q{h}-", 3 + h, half=h), big)
           for h in (0, 1)]
    out["pg_2w_calls_per_s"] = parallel("ledger", url, two, "two")
    plain = pg_server.split_url_for_driver(server.url())
    floor_table(plain)
    f_one = split(calls(cat, n_accounts, n_big * big, OCT_MS, "f", 5), big)
    out["pg_floor_1w_per_s"] = parallel("floor", plain, [f_one], "f")
    f_two = [split(calls(cat, n_accounts, n_big * big, OCT_MS, f"g{h}-", 6 + h), big) for h in (0, 1)]
    out["pg_floor_2w_per_s"] = parallel("floor", plain, f_two, "g")
    return out


def report_pg(r: dict[str, float]) -> str:
    return "\n".join([
        f"PostgreSQL, {r['accounts']:,.0f} accounts (created in {r['pg_create_s']:.1f} s), 10,000-call batches:",
        f"  1 worker: {r['pg_1w_calls_per_s']:,.0f} calls/s; COPY floor {r['pg_floor_1w_per_s']:,.0f}/s: ratio "
        f"{r['pg_1w_calls_per_s'] / r['pg_floor_1w_per_s']:.2f}",
        f"  2 workers, disjoint accounts: {r['pg_2w_calls_per_s']:,.0f} calls/s "
        f"({r['pg_2w_calls_per_s'] / r['pg_1w_calls_per_s']:.2f}x one worker); COPY floor, 2 workers "
        f"{r['pg_floor_2w_per_s']:,.0f}/s ({r['pg_floor_2w_per_s'] / r['pg_floor_1w_per_s']:.2f}x)",
    ])


def report(r: dict[str, float]) -> str:
    return "\n".join([
        f"{r['accounts']:,.0f} accounts, {r['plans']:,.0f} plans (created in {r['create_s']:.1f} s)",
        f"  ingest, 10,000-call batches: {r['big_calls_per_s']:,.0f} calls/s (p50 {r['big_p50_s'] * 1e3:.0f} ms); "
        f"SQLite floor {r['floor_big_per_s']:,.0f}/s: ratio {r['big_calls_per_s'] / r['floor_big_per_s']:.2f}",
        f"  ingest, 100-call batches: {r['small_calls_per_s']:,.0f} calls/s (p50 {r['small_p50_s'] * 1e3:.1f} ms, "
        f"p99 {r['small_p99_s'] * 1e3:.1f} ms); SQLite floor {r['floor_small_per_s']:,.0f}/s "
        f"(p50 {r['floor_small_p50_s'] * 1e3:.1f} ms): ratio {r['small_calls_per_s'] / r['floor_small_per_s']:.2f}",
        f"  reopen the file, then one 100-call batch: {r['reopen_batch_s'] * 1e3:.0f} ms",
        f"  buy one plan (add_plan): {r['add_plan_s'] * 1e3:.1f} ms",
        f"  one account's bill for the month: {r['one_bill_s'] * 1e3:.1f} ms",
        f"  every bill of the month: {r['all_bills_s']:.2f} s for {r['bills']:,.0f} bills",
    ])


QUICK = os.environ.get("OCRLEDGER_BENCH_QUICK") == "1"
SIZES = [100, 10_000]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Catalog, int]:
    n = 1_000 if QUICK else 10_000
    cat, acc = setup(n)
    path = tmp_path_factory.mktemp("ledger") / "bench.sqlite"
    Ledger.create(path, cat, acc).close()
    return path, cat, n


@pytest.fixture(scope="module")
def pg_prepared():  # type: ignore[no-untyped-def]
    """A ledger on a PostgreSQL server of this run's own (fsync on), and an empty COPY floor table."""
    pg_server.require()
    server = pg_server.server(durable=True)
    n = 1_000 if QUICK else 10_000
    cat, acc = setup(n)
    url = server.url("bench")
    Ledger.create(url, cat, acc).close()
    floor_table(pg_server.split_url_for_driver(url))
    yield url, cat, n
    pg_server.stop_all()


@pytest.mark.parametrize("batch", SIZES)
def test_ledger_ingest(benchmark, prepared, batch: int) -> None:  # type: ignore[no-untyped-def]
    """One batch into a warm ledger file: the store's reads, rating, the deduction log, the commit."""
    ingest_rounds(benchmark, *prepared, batch)


@pytest.mark.parametrize("batch", SIZES)
def test_pg_ledger_ingest(benchmark, pg_prepared, batch: int) -> None:  # type: ignore[no-untyped-def]
    """One batch into a warm PostgreSQL ledger: the same work, on the server."""
    ingest_rounds(benchmark, *pg_prepared, batch)


@pytest.mark.parametrize("batch", SIZES)
def test_pg_copy_floor(benchmark, pg_prepared, batch: int) -> None:  # type: ignore[no-untyped-def]
    """The PostgreSQL floor: the same number of record ids COPY'd into (channel, record_id, batch_id), a transaction
    a batch."""
    import psycopg

    url, cat, _ = pg_prepared
    counter = iter(range(10**9))
    db = psycopg.connect(pg_server.split_url_for_driver(url), autocommit=True)

    def setup_round():  # type: ignore[no-untyped-def]
        return (db, [calls(cat, 10, batch, OCT_MS, f"f{batch}-{next(counter)}-", 0)], "b"), {}

    benchmark.pedantic(copy_batches, setup=setup_round, rounds=5, iterations=1)
    benchmark.extra_info["records_per_s"] = batch / benchmark.stats.stats.median
    db.close()


def ingest_rounds(benchmark, target: Any, cat: Catalog, n: int, batch: int) -> None:  # type: ignore[no-untyped-def]
    """Five timed batches of ``batch`` calls into the ledger at ``target`` after one warm-up batch."""
    counter = iter(range(10**9))
    ledger = Ledger.open(target)
    ledger.ingest(calls(cat, n, batch, OCT_MS, f"warm{batch}-", 7), f"warm-{batch}")

    def setup_round():  # type: ignore[no-untyped-def]
        k = next(counter)
        return (calls(cat, n, batch, OCT_MS + DAY + k * 60_000, f"m{batch}-{k}-", k),), {}

    benchmark.pedantic(lambda part: ledger.ingest(part, f"m{batch}-{next(counter)}"), setup=setup_round,
                       rounds=5, iterations=1)
    benchmark.extra_info["calls_per_s"] = batch / benchmark.stats.stats.median
    ledger.close()


@pytest.mark.parametrize("batch", SIZES)
def test_sqlite_floor(benchmark, tmp_path: Path, batch: int) -> None:  # type: ignore[no-untyped-def]
    """The floor: the same number of record ids into a (channel, record_id, batch_id) table, a transaction a batch."""
    cat = default_catalog()
    counter = iter(range(10**9))
    db = sqlite3.connect(tmp_path / "floor.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE records(channel TEXT NOT NULL, record_id TEXT NOT NULL, batch_id TEXT NOT NULL, "
               "PRIMARY KEY(channel, record_id)) WITHOUT ROWID")

    def one(ids: list[str]) -> None:
        db.execute("BEGIN")
        db.executemany("INSERT INTO records VALUES ('official', ?, 'b')", ((i,) for i in ids))
        db.execute("COMMIT")

    def setup_round():  # type: ignore[no-untyped-def]
        return (calls(cat, 10, batch, OCT_MS, f"f{next(counter)}-", 0)["record_id"].tolist(),), {}

    benchmark.pedantic(one, setup=setup_round, rounds=5, iterations=1)
    benchmark.extra_info["records_per_s"] = batch / benchmark.stats.stats.median
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--quick", action="store_true", help="1,000 accounts, fewer batches")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    sizes = [1_000] if args.quick else args.accounts
    results = [measure(n, n_big=3 if args.quick else 10, n_small=50 if args.quick else 200) for n in sizes]
    for r in results:
        print(report(r))
    if not args.no_postgres:
        reason = pg_server.missing_reason()
        if reason is not None:
            print(f"PostgreSQL: not measured ({reason})")
        else:
            for n in sizes:
                print(report_pg(measure_pg(n, n_big=3 if args.quick else 10)), flush=True)
            pg_server.stop_all()
    if len(results) > 1:
        a, b = results[0], results[-1]
        print(f"100-call batch p50 at {b['accounts']:,.0f} vs {a['accounts']:,.0f} accounts: "
              f"{b['small_p50_s'] / a['small_p50_s']:.2f}x")


if __name__ == "__main__":
    main()
