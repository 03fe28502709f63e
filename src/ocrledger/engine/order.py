"""The charge order, its tie rule and the duplicate rule: the one copy every pass calls.

Within a batch calls are charged in ``(ts, record_id)`` order (record ids compared as UTF-8 bytes);
copies with the same ``(ts, record_id)`` are ordered by account (UTF-8 bytes), then channel (official
first), then API (catalog order), then failed first, then not-duplicate first. A record id is
unique per channel: the first copy in that order is charged, every later one is a duplicate.

``rate`` and the ledger (``encode``), the rerater's in-memory pass (``rerate/memory.py``), its
spill passes (``rerate/rerater.py``: ``duplicates`` inside each record-id bucket, ``charge_order``
inside each time bucket) and the Dask rerate (``cluster/dask.py``: the same per shuffle
partition) all call the functions here:

- ``duplicates``: the flag of every copy but the first of its (channel, record_id), in input order;
- ``sort_ts`` + ``break_ties`` = ``charge_order``: the positions in charge order;
- ``charge``: both (``duplicates``, then ``charge_order`` with the flags as the last key).

Record ids come as Arrow string buffers (``offsets``/``data`` of ``io.arrow_columns.string_buffers``;
``id_buffers`` makes them from an object array of ``str``). Accounts and channels come as a party
number per row and ``rank``, the position of each party in (account UTF-8 bytes, channel) order
(``party_ranks``), so only the few rows that need a tie broken are looked up.

Each function uses its compiled helper (``kernel/_hashing.pyx``, ``kernel/_sorting.pyx``) when it is loaded
and falls back to the plain equivalent otherwise (``OCRLEDGER_PURE_PYTHON=1`` or no build); the two give identical
results (``tests/engine/test_order.py``).
"""
from __future__ import annotations

from types import ModuleType
from typing import Any, Sequence

import numpy as np

from ..io.arrow_columns import string_buffers
from ..kernel import select as _kernel

_core = _kernel.helpers()

_MAX_HASHED = 2**31 - 2
"""Largest key count the compiled hash encodes (its codes are int32)."""
_SPAN = 1 << 32
"""``radix_argsort`` sorts instants that span less than this many ms (a month does)."""


def _core_or(compiled: bool | None) -> ModuleType | None:
    """The compiled helpers unless ``compiled`` is False (True insists on them)."""
    if compiled is False:
        return None
    if compiled and _core is None:
        raise RuntimeError("the compiled helpers of ocrledger.kernel are not loaded")
    return _core


def id_buffers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data) of an object array of ``str``, as Arrow holds them (large_string past 2 GiB)."""
    import pyarrow as pa

    arr = pa.array(values, type=pa.string())
    if isinstance(arr, pa.ChunkedArray):  # more text than int32 offsets can address
        arr = arr.cast(pa.large_string()).combine_chunks()
    return string_buffers(arr)


def _strings(offsets: np.ndarray, data: np.ndarray) -> Any:
    """The Arrow string array over (offsets, data), without copying."""
    import pyarrow as pa

    kind = pa.large_string() if offsets.dtype == np.int64 else pa.string()
    return pa.Array.from_buffers(kind, len(offsets) - 1, [None, pa.py_buffer(np.ascontiguousarray(offsets)),
                                                          pa.py_buffer(data)])


def party_ranks(names: Any, market: Any, account: np.ndarray | None = None) -> np.ndarray:
    """int64 rank of each party in (account UTF-8 bytes, channel) order: a larger rank comes later,
    equal parties get equal ranks. Party k is (``names[account[k]]``, ``market[k]``: 1 for
    marketplace; ``names`` distinct then), or (``names[k]``, ``market[k]``) without ``account``.

    ``names`` is an Arrow string array or a sequence of str (repeats allowed); Arrow ranks them as
    UTF-8 bytes, in C. Only the ranks' order is used (the ties of the charge order)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = names if isinstance(names, pa.Array) else pa.array(list(names), type=pa.string())
    if account is None:  # names may repeat: equal names, equal ranks
        rank = pc.rank(arr, sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64)
    else:  # distinct names (a dictionary): the inverse of their sort
        by_bytes = np.empty(len(arr), dtype=np.int64)
        by_bytes[pc.sort_indices(arr).to_numpy()] = np.arange(len(arr), dtype=np.int64)
        rank = by_bytes[np.asarray(account, dtype=np.int64)]
    return rank * 2 + np.asarray(market, dtype=np.int64).reshape(len(rank))


class PartyRanks:
    """``party_ranks`` made only for the parties asked for: ``ranks[parties]`` gives keys in (account
    UTF-8 bytes, channel) order that are consistent within that one request, which is all a tie
    needs (``duplicates`` and ``break_ties`` each ask once, for the few rows of repeated keys or
    equal instants). Party k is (``names[account[k]]``, ``market[k]``); a batch without ties
    sorts no account id at all."""

    def __init__(self, names: Any, account: np.ndarray, market: np.ndarray) -> None:
        self.names, self.account, self.market = names, np.asarray(account, dtype=np.int64), market

    def __len__(self) -> int:
        return len(self.account)

    def __getitem__(self, parties: Any) -> np.ndarray:
        import pyarrow as pa

        wanted, inverse = np.unique(np.asarray(parties, dtype=np.int64), return_inverse=True)
        names = self.names.take(pa.array(self.account[wanted]))
        return party_ranks(names, self.market[wanted])[inverse.reshape(-1)]


def _key_codes(offsets: np.ndarray, data: np.ndarray, market: np.ndarray) -> np.ndarray:
    """int64 code of each row's (record_id, channel): equal codes for equal keys (the plain twin of the hash)."""
    import pyarrow.compute as pc

    codes = pc.dictionary_encode(_strings(offsets, data)).indices.to_numpy(zero_copy_only=False)
    return codes.astype(np.int64) * 2 + market.astype(np.int64)


