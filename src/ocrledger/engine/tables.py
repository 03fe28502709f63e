"""Kernel tables from a catalog and accounts: activations, plans in expire-first order, per-pair plan lists."""
from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from typing import Sequence

import numpy as np

from ..kernel.contract import ALWAYS_ACTIVE, NO_ACTIVATION, KernelTables
from ..model.account_columns import PlanColumns, expire_first
from ..model.accounts import OFFICIAL, Accounts, Plan
from ..model.catalog import Catalog
from .ragged import ragged


def plan_order(plans: Sequence[Plan]) -> list[Plan]:
    """Plans in expire-first order: end, then start, then id in UTF-8 byte order (``accountcols.expire_first``)."""
    n = len(plans)
    order = expire_first(np.fromiter((p.end for p in plans), dtype=np.int64, count=n),
                         np.fromiter((p.start for p in plans), dtype=np.int64, count=n), [p.id for p in plans])
    return [plans[k] for k in order.tolist()]


class SetupTables:
    """The kernel tables of a whole setup, compiled once; the tables of any set of parties are sliced from them.

    Compiled: the activation instant of every listed (party, API) pair, the plans in expire-first
    order with each party's plans, and one (party, API, plan) entry per API a plan covers. ``tables``
    then costs what the given parties hold (their activations, plans and entries), not the setup.
    """

    def __init__(self, catalog: Catalog, accounts: Accounts) -> None:
        cols = accounts.columns()
        self.catalog = catalog
        self.n_api = n_api = len(catalog.apis)
        self.arrays = catalog.arrays()
        self.parties: list[tuple[str, str]] = list(cols.parties)
        self.index: dict[tuple[str, str], int] = {p: i for i, p in enumerate(self.parties)}
        n = len(self.parties)
        official = np.fromiter((ch == OFFICIAL for _, ch in self.parties), dtype=np.int8, count=n)
        activation = np.full((n, n_api), NO_ACTIVATION, dtype=np.int64)
        activation[official == 0] = ALWAYS_ACTIVE
        if len(cols.act_party):
            code = np.array([catalog.index[c] for c in cols.api_codes], dtype=np.int64)
            activation.reshape(-1)[cols.act_party * n_api + code[cols.act_api]] = cols.act_when
        self.official, self.activation = official, activation
        plans = cols.plans.take(cols.plans.expire_first())
        self.plans = plans
        self.plan_ids = np.array(plans.ids, dtype=object).reshape(len(plans))
        owner = _positions(self.index, plans.parties, plans.party)[plans.party]
        # one (party, API, plan) entry per API a plan covers, in plan order, then grouped by party
        set_len = np.array([len(apis) for apis in plans.api_sets], dtype=np.int64)
        set_start = np.r_[0, np.cumsum(set_len)].astype(np.int64)
        set_codes = np.array([catalog.index[c] for apis in plans.api_sets for c in apis], dtype=np.int64)
        plan_of, nth = ragged(set_len[plans.api_set])
        by_party = np.argsort(owner[plan_of], kind="stable")
        self.entry_offset = _offsets(owner[plan_of], n)
        self.entry_plan = plan_of[by_party]
        self.entry_api = set_codes[set_start[plans.api_set][plan_of] + nth][by_party]
        self.entry_dedicated = plans.dedicated[plan_of][by_party]
        self.plan_offset = _offsets(owner, n)
        self.plan_of_party = np.argsort(owner, kind="stable")
        self._whole: tuple[KernelTables, PlanSlice] | None = None

    def tables(self, parties: Sequence[tuple[str, str]], listed_at: np.ndarray | None = None
               ) -> tuple[KernelTables, "PlanSlice"]:
        """Kernel tables for ``parties`` (listed or not, in the order given) and their plans, in kernel order.

        A party no accounts file lists has no activation and no plans. The plans keep the setup's
        expire-first order, so the kernel picks the same plan as over the whole setup. ``listed_at``
        may give each party's position in the setup (-1: not listed) when it is known already.
        """
        n = len(self.parties)
        if len(parties) >= n and list(parties[:n]) == self.parties:
            whole = self._whole if self._whole is not None else self._slice(np.arange(n, dtype=np.int64), self.parties)
            self._whole = whole
            return extend_tables(whole[0], parties[n:]), whole[1]
        if listed_at is None:
            index = self.index
            listed_at = np.array([index.get(p, -1) for p in parties], dtype=np.int64).reshape(len(parties))
        return self._slice(listed_at, parties)

    def _slice(self, sel: np.ndarray, parties: Sequence[tuple[str, str]]) -> tuple[KernelTables, "PlanSlice"]:
        m, n_api = len(parties), self.n_api
        official = np.array([ch == OFFICIAL for _, ch in parties], dtype=np.int8).reshape(m)
        activation = np.empty((m, n_api), dtype=np.int64)
        activation[:] = np.where(official == 1, NO_ACTIVATION, ALWAYS_ACTIVE)[:, None]
        known = np.flatnonzero(sel >= 0)
        listed = sel[known]
        activation[known] = self.activation[listed]
        # the plans of the listed parties, in the setup's kernel order
        owner, nth = ragged(self.plan_offset[listed + 1] - self.plan_offset[listed])
        chosen = np.sort(self.plan_of_party[self.plan_offset[listed][owner] + nth])
        owner, nth = ragged(self.entry_offset[listed + 1] - self.entry_offset[listed])
        entry = self.entry_offset[listed][owner] + nth
        pair = known[owner] * n_api + self.entry_api[entry]
        plan = np.searchsorted(chosen, self.entry_plan[entry])
        dedicated = self.entry_dedicated[entry]
        n_pair = m * n_api
        ded_offset, ded_plans = _csr(pair[dedicated], plan[dedicated], n_pair)
        sh_offset, sh_plans = _csr(pair[~dedicated], plan[~dedicated], n_pair)
        plans = PlanSlice(self.plans, self.plan_ids, chosen)
        arrays = self.arrays
        tables = KernelTables(
            n_api=n_api,
            pool_total=self.catalog.verification_free_total,
            api_kind=arrays["api_kind"],
            api_free=arrays["api_free"],
            api_points=arrays["api_points"],
            api_dedicated=arrays["api_dedicated"],
            api_shared=arrays["api_shared"],
            tier_offset=arrays["tier_offset"],
            tier_upto=arrays["tier_upto"],
            tier_price=arrays["tier_price"],
            party_official=official,
            activation=activation.reshape(-1),
            plan_start=self.plans.start[chosen],
            plan_end=self.plans.effective_end[chosen],
            ded_offset=ded_offset,
            ded_plans=ded_plans,
            sh_offset=sh_offset,
            sh_plans=sh_plans,
        )
        return tables, plans


