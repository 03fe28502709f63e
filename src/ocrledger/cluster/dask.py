"""The whole rerate on a Dask cluster: read, settle duplicates, partition by account, and every output the rerater writes.

Accounts never share counters, so rating each account's calls on their own in ``(ts, record_id)``
order gives exactly the single-pass result. The one rule that crosses accounts is the duplicate
rule (a record id is unique per channel, whatever the account), so it is settled first. Every
step runs on the workers as plain tasks over Arrow tables; the client sees only Parquet
metadata, per-account call counts, and per-partition summaries:

1. **read**: each input unit (a CSV file, or a run of a Parquet file's row groups) is read and
   validated by the rerater's own reader (``rerate.rerater.validated_chunks``: errors name the
   file and row), calls after ``month`` are dropped, and the rest are split by a hash of the
   record id into ``buckets`` pieces. Each unit also counts its calls per account.
2. **partition**: the client adds up the counts and cuts the accounts, in byte order, into
   ranges of at most ``partition_rows`` calls (``account_ranges``). An account larger than that
   is a range of its own; it is never split, since its counters must run in one sequence. When it is
   also larger than ``memory_rows`` it is rated by the rerater's spill passes, and named in a warning.
3. **duplicates**: each record-id bucket meets all copies of its record ids and flags all but
   the first in charge order (``engine.order.duplicates``, the rule of every pass), then splits
   its calls by account range.
4. **rate**: each account range is rated by the rerater's own passes (``rerate.rerater.rate_part``:
   the one engine, tables for its own parties, its writers), which writes that range's
   bills.json, bills.txt and calls.parquet part.
5. **publish** (client): bills.json and bills.txt are the ranges' files joined in range order
   (ranges are in account order, so the bills are in the rerater's order and the bytes are its
   bytes), calls.parquet is a folder of the parts, summary.json adds the ranges' figures, and
   ``against`` gives diff.json / diff.txt.
"""
from __future__ import annotations

import gc
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, Sequence

import numpy as np

from ..bills.diff import diff_bills, load_bills
from ..engine import order as ordering
from ..engine.rate import Engine, as_accounts, as_catalog
from ..errors import OcrledgerError
from ..io.arrow_columns import string_buffers
from ..io.call_files import call_inputs, csv_input, parquet_input
from ..kernel import select as _kernel
from ..model.accounts import Accounts
from ..model.bills import Bill
from ..model.catalog import Catalog
from ..model.clock import parse_period
from ..model.money import format_exact
from ..rerate.malloc import reuse_freed_memory
from ..rerate.rerater import (
    DEFAULT_BUCKET_ROWS,
    DEFAULT_CHUNK_ROWS,
    DEFAULT_MEMORY_ROWS,
    PREFAULT_BYTES,
    PartResult,
    RerateResult,
    expand_glob,
    find_call,
    located,
    memory_budget,
    rate_part,
    rid_hash,
    validated_chunks,
)

log = logging.getLogger("ocrledger.rerate")
INSTALL = "the Dask rerate needs dask and distributed: pip install 'ocrledger[dask]'"
SETTLED_BYTES = 34
"""Bytes a call of a settled piece as a range's task holds it (record id and its offset, account code, channel, API,
instant, success and duplicate flags): 34 measured on the issue-5 month (``bench_dask.py --oversized``)."""
SPILL_BYTES = 100
"""Bytes a call the rerater's spill passes hold for the one time bucket they rate (``DEFAULT_BUCKET_ROWS`` calls)."""
UNIT_ROWS = 1 << 20
"""A Parquet file's row groups are read in units of about this many calls (one task each)."""


def modules() -> tuple[ModuleType, ModuleType]:
    """(dask, distributed), or an ``OcrledgerError`` that says what to install."""
    try:
        import dask
        import distributed
    except ImportError:
        raise OcrledgerError(INSTALL) from None
    return dask, distributed


