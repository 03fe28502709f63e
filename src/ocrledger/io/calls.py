"""Call records of every entry point: any input read as Arrow (``call_files``), validated once (``validate_chunk``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterator, Union

import numpy as np

from ..errors import CallsError
from ..model.accounts import CHANNELS, OFFICIAL, Accounts
from ..model.catalog import Catalog
from .arrow_calls import Chunk, validate_chunk
from .call_files import CallInput, call_inputs
from .csv_files import at_line, texts

__all__ = ["CallTable", "CHANNEL_TEXTS", "read_calls", "validated", "resolved_chunk", "texts"]

READ_ROWS = 1 << 20
"""Rows read and validated at a time by ``read_calls`` (the rerater picks its own chunk size)."""


@dataclass
class Part:
    """Where the records ``start:`` of a ``CallTable`` came from (one file or frame)."""

    start: int
    name: str
    base: int
    lines: Any = None


@dataclass
class CallTable:
    """Validated call records in input order, held as the engine reads them (Arrow and numpy columns).

    Text is exact, as read: never fixed-width (one long id would widen every cell), never stripped,
    a trailing NUL kept (see docs/decisions.md, "Ids are exact strings"). ``record_id``, ``account``
    and ``channel`` give the text as numpy object arrays of ``str``, made on first use.
    """

    rid: Any
    """pyarrow StringArray (large_string past 2 GiB) of the record ids."""
    account_code: np.ndarray
    """Integer index of each record's account into ``account_names``."""
    account_names: Any
    """pyarrow StringArray of the distinct account ids."""
    market: np.ndarray
    """int8 channel: 0 official, 1 marketplace."""
    api: np.ndarray  # int32 catalog index
    ts: np.ndarray  # int64 epoch ms
    success: np.ndarray  # int8
    parts: list[Part] = field(default_factory=list)
    """The inputs the records came from, in order (a folder of Parquet files has one per file)."""
    bad_key: np.ndarray | None = None
    """With a ``credential`` column (``read_calls(..., credentials=)``): the calls whose key is unknown or
    not valid at their instant (they keep the key as their account and are to be rejected)."""

    def __len__(self) -> int:
        return len(self.ts)

    def _part(self, index: int) -> Part:
        k = int(np.searchsorted([p.start for p in self.parts], int(index), side="right")) - 1
        return self.parts[max(k, 0)]

    @property
    def source(self) -> str:
        """The input's name (the first file's, for a folder)."""
        return self.parts[0].name if self.parts else "<calls>"

    def file(self, index: int) -> str:
        """The name of the file (or frame) record ``index`` (input order) came from."""
        return self._part(index).name if self.parts else "<calls>"

    def row(self, index: int) -> int:
        """The row number that messages give for record ``index`` (input order) in its file: a CSV
        file's line (blank lines and quoted line breaks counted), else ``base + position``."""
        if not self.parts:
            return 1 + int(index)
        p = self._part(index)
        k = int(index) - p.start
        return int(p.lines[k]) if p.lines is not None else p.base + k

    @cached_property
    def record_id(self) -> np.ndarray:
        """Object array of the record ids (``str``)."""
        return self.rid.to_numpy(zero_copy_only=False).astype(object, copy=False)

    @cached_property
    def account(self) -> np.ndarray:
        """Object array of each record's account id."""
        names = self.account_names.to_numpy(zero_copy_only=False).astype(object, copy=False)
        return names[self.account_code] if len(names) else texts([])

    @cached_property
    def channel(self) -> np.ndarray:
        """Object array of each record's channel name."""
        return CHANNEL_TEXTS[self.market]


