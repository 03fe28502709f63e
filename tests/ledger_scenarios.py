"""Seeded random scenarios for ledger tests: a small catalog with narrow tiers, plans, two months of calls."""
from __future__ import annotations

from typing import Any

import numpy as np
from helpers import ms

from ocrledger.model.accounts import Accounts, parse_accounts
from ocrledger.model.catalog import Catalog, parse_catalog

START = ms("2026-10-01T00:00:00+08:00")
END = ms("2026-12-01T00:00:00+08:00")


def small_catalog() -> Catalog:
    narrow = [{"upto": 3, "price": "0.5"}, {"upto": 7, "price": "0.25"}, {"price": "0.125"}]
    return parse_catalog({
        "verification_free_total": 3,
        "api": [
            {"code": "A", "free_monthly": 2, "shared_points": 2, "tiers": narrow},
            {"code": "B", "free_monthly": 1, "shared_points": 3, "dedicated": False, "tiers": narrow,
             "tier_mode": "volume"},
            {"code": "V", "kind": "verification", "tiers": narrow},
        ],
    })


def scenario(seed: int, n_calls: int = 240) -> tuple[Catalog, Accounts, dict[str, np.ndarray]]:
    """Accounts u0..u2 official, m0 marketplace; random plans; calls in ts order over Oct-Nov 2026."""
    rng = np.random.default_rng(seed)
    cat = small_catalog()
    span = END - START
    accounts: list[dict[str, Any]] = []
    for k in range(3):
        accounts.append({"id": f"u{k}", "channel": "official",
                         "activated": {a: START + int(rng.integers(0, span // 3)) for a in "ABV"}})
    accounts.append({"id": "m0", "channel": "marketplace"})
    plans = []
    for k in range(int(rng.integers(0, 6))):
        party = accounts[int(rng.integers(0, 4))]
        start = START + int(rng.integers(-span // 4, span))
        plan: dict[str, Any] = {"id": f"p{k}", "account": party["id"], "channel": party["channel"],
                                "quantity": int(rng.integers(1, 12)), "start": start}
        if rng.random() < 0.5:
            plan.update(kind="dedicated", api=str(rng.choice(["A", "V"])))
        else:
            plan.update(kind="shared")
        if rng.random() < 0.5:
            plan["end"] = start + int(rng.integers(1, span))
        if rng.random() < 0.2:
            plan["refunded"] = start + int(rng.integers(0, span))
        plans.append(plan)
    acc = parse_accounts({"account": accounts, "plan": plans}, cat)
    ts = np.sort(START + rng.integers(0, span, n_calls))
    who = rng.integers(0, 5, n_calls)  # 4 = an unknown account
    ids = rng.integers(0, int(n_calls * 0.9), n_calls)  # some record ids repeat
    calls = {
        "record_id": np.array([f"r{i:05d}" for i in ids]),
        "account": np.array([["u0", "u1", "u2", "m0", "ghost"][w] for w in who]),
        "channel": np.array(["marketplace" if w == 3 else "official" for w in who]),
        "api": rng.choice(["A", "B", "V"], n_calls),
        "ts": ts.astype(np.int64),
        "success": (rng.random(n_calls) < 0.9).astype(np.int8),
    }
    return cat, acc, calls


def charge_order(calls: dict[str, np.ndarray]) -> np.ndarray:
    """Row order by (ts, record_id): how a whole-period rate charges them."""
    return np.lexsort((calls["record_id"], calls["ts"]))


def take(calls: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in calls.items()}


def commuting_scenario(seed: int, n_accounts: int = 8, n_calls: int = 4000
                       ) -> tuple[Catalog, Accounts, dict[str, np.ndarray]]:
    """Calls whose bills do not depend on the order their batches commit in: one month (October), every API
    activated before it, dedicated plans without an end, and a record id sent again only as an exact copy
    (same account, API, instant, outcome). Concurrent writers on one account commit in either order."""
    rng = np.random.default_rng(seed)
    cat = small_catalog()
    before = START - 30 * 86_400_000
    names = [f"u{k}" for k in range(n_accounts)]
    accounts = [{"id": n, "activated": {a: before for a in "ABV"}} for n in names]
    plans = [{"id": f"p{k}", "account": names[k], "kind": "dedicated", "api": str(rng.choice(["A", "V"])),
              "quantity": int(rng.integers(1, 40)), "start": before} for k in range(0, n_accounts, 2)]
    acc = parse_accounts({"account": accounts, "plan": plans}, cat)
    month = ms("2026-11-01T00:00:00+08:00") - START
    n_unique = int(n_calls * 0.9)
    who = rng.integers(0, n_accounts, n_unique)
    base = {
        "record_id": np.array([f"r{i:06d}" for i in range(n_unique)]),
        "account": np.array(names)[who],
        "channel": np.array(["official"] * n_unique),
        "api": rng.choice(["A", "B", "V"], n_unique),
        "ts": (START + rng.integers(0, month, n_unique)).astype(np.int64),
        "success": (rng.random(n_unique) < 0.9).astype(np.int8),
    }
    copies = rng.integers(0, n_unique, n_calls - n_unique)  # exact copies of some records
    return cat, acc, {k: np.concatenate([v, v[copies]]) for k, v in base.items()}
