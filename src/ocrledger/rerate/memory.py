"""The rerater's in-memory pass: an input that fits ``memory_rows`` is rated without spilling.

``rerater._Run.read`` validates and encodes the chunks as usual (Arrow dictionary encoding, bulk
conversions); then, instead of hashing record ids into spill buckets and sorting time buckets,
this module works on the whole input at once, with the compiled helpers of ``kernel/`` (``_hashing.pyx``,
``_sorting.pyx``, ``_passes.pyx``):

1. **duplicates** and 2. **charge order**: the steps of ``engine.order.charge`` (the one tie and
   duplicate rule of every pass), scheduled for this pass: the radix argsort of the instants
   (``order.sort_ts``) runs on the other core from the start, while the record ids are joined and
   their repeats found (``order.duplicates``: hashed straight from the Arrow string buffers); then
   the rare runs of equal instants are ordered (``order.break_ties``) and the columns follow in one
   packed gather;
3. **rating**: the kernel on the whole period (one ``KernelState``), in row-group steps;
4. **usage** counted into dense (party, month, API, category) counters (``usage_counts``), **QPS**
   seconds counted in one pass over the calls in time order (``qps_seconds``);
5. **calls.parquet** written by a background thread (Arrow's writer releases the GIL) that takes
   each row group as soon as the kernel has rated it, while the main thread goes on to the bills;
   the record ids are gathered into charge order a row group at a time (``RecordIds``).

The results are those of the spill passes, byte for byte (``tests/rerate/test_rerate_fast.py``).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Protocol

import numpy as np

from ..bills.files import json_pieces
from ..codes import Source, Status
from ..engine import order as ordering
from ..engine.pricing import VolumePrices
from ..engine.qps import AddonIndex, QpsArrays, qps_arrays
from ..engine.usage import UsageCounts
from ..errors import MoneyError, StateError
from ..io.arrow_columns import string_buffers
from ..kernel import select as _kernel
from ..kernel.contract import Batch, KernelState, KernelTables, Outcomes
from ..model.account_columns import PlanColumns
from ..model.accounts import CHANNELS, Accounts
from ..model.catalog import VOLUME, Catalog
from ..model.clock import BillingClock
from .calls_file import CallColumns
from .held import Held
from .schema import STATUS_NAMES, calls_schema


class Run(Protocol):
    """What this pass reads from and fills in on the rerater's run (``rerater._Run``)."""

    catalog: Catalog
    clock: BillingClock
    wanted: int | None
    impl: ModuleType
    report: Callable[[str, int, int | None], None]
    kept_rows: int
    parties: list[tuple[str, str]]
    remap: np.ndarray
    party_rank: np.ndarray
    party_market: np.ndarray
    party_names: Any
    tables: KernelTables
    plans: PlanColumns
    state: KernelState
    usage: Any
    qps: QpsArrays
    status_counts: np.ndarray
    source_counts: np.ndarray
    reported: int
    amount: int
    rated: int
    needs_reprice: bool
    writer_thread: Any

    @property
    def accounts(self) -> Accounts: ...

    @property
    def addons(self) -> AddonIndex: ...

    def volume_prices(self) -> VolumePrices: ...


def _helpers() -> Any:
    core = _kernel.helpers()
    if core is None or not hasattr(core, "string_repeats"):
        return None
    return core


_core = _helpers()

_WRITER_SYNC = os.environ.get("OCRLEDGER_WRITER_SYNC") == "1"
ROW_GROUP = 1 << 20
"""Rows per row group of calls.parquet."""
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": os.environ.get("OCRLEDGER_CALLS_COMPRESSION", "snappy"),
    "use_dictionary": ["account", "api", "channel", "period", "source", "plan", "status"],
    "column_encoding": {"ts": "DELTA_BINARY_PACKED"},  # sorted instants: small deltas
    "write_statistics": ["ts", "amount", "tier"],
    "write_batch_size": 1 << 16,
}
"""How calls.parquet is written: min/max statistics of the text columns cost about 0.9 s per 10^7 rows
(the record ids alone 0.4 s), so only the numeric columns carry them. Values go to the encoders
65,536 at a time rather than pyarrow's 1,024: 0.98-0.99 s against 1.05-1.12 s for 10^7 rows."""
_TIMES = os.environ.get("OCRLEDGER_TIMES") == "1"
_T0 = [time.perf_counter(), time.process_time()]
log = logging.getLogger("ocrledger.rerate")
"""The rerater's timings (DEBUG): shown by ``ocrledger -vv``, or on stderr with OCRLEDGER_TIMES=1."""
if _TIMES and not log.handlers:  # asked for by the environment: a handler of its own, as before
    _times_handler = logging.StreamHandler()
    _times_handler.setFormatter(logging.Formatter("[ocrledger] %(message)s"))
    log.addHandler(_times_handler)
    log.setLevel(logging.DEBUG)


