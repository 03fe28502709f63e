"""The rerate progress bar (tqdm) shows each phase's true calls/s, also for a phase reported once, when done."""
from __future__ import annotations

import re
import time

import pytest

from ocrledger.rerate.progress import Progress


def rates(text: str) -> list[float]:
    return [float(r) for r in re.findall(r"([\d.]+)calls/s", text)]


def test_a_phase_reported_once_shows_its_true_rate(capfd: pytest.CaptureFixture[str]) -> None:
    p = Progress(None, True)
    p("read", 0, 1000)
    time.sleep(0.2)
    p("read", 1000, 1000)
    time.sleep(0.2)
    p("dedup", 1000, 1000)  # the in-memory pass reports dedup once, at its end: it took >= 0.2 s
    p.close()
    err = capfd.readouterr().err
    assert "read" in err and "dedup" in err
    dedup = rates(err.split("dedup")[-1])
    # 1,000 calls in at least 0.2 s since the read phase ended: more than 0 (the bug showed 0), at most 5,000
    assert dedup and 0 < dedup[-1] <= 5000, err


def test_the_callback_gets_every_report_and_no_bar() -> None:
    seen: list[tuple[str, int, int | None]] = []
    p = Progress(lambda *a: seen.append(a), False)
    p("read", 5, None)
    p("rate", 5, 5)
    p.close()
    assert seen == [("read", 5, None), ("rate", 5, 5)]
