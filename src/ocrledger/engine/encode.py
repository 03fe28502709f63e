"""Encoding validated calls for the kernel: parties, and the batch in charge order with its duplicates (``order.charge``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..io.calls import CallTable
from ..kernel.contract import Batch
from ..model.accounts import OFFICIAL
from ..model.clock import BillingClock
from .order import charge, dictionary_encode, id_buffers, party_ranks


@dataclass
class Encoded:
    """A call table encoded for the kernel: the batch in charge order and how it maps back."""

    batch: Batch
    order: np.ndarray  # int64: input row of each batch position
    parties: list[tuple[str, str]]
    listed_at: np.ndarray | None = None
    """int64: the setup position of each party (-1: not listed), when the parties were taken from the calls."""


def party_list(known: Sequence[tuple[str, str]], calls: CallTable) -> list[tuple[str, str]]:
    """Known parties first (file order), then the unknown (account, channel) pairs of the calls, sorted."""
    seen = set(known)
    pairs = set(zip(calls.account.tolist(), calls.channel.tolist())) if len(calls) else set()
    return list(known) + sorted(pairs - seen)


def batch_parties(pairs: Iterable[tuple[str, str]], listed: Mapping[tuple[str, str], int]
                  ) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    """The parties of a batch: the listed ones in their setup order, then the unknown ones sorted;
    the setup position of each (-1 for the unknown ones); and the party number of each of ``pairs``."""
    pairs = list(pairs)
    at = np.array([listed.get(p, -1) for p in pairs], dtype=np.int64).reshape(len(pairs))
    known = np.flatnonzero(at >= 0)
    known = known[np.argsort(at[known], kind="stable")]
    unknown = sorted(np.flatnonzero(at < 0).tolist(), key=pairs.__getitem__)
    order = np.r_[known, np.array(unknown, dtype=np.int64)].astype(np.int64)
    slot = np.empty(len(pairs), dtype=np.int32)
    slot[order] = np.arange(len(pairs), dtype=np.int32)
    positions = np.r_[at[known], np.full(len(unknown), -1, dtype=np.int64)].astype(np.int64)
    return [pairs[k] for k in order.tolist()], positions, slot


def encode(calls: CallTable, parties: Sequence[tuple[str, str]] | None, clock: BillingClock, *,
           listed: Mapping[tuple[str, str], int] | None = None) -> Encoded:
    """Sort calls into charge order, mark repeated record ids per channel, map parties.

    ``parties`` numbers the parties (it must hold every (account, channel) of the calls); None
    takes the calls' own parties, ordered by ``batch_parties`` against ``listed``, so the cost
    follows the batch. The charge order and the duplicates are ``order.charge``'s (ties by
    account, channel, API and failed-first).
    """
    n = len(calls)
    acc_code, acc_u = dictionary_encode(calls.account)
    ch_code, ch_u = dictionary_encode(calls.channel)
    width = max(len(ch_u), 1)
    combo = acc_code.astype(np.int64) * width + ch_code
    present = np.flatnonzero(np.bincount(combo, minlength=len(acc_u) * width)) if n else np.zeros(0, np.int64)
    pairs = list(zip(acc_u[present // width].tolist(), ch_u[present % width].tolist()))
    combo_rank = np.zeros(len(acc_u) * width, dtype=np.int64)
    combo_rank[present] = party_ranks([a for a, _ in pairs], [int(c != OFFICIAL) for _, c in pairs])
    is_market = (calls.channel != OFFICIAL).astype(np.int8)
    offsets, data = id_buffers(calls.record_id)
    order, dup = charge(calls.ts, offsets, data, is_market, combo, combo_rank, calls.api, calls.success)
    ts = calls.ts[order]
    duplicate = np.ascontiguousarray(dup[order])  # the first copy in charge order is kept
    listed_at = None
    party_of_combo = np.zeros(len(acc_u) * width, dtype=np.int32)
    if parties is None:
        parties, listed_at, party_of_combo[present] = batch_parties(pairs, listed or {})
    else:
        index = {p: i for i, p in enumerate(parties)}
        party_of_combo[present] = [index[pair] for pair in pairs]
    party = party_of_combo[combo] if n else np.empty(0, dtype=np.int32)
    batch = Batch(
        party=np.ascontiguousarray(party[order], dtype=np.int32),
        api=np.ascontiguousarray(calls.api[order], dtype=np.int32),
        ts=np.ascontiguousarray(ts, dtype=np.int64),
        period=clock.periods(ts),
        success=np.ascontiguousarray(calls.success[order], dtype=np.int8),
        duplicate=duplicate,
    )
    return Encoded(batch, order.astype(np.int64), list(parties), listed_at)
