"""The embedded ledger: durable incremental rating on a normalized store, where each operation costs what it touches."""
from __future__ import annotations

import json
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, Sequence

import numpy as np

from ..codes import Source, Status
from ..engine.bill_columns import bill_columns, line_exact
from ..bills.files import json_texts
from ..engine.billing import BillSet
from ..engine.encode import encode
from ..engine.qps import qps_arrays
from ..engine.rate import Engine, as_accounts, as_catalog, outcome_columns
from ..engine.usage import DUPLICATE, FREE, TIER0, LineArrays, UsageCounts, position_spend
from ..errors import ConflictError, MoneyError, OcrledgerError, StateError
from ..io.calls import read_calls
from ..kernel import select as _kernel
from ..kernel.contract import Batch, KernelState, KernelTables, Outcomes
from ..model.accounts import (
    MARKETPLACE,
    OFFICIAL,
    Accounts,
    Alert,
    Credential,
    Plan,
    QpsAddon,
    parse_accounts,
)
from ..model.bills import Adjustment, Bill
from ..model.catalog import Catalog, parse_catalog
from ..model.clock import N_PERIODS, from_ms, parse_period, period_label
from ..model.money import check_int64, round_line, to_cents_decimal, to_decimal
from .alerts import AlertEvent, detect
from .log import LogPage, PlanState, log_page, plan_state
from .persist import catalog_to_dict
from .row_cache import RowCache
from .rows import CounterRows, accounts_of, write_accounts
from .backends import Store, create_store, open_store
from .sqlite_sql import SCHEMA_VERSION, SqliteStore
from .sqlite_migrate import migrate_v1, migrate_v2

MIGRATIONS = {"1": migrate_v1, "2": migrate_v2}
"""Older schema versions and what rewrites each as the current one (the whole file, in one transaction)."""
CONFLICT_RETRIES = 20
"""Times a batch is run again when a concurrent writer committed one of its record ids first (PostgreSQL)."""

ON_TIME = -1
"""``target`` of a usage line rated in its own (open) month; a late line names its target month."""

SPEND_GUARD = 1 << 62
"""Above this bound the PAYG spend of counter rows is summed in exact integers (and an overflow named)."""


@dataclass(frozen=True)
class IngestResult:
    """What one ``ingest`` did."""

    batch_id: str
    replayed: bool
    """True when the batch id was already committed: nothing was done."""
    calls: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-call outcomes in charge order (see ``RatingResult.calls``) with ``plan_remaining`` (-1: no plan);
    empty when replayed."""
    duplicates: int = 0
    late: int = 0
    """Calls of closed months, rated into adjustments on the next open bill."""
    alerts: tuple[AlertEvent, ...] = ()


@dataclass
class _Setup:
    """The stored setup of some parties, as the Engine's accounts: what one operation loads."""

    ids: list[int]
    """Party id of each of ``parties``."""
    parties: list[tuple[str, str]]
    """Listed parties first (in the Engine's order), then the unlisted ones sorted."""
    engine: Engine
    used: dict[str, int]
    """Plan id -> calls/points used so far (its whole history)."""


