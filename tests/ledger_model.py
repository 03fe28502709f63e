"""A plain model of the ledger for the stateful test: dicts and loops, one call at a time, no kernel."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ocrledger.model.catalog import Catalog


@dataclass
class ModelPlan:
    id: str
    account: str
    channel: str
    kind: str
    apis: tuple[str, ...]
    remaining: int
    start: int
    end: int
    refunded: int | None = None

    def pays(self, ts: int) -> bool:
        stop = self.end if self.refunded is None else min(self.end, self.refunded)
        return self.start <= ts < stop


@dataclass
class Model:
    catalog: Catalog
    activated: dict[tuple[str, str], int]  # (account, api) -> instant, official accounts
    plans: list[ModelPlan] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)
    counts: dict[tuple[str, str, int, str], dict[str, Any]] = field(default_factory=dict)
    pool: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def line(self, account: str, channel: str, period: int, api: str) -> dict[str, Any]:
        key = (account, channel, period, api)
        if key not in self.counts:
            self.counts[key] = {"failed": 0, "rejected": 0, "free": 0, "dedicated": 0, "shared_calls": 0,
                                "positions": []}
        return self.counts[key]

    def charge(self, rid: str, account: str, channel: str, api: str, ts: int, ok: bool) -> None:
        if (channel, rid) in self.seen:
            return
        self.seen.add((channel, rid))
        spec = self.catalog.api(api)
        line = self.line(account, channel, self.catalog.clock.period(ts), api)
        if not ok:
            line["failed"] += 1
            return
        official = channel == "official"
        if official and ts < self.activated.get((account, api), 2**63):
            line["rejected"] += 1
            return
        if official:
            if spec.kind == "verification":
                if self.pool[(account, channel)] < self.catalog.verification_free_total:
                    self.pool[(account, channel)] += 1
                    line["free"] += 1
                    return
            elif line["free"] < spec.free_monthly:
                line["free"] += 1
                return
        order = sorted(self.plans, key=lambda p: (p.end, p.start, p.id.encode()))
        for kind, allowed, need, column in (("dedicated", spec.dedicated, 1, "dedicated"),
                                            ("shared", spec.shared, spec.shared_points, "shared_calls")):
            if not allowed:
                continue
            for plan in order:
                if ((plan.account, plan.channel, plan.kind) == (account, channel, kind) and api in plan.apis
                        and plan.pays(ts) and plan.remaining >= need):
                    plan.remaining -= need
                    line[column] += 1
                    return
        if not official:
            line["rejected"] += 1
            return
        line["positions"].append(len(line["positions"]) + 1)

    def exact(self, account: str, channel: str, period: int, api: str) -> int:
        """Exact PAYG amount of a line in micro-units, from its positions."""
        spec = self.catalog.api(api)
        positions = self.counts.get((account, channel, period, api), {"positions": []})["positions"]

        def tier_of(position: int) -> int:
            return next(t for t, tier in enumerate(spec.tiers) if tier.upto is None or position <= tier.upto)

        if spec.tier_mode == "volume":
            return len(positions) * spec.tiers[tier_of(len(positions))].price if positions else 0
        return sum(spec.tiers[tier_of(p)].price for p in positions)
