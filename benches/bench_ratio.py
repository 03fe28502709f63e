"""The CI gate as a test: the Cython kernel at least 50x the reference, measured in the same run."""
from __future__ import annotations

import check_ratio


def test_cython_at_least_50x_reference() -> None:
    fast, slow = check_ratio.measure()
    assert slow / fast >= check_ratio.MIN_RATIO, f"ratio {slow / fast:.1f}x"
