"""Per-call outcomes as Arrow: calls.parquet's schema and ``calls_table`` (names instead of int8 codes)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..codes import SOURCE_NAMES, STATUS_NAMES, Source


def calls_schema(hidden: bool = False) -> Any:
    """The Arrow schema of calls.parquet (``hidden`` adds the spill passes' ``_line``). Columns that always
    hold a value are declared non-null: Parquet then writes no definition levels for them."""
    import pyarrow as pa

    text = pa.dictionary(pa.int32(), pa.string())
    fields = [
        pa.field("record_id", pa.string(), False), pa.field("account", text, False), pa.field("api", text, False),
        pa.field("channel", text, False), pa.field("ts", pa.int64(), False), pa.field("period", text, False),
        pa.field("source", text), pa.field("plan", text), pa.field("tier", pa.int16()),
        pa.field("amount", pa.int64(), False), pa.field("status", text, False),
    ]
    return pa.schema(fields + ([pa.field("_line", pa.int64(), False)] if hidden else []))


def calls_table(cols: Mapping[str, np.ndarray]) -> Any:
    """The outcome columns of ``rate``/``Ledger.ingest`` (``RatingResult.calls``) as a pyarrow Table with
    calls.parquet's schema: text columns dictionary-encoded, ``status`` and ``source`` as their words
    (``codes.STATUS_NAMES``/``SOURCE_NAMES``; ``source`` null when nothing paid), ``plan`` null when no plan
    paid, ``tier`` null when not PAYG; ``amount`` stays exact integer micro-units."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def text(values: np.ndarray) -> Any:
        return pa.array(values, pa.string()).dictionary_encode()

    def words(codes: np.ndarray, names: tuple[str, ...], shift: int = 0) -> Any:
        idx = np.asarray(codes, dtype=np.int32) - shift
        return pa.DictionaryArray.from_arrays(pa.array(idx, mask=idx < 0), pa.array(list(names), pa.string()))

    plan = pa.array(cols["plan"], pa.string())
    plan = pc.if_else(pc.equal(plan, ""), pa.scalar(None, pa.string()), plan) if len(plan) else plan
    tier = np.asarray(cols["tier"], dtype=np.int16)
    arrays = [
        pa.array(cols["record_id"], pa.string()), text(cols["account"]), text(cols["api"]), text(cols["channel"]),
        pa.array(np.asarray(cols["ts"], dtype=np.int64)), text(cols["period"]),
        words(cols["source"], SOURCE_NAMES, int(Source.FREE)), plan.dictionary_encode(),
        pa.array(tier, mask=tier < 0), pa.array(np.asarray(cols["amount"], dtype=np.int64)),
        words(cols["status"], STATUS_NAMES),
    ]
    return pa.Table.from_arrays(arrays, schema=calls_schema())
