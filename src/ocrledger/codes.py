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
    """What happened to a call (int8 in the ``status`` outcome column).

    Codes of 64 and above are errors: the kernel stops at that call and rates nothing after it.
    """

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
    ERR_LATE = 64
    """The call's month is earlier than the month its counters have already moved to."""
    ERR_OVERFLOW = 65
    """A PAYG spend counter would pass INT64_MAX micro-units."""


REJECTED = (Status.REJECTED_INACTIVE, Status.REJECTED_NO_PLAN, Status.REJECTED_CREDENTIAL)
