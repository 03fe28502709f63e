"""The embedded ledger: durable incremental rating on SQLite with idempotent batches, month close and alerts."""
from __future__ import annotations

import json
import sqlite3
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
from ..engine.billing import bills_from_columns
from ..engine.encode import encode, party_list
from ..engine.qps import qps_arrays, second_counts
from ..engine.rate import Engine, as_accounts, as_catalog, outcome_columns
from ..engine.tables import PlanSlice
from ..engine.usage import (
    DUPLICATE,
    FREE,
    TIER0,
    LineArrays,
    Usage,
    position_spend,
    summarize,
)
from ..errors import MoneyError, OcrledgerError, StateError
from ..io.calls import parse_instants, read_columns, validate_columns
from ..kernel import select as _kernel
from ..kernel.contract import KernelState, KernelTables, Outcomes
from ..model.accounts import OFFICIAL, Accounts, parse_accounts
from ..model.bills import Adjustment, Bill
from ..model.catalog import Catalog, parse_catalog
from ..model.clock import from_ms, parse_period, period_label
from ..model.credentials import resolve
from ..model.money import check_int64, round_line, to_cents_decimal, to_decimal
from .alerts import AlertEvent, detect
from .persist import accounts_to_dict, catalog_to_dict

SCHEMA_VERSION = "1"
ON_TIME = -1
"""``target`` of a usage line rated in its own (open) month; a late line names its target month."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches(batch_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, calls INTEGER NOT NULL,
    duplicates INTEGER NOT NULL, late INTEGER NOT NULL, committed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records(channel TEXT NOT NULL, record_id TEXT NOT NULL, batch_id TEXT NOT NULL,
    PRIMARY KEY(channel, record_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lines(account TEXT NOT NULL, channel TEXT NOT NULL, period INTEGER NOT NULL,
    api TEXT NOT NULL, target INTEGER NOT NULL, counts TEXT NOT NULL,
    PRIMARY KEY(account, channel, period, api, target)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS plan_used(plan_id TEXT NOT NULL, period INTEGER NOT NULL, units INTEGER NOT NULL,
    PRIMARY KEY(plan_id, period)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily(account TEXT NOT NULL, channel TEXT NOT NULL, api TEXT NOT NULL, day TEXT NOT NULL,
    calls INTEGER NOT NULL, failed INTEGER NOT NULL, rejected INTEGER NOT NULL, duplicates INTEGER NOT NULL,
    free INTEGER NOT NULL, dedicated INTEGER NOT NULL, shared INTEGER NOT NULL, payg INTEGER NOT NULL,
    PRIMARY KEY(account, channel, api, day)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS qps_seconds(account TEXT NOT NULL, channel TEXT NOT NULL, api TEXT NOT NULL,
    second INTEGER NOT NULL, calls INTEGER NOT NULL, PRIMARY KEY(account, channel, api, second)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS closed(period INTEGER PRIMARY KEY, closed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS closed_bills(account TEXT NOT NULL, channel TEXT NOT NULL, period INTEGER NOT NULL,
    json TEXT NOT NULL, PRIMARY KEY(account, channel, period));
CREATE TABLE IF NOT EXISTS late_records(account TEXT NOT NULL, channel TEXT NOT NULL, period INTEGER NOT NULL,
    api TEXT NOT NULL, target INTEGER NOT NULL, record_id TEXT NOT NULL,
    PRIMARY KEY(account, channel, period, api, target, record_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_events(id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL,
    channel TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL, threshold TEXT NOT NULL, key TEXT NOT NULL,
    record_id TEXT NOT NULL, ts INTEGER NOT NULL, message TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,
    UNIQUE(account, channel, kind, target, threshold, key));
"""

LineKey = tuple[str, str, int, str, int]  # account, channel, period, api code, target


@dataclass
class _Warm:
    """Kernel tables and counters kept between ingests while nothing else changed the ledger."""

    parties: list[tuple[str, str]]
    tables: KernelTables
    plans: list[Any]
    plan_rows: PlanSlice
    """The same plans as rows of the Engine's plan columns (their ids for the outcome columns)."""
    state: KernelState
    period: int | None
    """The month whose counters ``state`` holds for every pair (None: not loaded yet)."""


