"""The batch rerater: rate a period of archived calls from scratch in bounded memory, explain every charge.

``rerate()`` reads calls (Parquet file or folder, CSV, Arrow table) in chunks and never holds
more than about ``bucket_rows`` calls at once, whatever the size of the input or its order:

1. **read**: each chunk is validated and encoded with Arrow (dictionary-encoded account, API and
   channel; vectorised instants and flags), then spilled into ``k`` buckets by a hash of the record
   id, so every copy of a record id lands in the same bucket. A per-minute histogram of the
   timestamps is kept (bounded by the minutes of the period).
2. **dedup**: each record-id bucket is loaded on its own and the copies of a record id on one
   channel are ranked in charge order; all but the first are duplicates (never charged). The rule
   is ``engine.order.duplicates``, that of every pass: exact ties (same channel, record id and
   instant) go to the smallest account id (byte order), then API (catalog order), then failed
   before successful, so the choice does not depend on the input order. Rows are then spilled
   into time buckets whose bounds are whole minutes chosen from the histogram (about
   ``bucket_rows`` calls each).
3. **rate**: time buckets are loaded in time order, sorted into charge order
   (``engine.order.charge_order``: ``(ts, record_id)``, ties as above) and rated with
   the kernel on one ``KernelState`` that carries every counter from bucket to bucket, exactly as
   one pass over the sorted period would. Usage, QPS seconds (a bucket bound is a whole minute, so
   no second straddles two buckets) and per-call outcomes are accumulated; outcomes are written to
   ``calls.parquet`` as they go.

Memory is the kernel tables and counters (accounts x APIs, plans), the usage counters and one
bucket; spill files go to a hidden folder inside ``out`` (or ``tmp_dir``) and are removed.

Inputs of at most ``memory_rows`` calls (default 10 million; known up front for Parquet) skip
passes 2 and 3 and the spill files: ``memory`` deduplicates, orders, rates and summarises
the whole input in memory with compiled helpers, and writes ``calls.parquet`` in a background
thread while the bills are made. The results are the same, byte for byte.
"""
from __future__ import annotations

import gc
import json
import logging
import math
import os
import resource
import shutil
import tempfile
import time
from collections import deque
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..bills import files as billfiles
from ..bills.diff import diff_bills, load_bills
from ..engine import order as ordering
from ..engine.bill_columns import BillColumns, bill_columns, period_labels
from ..engine.billing import bills_from_columns
from ..engine.pricing import VolumePrices
from ..engine.rate import Engine
from ..engine.qps import (
    AddonIndex,
    QpsArrays,
    QpsLines,
    addon_index,
    qps_lines,
    second_counts,
)
from ..engine.tables import SetupTables, extend_tables
from ..engine.usage import (
    UsageCounts,
)
from ..errors import CallsError, MoneyError, OcrledgerError, StateError
from ..io.account_tables import load_accounts
from ..io.arrow_calls import Chunk
from ..io.arrow_columns import string_buffers
from ..io.call_files import CallInput, call_inputs, have_pyarrow
from ..io.calls import Credentials, resolved_chunk, validated
from ..kernel import select as _kernel
from ..kernel.contract import Batch, KernelState, KernelTables, Outcomes
from ..model.account_columns import PlanColumns
from ..model.accounts import CHANNELS, MARKETPLACE, OFFICIAL, Accounts
from ..model.bills import Bill
from ..model.catalog import VOLUME, Catalog
from ..model.clock import N_PERIODS, parse_period, period_label
from ..model.money import format_exact, to_cents_decimal
from . import memory as _fast
from .calls_file import CallColumns, distinct_values
from .held import Held
from .malloc import reuse_freed_memory
from .progress import Progress, progress_reporter
from .schema import SOURCE_NAMES, STATUS_NAMES, calls_schema

READ_AHEAD = 3
"""Input files decoded and validated ahead of the one being encoded (two threads): enough to keep
both busy, few enough that the decoded chunks of every file are not all held at once."""
log = logging.getLogger("ocrledger.rerate")
"""What a rerate reports (INFO: the pass and the files; DEBUG: timings)."""

DEFAULT_CHUNK_ROWS = 1 << 20
"""Rows read from the input at a time."""
DEFAULT_BUCKET_ROWS = 1 << 21
"""Calls held in memory at once while deduplicating and rating (about 100 bytes each)."""
PREFAULT_BYTES = 60
"""Heap faulted in up front per call of the in-memory pass (``malloc.reuse_freed_memory``): about
the arrays it allocates from malloc; more only raised the peak RSS."""
DEFAULT_MEMORY_ROWS = 10_000_000
"""Inputs of at most this many calls are rated in one in-memory pass (peak RSS 1.4-1.65 GB at the limit)."""
MINUTE_MS = 60_000

OUTPUT_FILES = ("bills.json", "bills.txt", "calls.parquet", "summary.json")


class RerateResult:
    """What a rerate produced: the bills, a summary, and where the outputs were written.

    ``bills`` are built on first use: the rerater writes bills.json and bills.txt from bill columns
    (``billcols``), so a run that only writes files never builds the ``Bill`` objects.
    """

    def __init__(self, bills: list[Bill] | Callable[[], list[Bill]], summary: dict[str, Any],
                 files: dict[str, Path] | None = None, diff: Any = None) -> None:
        self._bills = bills
        self.summary = summary
        self.files: dict[str, Path] = files or {}
        self.diff = diff
        """A ``diff.BillDiff`` against the old bills when ``against`` was given."""

    @property
    def bills(self) -> list[Bill]:
        """The bills, sorted by account, channel, period."""
        if callable(self._bills):
            self._bills = self._bills()
        return self._bills


@dataclass(frozen=True)
class BillFacts:
    """What the summary says about the bills: how many, their total, parties and periods."""

    count: int
    total: Decimal
    parties: int
    periods: list[str]

    @classmethod
    def of_columns(cls, cols: BillColumns) -> "BillFacts":
        return cls(len(cols), to_cents_decimal(cols.total()), len(np.unique(cols.bill_party)),
                   sorted(set(period_labels(cols))))


