"""One engine behind every face: rate, Ledger.ingest (one batch), rerate and the Dask rerate give byte-identical bills."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import scenarios

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from ocrledger import Ledger, rate  # noqa: E402
from ocrledger import dask as odask  # noqa: E402
from ocrledger.model.bills import bills_to_json  # noqa: E402
from ocrledger.rerate.rerater import rerate  # noqa: E402


def arrow(cols: dict) -> object:
    return pa.table({k: (v.tolist() if v.dtype.kind in "UO" else v) for k, v in cols.items()})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario=scenarios(max_calls=60))
def test_rate_ingest_rerate_and_dask_write_the_same_bills(scenario, client) -> None:  # type: ignore[no-untyped-def]
    cat, acc, cols = scenario
    expected = bills_to_json(rate(cols, cat, acc).bills)
    months = sorted({b.period for b in rate(cols, cat, acc).bills})

    ledger = Ledger.create(":memory:", cat, acc)
    ledger.ingest(cols, batch_id="one")
    ingested = sorted((b for m in months for b in ledger.bills(m)), key=lambda b: b.key)
    assert bills_to_json(ingested) == expected

    with tempfile.TemporaryDirectory() as folder:
        result = rerate(arrow(cols), cat, acc, out=Path(folder))
        assert bills_to_json(result.bills) == expected
        assert (Path(folder) / "bills.json").read_text() == expected + "\n"  # the file ends its last line

    frame = arrow(cols).to_pandas()
    on_dask = odask.rerate(dd.from_pandas(frame, npartitions=2), cat, acc).bills
    assert bills_to_json(on_dask) == expected
