"""bills.json of Engine.rate results: the one writer on the bill columns against the Bill objects' JSON (same run).

python benches/bench_bill_json.py [--accounts N]

For an Engine over ``--accounts`` listed accounts (benches/synth.py), the median over batches of 100 and
10,000 time-ordered calls (Arrow tables) of: ``rate`` alone; ``.bills`` (the Bill objects); their JSON
``bills_to_json(result.bills)`` (the formatter's twin, as every face wrote it before); and
``render(result.bill_set, "json")`` (the one bill writer, compiled formatter, no Bill object). The two
texts are checked equal. ``pytest benches/bench_bill_json.py`` runs a quick version that checks the
ratio only (never a time).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import batches  # noqa: E402
from synth import make  # noqa: E402

from ocrledger import Engine  # noqa: E402
from ocrledger.bills import files as billfiles  # noqa: E402
from ocrledger.bills.render import render  # noqa: E402
from ocrledger.model.bills import bills_to_json  # noqa: E402

USES = {
    "rate": lambda r: r,
    "bills": lambda r: r.bills,
    "objects json": lambda r: bills_to_json(r.bills) + "\n",
    "writer json": lambda r: render(r.bill_set, "json"),
}


def measure(n_accounts: int, sizes: tuple[tuple[int, int], ...] = ((100, 200), (10_000, 12))) -> list[dict]:
    work = make(n_calls=200_000, n_accounts=n_accounts)
    engine = Engine(work.catalog, work.accounts)
    rows = []
    for size, count in sizes:
        parts = batches(work, size, count, True)
        for part in parts[:5]:  # warm up
            engine.rate(part).bills
        first = engine.rate(parts[0])
        assert render(first.bill_set, "json") == bills_to_json(first.bills) + "\n"
        row: dict = {"calls": size, "n_bills": len(first.bills)}
        for name, use in USES.items():
            times = []
            for part in parts:
                t = time.perf_counter()
                use(engine.rate(part))
                times.append(time.perf_counter() - t)
            row[name] = statistics.median(times) * 1e3
        rows.append(row)
    return rows


def test_the_writer_is_faster_than_the_objects_json() -> None:
    """Quick: where the formatter is compiled, bills.json from the columns costs less than from the Bill objects."""
    if not billfiles.available():
        return
    (row,) = measure(2_000, ((1_000, 10),))
    print(f"\n{row}")
    assert row["writer json"] < row["objects json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    args = parser.parse_args()
    print(f"{args.accounts:,} listed accounts, formatter: {'compiled' if billfiles.available() else 'twin'}; median ms")
    for row in measure(args.accounts):
        print(f"{row['calls']:>6,} calls, {row['n_bills']:>5,} bills: " +
              "  ".join(f"{name} {row[name]:.3f}" for name in USES))


if __name__ == "__main__":
    main()
