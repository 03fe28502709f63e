"""Kernel tables from a catalog and accounts: activations, plans in expire-first order, per-pair plan lists."""
from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from typing import Sequence

import numpy as np

from ..kernel import select as _kernel
from ..kernel.contract import ALWAYS_ACTIVE, NO_ACTIVATION, KernelTables
from ..model.account_columns import PlanColumns, expire_first
from ..model.accounts import OFFICIAL, Accounts, Plan
from ..model.catalog import Catalog
from .party_index import PartyIndex
from .ragged import ragged, spans


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
        self.finder = PartyIndex(self.parties)
        """(account, channel) -> setup position, looked up per batch party (``PartyIndex``)."""
        n = len(self.parties)
        official = (self.finder.market == 0).astype(np.int8)
        # a party's row: its plan run (first, count), its dedicated and shared entry runs, its activations
        self.block = block = np.empty((n, 6 + n_api), dtype=np.int64)
        """Per setup party: plan run (first, count), dedicated and shared entry runs, then the activation
        instant of each API: what a slice reads of a party, in one row."""
        activation = block[:, 6:]
        activation[:] = NO_ACTIVATION
        activation[official == 0] = ALWAYS_ACTIVE
        if len(cols.act_party):
            code = np.array([catalog.index[c] for c in cols.api_codes], dtype=np.int64)
            activation[cols.act_party, code[cols.act_api]] = cols.act_when
        # plans party by party, each party's in expire-first order: a party's plans are then one run,
        # and any set of parties (in setup order) takes runs that are already in kernel order
        first = cols.plans.expire_first()
        owner = _positions(self.finder, self.parties, cols.plans.parties, cols.plans.party)[cols.plans.party][first]
        by_owner = np.argsort(owner, kind="stable")
        plans = cols.plans.take(first[by_owner])
        owner = owner[by_owner]
        self.plans = plans
        self.plan_ids = np.array(plans.ids, dtype=object).reshape(len(plans))
        plan_offset = _offsets(owner, n)
        self.plan_kernel = np.ascontiguousarray(np.stack([plans.start, plans.effective_end, plans.quantity], axis=1),
                                                dtype=np.int64).reshape(len(plans), 3)
        """(start, effective end, quantity) of each plan: one row, so a slice gathers one run per party."""
        # one (party, API, plan) entry per API a plan covers, dedicated and shared apart, each sorted by
        # (party, API, plan): a party's entries are one run, already grouped by pair in plan order
        set_len = np.array([len(apis) for apis in plans.api_sets], dtype=np.int64)
        set_start = np.r_[0, np.cumsum(set_len)].astype(np.int64)
        set_codes = np.array([catalog.index[c] for apis in plans.api_sets for c in apis], dtype=np.int64)
        plan_of, nth = ragged(set_len[plans.api_set])
        api = set_codes[set_start[plans.api_set][plan_of] + nth]
        block[:, 0], block[:, 1] = plan_offset[:-1], np.diff(plan_offset)
        self.entries: list[np.ndarray] = []
        """Per plan kind (dedicated, shared): the (API, plan position among its party's plans) int32 rows."""
        for col, kind in ((2, True), (4, False)):
            keep = plans.dedicated[plan_of] == kind
            p_of, e_api = plan_of[keep], api[keep]
            e_owner = owner[p_of]
            by = np.lexsort((p_of, e_api, e_owner))
            offset = _offsets(e_owner, n)
            block[:, col], block[:, col + 1] = offset[:-1], np.diff(offset)
            self.entries.append(np.ascontiguousarray(
                np.stack([e_api[by], (p_of - plan_offset[e_owner])[by]], axis=1), dtype=np.int32).reshape(-1, 2))
        self._whole: tuple[KernelTables, PlanSlice] | None = None

    def tables(self, parties: Sequence[tuple[str, str]], listed_at: np.ndarray | None = None
               ) -> tuple[KernelTables, "PlanSlice"]:
        """Kernel tables for ``parties`` (listed or not, in the order given) and their plans, in kernel order.

        A party no accounts file lists has no activation and no plans. The plans keep the setup's
        expire-first order, so the kernel picks the same plan as over the whole setup. ``listed_at``
        may give each party's position in the setup (-1: not listed) when it is known already.
        """
        n, m = len(self.parties), len(parties)
        if listed_at is None:
            market = getattr(parties, "market", None)
            if market is None:
                market = np.fromiter((ch != OFFICIAL for _, ch in parties), dtype=np.int8, count=m)
            listed_at = self.finder.find([a for a, _ in parties], market)
        if m >= n and n and bool((listed_at[:n] == np.arange(n)).all()):  # the whole setup, then unlisted parties
            whole = self._whole if self._whole is not None else self._slice(np.arange(n, dtype=np.int64), self.parties)
            self._whole = whole
            return extend_tables(whole[0], parties[n:]), whole[1]
        return self._slice(listed_at, parties)

    def _slice(self, sel: np.ndarray, parties: Sequence[tuple[str, str]]) -> tuple[KernelTables, "PlanSlice"]:
        m, n_api = len(parties), self.n_api
        market = getattr(parties, "market", None)
        official = (market == 0).astype(np.int8) if market is not None else \
            np.fromiter((ch == OFFICIAL for _, ch in parties), dtype=np.int8, count=m)
        sel = np.ascontiguousarray(sel, dtype=np.int64)
        activation = np.empty(m * n_api, dtype=np.int64)
        ded_offset, sh_offset = np.zeros(m * n_api + 1, dtype=np.int64), np.zeros(m * n_api + 1, dtype=np.int64)
        core = _kernel.helpers()
        if core is not None:  # one compiled pass over the parties' rows
            chosen, start, end, quantity, ded_plans, sh_plans = core.slice_setup(
                sel, official, self.block, self.plan_kernel, *self.entries, NO_ACTIVATION, ALWAYS_ACTIVE,
                activation, ded_offset, sh_offset)
        else:
            chosen, start, end, quantity, ded_plans, sh_plans = self._slice_numpy(
                sel, official, activation, ded_offset, sh_offset)
        plans = PlanSlice(self.plans, self.plan_ids, chosen, quantity)
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
            activation=activation,
            plan_start=start,
            plan_end=end,
            ded_offset=ded_offset,
            ded_plans=ded_plans,
            sh_offset=sh_offset,
            sh_plans=sh_plans,
        )
        return tables, plans

    def _slice_numpy(self, sel: np.ndarray, official: np.ndarray, activation: np.ndarray, ded_offset: np.ndarray,
                     sh_offset: np.ndarray) -> tuple[np.ndarray, ...]:
        """The numpy twin of the compiled ``slice_setup``: the same arrays from the same packed rows."""
        m, n_api, block = len(sel), self.n_api, self.block
        table = activation.reshape(m, n_api)
        table[:] = np.where(official == 1, NO_ACTIVATION, ALWAYS_ACTIVE)[:, None]
        known = np.flatnonzero(sel >= 0)
        rows = block[sel[known]]
        table[known] = rows[:, 6:]
        owner, chosen = spans(rows[:, 0], rows[:, 1])
        run_start = np.cumsum(rows[:, 1]) - rows[:, 1]  # where each listed party's plans start in the slice
        lists = []
        for col, entries, offset in ((2, self.entries[0], ded_offset), (4, self.entries[1], sh_offset)):
            e_owner, entry = spans(rows[:, col], rows[:, col + 1])
            pair = known[e_owner] * n_api + entries[entry, 0]  # non-decreasing: parties in order, then API
            np.cumsum(np.bincount(pair, minlength=m * n_api), out=offset[1:])
            lists.append((run_start[e_owner] + entries[entry, 1]).astype(np.int32))
        kernel = self.plan_kernel[chosen]
        return (chosen, np.ascontiguousarray(kernel[:, 0]), np.ascontiguousarray(kernel[:, 1]),
                np.ascontiguousarray(kernel[:, 2]), lists[0], lists[1])


