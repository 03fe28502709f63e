"""The rerater's progress: each phase's calls done, to a callback and as a tqdm bar on standard error."""
from __future__ import annotations

import sys
import time
from typing import Any, Callable


class Progress:
    """Reports a rerate's phases: to a callback (phase, done, total), and as a bar on stderr when asked.

    The phases run one after another, so a phase's rate is its calls over the time since the previous
    phase ended (or since the rerate started): a phase reported once, when it is done, still shows
    its true calls/s.
    """

    def __init__(self, sink: Callable[[str, int, int | None], None] | None, bar: bool) -> None:
        self.sink, self.bar = sink, bar
        self.phase = ""
        self.since = time.time()  # when the current phase began (tqdm's clock)
        self.tq: Any = None

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if self.sink is not None:
            self.sink(phase, done, total)
        if not self.bar:
            return
        from tqdm import tqdm

        if phase != self.phase:
            begun = self.since
            if self.tq is not None:
                self.tq.close()
            self.phase = phase
            self.tq = tqdm(total=total, desc=f"{phase:<6}", unit="calls", file=sys.stderr, mininterval=0.1,
                           dynamic_ncols=True, leave=True)
            self.tq.start_t = self.tq.last_print_t = begun  # the phase began when the last one ended
        if total is not None and self.tq.total != total:
            self.tq.total = total
        self.tq.update(done - self.tq.n)
        self.since = time.time()
        if done == total:
            self.tq.refresh()

    def close(self) -> None:
        if self.tq is not None:
            self.tq.close()
            self.tq = None


def progress_reporter(progress: bool | Callable[[str, int, int | None], None]) -> Progress:
    if callable(progress):
        return Progress(progress, False)
    return Progress(None, bool(progress) and sys.stderr.isatty())
