"""Invariance of the rerate: the same bills whatever the chunk size, split into files, row order, workers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import CATALOG, OCT, accounts, ms, official
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from ocrledger.engine.rate import rate  # noqa: E402
from ocrledger.model.bills import bills_to_json  # noqa: E402
from ocrledger.rerate.rerater import rerate  # noqa: E402

APIS = ("RecognizeIdcard", "RecognizeGeneral", "VerifyVATInvoice")
ACC = accounts(
    CATALOG,
    account=[official("a", *APIS), official("b", "RecognizeIdcard"), {"id": "m", "channel": "marketplace"}],
    plan=[
        {"id": "p1", "account": "a", "kind": "dedicated", "api": "RecognizeGeneral", "quantity": 7, "start": OCT},
        {"id": "p2", "account": "a", "kind": "shared", "quantity": 60, "start": OCT,
         "end": "2026-10-01T06:00:00+08:00"},
        {"id": "p3", "account": "m", "channel": "marketplace", "kind": "shared", "quantity": 100, "start": OCT},
    ],
)
T0 = ms(OCT)


@st.composite
def call_sets(draw: st.DrawFn) -> dict[str, list]:
    n = draw(st.integers(1, 120))
    rows = []
    for i in range(n):
        account = draw(st.sampled_from(["a", "b", "m", "zz"]))
        rows.append({
            "record_id": f"r{draw(st.integers(0, n + 5))}" if draw(st.booleans()) else f"u{i}",
            "account": account,
            "api": draw(st.sampled_from(APIS)),
            "ts": T0 + draw(st.integers(0, 40)) * 900_000 + draw(st.integers(0, 2)),
            "success": draw(st.sampled_from([1, 1, 1, 0])),
            "channel": "marketplace" if account == "m" else "official",
        })
    return {k: [r[k] for r in rows] for k in rows[0]}


def _table(cols: dict[str, list]) -> "pa.Table":
    return pa.table({**cols, "ts": pa.array(cols["ts"], pa.int64()), "success": pa.array(cols["success"], pa.int8())})


def _no_content_ties(cols: dict[str, list]) -> bool:
    """True if no two records share channel, record id and instant with different content (rate() breaks
    such ties by input order, the rerater by a fixed rule)."""
    seen: dict[tuple, tuple] = {}
    for rid, acc, code, ts, ok, ch in zip(*(cols[c] for c in ("record_id", "account", "api", "ts", "success",
                                                              "channel"))):
        key, content = (ch, rid, ts), (acc, code, ok)
        if seen.setdefault(key, content) != content:
            return False
    return True


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cols=call_sets(), chunk=st.integers(1, 50), bucket=st.integers(1, 80), files=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1))
def test_same_bills_whatever_chunks_files_and_order(tmp_path_factory: pytest.TempPathFactory, cols: dict,
                                                    chunk: int, bucket: int, files: int, seed: int) -> None:
    t = _table(cols)
    reference = bills_to_json(rerate(t, CATALOG, ACC).bills)
    if _no_content_ties(cols):
        assert reference == bills_to_json(rate({k: np.array(v) for k, v in cols.items()}, CATALOG, ACC).bills)
    rng = np.random.default_rng(seed)
    shuffled = t.take(pa.array(rng.permutation(t.num_rows)))
    cut = np.sort(rng.integers(0, t.num_rows + 1, files - 1))
    parts = [shuffled.slice(int(a), int(b - a)) for a, b in zip(np.r_[0, cut], np.r_[cut, t.num_rows])]
    folder: Path = tmp_path_factory.mktemp("split")
    for k, part in enumerate(parts):
        pq.write_table(part, folder / f"{k:02d}.parquet", row_group_size=max(1, chunk))
    got = rerate(folder, CATALOG, ACC, chunk_rows=chunk, bucket_rows=bucket)
    assert bills_to_json(got.bills) == reference
    assert got.summary["calls_read"] == t.num_rows
