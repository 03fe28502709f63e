"""Usage: per-call outcomes summed per (party, month, API) and per (plan, month); the input of bills."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..codes import Source, Status
from ..kernel.contract import Batch, KernelTables, Outcomes
from ..model.catalog import Api
from ..model.clock import N_PERIODS

FAILED, REJECTED, FREE, DEDICATED, SHARED, DUPLICATE = range(6)
TIER0 = 6
"""Counter columns of a line; PAYG calls of tier t are counted in column TIER0 + t."""

_STATUS_CAT = np.full(128, -1, dtype=np.int64)
_STATUS_CAT[Status.FAILED] = FAILED
_STATUS_CAT[Status.DUPLICATE] = DUPLICATE
_STATUS_CAT[Status.REJECTED_INACTIVE] = REJECTED
_STATUS_CAT[Status.REJECTED_NO_PLAN] = REJECTED
_STATUS_CAT[Status.REJECTED_CREDENTIAL] = REJECTED
_SOURCE_CAT = np.array([-1, FREE, DEDICATED, SHARED, -1], dtype=np.int64)


@dataclass
class Usage:
    """Counts that bills are built from; adding two usages adds their counts."""

    width: int
    """Counter columns per line: TIER0 + the largest number of tiers of any API."""
    lines: dict[tuple[int, int, int], list[int]] = field(default_factory=dict)
    """(party, period, api) -> counters (see the column constants)."""
    plan_used: dict[tuple[int, int], int] = field(default_factory=dict)
    """(plan index, period) -> calls (dedicated) or points (shared) the plan paid."""


def position_spend(api: Api, counts: Sequence[int]) -> int:
    """PAYG micro-units of a line's counters with each call priced by its position, as the kernel
    counts its ``payg_spend`` (volume-tier lines are repriced only on the bill)."""
    return sum(counts[TIER0 + t] * tier.price for t, tier in enumerate(api.tiers))


def width_for(tables: KernelTables) -> int:
    return TIER0 + int(np.diff(tables.tier_offset).max())


def summarize(tables: KernelTables, batch: Batch, out: Outcomes) -> Usage:
    """Sum the outcomes of one rated batch (vectorised; no per-call Python)."""
    width = width_for(tables)
    usage = Usage(width)
    n = len(batch)
    if n == 0:
        return usage
    status = out.status[:n].astype(np.int64)
    source = out.source[:n].astype(np.int64)
    category = _STATUS_CAT[status]
    charged = status == Status.CHARGED
    category[charged] = np.where(
        source[charged] == Source.PAYG, TIER0 + out.tier[:n][charged].astype(np.int64), _SOURCE_CAT[source[charged]]
    )
    n_api = tables.n_api
    line = (batch.party.astype(np.int64) * N_PERIODS + batch.period) * n_api + batch.api
    keys, counts = np.unique(line * width + category, return_counts=True)
    for key, count in zip(keys.tolist(), counts.tolist()):
        line_key, cat = divmod(key, width)
        rest, api = divmod(line_key, n_api)
        party, period = divmod(rest, N_PERIODS)
        usage.lines.setdefault((party, period, api), [0] * width)[cat] += count
    paid = out.plan[:n] >= 0
    if paid.any():
        plan_key = (out.plan[:n][paid].astype(np.int64) * N_PERIODS + batch.period[paid]) * n_api + batch.api[paid]
        keys, counts = np.unique(plan_key, return_counts=True)
        shared = set(np.unique(plan_key[source[paid] == Source.SHARED]).tolist())
        for key, count in zip(keys.tolist(), counts.tolist()):
            rest, api = divmod(key, n_api)
            units = count * (int(tables.api_points[api]) if key in shared else 1)
            plan_period = divmod(rest, N_PERIODS)
            usage.plan_used[plan_period] = usage.plan_used.get(plan_period, 0) + units
    return usage
