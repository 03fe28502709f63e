"""The rerate on a real dask.distributed cluster (2 worker processes): bills byte-identical to the single process."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import CATALOG, OCT, accounts, calls, ms, official, repeat

pytest.importorskip("pyarrow")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from ocrledger import dask as odask  # noqa: E402
from ocrledger.model.bills import bills_to_json  # noqa: E402
from ocrledger.rerate.rerater import rerate  # noqa: E402


def setup() -> tuple:
    acc = accounts(
        CATALOG,
        account=[official(f"u{i}", "RecognizeIdcard", "RecognizeGeneral") for i in range(6)]
        + [{"id": "shop", "channel": "marketplace"}],
        plan=[{"id": f"p{i}", "account": f"u{i}", "kind": "dedicated", "api": "RecognizeGeneral", "quantity": 50,
               "start": OCT} for i in range(3)]
        + [{"id": "m", "account": "shop", "channel": "marketplace", "kind": "shared", "quantity": 300,
            "start": OCT}],
    )
    rows = []
    for i in range(6):
        rows += repeat(150 + 40 * i, f"u{i}", "RecognizeGeneral", OCT, prefix=f"g{i}-", step_ms=997)
        rows += repeat(260, f"u{i}", "RecognizeIdcard", "2026-09-30T23:50:00+08:00", prefix=f"i{i}-", step_ms=3_001)
    rows += repeat(60, "shop", "RecognizeIdcard", OCT, prefix="s", channel="marketplace")
    rows += repeat(20, "nobody", "RecognizeIdcard", OCT, prefix="n")
    # the same record id under two accounts, and a replayed record
    rows += [("g0-0000001", "u1", "RecognizeGeneral", ms(OCT) + 5, 1), ("g2-0000002", "u2", "RecognizeGeneral",
                                                                          ms(OCT) + 9_000_000, 1)]
    return acc, calls(rows)


def write_folder(cols: dict, folder: Path, files: int, seed: int) -> None:
    t = pa.table({k: (v.tolist() if v.dtype.kind == "U" else v) for k, v in cols.items()})
    rng = np.random.default_rng(seed)
    t = t.take(pa.array(rng.permutation(t.num_rows)))
    folder.mkdir()
    step = -(-t.num_rows // files)
    for k in range(files):
        pq.write_table(t.slice(k * step, step), folder / f"part-{k}.parquet")


@pytest.mark.parametrize(("files", "partitions"), [(3, None), (2, 5)])
def test_bills_identical_to_single_process(client, tmp_path: Path, files: int, partitions: int | None) -> None:  # type: ignore[no-untyped-def]
    acc, cols = setup()
    folder = tmp_path / "calls"
    write_folder(cols, folder, files, seed=files)
    expected = bills_to_json(rerate(folder, CATALOG, acc).bills)
    ddf = dd.read_parquet(str(folder))
    got = odask.rerate(ddf, CATALOG, acc, npartitions=partitions).bills
    assert bills_to_json(got) == expected
    oct_only = odask.rerate(ddf, CATALOG, acc, month="2026-10", kernel="reference").bills
    assert bills_to_json(oct_only) == bills_to_json(rerate(folder, CATALOG, acc, month="2026-10").bills)
    assert len(client.scheduler_info()["workers"]) == 2
