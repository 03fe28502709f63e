"""Bills as Arrow tables and pandas frames with exact decimal128 money columns (never floats, never objects)."""
from __future__ import annotations

from typing import Any, Iterable

from .bills import Bill

MONEY_SCALE = 2
"""Places of rounded amounts (line ``amount``, ``total``): the currency's minor unit."""
EXACT_SCALE = 6
"""Places of exact amounts and unit prices (micro-units, SPEC §3)."""
PRECISION = 38


def _types() -> dict[str, Any]:
    import pyarrow as pa

    money = pa.decimal128(PRECISION, MONEY_SCALE)
    exact = pa.decimal128(PRECISION, EXACT_SCALE)
    tier = pa.struct([("from", pa.int64()), ("to", pa.int64()), ("calls", pa.int64()),
                      ("unit_price", exact), ("amount", exact)])
    return {"money": money, "exact": exact, "tier": tier}


def line_schema() -> Any:
    """The schema of ``bills_to_arrow``: one row per bill line, the bill's key and total repeated on each."""
    import pyarrow as pa

    t = _types()
    return pa.schema([
        ("account", pa.string()), ("channel", pa.string()), ("period", pa.string()), ("currency", pa.string()),
        ("api", pa.string()), ("calls", pa.int64()), ("failed", pa.int64()), ("rejected", pa.int64()),
        ("free", pa.int64()), ("dedicated", pa.int64()), ("shared_calls", pa.int64()),
        ("shared_points", pa.int64()), ("payg", pa.int64()), ("tiers", pa.list_(t["tier"])),
        ("amount_exact", t["exact"]), ("amount", t["money"]), ("qps_peak", pa.int64()),
        ("qps_over_seconds", pa.int64()), ("bill_total", t["money"]),
    ])


def bill_schema() -> Any:
    """The schema of ``bills_to_arrow(..., lines=False)``: one row per bill, nested like the JSON bill."""
    import pyarrow as pa

    t = _types()
    line = pa.struct([f for f in line_schema() if f.name not in ("account", "channel", "period", "currency",
                                                                "bill_total")])
    plan = pa.struct([("id", pa.string()), ("used", pa.int64()), ("remaining", pa.int64()), ("end", pa.string())])
    adjustment = pa.struct([("period", pa.string()), ("api", pa.string()), ("calls", pa.int64()),
                            ("amount_exact", t["exact"]), ("amount", t["money"]),
                            ("record_ids", pa.list_(pa.string()))])
    return pa.schema([
        ("account", pa.string()), ("channel", pa.string()), ("period", pa.string()), ("currency", pa.string()),
        ("lines", pa.list_(line)), ("total", t["money"]), ("plans", pa.list_(plan)),
        ("free_remaining", pa.map_(pa.string(), pa.int64())), ("adjustments", pa.list_(adjustment)),
    ])


def _tiers(line: Any) -> list[dict[str, Any]]:
    return [{"from": t.from_, "to": t.to, "calls": t.calls, "unit_price": t.unit_price, "amount": t.amount}
            for t in line.tiers]


def _line(line: Any) -> dict[str, Any]:
    return {"api": line.api, "calls": line.calls, "failed": line.failed, "rejected": line.rejected,
            "free": line.free, "dedicated": line.dedicated, "shared_calls": line.shared_calls,
            "shared_points": line.shared_points, "payg": line.payg, "tiers": _tiers(line),
            "amount_exact": line.amount_exact, "amount": line.amount, "qps_peak": line.qps_peak,
            "qps_over_seconds": line.qps_over_seconds}


def bills_to_arrow(bills: Iterable[Bill], *, lines: bool = True) -> Any:
    """The bills as a pyarrow Table with decimal128 money: one row per bill line (``lines=True``: account,
    channel, period, currency, the line's figures, its ``tiers`` as a list of structs, and ``bill_total``),
    or one row per bill nested as its JSON form is (``lines=False``: lines, plans, free_remaining,
    adjustments). Amounts keep their exact value; a value with more places than its column has is an
    error (``pyarrow.ArrowInvalid``), never a rounding."""
    import pyarrow as pa

    bills = list(bills)
    if lines:
        rows = [{"account": b.account, "channel": b.channel, "period": b.period, "currency": b.currency,
                 **_line(line), "bill_total": b.total} for b in bills for line in b.lines]
        return pa.Table.from_pylist(rows, schema=line_schema())
    rows = [{
        "account": b.account, "channel": b.channel, "period": b.period, "currency": b.currency,
        "lines": [_line(line) for line in b.lines], "total": b.total,
        "plans": [{"id": p.id, "used": p.used, "remaining": p.remaining, "end": p.end} for p in b.plans],
        "free_remaining": list(b.free_remaining),
        "adjustments": [{"period": a.period, "api": a.api, "calls": a.calls, "amount_exact": a.amount_exact,
                         "amount": a.amount, "record_ids": list(a.record_ids)} for a in b.adjustments],
    } for b in bills]
    return pa.Table.from_pylist(rows, schema=bill_schema())


def bills_to_pandas(bills: Iterable[Bill], *, lines: bool = True) -> Any:
    """``bills_to_arrow`` as a pandas DataFrame whose columns keep their Arrow types (``pd.ArrowDtype``):
    money stays ``decimal128`` (exact), counts stay int64, text stays Arrow strings."""
    import pandas as pd

    return bills_to_arrow(bills, lines=lines).to_pandas(types_mapper=pd.ArrowDtype)