class PlanSlice:
    """Some rows of a setup's plan columns (kernel order): what the kernel needs at once, the rest on demand."""

    def __init__(self, plans: PlanColumns, ids: np.ndarray, rows: np.ndarray, quantity: np.ndarray) -> None:
        self.source, self.rows, self._ids = plans, rows, ids
        self.quantity = quantity
        """int64: each row's quantity (``plans.quantity[rows]``)."""

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
        if len(self.rows) == len(self.source) and bool((self.rows == np.arange(len(self.rows))).all()):
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


def _positions(finder: PartyIndex, listed: Sequence[tuple[str, str]], parties: Sequence[tuple[str, str]],
               used: np.ndarray) -> np.ndarray:
    """Position in ``listed`` (indexed by ``finder``) of each of ``parties`` that ``used`` names (others 0):
    a KeyError for a used one that is not listed."""
    if len(listed) >= len(parties) and list(listed[: len(parties)]) == list(parties):  # the usual case
        return np.arange(len(parties), dtype=np.int64)
    where = np.zeros(len(parties), dtype=np.int64)
    wanted = np.unique(used)
    pairs = [parties[k] for k in wanted.tolist()]
    found = finder.find([a for a, _ in pairs], np.array([ch != OFFICIAL for _, ch in pairs], dtype=np.int8))
    if (found < 0).any():
        raise KeyError(pairs[int(np.argmax(found < 0))])
    where[wanted] = found
    return where


def _offsets(owner: np.ndarray, n: int) -> np.ndarray:
    """CSR offsets (n + 1) of items grouped by ``owner`` (each in 0..n-1)."""
    offset = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=offset[1:])
    return offset
