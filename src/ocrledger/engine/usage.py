"""Usage: per-call outcomes summed per (party, month, API) and per (plan, month); the input of bills."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..codes import Source, Status
from ..kernel import select as _kernel
from ..kernel.contract import Batch, KernelTables, Outcomes
from ..model.catalog import Api
from ..model.clock import N_PERIODS

FAILED, REJECTED, FREE, DEDICATED, SHARED, DUPLICATE = range(6)
TIER0 = 6
"""Counter columns of a line; PAYG calls of tier t are counted in column TIER0 + t."""

STATUS_CATEGORY = np.full(256, -1, dtype=np.int16)
"""The counter column of each status that is not CHARGED (indexed by the status code)."""
STATUS_CATEGORY[Status.FAILED] = FAILED
STATUS_CATEGORY[Status.DUPLICATE] = DUPLICATE
STATUS_CATEGORY[[Status.REJECTED_INACTIVE, Status.REJECTED_NO_PLAN, Status.REJECTED_CREDENTIAL]] = REJECTED
SOURCE_CATEGORY = np.full(256, -1, dtype=np.int16)
"""The counter column of a charged call by its source (PAYG calls count in TIER0 + tier)."""
SOURCE_CATEGORY[[Source.FREE, Source.DEDICATED, Source.SHARED]] = [FREE, DEDICATED, SHARED]
DENSE_BINS = 1 << 25
"""Largest dense counter array (cells) the compiled counting pass fills before sparse keys are used."""


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


@dataclass
class LineArrays:
    """Usage lines as columns: (party, period, api) and their counters (``usage`` categories)."""

    party: np.ndarray
    period: np.ndarray
    api: np.ndarray
    counts: np.ndarray
    """(lines, width) int64: FAILED, REJECTED, FREE, DEDICATED, SHARED, DUPLICATE, then PAYG per tier."""

    @classmethod
    def from_lines(cls, lines: Mapping[tuple[int, int, int], Sequence[int]], width: int) -> "LineArrays":
        keys = np.array(list(lines.keys()), dtype=np.int64).reshape(len(lines), 3)
        counts = np.zeros((len(lines), width), dtype=np.int64)
        for k, row in enumerate(lines.values()):
            counts[k, : len(row)] = row
        return cls(keys[:, 0].copy(), keys[:, 1].copy(), keys[:, 2].copy(), counts)

    @classmethod
    def from_keys(cls, keys: np.ndarray, counts: np.ndarray, width: int, n_api: int, n_per: int,
                  p0: int = 0) -> "LineArrays":
        """Lines of sorted unique counter keys ``((party * n_per + period - p0) * n_api + api) * width + category``."""
        line = keys // width
        new = np.r_[True, line[1:] != line[:-1]] if len(line) else np.zeros(0, dtype=bool)
        row = np.cumsum(new) - 1
        matrix = np.zeros((int(new.sum()), width), dtype=np.int64)
        matrix[row, keys % width] = counts
        line = line[new]
        rest = line // n_api
        return cls(rest // n_per, rest % n_per + p0, line % n_api, matrix)

    def to_dict(self) -> dict[tuple[int, int, int], list[int]]:
        """``Usage.lines``: (party, period, api) -> counters."""
        return dict(zip(zip(self.party.tolist(), self.period.tolist(), self.api.tolist()), self.counts.tolist()))

    def counted(self) -> np.ndarray:
        """Lines with at least one record that is not a duplicate (the lines a bill shows)."""
        return self.counts.sum(axis=1) - self.counts[:, DUPLICATE] > 0


class UsageCounts:
    """The usage columns of rated batches: counters by sorted line key, plan units by (plan, period).

    One implementation for every face: ``Engine.rate`` and the ledger sum one batch, the rerater's
    passes add batch after batch. A batch is counted in a dense array by the compiled pass when its
    (party, month, API, category) cells fit ``DENSE_BINS`` (``kernel.select.helpers()``), else by
    sorting its keys (the numpy twin); either way the keys are then merged into the sorted totals.
    Line keys: ``((party * N_PERIODS + period) * n_api + api) * width + category``.
    """

    def __init__(self, tables: KernelTables) -> None:
        self.tables = tables
        self.width = width_for(tables)
        self.n_api = tables.n_api
        self.line_keys = np.zeros(0, dtype=np.int64)
        self.line_counts = np.zeros(0, dtype=np.int64)
        self.plan_keys = np.zeros(0, dtype=np.int64)
        """plan * N_PERIODS + period"""
        self.plan_units = np.zeros(0, dtype=np.int64)

    def add(self, batch: Batch, out: Outcomes) -> None:
        """Count one rated batch (``out`` may be longer than the batch: its first rows are the batch's)."""
        n = len(batch)
        if n == 0:
            return
        status, source, tier, plan = out.status[:n], out.source[:n], out.tier[:n], out.plan[:n]
        p0 = int(batch.period.min())
        n_per = int(batch.period.max()) - p0 + 1
        keys, counts = self._line_counts(batch, status, source, tier, p0, n_per)
        self.line_keys, self.line_counts = _merge(self.line_keys, self.line_counts, keys, counts)
        keys, units = self._plan_units(batch, plan, source, p0, n_per)
        self.plan_keys, self.plan_units = _merge(self.plan_keys, self.plan_units, keys, units)

    def _line_counts(self, batch: Batch, status: np.ndarray, source: np.ndarray, tier: np.ndarray, p0: int,
                     n_per: int) -> tuple[np.ndarray, np.ndarray]:
        width, n_api, n = self.width, self.n_api, len(batch)
        core = _kernel.helpers()
        size = self.tables.n_party * n_per * n_api * width
        if core is not None and size <= max(DENSE_BINS, 2 * n):
            dense = np.zeros(size, dtype=np.int32 if n < 2**31 else np.int64)  # int32: stays in cache
            if core.usage_counts(batch.party, batch.api, batch.period, status, source, tier, STATUS_CATEGORY,
                                 SOURCE_CATEGORY, int(Status.CHARGED), int(Source.PAYG), TIER0, p0, n_per, n_api,
                                 width, dense) == 0:
                local = np.flatnonzero(dense)
                counts = dense[local].astype(np.int64)
                line, category = np.divmod(local, width)
                rest, api = np.divmod(line, n_api)
                party, period = np.divmod(rest, n_per)
                return ((party * N_PERIODS + period + p0) * n_api + api) * width + category, counts
        category = np.where(status == Status.CHARGED,
                            np.where(source == Source.PAYG, tier.astype(np.int64) + TIER0,
                                     SOURCE_CATEGORY[source.view(np.uint8)]),
                            STATUS_CATEGORY[status.view(np.uint8)]).astype(np.int64)
        key = ((batch.party.astype(np.int64) * N_PERIODS + batch.period) * n_api + batch.api) * width + category
        keys, counts = np.unique(key, return_counts=True)
        return keys, counts.astype(np.int64)

    def _plan_units(self, batch: Batch, plan: np.ndarray, source: np.ndarray, p0: int, n_per: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        tables, n = self.tables, len(batch)
        core = _kernel.helpers()
        if core is not None and tables.n_plan * n_per <= max(DENSE_BINS, 2 * n):
            dense = np.zeros(tables.n_plan * n_per, dtype=np.int64)
            if core.plan_units(plan, source, batch.api, batch.period, tables.api_points, int(Source.SHARED), p0, n_per,
                               dense) == 0:
                local = np.flatnonzero(dense)
                return (local // n_per) * N_PERIODS + local % n_per + p0, dense[local]
        paid = plan >= 0
        key = plan[paid].astype(np.int64) * N_PERIODS + batch.period[paid]
        units = np.where(source[paid] == Source.SHARED, tables.api_points[batch.api[paid]], 1).astype(np.int64)
        return _merge(np.zeros(0, np.int64), np.zeros(0, np.int64), key, units)

    def line_arrays(self) -> LineArrays:
        return LineArrays.from_keys(self.line_keys, self.line_counts, self.width, self.n_api, N_PERIODS)

    def lines(self) -> dict[tuple[int, int, int], list[int]]:
        return self.line_arrays().to_dict()

    @property
    def plan_used(self) -> dict[tuple[int, int], int]:
        return {divmod(k, N_PERIODS): u for k, u in zip(self.plan_keys.tolist(), self.plan_units.tolist())}

    def to_usage(self) -> Usage:
        usage = Usage(self.width)
        usage.lines = self.lines()
        usage.plan_used = self.plan_used
        return usage


def summarize(tables: KernelTables, batch: Batch, out: Outcomes) -> Usage:
    """The usage of one rated batch (``UsageCounts`` of that batch alone)."""
    counts = UsageCounts(tables)
    counts.add(batch, out)
    return counts.to_usage()


def _merge(keys: np.ndarray, values: np.ndarray, new_keys: np.ndarray, new_values: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Sparse sum: (keys, values) plus (new_keys, new_values), as sorted unique keys and their sums."""
    if not len(keys) and len(new_keys) and (len(new_keys) < 2 or bool((new_keys[1:] > new_keys[:-1]).all())):
        return new_keys.astype(np.int64), new_values.astype(np.int64)
    all_keys = np.concatenate([keys, new_keys]).astype(np.int64)
    all_values = np.concatenate([values, new_values]).astype(np.int64)
    if not len(all_keys):
        return all_keys, all_values
    order = np.argsort(all_keys, kind="stable")
    sk = all_keys[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    return sk[starts], np.add.reduceat(all_values[order], starts)
