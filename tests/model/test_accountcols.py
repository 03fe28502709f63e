"""Accounts as columns: tables loaded as columns give the objects and kernel tables of the same accounts as objects."""
from __future__ import annotations

import csv
import pickle
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
from helpers import CATALOG, build_tables, kernel_tables
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import scenarios

from ocrledger.engine.encode import party_list
from ocrledger.io.account_tables import load_accounts
from ocrledger.io.calls import read_calls
from ocrledger.kernel.contract import ALWAYS_ACTIVE, NO_ACTIVATION, KernelTables
from ocrledger.model.account_columns import PlanColumns
from ocrledger.model.accounts import OFFICIAL, Account, Accounts, Plan
from ocrledger.model.catalog import Catalog

pytest.importorskip("pyarrow")


def write_as_tables(acc: Accounts, folder: Path) -> Path:
    """``acc`` as a folder of CSV account tables (instants as epoch ms, prices as decimal text)."""
    folder.mkdir(parents=True, exist_ok=True)

    def table(name: str, header: list[str], rows: list[list[object]]) -> None:
        with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(header)
            out.writerows([["" if v is None else v for v in row] for row in rows])

    table("accounts", ["id", "channel"], [[a.id, a.channel] for a in acc.accounts])
    table("activations", ["account", "channel", "api", "activated"],
          [[a.id, a.channel, code, when] for a in acc.accounts for code, when in a.activated.items()])
    table("plans", ["id", "account", "channel", "kind", "api", "apis", "quantity", "start", "end", "price", "refunded"],
          [[p.id, p.account, p.channel, p.kind, p.apis[0] if p.kind == "dedicated" else None,
            "|".join(p.apis) if p.kind == "shared" else None, p.quantity, p.start, p.end,
            None if p.price is None else f"{p.price // 1_000_000}.{p.price % 1_000_000:06d}", p.refunded]
           for p in acc.plans])
    return folder


def plain_tables(cat: Catalog, acc: Accounts, parties: list[tuple[str, str]]) -> tuple[KernelTables, list[Plan]]:
    """The kernel tables written out plainly, one party, activation and plan at a time (the reference)."""
    n_api = len(cat.apis)
    index = {p: i for i, p in enumerate(parties)}
    official = np.array([ch == OFFICIAL for _, ch in parties], dtype=np.int8)
    activation = np.full(len(parties) * n_api, NO_ACTIVATION, dtype=np.int64)
    for i, (_, ch) in enumerate(parties):
        if ch != OFFICIAL:
            activation[i * n_api: (i + 1) * n_api] = ALWAYS_ACTIVE
    for a in acc.accounts:
        for code, when in a.activated.items():
            activation[index[(a.id, a.channel)] * n_api + cat.index[code]] = when
    # party by party (in the order of ``parties``), each party's plans in expire-first order
    plans = sorted(acc.plans, key=lambda p: (index[(p.account, p.channel)], p.end, p.start, p.id.encode("utf-8")))
    ded: list[list[int]] = [[] for _ in activation]
    sh: list[list[int]] = [[] for _ in activation]
    for k, p in enumerate(plans):
        for code in p.apis:
            (ded if p.kind == "dedicated" else sh)[index[(p.account, p.channel)] * n_api + cat.index[code]].append(k)

    def csr(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        offset = np.array([0] + [len(x) for x in lists], dtype=np.int64).cumsum()
        return offset, np.array([k for x in lists for k in x], dtype=np.int32)

    arrays = cat.arrays()
    (ded_offset, ded_plans), (sh_offset, sh_plans) = csr(ded), csr(sh)
    return KernelTables(
        n_api=n_api, pool_total=cat.verification_free_total, party_official=official, activation=activation,
        plan_start=np.array([p.start for p in plans], dtype=np.int64),
        plan_end=np.array([p.effective_end for p in plans], dtype=np.int64),
        ded_offset=ded_offset, ded_plans=ded_plans, sh_offset=sh_offset, sh_plans=sh_plans,
        **{k: arrays[k] for k in ("api_kind", "api_free", "api_points", "api_dedicated", "api_shared", "tier_offset",
                                  "tier_upto", "tier_price")},
    ), plans


def assert_same_tables(a, b) -> None:  # type: ignore[no-untyped-def]
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert np.array_equal(x, y) and (not isinstance(x, np.ndarray) or x.dtype == y.dtype), f.name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios(), prices=st.lists(st.one_of(st.none(), st.integers(0, 10**9)), min_size=6, max_size=6))
def test_tables_loaded_as_columns_give_the_same_accounts_and_kernel_tables(tmp_path_factory, scenario,  # type: ignore
                                                                           prices) -> None:
    cat, objects, cols = scenario
    objects = replace(objects, plans=tuple(replace(p, price=prices[k]) for k, p in enumerate(objects.plans)))
    folder = write_as_tables(objects, tmp_path_factory.mktemp("acc") / "acc")
    loaded = load_accounts(folder, cat)
    parties = party_list(objects.parties(), read_calls(cols, cat))
    assert loaded.parties() == objects.parties()

    tables, plans = kernel_tables(cat, loaded, parties)
    assert "plans" not in vars(loaded) and "accounts" not in vars(loaded)  # no objects were needed for these
    expected_tables, expected_plans = plain_tables(cat, objects, parties)
    assert_same_tables(tables, expected_tables)
    assert plans.objects() == expected_plans
    from_objects, object_plans = build_tables(cat, objects, parties)
    assert_same_tables(from_objects, expected_tables)
    assert object_plans == expected_plans
    assert np.array_equal(plans.quantity, [p.quantity for p in expected_plans])
    assert np.array_equal(plans.effective_end, [p.effective_end for p in expected_plans])

    assert replace(loaded, source="x") == replace(objects, source="x")  # the objects, made on first access
    assert {id(p) for p in plans.objects()} == {id(p) for p in loaded.plans}  # made once, shared


def test_objects_are_made_once_and_shared() -> None:
    acc = Accounts(plans=(Plan("b", "u", "official", "dedicated", ("X",), 1, 5, 9),
                          Plan("a", "u", "official", "dedicated", ("X",), 2, 5, 9, refunded=7)))
    cols = PlanColumns.of_plans(acc.plans, [])
    assert cols.parties == [("u", "official")]  # an owner the list lacks is appended
    ordered = cols.take(cols.expire_first())
    assert ordered.ids == ["a", "b"]  # same end and start: id order
    assert ordered.objects()[0] is acc.plans[1] and ordered.objects()[1] is acc.plans[0]
    assert list(ordered.effective_end) == [7, 9]


def test_column_accounts_pickle_as_plain_objects(tmp_path: Path) -> None:
    obj = Accounts(accounts=(Account("u", activated={"RecognizeIdcard": 1}),),
                   plans=(Plan("p", "u", "official", "dedicated", ("RecognizeIdcard",), 3, 5, 9),))
    loaded = load_accounts(write_as_tables(obj, tmp_path / "acc"), CATALOG)
    again = pickle.loads(pickle.dumps(loaded))
    assert "_columns" not in vars(again)
    assert replace(again, source="x") == replace(obj, source="x")
