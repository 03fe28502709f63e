"""CI gate: fail when the Cython kernel is less than MIN_RATIO times faster than the reference.

Both kernels rate the same seeded batch in the same run, so the gate is a ratio and holds on any
machine, however loaded: ``python benches/check_ratio.py`` (a few seconds; exit status 1 below
the ratio). Each kernel's time is its best of several rounds, on fresh counters each round.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth  # noqa: E402

from ocrledger.kernel import select as _kernel  # noqa: E402
from ocrledger.kernel.contract import Outcomes  # noqa: E402

MIN_RATIO = 50.0


def best_time(kernel: str, work: synth.Workload, rounds: int) -> float:
    impl = _kernel.get(kernel)
    best = float("inf")
    for _ in range(rounds):
        state, out = work.state(), Outcomes.empty(len(work.batch))
        _kernel.check(work.tables, state, work.batch, out)
        start = time.perf_counter()
        done = impl.rate_batch(work.tables, state, work.batch, out)
        best = min(best, time.perf_counter() - start)
        if done != len(work.batch):
            raise SystemExit(f"{kernel} kernel stopped at call {done}")
    return best


def measure(calls: int = 100_000, accounts: int = 500) -> tuple[float, float]:
    """(cython seconds, reference seconds) on the same batch; Cython first, then reference."""
    if "cython" not in _kernel.KERNELS:
        raise SystemExit("the compiled kernel is not built: python setup.py build_ext --inplace")
    work = synth.make(calls, accounts)
    return best_time("cython", work, 30), best_time("reference", work, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--min-ratio", type=float, default=MIN_RATIO)
    args = parser.parse_args()
    fast, slow = measure(args.calls)
    ratio = slow / fast
    print(f"{args.calls:,} calls: cython {fast * 1e3:.2f} ms ({args.calls / fast / 1e6:.1f} M calls/s), "
          f"reference {slow * 1e3:.1f} ms ({args.calls / slow / 1e3:.0f} k calls/s): ratio {ratio:.0f}x "
          f"(minimum {args.min_ratio:.0f}x)")
    return 0 if ratio >= args.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
