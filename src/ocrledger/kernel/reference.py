"""The rating kernel in plain Python: the obviously-correct twin of ``_core.pyx`` (same signature)."""
from __future__ import annotations

from ..codes import Fault, Source, Status
from .contract import Batch, KernelState, KernelTables, Outcomes

INT64_MAX = (1 << 63) - 1
IMPLEMENTATION = "reference"


def rate_batch(tables: KernelTables, state: KernelState, batch: Batch, out: Outcomes) -> int:
    """Rate ``batch`` in order on top of ``state``; write one outcome per call into ``out``.

    Returns how many calls were rated. If that is less than ``len(batch)``, the call at that
    index could not be rated (``out.status`` says why: ERR_LATE or ERR_OVERFLOW) and nothing was
    rated after it; the counters hold every call before it.
    """
    n_api = tables.n_api
    for i in range(len(batch)):
        party = int(batch.party[i])
        api = int(batch.api[i])
        ts = int(batch.ts[i])
        period = int(batch.period[i])
        pair = party * n_api + api
        out.source[i] = Source.NONE
        out.plan[i] = -1
        out.tier[i] = -1
        out.amount[i] = 0

        if batch.duplicate[i]:
            out.status[i] = Status.DUPLICATE
            continue
        # Monthly counters belong to one month: a new month starts them afresh, an older one is an error.
        if period < state.pair_period[pair]:
            out.status[i] = Fault.ERR_LATE
            return i
        if period > state.pair_period[pair]:
            state.pair_period[pair] = period
            state.free_used[pair] = 0
            state.payg_calls[pair] = 0
            state.payg_tier[pair] = 0
            state.payg_spend[pair] = 0
        if not batch.success[i]:
            out.status[i] = Status.FAILED
            continue
        if ts < tables.activation[pair]:
            out.status[i] = Status.REJECTED_INACTIVE
            continue
        out.status[i] = Status.CHARGED
        official = bool(tables.party_official[party])

        # 1. free quota: official channel only
        if official:
            if tables.api_kind[api] == 1:
                if state.pool_used[party] < tables.pool_total:
                    state.pool_used[party] += 1
                    out.source[i] = Source.FREE
                    continue
            elif state.free_used[pair] < tables.api_free[api]:
                state.free_used[pair] += 1
                out.source[i] = Source.FREE
                continue

        # 2. dedicated, then 3. shared plans: the first plan in expire-first order that is valid
        #    at ts and has room for the whole call pays.
        paid = False
        for source, accepts, offset, plans, need in (
            (Source.DEDICATED, tables.api_dedicated, tables.ded_offset, tables.ded_plans, 1),
            (Source.SHARED, tables.api_shared, tables.sh_offset, tables.sh_plans, int(tables.api_points[api])),
        ):
            if not accepts[api]:
                continue
            for k in range(int(offset[pair]), int(offset[pair + 1])):
                p = int(plans[k])
                if tables.plan_start[p] <= ts < tables.plan_end[p] and state.plan_remaining[p] >= need:
                    state.plan_remaining[p] -= need
                    out.source[i] = source
                    out.plan[i] = p
                    paid = True
                    break
            if paid:
                break
        if paid:
            continue

        # 4. pay-as-you-go on the official channel; the marketplace rejects the call.
        if not official:
            out.status[i] = Status.REJECTED_NO_PLAN
            continue
        position = int(state.payg_calls[pair]) + 1
        first = int(tables.tier_offset[api])
        tier = 0
        while position > tables.tier_upto[first + tier]:
            tier += 1
        price = int(tables.tier_price[first + tier])
        if int(state.payg_spend[pair]) + price > INT64_MAX:
            out.status[i] = Fault.ERR_OVERFLOW
            return i
        state.payg_calls[pair] = position
        state.payg_tier[pair] = tier
        state.payg_spend[pair] += price
        out.source[i] = Source.PAYG
        out.tier[i] = tier
        out.amount[i] = price
    return len(batch)
