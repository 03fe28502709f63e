"""Volume pricing: the tier a month's PAYG total reaches, and the repricing of volume-tier calls at it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.catalog import VOLUME, Api, Catalog
from ..model.clock import N_PERIODS
from .usage import TIER0, LineArrays


def volume_tiers(api: Api, totals: np.ndarray) -> np.ndarray:
    """The tier (int64) that each month total of PAYG calls in ``totals`` reaches (volume pricing):
    the first whose ``upto`` holds it (tier tables end with an open tier)."""
    upto = np.array([t.upto if t.upto is not None else np.iinfo(np.int64).max for t in api.tiers], dtype=np.int64)
    return np.searchsorted(upto, np.asarray(totals, dtype=np.int64), side="left").astype(np.int64)


@dataclass(frozen=True)
class VolumePrices:
    """The tier and unit price of every volume-tier line with PAYG calls, by sorted line key
    ``(party * N_PERIODS + period) * n_api + api``.

    The kernel prices every PAYG call by its position; for volume tiers the month total decides,
    known only once the month is rated, so the calls' tier and amount are set again from these.
    """

    n_api: int
    keys: np.ndarray
    tier: np.ndarray
    price: np.ndarray

    @classmethod
    def of_lines(cls, catalog: Catalog, lines: LineArrays) -> "VolumePrices":
        n_api = len(catalog.apis)
        volume = np.array([a.tier_mode == VOLUME for a in catalog.apis], dtype=bool)
        payg = lines.counts[:, TIER0:].sum(axis=1)
        rows = np.flatnonzero(volume[lines.api] & (payg > 0))
        tier = np.empty(len(rows), dtype=np.int16)
        price = np.empty(len(rows), dtype=np.int64)
        on = lines.api[rows]
        for api_index in np.unique(on).tolist():
            api = catalog.apis[api_index]
            mine = on == api_index
            tiers = volume_tiers(api, payg[rows][mine])
            tier[mine] = tiers
            price[mine] = np.array([t.price for t in api.tiers], dtype=np.int64)[tiers]
        keys = (lines.party[rows].astype(np.int64) * N_PERIODS + lines.period[rows]) * n_api + lines.api[rows]
        order = np.argsort(keys, kind="stable")
        return cls(n_api, keys[order], tier[order], price[order])

    def __len__(self) -> int:
        return len(self.keys)

    def apply(self, line: np.ndarray, payg: np.ndarray, tier: np.ndarray, amount: np.ndarray) -> None:
        """Set ``tier`` and ``amount`` (in place) of the calls on a volume line that were paid PAYG.

        ``line`` holds each call's line key, ``payg`` whether it was paid pay-as-you-go.
        """
        if not len(self.keys):
            return
        pos = np.minimum(np.searchsorted(self.keys, line), len(self.keys) - 1)
        hit = (self.keys[pos] == line) & payg
        amount[hit] = self.price[pos[hit]]
        tier[hit] = self.tier[pos[hit]]

    def line_keys(self, party: np.ndarray, period: np.ndarray, api: np.ndarray) -> np.ndarray:
        """The line key of each call."""
        return (party.astype(np.int64) * N_PERIODS + period) * self.n_api + api
