"""Money: exact decimal strings to int64 micro-units and back, and the one per-line rounding rule."""
from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal

import numpy as np

from ..errors import MoneyError

MICRO = 1_000_000
"""Micro-units per currency unit: every amount in the engine is an integer count of 10^-6."""
INT64_MAX = (1 << 63) - 1
CENT = 10_000
"""Micro-units per minor unit (0.01)."""

ROUNDING_MODES = {
    "down": ROUND_DOWN,
    "half_up": ROUND_HALF_UP,
    "half_even": ROUND_HALF_EVEN,
    "up": ROUND_UP,
}

_PRICE = re.compile(r"^(\d+)(?:\.(\d+))?$")


def parse_amount(text: object, *, what: str = "price") -> int:
    """Parse a non-negative decimal string (at most 6 places) or int into micro-units.

    Floats are refused: a float cannot carry 0.0825 exactly.
    """
    if isinstance(text, bool) or isinstance(text, float):
        raise MoneyError(f"{what} must be a decimal string such as \"0.0825\", not a float ({text!r})")
    if isinstance(text, int):
        if text < 0:
            raise MoneyError(f"{what} must not be negative ({text})")
        return check_int64(text * MICRO, what=what)
    if isinstance(text, Decimal):
        text = format(text, "f")
    if not isinstance(text, str):
        raise MoneyError(f"{what} must be a decimal string, got {type(text).__name__}")
    m = _PRICE.match(text.strip())
    if m is None:
        raise MoneyError(f"{what} {text!r} is not a non-negative decimal number")
    whole, frac = m.group(1), m.group(2) or ""
    if len(frac) > 6:
        raise MoneyError(f"{what} {text!r} has {len(frac)} decimal places; at most 6 are allowed")
    return check_int64(int(whole) * MICRO + int(frac.ljust(6, "0")), what=what)


def check_int64(value: int, *, what: str = "amount") -> int:
    """Return value if it fits int64 micro-units, else raise MoneyError (never wrap)."""
    if value > INT64_MAX or value < -INT64_MAX - 1:
        raise MoneyError(f"{what} of {value} micro-units overflows int64")
    return value


def to_decimal(micro: int) -> Decimal:
    """Micro-units as an exact Decimal with 6 places."""
    return Decimal(micro).scaleb(-6)


def to_cents_decimal(micro: int) -> Decimal:
    """A whole number of cents (given in micro-units) as a Decimal with 2 places."""
    if micro % CENT:
        raise ValueError(f"{micro} micro-units is not a whole number of cents")
    return Decimal(micro // CENT).scaleb(-2)


def round_line(micro: int, mode: str) -> int:
    """Round an exact line amount (micro-units) to whole minor units (0.01), returned in micro-units.

    This is the only rounding ocrledger does: once per bill line, with the catalog's mode. The
    modes mean what Python's decimal module means by them (``down`` toward zero, ``up`` away from
    zero, ``half_up`` ties away from zero, ``half_even`` ties to even), in integer arithmetic.
    """
    if mode not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode {mode!r}")
    if micro == 0:
        return 0
    sign = -1 if micro < 0 else 1
    cents, rest = divmod(abs(micro), CENT)
    if mode == "up":
        cents += rest > 0
    elif mode == "half_up":
        cents += 2 * rest >= CENT
    elif mode == "half_even":
        cents += 2 * rest > CENT or (2 * rest == CENT and cents % 2 == 1)
    return sign * cents * CENT


MODE_CODES = {mode: k for k, mode in enumerate(ROUNDING_MODES)}
"""Each rounding mode's code, for ``round_lines`` with a mode per amount."""


def round_lines(micro: np.ndarray, mode: str | np.ndarray) -> np.ndarray:
    """``round_line`` of many exact line amounts at once (int64 micro-units, any sign).

    ``mode`` is one mode name for all, or each amount's mode as its ``MODE_CODES`` code. The same
    integer arithmetic as ``round_line``: the magnitude is rounded, the sign kept.
    """
    micro = np.asarray(micro, dtype=np.int64)
    if isinstance(mode, str):
        if mode not in MODE_CODES:
            raise ValueError(f"unknown rounding mode {mode!r}")
        code: np.ndarray | int = MODE_CODES[mode]
    else:
        code = np.asarray(mode)
    cents, rest = np.divmod(np.abs(micro), CENT)
    up = np.select(
        [code == MODE_CODES["up"], code == MODE_CODES["half_up"], code == MODE_CODES["half_even"]],
        [rest > 0, 2 * rest >= CENT, (2 * rest > CENT) | ((2 * rest == CENT) & (cents % 2 == 1))],
        False,
    )
    return np.where(micro < 0, -1, 1) * (cents + up) * CENT


def format_exact(micro: int) -> str:
    """Exact amount as a decimal string with 6 places, e.g. ``"6110.000000"``."""
    return str(to_decimal(micro))


def format_price(micro: int) -> str:
    """A unit price without trailing zeros beyond two places, e.g. ``"0.0825"`` or ``"0.00"``."""
    d = to_decimal(micro).normalize()
    if d.as_tuple().exponent > -2:  # type: ignore[operator]
        d = d.quantize(Decimal("0.01"))
    return format(d, "f")
