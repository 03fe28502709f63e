"""The usage columns (UsageCounts): the compiled dense count and the numpy twin equal a plain per-call count."""
from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import kernel_inputs, scenarios

from ocrledger.codes import Source, Status
from ocrledger.engine import usage as usage_module
from ocrledger.engine.usage import (
    DEDICATED,
    DUPLICATE,
    FAILED,
    FREE,
    REJECTED,
    SHARED,
    TIER0,
    UsageCounts,
)
from ocrledger.kernel import select as _kernel
from ocrledger.kernel.contract import KernelState

CATEGORY = {Status.FAILED: FAILED, Status.DUPLICATE: DUPLICATE, Status.REJECTED_INACTIVE: REJECTED,
            Status.REJECTED_NO_PLAN: REJECTED, Status.REJECTED_CREDENTIAL: REJECTED}
PAID_BY = {Source.FREE: FREE, Source.DEDICATED: DEDICATED, Source.SHARED: SHARED}


def plain_count(tables, batch, out):  # type: ignore[no-untyped-def]
    """One call at a time: its (party, period, api) line's column, and the plan units it took."""
    lines: dict = defaultdict(lambda: [0] * (TIER0 + int(max(tables.tier_offset[1:] - tables.tier_offset[:-1]))))
    plans: dict = defaultdict(int)
    for i in range(len(batch)):
        status, source = int(out.status[i]), int(out.source[i])
        if status == Status.CHARGED:
            column = TIER0 + int(out.tier[i]) if source == Source.PAYG else PAID_BY[Source(source)]
        else:
            column = CATEGORY[Status(status)]
        lines[(int(batch.party[i]), int(batch.period[i]), int(batch.api[i]))][column] += 1
        if out.plan[i] >= 0:
            units = int(tables.api_points[batch.api[i]]) if source == Source.SHARED else 1
            plans[(int(out.plan[i]), int(batch.period[i]))] += units
    return dict(lines), dict(plans)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(scenario=scenarios(), split=st.integers(0, 80))
def test_usage_counts_equal_a_plain_count(scenario, split, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    tables, quantity, batch = kernel_inputs(scenario)
    out = _kernel.run(_kernel.get(), tables, KernelState.fresh(tables, quantity), batch)
    lines, plans = plain_count(tables, batch, out)
    k = min(split, len(batch))
    for dense in (True, False):
        if not dense:
            monkeypatch.setattr(usage_module, "DENSE_BINS", 0)
            monkeypatch.setattr(_kernel, "helpers", lambda: None)
        counts = UsageCounts(tables)
        counts.add(batch.slice(0, k), out.slice(0, k))  # two batches add up to the whole
        counts.add(batch.slice(k, len(batch)), out.slice(k, len(batch)))
        assert counts.lines() == lines
        assert counts.plan_used == plans
