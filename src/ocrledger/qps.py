"""QPS: calls per second per (party, API), the peak of each month and the seconds over the entitled limit."""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from .accounts import Accounts
from .catalog import Catalog
from .codes import Status
from .tables import Batch, Outcomes


def second_counts(batch: Batch, out: Outcomes, n_api: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pair, second, calls) for every second with calls; duplicates are not calls, failed ones are."""
    n = len(batch)
    keep = out.status[:n] != Status.DUPLICATE
    pair = batch.party[keep].astype(np.int64) * n_api + batch.api[keep]
    sec = np.floor_divide(batch.ts[keep], 1000)
    if not len(sec):
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    lo = int(sec.min())
    span = int(sec.max()) - lo + 1
    keys, counts = np.unique(pair * span + (sec - lo), return_counts=True)
    return keys // span, keys % span + lo, counts.astype(np.int64)


def qps_lines(
    catalog: Catalog,
    accounts: Accounts,
    parties: Sequence[tuple[str, str]],
    pair: np.ndarray,
    sec: np.ndarray,
    calls: np.ndarray,
) -> dict[tuple[int, int, int], tuple[int, int]]:
    """(party, period, api) -> (peak calls in one second, seconds over the entitled QPS).

    The entitled QPS at a second is the API's ``qps`` plus every add-on of that party and API
    active at the second's start (start <= t < end). Inputs are sorted by (pair, second).
    """
    n_api = len(catalog.apis)
    result: dict[tuple[int, int, int], tuple[int, int]] = {}
    if not len(pair):
        return result
    base = np.array([a.qps for a in catalog.apis], dtype=np.int64)
    limit = base[pair % n_api]
    addons: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    index = {p: i for i, p in enumerate(parties)}
    for add in accounts.qps_addons:
        party = index.get((add.account, add.channel))
        if party is not None:
            addons[party * n_api + catalog.index[add.api]].append((add.start, add.end, add.qps))
    if addons:
        start_ms = sec * 1000
        for key, items in addons.items():
            rows = pair == key
            for start, end, extra in items:
                limit[rows & (start_ms >= start) & (start_ms < end)] += extra
    period = catalog.clock.periods(sec * 1000).astype(np.int64)
    line = pair * 4096 + period  # periods < 4096
    bounds = np.flatnonzero(np.r_[True, line[1:] != line[:-1]])
    peaks = np.maximum.reduceat(calls, bounds)
    overs = np.add.reduceat((calls > limit).astype(np.int64), bounds)
    for b, peak, over in zip(bounds.tolist(), peaks.tolist(), overs.tolist()):
        p, api = divmod(int(pair[b]), n_api)
        result[(p, int(period[b]), api)] = (peak, over)
    return result