def tick(what: str) -> None:
    """Log (DEBUG, ``ocrledger.rerate``) the wall and CPU seconds since the previous tick and the resident
    memory now, where /proc tells it."""
    if log.isEnabledFor(logging.DEBUG):
        now, cpu = time.perf_counter(), time.process_time()
        log.debug("%s: %.3f s wall, %.3f s CPU%s", what, now - _T0[0], cpu - _T0[1], _rss())
        _T0[0], _T0[1] = now, cpu


def _rss() -> str:
    try:
        with open("/proc/self/statm") as fh:
            return f", {int(fh.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') >> 20} MB resident"
    except (OSError, ValueError, IndexError):
        return ""


def available() -> bool:
    """True when the compiled helpers are loaded (else the rerater always uses its spill passes)."""
    return _core is not None


bills_json_pieces = json_pieces
"""The twin's bills.json pieces (``bills.files.json_pieces``), by the name ``tests/rerate/test_rerate_fast.py`` uses."""


# ----------------------------------------------------------------------------------------------




def sorted_periods(run: Run, ts: np.ndarray) -> np.ndarray:
    """Month index (int32) of non-decreasing instants (``clock.periods`` without a search per call)."""
    n = len(ts)
    period = np.empty(n, dtype=np.int32)
    if not n:
        return period
    starts = run.clock.month_starts
    first, last = run.clock.period(int(ts[0])), run.clock.period(int(ts[-1]))
    at = [0] + [int(np.searchsorted(ts, starts[p], side="left")) for p in range(first + 1, last + 1)] + [n]
    for k, p in enumerate(range(first, last + 1)):
        period[at[k]:at[k + 1]] = p
    return period


def qps(run: Run, batch: Batch, out: Outcomes) -> QpsArrays:
    """``qps.qps_arrays`` of the batch (calls in time order), listing only seconds with two or more calls
    when every API allows at least one: a line missing from it peaked at one call per second."""
    n = len(batch)
    tables = run.tables
    min_emit = 2 if min((a.qps for a in run.catalog.apis), default=1) >= 1 else 1
    cap = n // 2 + 1 if min_emit == 2 else n + 1
    o_pair = np.empty(cap, dtype=np.int64)
    o_sec = np.empty(cap, dtype=np.int64)
    o_cnt = np.empty(cap, dtype=np.int64)
    m = _core.qps_seconds(batch.party, batch.api, batch.ts, out.status, int(Status.DUPLICATE), tables.n_api,
                          tables.n_party, min_emit, o_pair, o_sec, o_cnt)
    o = np.lexsort((o_sec[:m], o_pair[:m]))
    return qps_arrays(run.catalog, run.addons, run.parties, o_pair[:m][o], o_sec[:m][o], o_cnt[:m][o])


