"""The SQLite backend of the ledger: its schema (version 3), every SQL statement, atomic creation, error lines."""
from __future__ import annotations

import json
import os
import secrets
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import quote

from ..errors import OcrledgerError
from .rows import CounterRows, unpack
from .log_filters import log_where, row_filters

SCHEMA_VERSION = "3"
CHUNK = 900
WAL_PAGES = 16_384
"""WAL pages between automatic checkpoints (64 MiB of 4 KiB pages)."""
"""Bound parameters per ``IN (...)`` list of text keys (SQLite allows 32,766; small chunks stay fast)."""

SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE parties(party INTEGER PRIMARY KEY, account TEXT NOT NULL, channel TEXT NOT NULL,
    listed INTEGER NOT NULL, UNIQUE(channel, account));
CREATE TABLE activations(party INTEGER NOT NULL, api TEXT NOT NULL, activated INTEGER NOT NULL,
    PRIMARY KEY(party, api)) WITHOUT ROWID;
CREATE TABLE plans(plan_id TEXT PRIMARY KEY, party INTEGER NOT NULL, kind TEXT NOT NULL, apis TEXT NOT NULL,
    quantity INTEGER NOT NULL, start INTEGER NOT NULL, end_at INTEGER NOT NULL, price INTEGER,
    refunded INTEGER);
CREATE INDEX plans_party ON plans(party);
CREATE TABLE qps_addons(addon INTEGER PRIMARY KEY, party INTEGER NOT NULL, api TEXT NOT NULL, qps INTEGER NOT NULL,
    start INTEGER NOT NULL, end_at INTEGER NOT NULL);
CREATE INDEX qps_addons_party ON qps_addons(party);
CREATE TABLE alerts(alert INTEGER PRIMARY KEY, party INTEGER NOT NULL, kind TEXT NOT NULL, target TEXT,
    threshold TEXT NOT NULL);
CREATE INDEX alerts_party ON alerts(party);
CREATE TABLE credentials(credential INTEGER PRIMARY KEY, key TEXT NOT NULL, party INTEGER NOT NULL,
    valid_from INTEGER, valid_until INTEGER);
CREATE INDEX credentials_key ON credentials(key);
CREATE TABLE counters(party INTEGER NOT NULL, period INTEGER NOT NULL, api TEXT NOT NULL, target INTEGER NOT NULL,
    counts BLOB NOT NULL, PRIMARY KEY(party, period, api, target)) WITHOUT ROWID;
CREATE INDEX counters_period ON counters(period, party);
CREATE INDEX counters_late ON counters(target, party) WHERE target >= 0;
CREATE TABLE pools(party INTEGER PRIMARY KEY, used INTEGER NOT NULL);
CREATE TABLE plan_used(plan_id TEXT NOT NULL, period INTEGER NOT NULL, units INTEGER NOT NULL,
    PRIMARY KEY(plan_id, period)) WITHOUT ROWID;
CREATE TABLE batches(batch_id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, calls INTEGER NOT NULL,
    duplicates INTEGER NOT NULL, late INTEGER NOT NULL, committed_at TEXT NOT NULL);
CREATE TABLE records(channel TEXT NOT NULL, record_id TEXT NOT NULL, batch_id TEXT NOT NULL,
    PRIMARY KEY(channel, record_id)) WITHOUT ROWID;
CREATE TABLE deductions(seq INTEGER PRIMARY KEY, batch INTEGER NOT NULL, party INTEGER NOT NULL, api TEXT NOT NULL,
    record_id TEXT NOT NULL, ts INTEGER NOT NULL, period INTEGER NOT NULL, status INTEGER NOT NULL,
    source INTEGER NOT NULL, plan_id TEXT, tier INTEGER NOT NULL, amount INTEGER NOT NULL, plan_remaining INTEGER);
CREATE INDEX deductions_party ON deductions(party, ts);
CREATE INDEX deductions_batch ON deductions(batch);
CREATE TABLE daily(party INTEGER NOT NULL, api TEXT NOT NULL, day TEXT NOT NULL,
    calls INTEGER NOT NULL, failed INTEGER NOT NULL, rejected INTEGER NOT NULL, duplicates INTEGER NOT NULL,
    free INTEGER NOT NULL, dedicated INTEGER NOT NULL, shared INTEGER NOT NULL, payg INTEGER NOT NULL,
    PRIMARY KEY(party, api, day)) WITHOUT ROWID;
