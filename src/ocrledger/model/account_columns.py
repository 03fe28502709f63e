"""Accounts as columns: the listed parties, their activations and their plans as arrays; objects on demand.

The kernel tables and the rerater's bills need only these arrays. ``Account`` and ``Plan``
objects (one per row, hundreds of thousands at 10^5 plans) are made only when something asks
for them: ``Accounts.of_columns`` defers them, ``PlanColumns.objects`` makes a plan list.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Iterable, Sequence

import numpy as np

from .account_entries import DEDICATED, SHARED, Account, Plan


def expire_first(end: np.ndarray, start: np.ndarray, ids: Sequence[str]) -> np.ndarray:
    """The kernel's plan order: end, then start, then id in UTF-8 byte order (int64 row indices).

    UTF-8 byte order is code point order, which is how numpy sorts a unicode array (whose
    strings lose trailing NULs: ids with a NUL take Python's sort).
    """
    if any("\0" in i for i in ids):
        keys = [(e, s, i.encode("utf-8")) for e, s, i in zip(end.tolist(), start.tolist(), ids)]
        return np.array(sorted(range(len(ids)), key=keys.__getitem__), dtype=np.int64)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.argsort(np.array(ids, dtype=str), kind="stable")] = np.arange(len(ids))
    return np.lexsort((rank, start, end)).astype(np.int64)


@dataclass(frozen=True, eq=False)
class PlanColumns:
    """Plans as columns, in some order (file order, or the kernel's expire-first order after ``take``)."""

    ids: list[str]
    party: np.ndarray
    """int64: index into ``parties``."""
    parties: Sequence[tuple[str, str]]
    dedicated: np.ndarray
    """bool: dedicated (else shared)."""
    api_set: np.ndarray
    """int64: index into ``api_sets``."""
    api_sets: tuple[tuple[str, ...], ...]
    """Distinct API lists (the one API of a dedicated plan, or a shared plan's APIs)."""
    quantity: np.ndarray
    start: np.ndarray
    end: np.ndarray
    refunded: np.ndarray
    """int64, meaningful where ``refund_given``."""
    refund_given: np.ndarray
    price: np.ndarray
    """int64: index into ``prices``."""
    prices: tuple[int | None, ...]
    source: Callable[[], Sequence[Plan]] | None = field(default=None, repr=False)
    """The plan objects these rows stand for, in this order, if they exist (or can be made once)."""

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def effective_end(self) -> np.ndarray:
        """int64: the end, or the refund when it comes first (``Plan.effective_end``)."""
        return np.where(self.refund_given, np.minimum(self.end, self.refunded), self.end)

    def take(self, index: np.ndarray) -> "PlanColumns":
        """The rows at ``index``, in that order (their objects are the same ones)."""
        index = np.asarray(index, dtype=np.int64)
        listed = index.tolist()

        def source() -> list[Plan]:
            objects = self._objects
            return [objects[k] for k in listed]

        return PlanColumns(
            ids=[self.ids[k] for k in listed], party=self.party[index], parties=self.parties,
            dedicated=self.dedicated[index], api_set=self.api_set[index], api_sets=self.api_sets,
            quantity=self.quantity[index], start=self.start[index], end=self.end[index],
            refunded=self.refunded[index], refund_given=self.refund_given[index], price=self.price[index],
            prices=self.prices, source=source,
        )

    def expire_first(self) -> np.ndarray:
        """The kernel's plan order of these rows (``expire_first``)."""
        return expire_first(self.end, self.start, self.ids)

    def objects(self) -> list[Plan]:
        """The rows as ``Plan`` objects (made once, from the columns, when no objects exist)."""
        return list(self._objects)

    @cached_property
    def _objects(self) -> tuple[Plan, ...]:
        if self.source is not None:
            return tuple(self.source())
        kinds = np.where(self.dedicated, DEDICATED, SHARED).tolist()
        refunds = [r if g else None for r, g in zip(self.refunded.tolist(), self.refund_given.tolist())]
        owners = [self.parties[k] for k in self.party.tolist()]
        return tuple(map(
            Plan, self.ids, [a for a, _ in owners], [c for _, c in owners], kinds,
            [self.api_sets[k] for k in self.api_set.tolist()], self.quantity.tolist(), self.start.tolist(),
            self.end.tolist(), [self.prices[k] for k in self.price.tolist()], refunds,
        ))

    @classmethod
    def of_plans(cls, plans: Sequence[Plan], parties: Sequence[tuple[str, str]]) -> "PlanColumns":
        """Columns of existing plan objects; an owner missing from ``parties`` is appended to them."""
        owners = list(parties)
        index = {p: i for i, p in enumerate(owners)}
        sets: dict[tuple[str, ...], int] = {}
        prices: dict[int | None, int] = {}
        kept = tuple(plans)
        n = len(kept)
        party = [index.setdefault((p.account, p.channel), len(index)) for p in kept]
        owners.extend(list(index)[len(owners):])
        api_set = [sets.setdefault(p.apis, len(sets)) for p in kept]
        price = [prices.setdefault(p.price, len(prices)) for p in kept]

        def ints(values: Iterable[int]) -> np.ndarray:
            return np.fromiter(values, dtype=np.int64, count=n)

        return cls(
            ids=[p.id for p in kept], party=ints(party), parties=owners,
            dedicated=np.fromiter((p.kind == DEDICATED for p in kept), dtype=bool, count=n),
            api_set=ints(api_set), api_sets=tuple(sets),
            quantity=ints(p.quantity for p in kept), start=ints(p.start for p in kept), end=ints(p.end for p in kept),
            refunded=ints(p.refunded or 0 for p in kept),
            refund_given=np.fromiter((p.refunded is not None for p in kept), dtype=bool, count=n),
            price=ints(price), prices=tuple(prices),
            source=lambda: kept,
        )


@dataclass(frozen=True, eq=False)
class AccountColumns:
    """The accounts of one accounts file or folder as columns."""

    parties: list[tuple[str, str]]
    """(account, channel) of each listed account, file order."""
    act_party: np.ndarray
    """int64: the activated party (index into ``parties``), one row per activation, file order."""
    act_api: np.ndarray
    """int64: index into ``api_codes``."""
    act_when: np.ndarray
    """int64: activation instant (epoch ms)."""
    api_codes: tuple[str, ...]
    plans: PlanColumns
    """File order."""

    def account_objects(self) -> tuple[Account, ...]:
        """``Account`` objects, their activations in row order."""
        by_party = np.argsort(self.act_party, kind="stable")
        sorted_party = self.act_party[by_party]
        n = len(sorted_party)
        starts = np.flatnonzero(np.r_[True, sorted_party[1:] != sorted_party[:-1]]) if n else np.zeros(0, np.int64)
        ends = np.r_[starts[1:], n].astype(np.int64)
        codes = np.array(self.api_codes or ("",), dtype=object)[self.act_api[by_party]].tolist()
        instants = self.act_when[by_party].tolist()
        activated = {p: dict(zip(codes[a:b], instants[a:b]))
                     for p, a, b in zip(sorted_party[starts].tolist(), starts.tolist(), ends.tolist())}
        return tuple(Account(a, c, activated.get(i) or {}) for i, (a, c) in enumerate(self.parties))

    @classmethod
    def of_objects(cls, accounts: Sequence[Account], plans: Sequence[Plan]) -> "AccountColumns":
        """Columns of accounts and plans given as objects (the accounts TOML, or built in code)."""
        parties = [(a.id, a.channel) for a in accounts]
        codes: dict[str, int] = {}
        act_party: list[int] = []
        act_api: list[int] = []
        act_when: list[int] = []
        for i, acc in enumerate(accounts):
            for code, when in acc.activated.items():
                act_party.append(i)
                act_api.append(codes.setdefault(code, len(codes)))
                act_when.append(when)
        return cls(
            parties=parties, act_party=np.array(act_party, dtype=np.int64), act_api=np.array(act_api, dtype=np.int64),
            act_when=np.array(act_when, dtype=np.int64), api_codes=tuple(codes),
            plans=PlanColumns.of_plans(plans, parties),
        )
