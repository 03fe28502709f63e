"""End to end: ``ocrledger rerate`` of a generated Parquet month against a DuckDB SQL baseline, same file, same run.

    python benches/bench_e2e.py [--calls 10000000] [--work /tmp/e2e] [--repeat 3] [--synth]
    OCRLEDGER_BENCH_QUICK=1 python benches/bench_e2e.py          # ~200,000 calls, seconds
    python -m pytest benches/bench_e2e.py                          # the same under pytest-benchmark

The month is generated once (seeded) into ``--work`` (kept, so later runs reuse it): by default
``benches/gen_calls.py``'s month (5,000 Zipf accounts, the default 9-API catalog, 10,000 plans,
8 Parquet files that overlap in time, unsorted, 0.1% replayed record ids); with ``--synth`` the
issue-5 workload of ``benches/synth.py`` (20,000 accounts x 20 APIs, 122,000 plans, every rule
live). Then, in turns (one round of each per repetition, so both see the same load):

- ``ocrledger rerate --month 2026-10`` in a fresh process: bills.json, bills.txt, calls.parquet
  (every call explained), summary.json;
- the DuckDB baseline in a fresh process: the rules subset a data engineer would write in SQL
  with window functions - duplicates (first copy of a channel's record id), free quota per
  account, API and month, one dedicated plan per account and API, graduated PAYG tiers - writing
  the per-call attribution to Parquet and the per-line bills to JSON, as the rerate does.

Each process's wall time and peak RSS (``os.wait4``: that child only) are measured; the report
gives medians over ``--repeat`` rounds, calls/s, and the ratio DuckDB time / ocrledger time.
duckdb is a bench-only dependency (``pip install 'ocrledger[bench]'``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gen_calls import generate, synth_month  # noqa: E402

QUICK = os.environ.get("OCRLEDGER_BENCH_QUICK") == "1"
CALLS = 200_000 if QUICK else 10_000_000
MONTH = "2026-10"


def ensure_month(work: Path, n_calls: int, synth: bool, n_accounts: int | None = None) -> Path:
    """The generated month in ``work`` (generated once; a marker file records its size and kind)."""
    marker = work / "month.json"
    if n_accounts is None:
        n_accounts = (2_000 if synth else 500) if n_calls <= 1_000_000 else (20_000 if synth else 5_000)
    want = {"calls": n_calls, "synth": synth, "accounts": n_accounts}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return work
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if synth:
        synth_month(work, n_calls, n_accounts=n_accounts)
    else:
        generate(work, n_calls, n_accounts=n_accounts)
    marker.write_text(json.dumps(want))
    print(f"generated {n_calls:,} calls in {time.perf_counter() - t:.1f} s into {work}", file=sys.stderr)
    return work


def measure(cmd: list[str], env: dict[str, str] | None = None, out: Path | None = None) -> dict[str, float]:
    """Run ``cmd``; its wall time, CPU time and peak RSS (of that process alone, via wait4).

    ``out``, the program's output folder, is removed first, outside the timing: replacing the
    previous round's files would charge the program for freeing them (about 0.6 s for the
    rerate's 330 MB of outputs on the issue-5 month). Then ``os.sync()`` flushes what the previous
    program wrote, so that its write-back does not run during this one.
    """
    if out is not None:
        shutil.rmtree(out, ignore_errors=True)
    os.sync()
    with tempfile.TemporaryFile() as log:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log.read().decode()}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}


def rerate_cmd(work: Path, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "ocrledger", "rerate", "--accounts", str(work / "accounts"), "--calls",
           str(work / "calls"), "--month", MONTH, "--out", str(out), "--no-progress"]
    if (work / "catalog.toml").exists():
        cmd[4:4] = ["--catalog", str(work / "catalog.toml")]
    return cmd


def duckdb_cmd(work: Path, out: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--duckdb-run", str(work), str(out)]


def duckdb_sql(work: Path, out: Path) -> list[str]:
    """The baseline's statements: the rules subset with window functions, outputs as the rerate writes them."""
    from ocrledger.model.catalog import default_catalog, load_catalog

    catalog = load_catalog(work / "catalog.toml") if (work / "catalog.toml").exists() else default_catalog()
    free = ", ".join(f"('{a.code}', {a.free_monthly})" for a in catalog.apis)
    prices = ", ".join(f"('{a.code}', {t}, {tier.price})" for a in catalog.apis for t, tier in enumerate(a.tiers))
    tier_case = "CASE api " + " ".join(
        f"WHEN '{a.code}' THEN CASE "
        + " ".join(f"WHEN pos <= {tier.upto} THEN {t}" for t, tier in enumerate(a.tiers) if tier.upto is not None)
        + f" ELSE {len(a.tiers) - 1} END" for a in catalog.apis) + " END"
    calls = f"read_parquet('{work / 'calls'}/*.parquet')"
    plans = f"read_parquet('{work / 'accounts' / 'plans.parquet'}')"
    month = int(MONTH[:4]), int(MONTH[5:])
    return [
        f"CREATE TEMP TABLE free AS SELECT * FROM (VALUES {free}) t(api, free)",
        f"CREATE TEMP TABLE price AS SELECT * FROM (VALUES {prices}) t(api, tier, price)",
        # one dedicated plan per account, channel and API: the first by id
        f"""CREATE TEMP TABLE ded AS SELECT account, coalesce(channel, 'official') AS channel, api,
                arg_min(quantity, id) AS quantity
            FROM {plans} WHERE kind = 'dedicated' GROUP BY ALL""",
        f"""CREATE TEMP TABLE rated AS
            WITH c AS (
                SELECT record_id, account, api, coalesce(channel, 'official') AS channel, ts, success::INT AS ok,
                       epoch_ms(ts + 28800000) AS local  -- Asia/Shanghai, UTC+8 all year
                FROM {calls}),
            m AS (SELECT * FROM c WHERE year(local) = {month[0]} AND month(local) = {month[1]}),
            d AS (SELECT *, row_number() OVER (PARTITION BY channel, record_id ORDER BY ts, account, api, ok) > 1
                       AS dup FROM m),
            n AS (SELECT *, CASE WHEN NOT dup AND ok = 1 THEN row_number() OVER (
                           PARTITION BY account, channel, api, NOT dup AND ok = 1 ORDER BY ts, record_id) END AS n
                  FROM d),
            s AS (SELECT n.*, f.free, coalesce(p.quantity, 0) AS quantity,
                         CASE WHEN n > f.free + coalesce(p.quantity, 0) THEN n - f.free - coalesce(p.quantity, 0)
                         END AS pos
                  FROM n JOIN free f USING (api) LEFT JOIN ded p USING (account, channel, api)),
            t AS (SELECT *, CASE WHEN pos IS NOT NULL THEN {tier_case} END AS tier FROM s)
            SELECT record_id, account, api, channel, ts, strftime(local, '%Y-%m') AS period,
                   CASE WHEN dup THEN 'duplicate' WHEN ok = 0 THEN 'failed' ELSE 'charged' END AS status,
                   CASE WHEN n IS NULL THEN NULL WHEN n <= free THEN 'free' WHEN pos IS NULL THEN 'dedicated'
                        ELSE 'payg' END AS source,
                   t.tier, coalesce(price.price, 0) AS amount
            FROM t LEFT JOIN price USING (api, tier)""",
        f"COPY rated TO '{out / 'calls.parquet'}' (FORMAT PARQUET)",
        f"""COPY (SELECT account, channel, period, api, count(*) FILTER (status <> 'duplicate') AS calls,
                         count(*) FILTER (status = 'failed') AS failed, count(*) FILTER (source = 'free') AS free,
                         count(*) FILTER (source = 'dedicated') AS dedicated,
                         count(*) FILTER (source = 'payg') AS payg, sum(amount) AS amount_exact,
                         sum(amount) // 10000 * 10000 AS amount
                  FROM rated GROUP BY ALL ORDER BY ALL) TO '{out / 'bills.json'}' (FORMAT JSON)""",
    ]