def rerate(
    calls: Any,
    catalog: Catalog,
    accounts: Accounts | str | Path,
    *,
    month: str | None = None,
    out: str | Path | None = None,
    against: str | Path | None = None,
    kernel: str | ModuleType | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    bucket_rows: int = DEFAULT_BUCKET_ROWS,
    tmp_dir: str | Path | None = None,
    progress: bool | Callable[[str, int, int | None], None] = False,
    memory_rows: int | None = None,
    bills_only: bool = False,
    tune_malloc: bool = False,
) -> RerateResult:
    """Rate ``calls`` from scratch in ``(ts, record_id)`` order and bill every account, channel and month.

    :param calls: A Parquet file, a folder of Parquet files (read in name order; their times may
        overlap), a glob of files (``calls/2026-10-*.parquet``, read in name order), a CSV file, a
        pyarrow Table, or a list of any of these (one input split in parts).
    :param accounts: ``Accounts``, or the path of an accounts file or folder. It is loaded (given a
        path) and its parties' kernel tables are built on a second thread while the calls are read; a
        bad accounts file is still the error reported first.
    :param month: ``"YYYY-MM"``: bill, explain and summarise only that month. Earlier calls are still
        rated (plans and the verification pool carry over); later ones cannot change it and are
        skipped after validation.
    :param out: Folder for bills.json, bills.txt, calls.parquet, summary.json (and diff.json/diff.txt
        with ``against``). Nothing is written outside it; files appear only once all succeeded.
    :param against: Old bills (a JSON file or a folder) to diff the new ones with.
    :param chunk_rows: Rows read at a time.
    :param bucket_rows: Calls held in memory at once (the memory bound).
    :param memory_rows: Inputs of at most this many calls skip the spill passes: they are held,
        deduplicated, sorted and rated in memory in one pass (same results). Default:
        ``DEFAULT_MEMORY_ROWS`` when ``bucket_rows`` is the default, else ``bucket_rows``.
    :param progress: True for a progress bar on stderr (only when it is a terminal), or a callable
        ``(phase, done, total)``.
    :param bills_only: Skip the per-call attribution: no calls.parquet (the bills, summary and diff
        are the same).
    :param tune_malloc: Let the in-memory pass tune glibc's malloc for the whole process while it runs
        (``malloc``: freed memory kept for reuse, the heap faulted in up front, ``malloc_trim`` after;
        about 10% faster). Process-wide, so off by default: the ``ocrledger rerate`` command turns it
        on; a program embedding ``rerate`` keeps its allocator as it set it.
    :returns: The bills (sorted by account, channel, period), a summary, and the written files.
    :raises ~ocrledger.OcrledgerError: naming the file, row and field of the first bad record; then
        nothing is written.
    """
    if chunk_rows < 1 or bucket_rows < 1:
        raise ValueError("chunk_rows and bucket_rows must be positive")
    if not have_pyarrow():
        raise CallsError("the rerater needs pyarrow: pip install 'ocrledger[parquet]'")
    started = time.perf_counter()
    wanted = parse_period(month) if month is not None else None
    impl = kernel if isinstance(kernel, ModuleType) else _kernel.get(kernel)
    out_dir = Path(out) if out is not None else None
    made_out = False  # a folder this call made is removed again if the rerate fails (nothing half-made)
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise OcrledgerError("--out must be a folder, and this is a file", file=str(out_dir))
        made_out = not out_dir.exists()
        out_dir.mkdir(parents=True, exist_ok=True)
    spill_root = out_dir if out_dir is not None else (Path(tmp_dir) if tmp_dir is not None else None)
    spill = Path(tempfile.mkdtemp(prefix=".rerate-", dir=spill_root))
    report = progress_reporter(progress)
    memory_rows = memory_budget(memory_rows, bucket_rows)
    run: _Run | None = None
    collecting = gc.isenabled()
    gc.disable()  # millions of arrays and bill objects, none cyclic: the collector's passes cost ~0.5 s
    memory = ExitStack()
    try:
        _fast.tick("start")
        run = _Run(catalog, _prepare_soon(accounts, catalog), impl, wanted, chunk_rows, bucket_rows, spill, report)
        calls_tmp = spill / "calls.parquet" if out_dir is not None and not bills_only else None
        inputs = call_inputs(expand_glob(calls), chunk_rows)
        total = _known_rows(inputs)
        if tune_malloc and _fast.available() and total is not None and total <= memory_rows:  # the in-memory pass
            memory.enter_context(reuse_freed_memory(prefault=total * PREFAULT_BYTES))
        try:
            held = run.read(inputs, memory_rows if _fast.available() else 0)
        except OcrledgerError:
            run.prepared()  # a bad accounts file is reported first, as when it was loaded first
            raise
        fixed = _fixed_texts_soon(catalog, run.plans) if out_dir is not None and billfiles.available() else None
        try:
            run.rate_held(held, calls_tmp)
        except (MoneyError, StateError) as exc:  # the spill passes know the record only: name its file and row
            raise located(exc, lambda call: find_call(call_inputs(expand_glob(calls), chunk_rows), catalog, call,
                                                      run.credentials)) from None
        _fast.tick("rated")
        log.info("rated %s calls in the %s pass", f"{run.read_rows:,}", "in-memory" if held is not None else "spill")
        cols, bills = _bill_files(run, spill if out_dir is not None else None, fixed)
        facts = BillFacts.of_columns(cols)
        _fast.tick("bills rendered")
        result = RerateResult(bills, {})
        if against is not None:
            result.diff = diff_bills(load_bills(against), result.bills, old_name=str(against), new_name="rerate")
        if run.writer_thread is not None:
            run.writer_thread.join()
            _fast.tick("calls.parquet written")
        result.summary = run.summary(facts, time.perf_counter() - started)
        if out_dir is not None:
            result.files = _publish(out_dir, spill, result.summary, calls_tmp, result.diff)
            _fast.tick("published")
            log.info("wrote %s", ", ".join(str(f) for f in result.files.values()))
        return result
    finally:
        if collecting:
            gc.enable()
        report.close()
        if run is not None and run.writer_thread is not None and run.writer_thread.is_alive():
            try:
                run.writer_thread.join()  # an error is already on its way; let the writer stop first
            except Exception:  # noqa: BLE001
                pass
        memory.close()  # malloc's defaults again, once no thread of the run allocates any more
        shutil.rmtree(spill, ignore_errors=True)
        if made_out and out_dir is not None:
            try:
                out_dir.rmdir()  # only when empty: a failed rerate published nothing
            except OSError:
                pass


