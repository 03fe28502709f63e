"""The calls the rerater keeps while it reads (``Held``), as columns filled in place, for either pass."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np


class Held:
    """Kept calls as columns: record-id chunks (pyarrow strings) and the encoded pkey, api, ts, ok arrays.

    The arrays are allocated once for the rows an input announces (Parquet metadata), so the
    in-memory pass fills them in place instead of concatenating chunks; they grow by doubling
    when the count is not known.
    """

    def __init__(self, capacity: int) -> None:
        self.rid: list[Any] = []
        self.origin: list[tuple[str, int, np.ndarray | None, int]] = []
        """Per added chunk: input name, row number of its first call, the rows kept (None: all), calls."""
        self.pkey = np.empty(capacity, dtype=np.int32)
        self.api = np.empty(capacity, dtype=np.int32)
        self.ts = np.empty(capacity, dtype=np.int64)
        self.ok = np.empty(capacity, dtype=np.int8)
        self.bad = np.empty(capacity, dtype=np.int8)
        """1 for a call named by an unknown or expired credential (``Chunk.bad``), else 0."""
        self.n = 0
        self.duplicate: np.ndarray | None = None
        """The duplicate flag of every held call when it was settled before (the Dask rerate settles it across
        its partitions); None: the pass finds the duplicates itself."""

    def extend(self, rid: Any, m: int, origin: tuple[str, int, np.ndarray | None] = ("", 0, None)
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Add ``m`` calls with these record ids (from ``origin``, see ``self.origin``); the (pkey, api, ts,
        ok, bad) slices to fill for them."""
        if self.n + m > len(self.ts):
            size = max(2 * len(self.ts), self.n + m)
            for name in ("pkey", "api", "ts", "ok", "bad"):
                old = getattr(self, name)
                new = np.empty(size, dtype=old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        a, self.n = self.n, self.n + m
        self.rid.append(rid)
        self.origin.append((*origin, m))
        return self.pkey[a: self.n], self.api[a: self.n], self.ts[a: self.n], self.ok[a: self.n], self.bad[a: self.n]

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The filled (pkey, api, ts, ok, bad)."""
        return self.pkey[: self.n], self.api[: self.n], self.ts[: self.n], self.ok[: self.n], self.bad[: self.n]

    def batches(self) -> Iterator[Any]:
        """The held calls as record batches (rid, pkey, api, ts, ok, bad, and dup when settled before), one per added chunk. They share the
        arrays, which ``clear`` lets the next chunks overwrite: spilled buckets copy (take) their rows, and
        the single in-memory bucket is filled only once, after the last chunk."""
        import pyarrow as pa

        a = 0
        names = ["rid", "pkey", "api", "ts", "ok", "bad"] + (["dup"] if self.duplicate is not None else [])
        for rid in self.rid:
            b = a + len(rid)
            cols = [rid, *(pa.array(col[a:b]) for col in self.columns())]
            if self.duplicate is not None:
                cols.append(pa.array(self.duplicate[a:b]))
            yield pa.RecordBatch.from_arrays(cols, names=names)
            a = b

    def clear(self) -> None:
        self.rid, self.origin, self.n = [], [], 0

    def where(self, i: int) -> tuple[str | None, int | None]:
        """(input name, row number) of held call ``i`` (for errors; still known after ``release``); (None, None)
        for calls added without their input's name (the Dask rerate's ranges do not carry the rows)."""
        ends = np.cumsum([m for *_, m in self.origin])
        k = int(np.searchsorted(ends, i, side="right"))
        name, row0, rows, m = self.origin[k]
        if not name:
            return None, None
        j = i - int(ends[k] - m)
        return name, row0 + (j if rows is None else int(rows[j]))

    def release(self) -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rid chunks, pkey, api, ts, ok, bad) of the held calls, which this object no longer keeps (so that the
        caller frees each as soon as it is done with it)."""
        out = (self.rid, *self.columns())
        origin, duplicate = self.origin, self.duplicate
        Held.__init__(self, 0)
        self.origin, self.duplicate = origin, duplicate
        return out