@contextmanager
def connect(scheduler: Any = None) -> Iterator[Any]:
    """A ``distributed.Client``: ``scheduler`` is a Client, a scheduler address (``tcp://host:8786``), ``"local"``
    (a LocalCluster of one single-thread worker process per core) or ``"local:N"`` (N workers), or None for the
    Client already current in this process."""
    _, distributed = modules()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if scheduler is None:
        try:
            yield distributed.get_client()
        except ValueError:
            raise OcrledgerError("no Dask client: give a scheduler address, 'local' or 'local:N', "
                                 "or start a distributed.Client first") from None
        return
    text = str(scheduler)
    if text == "local" or text.startswith("local:"):
        n_text = text.partition(":")[2]
        if n_text and (not n_text.isdigit() or int(n_text) < 1):
            raise OcrledgerError(f"--scheduler {text}: N in local:N must be a whole number of workers, at least 1")
        n = int(n_text) if n_text else (os.cpu_count() or 1)
        import logging

        with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                      silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(text, timeout=30)
    except (OSError, TimeoutError, ValueError) as exc:
        raise OcrledgerError(f"cannot reach the Dask scheduler at {text}: {exc}") from None
    with client:
        yield client


# ----------------------------------------------------------------------------------------------
# the inputs


@dataclass(frozen=True)
class Unit:
    """One read task's share of the input: a CSV file, some row groups of a Parquet file, an Arrow table, or a
    partition of a Dask DataFrame (its data comes as the task's argument)."""

    name: str
    kind: str
    """'parquet', 'csv', 'table' or 'frame'."""
    base: int = 1
    """Row number (as errors give it) of the unit's first call."""
    row_groups: tuple[int, ...] | None = None
    table: Any = None


