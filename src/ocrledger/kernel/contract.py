"""The kernel contract: dense tables (catalog, parties, plans), carried counters, batch columns, outcomes."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

NO_ACTIVATION = np.iinfo(np.int64).max
"""Activation instant of an API that was never activated (every call is before it)."""
ALWAYS_ACTIVE = np.iinfo(np.int64).min
"""Activation instant used for marketplace parties, which need no activation."""


@dataclass
class KernelTables:
    """Read-only inputs of the kernel. Pair index = party * n_api + api.

    A pair's plans (``ded_plans``/``sh_plans`` of its CSR run) are listed in expire-first order
    (end, then start, then id), so among the plans that can pay, the first listed pays. Every plan
    belongs to one party; plans of different parties may be indexed in any order (the engine's
    tables hold them party by party).
    """

    n_api: int
    pool_total: int
    api_kind: np.ndarray  # int8[n_api]: 1 = verification (lifetime pool), 0 = recognition
    api_free: np.ndarray  # int64[n_api]: free calls a month (recognition)
    api_points: np.ndarray  # int64[n_api]: points a call takes from a shared plan
    api_dedicated: np.ndarray  # int8[n_api]: accepts dedicated plans
    api_shared: np.ndarray  # int8[n_api]: accepts shared plans
    tier_offset: np.ndarray  # int32[n_api + 1]: tiers of API a are tier_offset[a]:tier_offset[a+1]
    tier_upto: np.ndarray  # int64[n_tiers]: inclusive upper PAYG position, INT64_MAX when open
    tier_price: np.ndarray  # int64[n_tiers]: micro-units per call
    party_official: np.ndarray  # int8[n_party]: 1 official, 0 marketplace
    activation: np.ndarray  # int64[n_pair]: calls at ts < activation are rejected
    plan_start: np.ndarray  # int64[n_plan]
    plan_end: np.ndarray  # int64[n_plan]: effective end (min of end and refund), exclusive
    ded_offset: np.ndarray  # int64[n_pair + 1]: dedicated plans of a pair, CSR into ded_plans
    ded_plans: np.ndarray  # int32[...]: plan indices, ascending (expire-first order)
    sh_offset: np.ndarray  # int64[n_pair + 1]: shared plans that cover a pair, CSR into sh_plans
    sh_plans: np.ndarray  # int32[...]

    @property
    def n_party(self) -> int:
        return len(self.party_official)

    @property
    def n_plan(self) -> int:
        return len(self.plan_start)


@dataclass
class KernelState:
    """Counters the kernel reads and advances; they carry across batches.

    ``ded_cursor``/``sh_cursor`` are caches (how many plans at the head of a pair's list are
    exhausted for that pair); zeroing them never changes a result.
    """

    pair_period: np.ndarray  # int32[n_pair]: month the monthly counters belong to, -1 none
    free_used: np.ndarray  # int64[n_pair]: free calls used this month (recognition)
    payg_calls: np.ndarray  # int64[n_pair]: PAYG calls this month (the tier position)
    payg_tier: np.ndarray  # int32[n_pair]: tier (relative to the API) of the last PAYG call
    payg_spend: np.ndarray  # int64[n_pair]: micro-units charged PAYG this month
    pool_used: np.ndarray  # int64[n_party]: verification pool used (lifetime)
    plan_remaining: np.ndarray  # int64[n_plan]: calls (dedicated) or points (shared) left
    ded_cursor: np.ndarray  # int32[n_pair]
    sh_cursor: np.ndarray  # int32[n_pair]

    @classmethod
    def fresh(cls, tables: KernelTables, plan_quantity: np.ndarray) -> "KernelState":
        n_pair = tables.n_party * tables.n_api
        return cls(
            pair_period=np.full(n_pair, -1, dtype=np.int32),
            free_used=np.zeros(n_pair, dtype=np.int64),
            payg_calls=np.zeros(n_pair, dtype=np.int64),
            payg_tier=np.zeros(n_pair, dtype=np.int32),
            payg_spend=np.zeros(n_pair, dtype=np.int64),
            pool_used=np.zeros(tables.n_party, dtype=np.int64),
            plan_remaining=np.array(plan_quantity, dtype=np.int64, copy=True),
            ded_cursor=np.zeros(n_pair, dtype=np.int32),
            sh_cursor=np.zeros(n_pair, dtype=np.int32),
        )

    def copy(self) -> "KernelState":
        return KernelState(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def restore(self, other: "KernelState") -> None:
        """Overwrite every counter with ``other``'s (used to undo a batch that failed)."""
        for f in fields(self):
            getattr(self, f.name)[...] = getattr(other, f.name)

    def counters(self) -> dict[str, np.ndarray]:
        """The counters that define results (caches left out), for comparisons."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.endswith("_cursor")}


@dataclass
class Batch:
    """Encoded call columns in charge order (per party, non-decreasing ts)."""

    party: np.ndarray  # int32
    api: np.ndarray  # int32
    ts: np.ndarray  # int64 epoch ms
    period: np.ndarray  # int32 month index in the billing zone
    success: np.ndarray  # int8: 1 success, 0 failed
    duplicate: np.ndarray  # int8: 1 = a record id seen before; never charged

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> "Batch":
        return Batch(**{f.name: np.ascontiguousarray(getattr(self, f.name)[index]) for f in fields(self)})

    def slice(self, lo: int, hi: int) -> "Batch":
        """Rows lo:hi (views of the same arrays)."""
        return Batch(**{f.name: getattr(self, f.name)[lo:hi] for f in fields(self)})


@dataclass
class Outcomes:
    """Per-call results, preallocated by the caller and written by the kernel."""

    status: np.ndarray  # int8, codes.Status
    source: np.ndarray  # int8, codes.Source
    plan: np.ndarray  # int32 plan index, -1 none
    tier: np.ndarray  # int16 tier (relative to the API), -1 none
    amount: np.ndarray  # int64 exact micro-units

    def slice(self, lo: int, hi: int) -> "Outcomes":
        """Rows lo:hi (views: the kernel writes through them)."""
        return Outcomes(**{f.name: getattr(self, f.name)[lo:hi] for f in fields(self)})

    @classmethod
    def empty(cls, n: int) -> "Outcomes":
        return cls(
            status=np.zeros(n, dtype=np.int8),
            source=np.zeros(n, dtype=np.int8),
            plan=np.full(n, -1, dtype=np.int32),
            tier=np.full(n, -1, dtype=np.int16),
            amount=np.zeros(n, dtype=np.int64),
        )
