"""The issue-5 month rerated locally and on LocalClusters of 1 and 2 workers: time, speedup and where it goes.

    python benches/bench_dask.py [--calls 10000000] [--accounts 20000] [--work /tmp/dask-bench] [--repeat 1]
    OCRLEDGER_BENCH_QUICK=1 python benches/bench_dask.py      # 200,000 calls, 2,000 accounts: well under a minute
    OCRLEDGER_BENCH_QUICK=1 python -m pytest benches/bench_dask.py

The month is ``benches/synth.py``'s (20 APIs, Zipf accounts, every rule live), written by
``gen_calls.synth_month`` as 4 Parquet files and account tables into ``--work`` (kept for later runs).
Each round, in turn (so every configuration sees the same load):

- **local**: ``ocrledger rerate`` in a fresh process (every output), and again with ``--bills-only``;
- **dask N** for N = 1, 2: a LocalCluster of N single-thread worker processes, started once before
  the rounds (an existing cluster: its start is not timed), and ``ocrledger.dask.rerate`` from this
  process with every output, then with ``bills_only``. Each run compiles the setup on its workers again.

For the Dask runs the report gives where the time goes: the read step (reading, validating, splitting by
record id, counting per account; the workers compile their Engine meanwhile), the duplicates-and-rating step
(the shuffles, settling duplicates, rating and writing each account range), and publishing (joining the bill
files on the client); and the worker-seconds per task kind from the task stream (compute, and transfer
between workers). The ratios are of wall times measured in the same round; nothing is asserted about them
(the machine is shared), only that every run writes the same bills as the local rerate.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import MONTH, byte_compile_ocrledger, ensure_month, measure, rerate_cmd  # noqa: E402

QUICK = os.environ.get("OCRLEDGER_BENCH_QUICK") == "1"
CALLS = 200_000 if QUICK else 10_000_000
ACCOUNTS = 2_000 if QUICK else 20_000
WORKERS = (1, 2)


def task_seconds(stream: list[dict[str, Any]]) -> dict[str, float]:
    """Worker-seconds per (task function, action) from a distributed task stream."""
    from dask.utils import key_split

    spent: dict[str, float] = collections.defaultdict(float)
    for event in stream:
        name = key_split(event["key"])
        for ss in event["startstops"]:
            spent[f"{name} {ss['action']}"] += ss["stop"] - ss["start"]
    return {k: round(v, 3) for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v >= 0.005}


def dask_run(client: Any, work: Path, out: Path, bills_only: bool) -> dict[str, Any]:
    """One Dask rerate: wall time, the steps, task-stream seconds, and the CPU seconds of the whole cluster (every
    worker process, and this process, which holds the client and the LocalCluster's scheduler): steadier than wall
    time on a shared machine, and comparable with the local rerate's CPU."""
    import distributed

    from ocrledger import dask as odask

    def process_cpu() -> float:
        """CPU seconds (user + system) of this process so far (sent by value to each worker by ``client.run``)."""
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    workers0, here0 = client.run(process_cpu), process_cpu()
    with distributed.get_task_stream(client) as ts:
        t = time.perf_counter()
        result = odask.rerate(work / "calls", work / "catalog.toml", work / "accounts", month=MONTH, out=out,
                              scheduler=client, bills_only=bills_only, tune_malloc=True)  # as the command
        wall = time.perf_counter() - t
    workers1, here1 = client.run(process_cpu), process_cpu()
    worker_cpu = sum(workers1[w] - workers0.get(w, 0.0) for w in workers1)
    d = result.summary["dask"]
    return {"wall_s": round(wall, 3), "cpu_s": round(worker_cpu + here1 - here0, 3),
            "worker_cpu_s": round(worker_cpu, 3), "client_and_scheduler_cpu_s": round(here1 - here0, 3),
            "read_s": d["read_seconds"], "dedup_rate_write_s": d["shuffle_and_rate_seconds"],
            "publish_s": round(wall - d["read_seconds"] - d["shuffle_and_rate_seconds"], 3),
            "ranges": d["account_ranges"], "largest_range": d["largest_range"],
            "range_seconds": d["rate_seconds_per_range"], "tasks": task_seconds(ts.data)}


def bench(work: Path, n_calls: int, n_accounts: int, repeat: int, workers: tuple[int, ...] = WORKERS) -> dict[str, Any]:
    import logging

    import distributed

    logging.getLogger("distributed").setLevel(logging.ERROR)  # the in-process scheduler's INFO lines
    ensure_month(work, n_calls, True, n_accounts)
    byte_compile_ocrledger()
    env = dict(os.environ, PYTHONHASHSEED="0")
    runs: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    clusters = {n: distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                            silence_logs=logging.ERROR) for n in workers}
    try:
        clients = {n: distributed.Client(c) for n, c in clusters.items()}
        for client in clients.values():  # warm-up: imports and the first compile on every worker
            dask_run(client, work, work / "out-warm", True)
        for r in range(repeat):
            for bills_only in (False, True):
                tag = " bills-only" if bills_only else ""
                out = work / f"out-local{tag.strip()}"
                cmd = rerate_cmd(work, out) + (["--bills-only"] if bills_only else [])
                m = measure(cmd, env, out)
                runs[f"local{tag}"].append({"wall_s": round(m["wall_s"], 3), "cpu_s": round(m["cpu_s"], 3),
                                            "peak_rss_mb": round(m["peak_rss_mb"], 1)})
                print(f"round {r + 1} local{tag:11s} {m['wall_s']:7.2f} s (CPU {m['cpu_s']:.2f} s)", file=sys.stderr)
                for n, client in clients.items():
                    d_out = work / f"out-dask{n}{tag.strip()}"
                    m = dask_run(client, work, d_out, bills_only)
                    runs[f"dask {n}{tag}"].append(m)
                    same = (d_out / "bills.json").read_bytes() == (out / "bills.json").read_bytes() and \
                        (d_out / "bills.txt").read_bytes() == (out / "bills.txt").read_bytes()
                    if not same:
                        raise AssertionError(f"dask {n}{tag}: the bills differ from the local rerate's")
                    print(f"round {r + 1} dask {n}{tag:10s} {m['wall_s']:7.2f} s (read {m['read_s']:.2f}, "
                          f"duplicates+rate+write {m['dedup_rate_write_s']:.2f}, publish {m['publish_s']:.2f}; "
                          f"CPU {m['cpu_s']:.2f} s, of which client+scheduler {m['client_and_scheduler_cpu_s']:.2f})",
                          file=sys.stderr)
    finally:
        for n in workers:
            if n in locals().get("clients", {}):
                clients[n].close()
            clusters[n].close()
    med = {name: statistics.median(m["wall_s"] for m in ms) for name, ms in runs.items()}
    cpu = {name: statistics.median(m["cpu_s"] for m in ms) for name, ms in runs.items()}
    report: dict[str, Any] = {"calls": n_calls, "accounts": n_accounts, "rounds": repeat, "cores": os.cpu_count(),
                              "load_average": os.getloadavg(), "median_wall_s": med, "median_cpu_s": cpu,
                              "runs": dict(runs)}
    for tag in ("", " bills-only"):
        for n in workers:
            report[f"dask {n}{tag} / local{tag}"] = round(med[f"dask {n}{tag}"] / med[f"local{tag}"], 3)
            report[f"dask {n}{tag} / local{tag}, CPU"] = round(cpu[f"dask {n}{tag}"] / cpu[f"local{tag}"], 3)
        if 1 in workers and 2 in workers:
            report[f"speedup 2 workers over 1{tag}"] = round(med[f"dask 1{tag}"] / med[f"dask 2{tag}"], 3)
    for n in workers:  # calls per second of worker compute (tasks' own time, transfers aside)
        last = runs[f"dask {n}"][-1]["tasks"]
        compute = sum(v for k, v in last.items() if k.endswith(" compute"))
        report[f"dask {n} calls per worker-second of compute"] = round(n_calls / compute) if compute else None
    return report