def units(calls: Any, chunk_rows: int, workers: int = 1) -> tuple[list[Unit], Any]:
    """The read units of ``calls`` (a path, folder, glob, Arrow table, list of these, or a Dask DataFrame) and, for a
    DataFrame, its partitions as delayed objects. Only Parquet metadata is read here. A Parquet unit is a run of
    row groups of at least ``UNIT_ROWS`` calls, or of a quarter of a worker's share when that is more: about four
    units per worker, so that a large input does not make more tasks than the workers can use."""
    if hasattr(calls, "to_delayed") and hasattr(calls, "npartitions"):
        parts = calls.to_delayed()
        return [Unit(f"<dask partition {k}>", "frame") for k in range(len(parts))], parts
    out: list[Unit] = []
    inputs = call_inputs(expand_glob(calls), chunk_rows)
    unit_rows = max(UNIT_ROWS, sum(i.rows or 0 for i in inputs) // (4 * max(1, workers)))
    for inp in inputs:
        if inp.lines is not None:
            out.append(Unit(inp.name, "csv", inp.base))
        elif inp.name == "<arrow table>":
            table = calls if not isinstance(calls, (list, tuple)) else None
            out.append(Unit(inp.name, "table", 1, table=table if table is not None else _table_of(inp)))
        else:
            out.extend(_parquet_units(inp.name, unit_rows))
    return out, None


def _table_of(inp: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_batches(list(inp.batches()))


def _parquet_units(name: str, unit_rows: int) -> list[Unit]:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(name).metadata  # call_inputs opened it already: readable
    out, groups, rows, base = [], [], 0, 1
    for k in range(meta.num_row_groups):
        groups.append(k)
        rows += meta.row_group(k).num_rows
        if rows >= unit_rows or k == meta.num_row_groups - 1:
            out.append(Unit(name, "parquet", base, tuple(groups)))
            base += rows
            groups, rows = [], 0
    return out or [Unit(name, "parquet", 1, ())]


def _open(unit: Unit, frame: Any, chunk_rows: int) -> Any:
    """The unit as a ``CallInput`` (on the worker)."""
    import pyarrow as pa

    if unit.kind == "parquet":
        return replace(parquet_input(Path(unit.name), chunk_rows, list(unit.row_groups or ())), base=unit.base)
    if unit.kind == "csv":
        return csv_input(Path(unit.name), chunk_rows)
    table = unit.table if unit.kind == "table" else pa.Table.from_pandas(frame, preserve_index=False)
    return replace(call_inputs(table, chunk_rows)[0], name=unit.name)


# ----------------------------------------------------------------------------------------------
# the tasks (run on the workers)


@dataclass
class Read:
    """A read unit's calls split by record-id bucket, its calls per account, and the rows it read."""

    pieces: list[Any]
    """Per bucket: an Arrow table (rid, account as a dictionary, channel, api, ts, ok) or None."""
    counts: Any
    """Arrow table (account, n): calls kept per account name."""
    rows: int


def read_unit(unit: Unit, frame: Any, setup: "Setup", cut: int, buckets: int, chunk_rows: int) -> Read:
    """Read and validate one unit (errors name its file and row; a ``credential`` column resolved through the
    setup's accounts), keep the calls before ``cut``, split them by bucket."""
    with _no_gc():
        return _read_unit(unit, frame, setup, cut, buckets, chunk_rows)


def _read_unit(unit: Unit, frame: Any, setup: "Setup", cut: int, buckets: int, chunk_rows: int) -> Read:
    import pyarrow as pa
    import pyarrow.compute as pc

    inp = _open(unit, frame, chunk_rows)
    parts: list[list[Any]] = [[] for _ in range(buckets)]
    counted: list[Any] = []
    rows = 0
    for n_rows, c in validated_chunks(inp, setup.catalog, setup.credentials):
        rows += n_rows
        keep = c.ts < cut
        if not keep.all():
            at = np.flatnonzero(keep)
            c = replace(c, rid=c.rid.take(pa.array(at)), account=c.account[at], channel=c.channel[at], api=c.api[at],
                        ts=c.ts[at], ok=c.ok[at], bad=c.bad[at] if c.bad is not None else None)
        if len(c.ts) == 0:
            continue
        names = pc.unique(c.accounts)  # one code per name (a chunk's names may repeat)
        lut = pc.index_in(c.accounts, value_set=names).to_numpy(zero_copy_only=False).astype(np.int32)
        code = lut[c.account]
        counted.append(pa.table({"account": names, "n": pa.array(np.bincount(code, minlength=len(names)))}))
        table = pa.table({
            "rid": c.rid, "account": pa.DictionaryArray.from_arrays(pa.array(code), names),
            "channel": pa.array(c.channel.astype(np.int8)), "api": pa.array(c.api.astype(np.int16)),
            "ts": pa.array(c.ts.astype(np.int64)), "ok": pa.array(_pack(c.ok, c.bad)),
        })
        for b, piece in _split(table, (rid_hash(c.rid) % np.uint64(buckets)).astype(np.int64), buckets):
            parts[b].append(piece)
    counts = _per_account(pa.concat_tables(counted)) if counted else _no_counts()
    return Read([pa.concat_tables(p) if p else None for p in parts], counts, rows)


def _pack(ok: np.ndarray, bad: np.ndarray | None) -> np.ndarray:
    """The shuffles' ``ok`` column: the success flag, plus 2 for a call of an unknown or expired credential
    (``Chunk.bad``): no byte more per call through the shuffles."""
    packed = ok.astype(np.int8)
    if bad is not None:
        packed |= bad.astype(np.int8) << 1
    return packed


def _per_account(counts: Any) -> Any:
    """(account, n) with one row per account name, the n added up (exact integers)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    account = counts.column("account").combine_chunks()
    names = pc.unique(account)
    at = pc.index_in(account, value_set=names).to_numpy(zero_copy_only=False)
    n = counts.column("n").to_numpy()
    # call counts are far below 2^53, where float64 holds every integer exactly; bincount adds them in one pass
    if len(n) and int(n.sum()) >= 1 << 53:
        raise OverflowError("more than 2^53 calls")
    total = np.bincount(at, weights=n.astype(np.float64), minlength=len(names)).astype(np.int64)
    return pa.table({"account": names, "n": pa.array(total)})


def _no_counts() -> Any:
    import pyarrow as pa

    return pa.table({"account": pa.array([], pa.string()), "n": pa.array([], pa.int64())})


def _split(table: Any, part: np.ndarray, k: int) -> Iterator[tuple[int, Any]]:
    """(part, rows of ``table`` in it) for every non-empty part."""
    import pyarrow as pa

    if k == 1:
        yield 0, table
        return
    small = part.astype(np.uint16) if k <= 1 << 16 else part  # numpy sorts 16-bit integers by radix: O(n)
    order = np.argsort(small, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(k + 1))
    taken = table.take(pa.array(order))
    for b in np.flatnonzero(np.diff(bounds)).tolist():
        yield b, taken.slice(int(bounds[b]), int(bounds[b + 1] - bounds[b]))


def piece(result: Any, k: int) -> Any:
    """Item ``k`` of a task's result (run where the result is, so only the piece travels)."""
    return result.pieces[k] if isinstance(result, Read) else result[k]


def counts_of(result: Read) -> tuple[Any, int]:
    return result.counts, result.rows


def add_counts(counted: Sequence[tuple[Any, int]]) -> tuple[Any, int]:
    """The read units' per-account counts added up on a worker (one row per account), and their rows read: the
    client receives one table of the accounts, not one per unit."""
    import pyarrow as pa

    tables = [c for c, _ in counted if c.num_rows]
    return (_per_account(pa.concat_tables(tables)) if tables else _no_counts()), sum(r for _, r in counted)


def settle_duplicates(pieces: Sequence[Any], starts: Sequence[str]) -> list[Any]:
    """One record-id bucket: flag every copy of a (channel, record_id) but the first in charge order, then split the
    calls by account range (``starts``: each range's first account, ascending). Per range: a table or None."""
    with _no_gc():
        return _settle(pieces, starts)


def _settle(pieces: Sequence[Any], starts: Sequence[str]) -> list[Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    tables = [t for t in pieces if t is not None and t.num_rows]
    if not tables:
        return [None] * len(starts)
    table = pa.concat_tables(tables)
    account = table.column("account")
    names = pc.unique(pa.concat_arrays([ch.dictionary for ch in account.chunks]))
    code = np.concatenate([
        pc.index_in(ch.dictionary, value_set=names).to_numpy(zero_copy_only=False).astype(np.int32)[
            ch.indices.to_numpy(zero_copy_only=False)] for ch in account.chunks])
    channel = table.column("channel").to_numpy()
    ts = table.column("ts").to_numpy()
    api = table.column("api").to_numpy()
    packed = table.column("ok").to_numpy()
    ok = packed & 1
    rid = table.column("rid")
    if rid.nbytes >= (1 << 31) - 1:  # 2 GiB of ids or more in one bucket: 64-bit offsets
        rid = rid.cast(pa.large_string())
    rid = rid.combine_chunks()
    pkey = code * 2 + channel  # < 2 x the names: numbered by a table, not a sort
    seen = np.bincount(pkey, minlength=2 * len(names))
    keys = np.flatnonzero(seen)
    lut = np.zeros(len(seen), dtype=np.int32)
    lut[keys] = np.arange(len(keys), dtype=np.int32)
    party = lut[pkey]
    names_py = names.to_pylist()
    rank = ordering.party_ranks([names_py[k // 2] for k in keys.tolist()], keys % 2)
    offsets, data = string_buffers(rid)
    dup = ordering.duplicates(offsets, data, channel, ts, party, rank, api, ok)
    range_of = np.searchsorted(np.array(list(starts), dtype=object), np.array(names_py, dtype=object), side="right") - 1
    out = pa.table({
        "rid": rid, "account": pa.DictionaryArray.from_arrays(pa.array(code), names),
        "channel": pa.array(channel), "api": pa.array(api), "ts": pa.array(ts), "ok": pa.array(packed),
        "dup": pa.array(dup.astype(np.int8)),
    })
    result: list[Any] = [None] * len(starts)
    for j, rows in _split(out, range_of[code].astype(np.int64), len(starts)):
        result[j] = rows
    return result


_ENGINES: dict[str, Engine] = {}
_ENGINE_LOCK = threading.Lock()


@dataclass
class Setup:
    """The catalog and accounts as sent to the workers: each worker process compiles its Engine once per run.

    ``accounts`` is the ``Accounts`` or, given as a path, the path: each worker then loads the file itself
    (columns, fast) instead of receiving millions of pickled plan objects."""

    token: str
    catalog: Catalog
    accounts: Accounts | str
    kernel: str | None

    def credentials(self, keys: np.ndarray) -> Accounts:
        """The accounts whose ``[[credential]]`` entries resolve a calls input's keys (this worker's Engine's)."""
        return self.engine().accounts

    def engine(self) -> Engine:
        with _ENGINE_LOCK:
            engine = _ENGINES.get(self.token)
            if engine is None:
                _ENGINES.clear()  # one run's Engine at a time
                with _no_gc():
                    engine = _ENGINES[self.token] = Engine(self.catalog, self.accounts, kernel=self.kernel)
                gc.freeze()  # the setup's objects live as long as the run: the collector need not scan them
            return engine


def warm(setup: Setup) -> None:
    """Compile the worker's Engine now (while the calls are read); a bad accounts file fails here."""
    setup.engine()


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic collector off while a task makes millions of arrays and none cyclic (as the local rerater)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def rate_range(pieces: Sequence[Any], setup: Setup, wanted: int | None, folder: str | None, calls_file: bool,
               want_bills: bool, memory: tuple[int, int] = (DEFAULT_MEMORY_ROWS, DEFAULT_BUCKET_ROWS),
               tune_malloc: bool = False) -> PartResult:
    """Rate one account range (its calls from every bucket, duplicates settled) with the rerater's passes (in
    memory up to ``memory[0]`` calls, else the spill passes holding about ``memory[1]`` at a time); its files go
    to ``folder``. ``tune_malloc``: the in-memory pass under the rerater's malloc tuning, as the command runs it
    (``rerate.malloc.reuse_freed_memory``: the worker process's malloc keeps freed memory while the task runs)."""
    engine = setup.engine()
    n = sum(t.num_rows for t in pieces if t is not None)
    tuned = reuse_freed_memory(prefault=n * PREFAULT_BYTES) if tune_malloc and n <= memory[0] else nullcontext()
    with _no_gc(), tuned:
        return _rate_range(pieces, engine, wanted, folder, calls_file, want_bills, memory)


def _rate_range(pieces: Sequence[Any], engine: Engine, wanted: int | None, folder: str | None, calls_file: bool,
                want_bills: bool, memory: tuple[int, int]) -> PartResult:
    import pyarrow as pa

    chunks = []
    for table in pieces:
        if table is None:
            continue
        for batch in table.to_batches():
            acc, rid = batch.column(1), batch.column(0)
            if rid.type == pa.large_string():  # a bucket of 2 GiB of ids or more: this range's slice is less
                rid = rid.cast(pa.string())
            chunk = _chunk(rid, acc.indices.to_numpy(zero_copy_only=False), acc.dictionary,
                           batch.column(2).to_numpy(), batch.column(3).to_numpy(), batch.column(4).to_numpy(),
                           batch.column(5).to_numpy())
            chunks.append((chunk, batch.column(6).to_numpy()))
    path = Path(folder) if folder is not None else None
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
    return rate_part(chunks, engine, wanted, path, calls_file=calls_file, want_bills=want_bills,
                     memory_rows=memory[0], bucket_rows=memory[1])


def _chunk(rid: Any, account: np.ndarray, accounts: Any, channel: np.ndarray, api: np.ndarray, ts: np.ndarray,
           packed: np.ndarray) -> Any:
    from ..io.arrow_calls import Chunk

    bad = packed >> 1
    # no input name: a kernel error names the record, and the client finds its file and row
    return Chunk(rid, account, accounts, channel, api, ts, packed & 1, "", 1, bad if bad.any() else None)


# ----------------------------------------------------------------------------------------------
# the client


def account_ranges(counts: Any, budget: int) -> tuple[list[str], list[int]]:
    """Cut the accounts (Arrow table account, n), in byte order, into ranges of at most ``budget`` calls: (each
    range's first account, its calls). An account with more calls than ``budget`` is a range of its own."""
    import pyarrow.compute as pc

    if counts.num_rows == 0:
        return [""], [0]
    counts = _per_account(counts)
    counts = counts.take(pc.sort_indices(counts, [("account", "ascending")]))  # UTF-8 byte order = str order
    names = counts.column("account").to_pylist()
    n = counts.column("n").to_numpy()
    starts, sizes = [""], [0]
    for name, c in zip(names, n.tolist()):
        if sizes[-1] and sizes[-1] + c > budget:
            starts.append(name)
            sizes.append(0)
        sizes[-1] += c
    return starts, sizes


def oversized(starts: Sequence[str], sizes: Sequence[int], budget: int, memory_rows: int) -> list[str]:
    """A warning line for each range over the budget (one account, never split) that is larger than ``memory_rows``
    and so goes through the spill passes, saying the memory it takes on its worker."""
    return [f"account {name!r}: {size:,} calls, more than the range budget of {budget:,}: rated alone on one worker "
            f"by the spill passes (its settled calls held as the task's input, about {SETTLED_BYTES} bytes a call: "
            f"{size * SETTLED_BYTES / 1e9:.1f} GB, plus about {SPILL_BYTES} bytes a call of one time bucket)"
            for name, size in zip(starts, sizes) if size > budget and size > memory_rows]


def rerate(
    calls: Any,
    catalog: Catalog | str | Path | None,
    accounts: Accounts | str | Path | None,
    *,
    month: str | None = None,
    out: str | Path | None = None,
    against: str | Path | None = None,
    kernel: str | None = None,
    scheduler: Any = None,
    partition_rows: int | None = None,
    npartitions: int | None = None,
    bills_only: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    bucket_rows: int = DEFAULT_BUCKET_ROWS,
    memory_rows: int | None = None,
    tune_malloc: bool = False,
) -> RerateResult:
    """The rerate of ``rerate.rerater.rerate`` on a Dask cluster: the same inputs, the same outputs in ``out``.

    ``calls``: a Parquet file, folder or glob, a CSV file, an Arrow table, a list of these, or a Dask DataFrame
    (whose errors can name only its partition). ``catalog`` and ``accounts``: objects or paths (loaded here, so a
    bad file is reported as locally). ``scheduler``: see ``connect`` (default: the current Client).
    ``partition_rows``: calls per account range (default: the kept calls over twice the workers, at most
    ``memory_rows``). ``npartitions``: record-id buckets (default: twice the workers).
    ``bills_only``: no calls.parquet. ``memory_rows`` and ``bucket_rows``: as for ``rerate``, per account range: a
    range of at most ``memory_rows`` calls is rated in memory, a larger one (an account larger than
    ``partition_rows``, never split) by the spill passes with about ``bucket_rows`` calls held at a time, and
    a warning naming the account (logger ``ocrledger.rerate``, and the summary's ``dask.oversized``).
    ``tune_malloc``: as for ``rerate``, on the workers, while each range is rated in memory (process-wide in the
    worker for that time, so off by default; the command turns it on).

    ``out`` gets bills.json and bills.txt (the bytes of the local rerate), calls.parquet as a folder of part
    files (``part-NNNNN.parquet``, one per account range in account order, each in charge order), summary.json,
    and with ``against`` diff.json and diff.txt. The workers must see ``out`` (a shared file system); nothing
    appears there unless every step succeeded. Without ``out`` the bills come back from the workers.
    """
    started = time.perf_counter()
    modules()
    catalog = as_catalog(catalog)
    if accounts is None or isinstance(accounts, Accounts):
        accounts = as_accounts(accounts, catalog)
    else:  # each worker loads the file (errors name it as locally): no plan objects pickled
        accounts = str(Path(accounts).resolve())
    wanted = parse_period(month) if month is not None else None
    cut = int(catalog.clock.month_starts[wanted + 1]) if wanted is not None else catalog.clock.max_ms
    _kernel.get(kernel)  # fail early on a bad name
    out_dir = Path(out).resolve() if out is not None else None
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise OcrledgerError("--out must be a folder, and this is a file", file=str(out_dir))
        out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".rerate-dask-", dir=out_dir)) if out_dir is not None else None
    try:
        with connect(scheduler) as client:
            parts, summaries, figures = _run(client, calls, catalog, accounts, kernel, wanted, cut, staging,
                                             bills_only, partition_rows, npartitions, chunk_rows,
                                             (memory_budget(memory_rows, bucket_rows), bucket_rows), tune_malloc)
        summary = _summary(summaries, figures, wanted, _kernel.get(kernel).IMPLEMENTATION,
                           time.perf_counter() - started)
        if staging is None:
            bills = sorted((b for p in parts for b in (p.bills or [])), key=lambda b: b.key)
            diff = diff_bills(load_bills(against), bills, old_name=str(against), new_name="rerate") if against else None
            return RerateResult(bills, summary, {}, diff)
        assert out_dir is not None
        files, diff = _publish(out_dir, staging, len(parts), summary, against, bills_only)
        bills_path = files["bills.json"]
        return RerateResult(lambda: load_bills(bills_path), summary, files, diff)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _run(client: Any, calls: Any, catalog: Catalog, accounts: Accounts | str, kernel: str | None,
         wanted: int | None, cut: int, staging: Path | None, bills_only: bool, partition_rows: int | None,
         npartitions: int | None, chunk_rows: int, memory: tuple[int, int], tune_malloc: bool
         ) -> tuple[list[PartResult], list[dict[str, Any]], dict[str, Any]]:
    """Submit the steps, wait for each, and hand back the ranges' results (raising the first error in input order)."""
    from distributed import wait

    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    buckets = npartitions or 2 * n_workers
    work, frames = units(calls, chunk_rows, n_workers)
    figures: dict[str, Any] = {"workers": n_workers, "record_id_buckets": buckets}
    t0 = time.perf_counter()
    # on one worker; the others fetch it for their warm task
    setup = client.scatter(Setup(uuid.uuid4().hex, catalog, accounts, kernel))
    warming = [client.submit(warm, setup, workers=[w], allow_other_workers=False, pure=False)
               for w in client.scheduler_info().get("workers", {})]
    frame_futures = client.compute(list(frames)) if frames is not None else [None] * len(work)
    reads = [client.submit(read_unit, unit, frame, setup, cut, buckets, chunk_rows, pure=False)
             for unit, frame in zip(work, frame_futures)]
    counted = [client.submit(counts_of, r, pure=False) for r in reads]
    wait(counted)
    if any(f.status == "error" for f in counted):
        wait(warming)
        _raise_first(warming)  # a bad accounts file is the error reported first, as locally
    _raise_first(counted)
    counts, read_rows = client.submit(add_counts, counted, pure=False).result()
    kept = int(counts.column("n").to_numpy().sum()) if counts.num_rows else 0
    budget = partition_rows or max(1, min(memory[0], math.ceil(kept / (2 * n_workers))))
    starts, sizes = account_ranges(counts, budget)
    warned = oversized(starts, sizes, budget, memory[0])
    for line in warned:
        log.warning("%s", line)
    figures.update(read_seconds=round(time.perf_counter() - t0, 3), calls_read=read_rows, account_ranges=len(starts),
                   range_budget=budget, largest_range=max(sizes) if sizes else 0, oversized=warned)
    t1 = time.perf_counter()
    by_bucket = [[client.submit(piece, r, b, pure=False) for r in reads] for b in range(buckets)]
    settled = [client.submit(settle_duplicates, pieces, starts, pure=False) for pieces in by_bucket]
    del by_bucket
    rated = []
    for j in range(len(starts)):
        mine = [client.submit(piece, s, j, pure=False) for s in settled]
        folder = str(staging / f"part-{j:05d}") if staging is not None else None
        rated.append(client.submit(rate_range, mine, setup, wanted, folder, not bills_only, staging is None, memory,
                                   tune_malloc, pure=False))
    del reads, counted, settled
    wait(rated)
    wait(warming)
    _raise_first(warming)
    _raise_first(rated, lambda exc: located(exc, lambda call: _find(client, work, frame_futures, setup, call,
                                                                     chunk_rows)))
    parts = client.gather(rated)
    figures["shuffle_and_rate_seconds"] = round(time.perf_counter() - t1, 3)
    del rated
    return parts, [p.summary for p in parts], figures


def _raise_first(futures: Sequence[Any], name: Any = None) -> None:
    """The error of the first failed future in order (input order: the first bad record, as locally); ``name``
    gives an ``OcrledgerError`` its file and row where it has none (``rerate.rerater.located``)."""
    for f in futures:
        if f.status == "error":
            exc = f.exception()
            if isinstance(exc, OcrledgerError):
                raise (name(exc) if name is not None else exc).with_traceback(None) from None
            raise exc


def _find(client: Any, work: Sequence[Unit], frames: Sequence[Any], setup: Any, call: tuple[Any, ...],
          chunk_rows: int) -> tuple[str, int] | None:
    """(file, row) of a kernel error's call: each read unit looked through on a worker, the first found in input
    order (``rerate.rerater.find_call``)."""
    found = client.gather([client.submit(locate, u, f, setup, call, chunk_rows, pure=False)
                           for u, f in zip(work, frames)])
    return next((w for w in found if w is not None), None)


def locate(unit: Unit, frame: Any, setup: "Setup", call: tuple[Any, ...], chunk_rows: int) -> tuple[str, int] | None:
    """(file, row) of ``call`` in one read unit (``rerate.rerater.find_call``), or None (on a worker)."""
    return find_call([_open(unit, frame, chunk_rows)], setup.catalog, call, setup.credentials)


def _summary(parts: list[dict[str, Any]], figures: dict[str, Any], wanted: int | None, kernel: str,
             elapsed: float) -> dict[str, Any]:
    """The ranges' summaries added up (the figures of ``rerate``'s summary.json), with the cluster's figures."""
    from ..model.clock import period_label

    def total(key: str) -> int:
        return sum(int(p[key]) for p in parts)

    def by(key: str) -> dict[str, int]:
        names = list(parts[0][key]) if parts else []
        return {n: sum(int(p[key][n]) for p in parts) for n in names}

    amount = sum(int(Decimal(p["amount_exact"]) * 1_000_000) for p in parts)
    read_rows = int(figures.pop("calls_read"))
    return {
        "month": period_label(wanted) if wanted is not None else None,
        "kernel": kernel,
        "calls_read": read_rows,
        "calls_rated": total("calls_rated"),
        "calls": total("calls"),
        "status": by("status"),
        "source": by("source"),
        "amount_exact": format_exact(amount),
        "bills": total("bills"),
        "bill_total": str(sum((Decimal(p["bill_total"]) for p in parts), Decimal("0.00"))),
        "parties": total("parties"),
        "periods": sorted({x for p in parts for x in p["periods"]}),
        "dask": {**figures, "rate_seconds_per_range": [p["seconds"] for p in parts],
                 "time_buckets_per_range": [p["buckets"]["time"] for p in parts],
                 "peak_rss_mb_per_range": [p["peak_rss_mb"] for p in parts]},
        "seconds": round(elapsed, 3),
        "calls_per_second": round(read_rows / elapsed) if elapsed > 0 else None,
    }


def _join(sources: Sequence[Path], target: Path, empty: bytes, head: bytes, tail: bytes, sep: bytes) -> None:
    """Write the files ``sources`` (each ``empty``, or ``head`` + items + ``tail``) as one such file: their items
    joined by ``sep``, streamed (never all held)."""
    filled = [s for s in sources if s.stat().st_size != len(empty) or s.read_bytes() != empty]
    with open(target, "wb") as fh:
        if not filled:
            fh.write(empty)
            return
        fh.write(head)
        for k, src in enumerate(filled):
            size = src.stat().st_size
            with open(src, "rb") as part:
                part.seek(len(head))
                left = size - len(head) - len(tail)
                if k:
                    fh.write(sep)
                while left > 0:
                    block = part.read(min(left, 1 << 22))
                    fh.write(block)
                    left -= len(block)
        fh.write(tail)


def _publish(out_dir: Path, staging: Path, n_parts: int, summary: dict[str, Any], against: Any,
             bills_only: bool) -> tuple[dict[str, Path], Any]:
    """Join the ranges' bill files, gather the calls parts into one folder, write summary and diff, and move all
    into ``out_dir`` (a symlink at an output's name is replaced, never followed)."""
    from ..bills.files import NO_BILLS

    parts = [staging / f"part-{j:05d}" for j in range(n_parts)]
    _join([p / "bills.json" for p in parts], staging / "bills.json", b"[]\n", b"[", b"\n]\n", b",")
    _join([p / "bills.txt" for p in parts], staging / "bills.txt", (NO_BILLS + "\n").encode(), b"", b"", b"\n")
    names = ["bills.json", "bills.txt", "summary.json"]
    if not bills_only:
        folder = staging / "calls.parquet"
        folder.mkdir()
        for j, p in enumerate(parts):
            os.replace(p / "calls.parquet", folder / f"part-{j:05d}.parquet")
        names.append("calls.parquet")
    (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    diff = None
    if against is not None:
        diff = diff_bills(load_bills(against), load_bills(staging / "bills.json"), old_name=str(against),
                          new_name="rerate")
        (staging / "diff.json").write_text(json.dumps(diff.to_dict(), indent=2) + "\n", encoding="utf-8")
        (staging / "diff.txt").write_text(diff.to_text(), encoding="utf-8")
        names += ["diff.json", "diff.txt"]
    files = {}
    stale = out_dir / "calls.parquet"
    if stale.is_symlink() or stale.is_file():
        stale.unlink()
    elif stale.is_dir():
        shutil.rmtree(stale)
    for name in names:
        os.replace(staging / name, out_dir / name)
        files[name] = out_dir / name
    return files, diff


__all__: Sequence[str] = ("rerate", "connect", "account_ranges", "INSTALL")
