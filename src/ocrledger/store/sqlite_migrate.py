"""Migrating older SQLite ledgers: schema 1 (accounts as one JSON value, usage keyed by account text) and schema 2
(counters as JSON text) to schema 3 (counters as packed int64)."""
from __future__ import annotations

import json
from typing import Any

from ..model.accounts import parse_accounts
from ..model.catalog import parse_catalog
from ..engine.usage import FREE
from .rows import CounterRows, write_accounts
from .sqlite_sql import SCHEMA, SCHEMA_VERSION, SqliteStore, statements

RENAMED = ("lines", "daily", "qps_seconds", "closed_bills", "late_records")
"""Schema-1 tables whose shape changed: read under a ``v1_`` name, then dropped."""
KEPT = ("meta", "batches", "records", "plan_used", "closed", "alert_events")
"""Schema-1 tables kept as they are (the same columns in schema 2)."""


def migrate_v1(store: SqliteStore) -> None:
    """Rewrite a schema-1 file as the current schema inside the caller's write transaction (all or nothing).

    The accounts JSON becomes rows (accounts, activations, plans in file order with their use so far,
    add-ons, alerts, credentials); every (account, channel) seen only in calls becomes an unlisted
    party; usage lines become counters and the verification pool a row per party. The deduction log
    starts empty: schema 1 kept no per-call rows.
    """
    db = store.db
    source = f"{store.path}:accounts"
    catalog = parse_catalog(json.loads(store.meta("catalog") or "{}"), source=f"{store.path}:catalog")
    accounts = parse_accounts(json.loads(store.meta("accounts") or "{}"), catalog, source=source)
    for name in RENAMED:
        db.execute(f"ALTER TABLE {name} RENAME TO v1_{name}")
    for s in statements():
        words = s.split()
        if words[1] == "TABLE" and words[2].split("(")[0] in KEPT:
            continue
        db.execute(s.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS").replace(
            "CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))
    write_accounts(store, accounts)
    party = {(a, c): int(p) for p, a, c in db.execute("SELECT party, account, channel FROM parties")}
    seen: set[tuple[str, str]] = set()
    for table in RENAMED:
        seen.update(db.execute(f"SELECT DISTINCT account, channel FROM v1_{table}").fetchall())
    for a, c in sorted(seen - set(party)):
        party[(a, c)] = store.add_party(a, c, False)
    verification = {a.code for a in catalog.apis if a.kind == "verification"}
    counters: list[tuple[int, int, str, int, list[int]]] = []
    pools: dict[int, int] = {}
    for a, c, p, api, t, counts in db.execute("SELECT account, channel, period, api, target, counts FROM v1_lines"):
        values: list[Any] = json.loads(counts)
        counters.append((party[(a, c)], int(p), api, int(t), values))
        if api in verification:
            pools[party[(a, c)]] = pools.get(party[(a, c)], 0) + int(values[FREE])
    store.put_counters(CounterRows.of(counters))
    store.add_pools(sorted(pools.items()))
    store.add_daily([(party[(r[0], r[1])], *r[2:]) for r in db.execute(
        "SELECT account, channel, api, day, calls, failed, rejected, duplicates, free, dedicated, shared, payg "
        "FROM v1_daily")])
    store.add_seconds([(party[(a, c)], api, s, k) for a, c, api, s, k in db.execute(
        "SELECT account, channel, api, second, calls FROM v1_qps_seconds")])
    db.executemany("INSERT INTO closed_bills VALUES (?, ?, ?)", [(p, party[(a, c)], j) for a, c, p, j in db.execute(
        "SELECT account, channel, period, json FROM v1_closed_bills")])
    store.add_late_records([(party[(a, c)], p, api, t, r) for a, c, p, api, t, r in db.execute(
        "SELECT account, channel, period, api, target, record_id FROM v1_late_records")])
    for name in RENAMED:
        db.execute(f"DROP TABLE v1_{name}")
    db.execute("DELETE FROM meta WHERE key IN ('accounts', 'generation')")
    store.set_meta("schema", SCHEMA_VERSION)
    store.set_meta("migrated_from", "1")


def migrate_v2(store: SqliteStore) -> None:
    """Rewrite a schema-2 file as schema 3 inside the caller's write transaction: each counter row's JSON list
    of counts becomes its packed int64 BLOB (the values unchanged); every other table is as it was."""
    db = store.db
    rows = [(int(p), int(m), a, int(t), json.loads(c))
            for p, m, a, t, c in db.execute("SELECT party, period, api, target, counts FROM counters")]
    db.execute("DROP TABLE counters")  # its indexes go with it
    for s in statements(SCHEMA):
        if s.startswith("CREATE TABLE counters(") or " ON counters(" in s:
            db.execute(s)
    store.put_counters(CounterRows.of(rows))
    store.set_meta("schema", SCHEMA_VERSION)
    store.set_meta("migrated_from", "2")