class Ledger:
    """A durable rating ledger on one SQLite file (or ``":memory:"``) or a PostgreSQL server (a URL).

    SQLite: one writer at a time (its write lock). PostgreSQL: batches of disjoint accounts run side by
    side (docs/postgres.md). Readers on other connections see only committed batches. Every ``ingest``
    is one transaction: a batch is applied whole or not at all. Opening a ledger reads the catalog
    only; each operation reads and writes the rows of the parties it touches.
    """

    def __init__(self, store: Store, *, kernel: str | ModuleType | None = None) -> None:
        self.store = store
        self.path = store.path
        self.kernel = kernel if isinstance(kernel, ModuleType) else _kernel.get(kernel)
        self._rows = RowCache(store)
        """The parties' rows batches read, kept between batches while no other connection commits."""
        self.catalog: Catalog = parse_catalog(json.loads(store.meta("catalog") or "{}"), source=f"{self.path}:catalog")
        self._closed: set[int] = set()
        self._width = TIER0 + max(len(a.tiers) for a in self.catalog.apis)
        self._verification = [a.code for a in self.catalog.apis if a.kind == "verification"]
        self._codes = [a.code for a in self.catalog.apis]
        self._is_verification = np.array([a.kind == "verification" for a in self.catalog.apis], dtype=bool)
        self._prices = np.zeros((len(self.catalog.apis), self._width - TIER0), dtype=np.int64)
        """Micro-units of a PAYG call by (API, tier position): what the kernel's ``payg_spend`` adds."""
        for k, api in enumerate(self.catalog.apis):
            self._prices[k, : len(api.tiers)] = [t.price for t in api.tiers]

    # ----------------------------------------------------------------- opening
    @classmethod
    def create(
        cls,
        path: str | Path,
        catalog: Catalog | str | Path | None = None,
        accounts: Accounts | str | Path | None = None,
        *,
        kernel: str | ModuleType | None = None,
        timeout: float = 60.0,
    ) -> "Ledger":
        """Create a ledger holding ``catalog`` and ``accounts``: the file appears complete or not at all.

        An existing file is an error, and so is a file another process created first.
        """
        cat = as_catalog(catalog)
        acc = as_accounts(accounts, cat)

        def init(store: Store) -> None:
            store.set_meta("schema", SCHEMA_VERSION)
            store.set_meta("catalog", json.dumps(catalog_to_dict(cat)))
            write_accounts(store, acc)

        store = create_store(path, init, timeout=timeout)
        return cls(store, kernel=kernel)

    @classmethod
    def open(cls, path: str | Path, *, kernel: str | ModuleType | None = None, readonly: bool | None = None,
             timeout: float = 60.0) -> "Ledger":
        """Open an existing ledger file (read-only when it cannot be written); a schema-1 file is migrated."""
        store = open_store(path, readonly=readonly, timeout=timeout)
        try:
            version = store.schema_version()
            if version in MIGRATIONS and isinstance(store, SqliteStore):
                if store.readonly:
                    raise OcrledgerError(f"this ledger has schema {version} and must be migrated: open it once where "
                                         "it can be written", file=str(path))
                with store.write():
                    MIGRATIONS[version](store)
            elif version != SCHEMA_VERSION:
                raise OcrledgerError("not an ocrledger ledger (no schema version "
                                     f"{SCHEMA_VERSION} in its meta table)", file=str(path))
            with store.read():
                return cls(store, kernel=kernel)
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        """Close the file (the context manager does it too)."""
        self.store.close()

    def close_connection(self) -> None:
        """Old name of ``close``."""
        self.store.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def readonly(self) -> bool:
        """True when the file was opened read-only: queries answer, changes are refused."""
        return self.store.readonly

    @property
    def db(self) -> Any:
        """The SQLite or psycopg connection (for tests and benchmarks)."""
        return self.store.db

    # ------------------------------------------------------------ transactions
    @contextmanager
    def _write(self, exclusive: bool = False, *, batch: bool = False) -> Iterator[None]:
        """A write transaction. A batch (``batch=True``) may use the rows kept from earlier batches, once
        ``RowCache.begin`` checked that no other connection committed since; every other write (a plan, a
        refund, an activation, a month closed, ...) forgets them. A transaction that fails forgets them too:
        what it read or wrote was never committed."""
        try:
            with self.store.write(exclusive):
                if batch:
                    self._rows.begin()
                else:
                    self._rows.clear()
                self._closed = self.store.closed_periods()
                yield
        except BaseException:
            self._rows.clear()
            raise

    @contextmanager
    def _read(self) -> Iterator[None]:
        with self.store.read():
            self._closed = self.store.closed_periods()
            yield

    # ------------------------------------------------------------------ setup
    def _party(self, account: str, channel: str, *, listed: bool = True) -> int:
        """The id of a listed party; an error naming it when the ledger does not list it."""
        found = self.store.find_parties([(account, channel)]).get((account, channel))
        if found is None or (listed and not found[1]):
            raise OcrledgerError(f"account {account!r} is not listed on the {channel} channel")
        return found[0]

    def _setup(self, ids: Sequence[int], pairs: Sequence[tuple[int, str]] | None = None, rows: Any = None
               ) -> _Setup:
        """The Engine of the given parties' stored setup (activations, plans, add-ons, alerts); with ``pairs``
        (party id, API code), the activations of those pairs only; read from ``rows`` (the store, or a batch's
        ``RowCache``)."""
        rows = self.store if rows is None else rows
        names = rows.party_names(ids)
        acc, used = accounts_of(rows, ids, names, source=f"{self.path}:accounts", pairs=pairs)
        by_id = {i: (names[i][0], names[i][1]) for i in ids}
        engine = Engine(self.catalog, acc, kernel=self.kernel)
        known = engine.setup.parties
        id_of = {by_id[i]: i for i in ids}
        unlisted = sorted(by_id[i] for i in ids if not names[i][2])
        parties = list(known) + unlisted
        return _Setup([id_of[p] for p in parties], parties, engine, used)

    def _change(self, change: Any) -> None:
        if self.readonly:
            raise OcrledgerError("the ledger file is read-only: it cannot be changed", file=self.path)
        with self._write(exclusive=True):
            change()

    def _validated(self, account: str, channel: str, table: str, entry: dict[str, Any]) -> Any:
        """One accounts-file entry of a listed party, checked as the accounts file is."""
        data = {"account": [{"id": account, "channel": channel}], table: [entry]}
        parsed = parse_accounts(data, self.catalog, source=f"<{table}>")
        return {"plan": parsed.plans, "qps_addon": parsed.qps_addons, "alert": parsed.alerts,
                "credential": parsed.credentials}[table][0]

    def add_account(self, account: str, channel: str = OFFICIAL, activated: dict[str, Any] | None = None) -> None:
        """List an account (one row, and one per activation)."""
        entry: dict[str, Any] = {"id": account, "channel": channel}
        if activated:
            entry["activated"] = activated
        acc = parse_accounts({"account": [entry]}, self.catalog, source="<account>").accounts[0]

        def change() -> None:
            found = self.store.find_parties([(acc.id, acc.channel)]).get((acc.id, acc.channel))
            if found is not None and found[1]:
                raise OcrledgerError(f"account {acc.id!r} is listed already on the {acc.channel} channel")
            if found is None:
                party = self.store.add_party(acc.id, acc.channel, True)
            else:  # calls of it were seen before it was listed: its counters stay
                party = found[0]
                self.store.list_party(party)
            for api, at in acc.activated.items():
                self.store.set_activation(party, api, at)

        self._change(change)

    def activate(self, account: str, api: str, at: Any) -> None:
        """Activate ``api`` for an official account from instant ``at``."""
        acc = parse_accounts({"account": [{"id": account, "activated": {api: at}}]}, self.catalog,
                             source="<activate>").accounts[0]

        def change() -> None:
            party = self._party(account, OFFICIAL)
            self.store.set_activation(party, api, acc.activated[api])

        self._change(change)

    def add_plan(self, **plan: Any) -> None:
        """Buy a plan (fields as in the accounts file's [[plan]]); it pays from its own start."""
        account, channel = plan.get("account"), plan.get("channel", OFFICIAL)
        if not isinstance(account, str) or not isinstance(channel, str):
            raise OcrledgerError("a plan needs an 'account' (and optionally a 'channel')")
        p: Plan = self._validated(account, channel, "plan", plan)

        def change() -> None:
            party = self._party(p.account, p.channel)
            if self.store.plan(p.id) is not None:
                raise OcrledgerError(f"plan id {p.id!r} exists already")
            self.store.add_plan(p.id, party, p.kind, json.dumps(list(p.apis)), p.quantity, p.start, p.end, p.price,
                                p.refunded)

        self._change(change)

    def refund(self, plan_id: str, at: Any) -> None:
        """Refund a plan: it pays for no call at or after ``at`` (a refunded plan cannot be refunded again)."""
        when = self.catalog.clock.instant(at, what="refund time")

        def change() -> None:
            row = self.store.plan(plan_id)
            if row is None:
                raise OcrledgerError(f"no plan {plan_id!r}")
            if row[8] is not None:
                raise StateError(f"plan {plan_id!r} was refunded already at {self.catalog.clock.label(row[8])}")
            if when < row[5]:
                raise OcrledgerError(f"plan {plan_id!r} cannot be refunded before it starts")
            self.store.set_refund(plan_id, when)

        self._change(change)

    def add_qps_addon(self, **addon: Any) -> None:
        """Buy a QPS add-on (fields as in the accounts file's [[qps_addon]])."""
        q: QpsAddon = self._validated(addon.get("account"), addon.get("channel", OFFICIAL), "qps_addon", addon)
        self._change(lambda: self.store.add_addon(self._party(q.account, q.channel), q.api, q.qps, q.start, q.end))

    def add_alert(self, **alert: Any) -> None:
        """Configure an alert (fields as in the accounts file's [[alert]])."""
        a: Alert = self._validated(alert.get("account"), alert.get("channel", OFFICIAL), "alert", alert)
        self._change(lambda: self.store.add_alert(self._party(a.account, a.channel), a.kind, a.target, a.threshold))

    def add_credential(self, **credential: Any) -> None:
        """Add an AccessKey ID / AppCode (fields as in the accounts file's [[credential]])."""
        c: Credential = self._validated(credential.get("account"), credential.get("channel", OFFICIAL), "credential",
                                        credential)
        self._change(lambda: self.store.add_credential(c.key, self._party(c.account, c.channel), c.valid_from,
                                                       c.valid_until))

    # ------------------------------------------------------------------ ingest
    def ingest(self, calls: Any, batch_id: str) -> IngestResult:
        """Rate a batch on top of the stored counters and commit it, all or nothing.

        A ``batch_id`` already committed is a no-op (``replayed=True``). A record id seen in an
        earlier batch of the same channel, or earlier in this one, is a duplicate: reported,
        never charged. Calls of a closed month are rated against that month's counters into
        an adjustment on the next open bill.
        """
        if not isinstance(batch_id, str) or not batch_id:
            raise OcrledgerError("batch_id must be a non-empty string")
        if self.readonly:
            raise OcrledgerError("the ledger file is read-only: batches cannot be ingested", file=self.path)
        for attempt in range(CONFLICT_RETRIES):
            try:
                with self._write(batch=True):
                    self.store.lock_batch(batch_id)
                    if self.store.has_batch(batch_id):
                        return IngestResult(batch_id, replayed=True)
                    return self._ingest(calls, batch_id)
            except ConflictError:  # a concurrent batch committed one of its record ids first: rate it again
                if attempt == CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _credentials(self, keys: np.ndarray) -> Accounts:
        """The stored credentials of ``keys`` only (the ones a batch names)."""
        rows = self.store.credentials(sorted(set(keys.tolist())))
        return Accounts(credentials=tuple(Credential(k, a, c, lo, hi) for k, a, c, lo, hi in rows))

    def _ingest(self, calls: Any, batch_id: str) -> IngestResult:
        cat = self.catalog
        clock = cat.clock
        table = read_calls(calls, cat, credentials=self._credentials)  # a credential column: its keys' rows
        bad_key = table.bad_key if table.bad_key is not None and table.bad_key.any() else None
        n_api = len(self._codes)
        used_pairs = np.unique((table.account_code.astype(np.int64) * 2 + table.market) * n_api + table.api)
        names = table.account_names.to_pylist() if len(table) else []
        channels = (OFFICIAL, MARKETPLACE)  # by the table's market code
        party_of, api_of = np.divmod(used_pairs, n_api)  # party_of: account code * 2 + market
        pairs = sorted({(names[k >> 1], channels[k & 1]) for k in np.unique(party_of).tolist()})
        self.store.lock_parties(pairs)
        found = self._rows.find_parties(pairs)
        new = [p for p in pairs if p not in found]
        ids = {p: v[0] for p, v in found.items()}
        ids.update(zip(new, self._rows.add_parties(new, listed=False)))
        setup = self._setup([ids[p] for p in pairs], [(ids[(names[k >> 1], channels[k & 1])], self._codes[a])
                                                      for k, a in zip(party_of.tolist(), api_of.tolist())],
                            self._rows)
        parties, engine = setup.parties, setup.engine
        tables, plan_rows = engine.setup.tables(parties)
        kernel_plan_ids = plan_rows.ids_of(np.arange(len(plan_rows))).tolist()
        used = np.array([setup.used[pid] for pid in kernel_plan_ids], dtype=np.int64).reshape(len(plan_rows))
        state = KernelState.fresh(tables, plan_rows.quantity - used)
        alerts = engine.accounts.alerts
        pools = self._rows.pools(setup.ids)
        for k, pid in enumerate(setup.ids):
            state.pool_used[k] = pools.get(pid, 0)
        enc = encode(table, parties, clock)
        batch, n = enc.batch, len(enc.batch)
        record_id = table.record_id[enc.order]
        channel = table.channel[enc.order]
        batch.duplicate |= self._seen(record_id, channel).astype(np.int8)
        blocked = np.zeros(n, dtype=bool)
        if bad_key is not None:  # unknown/expired credentials: the kernel must not charge them
            blocked = _kernel.hold_back(batch, bad_key[enc.order])
        remaining_before = state.plan_remaining.copy()
        pool_before = state.pool_used.copy()
        out = Outcomes.empty(n)
        read: list[CounterRows] = []
        codes = self._codes
        everything = {setup.ids[parties.index((a.account, a.channel))] for a in alerts if a.kind == "payg_spend"}
        for period in np.unique(batch.period).tolist():
            rows = np.flatnonzero(batch.period == period)
            pair = np.unique(batch.party[rows].astype(np.int64) * tables.n_api + batch.api[rows]).tolist()
            wanted = [(setup.ids[k // tables.n_api], codes[k % tables.n_api]) for k in pair]
            read.append(self._month_counters(state, tables, setup.ids, period, wanted, sorted(everything)))
            try:
                part = _kernel.run(self.kernel, tables, state, batch.take(rows))
            except (MoneyError, StateError) as exc:
                i = int(enc.order[rows[exc.call_index]])  # type: ignore[attr-defined]
                raise _kernel.name_call(exc, str(table.record_id[i]), table.file(i), table.row(i)) from None
            for col in ("status", "source", "plan", "tier", "amount"):
                getattr(out, col)[rows] = getattr(part, col)
        if blocked.any():
            _kernel.reject(batch, out, blocked)
        usage = UsageCounts(tables)
        usage.add(batch, out)
        old = CounterRows.concat(read, self._width)
        events = self._alerts(alerts, tables, parties, setup.ids, plan_rows.objects() if alerts else [], batch, out,
                              record_id, remaining_before, pool_before, old)
        remaining = plan_remaining_after(tables, batch, out, remaining_before)
        seq = self.store.next_batch_seq()
        plan_ids = plan_rows.ids_of(out.plan)
        late = self._store(batch_id, seq, tables, setup, kernel_plan_ids, batch, out, usage, record_id, channel,
                           old, plan_ids, remaining)
        fired = [e for e in events if self.store.add_alert_event(
            (e.account, e.channel, e.kind, e.target or "", e.threshold, e.key, e.record_id, e.ts, e.message))]
        calls = outcome_columns(cat, table.record_id, enc, out, plan_ids)
        calls["plan_remaining"] = remaining
        return IngestResult(batch_id, False, calls, int((out.status == Status.DUPLICATE).sum()), late, tuple(fired))

    def _seen(self, record_id: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """Which records were committed by an earlier batch (primary-key look-ups, no scan)."""
        seen = np.zeros(len(record_id), dtype=bool)
        for ch in np.unique(channel).tolist():
            rows = np.flatnonzero(channel == ch)
            ids = record_id[rows].tolist()
            found = self.store.seen(ch, ids)
            if found:
                seen[rows] = [r in found for r in ids]  # exact (np.isin would drop trailing NULs)
        return seen

    def _month_counters(self, state: KernelState, tables: KernelTables, ids: Sequence[int], period: int,
                        pairs: Sequence[tuple[int, str]], whole: Sequence[int]) -> CounterRows:
        """Set the monthly counters of ``pairs`` (party id, API code: the batch's) to what ``period`` already holds
        (on time and late rows) and return those rows; ``whole`` parties' rows of every API come too (a spend
        alert sums them)."""
        state.pair_period[:] = period
        for name in ("free_used", "payg_calls", "payg_tier", "payg_spend"):
            getattr(state, name)[:] = 0
        rows = self._rows.counters(ids, period, pairs)
        if whole:
            wanted = set(pairs)
            extra = self.store.counters(whole, period)
            keep = [k for k, pa in enumerate(zip(extra.party.tolist(), extra.api)) if pa not in wanted]
            rows = CounterRows.concat([rows, extra.take(np.array(keep, dtype=np.int64))], self._width)
        if not len(rows):
            return rows
        known = np.array(ids, dtype=np.int64)
        by_id = np.argsort(known, kind="stable")
        party = by_id[np.searchsorted(known[by_id], rows.party)]
        api = self._api_index(rows.api)
        pair = party * tables.n_api + api
        n_tiers = self._prices.shape[1]
        paygs = rows.counts[:, TIER0 : TIER0 + n_tiers]
        np.add.at(state.free_used, pair, rows.counts[:, FREE])
        np.add.at(state.payg_calls, pair, paygs.sum(axis=1))
        np.add.at(state.payg_spend, pair, self._spend(api, pair, paygs))
        return rows

    def _api_index(self, codes: Sequence[str]) -> np.ndarray:
        index = self.catalog.index
        return np.fromiter((index[c] for c in codes), dtype=np.int64, count=len(codes))

    def _spend(self, api: np.ndarray, pair: np.ndarray, paygs: np.ndarray) -> np.ndarray:
        """PAYG micro-units of counter rows, each call priced by its position (``position_spend`` of each row):
        in int64 when no pair's sum can pass ``SPEND_GUARD``, else summed exactly and a pair past int64 named."""
        prices = self._prices[api, : paygs.shape[1]]
        bound = int(paygs.max(initial=0)) * int(prices.max(initial=0)) * max(1, paygs.shape[1]) * max(1, len(pair))
        if bound < SPEND_GUARD:
            return (paygs * prices).sum(axis=1)
        spend = [sum(int(c) * int(p) for c, p in zip(cs, ps)) for cs, ps in zip(paygs.tolist(), prices.tolist())]
        totals: dict[int, int] = defaultdict(int)
        for k, v in zip(pair.tolist(), spend):
            totals[k] += v
        for v in totals.values():
            check_int64(v, what="PAYG spend")
        return np.array(spend, dtype=np.int64)  # each row at most its pair's total, which fits

    def _target(self, period: int) -> int:
        """The bill a late call of closed ``period`` lands on: the first open month after it."""
        target = period + 1
        while target in self._closed:
            target += 1
        return target

    def _alerts(self, alerts: Sequence[Alert], tables: KernelTables, parties: Sequence[tuple[str, str]],
                ids: Sequence[int], plans: Sequence[Plan], batch: Batch, out: Outcomes, record_id: np.ndarray,
                remaining_before: np.ndarray, pool_before: np.ndarray, old: CounterRows) -> list[AlertEvent]:
        if not alerts:
            return []
        by_month: dict[tuple[int, int], list[tuple[str, list[int]]]] = defaultdict(list)
        for p, m, api, _, counts in old.tuples():
            by_month[(p, m)].append((api, counts))

        def month_lines(party: int, period: int) -> Iterator[tuple[str, list[int]]]:
            return iter(by_month.get((ids[party], period), ()))

        def free_before(party: int, period: int, api: int) -> int:
            code = self.catalog.apis[api].code
            return sum(counts[FREE] for c, counts in month_lines(party, period) if c == code)

        def spend_before(party: int, period: int, api: int | None) -> int:
            return sum(position_spend(self.catalog.api(code), counts) for code, counts in month_lines(party, period)
                       if api is None or self.catalog.index[code] == api)

        return detect(alerts, self.catalog, tables, parties, plans, batch, out, record_id, remaining_before,
                      pool_before, free_before, spend_before)

    def _store(
        self, batch_id: str, seq: int, tables: KernelTables, setup: _Setup, plans: Sequence[str], batch: Batch,
        out: Outcomes, usage: UsageCounts, record_id: np.ndarray, channel: np.ndarray, old: CounterRows,
        plan_ids: np.ndarray, remaining: np.ndarray,
    ) -> int:
        codes = self._codes
        store, ids = self.store, np.array(setup.ids, dtype=np.int64)
        fresh = out.status != Status.DUPLICATE
        store.add_records(zip(channel[fresh].tolist(), record_id[fresh].tolist(), [batch_id] * int(fresh.sum())))
        lines = usage.line_arrays()
        target = np.full(len(lines.api), ON_TIME, dtype=np.int64)
        for period in sorted(self._closed.intersection(np.unique(lines.period).tolist())):
            target[lines.period == period] = self._target(period)
        late_line = target != ON_TIME
        only_duplicates = lines.counts.sum(axis=1) == lines.counts[:, DUPLICATE]
        keep = np.flatnonzero(~(late_line & only_duplicates))  # no empty adjustment line for duplicates only
        party, period, api, target = ids[lines.party[keep]], lines.period[keep], lines.api[keep], target[keep]
        counts = np.zeros((len(keep), self._width), dtype=np.int64)
        width = min(self._width, lines.counts.shape[1])
        counts[:, :width] = lines.counts[keep, :width]
        added = counts.copy()
        if len(old) and len(keep):
            new_key = self._counter_key(party, period, api, target)
            old_key = self._counter_key(old.party, old.period, self._api_index(old.api), old.target)
            by_key = np.argsort(old_key, kind="stable")
            sorted_key = old_key[by_key]
            at = np.minimum(np.searchsorted(sorted_key, new_key), len(old_key) - 1)
            hit = sorted_key[at] == new_key
            w = min(self._width, old.counts.shape[1])
            counts[hit, :w] += old.counts[by_key[at[hit]], :w]
        self._rows.put_counters(CounterRows(party, period, [codes[a] for a in api.tolist()], target, counts))
        pools = np.flatnonzero(self._is_verification[api] & (added[:, FREE] > 0))
        pool_rows: dict[int, int] = defaultdict(int)
        for p, free in zip(party[pools].tolist(), added[pools, FREE].tolist()):
            pool_rows[p] += free
        self._rows.add_pools(list(pool_rows.items()))
        late = 0
        for k in np.flatnonzero(target != ON_TIME).tolist():
            late += int(added[k].sum() - added[k, DUPLICATE])
            rows = (batch.party == lines.party[keep[k]]) & (batch.period == period[k]) & (batch.api == api[k]) & fresh
            store.add_late_records((int(party[k]), int(period[k]), codes[api[k]], int(target[k]), r)
                                   for r in record_id[rows].tolist())
        self._rows.add_plan_use([(plans[k], p, units) for (k, p), units in usage.plan_used.items()])
        party_id = ids[batch.party] if len(batch) else np.zeros(0, np.int64)
        api_code = np.array(codes, dtype=object)[batch.api]
        plan_col = np.where(out.plan >= 0, plan_ids, None)
        rem_col = np.where(out.plan >= 0, remaining.astype(object), None)
        store.add_deductions(zip(
            [seq] * len(batch), party_id.tolist(), api_code.tolist(), record_id.tolist(), batch.ts.tolist(),
            batch.period.tolist(), out.status.tolist(), out.source.tolist(), plan_col.tolist(), out.tier.tolist(),
            out.amount.tolist(), rem_col.tolist(),
        ))
        store.add_batch(batch_id, seq, len(batch), int((~fresh).sum()), late,
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return late

    def _counter_key(self, party: np.ndarray, period: np.ndarray, api: np.ndarray, target: np.ndarray) -> np.ndarray:
        """One int64 per counter row key (party id, period, API index, target); party ids stay far below the bound."""
        n_api = len(self._codes)
        if len(party) and int(party.max()) >= (1 << 62) // (N_PERIODS * n_api * (N_PERIODS + 1)):
            raise StateError("party ids past the counter key's range")
        return ((party * N_PERIODS + period) * n_api + api) * (N_PERIODS + 1) + target + 1

    def _daily_rows(self, party: np.ndarray, api: np.ndarray, ts: np.ndarray, status: np.ndarray,
                    source: np.ndarray) -> list[tuple[Any, ...]]:
        """Call details per (party, API code, day) of log rows: calls, failed, rejected, duplicates, free,
        dedicated, shared, PAYG (the day in the billing zone)."""
        if not len(ts):
            return []
        quarter = np.floor_divide(ts, 900_000)  # every zone offset is a multiple of 15 minutes
        uq, inverse = np.unique(quarter, return_inverse=True)
        tz = self.catalog.clock.tz
        day_labels = [from_ms(q * 900_000, tz).date().isoformat() for q in uq.tolist()]
        day_u, day_of_q = np.unique(np.array(day_labels), return_inverse=True)
        day = day_of_q[inverse.reshape(-1)]
        api_u, api_of = np.unique(api, return_inverse=True)
        cat = np.select(
            [status == Status.DUPLICATE, status == Status.FAILED, np.isin(status, [3, 4, 5]),
             source == Source.FREE, source == Source.DEDICATED, source == Source.SHARED],
            [3, 1, 2, 4, 5, 6], default=7,
        )
        cell_key = (party.astype(np.int64) * len(api_u) + api_of.reshape(-1)) * len(day_u) + day
        cells, cell_of = np.unique(cell_key, return_inverse=True)
        counts = np.bincount(cell_of.reshape(-1) * 8 + cat, minlength=len(cells) * 8).reshape(len(cells), 8)
        counts[:, 0] = counts.sum(axis=1) - counts[:, 3]  # calls: every distinct record (duplicates are not calls)
        pair, d = np.divmod(cells, len(day_u))
        return [(p, a, dd, *c) for p, a, dd, c in zip((pair // len(api_u)).tolist(), api_u[pair % len(api_u)].tolist(),
                                                      day_u[d].tolist(), counts.tolist())]

    # ------------------------------------------------------------- month close
    def close_month(self, month: str) -> list[Bill]:
        """Freeze the bills of ``month``; later calls of that month become adjustments."""
        period = parse_period(month)
        if self.readonly:
            raise OcrledgerError("the ledger file is read-only: a month cannot be closed", file=self.path)
        with self._write(exclusive=True):
            if period in self._closed:
                raise StateError(f"month {month} is already closed")
            earlier = self.store.open_periods_before(period)
            if earlier is not None:
                raise StateError(f"close {period_label(earlier)} first: it is still open and has calls")
            ids, made = self._bills(period, self.store.parties_of_period(period))
            bills, texts = (made.bills(), json_texts(made)) if made is not None else ([], [])
            self.store.add_closed(period, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                  [(ids[(b.account, b.channel)], j) for b, j in zip(bills, texts)])
            retention = self.retention_months()
            if retention is not None:
                self.store.prune(period - retention + 1)
        return bills

    def closed_months(self) -> list[str]:
        """The months closed so far ("YYYY-MM"), oldest first."""
        with self._read():
            return [period_label(p) for p in sorted(self._closed)]

    # ------------------------------------------------------------- retention
    def retention_months(self) -> int | None:
        """How many closed months the deduction log, daily details and QPS seconds keep (None: all)."""
        value = self.store.meta("retention_months")
        return None if value is None else int(value)

    def set_retention(self, months: int | None) -> None:
        """Keep the log of the last ``months`` closed months (pruned at each ``close_month``); None keeps all."""
        if months is not None and (isinstance(months, bool) or not isinstance(months, int) or months < 1):
            raise OcrledgerError(f"retention must be a whole number of months of at least 1, not {months!r}")

        def change() -> None:
            if months is None:
                self.store.delete_meta("retention_months")
            else:
                self.store.set_meta("retention_months", str(months))

        self._change(change)

    # ----------------------------------------------------------------- queries
    def bills(self, month: str, account: str | None = None, channel: str | None = None) -> list[Bill]:
        """The bills of ``month``: frozen ones if it is closed, else provisional (sorted)."""
        return [Bill.from_dict(json.loads(text)) for text in self.bill_texts(month, account, channel)]

    def _ids_of(self, account: str, channel: str | None) -> list[int]:
        channels = [channel] if channel is not None else [MARKETPLACE, OFFICIAL]
        found = self.store.find_parties([(account, c) for c in channels])
        return [found[(account, c)][0] for c in channels if (account, c) in found]

    def bill_texts(self, month: str, account: str | None = None, channel: str | None = None) -> list[str]:
        """The bills of ``month`` as JSON texts; a closed month's are the bytes stored at close."""
        period = parse_period(month)
        with self._read():
            if account is not None:
                ids = self._ids_of(account, channel)
            else:
                ids = self.store.parties_of_period(period)
            if period in self._closed:
                rows = self.store.closed_bills(period, None if account is None else ids)
                names = self.store.party_names([p for p, _ in rows])
                keyed = sorted(((names[p][0], names[p][1]), j) for p, j in rows)
                return [j for (a, c), j in keyed if channel is None or c == channel]
            _, made = self._bills(period, ids)
            if made is None:
                return []
            return [j for (_, c), j in zip(made.who(), json_texts(made)) if channel is None or c == channel]

    def _bills(self, period: int, ids: Sequence[int]) -> tuple[dict[tuple[str, str], int], BillSet | None]:
        """Provisional bills of ``period`` for the parties ``ids`` from their stored rows (as columns; None: no party)."""
        cat = self.catalog
        if not ids:
            return {}, None
        setup = self._setup(ids)
        parties, engine = setup.parties, setup.engine
        index = {pid: k for k, pid in enumerate(setup.ids)}
        summed: dict[tuple[int, int, int], list[int]] = {}

        def add(party: int, p: int, api: str, counts: list[int]) -> None:
            mine = summed.setdefault((index[party], p, cat.index[api]), [0] * self._width)
            for k, v in enumerate(counts):
                mine[k] += v

        for party, _, api, _, counts in self.store.counters(setup.ids, period).tuples():
            add(party, period, api, counts)
        for party, p, api, _, counts in self.store.counters_upto(setup.ids, period - 1, self._verification):
            add(party, p, api, counts)  # the verification pool's history
        tables, plans = engine.setup.tables(parties)
        plan_index = {pid: k for k, pid in enumerate(plans.columns.ids)}
        plan_used = {(plan_index[pid], p): u for pid, p, u in self.store.plan_use(list(plan_index))}
        start, end = int(cat.clock.month_starts[period]) // 1000, int(cat.clock.month_starts[period + 1]) // 1000
        rows = sorted((index[p], cat.index[api], s, k) for p, api, s, k in self.store.seconds(setup.ids, start, end))
        pair = np.array([p * len(cat.apis) + a for p, a, _, _ in rows], dtype=np.int64)
        sec = np.array([r[2] for r in rows], dtype=np.int64)
        calls = np.array([r[3] for r in rows], dtype=np.int64)
        qps = qps_arrays(cat, engine.addons, parties, pair, sec, calls)
        cols = bill_columns(LineArrays.from_lines(summed, self._width), plan_used, cat, parties, plans.columns, qps,
                            tables, period, adjustments=self._adjustments(setup.ids, index, period))
        return dict(zip(parties, setup.ids)), BillSet(cols, cat, parties, plans.columns)

    def _adjustments(self, ids: Sequence[int], index: dict[int, int], period: int
                     ) -> dict[tuple[int, int], list[Adjustment]]:
        """Late calls of closed months whose target is ``period``: the change of the closed line."""
        lines: dict[tuple[int, int, str, int], list[int]] = {
            (p, m, api, t): counts for p, m, api, t, counts in self.store.late_lines(ids, period)}
        late_lines = []
        for (party, src, api, target), late in sorted(lines.items()):
            if target != period:
                continue
            before = [0] * len(late)
            for (p2, m2, api2, t2), counts in lines.items():
                if (p2, m2, api2) == (party, src, api) and (t2 == ON_TIME or t2 < target):
                    before = [x + y for x, y in zip(before, counts)]
            late_lines.append(((party, src, api), late, before, [x + y for x, y in zip(before, late)]))
        result: dict[tuple[int, int], list[Adjustment]] = defaultdict(list)
        if not late_lines:
            return result
        width = max(len(late) for _, late, _, _ in late_lines)
        apis = np.repeat([self.catalog.index[key[2]] for key, _, _, _ in late_lines], 2)
        counts = np.zeros((len(apis), width), dtype=np.int64)
        for k, (_, _, before, after) in enumerate(late_lines):
            counts[2 * k, :len(after)], counts[2 * k + 1, :len(before)] = after, before
        exacts = line_exact(self.catalog, apis, counts)  # the bill line's own sums, after then before
        for k, ((party, src, api), late, _, _) in enumerate(late_lines):
            exact = exacts[2 * k] - exacts[2 * k + 1]
            result[(index[party], period)].append(Adjustment(
                period_label(src), api, sum(late) - late[DUPLICATE], to_decimal(exact),
                to_cents_decimal(round_line(exact, self.catalog.api(api).rounding)),
                tuple(self.store.late_ids(party, src, api, period)),
            ))
        return result

    def quota(self, account: str, channel: str = OFFICIAL, at: Any = None) -> dict[str, Any]:
        """Remaining quota at instant ``at`` (default: now): plans, free calls this month, verification pool."""
        with self._read():
            clock = self.catalog.clock
            when = clock.instant(at, what="at") if at is not None else int(time.time() * 1000)
            period = clock.period(when)
            ids = self._ids_of(account, channel)
            plans = []
            free_used: dict[str, int] = {}
            pool_used = 0
            if ids:
                setup = self._setup(ids)
                for plan in setup.engine.accounts.plans:
                    plans.append({
                        "id": plan.id, "kind": plan.kind, "apis": list(plan.apis), "quantity": plan.quantity,
                        "remaining": plan.quantity - setup.used[plan.id] if when < plan.effective_end else 0,
                        "start": clock.label(plan.start), "end": clock.label(plan.effective_end),
                        "active": plan.start <= when < plan.effective_end,
                    })
                for _, _, api, _, counts in self.store.counters(ids, period).tuples():
                    free_used[api] = free_used.get(api, 0) + counts[FREE]
                pool_used = self.store.pools(ids).get(ids[0], 0)
            free: dict[str, int] = {}
            pool = None
            if channel == OFFICIAL:
                free = {a.code: a.free_monthly - free_used.get(a.code, 0) for a in self.catalog.apis
                        if a.kind != "verification"}
                pool = max(0, self.catalog.verification_free_total - pool_used)
            return {"account": account, "channel": channel, "at": clock.label(when), "month": period_label(period),
                    "plans": plans, "free_remaining": free, "verification_pool_remaining": pool}

    def call_details(self, account: str | None = None, channel: str | None = None, *, api: str | None = None,
                     plan: str | None = None, since: Any = None, until: Any = None, after: int = 0,
                     limit: int | None = None) -> list[dict[str, Any]]:
        """Per account, API and day (in the billing zone): calls, failed, rejected, duplicates, successful calls
        by source; sorted by (account, channel, API, day).

        Filters: ``api``; ``plan`` (the calls it paid); ``since`` <= call instant < ``until`` (a migrated file's
        own per-day history counts whole days: those from the day of ``since`` to the day before ``until``'s,
        and none when ``plan`` is given, since it kept no plan per call). Paging: rows ``after`` ..
        ``after + limit`` of the sorted list.
        """
        clock = self.catalog.clock
        lo = None if since is None else clock.instant(since, what="since")
        hi = None if until is None else clock.instant(until, what="until")
        if after < 0 or (limit is not None and limit < 0):
            raise OcrledgerError("after and limit must not be negative")
        with self._read():
            ids = None if account is None else self._ids_of(account, channel)
            logged = self.store.logged_calls(ids, api=api, plan=plan, since=lo, until=hi)
            cols = [np.array(c) for c in zip(*logged)] if logged else [np.zeros(0, np.int64)] * 5
            history = [] if plan is not None else self.store.daily(
                ids, api=api, since_day=None if lo is None else from_ms(lo, clock.tz).date().isoformat(),
                until_day=None if hi is None else from_ms(hi, clock.tz).date().isoformat())
            summed: dict[tuple[int, str, str], list[int]] = {}
            for r in [*history, *self._daily_rows(*cols)]:
                mine = summed.setdefault(tuple(r[:3]), [0] * 8)
                for k, v in enumerate(r[3:]):
                    mine[k] += v
            rows = [(*k, *v) for k, v in summed.items()]
            names = self.store.party_names(sorted({r[0] for r in rows}))
        fields = ("account", "channel", "api", "day", "calls", "failed", "rejected", "duplicates", "free",
                  "dedicated", "shared", "payg")
        out = [dict(zip(fields, (*names[r[0]][:2], *r[1:]))) for r in rows]
        out = [d for d in out if channel is None or d["channel"] == channel]
        out.sort(key=lambda d: (d["account"], d["channel"], d["api"], d["day"]))
        return out[after:] if limit is None else out[after : after + limit]

    def qps(self, account: str, month: str, channel: str = OFFICIAL) -> dict[str, tuple[int, int]]:
        """API -> (peak calls in one second, seconds over the entitled QPS) in ``month``."""
        return {
            line.api: (line.qps_peak, line.qps_over_seconds)
            for bill in self.bills(month, account, channel) for line in bill.lines
        }

    # --------------------------------------------------------- deduction log
    def deductions(self, *, account: str | None = None, channel: str | None = None, api: str | None = None,
                   plan: str | None = None, record_id: str | None = None, since: Any = None, until: Any = None,
                   status: Sequence[str] | None = None, after: int = 0, limit: int = 100) -> LogPage:
        """One page of the per-call deduction log, oldest first; ``page.next_after`` continues it."""
        with self._read():
            return log_page(self.store, self.catalog, account=account, channel=channel, api=api, plan=plan,
                            record_id=record_id, since=since, until=until, status=status, after=after, limit=limit)

    def plan_states(self, account: str, channel: str = OFFICIAL, at: Any = None) -> list[PlanState]:
        """Every plan of an account with total, remaining, start, end and status (available, exhausted,
        expired or refunded) at ``at`` (default: now)."""
        with self._read():
            ids = self._ids_of(account, channel)
            if not ids:
                return []
            clock = self.catalog.clock
            when = clock.instant(at, what="at") if at is not None else int(time.time() * 1000)
            setup = self._setup(ids)
            return [plan_state(p, setup.used[p.id], when, clock) for p in setup.engine.accounts.plans]

    def explain(self, record_id: str, channel: str | None = None) -> list[dict[str, Any]]:
        """The log rows of ``record_id`` in the batch that committed it (its charged copy and the duplicates
        in that batch), oldest first. Copies sent again in later batches are found with
        ``deductions(status=["duplicate"], ...)``: the log has no index on record ids."""
        with self._read():
            page = log_page(self.store, self.catalog, record_id=record_id, channel=channel, limit=1000)
        return page.rows

    def committed_by(self, record_id: str, channel: str | None = None) -> str | None:
        """The batch that committed ``record_id`` (on ``channel``, else either), or None: kept for the
        ledger's life, so it answers after retention pruned the record's log rows."""
        with self._read():
            for ch in [channel] if channel is not None else [OFFICIAL, MARKETPLACE]:
                batch = self.store.record_batch(ch, record_id)
                if batch is not None:
                    return batch
        return None

    # ------------------------------------------------------------------ alerts
    def alerts(self, after: int = 0) -> list[dict[str, Any]]:
        """Alerts not acknowledged yet (``id > after``), oldest first; reading them changes nothing."""
        with self._read():
            rows = self.store.alert_events(after)
        names = ("id", "account", "channel", "kind", "target", "threshold", "key", "record_id", "ts", "message")
        return [dict(zip(names, r)) for r in rows]

    def ack_alerts(self, upto: int) -> int:
        """Mark the alerts with ``id <= upto`` delivered (after the reader has handled them); how many."""
        if self.readonly:
            raise OcrledgerError("the ledger file is read-only: alerts cannot be acknowledged", file=self.path)
        with self._write():
            return self.store.ack_alerts(upto)

    def pending_alerts(self, acknowledge: bool = True) -> list[dict[str, Any]]:
        """Alerts not delivered yet, oldest first; acknowledged at once unless ``acknowledge`` is False.

        A reader that prints or sends them should use ``alerts()`` and then ``ack_alerts`` once its
        output succeeded (at least once); this acknowledges before the caller has handled them.
        """
        rows = self.alerts()
        if acknowledge and rows:
            self.ack_alerts(rows[-1]["id"])
        return rows

    def batches(self) -> list[str]:
        """The ids of the committed batches, in commit order."""
        with self._read():
            return self.store.batch_ids()


def plan_remaining_after(tables: KernelTables, batch: Batch, out: Outcomes, before: np.ndarray) -> np.ndarray:
    """int64 remainder of the paying plan right after each call (charge order); -1 for a call no plan paid."""
    result = np.full(len(batch), -1, dtype=np.int64)
    paid = np.flatnonzero(out.plan >= 0)
    if not len(paid):
        return result
    plan = out.plan[paid].astype(np.int64)
    units = np.where(out.source[paid] == Source.SHARED, tables.api_points[batch.api[paid]], 1).astype(np.int64)
    o = np.argsort(plan, kind="stable")  # charge order kept inside each plan
    p, u = plan[o], units[o]
    spent = np.cumsum(u)
    first = np.r_[True, p[1:] != p[:-1]]
    group_base = (spent - u)[first]
    spent -= np.repeat(group_base, np.diff(np.r_[np.flatnonzero(first), len(p)]))
    result[paid[o]] = before[p] - spent
    return result


__all__ = ["IngestResult", "Ledger", "ON_TIME", "plan_remaining_after"]
