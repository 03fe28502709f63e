"""Credentials: resolving the caller's AccessKey ID / AppCode of a call to its account at the call's time."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from .accounts import OFFICIAL, Accounts


def resolve(columns: dict[str, Any], ts: np.ndarray, accounts: Accounts) -> tuple[dict[str, Any], np.ndarray]:
    """Fill ``account`` and ``channel`` from a ``credential`` column, at each call's instant.

    A key that is unknown, not yet valid (ts < from) or expired (ts >= until) resolves to no
    account: the call keeps the key as its account on the official channel and is flagged in the
    returned mask, to be rejected (REJECTED_CREDENTIAL) and counted under that key.
    """
    if "credential" not in columns or "account" in columns:
        return columns, np.zeros(len(ts), dtype=bool)
    keys = np.asarray(columns["credential"], dtype=object)  # exact strings (a U copy drops trailing NULs)
    by_key: dict[str, list[tuple[int, int, str, str]]] = defaultdict(list)
    for c in accounts.credentials:
        lo = c.valid_from if c.valid_from is not None else np.iinfo(np.int64).min
        hi = c.valid_until if c.valid_until is not None else np.iinfo(np.int64).max
        by_key[c.key].append((lo, hi, c.account, c.channel))
    account = keys.copy()
    channel = np.full(len(keys), OFFICIAL, dtype=object)
    rejected = np.ones(len(keys), dtype=bool)
    for key in np.unique(keys).tolist():
        rows = np.flatnonzero(keys == key)
        for lo, hi, acc, ch in by_key.get(key, []):
            hit = rows[(ts[rows] >= lo) & (ts[rows] < hi) & rejected[rows]]
            account[hit] = acc
            channel[hit] = ch
            rejected[hit] = False
    out = dict(columns)
    out["account"] = account
    out["channel"] = channel
    return out, rejected