def memory_budget(memory_rows: int | None, bucket_rows: int) -> int:
    """The calls an in-memory pass may hold: ``memory_rows``, by default ``DEFAULT_MEMORY_ROWS`` when
    ``bucket_rows`` is the default, else ``bucket_rows`` (a smaller memory bound asked for)."""
    if memory_rows is not None:
        return memory_rows
    return DEFAULT_MEMORY_ROWS if bucket_rows == DEFAULT_BUCKET_ROWS else bucket_rows


def _bill_files(run: "_Run", folder: Path | None, fixed: "Future[billfiles.FixedTexts] | None"
                ) -> tuple[BillColumns, list[Bill] | Callable[[], list[Bill]]]:
    """The rated run's bill columns, and its bills.json and bills.txt written into ``folder`` (when given) by the
    one bill writer (``bills.files.write``). The bills (or their maker, when the writer made none)."""
    cols = run.bill_columns()  # while calls.parquet is being written
    _fast.tick("bill columns")
    bills: list[Bill] | Callable[[], list[Bill]] = run.bill_maker(cols)
    if folder is not None:
        made = billfiles.write(cols, run.catalog, run.parties, run.plans, folder / "bills.json",
                               folder / "bills.txt", fixed.result() if fixed is not None else None)
        bills = made if made is not None else bills  # the twin made the Bill objects already
    return cols, bills


def expand_glob(calls: Any) -> Any:
    """A path with a wildcard (``calls/2026-10-*.parquet``) as the sorted list of what it matches."""
    if isinstance(calls, (list, tuple)):
        out: list[Any] = []
        for part in calls:
            found = expand_glob(part)
            out.extend(found if isinstance(found, list) and not isinstance(part, (list, tuple)) else [found])
        return out
    if isinstance(calls, (str, Path)) and any(ch in str(calls) for ch in "*?[") and not Path(calls).exists():
        import glob

        found = sorted(glob.glob(str(calls), recursive=True))
        if not found:
            raise CallsError("no file matches this pattern", file=str(calls))
        return found
    return calls


def validated_chunks(inp: CallInput, catalog: Catalog, credentials: Credentials | None = None
                     ) -> Iterator[tuple[int, Chunk]]:
    """(rows, validated chunk) of one input in order, errors naming its file and row (a CSV file's line, as
    ``rate`` gives it): the one validation loop (``io.calls.validated``), as the rerater and the Dask
    rerate's workers read calls. Calls that name their caller by ``credential`` (no ``account`` column) are
    resolved through ``credentials`` (the accounts' ``[[credential]]`` entries) at each call's instant; an
    unknown or expired key is the chunk's ``bad`` (REJECTED_CREDENTIAL, as the ledger)."""
    for raw, chunk, keyed in validated(inp, catalog, credentials):
        yield raw.num_rows, (resolved_chunk(chunk, keyed) if keyed is not None else chunk)


def find_call(inputs: Sequence[CallInput], catalog: Catalog, call: tuple[str, str, int, int, int, int],
              credentials: Credentials | None = None) -> tuple[str, int] | None:
    """(input name, row as errors give it) of the first call of ``inputs``, in input order, that is ``call``
    (record id, account, channel code, API index, instant, success: a kernel error's ``call``), or None.

    A pass over shuffled calls (the spill passes, the Dask rerate's ranges) does not carry each call's row;
    on the rare kernel error the inputs are read again to name it (an exact copy of a call is charged in
    input order, so the first is the one the in-memory pass names)."""
    record, account, channel, api, ts, ok = call
    for inp in inputs:
        for _, c in validated_chunks(inp, catalog, credentials):
            hit = np.flatnonzero((c.ts == ts) & (c.api == api) & (c.channel == channel) & (c.ok == ok))
            for j in hit.tolist():
                if c.rid[j].as_py() == record and c.accounts[int(c.account[j])].as_py() == account:
                    return c.source or inp.name, c.row0 + j
    return None


def located(exc: OcrledgerError, find: Callable[[tuple[Any, ...]], tuple[str, int] | None]) -> OcrledgerError:
    """A kernel error that names its record but not its file and row, with them (``find``: ``find_call`` over the
    inputs, wherever they are read); other errors as they are."""
    call = getattr(exc, "call", None)
    if call is None or exc.file is not None:
        return exc
    where = find(call)
    return exc.at(file=where[0], row=where[1]) if where is not None else exc


