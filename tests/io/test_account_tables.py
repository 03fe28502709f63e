"""Accounts as a folder of CSV/Parquet tables: same Accounts as the TOML, field-level errors, 10^5 plans fast."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import CATALOG

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from ocrledger.errors import AccountsError  # noqa: E402
from ocrledger.io.account_tables import load_accounts  # noqa: E402
from ocrledger.model.accounts import parse_accounts  # noqa: E402

TOML = {
    "account": [
        {"id": "u", "channel": "official", "activated": {"RecognizeIdcard": "2026-01-01T00:00:00+08:00",
                                                          "RecognizeGeneral": "2026-02-01"}},
        {"id": "shop", "channel": "marketplace"},
        {"id": "w"},
    ],
    "plan": [
        {"id": "d1", "account": "u", "kind": "dedicated", "api": "RecognizeIdcard", "quantity": 1000,
         "start": "2024-02-29T10:00:00+08:00", "price": "45"},
        {"id": "s1", "account": "u", "kind": "shared", "apis": ["RecognizeIdcard", "RecognizeAllText"],
         "quantity": 5000, "start": "2026-10-01", "end": "2027-01-01T00:00:00+08:00",
         "refunded": "2026-12-01T00:00:00Z"},
        {"id": "m1", "account": "shop", "channel": "marketplace", "kind": "shared", "quantity": 10,
         "start": 1790000000000},
    ],
    "qps_addon": [{"account": "u", "api": "RecognizeIdcard", "qps": 20, "start": "2026-10-01T00:00:00+08:00"}],
    "alert": [{"account": "u", "kind": "payg_spend", "threshold": "100"}],
}
TABLES = {
    "accounts": "id,channel\nu,official\nshop,marketplace\nw,\n",
    "activations": "account,channel,api,activated\nu,official,RecognizeIdcard,2026-01-01T00:00:00+08:00\n"
                   "u,,RecognizeGeneral,2026-02-01\n",
    "plans": "id,account,channel,kind,api,apis,quantity,start,end,price,refunded\n"
             "d1,u,official,dedicated,RecognizeIdcard,,1000,2024-02-29T10:00:00+08:00,,45,\n"
             "s1,u,,shared,,RecognizeIdcard|RecognizeAllText,5000,2026-10-01,2027-01-01T00:00:00+08:00,,"
             "2026-12-01T00:00:00Z\n"
             "m1,shop,marketplace,shared,,,10,1790000000000,,,\n",
    "qps_addons": "account,channel,api,qps,start,end\nu,official,RecognizeIdcard,20,2026-10-01T00:00:00+08:00,\n",
    "alerts": "account,channel,kind,target,threshold\nu,official,payg_spend,,100\n",
}


def write_tables(folder: Path, tables: dict[str, str], parquet: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
        if parquet:
            import pyarrow.csv as pacsv

            t = pacsv.read_csv(folder / f"{name}.csv",
                               convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
            (folder / f"{name}.csv").unlink()
            pq.write_table(t, folder / f"{name}.parquet")
    return folder


@pytest.mark.parametrize("parquet", [False, True], ids=["csv", "parquet"])
def test_folder_gives_the_same_accounts_as_toml(tmp_path: Path, parquet: bool) -> None:
    expected = parse_accounts(TOML, CATALOG)
    got = load_accounts(write_tables(tmp_path / "acc", TABLES, parquet), CATALOG)
    assert got.source == str(tmp_path / "acc")
    assert replace(got, source="x") == replace(expected, source="x")


@pytest.mark.parametrize(
    ("table", "text", "message"),
    [
        ("plans", "id,account,kind,api,quantity,start\np,u,dedicated,RecognizeIdcard,0,2026-10-01\n",
         "plans.csv: row 2: field quantity: must be an integer of at least 1, not 0"),
        ("plans", "id,account,kind,api,quantity,start\np,nobody,dedicated,RecognizeIdcard,1,2026-10-01\n",
         "plans.csv: row 2: field account: account 'nobody' is not listed on the official channel"),
        ("plans", "id,account,kind,apis,quantity,start\np,u,shared,RecognizeAllText|RecognizeAllText,1,2026-10-01\n",
         "plans.csv: row 2: field apis: lists an API twice"),
        ("plans", "id,account,kind,api,quantity,start\np,u,dedicated,RecognizeAllText,1,2026-10-01\n",
         "plans.csv: row 2: field api: API 'RecognizeAllText' does not accept dedicated plans"),
        ("plans", "id,account,kind,api,quantity,start,end\np,u,dedicated,RecognizeIdcard,1,2026-10-01,2026-09-01\n",
         "plans.csv: row 2: field end: ends (2026-09-01T00:00:00+08:00) before or when it starts"),
        ("plans", "id,account,kind,api,quantity,start\np,u,dedicated,RecognizeIdcard,1,\n",
         "plans.csv: row 2: field start: is required"),
        ("plans", "id,account,kind,api,quantity,start,price\np,u,dedicated,RecognizeIdcard,1,2026-10-01,0.1234567\n",
         "plans.csv: row 2: field price: price '0.1234567' has 7 decimal places"),
        ("activations", "account,api,activated\nu,RecognizeX,2026-01-01\n",
         "activations.csv: row 2: field api: API 'RecognizeX' is not in the catalog"),
        ("activations", "account,api,activated\nu,RecognizeIdcard,yesterday\n",
         "activations.csv: row 2: field activated: instant 'yesterday' is not an ISO 8601 instant"),
        ("accounts", "id,channel\nu,official\nu,\n", "accounts.csv: row 3: field id: account 'u' is listed twice"),
        ("accounts", "id,colour\nu,red\n", "accounts.csv: row 1: unknown column(s) colour"),
    ],
)
def test_errors_name_file_row_and_column(tmp_path: Path, table: str, text: str, message: str) -> None:
    tables = {"accounts": "id,channel\nu,official\n", table: text}
    folder = write_tables(tmp_path / "acc", tables)
    with pytest.raises(AccountsError) as err:
        load_accounts(folder, CATALOG)
    assert str(err.value).startswith(f"{folder / message.split(':')[0]}:{message.split(':', 1)[1]}")


def test_missing_accounts_table(tmp_path: Path) -> None:
    (tmp_path / "plans.csv").write_text("id\n")
    with pytest.raises(AccountsError, match="no accounts.csv or accounts.parquet"):
        load_accounts(tmp_path, CATALOG)


def test_hundred_thousand_plans_load_quickly(tmp_path: Path) -> None:
    n_acc, n = 20_000, 100_000
    folder = tmp_path / "big"
    folder.mkdir()
    pq.write_table(pa.table({"id": [f"acc{i}" for i in range(n_acc)], "channel": ["official"] * n_acc}),
                   folder / "accounts.parquet")
    start = [f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00+08:00" for i in range(n)]
    plans = pa.table({
        "id": [f"p{i}" for i in range(n)], "account": [f"acc{i % n_acc}" for i in range(n)],
        "kind": ["dedicated" if i % 3 else "shared" for i in range(n)],
        "api": ["RecognizeIdcard" if i % 3 else None for i in range(n)],
        "quantity": pa.array([1000 + i for i in range(n)], pa.int64()), "start": start,
        "price": ["45" if i % 2 else None for i in range(n)],
    })
    pq.write_table(plans, folder / "plans.parquet")
    t0, c0 = time.perf_counter(), time.process_time()
    acc = load_accounts(folder, CATALOG)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"\nloaded {len(acc.plans):,} plans of {len(acc.accounts):,} accounts in {wall:.3f} s ({cpu:.3f} s CPU)")
    assert len(acc.plans) == n
    clock = CATALOG.clock
    for k in (0, 1, 59_999, n - 1):
        p = acc.plans[k]
        assert p.start == clock.instant(start[k], what="start") and p.end == clock.plus_one_year(p.start)


@pytest.mark.parametrize(
    "rows, message",
    [
        # the first offending row wins, whichever check it fails (as a row-by-row reading reports it)
        ("u,official,RecognizeIdcard,2026-01-01\nm,marketplace,RecognizeIdcard,2026-01-01\n"
         "u,official,RecognizeIdcard,2026-02-01\n",
         "row 3: field channel: marketplace accounts need no activation; remove the row"),
        ("u,official,RecognizeIdcard,2026-01-01\nu,,RecognizeIdcard,2026-02-01\n"
         "m,marketplace,RecognizeIdcard,2026-01-01\n",
         "row 3: field api: API 'RecognizeIdcard' of account 'u' is activated twice"),
        ("u,official,RecognizeIdcard,2026-01-01\nnobody,official,RecognizeIdcard,2026-01-01\n",
         "row 3: field account: account 'nobody' is not listed on the official channel"),
        ("u,official,RecognizeIdcard,2026-01-01\nm,official,RecognizeIdcard,2026-01-01\n",
         "row 3: field account: account 'm' is not listed on the official channel"),
        ("u,shop,RecognizeIdcard,2026-01-01\n", "row 2: field channel: must be 'official' or 'marketplace', not 'shop'"),
        (",official,RecognizeIdcard,2026-01-01\n", "row 2: field account: is required"),
        # ids are exact: a whitespace-only account is an id (not listed), " u" is not "u"
        ("  ,official,RecognizeIdcard,2026-01-01\n",
         "row 2: field account: account '  ' is not listed on the official channel"),
        (" u,official,RecognizeIdcard,2026-01-01\n",
         "row 2: field account: account ' u' is not listed on the official channel"),
        # a bad account anywhere is reported before a repeated pair earlier in the file
        ("u,official,RecognizeIdcard,2026-01-01\nu,official,RecognizeIdcard,2026-01-01\nx,official,RecognizeIdcard,1\n",
         "row 4: field account: account 'x' is not listed on the official channel"),
    ],
)
def test_activation_errors_in_row_order(tmp_path: Path, rows: str, message: str) -> None:
    tables = {"accounts": "id,channel\nu,official\nm,marketplace\n",
              "activations": "account,channel,api,activated\n" + rows}
    folder = write_tables(tmp_path / "acc", tables)
    with pytest.raises(AccountsError) as err:
        load_accounts(folder, CATALOG)
    assert str(err.value) == f"{folder / 'activations.csv'}: {message}"


def test_activations_keep_row_order_per_account(tmp_path: Path) -> None:
    rows = ("u,official,RecognizeGeneral,2026-03-01\nv,official,RecognizeIdcard,2026-01-01\n"
            "u,official,RecognizeIdcard,2026-02-01\n")
    folder = write_tables(tmp_path / "acc", {"accounts": "id,channel\nu,official\nv,official\n",
                                              "activations": "account,channel,api,activated\n" + rows})
    acc = load_accounts(folder, CATALOG)
    assert [list(a.activated) for a in acc.accounts] == [["RecognizeGeneral", "RecognizeIdcard"], ["RecognizeIdcard"]]
