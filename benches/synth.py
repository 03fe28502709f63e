"""Seeded synthetic workloads for the benchmarks (nothing here is committed data).

One month (October 2026, Asia/Shanghai) of calls from ``n_accounts`` accounts, Zipf-skewed, over
a 20-API catalog, with every rule of SPEC section 2 live:

- 5% of the accounts are on the marketplace channel (plans only, no free quota, no PAYG);
- official accounts activated most APIs before the month, 1% of pairs mid-month, 2% never;
- 17 recognition APIs (200 free a month) and 3 verification APIs (lifetime pool of 50);
  one API refuses dedicated plans, one refuses shared plans;
- 30% of (account, API) pairs that accept dedicated plans hold one (5% of those a second one),
  10% start inside the month, 3% are refunded inside the month;
- 10% of the accounts hold a shared plan (2% a second one);
- 3% of the calls failed, 0.2% repeat an earlier record id.

``python benches/synth.py --calls 1000000 --out DIR`` writes the same data as files
(``calls.csv`` or ``calls.parquet``, ``accounts.toml``, ``catalog.toml``) for end-to-end runs.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ocrledger.engine.tables import SetupTables
from ocrledger.kernel.contract import Batch, KernelState, KernelTables
from ocrledger.model.accounts import MARKETPLACE, OFFICIAL, Account, Accounts, Plan
from ocrledger.model.catalog import VERIFICATION, Api, Catalog, Tier

N_API = 20
MONTH = "2026-10"
DAY = 86_400_000
SEED = 20261001


def make_catalog() -> Catalog:
    """20 APIs with the default catalog's price shapes (five graduated tiers)."""
    cheap = (Tier(10_000, 82_500), Tier(100_000, 49_500), Tier(500_000, 41_500), Tier(1_000_000, 24_800),
             Tier(None, 9_000))
    dear = (Tier(10_000, 225_000), Tier(100_000, 90_000), Tier(500_000, 54_000), Tier(1_000_000, 45_000),
            Tier(None, 36_000))
    apis = []
    for a in range(N_API):
        verification = a >= N_API - 3
        apis.append(Api(
            code=f"Api{a:02d}", name=f"synthetic API {a}", kind=VERIFICATION if verification else "recognition",
            free_monthly=200, shared_points=20 if a % 4 == 3 else 10,
            dedicated=a != 16, shared=a != 15, tiers=dear if a % 4 == 3 else cheap,
        ))
    return Catalog(tuple(apis))


@dataclass
class Workload:
    catalog: Catalog
    accounts: Accounts
    tables: KernelTables
    quantity: np.ndarray  # int64 plan quantities in kernel order
    batch: Batch  # charge order: (ts, record_id)
    rid: np.ndarray  # int64 record id number of each batch row (charge order)

    def state(self) -> KernelState:
        return KernelState.fresh(self.tables, self.quantity)

    def grouped(self) -> Batch:
        """The batch stably partitioned by party (what rate() hands the kernel)."""
        return self.batch.take(np.argsort(self.batch.party, kind="stable"))

    def columns(self, shuffle: bool = True) -> dict[str, np.ndarray]:
        """String call columns as a user would give them (input order shuffled unless told not to)."""
        n = len(self.batch)
        order = np.random.default_rng(SEED + 1).permutation(n) if shuffle else np.arange(n)
        parties = np.array([a for a, _ in self.party_names], dtype=str)
        channels = np.array([c for _, c in self.party_names], dtype=str)
        codes = np.array([a.code for a in self.catalog.apis], dtype=str)
        b = self.batch
        return {
            "record_id": np.char.add("r", np.char.zfill(self.rid[order].astype(str), 10)),
            "account": parties[b.party[order]],
            "channel": channels[b.party[order]],
            "api": codes[b.api[order]],
            "ts": b.ts[order],
            "success": b.success[order],
        }

    @property
    def party_names(self) -> list[tuple[str, str]]:
        return [(a.id, a.channel) for a in self.accounts.accounts]


