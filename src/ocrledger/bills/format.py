"""Cell formatting every bill renderer shares: counts, amounts, tier ranges, aligned text tables, the no-bills line."""
from __future__ import annotations

from decimal import Decimal
from typing import Sequence

NO_BILLS = "No bills: no call records in the input."


def tier_label(from_: int, to: int | None) -> str:
    """PAYG positions of a tier: '10,001 – 100,000' or '500,001 – …' (open)."""
    return f"{count(from_)} – {count(to) if to is not None else '…'}"


def count(n: int) -> str:
    return f"{n:,}"


def money(amount: Decimal) -> str:
    """Thousands separators, the amount's own decimal places: 6110.00 -> '6,110.00'."""
    return f"{amount:,}"


def aligned_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Aligned columns: the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(str(r[k])) for r in [header, *rows]) for k in range(len(header))]
    out = []
    for r in [header, *rows]:
        cells = [str(c).ljust(w) if k < left else str(c).rjust(w) for k, (c, w) in enumerate(zip(r, widths))]
        out.append("  ".join(cells).rstrip())
    return out
