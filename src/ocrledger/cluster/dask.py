"""The rerate on a Dask cluster: partition calls by account and rate each partition with the same kernel.

Accounts never share counters, so rating each account's calls on their own in ``(ts, record_id)``
order gives exactly the single-pass result. The one rule that crosses accounts is the duplicate
rule (a record id is unique per channel, whatever the account), so duplicates are settled first:

1. every partition is validated and encoded (``rerate.validate_chunk``; later months than
   ``month`` are dropped);
2. shuffle on ``record_id``: all copies of a record id meet in one partition, where all but the
   first in charge order are flagged (``engine.order.duplicates``, the rule of every pass: ties go
   to the smallest account, then API, then failed first);
3. shuffle on ``account``: each partition holds whole accounts (both channels); it puts them in
   charge order (``engine.order.charge_order``), builds kernel tables for just its accounts and
   plans, rates, and makes their bills;
4. the bills are gathered and sorted by account, channel, period.

The bills are byte-identical (as JSON) to those of ``ocrledger.rerate.rerate`` and ``rate``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..engine import order as ordering
from ..engine.encode import batch_parties
from ..engine.rate import Engine
from ..io.arrow_calls import validate_chunk
from ..kernel import select as _kernel
from ..kernel.contract import Batch
from ..model.accounts import CHANNELS, OFFICIAL, Accounts
from ..model.bills import Bill
from ..model.catalog import Catalog
from ..model.clock import parse_period

_COLUMNS = ("rid", "account", "channel", "api", "ts", "ok")


def rerate(
    ddf: Any,
    catalog: Catalog,
    accounts: Accounts,
    *,
    month: str | None = None,
    kernel: str | None = None,
    npartitions: int | None = None,
) -> list[Bill]:
    """Rerate the calls of a Dask DataFrame on the current Dask scheduler (e.g. a distributed Client).

    ``ddf`` has the columns of a calls file (record_id, account, api, ts, success, optional
    channel). ``month`` keeps only that month's bills (earlier calls are still rated).
    ``npartitions`` sets the partitions of both shuffles (default: those of ``ddf``). ``kernel``
    is a kernel name ('cython', 'reference'), resolved on the workers.
    Returns the bills sorted by account, channel, period.
    """
    import dask
    import pandas as pd

    wanted = parse_period(month) if month is not None else None
    cut = int(catalog.clock.month_starts[wanted + 1]) if wanted is not None else catalog.clock.max_ms
    _kernel.get(kernel)  # fail early on a bad name
    n = npartitions or ddf.npartitions
    meta = pd.DataFrame({
        "rid": pd.Series([], dtype=object), "account": pd.Series([], dtype=object),
        "channel": pd.Series([], dtype=np.int8), "api": pd.Series([], dtype=np.int16),
        "ts": pd.Series([], dtype=np.int64), "ok": pd.Series([], dtype=np.int8),
    })
    norm = ddf.map_partitions(_normalize, catalog, cut, meta=meta)
    meta_dup = meta.assign(dup=pd.Series([], dtype=np.int8))
    marked = norm.shuffle(on="rid", npartitions=n).map_partitions(_mark_duplicates, meta=meta_dup)
    by_account = marked.shuffle(on="account", npartitions=n)
    engine = dask.delayed(Engine(catalog, accounts, kernel=kernel), pure=True)  # compiled again on each worker
    tasks = [dask.delayed(_rate_partition)(part, engine, wanted) for part in by_account.to_delayed()]
    results = dask.compute(*tasks)
    return sorted((b for part in results for b in part), key=lambda b: b.key)


def _normalize(df: Any, catalog: Catalog, cut: int, partition_info: Mapping[str, Any] | None = None) -> Any:
    import pandas as pd
    import pyarrow as pa

    number = partition_info.get("number") if partition_info else None
    name = f"<dask partition {number}>" if number is not None else "<dask partition>"
    table = pa.Table.from_pandas(df, preserve_index=False)
    c = validate_chunk(table, catalog, name, 1)
    keep = c.ts < cut
    names = c.accounts.to_pylist()
    accounts = np.array(names, dtype=object)[c.account] if names else np.empty(len(c.ts), object)
    out = pd.DataFrame({
        "rid": np.asarray(c.rid.to_numpy(zero_copy_only=False), dtype=object),
        "account": accounts,
        "channel": c.channel.astype(np.int8),
        "api": c.api.astype(np.int16),
        "ts": c.ts.astype(np.int64),
        "ok": c.ok.astype(np.int8),
    })
    return out[keep].reset_index(drop=True) if not keep.all() else out


def _keys(df: Any) -> tuple[np.ndarray, list[tuple[str, str]], np.ndarray, np.ndarray, np.ndarray]:
    """The charge-order keys of a partition: its party of each row, the parties, their (account, channel)
    ranks, and the record ids' Arrow buffers (offsets, data)."""
    import pandas as pd

    codes, names = pd.factorize(df["account"])
    combined = codes.astype(np.int64) * 2 + df["channel"].to_numpy().astype(np.int64)
    keys, inverse = np.unique(combined, return_inverse=True)
    present = [(str(names[k // 2]), CHANNELS[k % 2]) for k in keys.tolist()]
    rank = ordering.party_ranks([a for a, _ in present], keys % 2)
    offsets, data = ordering.id_buffers(df["rid"].to_numpy(dtype=object))
    return inverse.reshape(-1), present, rank, offsets, data


def _mark_duplicates(df: Any) -> Any:
    """Flag every copy of a (channel, record_id) but the first in charge order (``engine.order.duplicates``)."""
    if len(df) == 0:
        return df.assign(dup=np.zeros(0, dtype=np.int8))
    pair, _, rank, offsets, data = _keys(df)
    dup = ordering.duplicates(offsets, data, df["channel"].to_numpy(), df["ts"].to_numpy(), pair, rank,
                              df["api"].to_numpy(), df["ok"].to_numpy())
    return df.assign(dup=dup)


def _rate_partition(df: Any, engine: Engine, wanted: int | None) -> list[Bill]:
    """Rate the whole accounts of one partition with the Engine (tables for its own parties only); their bills."""
    if len(df) == 0:
        return []
    catalog = engine.catalog
    pair, present, rank, offsets, data = _keys(df)
    order = ordering.charge_order(df["ts"].to_numpy(), offsets, data, pair, rank, df["api"].to_numpy(),
                                  df["ok"].to_numpy(), df["dup"].to_numpy())
    df = df.iloc[order]
    import pyarrow as pa

    parties, slot = batch_parties(pa.array([a for a, _ in present], type=pa.string()), np.arange(len(present)),
                                  np.array([ch != OFFICIAL for _, ch in present], dtype=np.int8), engine.setup.finder,
                                  rank)
    listed_at = parties.listed_at
    party = slot[pair[order]]
    ts = np.ascontiguousarray(df["ts"].to_numpy(), dtype=np.int64)
    batch = Batch(
        party=party,
        api=np.ascontiguousarray(df["api"].to_numpy(), dtype=np.int32),
        ts=ts,
        period=catalog.clock.periods(ts),
        success=np.ascontiguousarray(df["ok"].to_numpy(), dtype=np.int8),
        duplicate=np.ascontiguousarray(df["dup"].to_numpy(), dtype=np.int8),
    )
    tables, plans, out = engine.run(batch, parties, listed_at)
    return engine.bills(parties, tables, plans, batch, out, wanted)
