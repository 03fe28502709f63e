"""The rerater's progress: each phase's calls done, to a callback and as a bar on standard error."""
from __future__ import annotations

import sys
import time
from typing import Callable


class Progress:
    """Reports a rerate's phases: to a callback (phase, done, total), and as a bar on stderr when asked."""

    def __init__(self, sink: Callable[[str, int, int | None], None] | None, bar: bool) -> None:
        self.sink, self.bar = sink, bar
        self.phase = ""
        self.t0 = time.perf_counter()
        self.last = 0.0

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if self.sink is not None:
            self.sink(phase, done, total)
        if not self.bar:
            return
        now = time.perf_counter()
        if phase != self.phase:
            if self.phase:
                sys.stderr.write("\n")
            self.phase, self.t0 = phase, now
        elif now - self.last < 0.1 and done != total:
            return
        self.last = now
        rate = done / (now - self.t0) if now > self.t0 else 0.0
        if total:
            frac = min(1.0, done / total)
            filled = int(frac * 30)
            line = f"\r{phase:<6} [{'#' * filled}{'.' * (30 - filled)}] {frac:4.0%} {done:,}/{total:,} calls"
        else:
            line = f"\r{phase:<6} {done:,} calls"
        sys.stderr.write(f"{line}  {rate:,.0f} calls/s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.bar and self.phase:
            sys.stderr.write("\n")
            sys.stderr.flush()


def progress_reporter(progress: bool | Callable[[str, int, int | None], None]) -> Progress:
    if callable(progress):
        return Progress(progress, False)
    return Progress(None, bool(progress) and sys.stderr.isatty())
