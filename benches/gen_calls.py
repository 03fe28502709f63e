"""Generate a month of synthetic call records as Parquet (and the matching accounts folder) for the rerater.

    python benches/gen_calls.py --calls 10000000 --out /tmp/month

writes ``/tmp/month/calls/part-NNN.parquet`` (unsorted within and across files, whose times
overlap, ~0.1% replayed record ids, ~2% failed calls) and ``/tmp/month/accounts/`` (accounts,
activations, plans as Parquet tables). Deterministic for a given ``--seed``. Memory: one file at
a time.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

from ocrledger.model.catalog import default_catalog  # noqa: E402
from ocrledger.model.clock import parse_period  # noqa: E402


def generate(out: Path, n_calls: int, *, month: str = "2026-10", n_accounts: int = 5_000, n_files: int = 8,
             seed: int = 1) -> None:
    catalog = default_catalog()
    clock = catalog.clock
    period = parse_period(month)
    t0, t1 = int(clock.month_starts[period]), int(clock.month_starts[period + 1])
    codes = [a.code for a in catalog.apis]
    rng = np.random.default_rng(seed)
    acc_dir, calls_dir = out / "accounts", out / "calls"
    acc_dir.mkdir(parents=True, exist_ok=True)
    calls_dir.mkdir(parents=True, exist_ok=True)
    ids = [f"acct-{i:06d}" for i in range(n_accounts)]
    market = rng.random(n_accounts) < 0.1
    channel = np.where(market, "marketplace", "official")
    pq.write_table(pa.table({"id": ids, "channel": channel}), acc_dir / "accounts.parquet")
    act_acc = [a for a, m in zip(ids, market) for _ in codes if not m]
    act_api = [c for m in market for c in codes if not m]
    pq.write_table(pa.table({"account": act_acc, "channel": ["official"] * len(act_acc), "api": act_api,
                             "activated": ["2026-01-01T00:00:00+08:00"] * len(act_acc)}), acc_dir / "activations.parquet")
    n_plans = n_accounts * 2
    owner = rng.integers(0, n_accounts, n_plans)
    kind = np.where(rng.random(n_plans) < 0.5, "dedicated", "shared")
    dedicated_apis = [a.code for a in catalog.apis if a.dedicated]
    pq.write_table(pa.table({
        "id": [f"plan-{i:07d}" for i in range(n_plans)],
        "account": [ids[o] for o in owner], "channel": channel[owner],
        "kind": kind, "api": [dedicated_apis[i % len(dedicated_apis)] if k == "dedicated" else None
                              for i, k in enumerate(kind)],
        "quantity": rng.integers(1_000, 200_000, n_plans),
        "start": ["2026-09-01T00:00:00+08:00"] * n_plans,
    }), acc_dir / "plans.parquet")
    # Zipf-like traffic: a few accounts make most calls.
    weight = 1.0 / np.arange(1, n_accounts + 1) ** 1.1
    weight /= weight.sum()
    per_file = -(-n_calls // n_files)
    api_codes = pa.array(codes)
    acc_dict = pa.array(ids)
    ch_dict = pa.array(["official", "marketplace"])
    for f in range(n_files):
        n = min(per_file, n_calls - f * per_file)
        if n <= 0:
            break
        who = rng.choice(n_accounts, n, p=weight).astype(np.int32)
        serial = np.arange(f * per_file, f * per_file + n)
        replay = rng.random(n) < 0.001
        serial[replay] = rng.integers(0, max(1, f * per_file + 1), int(replay.sum()))
        rid = pa.array(np.char.add("rec-", serial.astype("U12")).astype(object))
        table = pa.table({
            "record_id": rid,
            "account": pa.DictionaryArray.from_arrays(pa.array(who), acc_dict),
            "api": pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, len(codes), n).astype(np.int32)), api_codes),
            "ts": rng.integers(t0, t1, n),
            "success": (rng.random(n) > 0.02).astype(np.int8),
            "channel": pa.DictionaryArray.from_arrays(pa.array(market[who].astype(np.int32)), ch_dict),
        })
        pq.write_table(table, calls_dir / f"part-{f:03d}.parquet", row_group_size=1 << 20)


def _digits(values: np.ndarray, prefix: bytes, width: int) -> "pa.Array":
    """Arrow strings ``prefix + zero-padded values`` built from fixed-width bytes (no per-row Python)."""
    n = len(values)
    buf = np.empty((n, len(prefix) + width), dtype=np.uint8)
    buf[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    v = values.astype(np.int64).copy()
    for k in range(width - 1, -1, -1):
        buf[:, len(prefix) + k] = 48 + v % 10
        v //= 10
    fixed = buf.reshape(-1).view(f"S{buf.shape[1]}")
    return pa.array(fixed, pa.binary(buf.shape[1])).cast(pa.binary()).cast(pa.string())


def synth_month(out: Path, n_calls: int, *, n_accounts: int = 20_000, n_files: int = 4, seed: int | None = None) -> None:
    """The issue-5 workload of ``benches/synth.py`` (20 APIs, Zipf accounts, every rule live) as files.

    Writes ``out/catalog.toml``, ``out/accounts/`` (accounts, activations, plans as Parquet tables;
    the TOML would take seconds to parse for 10^5 plans) and ``out/calls/part-NNN.parquet``:
    the calls in a shuffled order, split into ``n_files`` files whose times overlap.
    """
    import synth

    work = synth.make(n_calls, n_accounts, **({"seed": seed} if seed is not None else {}))
    out.mkdir(parents=True, exist_ok=True)
    synth.write_catalog(work.catalog, out / "catalog.toml")
    acc_dir, calls_dir = out / "accounts", out / "calls"
    acc_dir.mkdir(parents=True, exist_ok=True)
    calls_dir.mkdir(parents=True, exist_ok=True)
    accs = work.accounts.accounts
    pq.write_table(pa.table({"id": [a.id for a in accs], "channel": [a.channel for a in accs]}),
                   acc_dir / "accounts.parquet")
    act = [(a.id, a.channel, api, when) for a in accs for api, when in a.activated.items()]
    pq.write_table(pa.table({"account": [r[0] for r in act], "channel": [r[1] for r in act],
                             "api": [r[2] for r in act], "activated": pa.array([r[3] for r in act], pa.int64())}),
                   acc_dir / "activations.parquet")
    plans = work.accounts.plans
    pq.write_table(pa.table({
        "id": [p.id for p in plans], "account": [p.account for p in plans], "channel": [p.channel for p in plans],
        "kind": [p.kind for p in plans],
        "api": [p.apis[0] if p.kind == "dedicated" else None for p in plans],
        "apis": [None if p.kind == "dedicated" else "|".join(p.apis) for p in plans],
        "quantity": pa.array([p.quantity for p in plans], pa.int64()),
        "start": pa.array([p.start for p in plans], pa.int64()),
        "end": pa.array([p.end for p in plans], pa.int64()),
        "refunded": pa.array([p.refunded for p in plans], pa.int64()),
    }), acc_dir / "plans.parquet")
    n = len(work.batch)
    order = np.random.default_rng(synth.SEED + 1).permutation(n)
    b = work.batch
    party_names = work.party_names
    acc_dict = pa.array([a for a, _ in party_names])
    ch_dict = pa.array(["official", "marketplace"])
    ch_of_party = np.array([c == "marketplace" for _, c in party_names], dtype=np.int32)
    api_dict = pa.array([a.code for a in work.catalog.apis])
    per_file = -(-n // n_files)
    for f in range(n_files):
        rows = order[f * per_file:(f + 1) * per_file]
        if not len(rows):
            break
        party = b.party[rows]
        table = pa.table({
            "record_id": _digits(work.rid[rows], b"r", 10),
            "account": pa.DictionaryArray.from_arrays(pa.array(party.astype(np.int32)), acc_dict),
            "channel": pa.DictionaryArray.from_arrays(pa.array(ch_of_party[party]), ch_dict),
            "api": pa.DictionaryArray.from_arrays(pa.array(b.api[rows].astype(np.int32)), api_dict),
            "ts": pa.array(b.ts[rows]),
            "success": pa.array(b.success[rows]),
        })
        pq.write_table(table, calls_dir / f"part-{f:03d}.parquet", row_group_size=1 << 20)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=10_000_000)
    p.add_argument("--accounts", type=int, default=None, help="default 5,000 (20,000 with --synth)")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--month", default="2026-10")
    p.add_argument("--seed", type=int, default=None, help="default: 1 (gen_calls) or synth.SEED (--synth)")
    p.add_argument("--synth", action="store_true", help="the issue-5 workload of benches/synth.py (20 APIs, "
                   "every rule live; --accounts defaults to 20,000); writes catalog.toml too")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    start = time.perf_counter()
    if args.synth:
        synth_month(args.out, args.calls, n_accounts=args.accounts or 20_000, n_files=args.files, seed=args.seed)
    else:
        generate(args.out, args.calls, month=args.month, n_accounts=args.accounts or 5_000, n_files=args.files,
                 seed=1 if args.seed is None else args.seed)
    print(f"wrote {args.calls:,} calls to {args.out / 'calls'} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
