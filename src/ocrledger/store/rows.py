"""The stored setup as rows: a whole accounts setup written once, and some parties' rows read back as ``Accounts``."""
from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import numpy as np

from ..model.account_columns import AccountColumns, PlanColumns
from ..model.accounts import DEDICATED, Accounts, Alert, QpsAddon


def accounts_of(store: Any, ids: Sequence[int], names: dict[int, tuple[str, str, bool]], *, source: str
                ) -> tuple[Accounts, dict[str, int]]:
    """The listed ones of parties ``ids`` as ``Accounts`` (activations, plans, add-ons, alerts) and the use so
    far of each of their plans (plan id -> calls or points). Credentials are looked up by key instead.

    The accounts and plans are columns made straight from the rows (``Accounts.of_columns``): their
    objects are made only when something asks for them.
    """
    listed = [i for i in ids if names[i][2]]
    parties = [(names[i][0], names[i][1]) for i in listed]
    at = {pid: k for k, pid in enumerate(listed)}
    codes: dict[str, int] = {}
    acts = store.activations(listed)
    act_party = np.array([at[p] for p, _, _ in acts], dtype=np.int64)
    act_api = np.array([codes.setdefault(api, len(codes)) for _, api, _ in acts], dtype=np.int64)
    act_when = np.array([w for _, _, w in acts], dtype=np.int64)
    rows = store.plans_of(listed)
    n = len(rows)
    sets: dict[str, int] = {}
    prices: dict[int | None, int] = {}

    def ints(values: Iterable[int]) -> np.ndarray:
        return np.fromiter(values, dtype=np.int64, count=n)

    plans = PlanColumns(
        ids=[r[0] for r in rows], party=ints(at[r[1]] for r in rows), parties=parties,
        dedicated=np.fromiter((r[2] == DEDICATED for r in rows), dtype=bool, count=n),
        api_set=ints(sets.setdefault(r[3], len(sets)) for r in rows),
        api_sets=tuple(tuple(json.loads(text)) for text in sets),
        quantity=ints(r[4] for r in rows), start=ints(r[5] for r in rows), end=ints(r[6] for r in rows),
        refunded=ints(r[8] or 0 for r in rows),
        refund_given=np.fromiter((r[8] is not None for r in rows), dtype=bool, count=n),
        price=ints(prices.setdefault(r[7], len(prices)) for r in rows), prices=tuple(prices),
    )
    columns = AccountColumns(parties, act_party, act_api, act_when, tuple(codes), plans)
    by_id = {i: (names[i][0], names[i][1]) for i in listed}
    addons = tuple(QpsAddon(*by_id[p], api, q, s, e) for p, api, q, s, e in store.addons(listed))
    alerts = tuple(Alert(*by_id[p], kind, target, th) for p, kind, target, th in store.alerts(listed))
    return Accounts.of_columns(columns, addons, alerts, (), source), {r[0]: int(r[9]) for r in rows}


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
