"""Ragged arrays in numpy: the items of many owners, each owner's items numbered from zero."""
from __future__ import annotations

import numpy as np


def ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, offset within owner) of ``counts.sum()`` items, ``counts[k]`` of them owned by k, in owner order."""
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(total) - starts[owner]