def duplicates(offsets: np.ndarray, data: np.ndarray, market: np.ndarray, ts: np.ndarray, party: np.ndarray,
               rank: np.ndarray, api: np.ndarray, ok: np.ndarray, *, compiled: bool | None = None) -> np.ndarray:
    """int8 flag of each row (input order) that repeats a (channel, record_id) earlier in charge order.

    Of the copies of a key the one kept is the first by (ts, ``rank[party]``, API, success), then
    input row: the first copy in ``charge_order``. ``market`` is the channel of each row (int8, 1:
    marketplace), ``party`` its party number, ``rank`` the (account, channel) position of each party
    (``party_ranks``). Compiled: the record ids are hashed straight from the Arrow buffers with the
    channel in the key (``string_repeats``, in cache-sized partitions), and only the rows of repeated
    keys (a few in a thousand) are ranked; plain: every row's key code (Arrow's dictionary
    encoding), then one sort.
    """
    n = len(ts)
    dup = np.zeros(n, dtype=np.int8)
    if n < 2:
        return dup
    core = _core_or(compiled)
    tag = np.ascontiguousarray(market, dtype=np.int8)
    if core is not None and n <= _MAX_HASHED:
        later = np.empty(n, dtype=np.int32)  # only the first m entries are written (and touched)
        first_of = np.empty(n, dtype=np.int32)
        _, m = core.string_repeats(offsets, data, tag, later, first_of)
        if m == 0:
            return dup
        firsts = np.unique(first_of[:m])
        rows = np.concatenate([firsts, later[:m]]).astype(np.int64)  # every row of a repeated key ...
        key = np.concatenate([firsts, first_of[:m]])  # ... and its key: the key's first row
    else:
        rows = np.arange(n, dtype=np.int64)
        key = _key_codes(offsets, data, tag)
    o = np.lexsort((rows, ok[rows], api[rows], rank[party[rows]], ts[rows], key))
    sk = key[o]
    later_in_order = np.r_[False, sk[1:] == sk[:-1]]
    dup[rows[o[later_in_order]]] = 1
    return dup


def sort_ts(ts: np.ndarray, *, compiled: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(order, ts[order]): a stable argsort of the instants (int64), the first step of ``charge_order``.

    Compiled: an LSD radix sort when they span less than 2**32 ms (``radix_argsort``); else numpy's."""
    n = len(ts)
    core = _core_or(compiled)
    if core is not None and 0 < n <= _MAX_HASHED:
        ts = np.ascontiguousarray(ts, dtype=np.int64)
        lo = int(ts.min())
        if int(ts.max()) - lo < _SPAN:
            order = np.empty(n, dtype=np.int64)
            st = np.empty(n, dtype=np.int64)
            core.radix_argsort(ts, lo, order, st)
            return order, st
    order = np.argsort(ts, kind="stable").astype(np.int64, copy=False)
    return order, ts[order]


def break_ties(order: np.ndarray, st: np.ndarray, offsets: np.ndarray, data: np.ndarray, party: np.ndarray,
               rank: np.ndarray, api: np.ndarray, ok: np.ndarray, dup: np.ndarray) -> None:
    """Order each run of equal instants of ``sort_ts``' (order, st) by (record_id, ``rank[party]``, API,
    success, ``dup``), in place: the second step of ``charge_order``.

    Runs of equal instants are short and rare, so only their rows are sorted with their text (Arrow's
    stable sort: record ids as UTF-8 bytes; rows equal in every key keep their input order).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(st)
    if n < 2:
        return
    eq = st[1:] == st[:-1]
    if not eq.any():
        return
    tie = np.zeros(n, dtype=bool)
    tie[1:] |= eq
    tie[:-1] |= eq
    rows = order[tie]
    sub = pa.table({"ts": st[tie], "rid": _strings(offsets, data).take(pa.array(rows)), "rank": rank[party[rows]],
                    "api": api[rows], "ok": ok[rows], "dup": dup[rows]})
    sub_order = pc.sort_indices(sub, sort_keys=[(c, "ascending") for c in ("ts", "rid", "rank", "api", "ok", "dup")])
    order[tie] = rows[sub_order.to_numpy()]


def charge_order(ts: np.ndarray, offsets: np.ndarray, data: np.ndarray, party: np.ndarray, rank: np.ndarray,
                 api: np.ndarray, ok: np.ndarray, dup: np.ndarray, *, compiled: bool | None = None) -> np.ndarray:
    """Positions (int64) in charge order: (ts, record_id, ``rank[party]``, API, success, ``dup``), then input row.

    ``dup`` is the ``duplicates`` flag of each row, so a kept copy comes before its duplicates.
    """
    order, st = sort_ts(ts, compiled=compiled)
    break_ties(order, st, offsets, data, party, rank, api, ok, dup)
    return order


def charge(ts: np.ndarray, offsets: np.ndarray, data: np.ndarray, market: np.ndarray, party: np.ndarray,
           rank: np.ndarray, api: np.ndarray, ok: np.ndarray, *, compiled: bool | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """(positions in charge order, duplicate flag of each row in input order) of one batch of calls.

    ``duplicates``, then ``charge_order`` with the flags. The rerater's in-memory pass runs the same
    steps with ``sort_ts`` on the other core while the duplicates are found (``rerate/memory.py``).
    """
    dup = duplicates(offsets, data, market, ts, party, rank, api, ok, compiled=compiled)
    return charge_order(ts, offsets, data, party, rank, api, ok, dup, compiled=compiled), dup

