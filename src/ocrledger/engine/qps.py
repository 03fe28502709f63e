"""QPS: calls per second per (party, API), the peak of each month and the seconds over the entitled limit."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..codes import Status
from ..kernel.contract import Batch, Outcomes
from ..model.accounts import Accounts
from ..model.catalog import Catalog
from ..model.clock import N_PERIODS


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


QpsLines = dict[tuple[int, int, int], tuple[int, int]]
"""(party, period, api) -> (peak calls in one second, seconds over the entitled QPS)."""


@dataclass(frozen=True)
class QpsArrays:
    """The same figures as columns, sorted by line key ``(party * N_PERIODS + period) * n_api + api``."""

    n_api: int
    line: np.ndarray
    peak: np.ndarray
    over: np.ndarray

    @classmethod
    def from_mapping(cls, qps: Mapping[tuple[int, int, int], tuple[int, int]], n_api: int) -> "QpsArrays":
        keys = np.array(list(qps.keys()), dtype=np.int64).reshape(len(qps), 3)
        values = np.array(list(qps.values()), dtype=np.int64).reshape(len(qps), 2)
        line = (keys[:, 0] * N_PERIODS + keys[:, 1]) * n_api + keys[:, 2]
        order = np.argsort(line, kind="stable")
        return cls(n_api, line[order], values[order, 0], values[order, 1])

    def to_mapping(self) -> QpsLines:
        rest, api = np.divmod(self.line, self.n_api)
        party, period = np.divmod(rest, N_PERIODS)
        keys = zip(party.tolist(), period.tolist(), api.tolist())
        return dict(zip(keys, zip(self.peak.tolist(), self.over.tolist())))

    def lookup(self, party: np.ndarray, period: np.ndarray, api: np.ndarray, missing: tuple[int, int] = (0, 0)
               ) -> tuple[np.ndarray, np.ndarray]:
        """(peak, over) of each given line; ``missing`` for a line that has none."""
        line = (party.astype(np.int64) * N_PERIODS + period) * self.n_api + api
        if not len(self.line):
            return np.full(len(line), missing[0], dtype=np.int64), np.full(len(line), missing[1], dtype=np.int64)
        at = np.minimum(np.searchsorted(self.line, line), len(self.line) - 1)
        found = self.line[at] == line
        return np.where(found, self.peak[at], missing[0]), np.where(found, self.over[at], missing[1])


AddonIndex = Mapping[tuple[str, str], Sequence[tuple[int, int, int, int]]]
"""(account, channel) -> its QPS add-ons as (API index, start, end, extra QPS), file order."""


def addon_index(catalog: Catalog, accounts: Accounts) -> dict[tuple[str, str], list[tuple[int, int, int, int]]]:
    """The QPS add-ons of a setup by party, made once so a batch looks up only its own parties."""
    index: dict[tuple[str, str], list[tuple[int, int, int, int]]] = defaultdict(list)
    for add in accounts.qps_addons:
        index[(add.account, add.channel)].append((catalog.index[add.api], add.start, add.end, add.qps))
    return dict(index)


def qps_lines(
    catalog: Catalog,
    addons: AddonIndex,
    parties: Sequence[tuple[str, str]],
    pair: np.ndarray,
    sec: np.ndarray,
    calls: np.ndarray,
) -> QpsLines:
    """(party, period, api) -> (peak calls in one second, seconds over the entitled QPS).

    The entitled QPS at a second is the API's ``qps`` plus every add-on of that party and API
    active at the second's start (start <= t < end). Inputs are sorted by (pair, second).
    """
    return qps_arrays(catalog, addons, parties, pair, sec, calls).to_mapping()


def qps_arrays(
    catalog: Catalog,
    addons: AddonIndex,
    parties: Sequence[tuple[str, str]],
    pair: np.ndarray,
    sec: np.ndarray,
    calls: np.ndarray,
) -> QpsArrays:
    """``qps_lines`` as columns."""
    n_api = len(catalog.apis)
    if not len(pair):
        empty = np.zeros(0, dtype=np.int64)
        return QpsArrays(n_api, empty, empty, empty)
    base = np.array([a.qps for a in catalog.apis], dtype=np.int64)
    limit = base[pair % n_api]
    by_pair: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    if addons:
        for party in np.unique(pair // n_api).tolist():  # only the parties with calls
            for api, start, end, extra in addons.get(parties[party], ()):
                by_pair[party * n_api + api].append((start, end, extra))
    if by_pair:
        start_ms = sec * 1000
        for key, items in by_pair.items():
            rows = pair == key
            for start, end, extra in items:
                limit[rows & (start_ms >= start) & (start_ms < end)] += extra
    period = catalog.clock.periods(sec * 1000).astype(np.int64)
    line = pair * 4096 + period  # periods < 4096
    bounds = np.flatnonzero(np.r_[True, line[1:] != line[:-1]])
    peaks = np.maximum.reduceat(calls, bounds).astype(np.int64)
    overs = np.add.reduceat((calls > limit).astype(np.int64), bounds)
    party, api = np.divmod(pair[bounds].astype(np.int64), n_api)
    key = (party * N_PERIODS + period[bounds]) * n_api + api
    order = np.argsort(key, kind="stable")
    return QpsArrays(n_api, key[order], peaks[order], overs[order])
