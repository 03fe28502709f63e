"""Calls named by credential (AccessKey ID / AppCode) instead of account: the rerater resolves them as the ledger does,
locally and on a real LocalCluster (2 workers), every output the same."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import CATALOG, accounts, ms, official

pa = pytest.importorskip("pyarrow")
distributed = pytest.importorskip("distributed")

import pyarrow.parquet as pq  # noqa: E402
from test_dask_rerate import SUMMARY_FIGURES, assert_same_outputs, rows  # noqa: E402

from ocrledger import dask as odask  # noqa: E402
from ocrledger.errors import OcrledgerError  # noqa: E402
from ocrledger.model.bills import bills_to_json  # noqa: E402
from ocrledger.rerate.rerater import rerate  # noqa: E402
from ocrledger.store.ledger import Ledger  # noqa: E402

TENTH = "2026-10-10T00:00:00+08:00"
ACC = accounts(
    CATALOG,
    account=[official(f"u{i}", "RecognizeIdcard", "RecognizeGeneral") for i in range(3)]
    + [{"id": "m", "channel": "marketplace"}],
    plan=[{"id": "p0", "account": "u0", "kind": "dedicated", "api": "RecognizeGeneral", "quantity": 30,
           "start": "2026-10-01T00:00:00+08:00"}],
    credential=[{"key": "AK0", "account": "u0"}, {"key": "AK1", "account": "u1", "until": TENTH},
                {"key": "AK1new", "account": "u1", "from": TENTH}, {"key": "AK2", "account": "u2"},
                {"key": "APP", "account": "m", "channel": "marketplace"}],
)
KEYS = ["AK0", "AK1", "AK1new", "AK2", "APP", "NOPE", "u0"]
"""Known keys (AK1 expires on the 10th, AK1new starts then), an unknown one, and one that is an account's id."""


def keyed_calls(n: int, seed: int) -> object:
    """``n`` calls over October by credential: both APIs, failures, and record ids repeated across keys."""
    rng = np.random.default_rng(seed)
    start = ms("2026-10-01T00:00:00+08:00")
    ts = start + np.sort(rng.integers(0, 20 * 86_400_000, n))
    return pa.table({
        "record_id": [f"r{i}" for i in rng.integers(0, int(n * 0.9), n)],  # ~10% repeated ids
        "credential": [KEYS[k] for k in rng.integers(0, len(KEYS), n)],
        "api": [("RecognizeIdcard", "RecognizeGeneral")[k] for k in rng.integers(0, 2, n)],
        "ts": ts.astype(np.int64),
        "success": rng.integers(0, 10, n).clip(0, 1).astype(np.int8),  # ~10% failed
    })