def _soon(name: str, fn: Callable[..., Any], *args: Any) -> "Future[Any]":
    """``fn(*args)`` on a thread of its own, started now; the future of its result."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix=f"ocrledger-{name}")
    try:
        return pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)


def _fixed_texts_soon(catalog: Catalog, plans: PlanColumns) -> "Future[billfiles.FixedTexts]":
    """``bills.files.fixed_texts`` on a second thread: the rating steps that follow release the GIL."""
    return _soon("bill-texts", billfiles.fixed_texts, catalog, plans)


def _known_rows(inputs: list[CallInput]) -> int | None:
    """The number of calls in ``inputs`` when every one knows it up front (Parquet metadata), else None."""
    rows = [i.rows for i in inputs]
    return None if None in rows else sum(r for r in rows if r is not None)


def _prepare_soon(accounts: Accounts | str | Path, catalog: Catalog) -> "Future[_Prepared]":
    """On a second thread, while the calls are read: load the accounts (given a path) and build the
    kernel tables of the parties they list (the calls' unknown parties are appended later)."""
    def prepare() -> _Prepared:
        acc = accounts if isinstance(accounts, Accounts) else load_accounts(accounts, catalog)
        tables, plans = SetupTables(catalog, acc).tables(acc.parties())
        return _Prepared(acc, tables, plans.columns, addon_index(catalog, acc))

    return _soon("accounts", prepare)


@dataclass(frozen=True)
class _Prepared:
    accounts: Accounts
    tables: KernelTables
    """For the listed parties only (``engine.tables.extend_tables`` adds the others)."""
    plans: PlanColumns
    """Kernel index order."""
    addons: AddonIndex
    """The QPS add-ons by party."""
    parties: Sequence[tuple[str, str]] | None = None
    """The listed parties ``tables`` hold, in order (None: every party of ``accounts``)."""


def _publish(out_dir: Path, spill: Path, summary: dict[str, Any], calls_tmp: Path | None, diff: Any) -> dict[str, Path]:
    """Move the outputs into ``out_dir`` (bills.json and bills.txt are already in ``spill``)."""
    staged: dict[str, str] = {"summary.json": json.dumps(summary, indent=2) + "\n"}
    if diff is not None:
        staged["diff.json"] = json.dumps(diff.to_dict(), indent=2) + "\n"
        staged["diff.txt"] = diff.to_text()
    for name, text in staged.items():
        (spill / name).write_text(text, encoding="utf-8")
    files = {}
    stale = out_dir / "calls.parquet"
    if calls_tmp is None and (stale.exists() or stale.is_symlink()):  # bills only: no earlier run's calls beside them
        shutil.rmtree(stale) if stale.is_dir() and not stale.is_symlink() else stale.unlink()
    if calls_tmp is not None and stale.is_dir() and not stale.is_symlink():  # a Dask run's folder of parts
        shutil.rmtree(stale)
    for name in ["bills.json", "bills.txt", *staged, *(["calls.parquet"] if calls_tmp is not None else [])]:
        src = calls_tmp if name == "calls.parquet" and calls_tmp is not None else spill / name
        os.replace(src, out_dir / name)  # replaces a symlink itself, never its target
        files[name] = out_dir / name
    return files


# ----------------------------------------------------------------------------------------------
# spill buckets


def _no_names() -> Any:
    import pyarrow as pa

    return pa.array([], pa.string())


class _Buckets:
    """``k`` append-only buckets of record batches: in memory when k == 1, else Arrow IPC files."""

    def __init__(self, k: int, folder: Path, prefix: str) -> None:
        self.k, self.folder, self.prefix = k, folder, prefix
        self.memory: list[Any] = []
        self.writers: dict[int, Any] = {}
        self.rows = np.zeros(k, dtype=np.int64)

    def add(self, batch: Any, part: np.ndarray | None) -> None:
        import pyarrow as pa

        if batch.num_rows == 0:
            return
        if self.k == 1:
            self.memory.append(batch)
            self.rows[0] += batch.num_rows
            return
        assert part is not None
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.k + 1))
        taken = batch.take(pa.array(order))
        for b in np.flatnonzero(np.diff(bounds)).tolist():
            piece = taken.slice(int(bounds[b]), int(bounds[b + 1] - bounds[b]))
            self._writer(b, batch.schema).write_batch(piece)
            self.rows[b] += piece.num_rows

    def _writer(self, b: int, schema: Any) -> Any:
        import pyarrow as pa

        w = self.writers.get(b)
        if w is None:
            sink = pa.OSFile(str(self.folder / f"{self.prefix}-{b:05d}.arrows"), "wb")
            w = pa.ipc.new_stream(sink, schema, options=pa.ipc.IpcWriteOptions(compression="lz4"))
            self.writers[b] = (w, sink)
            return w
        return w[0]

    def close(self) -> None:
        for w, sink in self.writers.values():
            w.close()
            sink.close()
        self.writers = {}

    def take(self, b: int) -> Any:
        """The whole bucket ``b`` as a Table (its file is deleted), or None when empty."""
        import pyarrow as pa

        if self.k == 1:
            batches, self.memory = self.memory, []
            return pa.Table.from_batches(batches) if batches else None
        path = self.folder / f"{self.prefix}-{b:05d}.arrows"
        if not path.exists():
            return None
        with pa.OSFile(str(path), "rb") as src:
            table = pa.ipc.open_stream(src).read_all()
        path.unlink()
        return table


_W = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


