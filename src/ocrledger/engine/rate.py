"""The Engine (a setup compiled once) and ``rate()``: validate -> encode -> kernel -> volume pricing -> usage -> bills."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

import numpy as np

from ..codes import Source
from ..errors import MoneyError, StateError
from ..io.account_tables import load_accounts
from ..io.calls import CHANNEL_TEXTS, read_calls, texts
from ..kernel import select as _kernel
from ..kernel.contract import Batch, KernelState, KernelTables, Outcomes
from ..model.accounts import Accounts
from ..model.bill_tables import bills_to_arrow, bills_to_pandas
from ..model.bills import Bill
from ..model.catalog import VOLUME, Catalog, load_catalog
from ..model.clock import N_PERIODS, parse_period, period_label
from .bill_columns import bill_columns
from .billing import BillSet
from .encode import BatchParties, Encoded, encode
from .outcomes import calls_table
from .pricing import VolumePrices
from .qps import addon_index, qps_arrays, second_counts
from .tables import PlanSlice, SetupTables
from .usage import UsageCounts


class RatingResult:
    """Bills and the per-call outcomes (columns in charge order: (ts, record_id)).

    ``bill_set``, ``bills`` and ``calls`` are made on first access (once each): a caller that needs only
    the bills never pays for naming every call, one that needs only the per-call outcomes, as a billing
    backend rating small batches often does, never pays for ``Bill`` objects, and bills.json is written
    from the bill columns (``render(result.bill_set, "json")``) without them.
    """

    def __init__(self, bill_set: BillSet | Callable[[], BillSet],
                 calls: dict[str, np.ndarray] | Callable[[], dict[str, np.ndarray]], kernel: str) -> None:
        self._bill_set = bill_set
        self._bills: list[Bill] | None = None
        self._calls = calls
        self.kernel = kernel
        """The kernel that rated the calls ('cython' or 'reference')."""

    @property
    def calls(self) -> dict[str, np.ndarray]:
        """numpy columns: record_id, account, channel, api (API codes as text); ts (epoch ms), period
        ("YYYY-MM"); status and source (int8 codes: ``ocrledger.Status``/``Source``, whose
        ``name.lower()`` is the word calls.parquet holds; ``calls_table()`` gives the words); plan (plan
        id, "" if none); tier (0-based, -1 if not PAYG); amount (exact micro-units, int64)."""
        if callable(self._calls):
            self._calls = self._calls()
        return self._calls

    @property
    def bill_set(self) -> BillSet:
        """The bills as columns with their names, what bills.json is written from (``bills.files``)."""
        if callable(self._bill_set):
            self._bill_set = self._bill_set()
        return self._bill_set

    @property
    def bills(self) -> list[Bill]:
        """One bill per account, channel and month with a record, sorted by account, channel, period."""
        if self._bills is None:
            self._bills = self.bill_set.bills()
        return self._bills

    def calls_table(self) -> Any:
        """``calls`` as a pyarrow Table with calls.parquet's schema and words: status "charged", source
        "payg" (null if nothing paid), plan null if none, tier null if not PAYG (``outcomes.calls_table``)."""
        return calls_table(self.calls)

    def bills_table(self, *, lines: bool = True) -> Any:
        """The bills as a pyarrow Table with decimal128 money (``bill_tables.bills_to_arrow``): one row per
        bill line, or with ``lines=False`` one row per bill, nested as its JSON."""
        return bills_to_arrow(self.bills, lines=lines)

    def bills_frame(self, *, lines: bool = True) -> Any:
        """``bills_table`` as a pandas DataFrame with Arrow-backed columns (money stays decimal128)."""
        return bills_to_pandas(self.bills, lines=lines)

    def bill(self, account: str, period: str, channel: str = "official") -> Bill:
        """The bill of ``account`` on ``channel`` for ``period`` ("YYYY-MM"); ``KeyError`` if it has none."""
        for b in self.bills:
            if b.key == (account, channel, period):
                return b
        raise KeyError((account, channel, period))


def as_catalog(catalog: Catalog | str | Path | None) -> Catalog:
    return catalog if isinstance(catalog, Catalog) else load_catalog(catalog)


def as_accounts(accounts: Accounts | str | Path | None, catalog: Catalog) -> Accounts:
    return accounts if isinstance(accounts, Accounts) else load_accounts(accounts, catalog)


class Engine:
    """A setup (catalog and accounts) compiled once; ``rate(calls)`` then costs what the batch touches.

    Compiled: the kernel tables of every listed party and plan (``SetupTables``), the index from
    (account, channel) to party, the plans in expire-first order and the QPS add-ons by party. A
    batch gets tables sliced for its own parties only, and bills for the parties and months it
    holds. Build one per setup and reuse it; it is not changed by rating.
    """

    def __init__(
        self,
        catalog: Catalog | str | Path | None = None,
        accounts: Accounts | str | Path | None = None,
        *,
        kernel: str | ModuleType | None = None,
    ) -> None:
        self.catalog = as_catalog(catalog)
        self.accounts = as_accounts(accounts, self.catalog)
        self.kernel = kernel if isinstance(kernel, ModuleType) else _kernel.get(kernel)
        self.setup = SetupTables(self.catalog, self.accounts)
        self.addons = addon_index(self.catalog, self.accounts)
        self.volume = any(a.tier_mode == VOLUME for a in self.catalog.apis)

    def rate(self, calls: Any, *, month: str | None = None) -> RatingResult:
        """Rate a set of call records from scratch and bill every account, channel and month in it.

        ``calls`` (record_id, account, api, ts, success, optional channel) is a CSV or Parquet file, a
        folder of Parquet files, a dict of columns, a list of records (dicts), a pandas or polars
        DataFrame or LazyFrame, a DuckDB relation, a pyarrow Table, RecordBatch or RecordBatchReader, or
        anything with ``__arrow_c_stream__``/``__arrow_c_array__`` (the Arrow PyCapsule interface): each
        is converted to Arrow once and checked by the one validator (``io.calls.read_calls``). ``month`` ("YYYY-MM") keeps only
        that month's bills; every call is still rated, since plans and the verification pool span
        months. Raises an ``OcrledgerError`` subclass naming the file, row and field on bad input;
        nothing is rated then.
        """
        cat, impl = self.catalog, self.kernel
        wanted = parse_period(month) if month is not None else None
        table = read_calls(calls, cat)
        enc = encode(table, None, cat.clock, listed=self.setup.finder)
        try:
            tables, plans, out = self.run(enc.batch, enc.parties, enc.listed_at)
        except (MoneyError, StateError) as exc:
            i = int(enc.order[exc.call_index])  # type: ignore[attr-defined]
            raise _kernel.name_call(exc, table.rid[i].as_py(), table.file(i), table.row(i)) from None
        usage = None
        if self.volume:  # volume tiers are priced by the month's totals: counted now, kept for the bills
            usage = UsageCounts(tables)
            usage.add(enc.batch, out)
            price_volume(cat, usage, enc.batch, out)
        return RatingResult(lambda: self.bill_set(enc.parties, tables, plans, enc.batch, out, wanted, usage),
                            lambda: outcome_columns(cat, table.rid, enc, out, plans.ids_of(out.plan)),
                            impl.IMPLEMENTATION)

    def run(self, batch: Batch, parties: Sequence[tuple[str, str]], listed_at: np.ndarray | None = None
            ) -> tuple[KernelTables, PlanSlice, Outcomes]:
        """Rate an encoded batch from scratch, with tables for its ``parties`` only: the tables, the plans, the outcomes.

        A kernel error (``MoneyError``/``StateError``) is raised with the batch position in ``call_index``.
        """
        tables, plans = self.setup.tables(parties, listed_at)
        out = _kernel.run(self.kernel, tables, KernelState.fresh(tables, plans.quantity), batch, restore=False)
        return tables, plans, out

    def bill_set(self, parties: Sequence[tuple[str, str]], tables: KernelTables, plans: PlanSlice, batch: Batch,
                 out: Outcomes, wanted: int | None = None, usage: UsageCounts | None = None) -> BillSet:
        """The bills of a rated batch (every party and month in it, or only month ``wanted``) as columns."""
        qps = qps_arrays(self.catalog, self.addons, parties, *second_counts(batch, out, tables.n_api))
        if usage is None:
            usage = UsageCounts(tables)
            usage.add(batch, out)
        cols = bill_columns(usage.line_arrays(), usage.plan_used, self.catalog, parties, plans.columns, qps, tables,
                            wanted)
        return BillSet(cols, self.catalog, parties, plans.columns)

    def bills(self, parties: Sequence[tuple[str, str]], tables: KernelTables, plans: PlanSlice, batch: Batch,
              out: Outcomes, wanted: int | None = None, usage: UsageCounts | None = None) -> list[Bill]:
        """The bills of a rated batch (every party and month in it, or only month ``wanted``): ``bill_set(...).bills()``."""
        return self.bill_set(parties, tables, plans, batch, out, wanted, usage).bills()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its setup and kernel name, compiled again where it is unpickled (a Dask worker)."""
        return (Engine, (self.catalog, self.accounts), {"kernel": self.kernel.IMPLEMENTATION})

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.kernel = _kernel.get(state["kernel"])


