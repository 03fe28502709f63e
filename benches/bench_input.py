"""The one input layer: calls in each form read and validated (``io.calls.read_calls``), beside pyarrow's own conversion.

python benches/bench_input.py [--calls 1000000] [--repeat 3]

For each form (a dict of numpy columns, a list of records, a pandas DataFrame, a polars DataFrame,
a pyarrow Table, a CSV file, a Parquet file) prints calls/s of ``read_calls`` (conversion to Arrow,
validation, the ``CallTable`` columns) and the ratio to the floor measured in the same run: pyarrow
converting or reading the same input with nothing checked (``pa.table``, ``Table.from_pylist``,
``Table.from_pandas``, ``polars.to_arrow``, ``pyarrow.csv.read_csv``, ``pyarrow.parquet.read_table``),
then dictionary-encoding its account, api and channel columns (the distinct values any validator
must look at).
Then the median time of a 100-call dict batch against ``pa.RecordBatch.from_pydict`` of it.
``pytest benches/bench_input.py`` runs a quick version that checks the ratios only (never a time).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synth import make  # noqa: E402

from ocrledger.io.calls import read_calls  # noqa: E402


def best(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm up
    return min(_timed(fn) for _ in range(repeat))


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def forms(n_calls: int, folder: Path) -> tuple[Any, dict[str, tuple[Any, Callable[[], Any]]]]:
    """The catalog and, per form, (the input, pyarrow's unchecked conversion of it)."""
    import pandas as pd
    import polars as pl
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    work = make(n_calls=n_calls, n_accounts=max(1_000, n_calls // 100))
    cols = work.columns()
    table = pa.table(cols)
    records = table.to_pylist()
    frame = pd.DataFrame(cols)
    polars = pl.DataFrame(table)
    csv_path, parquet_path = folder / "calls.csv", folder / "calls.parquet"
    pacsv.write_csv(table, csv_path)
    pq.write_table(table, parquet_path)
    def floor(convert: Callable[[], Any]) -> Callable[[], Any]:
        """pyarrow's conversion, then the distinct values of the three text columns: what any validator
        must at least look at, with nothing checked."""
        def run() -> None:
            t = convert()
            for c in ("account", "api", "channel"):
                t.column(c).dictionary_encode()
        return run

    return work.catalog, {
        "dict of numpy": (cols, floor(lambda: pa.table(cols))),
        "list of records": (records, floor(lambda: pa.Table.from_pylist(records))),
        "pandas": (frame, floor(lambda: pa.Table.from_pandas(frame, preserve_index=False))),
        "polars": (polars, floor(lambda: polars.to_arrow())),
        "pyarrow table": (table, floor(lambda: table)),
        "csv file": (csv_path, floor(lambda: pacsv.read_csv(csv_path))),
        "parquet file": (parquet_path, floor(lambda: pq.read_table(parquet_path))),
    }


def measure(n_calls: int, repeat: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        catalog, inputs = forms(n_calls, Path(folder))
        for name, (calls, floor) in inputs.items():
            ours = best(lambda: read_calls(calls, catalog), repeat)
            base = best(floor, repeat)
            out[name] = {"calls_per_s": n_calls / ours, "floor_calls_per_s": n_calls / base, "ratio": ours / base}
    return out


def small_batch(rounds: int = 2000) -> dict[str, float]:
    """Median seconds of ``read_calls`` on a 100-call dict of numpy columns, and of its floor."""
    import pyarrow as pa

    work = make(n_calls=20_000, n_accounts=2_000)
    cols = work.columns(shuffle=False)
    part = {k: v[:100] for k, v in cols.items()}
    for _ in range(50):  # warm up
        read_calls(part, work.catalog)
        pa.RecordBatch.from_pydict(part)
    ours, base = [], []
    for _ in range(rounds):
        ours.append(_timed(lambda: read_calls(part, work.catalog)))
        base.append(_timed(lambda: pa.RecordBatch.from_pydict(part)))
    return {"median_ms": statistics.median(ours) * 1e3, "floor_median_ms": statistics.median(base) * 1e3,
            "ratio": statistics.median(ours) / statistics.median(base)}


def test_read_calls_stays_near_pyarrow() -> None:
    """Quick: reading and validating 10^5 calls costs a small multiple of pyarrow's unchecked conversion."""
    got = measure(100_000, repeat=2)
    print(f"\n{got}")
    for name, r in got.items():
        assert r["ratio"] < 10, (name, r)  # validation is a few Arrow passes, never per-row Python (3-4x here)
    small = small_batch(rounds=200)
    print(small)
    assert small["ratio"] < 15, small  # about 4-5x here


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.calls:,} calls, best of {args.repeat}")
    print("form               read_calls calls/s   pyarrow floor calls/s   ratio")
    for name, r in measure(args.calls, args.repeat).items():
        print(f"{name:18s} {r['calls_per_s']:>19,.0f} {r['floor_calls_per_s']:>23,.0f} {r['ratio']:>7.1f}x")
    s = small_batch()
    print(f"100-call dict: read_calls {s['median_ms']:.3f} ms median, RecordBatch.from_pydict"
          f" {s['floor_median_ms']:.3f} ms, ratio {s['ratio']:.1f}x")


if __name__ == "__main__":
    main()
