"""End-to-end rerate benchmark: a generated month of calls from Parquet, reporting calls/s and peak RSS.

    python benches/bench_rerate.py --calls 10000000 [--work /tmp/month] [--bucket-rows N]

generates the month with ``benches/gen_calls.py`` (unless ``--work`` already holds it), then runs
``ocrledger rerate`` in a fresh process (so its peak RSS is the rerater's alone) and prints the
wall time, calls per second, CPU time and peak RSS. Up to 12 million calls the rerater takes its
in-memory pass; ``--bucket-rows N`` also caps that pass at N calls, so any value below the input's
size measures the spill passes. ``benches/bench_e2e.py`` adds the DuckDB baseline. ``pytest benches/bench_rerate.py`` runs a
small version under pytest-benchmark.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gen_calls import generate  # noqa: E402


def run(work: Path, n_calls: int, extra: list[str]) -> dict[str, float]:
    if not (work / "calls").exists():
        t = time.perf_counter()
        generate(work, n_calls)
        print(f"generated {n_calls:,} calls in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    out = work / "out"
    cmd = [sys.executable, "-m", "ocrledger", "rerate", "--accounts", str(work / "accounts"), "--calls",
           str(work / "calls"), "--month", "2026-10", "--out", str(out), "--no-progress", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads((out / "summary.json").read_text())
    return {
        "calls": summary["calls_read"],
        "wall_s": round(wall, 2),
        "cpu_s": round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 2),
        "calls_per_s": round(summary["calls_read"] / wall),
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
        "bills": summary["bills"],
    }


def test_rerate_small_month(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ocrledger.io.account_tables import load_accounts
    from ocrledger.model.catalog import default_catalog
    from ocrledger.rerate.rerater import rerate

    generate(tmp_path, 200_000, n_accounts=500, n_files=3)
    catalog = default_catalog()
    accounts = load_accounts(tmp_path / "accounts", catalog)
    result = benchmark(lambda: rerate(tmp_path / "calls", catalog, accounts, bucket_rows=50_000))
    assert result.summary["calls_read"] == 200_000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=10_000_000)
    p.add_argument("--work", type=Path, help="folder for the generated month (kept); default: a temporary one")
    p.add_argument("--bucket-rows", type=int)
    args = p.parse_args()
    extra = ["--bucket-rows", str(args.bucket_rows)] if args.bucket_rows else []
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        print(json.dumps(run(args.work, args.calls, extra)))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run(Path(tmp), args.calls, extra)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