@dataclass(frozen=True)
class IngestResult:
    """What one ``ingest`` did."""

    batch_id: str
    replayed: bool
    """True when the batch id was already committed: nothing was done."""
    calls: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-call outcomes in charge order (see ``RatingResult.calls``); empty when replayed."""
    duplicates: int = 0
    late: int = 0
    """Calls of closed months, rated into adjustments on the next open bill."""
    alerts: tuple[AlertEvent, ...] = ()


class Ledger:
    """A durable rating ledger on one SQLite file (or ``":memory:"``).

    One writer at a time (SQLite's write lock); readers in other processes see only committed
    batches. Every ``ingest`` is one transaction: a batch is applied whole or not at all.
    """

    def __init__(self, path: str | Path, *, kernel: str | ModuleType | None = None) -> None:
        self.path = str(path)
        self.kernel = kernel if isinstance(kernel, ModuleType) else _kernel.get(kernel)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=60.0, check_same_thread=False)
        self.db.execute("PRAGMA busy_timeout = 60000")
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        # The record-id index is looked up for every call: keep its pages in memory (256 MiB at most).
        self.db.execute("PRAGMA cache_size = -262144")
        self._generation = -1
        self.catalog: Catalog
        self.accounts: Accounts
        self._lines: dict[LineKey, list[int]] = {}
        self._plan_used: dict[tuple[str, int], int] = {}
        self._closed: set[int] = set()
        self._line_parties: set[tuple[str, str]] = set()
        """(account, channel) pairs with usage lines."""
        self._warm: _Warm | None = None
        self._engine: Engine | None = None

    # ----------------------------------------------------------------- opening
    @classmethod
    def create(
        cls,
        path: str | Path,
        catalog: Catalog | str | Path | None = None,
        accounts: Accounts | str | Path | None = None,
        *,
        kernel: str | ModuleType | None = None,
    ) -> "Ledger":
        """Create a ledger holding ``catalog`` and ``accounts`` (an existing file is an error)."""
        if str(path) != ":memory:" and Path(path).exists():
            raise OcrledgerError("a ledger already exists here; open it instead", file=str(path))
        cat = as_catalog(catalog)
        acc = as_accounts(accounts, cat)
        ledger = cls(path, kernel=kernel)
        with ledger._write():
            for statement in _statements():
                ledger.db.execute(statement)
            ledger._set_meta("schema", SCHEMA_VERSION)
            ledger._set_meta("catalog", json.dumps(catalog_to_dict(cat)))
            ledger._set_meta("accounts", json.dumps(accounts_to_dict(acc)))
            ledger._set_meta("generation", "1")
        ledger._load()
        return ledger

    @classmethod
    def open(cls, path: str | Path, *, kernel: str | ModuleType | None = None) -> "Ledger":
        """Open an existing ledger file."""
        if not Path(path).exists():
            raise OcrledgerError("no ledger here; create it with a catalog and accounts first", file=str(path))
        ledger = cls(path, kernel=kernel)
        try:
            if ledger._meta("schema") != SCHEMA_VERSION:
                raise OcrledgerError("not an ocrledger ledger (schema version differs)", file=str(path))
        except sqlite3.DatabaseError as exc:
            raise OcrledgerError(f"not an ocrledger ledger ({exc})", file=str(path)) from None
        ledger._load()
        return ledger

    def close_connection(self) -> None:
        self.db.close()

    def __del__(self) -> None:
        # A ledger dropped without close_connection() or ``with`` (or one whose opening failed) closes its
        # connection here, as file objects do: no file handle held until exit, no ResourceWarning on 3.13.
        db = self.__dict__.get("db")
        if db is not None:
            db.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_connection()

    # ------------------------------------------------------------- storage
    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    @contextmanager
    def _write(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; rolled back on any error (nothing half-applied)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            self._generation = -1  # the cache may hold uncommitted changes: reload
            raise
        self.db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[None]:
        """A read transaction: one consistent snapshot of committed batches."""
        self.db.execute("BEGIN")
        try:
            self._refresh()
            yield
        finally:
            self.db.execute("COMMIT")

    def _bump(self) -> None:
        self._generation += 1
        self._set_meta("generation", str(self._generation))

    def _refresh(self) -> None:
        generation = self._meta("generation")
        if generation is None or int(generation) != self._generation:
            self._load()

    def _load(self) -> None:
        """Read catalog, accounts and usage counters into memory."""
        self.catalog = parse_catalog(json.loads(self._meta("catalog") or "{}"), source=f"{self.path}:catalog")
        self.accounts = parse_accounts(
            json.loads(self._meta("accounts") or "{}"), self.catalog, source=f"{self.path}:accounts"
        )
        self._lines = {
            (a, c, p, api, t): json.loads(counts)
            for a, c, p, api, t, counts in self.db.execute("SELECT account, channel, period, api, target, counts FROM lines")
        }
        self._plan_used = {(pid, p): u for pid, p, u in self.db.execute("SELECT plan_id, period, units FROM plan_used")}
        self._closed = {p for (p,) in self.db.execute("SELECT period FROM closed")}
        self._line_parties = {(a, c) for a, c, *_ in self._lines}
        self._generation = int(self._meta("generation") or 0)
        self._warm = None
        self._engine: Engine | None = None

    # ------------------------------------------------------- accounts changes
    def _change_accounts(self, change: Any) -> None:
        with self._write():
            self._refresh()
            data = accounts_to_dict(self.accounts)
            change(data)
            accounts = parse_accounts(data, self.catalog, source="<ledger change>")
            self._set_meta("accounts", json.dumps(accounts_to_dict(accounts)))
            self._bump()
            self.accounts = accounts
            self._warm = None
            self._engine = None

    def add_account(self, account: str, channel: str = OFFICIAL, activated: dict[str, Any] | None = None) -> None:
        entry: dict[str, Any] = {"id": account, "channel": channel}
        if activated:
            entry["activated"] = activated
        self._change_accounts(lambda d: d["account"].append(entry))

    def activate(self, account: str, api: str, at: Any) -> None:
        """Activate ``api`` for an official account from instant ``at``."""

        def change(d: dict[str, Any]) -> None:
            for a in d["account"]:
                if a["id"] == account and a["channel"] == OFFICIAL:
                    a.setdefault("activated", {})[api] = at
                    return
            raise OcrledgerError(f"no official account {account!r}")

        self._change_accounts(change)

    def add_plan(self, **plan: Any) -> None:
        """Buy a plan (fields as in the accounts file's [[plan]]); it pays from its own start."""
        self._change_accounts(lambda d: d["plan"].append(plan))

    def refund(self, plan_id: str, at: Any) -> None:
        """Refund a plan: it pays for no call at or after ``at``."""

        def change(d: dict[str, Any]) -> None:
            for p in d["plan"]:
                if p["id"] == plan_id:
                    p["refunded"] = at
                    return
            raise OcrledgerError(f"no plan {plan_id!r}")

        self._change_accounts(change)

    def add_qps_addon(self, **addon: Any) -> None:
        self._change_accounts(lambda d: d["qps_addon"].append(addon))

    def add_alert(self, **alert: Any) -> None:
        self._change_accounts(lambda d: d["alert"].append(alert))

    def add_credential(self, **credential: Any) -> None:
        self._change_accounts(lambda d: d["credential"].append(credential))

    # ------------------------------------------------------------- ingest
    def ingest(self, calls: Any, batch_id: str) -> IngestResult:
        """Rate a batch on top of the stored counters and commit it, all or nothing.

        A ``batch_id`` already committed is a no-op (``replayed=True``). A record id seen in an
        earlier batch of the same channel, or earlier in this one, is a duplicate: reported,
        never charged. Calls of a closed month are rated against that month's counters into
        an adjustment on the next open bill.
        """
        if not isinstance(batch_id, str) or not batch_id:
            raise OcrledgerError("batch_id must be a non-empty string")
        columns, name, base = read_columns(calls)
        with self._write():
            self._refresh()
            if self.db.execute("SELECT 1 FROM batches WHERE batch_id = ?", (batch_id,)).fetchone():
                return IngestResult(batch_id, replayed=True)
            result = self._ingest(columns, name, base, batch_id)
            self._bump()
        return result

    def _ingest(self, columns: dict[str, Any], name: str, base: int, batch_id: str) -> IngestResult:
        cat, acc = self.catalog, self.accounts
        clock = cat.clock
        bad_key = None
        if "credential" in columns and "account" not in columns:
            def fail(message: str, index: int, field_: str) -> OcrledgerError:
                return OcrledgerError(message, file=name, row=base + int(index), field=field_)

            if "ts" not in columns:
                raise OcrledgerError("missing column 'ts'", file=name)
            columns, bad_key = resolve(columns, parse_instants(columns["ts"], clock, fail), acc)
        table = validate_columns(columns, cat, name, base)
        parties = party_list(self._parties(), table)
        warm = self._warm
        if warm is None or warm.parties != parties:
            tables, plan_rows = self.engine.setup.tables(parties)
            plans = plan_rows.objects()
            warm = self._warm = _Warm(parties, tables, plans, plan_rows, self._state(tables, plans, parties), None)
        tables, plans, state = warm.tables, warm.plans, warm.state
        enc = encode(table, parties, clock)
        batch, n = enc.batch, len(enc.batch)
        record_id = table.record_id[enc.order]
        channel = table.channel[enc.order]
        seen = self._seen(record_id, channel)
        batch.duplicate |= seen.astype(np.int8)
        blocked = np.zeros(n, dtype=bool)
        if bad_key is not None:  # unknown/expired credentials: the kernel must not charge them
            blocked = bad_key[enc.order] & (batch.duplicate == 0)
            batch.duplicate |= blocked.astype(np.int8)
        remaining_before = state.plan_remaining.copy()
        pool_before = state.pool_used.copy()
        out = Outcomes.empty(n)
        for period in np.unique(batch.period).tolist():
            rows = np.flatnonzero(batch.period == period)
            if warm.period != period:
                self._month_counters(state, tables, parties, period)
                warm.period = period
            try:
                part = _kernel.run(self.kernel, tables, state, batch.take(rows))
            except (MoneyError, StateError) as exc:
                i = int(enc.order[rows[exc.call_index]])  # type: ignore[attr-defined]
                raise _kernel.name_call(exc, str(table.record_id[i]), table.source, table.row(i)) from None
            for col in ("status", "source", "plan", "tier", "amount"):
                getattr(out, col)[rows] = getattr(part, col)
        if blocked.any():
            batch.duplicate[blocked] = 0
            out.status[blocked] = np.where(batch.success[blocked] == 1, Status.REJECTED_CREDENTIAL, Status.FAILED)
        usage = summarize(tables, batch, out)
        events = self._alerts(tables, parties, plans, batch, out, record_id, remaining_before, pool_before)
        late = self._store(batch_id, tables, parties, plans, batch, out, usage, record_id, channel)
        fired = self._store_alerts(events)
        return IngestResult(
            batch_id, False, outcome_columns(cat, table.record_id, enc, out, warm.plan_rows.ids_of(out.plan)),
            int((out.status == Status.DUPLICATE).sum()), late, tuple(fired),
        )

    def _seen(self, record_id: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """Which records were committed by an earlier batch (indexed look-ups, no scan)."""
        seen = np.zeros(len(record_id), dtype=bool)
        for ch in np.unique(channel).tolist():
            rows = np.flatnonzero(channel == ch)
            ids = record_id[rows].tolist()
            found: set[str] = set()
            for k in range(0, len(ids), 900):
                chunk = ids[k : k + 900]
                q = f"SELECT record_id FROM records WHERE channel = ? AND record_id IN ({','.join('?' * len(chunk))})"
                found.update(r for (r,) in self.db.execute(q, [ch, *chunk]))
            if found:
                seen[rows] = [r in found for r in ids]  # exact (np.isin would drop trailing NULs)
        return seen

    def _state(self, tables: KernelTables, plans: Sequence[Any], parties: Sequence[tuple[str, str]]) -> KernelState:
        """Kernel counters rebuilt from the stored usage: plan remainders and the verification pool."""
        used = defaultdict(int)
        for (pid, _), units in self._plan_used.items():
            used[pid] += units
        state = KernelState.fresh(tables, np.array([p.quantity - used[p.id] for p in plans], dtype=np.int64))
        index = {p: i for i, p in enumerate(parties)}
        for (a, c, _, api, _), counts in self._lines.items():
            if self.catalog.api(api).kind == "verification" and (a, c) in index:
                state.pool_used[index[(a, c)]] += counts[FREE]
        return state

    def _month_counters(
        self, state: KernelState, tables: KernelTables, parties: Sequence[tuple[str, str]], period: int
    ) -> None:
        """Set every pair's monthly counters to what ``period`` already holds (on time and late)."""
        state.pair_period[:] = period
        for name in ("free_used", "payg_calls", "payg_tier", "payg_spend"):
            getattr(state, name)[:] = 0
        index = {p: i for i, p in enumerate(parties)}
        for (a, c, p, api, _), counts in self._lines.items():
            if p != period or (a, c) not in index:
                continue
            api_index = self.catalog.index[api]
            pair = index[(a, c)] * tables.n_api + api_index
            state.free_used[pair] += counts[FREE]
            state.payg_calls[pair] += sum(counts[TIER0:])
            spend = int(state.payg_spend[pair]) + position_spend(self.catalog.apis[api_index], counts)
            state.payg_spend[pair] = check_int64(spend, what="PAYG spend")

    def _target(self, period: int) -> int:
        """The bill a late call of closed ``period`` lands on: the first open month after it."""
        target = period + 1
        while target in self._closed:
            target += 1
        return target

    def _store(
        self, batch_id: str, tables: KernelTables, parties: Sequence[tuple[str, str]], plans: Sequence[Any],
        batch: Any, out: Outcomes, usage: Usage, record_id: np.ndarray, channel: np.ndarray,
    ) -> int:
        codes = [a.code for a in self.catalog.apis]
        db = self.db
        fresh = out.status != Status.DUPLICATE
        db.executemany(
            "INSERT INTO records(channel, record_id, batch_id) VALUES (?, ?, ?)",
            zip(channel[fresh].tolist(), record_id[fresh].tolist(), [batch_id] * int(fresh.sum())),
        )
        late = 0
        line_rows = []
        for (party, period, api), counts in usage.lines.items():
            a, c = parties[party]
            target = self._target(period) if period in self._closed else ON_TIME
            key = (a, c, period, codes[api], target)
            self._line_parties.add((a, c))
            mine = self._lines.setdefault(key, [0] * usage.width)
            for k, v in enumerate(counts):
                mine[k] += v
            line_rows.append((*key, json.dumps(mine)))
            if target != ON_TIME:
                late += sum(counts) - counts[DUPLICATE]
                rows = (batch.party == party) & (batch.period == period) & (batch.api == api) & fresh
                db.executemany(
                    "INSERT OR IGNORE INTO late_records VALUES (?, ?, ?, ?, ?, ?)",
                    ((a, c, period, codes[api], target, r) for r in record_id[rows].tolist()),
                )
        db.executemany("INSERT OR REPLACE INTO lines VALUES (?, ?, ?, ?, ?, ?)", line_rows)
        plan_rows = []
        for (k, period), units in usage.plan_used.items():
            pid = plans[k].id
            self._plan_used[(pid, period)] = self._plan_used.get((pid, period), 0) + units
            plan_rows.append((pid, period, self._plan_used[(pid, period)]))
        db.executemany("INSERT OR REPLACE INTO plan_used VALUES (?, ?, ?)", plan_rows)
        self._store_daily(tables, parties, batch, out, codes)
        pair, sec, calls = second_counts(batch, out, tables.n_api)
        db.executemany(
            "INSERT INTO qps_seconds VALUES (?, ?, ?, ?, ?) ON CONFLICT(account, channel, api, second) "
            "DO UPDATE SET calls = calls + excluded.calls",
            (
                (*parties[p // tables.n_api], codes[p % tables.n_api], s, k)
                for p, s, k in zip(pair.tolist(), sec.tolist(), calls.tolist())
            ),
        )
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM batches").fetchone()[0]
        db.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
            (batch_id, seq, len(batch), int((~fresh).sum()), late, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
        )
        return late

    def _store_daily(
        self, tables: KernelTables, parties: Sequence[tuple[str, str]], batch: Any, out: Outcomes, codes: list[str]
    ) -> None:
        n = len(batch)
        if not n:
            return
        quarter = np.floor_divide(batch.ts, 900_000)  # every zone offset is a multiple of 15 minutes
        uq, inverse = np.unique(quarter, return_inverse=True)
        tz = self.catalog.clock.tz
        day_labels = [from_ms(q * 900_000, tz).date().isoformat() for q in uq.tolist()]
        day_u, day_of_q = np.unique(np.array(day_labels), return_inverse=True)
        day = day_of_q[inverse.reshape(-1)]
        status, source = out.status, out.source
        cat = np.select(
            [status == Status.DUPLICATE, status == Status.FAILED, np.isin(status, [3, 4, 5]),
             source == Source.FREE, source == Source.DEDICATED, source == Source.SHARED],
            [3, 1, 2, 4, 5, 6], default=7,
        )
        key = ((batch.party.astype(np.int64) * tables.n_api + batch.api) * len(day_u) + day) * 8 + cat
        keys, counts = np.unique(key, return_counts=True)
        cells: dict[tuple[int, int, int], list[int]] = defaultdict(lambda: [0] * 8)
        for k, v in zip(keys.tolist(), counts.tolist()):
            rest, c = divmod(k, 8)
            pair, d = divmod(rest, len(day_u))
            cells[(pair // tables.n_api, pair % tables.n_api, d)][c] += v
        rows = []
        for (party, api, d), v in cells.items():
            a, c = parties[party]
            calls = sum(v) - v[3]
            rows.append((a, c, codes[api], str(day_u[d]), calls, v[1], v[2], v[3], v[4], v[5], v[6], v[7]))
        self.db.executemany(
            "INSERT INTO daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(account, channel, api, day) DO UPDATE "
            "SET calls = calls + excluded.calls, failed = failed + excluded.failed, rejected = rejected + "
            "excluded.rejected, duplicates = duplicates + excluded.duplicates, free = free + excluded.free, "
            "dedicated = dedicated + excluded.dedicated, shared = shared + excluded.shared, payg = payg + excluded.payg",
            rows,
        )

    def _alerts(
        self, tables: KernelTables, parties: Sequence[tuple[str, str]], plans: Sequence[Any], batch: Any,
        out: Outcomes, record_id: np.ndarray, remaining_before: np.ndarray, pool_before: np.ndarray,
    ) -> list[AlertEvent]:
        if not self.accounts.alerts:
            return []

        def month_lines(party: int, period: int) -> Iterator[tuple[str, list[int]]]:
            a, c = parties[party]
            for (la, lc, lp, api, _), counts in self._lines.items():
                if (la, lc, lp) == (a, c, period):
                    yield api, counts

        def free_before(party: int, period: int, api: int) -> int:
            code = self.catalog.apis[api].code
            return sum(counts[FREE] for c, counts in month_lines(party, period) if c == code)

        def spend_before(party: int, period: int, api: int | None) -> int:
            total = 0
            for code, counts in month_lines(party, period):
                if api is None or self.catalog.index[code] == api:
                    total += position_spend(self.catalog.api(code), counts)
            return total

        return detect(self.accounts.alerts, self.catalog, tables, parties, plans, batch, out, record_id,
                      remaining_before, pool_before, free_before, spend_before)

    def _store_alerts(self, events: list[AlertEvent]) -> list[AlertEvent]:
        fired = []
        for e in events:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO alert_events(account, channel, kind, target, threshold, key, record_id, ts, "
                "message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (e.account, e.channel, e.kind, e.target or "", e.threshold, e.key, e.record_id, e.ts, e.message),
            )
            if cur.rowcount:
                fired.append(e)
        return fired

    # ------------------------------------------------------------- month close
    def close(self, month: str) -> list[Bill]:
        """Freeze the bills of ``month``; later calls of that month become adjustments."""
        period = parse_period(month)
        with self._write():
            self._refresh()
            if period in self._closed:
                raise StateError(f"month {month} is already closed")
            earlier = sorted({p for (_, _, p, _, t) in self._lines if p < period and p not in self._closed})
            if earlier:
                raise StateError(f"close {period_label(earlier[0])} first: it is still open and has calls")
            bills = self._bills(period)
            for bill in bills:
                self.db.execute(
                    "INSERT INTO closed_bills VALUES (?, ?, ?, ?)", (bill.account, bill.channel, period, bill.to_json())
                )
            self.db.execute(
                "INSERT INTO closed VALUES (?, ?)", (period, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            )
            self._closed.add(period)
            self._bump()
        return bills

    def closed_months(self) -> list[str]:
        with self._read():
            return [period_label(p) for p in sorted(self._closed)]

    # ------------------------------------------------------------- queries
    def bills(self, month: str, account: str | None = None, channel: str | None = None) -> list[Bill]:
        """The bills of ``month``: frozen ones if it is closed, else provisional (sorted)."""
        return [Bill.from_dict(json.loads(text)) for text in self.bill_texts(month, account, channel)]

    def bill_texts(self, month: str, account: str | None = None, channel: str | None = None) -> list[str]:
        """The bills of ``month`` as JSON texts; a closed month's are the bytes stored at close."""
        period = parse_period(month)
        with self._read():
            if period in self._closed:
                rows = self.db.execute(
                    "SELECT account, channel, json FROM closed_bills WHERE period = ? ORDER BY account, channel",
                    (period,),
                ).fetchall()
                return [j for a, c, j in rows if (account is None or a == account) and (channel is None or c == channel)]
            return [
                b.to_json() for b in self._bills(period)
                if (account is None or b.account == account) and (channel is None or b.channel == channel)
            ]

    @property
    def engine(self) -> Engine:
        """The Engine of the stored catalog and accounts (compiled once, again after a change of accounts)."""
        if self._engine is None:
            self._engine = Engine(self.catalog, self.accounts, kernel=self.kernel)
        return self._engine

    def _parties(self) -> list[tuple[str, str]]:
        """Listed accounts, then every other (account, channel) the ledger has seen, sorted."""
        known = self.accounts.parties()
        return known + sorted(self._line_parties - set(known))

    def _bills(self, period: int) -> list[Bill]:
        """Provisional bills of ``period`` from the stored usage (whole history for plans and pool)."""
        cat = self.catalog
        parties = self._parties()
        index = {p: i for i, p in enumerate(parties)}
        width = TIER0 + max(len(a.tiers) for a in cat.apis)
        summed: dict[tuple[int, int, int], list[int]] = {}
        for (a, c, p, api, _), counts in self._lines.items():
            mine = summed.setdefault((index[(a, c)], p, cat.index[api]), [0] * width)
            for k, v in enumerate(counts):
                mine[k] += v
        tables, plans = self.engine.setup.tables(parties)
        plan_index = {pid: k for k, pid in enumerate(plans.columns.ids)}
        plan_used = {(plan_index[pid], p): u for (pid, p), u in self._plan_used.items() if pid in plan_index}
        start, end = int(cat.clock.month_starts[period]) // 1000, int(cat.clock.month_starts[period + 1]) // 1000
        rows = self.db.execute(
            "SELECT account, channel, api, second, calls FROM qps_seconds WHERE second >= ? AND second < ? "
            "ORDER BY account, channel, api, second", (start, end),
        ).fetchall()
        pair = np.array([index[(a, c)] * len(cat.apis) + cat.index[api] for a, c, api, _, _ in rows], dtype=np.int64)
        order = np.argsort(pair, kind="stable")
        sec = np.array([r[3] for r in rows], dtype=np.int64)[order]
        calls = np.array([r[4] for r in rows], dtype=np.int64)[order]
        qps = qps_arrays(cat, self.engine.addons, parties, pair[order], sec, calls)
        cols = bill_columns(LineArrays.from_lines(summed, width), plan_used, cat, parties, plans.columns, qps, tables,
                            period, adjustments=self._adjustments(index, period))
        return bills_from_columns(cols, cat, parties, plans.columns)

    def _adjustments(self, index: dict[tuple[str, str], int], period: int) -> dict[tuple[int, int], list[Adjustment]]:
        """Late calls of closed months whose target is ``period``: the change of the closed line."""
        late_lines = []
        for (a, c, src, api, target), late in sorted(self._lines.items()):
            if target != period:
                continue
            before = [0] * len(late)
            for (a2, c2, p2, api2, t2), counts in self._lines.items():
                if (a2, c2, p2, api2) == (a, c, src, api) and (t2 == ON_TIME or t2 < target):
                    before = [x + y for x, y in zip(before, counts)]
            late_lines.append(((a, c, src, api), late, before, [x + y for x, y in zip(before, late)]))
        result: dict[tuple[int, int], list[Adjustment]] = defaultdict(list)
        if not late_lines:
            return result
        width = max(len(late) for _, late, _, _ in late_lines)
        apis = np.repeat([self.catalog.index[key[3]] for key, _, _, _ in late_lines], 2)
        counts = np.zeros((len(apis), width), dtype=np.int64)
        for k, (_, _, before, after) in enumerate(late_lines):
            counts[2 * k, :len(after)], counts[2 * k + 1, :len(before)] = after, before
        exacts = line_exact(self.catalog, apis, counts)  # the bill line's own sums, after then before
        for k, ((a, c, src, api), late, _, _) in enumerate(late_lines):
            exact = exacts[2 * k] - exacts[2 * k + 1]
            ids = [r for (r,) in self.db.execute(
                "SELECT record_id FROM late_records WHERE account = ? AND channel = ? AND period = ? AND api = ? "
                "AND target = ? ORDER BY record_id", (a, c, src, api, period))]
            result[(index[(a, c)], period)].append(Adjustment(
                period_label(src), api, sum(late) - late[DUPLICATE], to_decimal(exact),
                to_cents_decimal(round_line(exact, self.catalog.api(api).rounding)), tuple(ids),
            ))
        return result

    def quota(self, account: str, channel: str = OFFICIAL, at: Any = None) -> dict[str, Any]:
        """Remaining quota at instant ``at`` (default: now): plans, free calls this month, verification pool."""
        with self._read():
            clock = self.catalog.clock
            when = clock.instant(at, what="at") if at is not None else int(time.time() * 1000)
            period = clock.period(when)
            plans = []
            for plan in self.accounts.plans:
                if (plan.account, plan.channel) != (account, channel):
                    continue
                used = sum(u for (pid, _), u in self._plan_used.items() if pid == plan.id)
                active = plan.start <= when < plan.effective_end
                plans.append({
                    "id": plan.id, "kind": plan.kind, "apis": list(plan.apis), "quantity": plan.quantity,
                    "remaining": plan.quantity - used if when < plan.effective_end else 0,
                    "start": clock.label(plan.start), "end": clock.label(plan.effective_end), "active": active,
                })
            free: dict[str, int] = {}
            pool = None
            if channel == OFFICIAL:
                pool_used = 0
                for (a, c, p, api, _), counts in self._lines.items():
                    if (a, c) != (account, channel):
                        continue
                    if self.catalog.api(api).kind == "verification":
                        pool_used += counts[FREE]
                    elif p == period:
                        free[api] = free.get(api, 0) + counts[FREE]
                free = {a.code: a.free_monthly - free.get(a.code, 0) for a in self.catalog.apis if a.kind != "verification"}
                pool = max(0, self.catalog.verification_free_total - pool_used)
            return {"account": account, "channel": channel, "at": clock.label(when), "month": period_label(period),
                    "plans": plans, "free_remaining": free, "verification_pool_remaining": pool}

    def call_details(self, account: str | None = None, channel: str | None = None) -> list[dict[str, Any]]:
        """Per account, API and day: calls, failed, rejected, duplicates, successful calls by source."""
        with self._read():
            rows = self.db.execute(
                "SELECT account, channel, api, day, calls, failed, rejected, duplicates, free, dedicated, shared, payg "
                "FROM daily ORDER BY account, channel, api, day"
            ).fetchall()
        names = ("account", "channel", "api", "day", "calls", "failed", "rejected", "duplicates", "free",
                 "dedicated", "shared", "payg")
        return [dict(zip(names, r)) for r in rows
                if (account is None or r[0] == account) and (channel is None or r[1] == channel)]

    def qps(self, account: str, month: str, channel: str = OFFICIAL) -> dict[str, tuple[int, int]]:
        """API -> (peak calls in one second, seconds over the entitled QPS) in ``month``."""
        return {
            line.api: (line.qps_peak, line.qps_over_seconds)
            for bill in self.bills(month, account, channel) for line in bill.lines
        }

    def pending_alerts(self, acknowledge: bool = True) -> list[dict[str, Any]]:
        """Alerts not delivered yet, oldest first; delivered once unless ``acknowledge`` is False."""
        with self._write():
            rows = self.db.execute(
                "SELECT id, account, channel, kind, target, threshold, key, record_id, ts, message FROM alert_events "
                "WHERE delivered = 0 ORDER BY id"
            ).fetchall()
            if acknowledge and rows:
                self.db.execute("UPDATE alert_events SET delivered = 1 WHERE id <= ? AND delivered = 0", (rows[-1][0],))
        names = ("id", "account", "channel", "kind", "target", "threshold", "key", "record_id", "ts", "message")
        return [dict(zip(names, r)) for r in rows]

    def batches(self) -> list[str]:
        with self._read():
            return [b for (b,) in self.db.execute("SELECT batch_id FROM batches ORDER BY seq")]


def _statements() -> list[str]:
    return [s.strip() for s in _SCHEMA.split(";") if s.strip()]

