"""Money: parsing exact prices, the integer rounding rule against decimal's, formatting."""
from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocrledger.errors import MoneyError
from ocrledger.model.money import (
    ROUNDING_MODES,
    parse_amount,
    round_line,
    round_lines,
    to_cents_decimal,
    to_decimal,
)


@given(st.integers(-(10**15), 10**15), st.sampled_from(sorted(ROUNDING_MODES)))
def test_integer_rounding_equals_decimal_rounding(micro: int, mode: str) -> None:
    expected = Decimal(micro).scaleb(-6).quantize(Decimal("0.01"), rounding=ROUNDING_MODES[mode])
    assert to_cents_decimal(round_line(micro, mode)) == expected


@pytest.mark.parametrize(("micro", "mode", "cents"), [
    (247_500, "down", "0.24"), (247_500, "half_up", "0.25"), (247_500, "up", "0.25"),
    (245_000, "half_even", "0.24"), (255_000, "half_even", "0.26"), (245_000, "half_up", "0.25"),
    (-148_500, "down", "-0.14"), (-148_500, "up", "-0.15"), (0, "up", "0.00"),
])
def test_rounding_examples(micro: int, mode: str, cents: str) -> None:
    # 3 x 0.0825 = 0.2475: down 0.24, half_up 0.25; 0.245 half_even -> 0.24, 0.255 -> 0.26
    assert str(to_cents_decimal(round_line(micro, mode))) == cents


def test_parse_amount_is_exact_and_strict() -> None:
    assert parse_amount("0.0825") == 82_500
    assert parse_amount("6110") == 6_110_000_000
    assert parse_amount(2) == 2_000_000
    assert str(to_decimal(parse_amount("0.000001"))) == "0.000001"
    for bad in ("0.0000001", "-1", "1e3", "abc", 0.0825, True):
        with pytest.raises(MoneyError):
            parse_amount(bad)
    with pytest.raises(MoneyError, match="overflows"):
        parse_amount("9300000000000")  # 9.3e12 units = 9.3e18 micro-units > INT64_MAX


@pytest.mark.parametrize("mode", ["down", "up", "half_up", "half_even"])
def test_round_lines_is_round_line(mode: str) -> None:
    values = np.array([0, 1, 4_999, 5_000, 5_001, 15_000, 25_000, 1_234_567_890, -5_000, -15_001], dtype=np.int64)
    assert round_lines(values, mode).tolist() == [round_line(int(v), mode) for v in values]
