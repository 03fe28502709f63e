"""The index from (account id, channel) to setup position, built once: a lookup costs the parties asked for.

Compiled: a linear-probing hash table over the UTF-8 bytes of the listed account ids with the
channel in the key (``_hashing.string_index``/``string_find``), kept beside the ids' Arrow buffers.
Plain twin (no compiled helpers): a dict of ``(account, market)``. Ids are exact: two ids that
differ in one byte (a trailing NUL, a space) are different keys.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..io.arrow_columns import string_buffers
from ..kernel import select as _kernel
from ..model.accounts import OFFICIAL


class PartyIndex:
    """Setup positions of parties, asked for by account id (an Arrow string array) and market flag."""

    def __init__(self, parties: Sequence[tuple[str, str]]) -> None:
        import pyarrow as pa

        n = len(parties)
        self.market = np.fromiter((ch != OFFICIAL for _, ch in parties), dtype=np.int8, count=n)
        accounts = pa.array([a for a, _ in parties], type=pa.string())
        if isinstance(accounts, pa.ChunkedArray):  # more id bytes than int32 offsets address
            accounts = accounts.cast(pa.large_string()).combine_chunks()
        self.accounts = accounts
        self._core = _kernel.helpers()
        self._dict: dict[tuple[str, int], int] | None = None
        if self._core is None:
            self._dict = {}
            for i, (account, market) in enumerate(zip(self.accounts.to_pylist(), self.market.tolist())):
                self._dict.setdefault((account, market), i)
            return
        size = 16
        while size * 2 <= n * 3:
            size *= 2
        self._table = np.zeros(size, dtype=np.uint64)
        self._offsets, self._data = string_buffers(self.accounts)
        self._core.string_index(self._offsets, self._data, self.market, self._table)

    def find(self, accounts: Any, market: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """int64 setup position of each party asked for, -1 for a party the setup does not list.

        Party j is (``accounts[rows[j]]``, ``market[j]``: 1 for marketplace), or (``accounts[j]``,
        ``market[j]``) without ``rows``; ``accounts`` is an Arrow string array (or anything
        ``pyarrow.array`` takes)."""
        import pyarrow as pa

        market = np.ascontiguousarray(market, dtype=np.int8)
        m = len(market)
        if self._dict is not None:
            names = accounts.to_pylist() if hasattr(accounts, "to_pylist") else list(accounts)
            keys = names if rows is None else [names[k] for k in np.asarray(rows).tolist()]
            get = self._dict.get
            return np.array([get((a, k), -1) for a, k in zip(keys, market.tolist())], dtype=np.int64).reshape(m)
        arr = accounts if isinstance(accounts, (pa.Array, pa.ChunkedArray)) else pa.array(accounts, type=pa.string())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if arr.type != self.accounts.type:
            arr = arr.cast(self.accounts.type)
        q_offsets, q_data = string_buffers(arr)
        rows = np.arange(m, dtype=np.int64) if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
        out = np.empty(m, dtype=np.int64)
        self._core.string_find(self._table, self._offsets, self._data, self.market, q_offsets, q_data, rows, market,
                               out)
        return out