def rid_hash(arr: Any) -> np.ndarray:
    """A deterministic 64-bit hash of each (non-empty) string: length, first, middle and last 8 bytes.

    Used only to send every copy of a record id to the same bucket; collisions cost nothing but
    balance. Reads the Arrow buffers directly (no Python string objects).
    """
    offsets, data = string_buffers(arr)
    offsets = offsets.astype(np.int64)
    n = len(arr)
    start, length = offsets[:-1], np.diff(offsets)
    h = length.astype(np.uint64) * np.uint64(0xFF51AFD7ED558CCD)
    padded = np.concatenate([data, np.zeros(8, dtype=np.uint8)])
    windows = np.lib.stride_tricks.as_strided(padded, shape=(len(padded) - 7, 8), strides=(1, 1))  # 8 bytes at each offset
    short = np.minimum(length, 7).astype(np.uint64) * np.uint64(8)
    keep = np.where(length >= 8, np.uint64(0xFFFFFFFFFFFFFFFF), (np.uint64(1) << short) - np.uint64(1))  # bytes of the id
    for w, first in zip(_W, (start, start + np.maximum(length // 2 - 4, 0), start + np.maximum(length - 8, 0))):
        word = windows[first].view("<u8").reshape(n) & keep  # one gather of 8 bytes per id (little-endian word)
        h = (h ^ word) * w
        h ^= h >> np.uint64(29)
    return h


# ----------------------------------------------------------------------------------------------
# the run


class _Run:
    def __init__(self, catalog: Catalog, prepared: "Future[_Prepared]", impl: ModuleType,
                 wanted: int | None, chunk_rows: int, bucket_rows: int, spill: Path, report: Progress) -> None:
        self.catalog, self._prepared, self.impl, self.wanted = catalog, prepared, impl, wanted
        self.chunk_rows, self.bucket_rows, self.spill, self.report = chunk_rows, bucket_rows, spill, report
        self.clock = catalog.clock
        self.cut = int(self.clock.month_starts[wanted + 1]) if wanted is not None else self.clock.max_ms
        self.account_names = _no_names()
        """Every account id the calls name (pyarrow strings), numbered in the order first seen."""
        self.minutes: dict[int, int] = {}
        self.pkeys: set[int] = set()
        self.read_rows = 0
        self.kept_rows = 0
        self.by_rid: _Buckets | None = None
        self.by_time: _Buckets | None = None
        self.time_bounds = np.zeros(0, dtype=np.int64)
        self.writer_thread: Any = None

    def prepared(self) -> _Prepared:
        """The accounts and their parties' tables (waiting for them while they are still being made)."""
        return self._prepared.result()

    def credentials(self, keys: np.ndarray) -> Accounts:
        """The accounts whose ``[[credential]]`` entries resolve a calls input's keys (read as it needs them)."""
        return self.accounts

    @property
    def accounts(self) -> Accounts:
        return self.prepared().accounts

    @property
    def addons(self) -> AddonIndex:
        return self.prepared().addons

    # -- pass 1 ---------------------------------------------------------------------------------
    def read(self, inputs: list[CallInput], memory_rows: int = 0) -> "Held | None":
        """Read, validate and encode every chunk.

        Returns the kept calls when the input has at most ``memory_rows`` of them (they are then
        rated in memory by ``rate_in_memory``); otherwise spills them into record-id buckets for
        ``dedup`` and returns None.
        """
        total = _known_rows(inputs)
        estimate = total
        if estimate is None:
            estimate = sum(i.rows if i.rows is not None else max(1, i.size // 24) for i in inputs)
        limit = memory_rows if total is None or total <= memory_rows else 0
        held = Held(total if limit and total is not None else self.chunk_rows)
        for n_rows, chunk in self._chunks(inputs, parallel=bool(limit) and total is not None):
            self._keep(chunk, held)
            self.read_rows += n_rows
            self.report("read", self.read_rows, total)
            if self.by_rid is None and held.n > max(self.bucket_rows, limit):
                self.by_rid = _Buckets(max(2, math.ceil(max(estimate, held.n) / self.bucket_rows)), self.spill, "rid")
            if self.by_rid is not None:
                self._spill(held)
        if self.by_rid is None and limit:
            self._note_parties(held.pkey[: held.n])
            self._parties()
            return held
        if self.by_rid is None:
            self.by_rid = _Buckets(1, self.spill, "rid")
            self._spill(held)
        self._parties()
        self.by_rid.close()
        return None

    def _spill(self, held: "Held") -> None:
        """Move the held calls into the record-id buckets (counting them per minute and noting their parties)."""
        assert self.by_rid is not None
        for batch in held.batches():
            self._note_parties(batch.column(1).to_numpy())
            self._histogram(batch)
            self.by_rid.add(batch, self._rid_part(batch) if self.by_rid.k > 1 else None)
        held.clear()

    def _note_parties(self, pkey: np.ndarray) -> None:
        if len(pkey):
            self.pkeys.update(distinct_values(pkey, int(pkey.max()) + 1).tolist())

    def _rid_part(self, batch: Any) -> np.ndarray:
        assert self.by_rid is not None
        return (rid_hash(batch.column(0)) % np.uint64(self.by_rid.k)).astype(np.int64)

    def _chunks(self, inputs: list[CallInput], parallel: bool) -> Iterator[tuple[int, "Chunk"]]:
        """(rows, validated chunk) of every input in order; with ``parallel`` (the whole input is held in
        memory anyway) two inputs are decoded and validated at a time, in threads (Arrow releases the GIL).
        The first bad record in input order is still the one reported."""
        catalog = self.catalog

        def each(inp: CallInput) -> Iterator[tuple[int, Chunk]]:
            return validated_chunks(inp, catalog, self.credentials)

        def all_of(inp: CallInput) -> list[tuple[int, Chunk]]:
            return list(each(inp))

        if not parallel or len(inputs) < 2:
            for inp in inputs:
                yield from each(inp)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:
            ahead = iter(inputs)
            futures = deque(pool.submit(all_of, inp) for inp in islice(ahead, READ_AHEAD))
            try:
                while futures:
                    chunks = futures.popleft().result()
                    for inp in islice(ahead, 1):  # one more file in flight, so at most READ_AHEAD are held
                        futures.append(pool.submit(all_of, inp))
                    yield from chunks
            finally:
                for fut in futures:
                    fut.cancel()

    def _keep(self, c: "Chunk", held: "Held") -> None:
        """Append the validated chunk's calls that are kept (before the cut) to ``held``, encoded."""
        keep = c.ts < self.cut
        rows = None
        if not keep.all():
            rows = np.flatnonzero(keep)
            c = Chunk(c.rid.take(rows), c.account[rows], c.accounts, c.channel[rows], c.api[rows], c.ts[rows],
                      c.ok[rows], c.source, c.row0, c.bad[rows] if c.bad is not None else None)
        m = len(c.ts)
        if m == 0:
            return
        pkey, api, ts, ok, bad = held.extend(c.rid, m, (c.source, c.row0, rows))
        np.take(self._account_numbers(c.accounts), c.account, out=pkey)
        pkey *= 2  # account * 2 + channel (< 2^31 accounts)
        pkey += c.channel
        api[:] = c.api
        ts[:] = c.ts
        ok[:] = c.ok
        bad[:] = c.bad if c.bad is not None else 0
        self.kept_rows += m

    def _account_numbers(self, names: Any) -> np.ndarray:
        """The run's number (int32) of each of a chunk's account names; names not seen before are numbered on."""
        import pyarrow as pa
        import pyarrow.compute as pc

        at = pc.index_in(names, value_set=self.account_names)
        if at.null_count:
            fresh = pc.unique(names.filter(at.is_null()))
            self.account_names = pa.concat_arrays([self.account_names, fresh])
            at = pc.index_in(names, value_set=self.account_names)
        return at.to_numpy(zero_copy_only=False).astype(np.int32)

    def _histogram(self, batch: Any) -> None:
        """Count the batch's calls per minute (the time buckets are chosen from it)."""
        minutes, counts = np.unique(batch.column(3).to_numpy() // MINUTE_MS, return_counts=True)
        hist = self.minutes
        for m, n in zip(minutes.tolist(), counts.tolist()):
            hist[m] = hist.get(m, 0) + n

    def _parties(self) -> None:
        """Known parties first (file order), then the unknown ones seen in the calls, sorted (as ``rate``)."""
        ready = self.prepared()
        known = ready.parties if ready.parties is not None else self.accounts.parties()
        index = {p: i for i, p in enumerate(known)}
        seen = self._seen_pkeys()
        names = self.account_names.to_pylist()
        unknown = sorted(
            {(names[k // 2], CHANNELS[k % 2]) for k in seen.tolist()} - set(index)
        )
        self.parties = list(known) + unknown
        index = {p: i for i, p in enumerate(self.parties)}
        self.remap = np.full(2 * max(len(names), 1), -1, dtype=np.int32)
        for k in seen.tolist():
            self.remap[k] = index[(names[k // 2], CHANNELS[k % 2])]
        party_names = np.array([a for a, _ in self.parties] or [""], dtype=object)
        self.party_market = np.array([ch == MARKETPLACE for _, ch in self.parties], dtype=np.int8)
        self.party_rank = ordering.party_ranks([a for a, _ in self.parties], self.party_market)
        self.party_names = party_names
        self.tables, self.plans = extend_tables(ready.tables, unknown), ready.plans
        self.state = KernelState.fresh(self.tables, self.plans.quantity)

    def _seen_pkeys(self) -> np.ndarray:
        return np.array(sorted(self.pkeys), dtype=np.int64)

    # -- pass 2 ---------------------------------------------------------------------------------
    def dedup(self) -> None:
        import pyarrow as pa

        assert self.by_rid is not None
        bounds = self._time_bounds()
        k = len(bounds)
        self.time_bounds = bounds
        self.by_time = _Buckets(k, self.spill, "time")
        done = 0
        for b in range(self.by_rid.k):
            table = self.by_rid.take(b)
            if table is None:
                continue
            table = table.combine_chunks()
            party = self.remap[table.column("pkey").to_numpy()]
            ts = table.column("ts").to_numpy()
            api = table.column("api").to_numpy()
            ok = table.column("ok").to_numpy()
            if "dup" in table.column_names:  # settled before, over every copy (the Dask rerate's partitions)
                dup = table.column("dup").to_numpy()
            else:
                offsets, data = string_buffers(table.column("rid").combine_chunks())
                dup = ordering.duplicates(offsets, data, self.party_market[party], ts, party, self.party_rank, api, ok)
            out = pa.Table.from_arrays(
                [table.column("rid"), pa.array(party), pa.array(api), pa.array(ts), pa.array(ok), pa.array(dup),
                 table.column("bad")],
                names=["rid", "party", "api", "ts", "ok", "dup", "bad"],
            )
            for batch in out.to_batches():
                part = np.searchsorted(bounds, batch.column(3).to_numpy(), side="right") - 1 if k > 1 else None
                self.by_time.add(batch, part)
            done += table.num_rows
            self.report("dedup", done, self.kept_rows)
        self.by_time.close()

    def _time_bounds(self) -> np.ndarray:
        """Start instants (ms) of the time buckets: whole minutes, about bucket_rows calls each."""
        if self.kept_rows <= self.bucket_rows or not self.minutes:
            return np.zeros(1, dtype=np.int64)
        minutes = np.array(sorted(self.minutes), dtype=np.int64)
        counts = np.array([self.minutes[m] for m in minutes.tolist()], dtype=np.int64)
        starts = [0]
        acc = 0
        for i, c in enumerate(counts.tolist()):
            if acc and acc + c > self.bucket_rows:
                starts.append(i)
                acc = 0
            acc += c
        bounds = minutes[starts] * MINUTE_MS
        bounds[0] = np.iinfo(np.int64).min
        return bounds

    # -- pass 3 ---------------------------------------------------------------------------------
    def rate(self, calls_path: Path | None) -> None:
        import pyarrow as pa

        assert self.by_time is not None
        tables = self.tables
        self.usage = UsageCounts(tables)
        merged: QpsLines = {}
        self.status_counts = np.zeros(len(STATUS_NAMES), dtype=np.int64)
        self.source_counts = np.zeros(len(SOURCE_NAMES) + 1, dtype=np.int64)
        self.reported = 0
        self.amount = 0
        self.rated = 0
        volume = np.array([a.tier_mode == VOLUME for a in self.catalog.apis], dtype=bool)
        self.needs_reprice = bool(volume.any())
        writer = _CallsWriter(calls_path, self, hidden=self.needs_reprice) if calls_path is not None else None
        try:
            for b in range(self.by_time.k):
                table = self.by_time.take(b)
                if table is None:
                    continue
                table = self._in_charge_order(table.combine_chunks())
                ts = table.column("ts").to_numpy()
                batch = Batch(
                    party=np.ascontiguousarray(table.column("party").to_numpy(), dtype=np.int32),
                    api=np.ascontiguousarray(table.column("api").to_numpy(), dtype=np.int32),
                    ts=np.ascontiguousarray(ts, dtype=np.int64),
                    period=self.clock.periods(ts),
                    success=np.ascontiguousarray(table.column("ok").to_numpy(), dtype=np.int8),
                    duplicate=np.ascontiguousarray(table.column("dup").to_numpy(), dtype=np.int8),
                )
                bad = table.column("bad").to_numpy()
                blocked = _kernel.hold_back(batch, bad) if bad.any() else None
                try:
                    out = _kernel.run(self.impl, tables, self.state, batch)
                except (MoneyError, StateError) as exc:  # the record (its file and row are not kept here)
                    k = exc.call_index  # type: ignore[attr-defined]
                    record = table.column("rid")[k].as_py()
                    raise _kernel.name_call(exc, record, None, None, _fast.call_of(self, batch, k)) from None
                if blocked is not None:
                    _kernel.reject(batch, out, blocked)
                self.usage.add(batch, out)
                for key, (peak, over) in qps_lines(
                    self.catalog, self.addons, self.parties, *second_counts(batch, out, tables.n_api)
                ).items():
                    old = merged.get(key)
                    merged[key] = (peak, over) if old is None else (max(old[0], peak), old[1] + over)
                self.rated += len(batch)
                shown = np.ones(len(batch), dtype=bool) if self.wanted is None else batch.period == self.wanted
                if not shown.all():
                    idx = np.flatnonzero(shown)
                    batch, out, table = batch.take(idx), _take_out(out, idx), table.take(pa.array(idx))
                self.status_counts += np.bincount(out.status, minlength=len(STATUS_NAMES))[: len(STATUS_NAMES)]
                self.source_counts += np.bincount(out.source, minlength=len(SOURCE_NAMES) + 1)
                self.reported += len(batch)
                self.amount += int(out.amount.sum())
                if writer is not None:
                    writer.write(table.column("rid"), batch, out)
                self.report("rate", self.rated, self.kept_rows)
            self.qps = QpsArrays.from_mapping(merged, tables.n_api)
        finally:
            if writer is not None:
                writer.close()
        if writer is not None and self.needs_reprice:
            self.amount = writer.reprice(self.volume_prices())

    def _in_charge_order(self, table: Any) -> Any:
        """A time bucket's rows in charge order (``engine.order.charge_order``, its dup flags as the last key)."""
        import pyarrow as pa

        party = table.column("party").to_numpy()
        offsets, data = string_buffers(table.column("rid").combine_chunks())
        order = ordering.charge_order(table.column("ts").to_numpy(), offsets, data, party, self.party_rank,
                                      table.column("api").to_numpy(), table.column("ok").to_numpy(),
                                      table.column("dup").to_numpy())
        return table.take(pa.array(order))

    def volume_prices(self) -> VolumePrices:
        """The tier and unit price of every volume-tier line with PAYG calls (once every call is counted)."""
        return VolumePrices.of_lines(self.catalog, self.usage.line_arrays())

    # -- results --------------------------------------------------------------------------------
    def bill_maker(self, cols: BillColumns) -> Callable[[], list[Bill]]:
        """Makes the ``Bill`` objects of ``cols`` when called; holds only what they need, not the run."""
        catalog, parties, plans = self.catalog, self.parties, self.plans
        return lambda: bills_from_columns(cols, catalog, parties, plans)

    def bill_columns(self) -> BillColumns:
        """The bills (of the wanted month, or all) as columns."""
        # the in-memory pass lists only seconds with two calls or more: a line it does not list peaked at one
        return bill_columns(self.usage.line_arrays(), self.usage.plan_used, self.catalog, self.parties,
                            self.plans, self.qps, self.tables, self.wanted, qps_missing=(1, 0))

    def rate_held(self, held: Held | None, calls_path: Path | None) -> None:
        """Rate the read calls: in memory when they are ``held``, else by the spill passes (buckets filled)."""
        if held is not None:
            self.rate_in_memory(held, calls_path)
        else:
            self.dedup()
            self.rate(calls_path)

    def rate_in_memory(self, held: Held, calls_path: Path | None) -> None:
        """Dedup, order and rate the whole input in one pass (it fits ``memory_rows``); see ``memory``."""
        _fast.rate_in_memory(self, held, calls_path)

    def summary(self, bills: BillFacts, elapsed: float) -> dict[str, Any]:
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {
            "month": period_label(self.wanted) if self.wanted is not None else None,
            "kernel": self.impl.IMPLEMENTATION,
            "calls_read": self.read_rows,
            "calls_rated": self.rated,
            "calls": self.reported,
            "status": {name: int(c) for name, c in zip(STATUS_NAMES, self.status_counts.tolist())},
            "source": {name: int(c) for name, c in zip(SOURCE_NAMES, self.source_counts[1:].tolist())},
            "amount_exact": format_exact(self.amount),
            "bills": bills.count,
            "bill_total": str(bills.total),
            "parties": bills.parties,
            "periods": bills.periods,
            "buckets": {"record_id": self.by_rid.k if self.by_rid else 1,
                        "time": self.by_time.k if self.by_time else 1},
            "seconds": round(elapsed, 3),
            "calls_per_second": round(self.read_rows / elapsed) if elapsed > 0 else None,
            "peak_rss_mb": round(rss_kb / 1024, 1),
        }


def _take_out(out: Outcomes, idx: np.ndarray) -> Outcomes:
    return Outcomes(out.status[idx], out.source[idx], out.plan[idx], out.tier[idx], out.amount[idx])


class _CallsWriter:
    """Writes the per-call explanation to Parquet, one row group per rated bucket."""

    def __init__(self, path: Path, run: _Run, hidden: bool) -> None:
        import pyarrow.parquet as pq

        self.path, self.run, self.hidden = path, run, hidden
        self.schema = calls_schema(hidden)
        self.writer = pq.ParquetWriter(str(path), self.schema)
        self.builder = CallColumns(run.catalog, run.party_names, run.party_market, run.plans.ids, run.tables.n_plan)

    def write(self, rid: Any, batch: Batch, out: Outcomes) -> None:
        import pyarrow as pa

        if len(batch) == 0:
            return
        cols = self.builder.columns(rid, batch, out, self.builder.dictionaries(batch.party, batch.period))
        if self.hidden:
            cols.append(pa.array((batch.party.astype(np.int64) * N_PERIODS + batch.period) * self.run.tables.n_api
                                 + batch.api))
        self.writer.write_table(pa.Table.from_arrays(cols, schema=self.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def reprice(self, prices: VolumePrices) -> int:
        """Rewrite tier and amount of volume-tier PAYG calls (known once their month is complete)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        tmp = self.path.with_name("calls.reprice.parquet")
        schema = self.schema.remove(self.schema.get_field_index("_line"))
        total = 0
        with pq.ParquetWriter(str(tmp), schema) as w:
            for batch in pq.ParquetFile(str(self.path)).iter_batches():
                line = batch.column("_line").to_numpy()
                amount = batch.column("amount").to_numpy().copy()
                tier = batch.column("tier")
                if len(prices):
                    payg = pc.fill_null(pc.equal(batch.column("source").cast(pa.string()), "payg"), False)
                    t = tier.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int16)
                    prices.apply(line, payg.to_numpy(zero_copy_only=False), t, amount)
                    tier = pa.array(t, mask=t < 0)
                total += int(amount.sum())
                cols = [batch.column(name) for name in schema.names]
                cols[schema.get_field_index("amount")] = pa.array(amount)
                cols[schema.get_field_index("tier")] = tier
                w.write_table(pa.Table.from_arrays(cols, schema=schema))
        os.replace(tmp, self.path)
        return total


@dataclass
class PartResult:
    """What ``rate_part`` gives back: the partition's summary (as ``rerate``'s) and, when asked, its bills."""

    summary: dict[str, Any]
    bills: list[Bill] | None


def rate_part(chunks: Sequence[tuple[Chunk, np.ndarray]], engine: "Engine", wanted: int | None,
              folder: Path | None, *, calls_file: bool = True, want_bills: bool = False,
              memory_rows: int = DEFAULT_MEMORY_ROWS, bucket_rows: int = DEFAULT_BUCKET_ROWS) -> PartResult:
    """Rate one partition of whole accounts whose duplicates are settled already (the Dask rerate's last step).

    ``chunks`` are validated chunks (every call before the ``wanted`` month's end) with each call's
    duplicate flag, settled over every copy of its record id, wherever it was. The partition's
    parties get tables of their own (``engine.setup``: listed ones in setup order, then the
    unknown ones sorted); the calls are ordered and rated by the rerater's own passes and its writers
    put bills.json, bills.txt and (with ``calls_file``) calls.parquet into ``folder``. A partition of at
    most ``memory_rows`` calls is rated in memory with the compiled helpers; a larger one (one account
    larger than the budget) by the spill passes, which hold about ``bucket_rows`` calls at a time beside
    the chunks given (spill files in a hidden folder inside ``folder``, else the temporary folder). The
    numbers of the summary are those of ``rerate`` over the same calls.
    """
    started = time.perf_counter()
    catalog = engine.catalog
    pending: "Future[_Prepared]" = Future()
    scratch = Path(tempfile.mkdtemp(prefix=".rerate-part-", dir=folder))
    try:
        run = _Run(catalog, pending, engine.kernel, wanted, DEFAULT_CHUNK_ROWS, bucket_rows, scratch,
                   progress_reporter(False))
        total = sum(len(c.ts) for c, _ in chunks)
        held: Held | None = None
        if total <= memory_rows and _fast.available():
            held = Held(total)
            for c, _ in chunks:
                run._keep(c, held)
                run.read_rows += len(c.ts)
            held.duplicate = np.concatenate([d for _, d in chunks]).astype(np.int8) if chunks else np.zeros(0, np.int8)
            if held.n != len(held.duplicate):
                raise ValueError("rate_part: a chunk holds calls after the month (cut them before settling duplicates)")
            run._note_parties(held.pkey[: held.n])
        else:  # the spill passes: record-id buckets (one in memory when it fits), time buckets, rated in turn
            run.by_rid = _Buckets(max(1, math.ceil(total / bucket_rows)) if total > memory_rows else 1, scratch, "rid")
            step = max(1, min(bucket_rows, DEFAULT_CHUNK_ROWS))  # a slice at a time: its copies stay small
            for whole, whole_dup in chunks:
                for a in range(0, len(whole.ts), step):
                    c, b = _slice(whole, a, a + step), a + step
                    one = Held(len(c.ts))
                    run._keep(c, one)
                    run.read_rows += len(c.ts)
                    if one.n != len(c.ts):
                        raise ValueError("rate_part: a chunk holds calls after the month (cut them before settling "
                                         "duplicates)")
                    one.duplicate = whole_dup[a:b].astype(np.int8)
                    run._spill(one)
            run.by_rid.close()
        names = run.account_names.to_pylist()
        present = [(names[k // 2], CHANNELS[k % 2]) for k in run._seen_pkeys().tolist()]
        at = engine.setup.finder.find([a for a, _ in present],
                                      np.array([ch != OFFICIAL for _, ch in present], dtype=np.int8))
        known = np.flatnonzero(at >= 0)
        known = known[np.argsort(at[known])]  # the listed parties in setup order
        listed = [present[k] for k in known.tolist()]
        tables, plans = engine.setup.tables(listed, at[known])
        pending.set_result(_Prepared(engine.accounts, tables, plans.columns, engine.addons, listed))
        run._parties()
        calls_path = folder / "calls.parquet" if folder is not None and calls_file else None
        fixed = _fixed_texts_soon(catalog, run.plans) if folder is not None and billfiles.available() else None
        try:
            run.rate_held(held, calls_path)
            cols, bills = _bill_files(run, folder, fixed)
            facts = BillFacts.of_columns(cols)
            if run.writer_thread is not None:
                run.writer_thread.join()
        finally:
            if run.writer_thread is not None and run.writer_thread.is_alive():
                try:
                    run.writer_thread.join()
                except Exception:  # noqa: BLE001 - an error is already on its way
                    pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = run.summary(facts, time.perf_counter() - started)
    return PartResult(summary, (bills() if callable(bills) else bills) if want_bills else None)


def _slice(c: Chunk, a: int, b: int) -> Chunk:
    """Calls ``a:b`` of a chunk (views)."""
    b = min(b, len(c.ts))
    return Chunk(c.rid.slice(a, b - a), c.account[a:b], c.accounts, c.channel[a:b], c.api[a:b], c.ts[a:b], c.ok[a:b],
                 c.source, c.row0 + a, c.bad[a:b] if c.bad is not None else None)


def read_calls_parquet(path: str | Path) -> Any:
    """The per-call explanation written by ``rerate`` as a pyarrow Table."""
    import pyarrow.parquet as pq

    return pq.read_table(path)


__all__: Sequence[str] = ("rerate", "rate_part", "PartResult", "validated_chunks", "find_call", "located", "expand_glob", "RerateResult", "STATUS_NAMES", "SOURCE_NAMES", "read_calls_parquet")
