"""Catalog and accounts as plain dicts (instants in epoch ms) that parse back to the same objects."""
from __future__ import annotations

from typing import Any

from ..model.accounts import DEDICATED, MARKETPLACE, Accounts
from ..model.catalog import Catalog
from ..model.money import format_price


def catalog_to_dict(catalog: Catalog) -> dict[str, Any]:
    """The catalog in the form ``parse_catalog`` reads (prices as exact strings)."""
    data: dict[str, Any] = {
        "currency": catalog.currency,
        "timezone": catalog.timezone,
        "verification_free_total": catalog.verification_free_total,
        "api": [
            {
                "code": a.code, "name": a.name, "kind": a.kind, "free_monthly": a.free_monthly,
                "shared_points": a.shared_points, "dedicated": a.dedicated, "shared": a.shared, "qps": a.qps,
                "tier_mode": a.tier_mode, "rounding": a.rounding,
                "tiers": [
                    {"price": format_price(t.price)} if t.upto is None else {"upto": t.upto, "price": format_price(t.price)}
                    for t in a.tiers
                ],
            }
            for a in catalog.apis
        ],
    }
    offers = getattr(catalog, "plan_offers_raw", None)
    if offers:
        data["plan_offer"] = offers
    return data


def accounts_to_dict(accounts: Accounts) -> dict[str, Any]:
    """The accounts in the form ``parse_accounts`` reads (instants as epoch ms)."""
    out: dict[str, Any] = {"account": [], "plan": [], "qps_addon": [], "alert": [], "credential": []}
    for a in accounts.accounts:
        entry: dict[str, Any] = {"id": a.id, "channel": a.channel}
        if a.channel != MARKETPLACE:
            entry["activated"] = dict(a.activated)
        out["account"].append(entry)
    for p in accounts.plans:
        plan: dict[str, Any] = {
            "id": p.id, "account": p.account, "channel": p.channel, "kind": p.kind,
            "quantity": p.quantity, "start": p.start, "end": p.end,
        }
        if p.kind == DEDICATED:
            plan["api"] = p.apis[0]
        else:
            plan["apis"] = list(p.apis)
        if p.price is not None:
            plan["price"] = format_price(p.price)
        if p.refunded is not None:
            plan["refunded"] = p.refunded
        out["plan"].append(plan)
    for q in accounts.qps_addons:
        out["qps_addon"].append(
            {"account": q.account, "channel": q.channel, "api": q.api, "qps": q.qps, "start": q.start, "end": q.end}
        )
    for al in accounts.alerts:
        alert: dict[str, Any] = {"account": al.account, "channel": al.channel, "kind": al.kind, "threshold": al.threshold}
        if al.target is not None:
            alert["target"] = al.target
        out["alert"].append(alert)
    for c in accounts.credentials:
        cred: dict[str, Any] = {"key": c.key, "account": c.account, "channel": c.channel}
        if c.valid_from is not None:
            cred["from"] = c.valid_from
        if c.valid_until is not None:
            cred["until"] = c.valid_until
        out["credential"].append(cred)
    return out
