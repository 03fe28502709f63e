"""Kernel tables from a catalog and accounts: activations, plans in expire-first order, per-pair plan lists."""
from __future__ import annotations

from dataclasses import replace
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


def build_tables(
    catalog: Catalog, accounts: Accounts, parties: Sequence[tuple[str, str]]
) -> tuple[KernelTables, list[Plan]]:
    """Dense kernel tables for ``parties`` (listed accounts first, then any unknown ones).

    Returns the tables and the plans in kernel index order.
    """
    tables, plans = kernel_tables(catalog, accounts, parties)
    return tables, plans.objects()


def kernel_tables(
    catalog: Catalog, accounts: Accounts, parties: Sequence[tuple[str, str]]
) -> tuple[KernelTables, PlanColumns]:
    """``build_tables`` from the accounts' columns, the plans as columns in kernel index order (no objects)."""
    cols = accounts.columns()
    n_api = len(catalog.apis)
    party_index = {p: i for i, p in enumerate(parties)}
    n_party = len(parties)
    arrays = catalog.arrays()
    official = np.array([ch == OFFICIAL for _, ch in parties], dtype=np.int8)
    activation = np.full(n_party * n_api, NO_ACTIVATION, dtype=np.int64)
    activation.reshape(n_party, n_api)[official == 0] = ALWAYS_ACTIVE
    if len(cols.act_party):
        where = _positions(party_index, cols.parties, cols.act_party)
        code = np.array([catalog.index[c] for c in cols.api_codes], dtype=np.int64)
        activation[where[cols.act_party] * n_api + code[cols.act_api]] = cols.act_when
    plans = cols.plans.take(cols.plans.expire_first())
    # one (pair, plan) entry per API a plan covers, in plan order
    set_len = np.array([len(apis) for apis in plans.api_sets], dtype=np.int64)
    set_start = np.r_[0, np.cumsum(set_len)].astype(np.int64)
    set_codes = np.array([catalog.index[c] for apis in plans.api_sets for c in apis], dtype=np.int64)
    plan_of, nth = ragged(set_len[plans.api_set])  # entry: its plan, and which of the plan's APIs
    owner = _positions(party_index, plans.parties, plans.party)[plans.party]
    pair = owner[plan_of] * n_api + set_codes[set_start[plans.api_set][plan_of] + nth]
    dedicated = plans.dedicated[plan_of]
    n_pair = n_party * n_api
    ded_offset, ded_plans = _csr(pair[dedicated], plan_of[dedicated], n_pair)
    sh_offset, sh_plans = _csr(pair[~dedicated], plan_of[~dedicated], n_pair)
    tables = KernelTables(
        n_api=n_api,
        pool_total=catalog.verification_free_total,
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
        plan_start=plans.start.copy(),
        plan_end=plans.effective_end,
        ded_offset=ded_offset,
        ded_plans=ded_plans,
        sh_offset=sh_offset,
        sh_plans=sh_plans,
    )
    return tables, plans


def extend_tables(tables: KernelTables, parties: Sequence[tuple[str, str]]) -> KernelTables:
    """``tables`` with ``parties`` appended: parties that no accounts file lists (no activation, no plans).

    ``extend_tables(build_tables(c, a, known)[0], unknown)`` equals ``build_tables(c, a, known + unknown)[0]``,
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
    offset = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pair, minlength=n), out=offset[1:])
    return offset, plan[np.argsort(pair, kind="stable")].astype(np.int32)
