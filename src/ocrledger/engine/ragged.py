"""Ragged arrays: the items of many owners, each owner's items numbered from zero (numpy, or one compiled pass)."""
from __future__ import annotations

import numpy as np

from ..kernel import select as _kernel


def ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, offset within owner) of ``counts.sum()`` items, ``counts[k]`` of them owned by k, in owner order."""
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(total) - starts[owner]


def spans(start: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, index) of the items of runs: run k is ``count[k]`` items ``start[k]``, ``start[k] + 1``, ...;
    runs in order. One compiled pass (``_passes.spans``) or its numpy twin (``ragged``)."""
    start = np.ascontiguousarray(start, dtype=np.int64)
    count = np.ascontiguousarray(count, dtype=np.int64)
    core = _kernel.helpers()
    if core is None:
        owner, nth = ragged(count)
        return owner, start[owner] + nth
    total = int(count.sum())
    owner = np.empty(total, dtype=np.int64)
    index = np.empty(total, dtype=np.int64)
    core.spans(start, count, owner, index)
    return owner, index
