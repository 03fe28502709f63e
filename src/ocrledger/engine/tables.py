"""Kernel tables from a catalog and accounts: activations, plans in expire-first order, per-pair plan lists."""
from __future__ import annotations

from dataclasses import dataclass, replace
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
        activation = np.full((n, n_api), NO_ACTIVATION, dtype=np.int64)
        activation[official == 0] = ALWAYS_ACTIVE
        if len(cols.act_party):
            code = np.array([catalog.index[c] for c in cols.api_codes], dtype=np.int64)
            activation.reshape(-1)[cols.act_party * n_api + code[cols.act_api]] = cols.act_when
        self.official, self.activation = official, activation
        # plans party by party, each party's in expire-first order: a party's plans are then one run,
        # and any set of parties (in setup order) takes runs that are already in kernel order
        first = cols.plans.expire_first()
        owner = _positions(self.finder, self.parties, cols.plans.parties, cols.plans.party)[cols.plans.party][first]
        by_owner = np.argsort(owner, kind="stable")
        plans = cols.plans.take(first[by_owner])
        owner = owner[by_owner]
        self.plans = plans
        self.plan_ids = np.array(plans.ids, dtype=object).reshape(len(plans))
        self.plan_offset = _offsets(owner, n)
        # one (party, API, plan) entry per API a plan covers, dedicated and shared apart, each sorted by
        # (party, API, plan): a party's entries are one run, already grouped by pair in plan order
        set_len = np.array([len(apis) for apis in plans.api_sets], dtype=np.int64)
        set_start = np.r_[0, np.cumsum(set_len)].astype(np.int64)
        set_codes = np.array([catalog.index[c] for apis in plans.api_sets for c in apis], dtype=np.int64)
        plan_of, nth = ragged(set_len[plans.api_set])
        api = set_codes[set_start[plans.api_set][plan_of] + nth]
        self.entries = []
        for kind in (True, False):
            keep = plans.dedicated[plan_of] == kind
            p_of, e_api = plan_of[keep], api[keep]
            e_owner = owner[p_of]
            by = np.lexsort((p_of, e_api, e_owner))
            self.entries.append(_Entries(_offsets(e_owner, n), np.ascontiguousarray(e_api[by], dtype=np.int64),
                                         np.ascontiguousarray((p_of - self.plan_offset[e_owner])[by], dtype=np.int64)))
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
        activation = np.empty((m, n_api), dtype=np.int64)
        activation[:] = np.where(official == 1, NO_ACTIVATION, ALWAYS_ACTIVE)[:, None]
        known = np.flatnonzero(sel >= 0)
        listed = sel[known]
        if len(known) == m:  # every party listed: one gather straight into the table
            np.take(self.activation, listed, axis=0, out=activation)
        else:
            activation[known] = self.activation[listed]
        # the plans of the listed parties: each party's run, in the order the parties come
        first = self.plan_offset[listed]
        count = self.plan_offset[listed + 1] - first
        _, chosen = spans(first, count)
        run_start = np.cumsum(count) - count  # where each listed party's plans start in the slice
        n_pair = m * n_api
        (ded_offset, ded_plans), (sh_offset, sh_plans) = [_pair_plans(e, listed, known, run_start, n_api, n_pair)
                                                          for e in self.entries]
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


def _pair_plans(entries: "_Entries", listed: np.ndarray, at: np.ndarray, run_start: np.ndarray, n_api: int,
                n_pair: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR offsets (n_pair + 1) and plans (int32) of the pairs of parties ``listed`` (setup positions) put at
    slice positions ``at``, whose plans start at ``run_start``: one compiled pass (``pair_plans``) or numpy."""
    e_first = entries.offset[listed]
    e_count = entries.offset[listed + 1] - e_first
    offset = np.zeros(n_pair + 1, dtype=np.int64)
    core = _kernel.helpers()
    if core is not None:
        plans = np.empty(int(e_count.sum()), dtype=np.int32)
        core.pair_plans(np.ascontiguousarray(listed, dtype=np.int64), np.ascontiguousarray(at, dtype=np.int64),
                        entries.offset, entries.api, entries.rank, np.ascontiguousarray(run_start, dtype=np.int64),
                        n_api, offset, plans)
        return offset, plans
    owner, entry = spans(e_first, e_count)
    pair = at[owner] * n_api + entries.api[entry]  # non-decreasing: parties in order, then API
    np.cumsum(np.bincount(pair, minlength=n_pair), out=offset[1:])
    return offset, (run_start[owner] + entries.rank[entry]).astype(np.int32)


@dataclass
class _Entries:
    """The (party, API, plan) entries of one plan kind: CSR by party, each party's sorted by (API, plan)."""

    offset: np.ndarray
    api: np.ndarray
    rank: np.ndarray
    """The plan's position among its party's plans."""


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