@pytest.mark.parametrize("seed", [1, 2])
def test_credentials_rerated_on_dask_as_locally_and_as_the_ledger(client, tmp_path: Path, seed: int) -> None:  # type: ignore[no-untyped-def]
    t = keyed_calls(600, seed)
    folder = tmp_path / "calls"
    folder.mkdir()
    pq.write_table(t.slice(0, 250), folder / "a.parquet", row_group_size=40)  # type: ignore[attr-defined]
    pq.write_table(t.slice(250), folder / "b.parquet", row_group_size=60)  # type: ignore[attr-defined]
    local = rerate(folder, CATALOG, ACC, out=tmp_path / "local")
    status = local.summary["status"]
    assert status["rejected_credential"] > 0 and status["duplicate"] > 0 and status["charged"] > 0
    got = odask.rerate(folder, CATALOG, ACC, out=tmp_path / "dask", partition_rows=60, npartitions=3)
    assert_same_outputs(tmp_path / "local", tmp_path / "dask")
    assert bills_to_json(got.bills) == bills_to_json(local.bills)
    # the spill passes, locally and for ranges over memory_rows on Dask
    spill = rerate(folder, CATALOG, ACC, out=tmp_path / "spill", memory_rows=0, bucket_rows=50)
    for name in ("bills.json", "bills.txt"):
        assert (tmp_path / "spill" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert rows(tmp_path / "spill" / "calls.parquet") == rows(tmp_path / "local" / "calls.parquet")
    assert {k: spill.summary[k] for k in SUMMARY_FIGURES} == {k: local.summary[k] for k in SUMMARY_FIGURES}
    odask.rerate(folder, CATALOG, ACC, out=tmp_path / "dask-spill", partition_rows=60, memory_rows=0, bucket_rows=50)
    assert_same_outputs(tmp_path / "local", tmp_path / "dask-spill")
    # the embedded ledger, given the same calls in one batch, bills the same and gives each call the same status
    ledger = Ledger.create(":memory:", CATALOG, ACC)
    ingested = ledger.ingest(t, "b")
    assert bills_to_json(ledger.bills("2026-10")) == bills_to_json(local.bills)
    calls = pq.read_table(tmp_path / "local" / "calls.parquet")
    words = {0: "charged", 5: "rejected_credential"}
    by_ledger = sorted(zip(ingested.calls["record_id"].tolist(), ingested.calls["account"].tolist(),
                           ingested.calls["ts"].tolist(), ingested.calls["status"].tolist()))
    by_rerate = sorted(zip(calls.column("record_id").to_pylist(), calls.column("account").to_pylist(),
                           calls.column("ts").to_pylist(), calls.column("status").to_pylist()))
    assert [r[:3] for r in by_ledger] == [r[:3] for r in by_rerate]
    for (_, _, _, code), (_, _, _, word) in zip(by_ledger, by_rerate):
        if code in words:
            assert word == words[code]


def test_a_csv_file_by_credential_and_its_errors(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = keyed_calls(120, 3)
    csv = tmp_path / "calls.csv"
    csv.write_text(t.to_pandas().to_csv(index=False))  # type: ignore[attr-defined]
    rerate(csv, CATALOG, ACC, out=tmp_path / "local")
    odask.rerate(csv, CATALOG, ACC, out=tmp_path / "dask", partition_rows=30)
    assert_same_outputs(tmp_path / "local", tmp_path / "dask")
    lines = csv.read_text().splitlines()
    cells = lines[9].split(",")
    cells[1] = ""  # an empty credential on line 10
    lines[9] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(OcrledgerError) as local:
        rerate(csv, CATALOG, ACC)
    with pytest.raises(OcrledgerError) as got:
        odask.rerate(csv, CATALOG, ACC)
    assert str(got.value) == str(local.value) == f"{csv}: row 10: field credential: is empty"


def test_credentials_from_an_accounts_file_on_the_command_line(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # a path as accounts: each worker loads the file, and its [[credential]] entries resolve the keys there
    from ocrledger.cli.main import main

    toml = tmp_path / "accounts.toml"
    toml.write_text(
        "".join(f'[[account]]\nid = "u{i}"\nchannel = "official"\n'
                f'activated = {{ RecognizeIdcard = 2026-01-01, RecognizeGeneral = 2026-01-01 }}\n' for i in range(3))
        + '[[account]]\nid = "m"\nchannel = "marketplace"\n'
        + '[[credential]]\nkey = "AK0"\naccount = "u0"\n'
        + '[[credential]]\nkey = "AK1"\naccount = "u1"\nuntil = 2026-10-10T00:00:00+08:00\n'
        + '[[credential]]\nkey = "AK1new"\naccount = "u1"\nfrom = 2026-10-10T00:00:00+08:00\n'
        + '[[credential]]\nkey = "AK2"\naccount = "u2"\n'
        + '[[credential]]\nkey = "APP"\naccount = "m"\nchannel = "marketplace"\n')
    folder = tmp_path / "calls"
    folder.mkdir()
    pq.write_table(keyed_calls(400, 7), folder / "a.parquet", row_group_size=50)  # type: ignore[arg-type]
    base = ["rerate", "--accounts", str(toml), "--calls", str(folder), "--month", "2026-10"]
    assert main([*base, "--out", str(tmp_path / "local")]) == 0
    assert main([*base, "--out", str(tmp_path / "dask"), "--scheduler", client.scheduler.address]) == 0
    assert_same_outputs(tmp_path / "local", tmp_path / "dask")
    summary = (tmp_path / "local" / "summary.json").read_text()
    assert '"rejected_credential": 0' not in summary