class PlanSlice:
    """Some rows of a setup's plan columns (kernel order): what the kernel needs at once, the rest on demand."""

    def __init__(self, plans: PlanColumns, ids: np.ndarray, rows: np.ndarray) -> None:
        self.source, self.rows, self._ids = plans, rows, ids
        self.quantity = plans.quantity[rows]

    def __len__(self) -> int:
        return len(self.rows)

    def ids_of(self, plan: np.ndarray) -> np.ndarray:
        """The id of each plan index in ``plan`` (an object array of str; "" for -1)."""
        out = np.full(len(plan), "", dtype=object)
        paid = plan >= 0
        out[paid] = self._ids[self.rows[plan[paid]]]
        return out

    @cached_property
    def columns(self) -> PlanColumns:
        """The rows as plan columns (the whole setup's own columns when every plan is taken)."""
        if len(self.rows) == len(self.source):
            return self.source
        return replace(self.source.take(self.rows), source=None)  # objects made for these rows only

    def objects(self) -> list[Plan]:
        return self.columns.objects()


def extend_tables(tables: KernelTables, parties: Sequence[tuple[str, str]]) -> KernelTables:
    """``tables`` with ``parties`` appended: parties that no accounts file lists (no activation, no plans).

    ``extend_tables(setup.tables(known)[0], unknown)`` equals ``setup.tables(known + unknown)[0]``,
    so the listed parties' tables can be built before the calls have been read.
    """
    if not parties:
        return tables
    official = np.array([ch == OFFICIAL for _, ch in parties], dtype=np.int8)
    activation = np.repeat(np.where(official == 1, NO_ACTIVATION, ALWAYS_ACTIVE), tables.n_api).astype(np.int64)
    pairs = len(parties) * tables.n_api
    return replace(
        tables,
        party_official=np.concatenate([tables.party_official, official]),
        activation=np.concatenate([tables.activation, activation]),
        ded_offset=np.concatenate([tables.ded_offset, np.full(pairs, tables.ded_offset[-1], dtype=np.int64)]),
        sh_offset=np.concatenate([tables.sh_offset, np.full(pairs, tables.sh_offset[-1], dtype=np.int64)]),
    )


def _positions(index: dict[tuple[str, str], int], parties: Sequence[tuple[str, str]], used: np.ndarray) -> np.ndarray:
    """Position in ``index`` of each of ``parties`` that ``used`` names (others 0): a KeyError for a used one
    that ``index`` lacks."""
    prefix = list(index)[: len(parties)] if len(index) >= len(parties) else None
    if prefix == list(parties):  # the usual case: the listed parties come first, in their order
        return np.arange(len(parties), dtype=np.int64)
    where = np.zeros(len(parties), dtype=np.int64)
    listed = np.unique(used).tolist()
    where[listed] = [index[parties[k]] for k in listed]
    return where


def _csr(pair: np.ndarray, plan: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (n + 1) and plan indices (int32) of each pair's plans, in the order given (plan order)."""
    return _offsets(pair, n), plan[np.argsort(pair, kind="stable")].astype(np.int32)


def _offsets(owner: np.ndarray, n: int) -> np.ndarray:
    """CSR offsets (n + 1) of items grouped by ``owner`` (each in 0..n-1)."""
    offset = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=offset[1:])
    return offset
