"""Encoding validated calls for the kernel: parties, (ts, record_id) charge order with its tie rule, duplicates."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..io.calls import CallTable
from ..kernel.contract import Batch
from ..model.accounts import OFFICIAL
from ..model.clock import BillingClock
from .order import charge_order, dictionary_encode, repeats


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


def _break_ties(calls: CallTable, order: np.ndarray) -> np.ndarray:
    """Order copies with the same (ts, record_id) by account, then API (catalog order), then failed first.

    Such copies are duplicates of each other when on one channel, and the first is the one charged:
    this makes that choice independent of input row order (the rerater applies the same rule).
    """
    if len(order) < 2:
        return order
    ts = calls.ts[order]
    same = np.flatnonzero(ts[1:] == ts[:-1])
    if not len(same):
        return order
    rid = calls.record_id[order]
    same = same[rid[same + 1] == rid[same]]
    if not len(same):
        return order
    order = order.copy()
    starts = same[np.r_[True, same[1:] != same[:-1] + 1]]  # first index of each run of equal neighbours
    for start in starts.tolist():
        stop = start + 1
        while stop < len(order) and ts[stop] == ts[start] and rid[stop] == rid[start]:
            stop += 1
        group = order[start:stop]
        order[start:stop] = sorted(group.tolist(), key=lambda i: (
            str(calls.account[i]).encode("utf-8"), int(calls.api[i]), int(calls.success[i])))
    return order


def encode(calls: CallTable, parties: Sequence[tuple[str, str]] | None, clock: BillingClock, *,
           listed: Mapping[tuple[str, str], int] | None = None) -> Encoded:
    """Sort calls in (ts, record_id) order, mark repeated record ids per channel, map parties.

    ``parties`` numbers the parties (it must hold every (account, channel) of the calls); None
    takes the calls' own parties, ordered by ``batch_parties`` against ``listed``, so the cost
    follows the batch. Copies with the same (ts, record_id) are ordered by account, API and
    failed-first (``_break_ties``).
    """
    n = len(calls)
    order = _break_ties(calls, charge_order(calls.ts, calls.record_id))
    ts = calls.ts[order]
    is_market = (calls.channel != OFFICIAL).astype(np.int8)
    duplicate = repeats(calls.record_id, is_market, order)  # first occurrence in charge order is kept
    acc_code, acc_u = dictionary_encode(calls.account)
    ch_code, ch_u = dictionary_encode(calls.channel)
    width = max(len(ch_u), 1)
    combo = acc_code.astype(np.int64) * width + ch_code
    present = np.flatnonzero(np.bincount(combo, minlength=len(acc_u) * width)) if n else np.zeros(0, np.int64)
    pairs = list(zip(acc_u[present // width].tolist(), ch_u[present % width].tolist()))
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