CREATE TABLE qps_seconds(party INTEGER NOT NULL, api TEXT NOT NULL, second INTEGER NOT NULL, calls INTEGER NOT NULL,
    PRIMARY KEY(party, api, second)) WITHOUT ROWID;
CREATE TABLE closed(period INTEGER PRIMARY KEY, closed_at TEXT NOT NULL);
CREATE TABLE closed_bills(period INTEGER NOT NULL, party INTEGER NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY(period, party)) WITHOUT ROWID;
CREATE TABLE late_records(party INTEGER NOT NULL, period INTEGER NOT NULL, api TEXT NOT NULL, target INTEGER NOT NULL,
    record_id TEXT NOT NULL, PRIMARY KEY(party, period, api, target, record_id)) WITHOUT ROWID;
CREATE TABLE alert_events(id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL,
    channel TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL, threshold TEXT NOT NULL, key TEXT NOT NULL,
    record_id TEXT NOT NULL, ts INTEGER NOT NULL, message TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,
    UNIQUE(account, channel, kind, target, threshold, key));
"""

DAILY_UPSERT = (
    "INSERT INTO daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(party, api, day) DO UPDATE "
    "SET calls = calls + excluded.calls, failed = failed + excluded.failed, rejected = rejected + "
    "excluded.rejected, duplicates = duplicates + excluded.duplicates, free = free + excluded.free, "
    "dedicated = dedicated + excluded.dedicated, shared = shared + excluded.shared, payg = payg + excluded.payg"
)


def statements(text: str = SCHEMA) -> list[str]:
    return [s.strip() for s in text.split(";") if s.strip()]


def _ints(values: Iterable[int]) -> str:
    """A JSON array of integers: one bound parameter for ``IN (SELECT value FROM json_each(?))``."""
    return json.dumps([int(v) for v in values])


def _in_json(column: str, values: Sequence[int]) -> tuple[str, str]:
    """``column IN`` a list of integers: one bound JSON array."""
    return f"{column} IN (SELECT value FROM json_each(?))", _ints(values)


def _explain(exc: sqlite3.Error, path: str, timeout: float, *, creating: bool = False) -> OcrledgerError:
    """The one line a user sees for a SQLite error."""
    text = str(exc)
    low = text.lower()
    if "disk is full" in low or isinstance(exc, sqlite3.OperationalError) and "full" in low:
        msg = "the disk is full (or the file reached its size limit): nothing of this operation was committed; " \
              "free space and run it again"
    elif "locked" in low or "busy" in low:
        msg = f"the ledger is locked by another process for longer than {timeout:g} s: nothing was done; retry later"
    elif "readonly" in low or "read-only" in low:
        msg = "the ledger file is read-only: only reading commands (bill, quota, log, ...) work on it"
    elif "not a database" in low or "malformed" in low or "corrupt" in low:
        msg = f"the file is corrupt or not an ocrledger ledger ({text})"
    elif "unable to open" in low:
        msg = f"cannot {'create' if creating else 'open'} the ledger file ({text})"
    else:
        msg = f"SQLite error: {text}"
    return OcrledgerError(msg, file=path)


class SqliteStore:
    """One ledger file: a connection, its transactions and the ledger's statements (schema 2).

    Every method that touches the file raises ``OcrledgerError`` (one line, naming the file) for a
    SQLite error; a write transaction that fails is rolled back whole.
    """

    def __init__(self, db: sqlite3.Connection, path: str, readonly: bool, timeout: float) -> None:
        self.db, self.path, self.readonly, self.timeout = db, path, readonly, timeout

    # ------------------------------------------------------------ connecting
    @staticmethod
    def _connect(target: str, *, uri: bool, timeout: float) -> sqlite3.Connection:
        db = sqlite3.connect(target, uri=uri, isolation_level=None, timeout=timeout, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        if uri and "mode=ro" in target:  # a reader runs no statement that touches the file before it reads
            return db
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA cache_size = -262144")  # the record-id index is probed per call: 256 MiB of pages at most
        # A batch dirties pages all over the party-keyed tables (a 100-call batch at 10^5 accounts: ~340
        # pages). Checkpointing every 1,000 WAL pages (the default) copied them back almost every batch;
        # every 16,384 pages (64 MiB), a page dirtied by many batches is copied once (docs/performance.md).
        db.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
        db.execute(f"PRAGMA journal_size_limit = {WAL_PAGES * 4096}")
        return db

    @classmethod
    def create(cls, path: str, init: Callable[["SqliteStore"], None], *, timeout: float = 60.0) -> "SqliteStore":
        """A new ledger file made complete under a temporary name, then linked into place (atomic, exclusive).

        Two creators at once: one link succeeds, the other gets an ``OcrledgerError``. A creator killed
        half-way leaves only its temporary file (``.NAME.creating-*``), which blocks nobody.
        """
        if path == ":memory:":
            store = cls(cls._connect(":memory:", uri=False, timeout=timeout), path, False, timeout)
            with store.write():
                for s in statements():
                    store.db.execute(s)
                init(store)
            return store
        target = Path(path)
        if target.is_dir():
            raise OcrledgerError("is a directory, not a ledger file", file=path)
        if target.exists():
            raise OcrledgerError("a ledger already exists here; open it instead", file=path)
        if not target.parent.is_dir():
            raise OcrledgerError("the folder of the ledger file does not exist", file=path)
        tmp = target.with_name(f".{target.name}.creating-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            db = cls._connect(str(tmp), uri=False, timeout=timeout)
            try:
                store = cls(db, str(tmp), False, timeout)
                with store.write():
                    for s in statements():
                        db.execute(s)
                    init(store)
                db.execute("PRAGMA journal_mode = WAL")  # kept in the file: no reader ever has to set it
            finally:
                db.close()
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise OcrledgerError("another process created a ledger here first; open it instead",
                                     file=path) from None
            except OSError as exc:
                raise OcrledgerError(f"cannot create the ledger file ({exc.strerror})", file=path) from None
        except OcrledgerError as exc:
            if exc.file == str(tmp):
                exc.file = path
                exc.args = (str(exc),)
            raise
        except OSError as exc:
            raise OcrledgerError(f"cannot create the ledger file ({exc.strerror})", file=path) from None
        except sqlite3.Error as exc:  # e.g. a folder where no file can be made
            raise _explain(exc, path, timeout, creating=True) from None
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
                try:
                    leftover.unlink()
                except OSError:
                    pass
        return cls.open(path, timeout=timeout)

    @classmethod
    def open(cls, path: str, *, readonly: bool | None = None, timeout: float = 60.0) -> "SqliteStore":
        """Open an existing file; read-only when the file or its folder cannot be written (or asked)."""
        target = Path(path)
        if target.is_dir():
            raise OcrledgerError("is a directory, not a ledger file", file=path)
        if not target.exists():
            raise OcrledgerError("no ledger here; create it with a catalog and accounts first", file=path)
        if not os.access(target, os.R_OK):
            raise OcrledgerError("the ledger file cannot be read (permission denied)", file=path)
        if readonly is None:
            readonly = not (os.access(target, os.W_OK) and os.access(target.parent, os.W_OK))
        try:
            if readonly:
                db = cls._read_only(target, timeout)
            else:
                db = cls._connect(str(target), uri=False, timeout=timeout)
        except sqlite3.Error as exc:
            raise _explain(exc, path, timeout) from None
        return cls(db, path, readonly, timeout)

    @classmethod
    def _read_only(cls, target: Path, timeout: float) -> sqlite3.Connection:
        """A read-only connection; no statement that writes (not even ``PRAGMA journal_mode``) is run.

        A WAL file in a folder that cannot be written, with no ``-shm`` file beside it, cannot be read
        through the WAL index: when no ``-wal`` file holds commits either, the file itself is all there
        is and is opened as immutable.
        """
        uri = f"file:{quote(str(target.resolve()))}?mode=ro"
        db = cls._connect(uri, uri=True, timeout=timeout)
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            wal = target.with_name(target.name + "-wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise
            db.close()
            return cls._connect(uri + "&immutable=1", uri=True, timeout=timeout)

    def close(self) -> None:
        """Close the connection (again: a no-op)."""
        self.db.close()

    def __del__(self) -> None:
        # a store (or the Ledger holding it) dropped unclosed, or a failed open: closed here, as file objects do
        db = self.__dict__.get("db")
        if db is not None:
            db.close()

    # ---------------------------------------------------------- transactions
    @contextmanager
    def write(self, exclusive: bool = False) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; rolled back on any error (nothing half-applied).

        Every write is exclusive on SQLite (its write lock): ``exclusive`` matters on PostgreSQL only.
        """
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _explain(exc, self.path, self.timeout) from None

    @contextmanager
    def read(self) -> Iterator[None]:
        """One read transaction: a consistent snapshot of committed batches."""
        try:
            self.db.execute("BEGIN")
            try:
                yield
            finally:
                if self.db.in_transaction:
                    self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _explain(exc, self.path, self.timeout) from None

    def data_version(self) -> int:
        """A number that changes when another connection commits (``PRAGMA data_version``; this connection's
        own commits leave it): what the writer's ``RowCache`` is checked against."""
        try:
            return int(self.db.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error as exc:
            raise _explain(exc, self.path, self.timeout) from None

    # ----------------------------------------------------------------- locks
    def lock_batch(self, batch_id: str) -> None:
        """Nothing to do: SQLite's write lock already serialises every batch (see ``PostgresStore``)."""

    def lock_parties(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Nothing to do: SQLite's write lock already serialises every batch (see ``PostgresStore``)."""

    # ------------------------------------------------------------------ meta
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def delete_meta(self, key: str) -> None:
        self.db.execute("DELETE FROM meta WHERE key = ?", (key,))

    def schema_version(self) -> str | None:
        try:
            if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
                return None
            return self.meta("schema")
        except sqlite3.Error as exc:
            raise _explain(exc, self.path, self.timeout) from None

    # --------------------------------------------------------------- parties
    def find_parties(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, bool]]:
        """(account, channel) -> (party id, listed) for the pairs that have a row."""
        found: dict[tuple[str, str], tuple[int, bool]] = {}
        by_channel: dict[str, list[str]] = {}
        for a, c in pairs:
            by_channel.setdefault(c, []).append(a)
        for channel, names in by_channel.items():
            for k in range(0, len(names), CHUNK):
                chunk = names[k : k + CHUNK]
                q = (f"SELECT party, account, listed FROM parties WHERE channel = ? AND account IN "
                     f"({','.join('?' * len(chunk))})")
                for party, account, listed in self.db.execute(q, [channel, *chunk]):
                    found[(account, channel)] = (int(party), bool(listed))
        return found

    def add_party(self, account: str, channel: str, listed: bool) -> int:
        cur = self.db.execute("INSERT INTO parties(account, channel, listed) VALUES (?, ?, ?)",
                              (account, channel, int(listed)))
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def add_parties(self, pairs: Sequence[tuple[str, str]], listed: bool) -> list[int]:
        return [self.add_party(a, c, listed) for a, c in pairs]

    def list_party(self, party: int) -> None:
        self.db.execute("UPDATE parties SET listed = 1 WHERE party = ?", (party,))

    def party_names(self, parties: Sequence[int]) -> dict[int, tuple[str, str, bool]]:
        rows = self.db.execute("SELECT party, account, channel, listed FROM parties WHERE party IN "
                               "(SELECT value FROM json_each(?))", (_ints(parties),))
        return {int(p): (a, c, bool(listed)) for p, a, c, listed in rows}

    def listed_parties(self) -> list[tuple[int, str, str]]:
        """Every listed party in the order it was added (a whole-ledger listing, for exports)."""
        return [(int(p), a, c) for p, a, c in self.db.execute(
            "SELECT party, account, channel FROM parties WHERE listed = 1 ORDER BY party")]

    # ----------------------------------------------------------------- setup
    def activations(self, parties: Sequence[int], pairs: Sequence[tuple[int, str]] | None = None
                    ) -> list[tuple[int, str, int]]:
        """(party, api, activated) of every API of ``parties``, or of the (party, api) ``pairs`` only (a batch's:
        an index search each, not every API's row of its parties)."""
        if pairs is not None:
            return self.db.execute(
                "SELECT a.party, a.api, a.activated FROM (SELECT value ->> 0 AS p, value ->> 1 AS i FROM json_each(?)) "
                "j CROSS JOIN activations a ON a.party = j.p AND a.api = j.i ORDER BY a.party, a.api",
                (json.dumps([[int(p), a] for p, a in pairs]),)).fetchall()
        return self.db.execute("SELECT party, api, activated FROM activations WHERE party IN "
                               "(SELECT value FROM json_each(?)) ORDER BY party, api", (_ints(parties),)).fetchall()

    def set_activation(self, party: int, api: str, at: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO activations VALUES (?, ?, ?)", (party, api, at))

    PLAN_COLUMNS = ("plan_id, party, kind, apis, quantity, start, end_at, price, refunded, "
                    "(SELECT COALESCE(SUM(units), 0) FROM plan_used u WHERE u.plan_id = plans.plan_id)")
    """A plan's row and its use so far (the sum of its months in ``plan_used``: no total row to rewrite)."""

    def plans_of(self, parties: Sequence[int]) -> list[tuple[Any, ...]]:
        return self.db.execute(f"SELECT {self.PLAN_COLUMNS} FROM plans WHERE party IN "
                               "(SELECT value FROM json_each(?)) ORDER BY party, rowid", (_ints(parties),)).fetchall()

    def plan(self, plan_id: str) -> tuple[Any, ...] | None:
        return self.db.execute(f"SELECT {self.PLAN_COLUMNS} FROM plans WHERE plan_id = ?", (plan_id,)).fetchone()

    def add_plan(self, plan_id: str, party: int, kind: str, apis: str, quantity: int, start: int, end: int,
                 price: int | None, refunded: int | None) -> None:
        self.db.execute(
            "INSERT INTO plans(plan_id, party, kind, apis, quantity, start, end_at, price, refunded) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (plan_id, party, kind, apis, quantity, start, end, price, refunded),
        )

    def set_refund(self, plan_id: str, at: int) -> None:
        self.db.execute("UPDATE plans SET refunded = ? WHERE plan_id = ?", (at, plan_id))

    def add_plan_use(self, rows: Sequence[tuple[str, int, int]]) -> None:
        """(plan id, period, units) deltas of each plan's use per month."""
        self.db.executemany("INSERT INTO plan_used VALUES (?, ?, ?) ON CONFLICT(plan_id, period) DO UPDATE "
                            "SET units = units + excluded.units", rows)

    def plan_use(self, plan_ids: Sequence[str]) -> list[tuple[str, int, int]]:
        out: list[tuple[str, int, int]] = []
        ids = list(plan_ids)
        for k in range(0, len(ids), CHUNK):
            chunk = ids[k : k + CHUNK]
            out += self.db.execute(f"SELECT plan_id, period, units FROM plan_used WHERE plan_id IN "
                                   f"({','.join('?' * len(chunk))})", chunk).fetchall()
        return out

    def addons(self, parties: Sequence[int]) -> list[tuple[int, str, int, int, int]]:
        return self.db.execute("SELECT party, api, qps, start, end_at FROM qps_addons WHERE party IN "
                               "(SELECT value FROM json_each(?)) ORDER BY addon", (_ints(parties),)).fetchall()

    def add_addon(self, party: int, api: str, qps: int, start: int, end: int) -> None:
        self.db.execute("INSERT INTO qps_addons(party, api, qps, start, end_at) VALUES (?, ?, ?, ?, ?)",
                        (party, api, qps, start, end))

    def alerts(self, parties: Sequence[int]) -> list[tuple[int, str, str | None, str]]:
        return self.db.execute("SELECT party, kind, target, threshold FROM alerts WHERE party IN "
                               "(SELECT value FROM json_each(?)) ORDER BY alert", (_ints(parties),)).fetchall()

    def add_alert(self, party: int, kind: str, target: str | None, threshold: str) -> None:
        self.db.execute("INSERT INTO alerts(party, kind, target, threshold) VALUES (?, ?, ?, ?)",
                        (party, kind, target, threshold))

    def credentials(self, keys: Sequence[str]) -> list[tuple[str, str, str, int | None, int | None]]:
        out: list[tuple[str, str, str, int | None, int | None]] = []
        keys = list(keys)
        for k in range(0, len(keys), CHUNK):
            chunk = keys[k : k + CHUNK]
            out += self.db.execute(
                "SELECT c.key, p.account, p.channel, c.valid_from, c.valid_until FROM credentials c "
                f"JOIN parties p ON p.party = c.party WHERE c.key IN ({','.join('?' * len(chunk))}) "
                "ORDER BY c.credential", chunk).fetchall()
        return out

    def add_credential(self, key: str, party: int, valid_from: int | None, valid_until: int | None) -> None:
        self.db.execute("INSERT INTO credentials(key, party, valid_from, valid_until) VALUES (?, ?, ?, ?)",
                        (key, party, valid_from, valid_until))

    # -------------------------------------------------------------- counters
    def counters(self, parties: Sequence[int], period: int, pairs: Sequence[tuple[int, str]] | None = None
                 ) -> CounterRows:
        """The counter rows of ``period`` (on time and late): of every API of ``parties``, or of the
        (party, api) ``pairs`` only when they are given."""
        if pairs is not None:
            rows = self.db.execute(  # the pairs first, then an index search for each (CROSS JOIN keeps that order)
                "SELECT c.party, c.period, c.api, c.target, c.counts FROM (SELECT value ->> 0 AS p, value ->> 1 AS a "
                "FROM json_each(?)) j CROSS JOIN counters c ON c.party = j.p AND c.period = ? AND c.api = j.a",
                (json.dumps([[int(p), a] for p, a in pairs]), period))
        else:
            rows = self.db.execute("SELECT party, period, api, target, counts FROM counters WHERE party IN "
                                   "(SELECT value FROM json_each(?)) AND period = ?", (_ints(parties), period))
        return CounterRows.read(rows.fetchall())

    def counters_upto(self, parties: Sequence[int], period: int, apis: Sequence[str]) -> list[tuple[int, int, str, int, list[int]]]:
        """(party, period, api, target, counts) of ``apis`` in months up to ``period`` (the verification pool's history)."""
        if not apis:
            return []
        q = (f"SELECT party, period, api, target, counts FROM counters WHERE party IN (SELECT value FROM json_each(?)) "
             f"AND period <= ? AND api IN ({','.join('?' * len(apis))})")
        return [(int(p), int(m), a, int(t), unpack(c))
                for p, m, a, t, c in self.db.execute(q, (_ints(parties), period, *apis))]

    def party_counters(self, party: int) -> list[tuple[int, str, int, list[int]]]:
        """Every (period, api, target, counts) of one party."""
        return [(int(m), a, int(t), unpack(c)) for m, a, t, c in self.db.execute(
            "SELECT period, api, target, counts FROM counters WHERE party = ?", (party,))]

    def put_counters(self, rows: CounterRows) -> None:
        """The rows' new totals."""
        # an upsert rewrites the counts in place: a replace would delete and re-insert the row and its index entries
        self.db.executemany("INSERT INTO counters VALUES (?, ?, ?, ?, ?) ON CONFLICT(party, period, api, target) "
                            "DO UPDATE SET counts = excluded.counts", zip(
            rows.party.tolist(), rows.period.tolist(), rows.api, rows.target.tolist(), rows.packed()))

    def parties_of_period(self, period: int) -> list[int]:
        """Parties with a counter of ``period`` or a late line whose bill is ``period``."""
        return [int(p) for (p,) in self.db.execute(
            "SELECT party FROM counters WHERE period = ? UNION SELECT party FROM counters WHERE target = ? "
            "ORDER BY 1", (period, period))]

    def late_lines(self, parties: Sequence[int], target: int) -> list[tuple[int, int, str, int, list[int]]]:
        """Every counter row of the (party, period, api) lines that have a late row billed in ``target``."""
        q = ("SELECT c.party, c.period, c.api, c.target, c.counts FROM counters c JOIN "
             "(SELECT DISTINCT party, period, api FROM counters WHERE target = ? AND party IN "
             "(SELECT value FROM json_each(?))) l ON c.party = l.party AND c.period = l.period AND c.api = l.api")
        return [(int(p), int(m), a, int(t), unpack(c)) for p, m, a, t, c in self.db.execute(q, (target, _ints(parties)))]

    def open_periods_before(self, period: int) -> int | None:
        row = self.db.execute("SELECT MIN(period) FROM counters WHERE period < ? AND period NOT IN "
                              "(SELECT period FROM closed)", (period,)).fetchone()
        return None if row[0] is None else int(row[0])

    def pools(self, parties: Sequence[int]) -> dict[int, int]:
        return {int(p): int(u) for p, u in self.db.execute(
            "SELECT party, used FROM pools WHERE party IN (SELECT value FROM json_each(?))", (_ints(parties),))}

    def add_pools(self, rows: Sequence[tuple[int, int]]) -> None:
        self.db.executemany("INSERT INTO pools VALUES (?, ?) ON CONFLICT(party) DO UPDATE SET used = used + "
                            "excluded.used", rows)

    # --------------------------------------------------------------- records
    def seen(self, channel: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` a committed batch of ``channel`` holds (primary-key look-ups, no scan)."""
        found: set[str] = set()
        for k in range(0, len(ids), CHUNK):
            chunk = ids[k : k + CHUNK]
            q = f"SELECT record_id FROM records WHERE channel = ? AND record_id IN ({','.join('?' * len(chunk))})"
            found.update(r for (r,) in self.db.execute(q, [channel, *chunk]))
        return found

    def add_records(self, rows: Iterable[tuple[str, str, str]]) -> None:
        self.db.executemany("INSERT INTO records(channel, record_id, batch_id) VALUES (?, ?, ?)", rows)

    def record_batch(self, channel: str, record_id: str) -> str | None:
        row = self.db.execute("SELECT batch_id FROM records WHERE channel = ? AND record_id = ?",
                              (channel, record_id)).fetchone()
        return None if row is None else str(row[0])

    # --------------------------------------------------------------- batches
    def has_batch(self, batch_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM batches WHERE batch_id = ?", (batch_id,)).fetchone() is not None

    def next_batch_seq(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM batches").fetchone()[0])

    def add_batch(self, batch_id: str, seq: int, calls: int, duplicates: int, late: int, at: str) -> None:
        self.db.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)", (batch_id, seq, calls, duplicates, late, at))

    def batch_names(self, seqs: Sequence[int]) -> dict[int, str]:
        return {int(q): b for q, b in self.db.execute(
            "SELECT seq, batch_id FROM batches WHERE seq IN (SELECT value FROM json_each(?))", (_ints(seqs),))}

    def batch_ids(self) -> list[str]:
        return [b for (b,) in self.db.execute("SELECT batch_id FROM batches ORDER BY seq")]

    # ------------------------------------------------------------ usage rows
    def add_daily(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Call details per day (a migration's; new calls are in the deduction log)."""
        self.db.executemany(DAILY_UPSERT, rows)

    def daily(self, parties: Sequence[int] | None, *, api: str | None = None, since_day: str | None = None,
              until_day: str | None = None) -> list[tuple[Any, ...]]:
        """Call details per day that a migrated file brought (new calls are counted from the log), of days
        ``since_day`` <= day < ``until_day`` when given."""
        where, args = row_filters("?", _in_json, parties, (("api =", api), ("day >=", since_day), ("day <", until_day)))
        cols = "party, api, day, calls, failed, rejected, duplicates, free, dedicated, shared, payg"
        return self.db.execute(f"SELECT {cols} FROM daily{where}", args).fetchall()

    def add_seconds(self, rows: Iterable[tuple[int, str, int, int]]) -> None:
        """Calls per second (a migration's; new calls are in the deduction log)."""
        self.db.executemany("INSERT INTO qps_seconds VALUES (?, ?, ?, ?) ON CONFLICT(party, api, second) "
                            "DO UPDATE SET calls = calls + excluded.calls", rows)

    def seconds(self, parties: Sequence[int], start: int, end: int) -> list[tuple[int, str, int, int]]:
        """(party, api, second, calls) of every second in [start, end) with a call that is not a duplicate:
        counted from the deduction log, plus the rows a migrated file brought in ``qps_seconds``."""
        ids = _ints(parties)
        return self.db.execute(
            "SELECT party, api, second, SUM(calls) FROM ("
            "SELECT party, api, second, calls FROM qps_seconds WHERE party IN (SELECT value FROM json_each(?)) "
            "AND second >= ? AND second < ? UNION ALL "
            "SELECT party, api, ts / 1000 AS second, COUNT(*) AS calls FROM deductions WHERE party IN "
            "(SELECT value FROM json_each(?)) AND ts >= ? AND ts < ? AND status != 2 GROUP BY party, api, second"
            ") GROUP BY party, api, second", (ids, start, end, ids, start * 1000, end * 1000)).fetchall()

    def logged_calls(self, parties: Sequence[int] | None, *, api: str | None = None, plan: str | None = None,
                     since: int | None = None, until: int | None = None) -> list[tuple[int, str, int, int, int]]:
        """(party, api, ts, status, source) of the log rows (of ``parties``, ``api``, paid by ``plan``, at
        ``since`` <= ts < ``until``): call details per day are counted from them."""
        where, args = row_filters("?", _in_json, parties, (("api =", api), ("plan_id =", plan),
                                                                ("ts >=", since), ("ts <", until)))
        return self.db.execute(f"SELECT party, api, ts, status, source FROM deductions{where}", args).fetchall()

    def add_late_records(self, rows: Iterable[tuple[int, int, str, int, str]]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO late_records VALUES (?, ?, ?, ?, ?)", rows)

    def late_ids(self, party: int, period: int, api: str, target: int) -> list[str]:
        return [r for (r,) in self.db.execute(
            "SELECT record_id FROM late_records WHERE party = ? AND period = ? AND api = ? AND target = ? "
            "ORDER BY record_id", (party, period, api, target))]

    # ------------------------------------------------------------- deductions
    def add_deductions(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """(batch, party, api, record_id, ts, period, status, source, plan_id, tier, amount, plan_remaining)."""
        self.db.executemany("INSERT INTO deductions(batch, party, api, record_id, ts, period, status, source, plan_id, "
                            "tier, amount, plan_remaining) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    LOG_COLUMNS = ("seq", "batch", "party", "api", "record_id", "ts", "period", "status", "source", "plan_id", "tier",
                   "amount", "plan_remaining")

    def deductions(self, *, parties: Sequence[int] | None = None, api: str | None = None, plan: str | None = None,
                   record_id: str | None = None, since: int | None = None, until: int | None = None,
                   statuses: Sequence[int] | None = None, after: int = 0, limit: int = 100) -> list[tuple[Any, ...]]:
        """Log rows matching every filter given, in ``seq`` (commit) order from ``seq > after``.

        A record id is looked up through the records table: the rows of the batch that committed it
        (the batch index), not a scan of the log.
        """
        where, args = log_where("?", _in_json, parties=parties, api=api, plan=plan, record_id=record_id,
                                since=since, until=until, statuses=statuses, after=after)
        q = f"SELECT {', '.join(self.LOG_COLUMNS)} FROM deductions WHERE {where} ORDER BY seq LIMIT ?"
        return self.db.execute(q, (*args, limit)).fetchall()

    def prune(self, before: int) -> tuple[int, int, int]:
        """Delete log rows (and migrated daily rows and QPS seconds) of months before ``before`` (a period index)."""
        logs = self.db.execute("DELETE FROM deductions WHERE period < ?", (before,)).rowcount
        days = self.db.execute("DELETE FROM daily WHERE day < ?", (_period_day(before),)).rowcount
        secs = self.db.execute("DELETE FROM qps_seconds WHERE second < ?", (_period_second(before),)).rowcount
        return logs, days, secs

    # ---------------------------------------------------------------- closing
    def closed_periods(self) -> set[int]:
        return {int(p) for (p,) in self.db.execute("SELECT period FROM closed")}

    def add_closed(self, period: int, at: str, bills: Sequence[tuple[int, str]]) -> None:
        self.db.executemany("INSERT INTO closed_bills VALUES (?, ?, ?)", [(period, p, j) for p, j in bills])
        self.db.execute("INSERT INTO closed VALUES (?, ?)", (period, at))

    def closed_bills(self, period: int, parties: Sequence[int] | None) -> list[tuple[int, str]]:
        if parties is None:
            return self.db.execute("SELECT party, json FROM closed_bills WHERE period = ?", (period,)).fetchall()
        return self.db.execute("SELECT party, json FROM closed_bills WHERE period = ? AND party IN "
                               "(SELECT value FROM json_each(?))", (period, _ints(parties))).fetchall()

    # ----------------------------------------------------------------- alerts
    def add_alert_event(self, row: tuple[Any, ...]) -> bool:
        cur = self.db.execute(
            "INSERT OR IGNORE INTO alert_events(account, channel, kind, target, threshold, key, record_id, ts, "
            "message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        return bool(cur.rowcount)

    def alert_events(self, after: int = 0) -> list[tuple[Any, ...]]:
        return self.db.execute(
            "SELECT id, account, channel, kind, target, threshold, key, record_id, ts, message FROM alert_events "
            "WHERE delivered = 0 AND id > ? ORDER BY id", (after,)).fetchall()

    def ack_alerts(self, upto: int) -> int:
        return self.db.execute("UPDATE alert_events SET delivered = 1 WHERE id <= ? AND delivered = 0",
                               (upto,)).rowcount



def _period_day(period: int) -> str:
    """``YYYY-MM-01`` of a period index (months since 1970-01)."""
    return f"{1970 + period // 12:04d}-{period % 12 + 1:02d}-01"


def _period_second(period: int) -> int:
    """A lower bound in seconds of a period's first instant in any zone (UTC-14 .. UTC+14 are inside it)."""
    import calendar

    return calendar.timegm((1970 + period // 12, period % 12 + 1, 1, 0, 0, 0)) - 14 * 3600