def rate(
    calls: Any,
    catalog: Catalog | str | Path | None = None,
    accounts: Accounts | str | Path | None = None,
    *,
    month: str | None = None,
    kernel: str | ModuleType | None = None,
) -> RatingResult:
    """``Engine(catalog, accounts, kernel=kernel).rate(calls, month=month)``: see ``Engine.rate``."""
    return Engine(catalog, accounts, kernel=kernel).rate(calls, month=month)


def price_volume(catalog: Catalog, usage: UsageCounts, batch: Batch, out: Outcomes) -> None:
    """Reprice the PAYG calls of volume-tier APIs at the tier their month total reaches (``VolumePrices``)."""
    prices = VolumePrices.of_lines(catalog, usage.line_arrays())
    prices.apply(prices.line_keys(batch.party, batch.period, batch.api), out.source == Source.PAYG, out.tier, out.amount)


@lru_cache(maxsize=1)
def _period_labels() -> np.ndarray:
    """``"YYYY-MM"`` of every period index, built once."""
    return np.array([period_label(p) for p in range(N_PERIODS)], dtype=str)


def outcome_columns(
    catalog: Catalog, record_id: Any, enc: Encoded, out: Outcomes, plan: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-call outcome columns in charge order, with names instead of indices.

    ``record_id`` is in input order (an Arrow string array or an object array of ``str``); ``plan``
    holds the plan id of each call ("" for none). Ids (record_id, account, channel, plan) are
    object arrays of the exact strings: a fixed-width copy would drop trailing NULs and give every
    cell the longest id's width.
    """
    batch = enc.batch
    parties = enc.parties
    if isinstance(parties, BatchParties):
        party_account, party_channel = parties.account_ids, CHANNEL_TEXTS[parties.market]
    else:
        party_account = texts([a for a, _ in parties] or [""])
        party_channel = texts([c for _, c in parties] or [""])
    codes = np.array([a.code for a in catalog.apis], dtype=str)
    labels = _period_labels()
    return {
        "record_id": _take_text(record_id, enc.order),
        "account": party_account[batch.party],
        "channel": party_channel[batch.party],
        "api": codes[batch.api],
        "ts": batch.ts,
        "period": labels[batch.period],
        "status": out.status,
        "source": out.source,
        "plan": plan,
        "tier": out.tier,
        "amount": out.amount,
    }


def _take_text(values: Any, order: np.ndarray) -> np.ndarray:
    """``values[order]`` as an object array of ``str`` (``values``: an Arrow string array or an object array)."""
    if isinstance(values, np.ndarray):
        return values[order]
    import pyarrow as pa

    return values.take(pa.array(order)).to_numpy(zero_copy_only=False).astype(object, copy=False)
