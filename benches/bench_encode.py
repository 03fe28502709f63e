"""encode(): charge order, duplicate marking and party mapping, with the compiled hashing helpers
and with the plain-numpy path they replace (np.unique on unicode arrays)."""
from __future__ import annotations

import numpy as np
import pytest

from ocrledger.engine import order as grouping
from ocrledger.engine.encode import encode, party_list
from ocrledger.io.calls import read_calls


@pytest.fixture(scope="module")
def table(encode_work):  # type: ignore[no-untyped-def]
    return read_calls(encode_work.columns(), encode_work.catalog)


def test_encode(benchmark, table, encode_work) -> None:  # type: ignore[no-untyped-def]
    parties = party_list(encode_work.accounts.parties(), table)
    benchmark.extra_info["calls"] = len(table)
    benchmark.pedantic(encode, args=(table, parties, encode_work.catalog.clock), rounds=5)


def charge_keys(table):  # type: ignore[no-untyped-def]
    """The columns ``order.charge`` takes, from a call table (as ``encode`` makes them)."""
    market = table.market
    party = table.account_code.astype(np.int64) * 2 + market
    n = len(table.account_names)
    rank = grouping.party_ranks(table.account_names, np.tile([0, 1], n), np.repeat(np.arange(n), 2))
    offsets, data = grouping.string_buffers(table.rid)
    return table.ts, offsets, data, market, party, rank, table.api, table.success


@pytest.mark.parametrize("compiled", [True, False], ids=["hashed", "numpy"])
def test_duplicates(benchmark, table, compiled) -> None:  # type: ignore[no-untyped-def]
    ts, offsets, data, market, party, rank, api, ok = charge_keys(table)
    benchmark.pedantic(grouping.duplicates, args=(offsets, data, market, ts, party, rank, api, ok),
                       kwargs={"compiled": compiled}, rounds=5 if compiled else 2)


@pytest.mark.parametrize("compiled", [True, False], ids=["radix", "numpy"])
def test_charge_order(benchmark, table, compiled) -> None:  # type: ignore[no-untyped-def]
    ts, offsets, data, market, party, rank, api, ok = charge_keys(table)
    dup = grouping.duplicates(offsets, data, market, ts, party, rank, api, ok)
    benchmark.pedantic(grouping.charge_order, args=(ts, offsets, data, party, rank, api, ok, dup),
                       kwargs={"compiled": compiled}, rounds=5)


def test_charge_order_lexsort_unique(benchmark, table) -> None:  # type: ignore[no-untyped-def]
    """What encode() did before: rank the record ids with np.unique, then np.lexsort."""
    def before():  # type: ignore[no-untyped-def]
        _, rank = np.unique(table.record_id, return_inverse=True)
        return np.lexsort((rank.reshape(-1), table.ts))
    benchmark.pedantic(before, rounds=2)
