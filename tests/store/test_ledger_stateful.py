"""A stateful test: a ledger driven through ingests, plan purchases, refunds and closes against a plain model,
on SQLite and on a real PostgreSQL server (tests/pg_server.py)."""
from __future__ import annotations

import json

import numpy as np
import pg_server
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from ledger_model import Model, ModelPlan
from ledger_scenarios import START, small_catalog

from ocrledger.model.accounts import parse_accounts
from ocrledger.model.clock import period_label
from ocrledger.store.ledger import Ledger

DAY = 86_400_000
ACCOUNTS = [("u0", "official"), ("u1", "official"), ("m0", "marketplace")]


class LedgerMachine(RuleBasedStateMachine):
    postgres = False

    @initialize(activation_days=st.lists(st.integers(-5, 20), min_size=6, max_size=6))
    def start(self, activation_days: list[int]) -> None:
        self.catalog = small_catalog()
        activated = {}
        accounts = []
        for k, (acc, ch) in enumerate(ACCOUNTS):
            entry = {"id": acc, "channel": ch}
            if ch == "official":
                entry["activated"] = {api: START + activation_days[k * 3 + j] * DAY for j, api in enumerate("ABV")}
                activated.update({(acc, api): t for api, t in entry["activated"].items()})
            accounts.append(entry)
        where = pg_server.server().url() if self.postgres else ":memory:"
        self.ledger = Ledger.create(where, self.catalog, parse_accounts({"account": accounts}, self.catalog))
        self.model = Model(self.catalog, activated)
        self.now = START
        self.serial = 0
        self.batches = 0
        self.closed: dict[int, list[str]] = {}
        self.exact_at_close: dict[tuple[str, str, int, str], int] = {}

    def _call(self, data: st.DataObject, ts: int) -> tuple[str, str, str, str, int, bool]:
        acc, ch = data.draw(st.sampled_from(ACCOUNTS + [("ghost", "official")]))
        self.serial += 1
        rid = f"r{self.serial}" if data.draw(st.integers(0, 9)) else f"r{max(1, self.serial - 3)}"  # some repeats
        return (rid, acc, ch, data.draw(st.sampled_from("ABV")), ts, data.draw(st.integers(0, 9)) > 0)

    @rule(data=st.data(), n=st.integers(0, 25), advance_h=st.integers(0, 240), late=st.booleans())
    def ingest(self, data: st.DataObject, n: int, advance_h: int, late: bool) -> None:
        self.now += advance_h * 3_600_000
        rows = []
        for _ in range(n):
            back = data.draw(st.integers(0, 40 * DAY)) if late else data.draw(st.integers(0, 3_600_000))
            rows.append(self._call(data, max(START, self.now - back)))
        # charge order: (ts, record_id), copies of one record id at one instant by account, API, failed first
        rows.sort(key=lambda r: (r[4], r[0], r[1].encode(), self.catalog.index[r[3]], r[5]))
        for row in rows:
            self.model.charge(*row)
        cols = list(zip(*rows)) if rows else [[]] * 6
        self.batches += 1
        self.ledger.ingest({
            "record_id": np.array(cols[0], dtype=str), "account": np.array(cols[1], dtype=str),
            "channel": np.array(cols[2], dtype=str), "api": np.array(cols[3], dtype=str),
            "ts": np.array(cols[4], dtype=np.int64), "success": np.array(cols[5], dtype=np.int8),
        }, f"b{self.batches}")

    @rule(data=st.data(), quantity=st.integers(1, 12), start_d=st.integers(-10, 10), days=st.integers(1, 60))
    def buy_plan(self, data: st.DataObject, quantity: int, start_d: int, days: int) -> None:
        acc, ch = data.draw(st.sampled_from(ACCOUNTS))
        kind = data.draw(st.sampled_from(["dedicated", "shared"]))
        pid = f"p{len(self.model.plans)}"
        start, end = self.now + start_d * DAY, self.now + (start_d + days) * DAY
        fields = {"id": pid, "account": acc, "channel": ch, "kind": kind, "quantity": quantity, "start": start,
                  "end": end}
        if kind == "dedicated":
            fields["api"] = data.draw(st.sampled_from("AV"))
            apis: tuple[str, ...] = (fields["api"],)
        else:
            apis = ("A", "B", "V")
        self.ledger.add_plan(**fields)
        self.model.plans.append(ModelPlan(pid, acc, ch, kind, apis, quantity, start, end))

    @precondition(lambda self: self.model.plans)
    @rule(data=st.data(), hours=st.integers(0, 100))
    def refund(self, data: st.DataObject, hours: int) -> None:
        plan = data.draw(st.sampled_from(self.model.plans))
        if plan.refunded is not None:
            return
        at = max(plan.start, self.now + hours * 3_600_000)
        self.ledger.refund(plan.id, at)
        plan.refunded = at

    @rule()
    def close_oldest_month(self) -> None:
        open_months = sorted({p for (_, _, p, _) in self.model.counts if p not in self.closed})
        current = self.catalog.clock.period(self.now)
        if not open_months or open_months[0] >= current:
            return
        period = open_months[0]
        self.closed[period] = self.ledger.bill_texts(period_label(period))
        self.ledger.close_month(period_label(period))
        for key in self.model.counts:
            if key[2] == period:
                self.exact_at_close[key] = self.model.exact(*key)

    def teardown(self) -> None:
        if hasattr(self, "ledger"):
            self.ledger.close()

    @invariant()
    def bills_match_the_model(self) -> None:
        if not hasattr(self, "ledger"):
            return
        periods = sorted({p for (_, _, p, _) in self.model.counts})
        adjustments: dict[tuple[str, str, int, str], int] = {}
        for period in periods + [periods[-1] + 1] if periods else []:
            for bill in self.ledger.bills(period_label(period)):
                for adj in bill.adjustments:
                    src = int(adj.period[:4]) * 12 + int(adj.period[5:]) - 1 - 1970 * 12
                    key = (bill.account, bill.channel, src, adj.api)
                    adjustments[key] = adjustments.get(key, 0) + int(adj.amount_exact.scaleb(6))
                if period in self.closed:
                    continue
                for line in bill.lines:
                    m = self.model.counts[(bill.account, bill.channel, period, line.api)]
                    got = (line.failed, line.rejected, line.free, line.dedicated, line.shared_calls, line.payg)
                    want = (m["failed"], m["rejected"], m["free"], m["dedicated"], m["shared_calls"], len(m["positions"]))
                    assert got == want, (bill.account, period, line.api)
                    assert int(line.amount_exact.scaleb(6)) == self.model.exact(bill.account, bill.channel, period,
                                                                               line.api)
        for period, texts in self.closed.items():
            assert self.ledger.bill_texts(period_label(period)) == texts  # frozen bytes
        for key, at_close in self.exact_at_close.items():  # late calls: the whole change is adjusted
            assert adjustments.get(key, 0) == self.model.exact(*key) - at_close, key
        assert json.loads(json.dumps(self.ledger.batches())) == [f"b{k + 1}" for k in range(self.batches)]

    @invariant()
    def plan_states_match_the_model(self) -> None:
        if not hasattr(self, "ledger"):
            return
        for party in ACCOUNTS:
            states = {s.id: s for s in self.ledger.plan_states(*party, at=self.now)}
            mine = [p for p in self.model.plans if (p.account, p.channel) == party]
            assert sorted(states) == sorted(p.id for p in mine)
            for plan in mine:
                state = states[plan.id]
                total = state.total
                assert state.used == total - plan.remaining, plan.id  # every call the model charged to it
                if plan.refunded is not None and self.now >= plan.refunded:
                    want = "refunded"
                elif self.now >= plan.end:
                    want = "expired"
                else:
                    want = "exhausted" if plan.remaining == 0 else "available"
                assert state.status == want, (plan.id, state)
                assert state.remaining == (plan.remaining if want in ("available", "exhausted") else 0)
        # the plan's log rows are its deductions: they add up to what it paid
        for plan in self.model.plans:
            rows = self.ledger.deductions(plan=plan.id, limit=10_000).rows
            points = {a.code: a.shared_points for a in self.catalog.apis}
            paid = sum(points[r["api"]] if r["source"] == "shared" else 1 for r in rows)
            state = {s.id: s for s in self.ledger.plan_states(plan.account, plan.channel, at=self.now)}[plan.id]
            assert paid == state.used
            if rows:
                assert rows[-1]["plan_remaining"] == plan.remaining


LedgerMachine.TestCase.settings = settings(stateful_step_count=30, deadline=None)  # examples: the profile's
TestLedgerMachine = LedgerMachine.TestCase


class PostgresLedgerMachine(LedgerMachine):
    postgres = True


PostgresLedgerMachine.TestCase.settings = LedgerMachine.TestCase.settings


@pytest.mark.usefixtures("pg_session")
class TestPostgresLedgerMachine(PostgresLedgerMachine.TestCase):  # type: ignore[misc, valid-type]
    """The same machine on a PostgreSQL ledger."""
