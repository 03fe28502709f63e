"""The streaming rerater: same bills as ``rate``, per-call explanation that adds up, bounded-memory spill paths."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from helpers import CATALOG, OCT, accounts, api, calls, catalog, ms, official, repeat

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from ocrledger.engine.rate import rate  # noqa: E402
from ocrledger.errors import CallsError  # noqa: E402
from ocrledger.model.bills import bills_to_json  # noqa: E402
from ocrledger.rerate.rerater import rerate  # noqa: E402

SEP = "2026-09-20T00:00:00+08:00"


def table(cols: dict[str, np.ndarray]) -> "pa.Table":
    return pa.table({k: (v.tolist() if v.dtype.kind == "U" else v) for k, v in cols.items()})


def mixed_setup() -> tuple:
    """Two months, plans that span them, a marketplace shop, an unknown account, failures, duplicates."""
    acc = accounts(
        CATALOG,
        account=[official("u", "RecognizeIdcard", "RecognizeGeneral", "VerifyVATInvoice"),
                 {"id": "shop", "channel": "marketplace"}],
        plan=[
            {"id": "ded", "account": "u", "kind": "dedicated", "api": "RecognizeGeneral", "quantity": 300,
             "start": SEP},
            {"id": "sh", "account": "u", "kind": "shared", "quantity": 2000, "start": SEP},
            {"id": "mk", "account": "shop", "channel": "marketplace", "kind": "shared", "quantity": 500,
             "start": SEP},
        ],
    )
    rows = (
        repeat(700, "u", "RecognizeIdcard", "2026-09-25T00:00:00+08:00", prefix="a", step_ms=3_000)
        + repeat(900, "u", "RecognizeGeneral", "2026-09-29T00:00:00+08:00", prefix="b", step_ms=700)
        + repeat(120, "u", "VerifyVATInvoice", "2026-09-30T12:00:00+08:00", prefix="c", step_ms=5_000)
        + repeat(80, "shop", "RecognizeIdcard", OCT, prefix="d", step_ms=1_000, channel="marketplace")
        + repeat(30, "ghost", "RecognizeIdcard", OCT, prefix="e")
        + repeat(25, "u", "RecognizeIdcard", OCT, prefix="f", success=0)
        + [("a0000003", "u", "RecognizeIdcard", "2026-10-02T00:00:00+08:00", 1)]  # later copy: duplicate
        + [("a0000004", "shop", "RecognizeIdcard", "2026-10-02T00:00:00+08:00", 1, "marketplace")]  # other channel
        + [(f"q{i}", "u", "RecognizeGeneral", ms("2026-10-03T00:00:00+08:00") + i % 3, 1) for i in range(40)]  # a QPS burst
    )
    return acc, calls(rows)


def test_same_bills_as_rate_in_memory_and_spilled(kernel: str, tmp_path: Path) -> None:
    acc, cols = mixed_setup()
    expected = bills_to_json(rate(cols, CATALOG, acc, kernel=kernel).bills)
    rng = np.random.default_rng(7)
    shuffled = table(cols).take(pa.array(rng.permutation(len(cols["ts"]))))
    whole = rerate(shuffled, CATALOG, acc, kernel=kernel)
    assert whole.summary["buckets"] == {"record_id": 1, "time": 1}
    spilled = rerate(shuffled, CATALOG, acc, kernel=kernel, chunk_rows=97, bucket_rows=250, tmp_dir=tmp_path)
    assert spilled.summary["buckets"]["record_id"] > 1 and spilled.summary["buckets"]["time"] > 1
    assert bills_to_json(whole.bills) == expected
    assert bills_to_json(spilled.bills) == expected
    assert list(tmp_path.iterdir()) == []  # spill files removed


def test_parquet_folder_with_overlapping_files(tmp_path: Path) -> None:
    acc, cols = mixed_setup()
    t = table(cols)
    n = t.num_rows
    folder = tmp_path / "calls"
    (folder / "day=1").mkdir(parents=True)
    rng = np.random.default_rng(3)
    part = rng.integers(0, 3, n)  # every file spans the whole period: their times overlap
    for k in range(3):
        sub = t.filter(pa.array(part == k))
        where = folder / "day=1" if k == 0 else folder
        pq.write_table(sub, where / f"part-{k}.parquet", row_group_size=64)
    (folder / "_SUCCESS").write_text("")
    out = tmp_path / "out"
    result = rerate(folder, CATALOG, acc, out=out, chunk_rows=50, bucket_rows=400)
    assert bills_to_json(result.bills) == bills_to_json(rate(cols, CATALOG, acc).bills)
    assert sorted(p.name for p in out.iterdir()) == ["bills.json", "bills.txt", "calls.parquet", "summary.json"]
    assert json.loads((out / "bills.json").read_text()) == json.loads(bills_to_json(result.bills))
    explained = pq.read_table(out / "calls.parquet")
    assert explained.num_rows == n
    ts = explained.column("ts").to_numpy()
    assert (np.diff(ts) >= 0).all()  # charge order


def test_per_call_amounts_add_up_to_each_bill_line(tmp_path: Path) -> None:
    acc, cols = mixed_setup()
    result = rerate(table(cols), CATALOG, acc, out=tmp_path, bucket_rows=300)
    df = pq.read_table(tmp_path / "calls.parquet").to_pandas()
    assert set(df.columns) >= {"record_id", "account", "api", "channel", "ts", "source", "plan", "tier", "amount",
                               "status"}
    charged = df[df.status != "duplicate"]
    for bill in result.bills:
        mine = charged[(charged.account == bill.account) & (charged.channel == bill.channel)
                       & (charged.period == bill.period)]
        for line in bill.lines:
            rows = mine[mine.api == line.api]
            assert int(rows.amount.sum()) == int(line.amount_exact.scaleb(6))
            assert len(rows) == line.calls
            assert (rows.source == "free").sum() == line.free
            assert (rows.source == "dedicated").sum() == line.dedicated
            assert (rows.source == "shared").sum() == line.shared_calls
            assert (rows.source == "payg").sum() == line.payg
            assert (rows.status == "failed").sum() == line.failed
            assert rows.status.str.startswith("rejected").sum() == line.rejected
    assert (df.status == "duplicate").sum() == 1
    assert result.summary["amount_exact"] == str(Decimal(int(df.amount.sum())).scaleb(-6).quantize(Decimal("0.000001")))
    plans = df[df.plan.notna()]
    assert set(plans.plan) <= {"ded", "sh", "mk"} and plans.source.isin(["dedicated", "shared"]).all()


def test_month_keeps_earlier_calls_for_plans_and_drops_later_ones(tmp_path: Path) -> None:
    acc, cols = mixed_setup()
    expected = rate(cols, CATALOG, acc, month="2026-10").bills
    result = rerate(table(cols), CATALOG, acc, month="2026-10", out=tmp_path, bucket_rows=200)
    assert bills_to_json(result.bills) == bills_to_json(expected)
    assert {b.period for b in result.bills} == {"2026-10"}
    periods = pq.read_table(tmp_path / "calls.parquet").column("period").to_pylist()
    assert set(periods) == {"2026-10"}
    sep = rerate(table(cols), CATALOG, acc, month="2026-09")
    assert sep.summary["calls_rated"] < sep.summary["calls_read"]  # October was skipped
    assert bills_to_json(sep.bills) == bills_to_json(rate(cols, CATALOG, acc, month="2026-09").bills)


def test_duplicate_record_id_under_two_accounts_does_not_depend_on_order() -> None:
    acc = accounts(CATALOG, account=[official("a", "RecognizeIdcard"), official("b", "RecognizeIdcard")])
    t0 = ms(OCT)
    rows = [("same", "b", "RecognizeIdcard", t0, 1), ("same", "a", "RecognizeIdcard", t0, 1),
            ("x", "a", "RecognizeIdcard", t0 + 5, 1), ("x", "b", "RecognizeIdcard", t0 + 1, 1)]
    results = set()
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]):
        t = table(calls([rows[i] for i in order]))
        bills = rerate(t, CATALOG, acc, chunk_rows=1, bucket_rows=1).bills
        results.add(bills_to_json(bills))
    assert len(results) == 1
    bills = {b.account: b for b in rerate(table(calls(rows)), CATALOG, acc).bills}
    # "same": exact tie, the smaller account id keeps it; "x": the earlier instant (account b) keeps it
    assert bills["a"].line("RecognizeIdcard").calls == 1 and bills["b"].line("RecognizeIdcard").calls == 1


def test_volume_tiers_are_repriced_in_the_explanation(tmp_path: Path) -> None:
    cat = catalog([api("V", free_monthly=0, tier_mode="volume",
                       tiers=[{"upto": 100, "price": "0.5"}, {"price": "0.1"}]), api("G", free_monthly=0)])
    acc = accounts(cat, account=[official("u", "V", "G")])
    cols = calls(repeat(150, "u", "V", OCT) + repeat(20, "u", "G", OCT, prefix="g"))
    result = rerate(table(cols), cat, acc, out=tmp_path, bucket_rows=40)
    assert bills_to_json(result.bills) == bills_to_json(rate(cols, cat, acc).bills)
    df = pq.read_table(tmp_path / "calls.parquet").to_pandas()
    v = df[df.api == "V"]
    assert (v.amount == 100_000).all() and (v.tier == 1).all()
    assert int(df.amount.sum()) == int(result.bills[0].total.scaleb(6)) == 150 * 100_000 + 20 * 82_500
    assert "_line" not in df.columns


def test_csv_input_and_text_timestamps(tmp_path: Path) -> None:
    acc, cols = mixed_setup()
    path = tmp_path / "calls.csv"
    clock = CATALOG.clock
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("record_id,account,api,ts,success,channel\n")
        for i, (rid, a, code, ts, ok, ch) in enumerate(zip(*(cols[c] for c in
                                                               ("record_id", "account", "api", "ts", "success",
                                                                "channel")))):
            stamp = clock.label(int(ts)) if i % 2 else str(int(ts))
            fh.write(f"{rid},{a},{code},{stamp},{'true' if ok else 'false'},{ch if i % 3 or ch != 'official' else ''}\n")
    result = rerate(path, CATALOG, acc, chunk_rows=100, bucket_rows=500)
    assert bills_to_json(result.bills) == bills_to_json(rate(cols, CATALOG, acc).bills)


def test_bad_record_names_file_row_field_and_writes_nothing(tmp_path: Path) -> None:
    acc, cols = mixed_setup()
    t = table(cols)
    api_col = t.column("api").to_pylist()
    api_col[1234] = "RecognizeNothing"
    bad = t.set_column(t.schema.get_field_index("api"), "api", pa.array(api_col))
    path = tmp_path / "calls.parquet"
    pq.write_table(bad, path, row_group_size=500)
    out = tmp_path / "out"
    with pytest.raises(CallsError) as err:
        rerate(path, CATALOG, acc, out=out, chunk_rows=300)
    assert str(err.value) == f"{path}: row 1235: field api: API 'RecognizeNothing' is not in the catalog"
    assert not out.exists()  # the folder the failed rerate made is removed again
    out.mkdir()
    with pytest.raises(CallsError):
        rerate(path, CATALOG, acc, out=out, chunk_rows=300)
    assert list(out.iterdir()) == []  # a folder that was there stays, empty
    naive = t.set_column(t.schema.get_field_index("ts"), "ts", pa.array(["2026-10-01T00:00:00"] * t.num_rows))
    with pytest.raises(CallsError, match="row 1: field ts: .*no UTC offset"):
        rerate(naive, CATALOG, acc)


def test_out_stays_inside_its_folder(tmp_path: Path) -> None:
    acc, cols = mixed_setup()
    outside = tmp_path / "outside.json"
    outside.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / "bills.json").symlink_to(outside)
    rerate(table(cols), CATALOG, acc, out=out, bucket_rows=300)
    assert outside.read_text() == "keep"
    assert not (out / "bills.json").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "outside.json"]
    assert not any(p.name.startswith(".") for p in out.iterdir())


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocrledger", *args], capture_output=True, text=True, timeout=300)


def test_cli_rerate_against_old_bills(tmp_path: Path) -> None:
    assert run_cli("demo", "--write", str(tmp_path)).returncode == 0
    acc, calls_csv = str(tmp_path / "accounts.toml"), str(tmp_path / "calls.csv")
    old = run_cli("rate", "--accounts", acc, "--calls", calls_csv, "--format", "json")
    bills = json.loads(old.stdout)
    bills[0]["lines"][0]["payg"] -= 5
    bills[0]["lines"][0]["amount"] = "1.00"
    bills[0]["total"] = "1.00"
    (tmp_path / "old.json").write_text(json.dumps(bills))
    proc = run_cli("rerate", "--accounts", acc, "--calls", calls_csv, "--month", "2026-10",
                   "--out", str(tmp_path / "out"), "--against", str(tmp_path / "old.json"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    assert "rated 127,440 calls" in proc.stdout and "Bill differences" in proc.stdout
    diff = json.loads((tmp_path / "out" / "diff.json").read_text())
    assert len(diff["lines"]) == 1 and diff["lines"][0]["delta"]["payg"] == 5
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["calls"] == 127_440 and summary["bills"] == 4
    text = (tmp_path / "out" / "bills.txt").read_text()
    assert "Total  CNY 6,110.00" in text
    bad = run_cli("rerate", "--calls", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "o2"))
    assert bad.returncode == 2 and bad.stderr.startswith("ocrledger: error: ") and bad.stderr.count("\n") == 1


ACCOUNTS_TOML = """
[[account]]
id = "u"
channel = "official"
activated = { RecognizeIdcard = 2026-01-01T00:00:00+08:00, RecognizeGeneral = 2026-01-01T00:00:00+08:00 }

