"""Invariants over random scenarios, on both kernels: conservation, plans, money, isolation, metamorphic."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from strategies import Scenario, scenarios

from ocrledger.codes import Source, Status
from ocrledger.engine.rate import RatingResult, rate
from ocrledger.engine.tables import plan_order
from ocrledger.model.catalog import VOLUME


def _rate(s: Scenario, kernel: str, calls: dict[str, np.ndarray] | None = None) -> RatingResult:
    return rate(s.calls if calls is None else calls, s.catalog, s.accounts, kernel=kernel)


def _take(calls: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in calls.items()}


def _json(result: RatingResult) -> list[str]:
    return [b.to_json() for b in result.bills]


@given(scenarios())
def test_conservation(kernel: str, s: Scenario) -> None:
    result = _rate(s, kernel)
    c = result.calls
    # each distinct (channel, record_id) is one record, charged or counted exactly once
    distinct = {(ch, rid) for ch, rid in zip(s.calls.get("channel", ["official"] * len(s.calls["ts"])),
                                              s.calls["record_id"])}
    counted = c["status"] != Status.DUPLICATE
    assert int(counted.sum()) == len(distinct)
    charged = c["status"] == Status.CHARGED
    assert set(c["source"][charged].tolist()) <= {Source.FREE, Source.DEDICATED, Source.SHARED, Source.PAYG}
    assert (c["source"][~charged] == Source.NONE).all()
    assert sum(line.calls for b in result.bills for line in b.lines) == len(distinct)
    for b in result.bills:
        for line in b.lines:
            assert line.calls == (line.failed + line.rejected + line.free + line.dedicated + line.shared_calls
                                  + line.payg)


@given(scenarios())
def test_every_call_is_paid_by_the_first_source_that_can(kernel: str, s: Scenario) -> None:
    """Replays the outcomes in charge order and checks each against what was left at that moment."""
    result = _rate(s, kernel)
    c = result.calls
    cat = s.catalog
    plans = plan_order(s.accounts.plans)
    rank = {p.id: k for k, p in enumerate(plans)}
    remaining = {p.id: p.quantity for p in plans}
    free_used: dict[tuple[str, str, str, str], int] = defaultdict(int)
    pool_used: dict[tuple[str, str], int] = defaultdict(int)
    for i in range(len(c["ts"])):
        if c["status"][i] not in (Status.CHARGED, Status.REJECTED_NO_PLAN):
            continue
        acc, ch, code, ts, period = c["account"][i], c["channel"][i], c["api"][i], int(c["ts"][i]), c["period"][i]
        api = cat.api(code)
        source = int(c["source"][i])
        official = ch == "official"
        verification = api.kind == "verification"
        free_left = (cat.verification_free_total - pool_used[(acc, ch)] if verification
                     else api.free_monthly - free_used[(acc, ch, code, period)])
        assert free_left >= 0  # free use never exceeds the quota
        if source == Source.FREE:
            assert official and free_left > 0
            if verification:
                pool_used[(acc, ch)] += 1
            else:
                free_used[(acc, ch, code, period)] += 1
            continue
        assert not (official and free_left > 0), "free quota left but not used"

        def can_pay(kind: str, need: int) -> list[str]:
            accepts = api.dedicated if kind == "dedicated" else api.shared
            return [p.id for p in plans if accepts and (p.account, p.channel, p.kind) == (acc, ch, kind)
                    and code in p.apis and p.start <= ts < p.effective_end and remaining[p.id] >= need]

        dedicated, shared = can_pay("dedicated", 1), can_pay("shared", api.shared_points)
        if source == Source.DEDICATED:
            assert c["plan"][i] == min(dedicated, key=rank.__getitem__)  # expire-first
            remaining[c["plan"][i]] -= 1
        elif source == Source.SHARED:
            assert not dedicated and c["plan"][i] == min(shared, key=rank.__getitem__)
            remaining[c["plan"][i]] -= api.shared_points
        else:  # PAYG on the official channel, rejected on the marketplace
            assert not dedicated and not shared
            assert (source == Source.PAYG) == official
    for p in plans:
        assert 0 <= remaining[p.id] <= p.quantity  # never more used than bought


@given(scenarios())
def test_money_adds_up(kernel: str, s: Scenario) -> None:
    result = _rate(s, kernel)
    c = result.calls
    per_line: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for acc, ch, period, code, amount in zip(c["account"], c["channel"], c["period"], c["api"], c["amount"].tolist()):
        per_line[(acc, ch, period, code)] += amount
    for b in result.bills:
        rounded = 0
        for line in b.lines:
            assert int(line.amount_exact.scaleb(6)) == per_line[(b.account, b.channel, b.period, line.api)]
            assert sum(t.amount for t in line.tiers) == line.amount_exact
            assert sum(t.calls for t in line.tiers) == line.payg
            for t in line.tiers:
                assert t.to is None or t.calls <= t.to - t.from_ + 1 or s.catalog.api(line.api).tier_mode == VOLUME
            assert abs(line.amount - line.amount_exact) < 1  # once-rounded to cents
            rounded += int(line.amount.scaleb(2))
        assert int(b.total.scaleb(2)) == rounded


@given(scenarios(), st.data())
def test_isolation_of_accounts_and_channels(kernel: str, s: Scenario, data: st.DataObject) -> None:
    # record ids are unique per channel (SPEC §2): an id reused by another account is a duplicate of
    # the first, so removing that account would make it count. Isolation is about state, so the ids
    # are made per-account here; duplicates within an account stay.
    calls = dict(s.calls)
    if not len(calls["ts"]):
        return
    calls["record_id"] = np.char.add(np.char.add(calls["account"], ":"), calls["record_id"])
    s = Scenario(s.catalog, s.accounts, calls)
    channel = calls.get("channel", np.full(len(calls["ts"]), "official"))
    whole = _rate(s, kernel)
    for keep in (calls["account"] != data.draw(st.sampled_from(sorted(set(calls["account"].tolist())))),
                 channel != data.draw(st.sampled_from(sorted(set(channel.tolist()))))):
        part = _rate(s, kernel, _take(calls, np.flatnonzero(keep)))
        removed = {(a, ch) for a, ch in zip(calls["account"][~keep], channel[~keep])}
        others = [b.to_json() for b in whole.bills if (b.account, b.channel) not in removed]
        assert _json(part) == others


@given(scenarios(), st.randoms(use_true_random=False))
def test_row_order_and_repetition_do_not_matter(kernel: str, s: Scenario, rnd) -> None:  # type: ignore[no-untyped-def]
    rows = np.arange(len(s.calls["ts"]))
    rnd.shuffle(rows)
    first = _json(_rate(s, kernel))
    assert _json(_rate(s, kernel, _take(s.calls, rows))) == first
    assert _json(_rate(s, kernel)) == first  # rating twice


@given(scenarios(), st.data())
def test_one_more_successful_call_never_lowers_a_graduated_bill(kernel: str, s: Scenario, data: st.DataObject) -> None:
    if any(a.tier_mode == VOLUME for a in s.catalog.apis) or not len(s.calls["ts"]):
        return  # volume pricing can lower a bill: 10,001 calls at the second price < 10,000 at the first
    calls = s.calls
    i = data.draw(st.integers(0, len(calls["ts"]) - 1))
    extra = {k: np.concatenate([v, v[i : i + 1]]) for k, v in calls.items()}
    extra["record_id"][-1] = "zz-extra"
    extra["success"][-1] = 1
    extra["ts"][-1] = data.draw(st.integers(int(calls["ts"].min()), int(calls["ts"].max())))
    before = {b.key: b.total for b in _rate(s, kernel).bills}
    after = {b.key: b.total for b in _rate(s, kernel, extra).bills}
    for key, total in before.items():
        assert after[key] >= total, key