def duckdb_run(work: Path, out: Path) -> None:
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET temp_directory = '{out / '.duckdb.tmp'}'")
    for sql in duckdb_sql(work, out):
        con.execute(sql)
    con.close()


def byte_compile_ocrledger() -> None:
    """Write the package's bytecode, as ``pip install`` does. From a source tree (an editable install)
    with PYTHONDONTWRITEBYTECODE set, as on the development machines, every run would otherwise
    compile the modules again (about 0.08 s of the command's start-up)."""
    import compileall

    import ocrledger

    compileall.compile_dir(str(Path(ocrledger.__file__).parent), quiet=1)


def bench(work: Path, n_calls: int, repeat: int, synth: bool, n_accounts: int | None = None,
          duckdb: bool = True) -> dict[str, object]:
    ensure_month(work, n_calls, synth, n_accounts)
    byte_compile_ocrledger()
    env = dict(os.environ, PYTHONHASHSEED="0")
    runs: dict[str, list[dict[str, float]]] = {"ocrledger": [], "duckdb": []} if duckdb else {"ocrledger": []}
    summary: dict[str, object] = {}
    for r in range(repeat):
        todo = [("ocrledger", rerate_cmd(work, work / "out-ocrledger"), work / "out-ocrledger")]
        if duckdb:
            todo.append(("duckdb", duckdb_cmd(work, work / "out-duckdb"), work / "out-duckdb"))
        for name, cmd, out in todo:
            m = measure(cmd, env, out)
            runs[name].append(m)
            print(f"round {r + 1} {name:9s} {m['wall_s']:7.2f} s wall  {m['cpu_s']:7.2f} s CPU  "
                  f"{n_calls / m['wall_s']:>12,.0f} calls/s  {m['peak_rss_mb']:7.0f} MB", file=sys.stderr)
        summary = json.loads((work / "out-ocrledger" / "summary.json").read_text())
    med = {name: {k: statistics.median(m[k] for m in ms) for k in ms[0]} for name, ms in runs.items()}
    report: dict[str, object] = {
        "calls": n_calls,
        "workload": "synth" if synth else "gen_calls",
        "accounts": json.loads((work / "month.json").read_text())["accounts"],
        "bills": summary.get("bills"),
        "rounds": repeat,
    }
    for name in runs:
        report[name] = {**{k: round(v, 3) for k, v in med[name].items()},
                        "best_wall_s": round(min(m["wall_s"] for m in runs[name]), 3),
                        "calls_per_s": round(n_calls / med[name]["wall_s"])}
    if duckdb:
        report["ratio_duckdb_over_ocrledger"] = round(med["duckdb"]["wall_s"] / med["ocrledger"]["wall_s"], 2)
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return report


