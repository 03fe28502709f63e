"""The whole rerate on a real LocalCluster (2 worker processes): every output equal to the local rerater's."""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import CATALOG, OCT, accounts, calls, ms, official, overflow_setup, repeat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import scenarios

pa = pytest.importorskip("pyarrow")
distributed = pytest.importorskip("distributed")

import pyarrow.parquet as pq  # noqa: E402

from ocrledger import dask as odask  # noqa: E402
from ocrledger.cli.main import main  # noqa: E402
from ocrledger.cluster.dask import INSTALL, account_ranges, modules  # noqa: E402
from ocrledger.errors import OcrledgerError  # noqa: E402
from ocrledger.model.bills import bills_to_json  # noqa: E402
from ocrledger.rerate.rerater import rerate  # noqa: E402

SUMMARY_FIGURES = ("month", "kernel", "calls_read", "calls_rated", "calls", "status", "source", "amount_exact", "bills",
                   "bill_total", "parties", "periods")
"""What summary.json says about the calls and bills (not the time, memory or partitions)."""


def arrow(cols: dict) -> object:
    return pa.table({k: (v.tolist() if v.dtype.kind in "UO" else v) for k, v in cols.items()})


def write_parts(table: object, folder: Path, files: int, seed: int) -> None:
    """The calls shuffled and split into ``files`` Parquet files."""
    rng = np.random.default_rng(seed)
    table = table.take(pa.array(rng.permutation(table.num_rows)))  # type: ignore[attr-defined]
    folder.mkdir()
    step = max(1, -(-table.num_rows // files))  # type: ignore[attr-defined]
    for k in range(files):
        pq.write_table(table.slice(k * step, step), folder / f"part-{k}.parquet", row_group_size=7)  # type: ignore[attr-defined]


def rows(path: Path) -> list[tuple]:
    """calls.parquet (a file or a folder of parts) as sorted rows of plain values."""
    t = pq.read_table(path)
    names = ["record_id", "account", "api", "channel", "ts", "period", "source", "plan", "tier", "amount", "status"]
    assert t.column_names == names
    cols = [t.column(n).to_pylist() for n in names]
    return sorted(zip(*cols), key=repr)


def assert_same_outputs(local: Path, dask: Path, with_calls: bool = True) -> None:
    for name in ("bills.json", "bills.txt"):
        assert (dask / name).read_bytes() == (local / name).read_bytes(), name
    for name in ("diff.json", "diff.txt"):
        assert (dask / name).exists() == (local / name).exists()
        if (local / name).exists():
            assert (dask / name).read_bytes() == (local / name).read_bytes(), name
    a, b = json.loads((local / "summary.json").read_text()), json.loads((dask / "summary.json").read_text())
    assert {k: b[k] for k in SUMMARY_FIGURES} == {k: a[k] for k in SUMMARY_FIGURES}
    assert (dask / "calls.parquet").exists() == with_calls
    if not with_calls:
        return
    parts = sorted((dask / "calls.parquet").glob("part-*.parquet"))
    assert parts and all(pq.read_schema(p) == pq.read_schema(parts[0]) for p in parts)  # one schema
    assert pq.read_schema(parts[0]) == pq.read_schema(local / "calls.parquet")
    assert rows(dask / "calls.parquet") == rows(local / "calls.parquet")  # the same rows, as a multiset
    accounts_seen: list[str] = []
    for p in parts:  # each part in charge order; the parts in account order, no account in two parts
        t = pq.read_table(p)
        ts = t.column("ts").to_numpy()
        assert (np.diff(ts) >= 0).all()
        accs = sorted(set(t.column("account").to_pylist()))
        if accs and accounts_seen:
            assert accs[0] > accounts_seen[-1]
        accounts_seen += accs


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario=scenarios(max_calls=80), files=st.integers(1, 3), budget=st.integers(1, 50), buckets=st.integers(1, 5),
       by_month=st.booleans(), seed=st.integers(0, 2**16), memory_rows=st.sampled_from([None, 0, 7]),
       bucket_rows=st.integers(1, 20))
def test_every_output_equals_the_local_rerate(scenario, files, budget, buckets, by_month, seed, memory_rows,  # type: ignore[no-untyped-def]
                                              bucket_rows, client) -> None:
    # memory_rows 0 or 7: ranges of more calls go through the spill passes (time buckets of bucket_rows calls)
    cat, acc, cols = scenario
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        table = arrow(cols)
        write_parts(table, tmp / "calls", files, seed)
        first = rerate(table.slice(0, table.num_rows // 2), cat, acc)  # type: ignore[attr-defined]
        issued = tmp / "issued.json"
        issued.write_text(bills_to_json(first.bills) + "\n")
        month = first.bills[0].period if by_month and first.bills else None
        local = rerate(tmp / "calls", cat, acc, out=tmp / "local", month=month, against=issued)
        got = odask.rerate(tmp / "calls", cat, acc, out=tmp / "dask", month=month, against=issued,
                           partition_rows=budget, npartitions=buckets, memory_rows=memory_rows, bucket_rows=bucket_rows)
        assert_same_outputs(tmp / "local", tmp / "dask")
        assert bills_to_json(got.bills) == bills_to_json(local.bills)
        assert got.diff.to_dict() == local.diff.to_dict()
        assert got.summary["dask"]["workers"] == 2
        # without out: the bills come back from the workers
        assert bills_to_json(odask.rerate(tmp / "calls", cat, acc, month=month, partition_rows=budget).bills) \
            == bills_to_json(local.bills)


def small_setup() -> tuple:
    acc = accounts(
        CATALOG,
        account=[official(f"u{i}", "RecognizeIdcard", "RecognizeGeneral") for i in range(4)],
        plan=[{"id": "p0", "account": "u0", "kind": "dedicated", "api": "RecognizeGeneral", "quantity": 50,
               "start": OCT}],
    )
    rows_ = []
    for i in range(4):
        rows_ += repeat(120 + 30 * i, f"u{i}", "RecognizeGeneral", OCT, prefix=f"g{i}-", step_ms=997)
    rows_ += repeat(15, "nobody", "RecognizeIdcard", OCT, prefix="n")
    return acc, calls(rows_)


def test_one_account_larger_than_the_budget_is_a_range_of_its_own_and_bills_only(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    acc, cols = small_setup()
    write_parts(arrow(cols), tmp_path / "calls", 2, seed=1)
    rerate(tmp_path / "calls", CATALOG, acc, out=tmp_path / "local")
    got = odask.rerate(tmp_path / "calls", CATALOG, acc, out=tmp_path / "dask", partition_rows=100)
    # in byte order: nobody 15, u0 120, u1 150, u2 180, u3 210 calls; 15 + 120 > 100, so nobody stays alone and
    # each u (over the budget of 100) is a range of its own: 5 ranges, the largest u3's 210 calls
    assert got.summary["dask"]["account_ranges"] == 5
    assert got.summary["dask"]["largest_range"] == 210
    assert_same_outputs(tmp_path / "local", tmp_path / "dask")
    rerate(tmp_path / "calls", CATALOG, acc, out=tmp_path / "local-b", bills_only=True)
    odask.rerate(tmp_path / "calls", CATALOG, acc, out=tmp_path / "dask", bills_only=True)  # replaces the full run
    assert not (tmp_path / "local-b" / "calls.parquet").exists()
    assert_same_outputs(tmp_path / "local-b", tmp_path / "dask", with_calls=False)
    assert (tmp_path / "dask" / "bills.json").read_bytes() == (tmp_path / "local" / "bills.json").read_bytes()
    # the local rerate and the Dask rerate take turns in one folder: calls.parquet is a file, then a folder again
    odask.rerate(tmp_path / "calls", CATALOG, acc, out=tmp_path / "dask")
    rerate(tmp_path / "calls", CATALOG, acc, out=tmp_path / "dask")
    assert (tmp_path / "dask" / "calls.parquet").is_file()
    odask.rerate(tmp_path / "calls", CATALOG, acc, out=tmp_path / "dask")
    assert_same_outputs(tmp_path / "local", tmp_path / "dask")


def test_an_account_larger_than_memory_rows_goes_through_the_spill_passes_with_a_warning(  # type: ignore[no-untyped-def]
        client, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    acc, cols = small_setup()
    write_parts(arrow(cols), tmp_path / "calls", 2, seed=4)
    rerate(tmp_path / "calls", CATALOG, acc, out=tmp_path / "local")
    with caplog.at_level("WARNING", logger="ocrledger.rerate"):
        got = odask.rerate(tmp_path / "calls", CATALOG, acc, out=tmp_path / "dask", partition_rows=100,
                           memory_rows=160, bucket_rows=40)
    # u2 (180 calls) and u3 (210) are over the budget of 100 and over memory_rows: spill passes, named; u0 (120)
    # and u1 (150) are over the budget only: in memory, no warning
    warned = [r.getMessage() for r in caplog.records if r.name == "ocrledger.rerate"]
    assert [w.split(":")[0] for w in warned] == ["account 'u2'", "account 'u3'"]
    assert "180 calls, more than the range budget of 100: rated alone on one worker by the spill passes" in warned[0]
    assert got.summary["dask"]["oversized"] == warned
    # ranges in account order: nobody, u0, u1 in memory (one time bucket); u2, u3 in time buckets of whole minutes
    buckets = json.loads((tmp_path / "dask" / "summary.json").read_text())["dask"]["time_buckets_per_range"]
    assert buckets[:3] == [1, 1, 1] and min(buckets[3:]) >= 2
    assert_same_outputs(tmp_path / "local", tmp_path / "dask")


def test_account_ranges_by_hand() -> None:
    counts = pa.table({"account": ["c", "a", "d", "b", "a"], "n": [9, 3, 1, 2, 2]})
    # a = 3 + 2 = 5; a+b = 7 > 6: b starts a range; b+c = 11 > 6: c (9, over the budget) alone; c+d > 6: d alone
    assert account_ranges(counts, 6) == (["", "b", "c", "d"], [5, 2, 9, 1])
    assert account_ranges(counts, 100) == ([""], [17])
    assert account_ranges(pa.table({"account": pa.array([], pa.string()), "n": pa.array([], pa.int64())}), 5) == ([""], [0])


def test_zipf_skew_is_spread() -> None:
    """20,000 accounts with Zipf(1) volume (the largest ~9.3% of 10^7 calls, as in the issue-5 month): ranges
    of at most the budget, each but the last at least the budget minus the account that did not fit."""
    n = 20_000
    w = 1.0 / np.arange(1, n + 1)
    calls_per = np.floor(w / w.sum() * 10_000_000).astype(np.int64) + 1
    rng = np.random.default_rng(5)
    names = [f"acc{i:07d}" for i in rng.permutation(n)]  # volume unrelated to the name order
    total = int(calls_per.sum())
    budget = -(-total // 4)  # 2 workers x 2 ranges
    starts, sizes = account_ranges(pa.table({"account": names, "n": calls_per}), budget)
    assert sum(sizes) == total and max(sizes) <= budget
    assert len(starts) <= 6
    by_name = dict(zip(names, calls_per.tolist()))
    ordered = sorted(names)
    cut = [ordered.index(s) for s in starts[1:]]
    for k, c in enumerate(cut):
        assert sizes[k] + by_name[ordered[c]] > budget  # the range was cut only because the next account did not fit


def test_errors_name_the_file_and_row_as_locally(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    acc, cols = small_setup()
    t = arrow(cols)
    folder = tmp_path / "calls"
    folder.mkdir()
    pq.write_table(t.slice(0, 300), folder / "a.parquet", row_group_size=50)
    bad = t.slice(300).to_pylist()
    bad[170]["api"] = "NoSuchApi"
    pq.write_table(pa.Table.from_pylist(bad, schema=t.schema), folder / "b.parquet", row_group_size=40)
    with pytest.raises(OcrledgerError) as local:
        rerate(folder, CATALOG, acc, out=tmp_path / "local")
    with pytest.raises(OcrledgerError) as got:
        odask.rerate(folder, CATALOG, acc, out=tmp_path / "dask", partition_rows=100)
    assert str(got.value) == str(local.value)
    assert str(got.value).startswith(f"{folder / 'b.parquet'}: row 171: field api:")
    assert not (tmp_path / "dask").exists() or not any(p for p in (tmp_path / "dask").iterdir())
    # a CSV file: the line the record starts on (the header is line 1)
    csv = tmp_path / "calls.csv"
    lines = ["record_id,account,api,ts,success"] + [f"r{i},u1,RecognizeGeneral,2026-10-02T00:00:00+08:00,1" for i in range(9)]
    lines[6] = "r5,,RecognizeGeneral,2026-10-02T00:00:00+08:00,1"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(OcrledgerError) as local:
        rerate(csv, CATALOG, acc)
    with pytest.raises(OcrledgerError) as got:
        odask.rerate(csv, CATALOG, acc)
    assert str(got.value) == str(local.value) == f"{csv}: row 7: field account: is empty"


def test_accounts_as_a_path_and_a_bad_accounts_file(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "calls"
    write_parts(arrow(calls([("r1", "u", "RecognizeIdcard", OCT, 1), ("r2", "v", "RecognizeIdcard", OCT, 1)])), folder, 1, 0)
    good = tmp_path / "accounts.toml"
    good.write_text('[[account]]\nid = "u"\nchannel = "official"\nactivated = { RecognizeIdcard = 2026-01-01 }\n')
    local = rerate(folder, CATALOG, good)
    assert bills_to_json(odask.rerate(folder, CATALOG, good).bills) == bills_to_json(local.bills)
    assert bills_to_json(odask.rerate(str(folder / "*.parquet"), CATALOG, str(good)).bills) == bills_to_json(local.bills)
    assert bills_to_json(rerate(str(folder / "*.parquet"), CATALOG, good).bills) == bills_to_json(local.bills)
    for run in (rerate, odask.rerate):
        with pytest.raises(OcrledgerError, match="no file matches this pattern"):
            run(str(folder / "*.csv"), CATALOG, good)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[plan]]\nid = "p"\naccount = "u"\nkind = "dedicated"\napi = "RecognizeIdcard"\nquantity = 0\n'
                   'start = 2026-10-01\n[[account]]\nid = "u"\n')
    with pytest.raises(OcrledgerError) as expected:
        rerate(folder, CATALOG, bad)
    with pytest.raises(OcrledgerError) as got:
        odask.rerate(folder, CATALOG, bad)
    assert str(got.value) == str(expected.value)


def test_the_command_line_on_the_cluster(client, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    acc, cols = small_setup()
    write_parts(arrow(cols), tmp_path / "calls", 3, seed=2)
    toml = tmp_path / "accounts.toml"
    toml.write_text("".join(f'[[account]]\nid = "u{i}"\nchannel = "official"\n'
                            f'activated = {{ RecognizeIdcard = 2026-01-01, RecognizeGeneral = 2026-01-01 }}\n'
                            for i in range(4)))
    base = ["rerate", "--accounts", str(toml), "--calls", str(tmp_path / "calls"), "--month", "2026-10"]
    assert main([*base, "--out", str(tmp_path / "local")]) == 0
    assert main([*base, "--out", str(tmp_path / "dask"), "--scheduler", client.scheduler.address]) == 0
    assert_same_outputs(tmp_path / "local", tmp_path / "dask")
    assert main([*base, "--out", str(tmp_path / "b"), "--scheduler", client.scheduler.address, "--bills-only"]) == 0
    assert_same_outputs(tmp_path / "local", tmp_path / "b", with_calls=False)
    capfd.readouterr()
    assert main([*base, "--out", str(tmp_path / "x"), "--scheduler", "local:0"]) == 2
    assert "local:N must be a whole number of workers" in capfd.readouterr().err


def test_without_dask_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(OcrledgerError, match=r"pip install 'ocrledger\[dask\]'"):
        modules()
    calls_file = tmp_path / "calls.csv"
    calls_file.write_text("record_id,account,api,ts,success\nr1,u,RecognizeIdcard,2026-10-02T00:00:00+08:00,1\n")
    assert main(["rerate", "--calls", str(calls_file), "--out", str(tmp_path / "o"), "--scheduler", "local"]) == 2
    assert INSTALL in capfd.readouterr().err


def kernel_error_calls() -> object:
    """300 calls of unknown accounts (never charged) and "u"'s two calls of 5e18 micro-units
    (``helpers.overflow_setup``): the second, record "rX", passes INT64_MAX. "rX" also stands on the
    marketplace channel (another record) and, later, for account "w" (a duplicate, never charged): only "u"'s
    official call is the one to name."""
    rows = [(f"f{i}", f"w{i % 9}", "A", ms(OCT) + 1000 + i, 1) for i in range(300)]
    rows[40] = ("rX", "u", "A", ms(OCT) + 700, 1, "marketplace")
    rows[120] = ("r0", "u", "A", ms(OCT) + 500, 1)
    rows[201] = ("rX", "u", "A", ms(OCT) + 700, 1)
    rows[250] = ("rX", "w", "A", ms(OCT) + 900, 1)
    return arrow(calls(rows))


def test_a_kernel_error_names_the_file_and_row_as_locally(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cat, acc = overflow_setup()
    t = kernel_error_calls()
    folder = tmp_path / "calls"
    folder.mkdir()
    pq.write_table(t.slice(0, 150), folder / "a.parquet", row_group_size=7)
    pq.write_table(t.slice(150), folder / "b.parquet", row_group_size=11)
    expected = f"{folder / 'b.parquet'}: row 52: record rX: its PAYG spend this month would pass INT64_MAX micro-units"
    with pytest.raises(OcrledgerError) as local:
        rerate(folder, cat, acc, out=tmp_path / "local")
    with pytest.raises(OcrledgerError) as spill:  # the spill passes look the call up too
        rerate(folder, cat, acc, memory_rows=0, bucket_rows=40)
    with pytest.raises(OcrledgerError) as got:
        odask.rerate(folder, cat, acc, out=tmp_path / "dask", partition_rows=20, npartitions=3)
    assert str(local.value) == str(spill.value) == str(got.value) == expected
    assert not any((tmp_path / "dask").iterdir())
    # a CSV file: the row as the local rerate gives it
    csv = tmp_path / "calls.csv"
    csv.write_text(t.to_pandas().to_csv(index=False))  # type: ignore[attr-defined]
    with pytest.raises(OcrledgerError) as local:
        rerate(csv, cat, acc)
    with pytest.raises(OcrledgerError) as got:
        odask.rerate([folder / "a.parquet", csv], cat, acc, partition_rows=20)
    assert str(local.value).startswith(f"{csv}: row ")
    assert str(got.value) == str(local.value)