def phases(work: Path, buckets: int = 4, ranges: int = 4) -> dict[str, Any]:
    """The Dask rerate's steps run in this process, one after the other on one core: CPU seconds and bytes per call
    of each (the per-core figures of docs/scale.md), beside the local rerate's CPU time on the same month."""
    import pyarrow as pa

    from ocrledger.cluster import dask as d
    from ocrledger.engine.rate import as_catalog
    from ocrledger.model.clock import parse_period
    from ocrledger.rerate.rerater import rerate

    catalog = as_catalog(work / "catalog.toml")
    wanted = parse_period(MONTH)
    cut = int(catalog.clock.month_starts[wanted + 1])
    out: dict[str, Any] = {}

    def timed(name: str, fn: Any) -> Any:
        c = time.process_time()
        result = fn()
        out[f"{name}_cpu_s"] = round(time.process_time() - c, 3)
        return result

    shutil.rmtree(work / "out-phases", ignore_errors=True)
    timed("local_rerate", lambda: rerate(work / "calls", catalog, work / "accounts", month=MONTH, out=work / "out-phases"))
    units, _ = d.units(work / "calls", 1 << 20)
    setup = d.Setup("phases", catalog, str(work / "accounts"), None)
    timed("engine_compile", setup.engine)
    reads = timed("read", lambda: [d.read_unit(u, None, setup, cut, buckets, 1 << 20) for u in units])
    n = sum(r.rows for r in reads)
    out["read_bytes_per_call"] = round(sum(p.nbytes for r in reads for p in r.pieces if p is not None) / n, 1)
    budget = -(-n // ranges)
    starts, _ = d.account_ranges(pa.concat_tables([r.counts for r in reads]), budget)
    settled = timed("settle", lambda: [d.settle_duplicates([r.pieces[b] for r in reads], starts) for b in range(buckets)])
    out["settled_bytes_per_call"] = round(sum(p.nbytes for s in settled for p in s if p is not None) / n, 1)
    del reads
    shutil.rmtree(work / "out-phases-parts", ignore_errors=True)
    timed("rate_and_write", lambda: [d.rate_range([s[j] for s in settled], setup, wanted,
                                                  str(work / "out-phases-parts" / f"part-{j:05d}"), True, False)
                                     for j in range(len(starts))])
    out["calls"] = n
    for step in ("local_rerate", "read", "settle", "rate_and_write"):
        out[f"{step}_us_per_call"] = round(out[f"{step}_cpu_s"] / n * 1e6, 3)
    return out


def oversized(work: Path, bucket_rows: int, copies: int = 5) -> dict[str, Any]:
    """The largest account of the month, its calls ``copies`` times (each copy's record ids suffixed: distinct
    calls), as a range of its own, rated in memory and by the spill passes (each in a fresh process): wall
    seconds and the memory the rate step added (peak RSS after it minus the RSS before it)."""
    import pyarrow.compute as pc

    import pyarrow as pa
    import subprocess

    from ocrledger.cluster import dask as d
    from ocrledger.engine.rate import as_catalog
    from ocrledger.model.clock import parse_period

    catalog = as_catalog(work / "catalog.toml")
    cut = int(catalog.clock.month_starts[parse_period(MONTH) + 1])
    reads = [d.read_unit(u, None, d.Setup("oversized", catalog, str(work / "accounts"), None), cut, 2, 1 << 20) for u in d.units(work / "calls", 1 << 20)[0]]
    counts = d._per_account(pa.concat_tables([r.counts for r in reads]))
    top = int(np.argmax(counts.column("n").to_numpy()))
    name, n = counts.column("account")[top].as_py(), int(counts.column("n")[top].as_py())
    starts = sorted({"", name} | ({name + "\x00"}))  # three ranges: before it, it alone, after it
    pieces = [d.settle_duplicates([r.pieces[b] for r in reads], starts)[starts.index(name)] for b in range(2)]
    del reads
    path = work / "oversized.arrows"
    one = pa.concat_tables([p for p in pieces if p is not None]).combine_chunks().unify_dictionaries()
    table = pa.concat_tables([one.set_column(0, "rid", pc.binary_join_element_wise(one.column("rid"), str(k), "~"))
                              for k in range(copies)]).combine_chunks().unify_dictionaries()
    n *= copies
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    out: dict[str, Any] = {"account": name, "calls": n, "bucket_rows": bucket_rows}
    def fresh(memory: tuple[int, int], tune: bool) -> dict[str, Any]:
        code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_dask; "
                f"print(bench_dask.rate_oversized({str(work)!r}, {memory!r}, {tune!r}))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    for mode, memory in (("in_memory", (n, bucket_rows)), ("spill", (0, bucket_rows))):
        out[mode] = fresh(memory, False)
    tuned: dict[str, list[float]] = {"default malloc": [], "tune_malloc": []}
    for _ in range(7):  # the in-memory pass with and without the command's malloc tuning, alternately: CPU seconds
        for name, tune in (("default malloc", False), ("tune_malloc", True)):
            tuned[name].append(fresh((n, bucket_rows), tune)["cpu_seconds"])
    out["in_memory_cpu_s_median_of_7"] = {k: statistics.median(v) for k, v in tuned.items()}
    out["in_memory_cpu_s_runs"] = tuned
    return out


def rate_oversized(work: str, memory: tuple[int, int], tune: bool = False) -> str:
    """(In a fresh process) rate ``oversized.arrows`` as one range: seconds and MB added over the RSS before."""
    import pyarrow as pa

    from ocrledger.cluster import dask as d
    from ocrledger.engine.rate import as_catalog
    from ocrledger.model.clock import parse_period

    folder = Path(work)
    catalog = as_catalog(folder / "catalog.toml")
    setup = d.Setup("oversized", catalog, str(folder / "accounts"), None)
    setup.engine()
    with pa.memory_map(str(folder / "oversized.arrows")) as src:
        table = pa.ipc.open_file(src).read_all()
    table = pa.table({c: table.column(c).combine_chunks() for c in table.column_names})  # in memory, as a task's input
    before = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/clear_refs", "w") as fh:  # the peak RSS from now on (the Engine's compile peaks higher)
        fh.write("5")
    shutil.rmtree(folder / "out-oversized", ignore_errors=True)
    t, c = time.perf_counter(), time.process_time()
    d.rate_range([table], setup, parse_period(MONTH), str(folder / "out-oversized"), True, False, memory, tune)
    status = open("/proc/self/status").read()
    peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
    return json.dumps({"seconds": round(time.perf_counter() - t, 3), "cpu_seconds": round(time.process_time() - c, 3),
                       "input_mb": round(table.nbytes / 1e6, 1),
                       "rss_before_mb": round(before / 1e6, 1), "added_peak_mb": round((peak - before) / 1e6, 1)})


def test_dask_against_local(tmp_path_factory: Any) -> None:
    """Quick mode under pytest: the runs complete and write the local rerate's bills (their figures are printed)."""
    import pytest

    pytest.importorskip("distributed")
    report = bench(tmp_path_factory.mktemp("dask-bench"), CALLS, ACCOUNTS, 1)
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=1))
    assert set(report["median_wall_s"]) == {"local", "local bills-only", "dask 1", "dask 2", "dask 1 bills-only",
                                            "dask 2 bills-only"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dask-bench"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--phases", action="store_true", help="only the steps in this process, CPU per call")
    parser.add_argument("--oversized", type=int, metavar="BUCKET_ROWS", help="only the largest account as a range "
                        "of its own, in memory and by the spill passes with this --bucket-rows: time and memory")
    args = parser.parse_args()
    if args.oversized:
        ensure_month(args.work, args.calls, True, args.accounts)
        print(json.dumps(oversized(args.work, args.oversized), indent=1))
        return
    if args.phases:
        ensure_month(args.work, args.calls, True, args.accounts)
        print(json.dumps(phases(args.work), indent=1))
        return
    report = bench(args.work, args.calls, args.accounts, args.repeat)
    text = json.dumps(report, indent=1)
    (args.work / "bench_dask.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
