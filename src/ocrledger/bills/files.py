"""bills.json and bills.txt written from bill columns by the compiled formatter, the two files on two threads.

The bytes are those of ``bills_to_json(bills) + "\\n"`` and ``render(bills, "text")`` for the same
bills (``tests/engine/test_bill_columns.py``). This module prepares the strings once (JSON-escaped names,
tier labels, unit prices, plan ends); ``_billfmt`` copies them and formats the numbers.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..engine.bill_columns import BillColumns, period_labels
from ..model.account_columns import PlanColumns
from ..model.catalog import Catalog
from ..model.display import printable_all
from ..model.money import to_decimal
from .format import NO_BILLS, tier_label

try:
    from . import _billfmt
except ImportError:  # not built: the rerater renders Bill objects instead
    _billfmt = None  # type: ignore[assignment]

CHUNK = 2_000
"""Bills formatted per call (bounded memory: one chunk of text at a time)."""


def available() -> bool:
    return _billfmt is not None


def headers(currency: str) -> list[str]:
    """The header cells of ``render_text``'s tables, in ``_billfmt``'s order."""
    amount = f"Amount {currency}"
    return [
        "API", "Calls", "Failed", "Rejected", "Free", "Dedicated", "Shared", "Points", "PAYG", amount,
        "Positions", "Calls", "Unit price", amount,
        "Plan", "Used this month", "Remaining", "Ends",
        "exact sum", "billed (rounded once)", f"Total  {currency} ",
    ]


def texts(strings: Sequence[str]) -> Any:
    """A ``_billfmt.Texts`` of ``strings`` (UTF-8 blob, offsets, lengths in characters)."""
    chars = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    joined = "".join(strings)
    if joined.isascii():
        blob, sizes = joined.encode("ascii"), chars
    else:
        encoded = [s.encode("utf-8") for s in strings]
        blob, sizes = b"".join(encoded), np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    off = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum(sizes, out=off[1:])
    return _billfmt.Texts(blob, off, chars)


_ESCAPED = re.compile(r'[\x00-\x1f\\"]')
"""What ``json.dumps(..., ensure_ascii=False)`` escapes in a string (control characters, backslash, quote)."""


def dumps(strings: Sequence[str]) -> list[str]:
    """``json.dumps(s, ensure_ascii=False)`` of each string; plain quoting when none needs escaping."""
    if _ESCAPED.search("".join(strings)) is None:
        return ['"' + s + '"' for s in strings]
    return [json.dumps(s, ensure_ascii=False) for s in strings]


@dataclass(frozen=True)
class FixedTexts:
    """The strings of the two files that depend only on the catalog and the plans, not on the calls:
    the rerater makes them on a second thread while the calls are rated (``fixed_texts``)."""

    api_json: Any
    api_text: Any
    tier_from: np.ndarray
    tier_to: np.ndarray
    price_json: Any
    price_text: Any
    tier_label: Any
    plan_json: Any
    plan_text: Any
    plan_end: Any
    headers: Any


def fixed_texts(catalog: Catalog, plans: PlanColumns) -> FixedTexts:
    """API codes, tier bounds, labels and prices, plan ids and ends (every plan's), table headers."""
    ids = plans.ids
    tiers = [(api, t, tier) for api in catalog.apis for t, tier in enumerate(api.tiers)]
    prices = [to_decimal(tier.price).normalize() for _, _, tier in tiers]
    ends = catalog.clock.labels(plans.effective_end)
    return FixedTexts(
        api_json=texts(dumps([a.code for a in catalog.apis])),
        api_text=texts(printable_all([a.code for a in catalog.apis])),
        tier_from=np.array([api.tier_from(t) for api, t, _ in tiers], dtype=np.int64),
        tier_to=np.array([-1 if tier.upto is None else tier.upto for _, _, tier in tiers], dtype=np.int64),
        price_json=texts(dumps([format(p, "f") for p in prices])),
        price_text=texts([str(p) for p in prices]),
        tier_label=texts([tier_label(api.tier_from(t), tier.upto) for api, t, tier in tiers]),
        plan_json=texts(dumps(ids)),
        plan_text=texts(printable_all(ids)),
        plan_end=texts(printable_all(ends)),
        headers=texts(headers(catalog.currency)),
    )


def columns(cols: BillColumns, catalog: Catalog, parties: Sequence[tuple[str, str]], plans: PlanColumns,
            fixed: FixedTexts | None = None) -> Any:
    """The ``_billfmt.Columns`` of ``cols``: the figures plus every string the two files show.

    Bills with adjustments (only the ledger's) are not written here: their JSON is ``Bill.to_json``.
    """
    if cols.adjustments:
        raise ValueError("the compiled bill writer does not write adjustments")
    fixed = fixed if fixed is not None else fixed_texts(catalog, plans)
    cur = catalog.currency
    labels = period_labels(cols)
    who = [parties[p] for p in cols.bill_party.tolist()]
    accounts = dumps([a for a, _ in who])
    channels = dumps([ch for _, ch in who])
    quoted = dumps(labels)
    currency = dumps([cur])[0]
    head_json = [
        f'{{\n    "account": {a},\n    "channel": {ch},\n    "period": {label},\n    "currency": {currency},\n'
        '    "lines": '
        for a, ch, label in zip(accounts, channels, quoted)
    ]
    shown = printable_all([f"Bill {label}  account {a}  channel {ch}  currency {cur}" for (a, ch), label in zip(who, labels)])
    head_text = [h + "\n\n" for h in shown]
    return _billfmt.Columns(
        cols, texts(head_json), texts(head_text), fixed.api_json, fixed.api_text, fixed.tier_from, fixed.tier_to,
        fixed.price_json, fixed.price_text, fixed.tier_label, fixed.plan_json, fixed.plan_text, fixed.plan_end,
        fixed.headers,
    )


def _stream(path: Path, n: int, empty: bytes, head: bytes, tail: bytes, chunk: Callable[[int, int], bytes]) -> None:
    with open(path, "wb") as fh:
        if n == 0:
            fh.write(empty)
            return
        fh.write(head)
        for lo in range(0, n, CHUNK):
            fh.write(chunk(lo, min(n, lo + CHUNK)))
        fh.write(tail)


def write(cols: BillColumns, catalog: Catalog, parties: Sequence[tuple[str, str]], plans: PlanColumns,
          json_path: Path, text_path: Path, fixed: FixedTexts | None = None) -> None:
    """bills.json and bills.txt of ``cols``; the text is formatted on a second thread (no GIL held)."""
    c = columns(cols, catalog, parties, plans, fixed)
    n = len(cols)
    failed: list[BaseException] = []

    def text() -> None:
        try:
            _stream(text_path, n, (NO_BILLS + "\n").encode(), b"", b"", lambda lo, hi: _billfmt.text_chunk(c, lo, hi))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            failed.append(exc)

    worker = threading.Thread(target=text, name="ocrledger-bills-txt")
    worker.start()
    try:
        _stream(json_path, n, b"[]\n", b"[", b"\n]\n", lambda lo, hi: _billfmt.json_chunk(c, lo, hi))
    finally:
        worker.join()
    if failed:
        raise failed[0]
