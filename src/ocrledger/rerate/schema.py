"""calls.parquet's shape: its Arrow schema and the names its ``status`` and ``source`` columns hold."""
from __future__ import annotations

from typing import Any

STATUS_NAMES = ("charged", "failed", "duplicate", "rejected_inactive", "rejected_no_plan", "rejected_credential")
"""``status`` of calls.parquet, indexed by ``codes.Status``."""
SOURCE_NAMES = ("free", "dedicated", "shared", "payg")
"""``source`` of calls.parquet, indexed by ``codes.Source`` - 1 (null: nothing paid)."""


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