def _zipf_weights(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    return w / w.sum()


@lru_cache(maxsize=4)
def make(n_calls: int = 10_000_000, n_accounts: int = 20_000, seed: int = SEED) -> Workload:
    """The workload (cached per process: benchmarks share it)."""
    rng = np.random.default_rng(seed)
    catalog = make_catalog()
    clock = catalog.clock
    period = int(np.searchsorted(clock.month_starts, clock.instant(f"{MONTH}-01T00:00:00+08:00", what="m"),
                                 side="right") - 1)
    t0, t1 = int(clock.month_starts[period]), int(clock.month_starts[period + 1])
    year_start = clock.instant("2026-01-01T00:00:00+08:00", what="y")

    market = rng.random(n_accounts) < 0.05
    accounts = []
    for i in range(n_accounts):
        if market[i]:
            accounts.append(Account(f"acc{i:07d}", MARKETPLACE, {}))
            continue
        u = rng.random(N_API)
        when = np.where(u < 0.02, -1, np.where(u < 0.03, rng.integers(t0, t1, N_API), year_start))
        accounts.append(Account(f"acc{i:07d}", OFFICIAL,
                                {catalog.apis[a].code: int(w) for a, w in enumerate(when) if w >= 0}))

    plans = []

    def plan(pid: str, acc: int, kind: str, apis: tuple[str, ...], quantity: int) -> None:
        u = rng.random()
        start = int(rng.integers(t0, t1)) if u < 0.10 else int(rng.integers(year_start, t0))
        end = start + 365 * DAY
        refunded = int(rng.integers(max(start, t0), t1)) if rng.random() < 0.03 else None
        channel = MARKETPLACE if market[acc] else OFFICIAL
        plans.append(Plan(pid, f"acc{acc:07d}", channel, kind, apis, quantity, start, end, None, refunded))

    ded_apis = [a for a in range(N_API) if catalog.apis[a].dedicated]
    has = rng.random((n_accounts, len(ded_apis))) < 0.30
    for acc, k in zip(*np.nonzero(has)):
        code = catalog.apis[ded_apis[k]].code
        for extra in range(2 if rng.random() < 0.05 else 1):
            plan(f"d{acc}-{k}-{extra}", int(acc), "dedicated", (code,), int(rng.integers(100, 50_000)))
    shared_codes = tuple(a.code for a in catalog.apis if a.shared)
    for acc in np.nonzero(rng.random(n_accounts) < 0.10)[0]:
        for extra in range(2 if rng.random() < 0.2 else 1):
            plan(f"s{acc}-{extra}", int(acc), "shared", shared_codes, int(rng.integers(1_000, 2_000_000)))

    acc = Accounts(tuple(accounts), tuple(plans))
    parties = acc.parties()
    tables, kernel_plans = SetupTables(catalog, acc).tables(parties)
    quantity = kernel_plans.quantity

    # Calls: accounts Zipf(1.0) over a random rank order, APIs Zipf(0.7), instants uniform.
    rank = rng.permutation(n_accounts)
    party = rank[rng.choice(n_accounts, size=n_calls, p=_zipf_weights(n_accounts, 1.0))].astype(np.int32)
    api = rng.choice(N_API, size=n_calls, p=_zipf_weights(N_API, 0.7)).astype(np.int32)
    ts = rng.integers(t0, t1, size=n_calls, dtype=np.int64)
    order = np.argsort(ts, kind="stable")
    party, api, ts = party[order], api[order], ts[order]
    rid = np.arange(n_calls, dtype=np.int64)  # record ids in charge order ...
    again = np.nonzero(rng.random(n_calls) < 0.002)[0]
    again = again[again > 0]
    rid[again] = (rng.random(len(again)) * again).astype(np.int64)  # ... but 0.2% repeat an earlier one
    is_market = tables.party_official[party] == 0
    key = rid * 2 + is_market
    duplicate = np.ones(n_calls, dtype=np.int8)
    duplicate[np.unique(key, return_index=True)[1]] = 0
    batch = Batch(
        party=party, api=api, ts=ts, period=clock.periods(ts),
        success=(rng.random(n_calls) >= 0.03).astype(np.int8), duplicate=duplicate,
    )
    return Workload(catalog, acc, tables, quantity, batch, rid)


def write(work: Workload, out: Path, fmt: str) -> None:
    """The workload as files: calls (CSV or Parquet), accounts.toml, catalog.toml."""
    out.mkdir(parents=True, exist_ok=True)
    cols = work.columns()
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(cols), out / "calls.parquet")
    else:
        import csv

        with open(out / "calls.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(list(cols))
            w.writerows(zip(*(c.tolist() for c in cols.values())))
    lines = []
    for a in work.accounts.accounts:
        lines.append(f'[[account]]\nid = "{a.id}"\nchannel = "{a.channel}"')
        if a.activated:
            lines.append("activated = { " + ", ".join(f"{k} = {v}" for k, v in a.activated.items()) + " }")
    for p in work.accounts.plans:
        api = f'api = "{p.apis[0]}"' if p.kind == "dedicated" else ""
        refund = f"refunded = {p.refunded}" if p.refunded is not None else ""
        lines.append(f'[[plan]]\nid = "{p.id}"\naccount = "{p.account}"\nchannel = "{p.channel}"\n'
                     f'kind = "{p.kind}"\n{api}\nquantity = {p.quantity}\nstart = {p.start}\n{refund}')
    (out / "accounts.toml").write_text("\n".join(lines) + "\n")
    write_catalog(work.catalog, out / "catalog.toml")


def write_catalog(catalog: Catalog, path: Path) -> None:
    """The workload's catalog as TOML (its APIs and tiers; zone and pool as ``make_catalog`` sets them)."""
    cat = ['currency = "CNY"', 'timezone = "Asia/Shanghai"', "verification_free_total = 50"]
    for a in catalog.apis:
        tiers = ", ".join((f'{{ upto = {t.upto}, price = "{t.price / 1e6:.6f}" }}' if t.upto is not None
                           else f'{{ price = "{t.price / 1e6:.6f}" }}') for t in a.tiers)
        cat.append(f'[[api]]\ncode = "{a.code}"\nname = "{a.name}"\nkind = "{a.kind}"\nfree_monthly = {a.free_monthly}\n'
                   f"shared_points = {a.shared_points}\ndedicated = {str(a.dedicated).lower()}\n"
                   f"shared = {str(a.shared).lower()}\ntiers = [{tiers}]")
    path.write_text("\n\n".join(cat) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    write(make(args.calls, args.accounts, args.seed), args.out, args.format)


if __name__ == "__main__":
    main()
