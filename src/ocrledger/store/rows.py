"""The stored rows as columns: the setup (written once, some parties' rows read back as ``Accounts``) and counters."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..model.account_columns import AccountColumns, PlanColumns
from ..model.accounts import DEDICATED, Accounts, Alert, QpsAddon


def accounts_of(store: Any, ids: Sequence[int], names: dict[int, tuple[str, str, bool]], *, source: str,
                pairs: Sequence[tuple[int, str]] | None = None) -> tuple[Accounts, dict[str, int]]:
    """The listed ones of parties ``ids`` as ``Accounts`` (activations, plans, add-ons, alerts) and the use so
    far of each of their plans (plan id -> calls or points). Credentials are looked up by key instead. With
    ``pairs`` (party id, API code: a batch's), only those pairs' activations are read: the others cannot
    matter to the batch.

    The accounts and plans are columns made straight from the rows (``Accounts.of_columns``): their
    objects are made only when something asks for them.
    """
    listed = [i for i in ids if names[i][2]]
    parties = [(names[i][0], names[i][1]) for i in listed]
    at = {pid: k for k, pid in enumerate(listed)}
    codes: dict[str, int] = {}
    acts = store.activations(listed) if pairs is None else store.activations(listed, pairs)
    act_party = np.array([at[p] for p, _, _ in acts], dtype=np.int64)
    act_api = np.array([codes.setdefault(api, len(codes)) for _, api, _ in acts], dtype=np.int64)
    act_when = np.array([w for _, _, w in acts], dtype=np.int64)
    rows = store.plans_of(listed)
    n = len(rows)
    sets: dict[str, int] = {}
    prices: dict[int | None, int] = {}

    def ints(values: Iterable[int]) -> np.ndarray:
        return np.fromiter(values, dtype=np.int64, count=n)

    plans = PlanColumns(
        ids=[r[0] for r in rows], party=ints(at[r[1]] for r in rows), parties=parties,
        dedicated=np.fromiter((r[2] == DEDICATED for r in rows), dtype=bool, count=n),
        api_set=ints(sets.setdefault(r[3], len(sets)) for r in rows),
        api_sets=tuple(tuple(json.loads(text)) for text in sets),
        quantity=ints(r[4] for r in rows), start=ints(r[5] for r in rows), end=ints(r[6] for r in rows),
        refunded=ints(r[8] or 0 for r in rows),
        refund_given=np.fromiter((r[8] is not None for r in rows), dtype=bool, count=n),
        price=ints(prices.setdefault(r[7], len(prices)) for r in rows), prices=tuple(prices),
    )
    columns = AccountColumns(parties, act_party, act_api, act_when, tuple(codes), plans)
    by_id = {i: (names[i][0], names[i][1]) for i in listed}
    addons = tuple(QpsAddon(*by_id[p], api, q, s, e) for p, api, q, s, e in store.addons(listed))
    alerts = tuple(Alert(*by_id[p], kind, target, th) for p, kind, target, th in store.alerts(listed))
    return Accounts.of_columns(columns, addons, alerts, (), source), {r[0]: int(r[9]) for r in rows}


def write_accounts(store: Any, accounts: Accounts) -> None:
    """Store a whole accounts setup as rows (creation and migration): parties in file order, plans as bought."""
    party: dict[tuple[str, str], int] = {}
    for a in accounts.accounts:
        party[(a.id, a.channel)] = pid = store.add_party(a.id, a.channel, True)
        for api, at in a.activated.items():
            store.set_activation(pid, api, at)
    for p in accounts.plans:
        store.add_plan(p.id, party[(p.account, p.channel)], p.kind, json.dumps(list(p.apis)), p.quantity, p.start,
                       p.end, p.price, p.refunded)
    for q in accounts.qps_addons:
        store.add_addon(party[(q.account, q.channel)], q.api, q.qps, q.start, q.end)
    for al in accounts.alerts:
        store.add_alert(party[(al.account, al.channel)], al.kind, al.target, al.threshold)
    for c in accounts.credentials:
        store.add_credential(c.key, party[(c.account, c.channel)], c.valid_from, c.valid_until)


@dataclass(frozen=True)
class CounterRows:
    """Counter rows as columns: (party id, period, API code, target) and the counts of each.

    A row's counts are stored as one BLOB of little-endian int64 (``pack``), so a batch's thousands of
    rows are read and written as one buffer rather than a text each.
    """

    party: np.ndarray
    period: np.ndarray
    api: list[str]
    target: np.ndarray
    counts: np.ndarray
    """(rows, width) int64; rows read from the store are as wide as the widest of them (zeros past a row's own)."""

    def __len__(self) -> int:
        return len(self.api)

    @classmethod
    def of(cls, rows: Sequence[tuple[int, int, str, int, Sequence[int]]], width: int | None = None) -> "CounterRows":
        """Rows of (party, period, api, target, counts)."""
        w = width if width is not None else max((len(r[4]) for r in rows), default=0)
        counts = np.zeros((len(rows), w), dtype=np.int64)
        for k, r in enumerate(rows):
            counts[k, : len(r[4])] = r[4]
        return cls(np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.int64),
                   [r[2] for r in rows], np.array([r[3] for r in rows], dtype=np.int64), counts)

    @classmethod
    def read(cls, rows: Sequence[tuple[int, int, str, int, bytes]]) -> "CounterRows":
        """Rows as the store returns them: (party, period, api, target, packed counts)."""
        n = len(rows)
        blobs = [bytes(r[4]) for r in rows]
        width = max((len(b) for b in blobs), default=0) // 8
        if all(len(b) == 8 * width for b in blobs):
            counts = np.frombuffer(b"".join(blobs), dtype="<i8").astype(np.int64).reshape(n, width)
        else:
            counts = np.zeros((n, width), dtype=np.int64)
            for k, b in enumerate(blobs):
                counts[k, : len(b) // 8] = np.frombuffer(b, dtype="<i8")
        return cls(np.fromiter((r[0] for r in rows), dtype=np.int64, count=n),
                   np.fromiter((r[1] for r in rows), dtype=np.int64, count=n), [r[2] for r in rows],
                   np.fromiter((r[3] for r in rows), dtype=np.int64, count=n), counts)

    @classmethod
    def concat(cls, parts: Sequence["CounterRows"], width: int) -> "CounterRows":
        """The rows of ``parts`` in turn, ``width`` counts wide (or as wide as the widest part)."""
        w = max([width, *(p.counts.shape[1] for p in parts)])
        counts = np.zeros((sum(len(p) for p in parts), w), dtype=np.int64)
        k = 0
        for p in parts:
            counts[k : k + len(p), : p.counts.shape[1]] = p.counts
            k += len(p)

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts]) if parts else np.zeros(0, dtype=np.int64)

        return cls(cat("party"), cat("period"), [a for p in parts for a in p.api], cat("target"), counts)

    def take(self, index: np.ndarray) -> "CounterRows":
        return CounterRows(self.party[index], self.period[index], [self.api[k] for k in index.tolist()],
                           self.target[index], self.counts[index])

    def packed(self) -> list[bytes]:
        """Each row's counts as the BLOB the store keeps (made once: the store and the writer's cache both use it)."""
        blobs = self.__dict__.get("_packed")
        if blobs is None:
            blobs = self.__dict__["_packed"] = pack(self.counts)
        return blobs

    def tuples(self) -> Iterator[tuple[int, int, str, int, list[int]]]:
        """(party, period, api, target, counts) per row, as Python values."""
        return zip(self.party.tolist(), self.period.tolist(), self.api, self.target.tolist(), self.counts.tolist())


def pack(counts: np.ndarray) -> list[bytes]:
    """Each row of an (n, width) integer array as its little-endian int64 bytes."""
    data = np.ascontiguousarray(counts, dtype="<i8")
    raw, step = data.tobytes(), 8 * (data.shape[1] if data.ndim == 2 else 0)
    return [raw[k : k + step] for k in range(0, len(raw), step)] if step else [b""] * len(data)


def unpack(blob: bytes) -> list[int]:
    """One row's counts from its BLOB."""
    return np.frombuffer(bytes(blob), dtype="<i8").tolist()
