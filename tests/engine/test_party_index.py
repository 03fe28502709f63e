"""The party index (compiled hash against its dict twin and against plain Python), ``spans`` against
``ragged``, ``party_ranks`` against a sort of UTF-8 bytes, and ``batch_parties``' order."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocrledger.engine import order, ragged
from ocrledger.engine.encode import batch_parties
from ocrledger.engine.party_index import PartyIndex
from ocrledger.kernel import select as _kernel

# ids that differ only by a trailing NUL, a space or a tab are different parties
TEXT = st.text(alphabet=st.sampled_from(["a", "b", " ", "\x00", "\t", "é", "中", "\U0001f600"]), min_size=1, max_size=5)
CHANNEL = st.sampled_from(["official", "marketplace"])
needs_core = pytest.mark.skipif(_kernel.helpers() is None, reason="the compiled helpers are not loaded")


def both(monkeypatch: pytest.MonkeyPatch, parties: list[tuple[str, str]]) -> list[PartyIndex]:
    """The compiled index (when built) and its dict twin, over the same parties."""
    made = []
    if _kernel.helpers() is not None:
        made.append(PartyIndex(parties))
    with monkeypatch.context() as m:
        m.setenv("OCRLEDGER_PURE_PYTHON", "1")
        made.append(PartyIndex(parties))
    return made


@settings(max_examples=150, deadline=None)
@given(listed=st.lists(st.tuples(TEXT, CHANNEL), max_size=30, unique=True),
       asked=st.lists(st.tuples(TEXT, CHANNEL), max_size=30))
def test_find_gives_the_setup_position_or_minus_one(listed: list[tuple[str, str]], asked: list[tuple[str, str]]) -> None:
    position = {p: i for i, p in enumerate(listed)}
    want = [position.get(p, -1) for p in asked + listed]
    market = np.array([ch == "marketplace" for _, ch in asked + listed], dtype=np.int8)
    names = [a for a, _ in asked + listed]
    with pytest.MonkeyPatch.context() as mp:
        for index in both(mp, listed):
            assert index.find(pa.array(names, type=pa.string()), market).tolist() == want
            assert index.find(names, market).tolist() == want


def test_find_by_rows_of_a_dictionary(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = [("a", "official"), ("a", "marketplace"), ("a\x00", "official"), ("b ", "official")]
    names = pa.array(["b ", "a", "a\x00", "zz"])
    rows = np.array([1, 1, 2, 0, 3, 0])
    market = np.array([0, 1, 0, 0, 0, 1], dtype=np.int8)
    for index in both(monkeypatch, listed):
        assert index.find(names, market, rows).tolist() == [0, 1, 2, 3, -1, -1]


def test_a_repeated_party_keeps_its_first_position(monkeypatch: pytest.MonkeyPatch) -> None:
    for index in both(monkeypatch, [("x", "official"), ("x", "official")]):
        assert index.find(["x"], np.array([0], dtype=np.int8)).tolist() == [0]


@needs_core
def test_find_refuses_rows_outside_the_queries() -> None:
    index = PartyIndex([("a", "official")])
    with pytest.raises(IndexError):
        index.find(pa.array(["a"]), np.array([0], dtype=np.int8), np.array([1]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 5)), max_size=20))
def test_spans_equal_the_numpy_twin(runs: list[tuple[int, int]]) -> None:
    start = np.array([s for s, _ in runs], dtype=np.int64)
    count = np.array([c for _, c in runs], dtype=np.int64)
    owner = [k for k, (_, c) in enumerate(runs) for _ in range(c)]
    index = [s + j for s, c in runs for j in range(c)]
    got_owner, got_index = ragged.spans(start, count)
    assert got_owner.tolist() == owner and got_index.tolist() == index
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OCRLEDGER_PURE_PYTHON", "1")
        got_owner, got_index = ragged.spans(start, count)
    assert got_owner.tolist() == owner and got_index.tolist() == index


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(TEXT, st.integers(0, 1)), min_size=1, max_size=12))
def test_party_ranks_follow_utf8_bytes_then_channel(parties: list[tuple[str, int]]) -> None:
    names = sorted({a for a, _ in parties})
    account = np.array([names.index(a) for a, _ in parties])
    market = np.array([m for _, m in parties])
    key = [(a.encode("utf-8"), m) for a, m in parties]
    for rank in (order.party_ranks(pa.array(names), market, account),
                 order.party_ranks([a for a, _ in parties], market)):
        for i in range(len(parties)):
            for j in range(len(parties)):
                assert (rank[i] < rank[j]) == (key[i] < key[j]) and (rank[i] == rank[j]) == (key[i] == key[j])


def test_batch_parties_puts_listed_ones_first_in_setup_order(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = [("z", "official"), ("m", "marketplace"), ("a", "official")]
    names = pa.array(["a", "m", "q", "b"])
    account = np.array([0, 1, 2, 3, 1])
    market = np.array([0, 1, 0, 0, 0], dtype=np.int8)
    for index in both(monkeypatch, listed):
        parties, slot = batch_parties(names, account, market, index)
        # listed: ("m", marketplace) at 1, ("a", official) at 2; then unlisted in byte order: b, m, q
        assert list(parties) == [("m", "marketplace"), ("a", "official"), ("b", "official"), ("m", "official"),
                                 ("q", "official")]
        assert parties.listed_at.tolist() == [1, 2, -1, -1, -1]
        assert slot.tolist() == [1, 0, 4, 2, 3]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(TEXT, st.integers(0, 1)), min_size=1, max_size=12, unique=True), st.data())
def test_ranks_made_for_some_parties_order_them_as_the_whole(parties: list[tuple[str, int]], data: st.DataObject
                                                             ) -> None:
    names = sorted({a for a, _ in parties})
    account = np.array([names.index(a) for a, _ in parties])
    market = np.array([m for _, m in parties], dtype=np.int8)
    whole = order.party_ranks(pa.array(names), market, account)
    asked = np.array(data.draw(st.lists(st.integers(0, len(parties) - 1), min_size=1, max_size=20)))
    some = order.PartyRanks(pa.array(names), account, market)[asked]
    for i in range(len(asked)):
        for j in range(len(asked)):
            assert (some[i] < some[j]) == (whole[asked[i]] < whole[asked[j]])
            assert (some[i] == some[j]) == (asked[i] == asked[j])