# -- pytest-benchmark ----------------------------------------------------------------------------


def _month(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    return ensure_month(tmp_path_factory.getbasetemp() / "e2e-month", CALLS, False)


def test_e2e_rerate(benchmark, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    work = _month(tmp_path_factory)
    byte_compile_ocrledger()
    cmd = rerate_cmd(work, work / "out-ocrledger")
    result = benchmark.pedantic(lambda: measure(cmd, out=work / "out-ocrledger"), rounds=3 if QUICK else 1,
                                iterations=1)
    benchmark.extra_info.update(result)
    assert json.loads((work / "out-ocrledger" / "summary.json").read_text())["calls_read"] == CALLS


def test_e2e_duckdb_baseline(benchmark, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    import pytest

    pytest.importorskip("duckdb")
    work = _month(tmp_path_factory)
    cmd = duckdb_cmd(work, work / "out-duckdb")
    result = benchmark.pedantic(lambda: measure(cmd, out=work / "out-duckdb"), rounds=3 if QUICK else 1,
                                iterations=1)
    benchmark.extra_info.update(result)
    assert (work / "out-duckdb" / "calls.parquet").exists()


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--duckdb-run":
        duckdb_run(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=CALLS)
    p.add_argument("--work", type=Path, help="folder for the generated month (kept); default: a temporary one")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--synth", action="store_true", help="the issue-5 workload (20,000 accounts x 20 APIs)")
    p.add_argument("--accounts", type=int, help="accounts in the generated month (default: 5,000, or 20,000 with "
                   "--synth; a tenth of that up to 10^6 calls)")
    p.add_argument("--no-duckdb", action="store_true", help="time ocrledger only (scaling runs)")
    args = p.parse_args()
    if args.work:
        report = bench(args.work, args.calls, args.repeat, args.synth, args.accounts, not args.no_duckdb)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report = bench(Path(tmp), args.calls, args.repeat, args.synth, args.accounts, not args.no_duckdb)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