def read_calls(calls: Any, catalog: Catalog, *, credentials: Credentials | None = None) -> CallTable:
    """Read and validate call records from any input ``call_files.call_inputs`` takes (files, folders,
    frames, Arrow objects): one reader and one validator for rate, ingest, explain, advise and rerate.

    The validator's Arrow columns are kept as they are (record ids, the account dictionary, channel
    codes): nothing is turned into Python strings unless a caller asks (``CallTable.record_id``).
    With ``credentials`` (the ledger), a calls input with a ``credential`` column and no ``account``
    column is resolved through the accounts' ``[[credential]]`` entries at each call's instant
    (``credentials`` is the accounts, or a function giving the accounts that hold the keys it is
    given: the ledger reads only those rows).
    """
    parts: list[Part] = []
    rids: list[Any] = []
    names: list[Any] = []
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("account", "market", "api", "ts", "success")}
    bad: list[np.ndarray] = []
    n = n_names = 0
    for inp in call_inputs(calls, READ_ROWS):
        parts.append(Part(n, inp.name, inp.base, inp.lines))
        for raw, chunk, keyed in validated(inp, catalog, credentials):
            rids.append(chunk.rid)
            if keyed is not None:  # resolved from credentials: one name per call
                chunk = resolved_chunk(chunk, keyed)
            chunk_names, code, market = chunk.accounts, chunk.account, chunk.channel.astype(np.int8)
            bad.append(chunk.bad.astype(bool) if chunk.bad is not None else np.zeros(len(chunk.ts), dtype=bool))
            names.append(chunk_names)
            cols["account"].append(code.astype(np.int64) + n_names if n_names else code)
            n_names += len(chunk_names)
            cols["market"].append(market)
            cols["api"].append(chunk.api.astype(np.int32))
            cols["ts"].append(np.asarray(chunk.ts, dtype=np.int64))
            cols["success"].append(np.asarray(chunk.ok, dtype=np.int8))
            n += raw.num_rows
    empty = {"account": np.int64, "market": np.int8, "api": np.int32, "ts": np.int64, "success": np.int8}
    out = {k: (v[0] if len(v) == 1 else np.concatenate(v) if v else np.empty(0, dtype=empty[k]))
           for k, v in cols.items()}
    key_mask = np.concatenate(bad) if bad else np.zeros(0, dtype=bool)
    account_names, account = _concat_text(names), out["account"]
    if len(names) > 1:  # each chunk's names are distinct, not the chunks' together
        distinct = account_names.dictionary_encode()
        account_names, account = distinct.dictionary, distinct.indices.to_numpy(zero_copy_only=False)[account]
    return CallTable(_concat_text(rids), account, account_names, out["market"], out["api"], out["ts"],
                     out["success"], parts=parts, bad_key=key_mask if credentials is not None else None)


def resolved_chunk(chunk: Chunk, keyed: Keyed) -> Chunk:
    """A chunk that names its callers by credential, with the accounts and channels ``validated`` resolved for it
    and its unknown or expired keys as ``bad`` (those calls keep the key as their official account)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    accounts = pc.dictionary_encode(pa.array(keyed[0], type=pa.string()))
    return Chunk(chunk.rid, accounts.indices.to_numpy(zero_copy_only=False), accounts.dictionary,
                 (keyed[1] != OFFICIAL).astype(np.int8), chunk.api, chunk.ts, chunk.ok, chunk.source, chunk.row0,
                 bad=keyed[2].astype(np.int8))


def _concat_text(arrays: list[Any]) -> Any:
    """One Arrow string array of ``arrays`` in order (large_string when the text passes int32 offsets)."""
    import pyarrow as pa

    if len(arrays) == 1:
        return arrays[0]
    if not arrays:
        return pa.array([], type=pa.string())
    if sum(a.nbytes for a in arrays) < 2**31 - 1 and all(a.type == pa.string() for a in arrays):
        return pa.concat_arrays(arrays)
    return pa.concat_arrays([a.cast(pa.large_string()) for a in arrays])


CHANNEL_TEXTS = texts(list(CHANNELS))
"""Channel name by code (0 official, 1 marketplace)."""


Credentials = Union[Accounts, Callable[[np.ndarray], Accounts]]
"""The accounts whose ``[[credential]]`` entries resolve keys, or a function giving them for some keys."""

Keyed = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(account, channel, unknown-or-expired key) per call of a batch resolved from credentials."""


def validated(inp: CallInput, catalog: Catalog, credentials: Credentials | None = None
              ) -> Iterator[tuple[Any, Chunk, Keyed | None]]:
    """(raw batch, validated chunk, None) of every batch of ``inp`` in order; errors name the input, the
    row within it (a CSV file's line) and the field. The one validation loop of every entry point.

    With ``credentials``, a batch that names its callers by ``credential`` instead of ``account`` has the
    key validated as the account (errors name the ``credential`` field), then resolved at each call's
    instant (``model.credentials.resolve``), which gives the third item.
    """
    import pyarrow as pa

    row = 0
    for raw in inp.batches():
        names = list(raw.schema.names)
        keyed = credentials is not None and "credential" in names and "account" not in names
        table = raw
        if keyed:
            from ..model.credentials import resolve

            table = pa.Table.from_batches([raw]) if isinstance(raw, pa.RecordBatch) else raw
            table = table.drop_columns([c for c in ("channel",) if c in names]).rename_columns(
                ["account" if c == "credential" else c for c in table.column_names if c != "channel"])
        try:
            chunk = validate_chunk(table, catalog, inp.name, inp.base + row)
        except CallsError as exc:
            if keyed and exc.field == "account":
                exc = CallsError(exc.message, file=exc.file, row=exc.row, field="credential")
            raise at_line(exc, inp.lines, inp.base) from None
        if keyed:
            keys = texts(chunk.accounts.to_pylist())
            per_call = keys[chunk.account] if len(keys) else texts([])
            held = credentials(keys) if callable(credentials) else credentials
            resolved, bad_key = resolve({"credential": per_call}, np.asarray(chunk.ts, dtype=np.int64),
                                        held)  # type: ignore[arg-type]
            yield raw, chunk, (resolved["account"], resolved["channel"], bad_key)
        else:
            yield raw, chunk, None
        row += raw.num_rows
