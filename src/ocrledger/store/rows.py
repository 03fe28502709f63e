"""The stored setup as rows: a whole accounts setup written once, and some parties' rows read back as ``Accounts``."""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Sequence

from ..model.accounts import Account, Accounts, Alert, Plan, QpsAddon


def accounts_of(store: Any, ids: Sequence[int], names: dict[int, tuple[str, str, bool]], *, source: str
                ) -> tuple[Accounts, dict[str, int]]:
    """The listed ones of parties ``ids`` as ``Accounts`` (activations, plans, add-ons, alerts) and the use so
    far of each of their plans (plan id -> calls or points). Credentials are looked up by key instead."""
    listed = [i for i in ids if names[i][2]]
    by_id = {i: (names[i][0], names[i][1]) for i in ids}
    activated: dict[int, dict[str, int]] = defaultdict(dict)
    for party, api, at in store.activations(listed):
        activated[party][api] = at
    accounts = tuple(Account(by_id[i][0], by_id[i][1], activated.get(i, {})) for i in listed)
    plans, used = [], {}
    for pid, party, kind, apis, quantity, start, end, price, refunded, units in store.plans_of(listed):
        a, c = by_id[party]
        plans.append(Plan(pid, a, c, kind, tuple(json.loads(apis)), quantity, start, end, price, refunded))
        used[pid] = int(units)
    addons = tuple(QpsAddon(*by_id[p], api, q, s, e) for p, api, q, s, e in store.addons(listed))
    alerts = tuple(Alert(*by_id[p], kind, target, th) for p, kind, target, th in store.alerts(listed))
    return Accounts(accounts, tuple(plans), addons, alerts, (), source=source), used


def write_accounts(store: Any, accounts: Accounts) -> None:
    """Store a whole accounts setup as rows (creation and migration): parties in file order, plans as bought."""
    party: dict[tuple[str, str], int] = {}
    for a in accounts.accounts:
        party[(a.id, a.channel)] = pid = store.add_party(a.id, a.channel, True)
        for api, at in a.activated.items():
            store.set_activation(pid, api, at)
    for p in accounts.plans:
        store.add_plan(p.id, party[(p.account, p.channel)], p.kind, json.dumps(list(p.apis)), p.quantity, p.start,
                       p.end, p.price, p.refunded)
    for q in accounts.qps_addons:
        store.add_addon(party[(q.account, q.channel)], q.api, q.qps, q.start, q.end)
    for al in accounts.alerts:
        store.add_alert(party[(al.account, al.channel)], al.kind, al.target, al.threshold)
    for c in accounts.credentials:
        store.add_credential(c.key, party[(c.account, c.channel)], c.valid_from, c.valid_until)
