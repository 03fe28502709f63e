"""Small builders for tests: catalogs and accounts in code, call columns from tuples, instants from text."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ocrledger.engine.tables import SetupTables
from ocrledger.model.accounts import Accounts, parse_accounts
from ocrledger.model.catalog import Catalog, default_catalog, parse_catalog
from ocrledger.model.clock import BillingClock

CATALOG = default_catalog()
SH = BillingClock.for_zone("Asia/Shanghai")
OCT = "2026-10-01T00:00:00+08:00"
ACTIVE = "2026-01-01T00:00:00+08:00"


def ms(text: str, clock: BillingClock = SH) -> int:
    """An ISO 8601 instant as epoch ms."""
    return clock.instant(text, what="test instant")


def catalog(apis: list[dict[str, Any]] | None = None, **top: Any) -> Catalog:
    """A catalog from [[api]] tables (default: one API 'A', free 200, tiers 10k/100k/open)."""
    if apis is None:
        apis = [api("A")]
    return parse_catalog({"api": apis, **top}, source="<test catalog>")


def api(code: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "code": code,
        "tiers": [{"upto": 10000, "price": "0.0825"}, {"upto": 100000, "price": "0.0495"}, {"price": "0.0415"}],
    }
    base.update(fields)
    return base


def accounts(cat: Catalog, **tables: Any) -> Accounts:
    return parse_accounts(tables, cat, source="<test accounts>")


def official(account: str, *apis: str, at: str = ACTIVE) -> dict[str, Any]:
    return {"id": account, "channel": "official", "activated": {a: at for a in apis}}


def overflow_setup() -> tuple[Catalog, Accounts]:
    """One API "A" at CNY 5,000,000,000,000 a call and an official account "u" on it: 5e18 micro-units,
    so one call fits int64 and a second call's PAYG spend (1e19) would pass INT64_MAX."""
    cat = catalog([api("A", free_monthly=0, tiers=[{"price": "5000000000000"}])])
    return cat, accounts(cat, account=[official("u", "A")])


def calls(rows: Iterable[tuple[Any, ...]]) -> dict[str, np.ndarray]:
    """Columns from (record_id, account, api, ts, success[, channel]) tuples; ts as ms or ISO text."""
    rows = list(rows)
    cols: dict[str, list[Any]] = {"record_id": [], "account": [], "api": [], "ts": [], "success": [], "channel": []}
    for row in rows:
        rid, acc, code, ts, ok, *rest = row
        cols["record_id"].append(rid)
        cols["account"].append(acc)
        cols["api"].append(code)
        cols["ts"].append(ms(ts) if isinstance(ts, str) else int(ts))
        cols["success"].append(int(ok))
        cols["channel"].append(rest[0] if rest else "official")
    return {
        "record_id": np.array(cols["record_id"], dtype=str),
        "account": np.array(cols["account"], dtype=str),
        "api": np.array(cols["api"], dtype=str),
        "ts": np.array(cols["ts"], dtype=np.int64),
        "success": np.array(cols["success"], dtype=np.int8),
        "channel": np.array(cols["channel"], dtype=str),
    }


def repeat(n: int, account: str, code: str, start: str, *, prefix: str = "r", step_ms: int = 1000,
           channel: str = "official", success: int = 1) -> list[tuple[Any, ...]]:
    """n successful calls one step apart from ``start``."""
    t0 = ms(start)
    return [(f"{prefix}{i:07d}", account, code, t0 + i * step_ms, success, channel) for i in range(n)]


def kernel_tables(catalog: Catalog, accounts: Accounts, parties: Sequence[tuple[str, str]]):  # type: ignore[no-untyped-def]
    """Kernel tables of ``parties`` from a setup compiled for this one call, and their plan columns."""
    tables, plans = SetupTables(catalog, accounts).tables(parties)
    return tables, plans.columns


def build_tables(catalog: Catalog, accounts: Accounts, parties: Sequence[tuple[str, str]]):  # type: ignore[no-untyped-def]
    """``kernel_tables`` with the plans as ``Plan`` objects in kernel index order."""
    tables, plans = SetupTables(catalog, accounts).tables(parties)
    return tables, plans.objects()
