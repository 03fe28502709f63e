"""Encoding validated calls for the kernel: parties, and the batch in charge order with its duplicates (``order.charge``)."""
from __future__ import annotations

from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator, Sequence

import numpy as np

from ..io.arrow_columns import string_buffers
from ..io.calls import CHANNEL_TEXTS, CallTable
from ..kernel.contract import Batch
from ..model.clock import BillingClock
from .order import PartyRanks, charge
from .party_index import PartyIndex


@dataclass
class Encoded:
    """A call table encoded for the kernel: the batch in charge order and how it maps back."""

    batch: Batch
    order: np.ndarray  # int64: input row of each batch position
    parties: Sequence[tuple[str, str]]
    """``BatchParties`` when the parties were taken from the calls, else the list given."""
    listed_at: np.ndarray | None = None
    """int64: the setup position of each party (-1: not listed), when the parties were taken from the calls."""


def party_list(known: Sequence[tuple[str, str]], calls: CallTable) -> list[tuple[str, str]]:
    """Known parties first (file order), then the unknown (account, channel) pairs of the calls, sorted."""
    seen = set(known)
    pairs = set(zip(calls.account.tolist(), calls.channel.tolist())) if len(calls) else set()
    return list(known) + sorted(pairs - seen)


class BatchParties(SequenceABC):
    """The parties of a batch as columns (a sequence of (account, channel) pairs, made on demand).

    ``account`` indexes ``names`` (the batch's distinct account ids), ``market`` is 1 for the
    marketplace channel, ``listed_at`` the setup position of each party (-1: not listed). Listed
    parties come first in setup order, then the others in (account UTF-8 bytes, channel) order.
    """

    def __init__(self, names: Any, account: np.ndarray, market: np.ndarray, listed_at: np.ndarray) -> None:
        self.names, self.account, self.market, self.listed_at = names, account, market, listed_at

    def __len__(self) -> int:
        return len(self.account)

    @cached_property
    def account_ids(self) -> np.ndarray:
        """Object array: the account id of each party."""
        names = self.names.to_numpy(zero_copy_only=False) if hasattr(self.names, "to_numpy") else self.names
        return np.asarray(names, dtype=object)[self.account] if len(self.account) else np.zeros(0, dtype=object)

    @cached_property
    def pairs(self) -> list[tuple[str, str]]:
        return list(zip(self.account_ids.tolist(), CHANNEL_TEXTS[self.market].tolist()))

    def __getitem__(self, k: Any) -> Any:
        return self.pairs[k]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.pairs)



def batch_parties(names: Any, account: np.ndarray, market: np.ndarray, listed: PartyIndex | None,
                  rank: Any = None) -> tuple[BatchParties, np.ndarray]:
    """The parties of a batch, given as (``names[account[k]]``, ``market[k]``) for distinct k: the
    ``BatchParties`` (listed ones first in setup order, then the others in (account bytes, channel)
    order) and the party number (int32) of each k. ``rank`` may give ``party_ranks`` (or a
    ``PartyRanks``) of the k when known."""
    m = len(account)
    market = np.asarray(market, dtype=np.int8).reshape(m)
    at = listed.find(names, market, account) if listed is not None and m else np.full(m, -1, dtype=np.int64)
    known = np.flatnonzero(at >= 0)
    unknown = np.flatnonzero(at < 0)
    if len(unknown):  # only the unlisted parties are put in (account bytes, channel) order
        rank = PartyRanks(names, account, market) if rank is None else rank
        unknown = unknown[np.argsort(rank[unknown])]  # parties are distinct: so are their ranks
    by = np.concatenate([known[np.argsort(at[known], kind="stable")], unknown])  # stable: numpy's radix sort, 2x quicker here
    slot = np.empty(m, dtype=np.int32)
    slot[by] = np.arange(m, dtype=np.int32)
    return BatchParties(names, account[by], market[by], at[by]), slot


class _ComboRanks:
    """Ranks indexed by (account, market) combo code: ``PartyRanks`` of the combos' parties."""

    def __init__(self, ranks: PartyRanks, combo_party: np.ndarray) -> None:
        self.ranks, self.combo_party = ranks, combo_party

    def __getitem__(self, combos: Any) -> np.ndarray:
        return self.ranks[self.combo_party[np.asarray(combos, dtype=np.int64)]]


def encode(calls: CallTable, parties: Sequence[tuple[str, str]] | None, clock: BillingClock, *,
           listed: PartyIndex | None = None) -> Encoded:
    """Sort calls into charge order, mark repeated record ids per channel, map parties.

    ``parties`` numbers the parties (it must hold every (account, channel) of the calls); None
    takes the calls' own parties (``BatchParties``: listed ones first, by their position in
    ``listed``, then the others), so the cost follows the batch. The charge order and the
    duplicates are ``order.charge``'s (ties by account, channel, API and failed-first).
    """
    n = len(calls)
    market = calls.market
    names, acc_code = calls.account_names, calls.account_code
    n_acc = len(names)  # distinct ids (``CallTable.account_names``)
    combo = acc_code.astype(np.int64) * 2 + market
    present = np.flatnonzero(np.bincount(combo, minlength=2 * n_acc)) if n else np.zeros(0, np.int64)
    p_acc, p_market = present // 2, (present % 2).astype(np.int8)
    combo_party = np.zeros(2 * n_acc, dtype=np.int64)  # the present party of each (account, market) combo
    combo_party[present] = np.arange(len(present), dtype=np.int64)
    ranks = PartyRanks(names, p_acc, p_market)  # sorted only for the parties of tied rows, if any
    combo_rank = _ComboRanks(ranks, combo_party)
    offsets, data = string_buffers(calls.rid)
    order, dup = charge(calls.ts, offsets, data, market, combo, combo_rank, calls.api, calls.success)
    ts = calls.ts[order]
    duplicate = np.ascontiguousarray(dup[order])  # the first copy in charge order is kept
    listed_at = None
    party_of_combo = np.zeros(2 * n_acc, dtype=np.int32)
    if parties is None:
        parties, slot = batch_parties(names, p_acc, p_market, listed, ranks)
        party_of_combo[present] = slot
        listed_at = parties.listed_at
    else:
        index = {p: i for i, p in enumerate(parties)}
        ids = names.to_pylist()
        party_of_combo[present] = [index[(ids[a], CHANNEL_TEXTS[k])] for a, k in zip(p_acc.tolist(), p_market.tolist())]
        parties = list(parties)
    party = party_of_combo[combo] if n else np.empty(0, dtype=np.int32)
    batch = Batch(
        party=np.ascontiguousarray(party[order], dtype=np.int32),
        api=np.ascontiguousarray(calls.api[order], dtype=np.int32),
        ts=np.ascontiguousarray(ts, dtype=np.int64),
        period=clock.periods(ts),
        success=np.ascontiguousarray(calls.success[order], dtype=np.int8),
        duplicate=duplicate,
    )
    return Encoded(batch, order.astype(np.int64), parties, listed_at)