class _Writer(threading.Thread):
    """Writes calls.parquet in the background; ``join`` re-raises what went wrong."""

    def __init__(self, work: Any) -> None:
        super().__init__(name="ocrledger-calls-writer", daemon=True)
        self.work = work
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # noqa: BLE001 - handed to join()
            self.error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def gather_text(offsets: np.ndarray, data: np.ndarray, perm: np.ndarray) -> Any:
    """The strings perm[0], perm[1], ... of (offsets, data) as one Arrow string (or large_string) array.

    One pass when the output fits a guess of its size: the source's total length for a permutation
    of every string, else the mean length times a quarter more; otherwise the lengths are summed
    first (a second random pass)."""
    import pyarrow as pa

    n, m = len(perm), len(offsets) - 1
    out_off = np.empty(n + 1, dtype=np.int32)
    size = int(offsets[-1] - offsets[0]) if m > 0 else 0
    guess = size if n == m else (size * n // max(m, 1)) * 5 // 4 + 4096
    if guess < (1 << 31) - 16:
        out_data = np.empty(guess + 16, dtype=np.uint8)  # 16 spare bytes: short strings are copied as two words
        try:
            _core.gather_strings(offsets, data, perm, out_off, out_data)
            return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(out_off), pa.py_buffer(out_data)])
        except ValueError:  # longer than the guess
            pass
    try:
        total = _core.string_lengths(offsets, perm, out_off)
    except OverflowError:  # 2 GiB of text or more: Arrow's own take (large_string) does it
        kind = pa.large_string() if offsets.dtype == np.int64 else pa.string()
        arr = pa.Array.from_buffers(kind, len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        return arr.take(pa.array(perm))
    out_data = np.empty(total + 16, dtype=np.uint8)
    _core.gather_strings(offsets, data, perm, out_off, out_data)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(out_off), pa.py_buffer(out_data)])


class RecordIds:
    """Record ids in charge order (rows ``perm`` of the held ids), gathered on a thread one row group at a
    time, so that the calls.parquet writer can write the first before the last is gathered."""

    def __init__(self, offsets: np.ndarray, data: np.ndarray, perm: np.ndarray, step: int) -> None:
        self.step = step
        self._parts: list[Any] = []
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        threading.Thread(target=self._gather, args=(offsets, data, perm), name="ocrledger-rid", daemon=True).start()

    def _gather(self, offsets: np.ndarray, data: np.ndarray, perm: np.ndarray) -> None:
        try:
            for lo in range(0, len(perm), self.step):
                part = gather_text(offsets, data, perm[lo: lo + self.step])
                with self._ready:
                    self._parts.append(part)
                    self._ready.notify_all()
        except BaseException as exc:  # noqa: BLE001 - raised by part()
            with self._ready:
                self._error = exc
                self._ready.notify_all()

    def part(self, k: int) -> Any:
        """The ids of rows k * step to (k + 1) * step (waiting for them). Each part is handed out once:
        this object lets go of it, so that written parts are freed as the writer goes."""
        with self._ready:
            while len(self._parts) <= k and self._error is None:
                self._ready.wait()
            if len(self._parts) <= k:
                raise RuntimeError("gathering the record ids failed") from self._error
            ids, self._parts[k] = self._parts[k], None
            if ids is None:
                raise RuntimeError(f"record ids part {k} was already taken")
            return ids