[[plan]]
id = "ded"
account = "u"
kind = "dedicated"
api = "RecognizeGeneral"
quantity = 300
start = 2026-09-20T00:00:00+08:00
"""


def test_accounts_path_loaded_beside_the_calls_gives_the_same_bills(tmp_path: Path) -> None:
    from ocrledger.io.account_tables import load_accounts

    path = tmp_path / "accounts.toml"
    path.write_text(ACCOUNTS_TOML, encoding="utf-8")
    rows = (repeat(400, "u", "RecognizeGeneral", OCT, prefix="g") + repeat(250, "u", "RecognizeIdcard", OCT, prefix="i")
            + repeat(5, "ghost", "RecognizeIdcard", OCT, prefix="x"))
    t = table(calls(rows))
    loaded = rerate(t, CATALOG, load_accounts(path, CATALOG))
    beside = rerate(t, CATALOG, path)
    assert bills_to_json(beside.bills) == bills_to_json(loaded.bills)
    assert beside.bills and beside.summary["bills"] == loaded.summary["bills"]


def test_bad_accounts_file_is_reported_before_bad_calls(tmp_path: Path) -> None:
    from ocrledger.errors import AccountsError

    path = tmp_path / "accounts.toml"
    path.write_text(ACCOUNTS_TOML.replace("quantity = 300", "quantity = -3"), encoding="utf-8")
    bad_calls = table(calls(repeat(3, "u", "RecognizeNothing", OCT)))
    with pytest.raises(CallsError):
        rerate(bad_calls, CATALOG, accounts(CATALOG, account=[official("u", "RecognizeIdcard")]))
    with pytest.raises(AccountsError, match="quantity"):  # both bad: the accounts file's error, as when loaded first
        rerate(bad_calls, CATALOG, path)
    with pytest.raises(AccountsError, match="quantity"):
        rerate(table(calls(repeat(3, "u", "RecognizeIdcard", OCT))), CATALOG, path)


def test_account_text_is_exact_and_empty_refused_in_dictionary_columns(tmp_path: Path) -> None:
    # Parquet keeps text columns dictionary-encoded; values with spaces at their ends take the slow check,
    # and stay as they are: " u\t" is another account than "u" (docs/decisions.md, ids are exact)
    acc, cols = mixed_setup()
    t = table(cols)
    plain = rerate(t, CATALOG, acc)
    where = t.schema.get_field_index("account")
    padded = [f" {a}\t" if k % 3 == 0 else a for k, a in enumerate(t.column("account").to_pylist())]
    expected = bills_to_json(rate(t.set_column(where, "account", pa.array(padded)), CATALOG, acc).bills)
    assert expected != bills_to_json(plain.bills)
    for column in (pa.array(padded), pa.array(padded).dictionary_encode()):
        got = rerate(t.set_column(where, "account", column), CATALOG, acc)
        assert bills_to_json(got.bills) == expected
    blank = t.column("account").to_pylist()
    blank[7] = ""
    with pytest.raises(CallsError, match="row 8: field account: is empty"):
        rerate(t.set_column(where, "account", pa.array(blank).dictionary_encode()), CATALOG, acc)
    assert bills_to_json(rerate(t.set_column(where, "account", t.column("account").dictionary_encode()), CATALOG,
                                acc).bills) == bills_to_json(plain.bills)


@pytest.mark.parametrize("col", ["api", "channel"])
def test_first_bad_row_is_reported_whatever_the_dictionary_order(col: str) -> None:
    # the dictionary lists "Bad2" first, but row 4 (the first bad row) holds "Bad1"
    acc, cols = mixed_setup()
    t = table(cols)
    where = t.schema.get_field_index(col)
    good = t.column(col).to_pylist()
    values = pa.array(["Bad2", "Bad1", *sorted(set(good))])
    index = [2 + sorted(set(good)).index(v) for v in good]
    index[3], index[9] = 1, 0
    column = pa.DictionaryArray.from_arrays(pa.array(index, pa.int32()), values)
    wanted = {"api": "API 'Bad1' is not in the catalog",
              "channel": "channel must be 'official' or 'marketplace', not 'Bad1'"}
    with pytest.raises(CallsError) as err:
        rerate(t.set_column(where, col, column), CATALOG, acc)
    assert str(err.value) == f"<arrow table>: row 4: field {col}: {wanted[col]}"


@pytest.mark.parametrize("encode", [False, True], ids=["plain", "dictionary"])
def test_null_account_is_reported_as_empty(encode: bool) -> None:
    acc, cols = mixed_setup()
    t = table(cols)
    names: list = t.column("account").to_pylist()
    names[4] = None
    column = pa.array(names).dictionary_encode() if encode else pa.array(names)
    with pytest.raises(CallsError, match="row 5: field account: is empty"):
        rerate(t.set_column(t.schema.get_field_index("account"), "account", column), CATALOG, acc)


def test_command_keeps_pandas_out_and_arrow_still_works() -> None:
    code = ("import sys; from ocrledger.cli.process import keep_pandas_out; keep_pandas_out(); import pyarrow as pa; "
            "assert pa.array([1, 2]).to_pylist() == [1, 2]; print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_rerate_without_pyarrow_says_what_to_install(tmp_path: Path) -> None:
    # pyarrow is an extra: without it the command prints one line (exit 2), never a traceback
    code = ("import sys; sys.modules['pyarrow'] = None; from ocrledger.cli.main import main; "
            f"sys.exit(main(['rerate', '--calls', {str(tmp_path / 'calls.csv')!r}, '--out', {str(tmp_path / 'out')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == "ocrledger: error: the rerater needs pyarrow: pip install 'ocrledger[parquet]'\n"
