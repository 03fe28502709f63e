"""``rate()``: validate -> encode -> kernel -> volume pricing -> usage -> bills, for a whole set of calls."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..codes import Source
from ..errors import MoneyError, StateError
from ..io.calls import read_calls, texts
from ..kernel import select as _kernel
from ..kernel.contract import KernelState, KernelTables, Outcomes
from ..model.accounts import Accounts, Plan, load_accounts
from ..model.bills import Bill
from ..model.catalog import VOLUME, Catalog, load_catalog
from ..model.clock import N_PERIODS, parse_period, period_label
from .billing import make_bills, volume_tier
from .encode import Encoded, encode, party_list
from .qps import qps_lines, second_counts
from .tables import build_tables
from .usage import summarize


@dataclass(frozen=True)
class RatingResult:
    """Bills and the per-call outcomes (columns in charge order: (ts, record_id))."""

    bills: list[Bill]
    calls: dict[str, np.ndarray]
    """record_id, account, channel, api (codes); ts (epoch ms), period ("YYYY-MM"); status and
    source (int8 codes of ``ocrledger.codes``); plan (plan id, "" if none); tier (0-based, -1
    if not PAYG); amount (exact micro-units, int64)."""
    kernel: str

    def bill(self, account: str, period: str, channel: str = "official") -> Bill:
        for b in self.bills:
            if b.key == (account, channel, period):
                return b
        raise KeyError((account, channel, period))


def as_catalog(catalog: Catalog | str | Path | None) -> Catalog:
    return catalog if isinstance(catalog, Catalog) else load_catalog(catalog)


def as_accounts(accounts: Accounts | str | Path | None, catalog: Catalog) -> Accounts:
    return accounts if isinstance(accounts, Accounts) else load_accounts(accounts, catalog)


def rate(
    calls: Any,
    catalog: Catalog | str | Path | None = None,
    accounts: Accounts | str | Path | None = None,
    *,
    month: str | None = None,
    kernel: str | ModuleType | None = None,
) -> RatingResult:
    """Rate a set of call records from scratch and bill every account, channel and month in it.

    ``calls`` is a CSV or Parquet path, a pandas DataFrame, a pyarrow Table or a dict of columns
    (record_id, account, api, ts, success, optional channel). ``month`` ("YYYY-MM") keeps only
    that month's bills; every call is still rated, since plans and the verification pool span
    months. Raises an ``OcrledgerError`` subclass naming the file, row and field on bad input;
    nothing is rated then.
    """
    cat = as_catalog(catalog)
    acc = as_accounts(accounts, cat)
    wanted = parse_period(month) if month is not None else None
    impl = kernel if isinstance(kernel, ModuleType) else _kernel.get(kernel)
    table = read_calls(calls, cat)
    parties = party_list(acc.parties(), table)
    tables, plans = build_tables(cat, acc, parties)
    state = KernelState.fresh(tables, np.array([p.quantity for p in plans], dtype=np.int64))
    enc = encode(table, parties, cat.clock)
    try:
        out = _kernel.run(impl, tables, state, enc.batch)
    except (MoneyError, StateError) as exc:
        i = int(enc.order[exc.call_index])  # type: ignore[attr-defined]
        raise _kernel.name_call(exc, str(table.record_id[i]), table.source, table.row(i)) from None
    price_volume(cat, tables, enc, out)
    qps = qps_lines(cat, acc, parties, *second_counts(enc.batch, out, tables.n_api))
    bills = make_bills(summarize(tables, enc.batch, out), cat, parties, plans, qps)
    if wanted is not None:
        bills = [b for b in bills if b.period == period_label(wanted)]
    return RatingResult(bills, outcome_columns(cat, table.record_id, enc, out, plans), impl.IMPLEMENTATION)


def price_volume(catalog: Catalog, tables: KernelTables, enc: Encoded, out: Outcomes) -> None:
    """Reprice PAYG calls of volume-tier APIs at the tier their month total reaches.

    The kernel prices every PAYG call by its position; for volume tiers the month total decides,
    which is known only once the month is rated. Graduated APIs are left untouched.
    """
    volume = np.array([a.tier_mode == VOLUME for a in catalog.apis], dtype=bool)
    if not volume.any():
        return
    batch = enc.batch
    mask = (out.source == Source.PAYG) & volume[batch.api]
    if not mask.any():
        return
    key = (batch.party[mask].astype(np.int64) * N_PERIODS + batch.period[mask]) * tables.n_api + batch.api[mask]
    uniques, inverse, totals = np.unique(key, return_inverse=True, return_counts=True)
    tier = np.empty(len(uniques), dtype=np.int16)
    price = np.empty(len(uniques), dtype=np.int64)
    for k, (line, total) in enumerate(zip(uniques.tolist(), totals.tolist())):
        api = catalog.apis[line % tables.n_api]
        tier[k] = volume_tier(api, total)
        price[k] = api.tiers[tier[k]].price
    out.tier[mask] = tier[inverse.reshape(-1)]
    out.amount[mask] = price[inverse.reshape(-1)]


@lru_cache(maxsize=1)
def _period_labels() -> np.ndarray:
    """``"YYYY-MM"`` of every period index, built once."""
    return np.array([period_label(p) for p in range(N_PERIODS)], dtype=str)


def outcome_columns(
    catalog: Catalog, record_id: np.ndarray, enc: Encoded, out: Outcomes, plans: list[Plan]
) -> dict[str, np.ndarray]:
    """Per-call outcome columns in charge order, with names instead of indices.

    Ids (record_id, account, channel, plan) are object arrays of the exact strings: a fixed-width
    copy would drop trailing NULs and give every cell the longest id's width."""
    batch = enc.batch
    party_account = texts([a for a, _ in enc.parties] or [""])
    party_channel = texts([c for _, c in enc.parties] or [""])
    codes = np.array([a.code for a in catalog.apis], dtype=str)
    plan_ids = texts([p.id for p in plans] + [""])  # index -1 -> ""
    labels = _period_labels()
    return {
        "record_id": record_id[enc.order],
        "account": party_account[batch.party],
        "channel": party_channel[batch.party],
        "api": codes[batch.api],
        "ts": batch.ts,
        "period": labels[batch.period],
        "status": out.status,
        "source": out.source,
        "plan": plan_ids[out.plan],
        "tier": out.tier,
        "amount": out.amount,
    }