class RatedUpTo:
    """How many calls of the batch the kernel has rated so far; the calls.parquet writer waits on it."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._upto = 0
        self._failed = False

    def advance(self, upto: int) -> None:
        with self._ready:
            self._upto = upto
            self._ready.notify_all()

    def fail(self) -> None:
        with self._ready:
            self._failed = True
            self._ready.notify_all()

    def wait(self, upto: int) -> None:
        """Return once the first ``upto`` calls are rated; raise if rating stopped before."""
        with self._ready:
            while self._upto < upto and not self._failed:
                self._ready.wait()
            if self._upto < upto:
                raise RuntimeError("rating stopped before these calls were rated")


def write_calls(run: Run, path: Path, rid: RecordIds | None, span: tuple[int, int], batch: Batch,
                out: Outcomes, rated: RatedUpTo | None = None) -> _Writer:
    """Start writing the per-call explanation to ``path``: the calls of ``batch`` and ``out``, rows ``span``
    of the whole batch in charge order, whose record ids ``rid`` gathers in ``ROW_GROUP`` parts. Returns
    the running thread. With ``rated`` (counted in the whole batch's rows), each row group waits for
    its calls' outcomes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = calls_schema()
    n = len(batch)
    builder = CallColumns(run.catalog, run.party_names, run.party_market, run.plans.ids, run.tables.n_plan)
    dicts = builder.dictionaries(batch.party, batch.period)

    def columns(a: int) -> list[Any]:
        """Row group a // ROW_GROUP as Arrow columns (the plan dictionary: the group's own plans)."""
        b = min(n, a + ROW_GROUP)
        t0 = time.perf_counter()
        if rated is not None:
            rated.wait(span[0] + b)
        assert rid is not None
        ids = rid.part(a // ROW_GROUP)
        waited[0] += time.perf_counter() - t0
        return builder.columns(ids, batch.slice(a, b), out.slice(a, b), dicts)

    waited = [0.0]

    def work() -> None:
        spent = [0.0, 0.0]
        # the next row group's columns are built on a helper thread while this one is written
        with pq.ParquetWriter(str(path), schema, **PARQUET_OPTIONS) as writer, ThreadPoolExecutor(1) as ahead:
            pending = ahead.submit(columns, 0) if n else None
            for a in range(0, n, ROW_GROUP):
                t0 = time.perf_counter()
                cols = pending.result()  # type: ignore[union-attr]
                pending = ahead.submit(columns, a + ROW_GROUP) if a + ROW_GROUP < n else None
                t1 = time.perf_counter()
                writer.write_table(pa.Table.from_arrays(cols, schema=schema))
                spent[0] += t1 - t0
                spent[1] += time.perf_counter() - t1
        log.debug("  writer: %.3f s waiting for columns (of which %.3f s for outcomes and record ids), "
                  "write_table %.3f s", spent[0], waited[0], spent[1])

    thread = _Writer(work)
    thread.start()
    if _WRITER_SYNC:  # profiling aid: time the writer alone (after the kernel, not beside it)
        thread.join()
        tick("calls.parquet (synchronous)")
    return thread


def rate_in_memory(run: Run, held: Held, calls_path: Path | None) -> None:
    """Dedup, order and rate the held calls in one pass; fills ``run``."""
    import pyarrow as pa

    tables = run.tables
    run.qps = QpsArrays.from_mapping({}, run.tables.n_api)
    run.status_counts = np.zeros(len(STATUS_NAMES), dtype=np.int64)
    run.source_counts = np.zeros(5, dtype=np.int64)
    run.reported = run.amount = run.rated = 0
    volume = np.array([a.tier_mode == VOLUME for a in run.catalog.apis], dtype=bool)
    run.needs_reprice = bool(volume.any())
    usage = UsageCounts(run.tables)
    run.usage = usage  # type: ignore[assignment]
    n = held.n
    if n == 0:
        if calls_path is not None:
            run.writer_thread = write_calls(run, calls_path, None, (0, 0), _empty_batch(), Outcomes.empty(0))
        return
    given = held.duplicate
    rid_chunks, pkey, api, ts, ok, bad = held.release()
    if sum(c.nbytes for c in rid_chunks) >= (1 << 31) - 1:
        rid_chunks = [c.cast(pa.large_string()) for c in rid_chunks]
    tick("read+validate")
    # the sort runs on the other core while the record ids are joined and their repeats found: both
    # now work in cache-sized partitions and no longer slow each other down (0.29 s against 0.37 s)
    sorting = ThreadPoolExecutor(1, thread_name_prefix="ocrledger-sort")
    sorted_ts = sorting.submit(ordering.sort_ts, ts)
    sorting.shutdown(wait=False)
    rid = pa.chunked_array(rid_chunks).combine_chunks()
    del rid_chunks
    party = np.empty(n, dtype=np.int32)
    _core.take_int32(run.remap, pkey, party)
    market = (pkey & 1).astype(np.int8)  # pkey = account * 2 + channel (1: marketplace)
    del pkey
    tick("concatenate")
    offsets, data = string_buffers(rid)
    if given is not None:  # settled before, over every copy (the Dask rerate: a copy may be in another partition)
        dup = np.ascontiguousarray(given, dtype=np.int8)
    else:
        dup = ordering.duplicates(offsets, data, market, ts, party, run.party_rank, api, ok)
    del market
    run.report("dedup", n, n)
    tick("duplicates")
    order, ts_sorted = sorted_ts.result()
    tick("sort")
    ordering.break_ties(order, ts_sorted, offsets, data, party, run.party_rank, api, ok, dup)
    del ts, rid
    period = sorted_periods(run, ts_sorted)
    if run.wanted is None:
        a, b = 0, n
    else:
        wanted = np.int32(run.wanted)  # a Python int would make numpy convert the whole column first
        a = int(np.searchsorted(period, wanted, side="left"))
        b = int(np.searchsorted(period, wanted, side="right"))
    # the written calls' record ids into charge order on the other core, while the columns and kernel run
    ids = RecordIds(offsets, data, order[a:b], ROW_GROUP) if calls_path is not None else None
    batch = Batch(party=np.empty(n, np.int32), api=np.empty(n, np.int32), ts=ts_sorted, period=period,
                  success=np.empty(n, np.int8), duplicate=np.empty(n, np.int8))
    _core.gather_calls(order, party, api, ok, dup, batch.party, batch.api, batch.success, batch.duplicate)
    del party, api, ok, dup
    blocked = _kernel.hold_back(batch, bad[order]) if bad.any() else None  # unknown or expired credentials
    del bad
    tick("ties + gather")
    shown = batch.slice(a, b)
    out = Outcomes.empty(n)
    rated = None
    if calls_path is not None and not run.needs_reprice and blocked is None and not _WRITER_SYNC:  # final as rated:
        rated = RatedUpTo()  # each row group is written as soon as the kernel has rated it
        run.writer_thread = write_calls(run, calls_path, ids, (a, b), shown, out.slice(a, b), rated)
    try:
        _kernel.run(run.impl, tables, run.state, batch, out=out, step=ROW_GROUP,
                    progress=rated.advance if rated is not None else None)
    except BaseException as exc:
        if rated is not None:
            rated.fail()
        if isinstance(exc, (MoneyError, StateError)):  # name the record, its input and row
            i = int(order[exc.call_index])  # type: ignore[attr-defined]
            source, row = held.where(i)
            record = bytes(data[offsets[i]: offsets[i + 1]]).decode("utf-8")
            raise _kernel.name_call(exc, record, source, row, call_of(run, batch, exc.call_index)) from None
        raise
    if blocked is not None:
        _kernel.reject(batch, out, blocked)
    del offsets, data, order  # the record ids' gather keeps what it still needs
    tick("kernel")
    run.rated = n
    run.report("rate", n, run.kept_rows)
    shown_out = out.slice(a, b)
    usage.add(batch, out)
    tick("usage")
    run.qps = qps(run, batch, out)
    tick("qps")
    if run.needs_reprice and b > a:
        _reprice(run, shown, shown_out)
    for column, total in ((shown_out.status, run.status_counts), (shown_out.source, run.source_counts)):
        counts = np.zeros(256, dtype=np.int64)
        _core.byte_counts(column.view(np.uint8), counts)
        total += counts[: len(total)]
    run.reported = b - a
    run.amount = int(shown_out.amount.sum())
    if calls_path is not None and run.writer_thread is None:
        run.writer_thread = write_calls(run, calls_path, ids, (a, b), shown, shown_out)
    tick("counts")


def call_of(run: Run, batch: Batch, k: int) -> tuple[str, int, int, int, int]:
    """(account, channel code, API index, instant, success) of call ``k`` of a rated batch (a kernel error's)."""
    account, channel = run.parties[int(batch.party[k])]
    return account, CHANNELS.index(channel), int(batch.api[k]), int(batch.ts[k]), int(batch.success[k])


def _reprice(run: Run, batch: Batch, out: Outcomes) -> None:
    """Volume-tier PAYG calls: the tier and unit price of their line's month total (in place)."""
    prices = run.volume_prices()
    prices.apply(prices.line_keys(batch.party, batch.period, batch.api), out.source == Source.PAYG, out.tier, out.amount)


def _empty_batch() -> Batch:
    return Batch(party=np.zeros(0, np.int32), api=np.zeros(0, np.int32), ts=np.zeros(0, np.int64),
                 period=np.zeros(0, np.int32), success=np.zeros(0, np.int8), duplicate=np.zeros(0, np.int8))
