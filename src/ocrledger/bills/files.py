"""The one writer of bills.json and bills.txt, for every face: bill columns by the compiled formatter, or its twin.

Every face writes its bills' JSON here from bill columns (``engine.billing.BillSet``): ``rate()``'s
``render(result.bill_set, "json")``, the ledger's bill texts, the rerater's and the Dask ranges' files.
The compiled ``_billfmt`` formats them; where it is not built (or OCRLEDGER_PURE_PYTHON=1, the rule
``kernel.select`` applies to every compiled module) its Python twin does: the ``Bill`` objects of the
same columns, ``Bill.to_json``/``bills_to_json`` and ``text.render_text``. ``formatter()`` is the one
place that chooses. The bytes are the same (``tests/engine/test_bill_columns.py``,
``tests/cluster/test_one_engine.py``). This module prepares the strings once (JSON-escaped names, tier
labels, unit prices, plan ends, adjustments); ``_billfmt`` copies them and formats the numbers, the
two files on two threads.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..engine.bill_columns import BillColumns, period_labels
from ..engine.billing import BillSet, bills_from_columns
from ..kernel import select as _kernel
from ..model.account_columns import PlanColumns
from ..model.bills import Adjustment, Bill, bills_to_json
from ..model.catalog import Catalog
from ..model.display import printable_all
from ..model.money import to_decimal
from .format import NO_BILLS, tier_label
from .text import statement_pieces

try:
    from . import _billfmt
except ImportError:  # not built: ``formatter()`` gives the twin
    _billfmt = None  # type: ignore[assignment]

CHUNK = 2_000
"""Bills formatted per call (bounded memory: one chunk of text at a time)."""


def formatter() -> ModuleType | None:
    """The compiled bill formatter (``_billfmt``), or None for its Python twin: not built, or
    OCRLEDGER_PURE_PYTHON=1 (``kernel.select.pure_python``). The only way in to ``_billfmt``."""
    return None if _kernel.pure_python() else _billfmt


def available() -> bool:
    """True when bills are formatted by the compiled formatter (``formatter()``)."""
    return formatter() is not None


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


def fixed_texts(catalog: Catalog, plans: PlanColumns, shown: np.ndarray | None = None) -> FixedTexts:
    """API codes, tier bounds, labels and prices, plan ids and ends, table headers. The plans' strings are
    every plan's, or with ``shown`` (plan indexes) only those plans' (the others empty): a small batch's bills
    show a few of the plans of its parties."""
    tiers = [(api, t, tier) for api in catalog.apis for t, tier in enumerate(api.tiers)]
    prices = [to_decimal(tier.price).normalize() for _, _, tier in tiers]
    if shown is None:
        ids, ends = plans.ids, catalog.clock.labels(plans.effective_end)
    else:
        keep = np.unique(shown)
        ids, ends = [""] * len(plans.ids), [""] * len(plans.ids)
        for k, end in zip(keep.tolist(), catalog.clock.labels(plans.effective_end[keep])):
            ids[k], ends[k] = plans.ids[k], end
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


def adjustments_json(adjustments: Sequence[Adjustment]) -> str:
    """The ``"adjustments"`` value of a bill in bills.json, at its depth there ("" for none: ``_billfmt`` writes
    ``[]``): ``Adjustment.to_dict`` as ``Bill.to_json`` dumps it, indented for a bill inside the list."""
    if not adjustments:
        return ""
    return json.dumps([a.to_dict() for a in adjustments], indent=2, ensure_ascii=False).replace("\n", "\n    ")


def columns(cols: BillColumns, catalog: Catalog, parties: Sequence[tuple[str, str]], plans: PlanColumns,
            fixed: FixedTexts | None = None) -> Any:
    """The ``_billfmt.Columns`` of ``cols``: the figures plus every string the two files show.

    The adjustments (only the ledger's bills have any) go to bills.json; bills.txt of such bills is
    written by the twin (``_billfmt.text_chunk`` does not show them).
    """
    fixed = fixed if fixed is not None else fixed_texts(catalog, plans, cols.plan_index)
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
    adjusted = None
    if cols.adjustments:
        at = cols.adj_start.tolist()
        adjusted = texts([adjustments_json(cols.adjustments[at[b]:at[b + 1]]) for b in range(len(cols))])
    return _billfmt.Columns(
        cols, texts(head_json), texts(head_text), fixed.api_json, fixed.api_text, fixed.tier_from, fixed.tier_to,
        fixed.price_json, fixed.price_text, fixed.tier_label, fixed.plan_json, fixed.plan_text, fixed.plan_end,
        fixed.headers, adjusted,
    )


def _pieces(n: int, empty: bytes, head: bytes, tail: bytes, chunk: Callable[[int, int], bytes]) -> Iterator[bytes]:
    """A file's bytes as pieces: ``empty`` for no bills, else head, ``chunk``s of CHUNK bills, tail."""
    if n == 0:
        yield empty
        return
    yield head
    for lo in range(0, n, CHUNK):
        yield chunk(lo, min(n, lo + CHUNK))
    yield tail


def _compiled_json(c: Any, n: int) -> Iterator[bytes]:
    """bills.json (``bills_to_json`` + newline) of the ``_billfmt.Columns`` ``c`` of ``n`` bills, as pieces."""
    fmt = _billfmt
    return _pieces(n, b"[]\n", b"[", b"\n]\n", lambda lo, hi: fmt.json_chunk(c, lo, hi))


def _compiled_text(c: Any, n: int) -> Iterator[bytes]:
    """bills.txt (``render(bills, "text")``) of the ``_billfmt.Columns`` ``c`` of ``n`` bills, as pieces."""
    fmt = _billfmt
    return _pieces(n, (NO_BILLS + "\n").encode(), b"", b"", lambda lo, hi: fmt.text_chunk(c, lo, hi))


def json_pieces(bills: Sequence[Bill], chunk: int = CHUNK) -> Iterator[bytes | bytearray | memoryview]:
    """The twin's bills.json: ``bills_to_json(bills)`` as consecutive UTF-8 pieces, ``chunk`` bills at a time.

    ``json.dumps(indent=2)`` runs the pure-Python encoder (the C one ignores ``indent``); where the
    compiled helpers are loaded, the compact C encoding re-indented (``json_reindent``) gives the same bytes
    several times faster.
    """
    helpers = _kernel.helpers()
    if not bills:
        yield bills_to_json(bills).encode("utf-8")
        return
    yield b"["
    for start in range(0, len(bills), chunk):
        part = [b.to_dict() for b in bills[start:start + chunk]]
        if helpers is not None:
            compact = json.dumps(part, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            listed: bytes | bytearray = helpers.json_reindent(compact, 2)  # "[\n  {...},\n  {...}\n]"
        else:
            listed = json.dumps(part, indent=2, ensure_ascii=False).encode("utf-8")
        if start:
            yield b","
        yield memoryview(listed)[1:-2]  # "\n  {...},\n  {...}" - the items at depth 1
    yield b"\n]"


def _twin_json(bills: Sequence[Bill]) -> Iterator[bytes | bytearray | memoryview]:
    yield from json_pieces(bills)
    yield b"\n"


def json_text(bills: BillSet | Sequence[Bill]) -> str:
    """bills.json as text (``bills_to_json`` + newline): from the columns of a ``BillSet`` by ``formatter()``,
    or of ``Bill`` objects (made elsewhere: read from a file, built by hand) by ``bills_to_json``."""
    if not isinstance(bills, BillSet):
        return bills_to_json(bills) + "\n"
    if formatter() is None:
        return bills_to_json(bills.bills()) + "\n"
    c = columns(bills.columns, bills.catalog, bills.parties, bills.plans)
    return b"".join(_compiled_json(c, len(bills))).decode("utf-8")


def json_texts(bills: BillSet) -> list[str]:
    """Each bill as its own JSON text (``Bill.to_json()``: the ledger's bill texts), by ``formatter()``."""
    if formatter() is None:
        return [b.to_json() for b in bills.bills()]
    c = columns(bills.columns, bills.catalog, bills.parties, bills.plans)
    return _billfmt.json_bills(c, 0, len(bills))  # type: ignore[no-any-return]


def text_text(bills: BillSet | Sequence[Bill]) -> str:
    """bills.txt as text (``render(bills, "text")``), from a ``BillSet``'s columns by ``formatter()`` when no bill
    has adjustments (the compiled text does not show them), else from ``Bill`` objects by ``text.render_text``."""
    if isinstance(bills, BillSet) and formatter() is not None and not bills.columns.adjustments:
        c = columns(bills.columns, bills.catalog, bills.parties, bills.plans)
        return b"".join(_compiled_text(c, len(bills))).decode("utf-8")
    return "".join(statement_pieces(bills.bills() if isinstance(bills, BillSet) else bills))


def write(cols: BillColumns, catalog: Catalog, parties: Sequence[tuple[str, str]], plans: PlanColumns,
          json_path: Path, text_path: Path, fixed: FixedTexts | None = None) -> list[Bill] | None:
    """bills.json and bills.txt of ``cols``, by ``formatter()``: the compiled one formats the text on a second
    thread (no GIL held); the twin makes the ``Bill`` objects of ``cols`` and returns them (else None).
    No face writes the files of bills with adjustments (a ledger's): the compiled bills.txt would not show them."""
    if formatter() is None:
        bills = bills_from_columns(cols, catalog, parties, plans)
        _stream(json_path, _twin_json(bills))
        _stream(text_path, (piece.encode("utf-8") for piece in statement_pieces(bills)))
        return bills
    if cols.adjustments:
        raise ValueError("the compiled bills.txt does not show adjustments")
    c = columns(cols, catalog, parties, plans, fixed)
    n = len(cols)
    failed: list[BaseException] = []

    def text() -> None:
        try:
            _stream(text_path, _compiled_text(c, n))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            failed.append(exc)

    worker = threading.Thread(target=text, name="ocrledger-bills-txt")
    worker.start()
    try:
        _stream(json_path, _compiled_json(c, n))
    finally:
        worker.join()
    if failed:
        raise failed[0]
    return None


def _stream(path: Path, pieces: Iterator[bytes | bytearray | memoryview]) -> None:
    with open(path, "wb") as fh:
        for piece in pieces:
            fh.write(piece)
