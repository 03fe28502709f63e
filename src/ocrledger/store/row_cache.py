"""What the writer keeps of the rows its batches read, valid while no other connection commits."""
from __future__ import annotations

from itertools import islice
from operator import itemgetter
from typing import Any, Sequence

from .rows import CounterRows

MAX_PARTIES = 20_000
"""Parties whose setup rows are kept: past it the oldest quarter is forgotten, and read again when a batch needs
it. In the issue's setup (9 APIs, 2.5 plans a party) a kept party costs about 2.4 KB and a counter line 0.6 KB
(201 MB measured for 53,703 parties and 120,967 lines). With these bounds, checked before each batch, thirteen
10,000-call batches at 10^5 accounts left 109 MB kept when every batch read through it, 49 MB now that a batch
of mostly new parties reads the store (``find_parties``)."""
MAX_LINES = 60_000
"""(party, month, API) counter lines kept: past it the oldest quarter is forgotten."""


class RowCache:
    """A read-through view of a store for ``Ledger.ingest``: the same read methods (``find_parties``,
    ``party_names``, ``activations``, ``plans_of``, ``addons``, ``alerts``, ``pools``, ``counters``) answered
    from memory for parties already read, and the same writes (``add_parties``, ``add_plan_use``,
    ``add_pools``, ``put_counters``) passed to the store and applied to what is kept.

    What is kept is only ever the committed state of the file:

    - ``begin()`` runs first in every ingest transaction, with the write lock held: the store's
      ``data_version()`` (SQLite's ``PRAGMA data_version``) changes exactly when another connection
      committed since, and then everything is forgotten. A store without such a token (PostgreSQL,
      where several writers commit side by side) returns None and nothing is ever kept.
    - ``clear()`` runs when the transaction fails (its rows were never committed: a party id it added
      may be given again) and for every other write of this connection (a plan bought or refunded, an
      API activated, an account listed, a month closed): those change setup rows, so the next batch
      reads them afresh.
    - the writes of a batch update what is kept in the same transaction; if the commit fails, ``clear()``.
    """

    def __init__(self, store: Any, *, max_parties: int = MAX_PARTIES, max_lines: int = MAX_LINES) -> None:
        self.store = store
        self.max_parties, self.max_lines = max_parties, max_lines
        self.token: Any = None
        self.enabled = False
        """True while what is kept is valid: the writes of a batch are applied to it."""
        self.active = False
        """True when this batch reads through what is kept (``find_parties`` decides, first in a batch)."""
        self.clear()

    # ----------------------------------------------------------- validity
    def clear(self) -> None:
        """Forget everything (the next reads go to the store)."""
        self._ids: dict[tuple[str, str], tuple[int, bool]] = {}
        self._names: dict[int, tuple[str, str, bool]] = {}
        self._acts: dict[tuple[int, str], int | None] = {}
        self._plans: dict[int, list[tuple[Any, ...]]] = {}
        self._used: dict[str, int] = {}
        self._has_addons: dict[int, bool] = {}
        self._has_alerts: dict[int, bool] = {}
        self._pools: dict[int, int] = {}
        self._lines: dict[tuple[int, int, str], dict[int, tuple[int, int, str, int, bytes]]] = {}
        """(party, period, API) -> target -> the row (party, period, api, target, packed counts): every row
        of that line."""

    def begin(self) -> None:
        """At the start of an ingest transaction (write lock held): forget everything if another connection
        committed since the last one, or always when the store gives no token."""
        token = self.store.data_version()
        if token is None or token != self.token:
            self.clear()
        self.token, self.enabled = token, token is not None
        self.active = self.enabled
        self.trim()

    def trim(self) -> None:
        """Forget the oldest quarter of what passed its bound (each map alone stays exact: a missing entry is read
        from the store; a party's plans go with their use)."""
        cap = self.max_parties
        for kept, bound in ((self._ids, cap), (self._names, cap), (self._acts, 9 * cap), (self._has_addons, cap),
                            (self._has_alerts, cap), (self._pools, cap), (self._lines, self.max_lines)):
            if len(kept) > bound:
                for key in list(islice(kept, len(kept) - bound * 3 // 4)):
                    del kept[key]
        if len(self._plans) > cap:
            for party in list(islice(self._plans, len(self._plans) - cap * 3 // 4)):
                for row in self._plans.pop(party):
                    del self._used[row[0]]

    # -------------------------------------------------------------- parties
    def find_parties(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, bool]]:
        """The store's answer; first in a batch, it also decides whether the batch reads through what is kept:
        when at least half its parties are kept, or all of them fit under the bound. A batch of mostly new
        parties past the bound (10^5 accounts, batches of 10,000 calls) would only churn it, so it reads the
        store (what is kept stays exact: the batch's writes still update it)."""
        if not self.active:
            return self.store.find_parties(pairs)
        ids = self._ids
        missing = [p for p in pairs if p not in ids]
        if 2 * len(missing) > len(pairs) and len(self._names) + len(missing) > self.max_parties:
            self.active = False
            return self.store.find_parties(pairs)
        if missing:
            ids.update(self.store.find_parties(missing))
        return {p: ids[p] for p in pairs if p in ids}

    def add_parties(self, pairs: Sequence[tuple[str, str]], listed: bool) -> list[int]:
        new = self.store.add_parties(pairs, listed)
        if self.enabled:
            for (account, channel), party in zip(pairs, new):
                self._ids[(account, channel)] = (party, listed)
                self._names[party] = (account, channel, listed)
        return new

    def party_names(self, parties: Sequence[int]) -> dict[int, tuple[str, str, bool]]:
        if not self.active:
            return self.store.party_names(parties)
        names = self._names
        missing = [p for p in parties if p not in names]
        if missing:
            names.update(self.store.party_names(missing))
        return {p: names[p] for p in parties if p in names}

    # ---------------------------------------------------------------- setup
    def activations(self, parties: Sequence[int], pairs: Sequence[tuple[int, str]] | None = None
                    ) -> list[tuple[int, str, int]]:
        if not self.active or pairs is None:
            return self.store.activations(parties, pairs)
        acts = self._acts
        hits: list[tuple[int, str]] = []
        missing: list[tuple[int, str]] = []
        for pa in pairs:
            (hits if pa in acts else missing).append(pa)
        found = self.store.activations(sorted({p for p, _ in missing}), missing) if missing else []
        for pa in missing:
            acts[pa] = None
        for p, api, at in found:
            acts[(p, api)] = at
        if not hits:
            return found  # the store's answer, in its order (party, api)
        kept = [(p, api, acts[(p, api)]) for p, api in hits]
        return sorted([r for r in kept if r[2] is not None] + found)

    def plans_of(self, parties: Sequence[int]) -> list[tuple[Any, ...]]:
        """The store's rows (ordered by party, then purchase), the use so far last."""
        if not self.active:
            return self.store.plans_of(parties)
        plans, used = self._plans, self._used
        wanted = sorted(set(parties))
        missing = [p for p in wanted if p not in plans]
        found = self.store.plans_of(missing) if missing else []
        for p in missing:
            plans[p] = []
        for row in found:
            plans[row[1]].append(row)  # its use (row[9]) is kept apart: batches add to it
            used[row[0]] = int(row[9])
        if len(missing) == len(wanted):
            return found
        asked = set(missing)
        rows = [(*row[:9], used[row[0]]) for p in wanted if p not in asked for row in plans[p]] + found
        rows.sort(key=itemgetter(1))  # by party; stable, so each party's plans stay in purchase order
        return rows

    def add_plan_use(self, rows: Sequence[tuple[str, int, int]]) -> None:
        self.store.add_plan_use(rows)
        if self.enabled:
            for plan_id, _, units in rows:
                if plan_id in self._used:
                    self._used[plan_id] += units

    def addons(self, parties: Sequence[int]) -> list[tuple[int, str, int, int, int]]:
        return self._some(parties, self._has_addons, self.store.addons)

    def alerts(self, parties: Sequence[int]) -> list[tuple[int, str, str | None, str]]:
        return self._some(parties, self._has_alerts, self.store.alerts)

    def _some(self, parties: Sequence[int], has: dict[int, bool], read: Any) -> list[Any]:
        """Rows of a table most parties have none of (add-ons, alerts): only parties known to have none are
        skipped; the store is asked for the others, so the rows keep the store's order."""
        if not self.active:
            return read(parties)
        ask = [p for p in parties if has.get(p, True)]
        if not ask:
            return []
        rows = read(ask)
        with_rows = {r[0] for r in rows}
        for p in ask:
            has[p] = p in with_rows
        return rows

    # ---------------------------------------------------------------- pools
    def pools(self, parties: Sequence[int]) -> dict[int, int]:
        if not self.active:
            return self.store.pools(parties)
        kept = self._pools
        missing = [p for p in parties if p not in kept]
        if missing:
            found = self.store.pools(missing)
            for p in missing:
                kept[p] = found.get(p, 0)
        return {p: kept[p] for p in parties if kept[p]}

    def add_pools(self, rows: Sequence[tuple[int, int]]) -> None:
        self.store.add_pools(rows)
        if self.enabled:
            for p, free in rows:
                if p in self._pools:
                    self._pools[p] += free

    # ------------------------------------------------------------- counters
    def counters(self, parties: Sequence[int], period: int, pairs: Sequence[tuple[int, str]] | None = None
                 ) -> CounterRows:
        """As the store's: with ``pairs``, every row (each target) of those (party, API) lines of ``period``."""
        if not self.active or pairs is None:
            return self.store.counters(parties, period, pairs)
        lines = self._lines
        hits: list[tuple[int, str]] = []
        missing: list[tuple[int, str]] = []
        for p, a in pairs:
            (hits if (p, period, a) in lines else missing).append((p, a))
        found = self.store.counters(parties, period, missing) if missing else None
        for p, a in missing:
            lines[(p, period, a)] = {}
        if found is not None:
            for row in zip(found.party.tolist(), found.period.tolist(), found.api, found.target.tolist(),
                           found.packed()):
                lines[(row[0], period, row[2])][row[3]] = row
            if not hits:
                return found
        kept = CounterRows.read([row for p, a in hits for row in lines[(p, period, a)].values()])
        # the rows of the lines kept, then the ones read (the order of rows is not part of the answer)
        return kept if found is None or not len(found) else CounterRows.concat([kept, found], 0)

    def put_counters(self, rows: CounterRows) -> None:
        self.store.put_counters(rows)
        if not self.enabled:
            return
        lines = self._lines
        for row in zip(rows.party.tolist(), rows.period.tolist(), rows.api, rows.target.tolist(), rows.packed()):
            kept = lines.get((row[0], row[1], row[2]))
            if kept is not None:  # else not read by this batch (forgotten when full): read from the store next time
                kept[row[3]] = row
