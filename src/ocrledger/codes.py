"""Per-call outcome codes shared by both kernels; ``_core.pxd`` mirrors them as C enums (tested)."""
from __future__ import annotations

from enum import IntEnum


class Source(IntEnum):
    """What paid for a call (int8 in the ``source`` outcome column)."""

    NONE = 0
    FREE = 1
    DEDICATED = 2
    SHARED = 3
    PAYG = 4


class Status(IntEnum):
    """What happened to a call (int8 in the ``status`` outcome column); ``name.lower()`` is the word
    calls.parquet and ``RatingResult.calls_table()`` hold (``Status.CHARGED`` is "charged")."""

    CHARGED = 0
    """Successful and paid by ``source`` (free quota counts as paid)."""
    FAILED = 1
    DUPLICATE = 2
    REJECTED_INACTIVE = 3
    """Official channel, API not activated at the call's time (or account unknown)."""
    REJECTED_NO_PLAN = 4
    """Marketplace channel and no plan could pay."""
    REJECTED_CREDENTIAL = 5
    """Unknown or expired credential (resolved before the kernel)."""


class Fault(IntEnum):
    """The kernel's stop codes (64 and above), internal: the kernel writes one at the call it cannot rate,
    stops and rates nothing after it; the engine raises the matching error and no outcome column ever
    holds one. Kept apart from ``Status`` so the public enum carries only the outcomes a caller sees."""

    ERR_LATE = 64
    """The call's month is earlier than the month its counters have already moved to."""
    ERR_OVERFLOW = 65
    """A PAYG spend counter would pass INT64_MAX micro-units."""


REJECTED = (Status.REJECTED_INACTIVE, Status.REJECTED_NO_PLAN, Status.REJECTED_CREDENTIAL)
STATUS_NAMES = tuple(s.name.lower() for s in Status)
"""The ``status`` words of calls.parquet and ``calls_table()``, indexed by ``Status``."""
SOURCE_NAMES = tuple(s.name.lower() for s in Source if s != Source.NONE)
"""The ``source`` words, indexed by ``Source`` - 1 (``Source.NONE``: null, nothing paid)."""
