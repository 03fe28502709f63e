"""The Cython kernel against the plain-Python reference on random scenarios, and batch splitting.

Both kernels must give identical per-call columns and identical bills on every scenario; rating
a scenario in several time-ordered batches must give what rating it in one batch gives.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from strategies import Scenario, cut_points, kernel_inputs, scenarios

from ocrledger.codes import Source, Status
from ocrledger.engine.rate import RatingResult, rate
from ocrledger.kernel import select as _kernel
from ocrledger.kernel.contract import KernelState
from ocrledger.model.bills import bills_to_json

needs_cython = pytest.mark.skipif("cython" not in _kernel.KERNELS, reason="the compiled kernel is not built")
EXAMPLES = max(500, settings.default.max_examples)
"""At least 500 examples a run; a longer profile (HYPOTHESIS_PROFILE=long) raises it."""
QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]


def rate_both(s: Scenario) -> tuple[RatingResult, RatingResult]:
    return (rate(s.calls, s.catalog, s.accounts, kernel="cython"),
            rate(s.calls, s.catalog, s.accounts, kernel="reference"))


@needs_cython
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=QUIET)
@given(scenarios())
def test_kernels_agree(scenario: Scenario) -> None:
    compiled, reference = rate_both(scenario)
    assert (compiled.kernel, reference.kernel) == ("cython", "reference")
    assert compiled.calls.keys() == reference.calls.keys()
    for name, column in compiled.calls.items():
        other = reference.calls[name]
        assert column.dtype == other.dtype, name
        assert np.array_equal(column, other), name
    assert bills_to_json(compiled.bills) == bills_to_json(reference.bills)


OUT_COLUMNS = ("status", "source", "plan", "tier", "amount")


@settings(max_examples=150, deadline=None, suppress_health_check=QUIET)
@given(scenario=scenarios(), data=st.data())
def test_batches_give_what_one_batch_gives(kernel: str, scenario: Scenario, data: st.DataObject) -> None:
    tables, quantity, batch = kernel_inputs(scenario)
    impl = _kernel.get(kernel)
    whole_state = KernelState.fresh(tables, quantity)
    whole = _kernel.run(impl, tables, whole_state, batch)
    cuts = data.draw(cut_points(len(batch)), label="cuts")
    forget_cursors = data.draw(st.booleans(), label="zero the cursor caches between batches")
    state = KernelState.fresh(tables, quantity)
    edges = [0, *cuts, len(batch)]
    parts = []
    for lo, hi in zip(edges, edges[1:]):
        parts.append(_kernel.run(impl, tables, state, batch.take(np.arange(lo, hi))))
        if forget_cursors:
            state.ded_cursor[:] = 0
            state.sh_cursor[:] = 0
    for name in OUT_COLUMNS:
        assert np.array_equal(np.concatenate([getattr(p, name) for p in parts]), getattr(whole, name)), name
    for name, arr in whole_state.counters().items():
        assert np.array_equal(state.counters()[name], arr), name


# The differential test proves little if the scenarios never reach a rule. Each predicate below
# must be met by some generated scenario: a search (no shrinking) that fails means the strategy
# went blind to that rule.


def _outcomes(s: Scenario) -> dict[str, np.ndarray]:
    return rate(s.calls, s.catalog, s.accounts).calls


def _passed_over(s: Scenario) -> bool:
    """A shared plan valid for a call, with points left but fewer than the call needs."""
    result = rate(s.calls, s.catalog, s.accounts)
    c = result.calls
    left = {p.id: p.quantity for p in s.accounts.plans}
    for i in range(len(c["ts"])):
        need = s.catalog.api(str(c["api"][i])).shared_points
        if int(c["status"][i]) == Status.CHARGED and int(c["source"][i]) in (Source.SHARED, Source.PAYG):
            for p in s.accounts.plans:
                if (p.kind == "shared" and (p.account, p.channel) == (c["account"][i], c["channel"][i])
                        and str(c["api"][i]) in p.apis and p.start <= int(c["ts"][i]) < p.effective_end
                        and 0 < left[p.id] < need):
                    return True
        if int(c["source"][i]) == Source.SHARED:
            left[str(c["plan"][i])] -= need
    return False


REACHES = {
    "free": lambda s: (_outcomes(s)["source"] == Source.FREE).any(),
    "dedicated": lambda s: (_outcomes(s)["source"] == Source.DEDICATED).any(),
    "shared": lambda s: (_outcomes(s)["source"] == Source.SHARED).any(),
    "payg beyond the first tier": lambda s: (_outcomes(s)["tier"] > 0).any(),
    "failed": lambda s: (_outcomes(s)["status"] == Status.FAILED).any(),
    "duplicate": lambda s: (_outcomes(s)["status"] == Status.DUPLICATE).any(),
    "rejected before activation": lambda s: (_outcomes(s)["status"] == Status.REJECTED_INACTIVE).any()
    and len(s.accounts.accounts) > 0,
    "rejected on the marketplace": lambda s: (_outcomes(s)["status"] == Status.REJECTED_NO_PLAN).any(),
    "three months": lambda s: len(set(_outcomes(s)["period"].tolist())) == 3,
    "verification pool": lambda s: any(
        s.catalog.api(str(a)).kind == "verification" and int(src) == Source.FREE
        for a, src in zip(_outcomes(s)["api"], _outcomes(s)["source"])),
    "two plans ending together": lambda s: len({p.end for p in s.accounts.plans}) < len(s.accounts.plans),
    "refund": lambda s: any(p.refunded is not None for p in s.accounts.plans),
    "volume tiers paid": lambda s: any(
        s.catalog.api(str(a)).tier_mode == "volume" and int(src) == Source.PAYG
        for a, src in zip(_outcomes(s)["api"], _outcomes(s)["source"])),
    "shared plan passed over": _passed_over,
    "call at a plan's end": lambda s: bool(set(s.calls["ts"].tolist()) & {p.effective_end for p in s.accounts.plans}),
    "same record id on both channels": lambda s: len(
        {r for r, ch in zip(s.calls["record_id"].tolist(), s.calls["channel"].tolist()) if ch == "official"}
        & {r for r, ch in zip(s.calls["record_id"].tolist(), s.calls["channel"].tolist()) if ch != "official"}) > 0,
    "unknown account": lambda s: bool(set(zip(s.calls["account"].tolist(), s.calls["channel"].tolist()))
                                      - set(s.accounts.parties())),
}


@pytest.mark.parametrize("what", list(REACHES))
def test_scenarios_reach(what: str) -> None:
    find(scenarios(), REACHES[what],
         settings=settings(max_examples=2_000, deadline=None, phases=[Phase.generate], database=None,
                           suppress_health_check=QUIET))
