"""What an accounts file lists, one frozen object per entry: accounts, plans, QPS add-ons, alerts, credentials."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

OFFICIAL = "official"
MARKETPLACE = "marketplace"
CHANNELS = (OFFICIAL, MARKETPLACE)
DEDICATED = "dedicated"
SHARED = "shared"
ALERT_KINDS = ("plan_remaining", "free_exhausted", "payg_spend")


@dataclass(frozen=True)
class Account:
    """An account on one channel (``[[account]]``) and the instants its APIs were activated."""

    id: str
    channel: str = OFFICIAL
    activated: Mapping[str, int] = field(default_factory=dict)
    """API code -> activation instant (epoch ms). Marketplace accounts need none."""


@dataclass(frozen=True)
class Plan:
    """A resource plan (``[[plan]]``): dedicated to one API or shared by several, valid ``[start, end)``."""

    id: str
    account: str
    channel: str
    kind: str
    apis: tuple[str, ...]
    """The one API of a dedicated plan, or the APIs a shared plan may pay for."""
    quantity: int
    start: int
    end: int
    """Exclusive end (epoch ms): start plus one calendar year unless given."""
    price: int | None = None
    refunded: int | None = None

    @property
    def effective_end(self) -> int:
        """The plan pays for calls at ``start <= t < effective_end``."""
        return self.end if self.refunded is None else min(self.end, self.refunded)


@dataclass(frozen=True)
class QpsAddon:
    """Extra QPS (``[[qps_addon]]``) for one API of an account, valid ``[start, end)`` (epoch ms)."""

    account: str
    channel: str
    api: str
    qps: int
    start: int
    end: int


@dataclass(frozen=True)
class Alert:
    """An alert (``[[alert]]``): raised when a threshold of ``kind`` on ``target`` is crossed."""

    account: str
    channel: str
    kind: str
    target: str | None
    threshold: str


@dataclass(frozen=True)
class Credential:
    """An AccessKey ID or AppCode (``[[credential]]``) that stands for an account, valid ``[valid_from, valid_until)``."""

    key: str
    account: str
    channel: str
    valid_from: int | None = None
    valid_until: int | None = None
