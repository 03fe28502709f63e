"""The rating kernel in Cython: one nogil pass over encoded call columns (twin of ``_reference.py``)."""
from libc.stdint cimport INT64_MAX

IMPLEMENTATION = "cython"


cdef struct Tables:
    Py_ssize_t n_api
    money_t pool_total
    const int8_t* api_kind
    const int64_t* api_free
    const int64_t* api_points
    const int8_t* api_dedicated
    const int8_t* api_shared
    const int32_t* tier_offset
    const int64_t* tier_upto
    const money_t* tier_price
    const int8_t* party_official
    const instant_t* activation
    const instant_t* plan_start
    const instant_t* plan_end
    const int64_t* ded_offset
    const int32_t* ded_plans
    const int64_t* sh_offset
    const int32_t* sh_plans


cdef struct State:
    int32_t* pair_period
    int64_t* free_used
    int64_t* payg_calls
    int32_t* payg_tier
    money_t* payg_spend
    int64_t* pool_used
    int64_t* plan_remaining
    int32_t* ded_cursor
    int32_t* sh_cursor


cdef struct Columns:
    const int32_t* party
    const int32_t* api
    const instant_t* ts
    const int32_t* period
    const int8_t* success
    const int8_t* duplicate
    int8_t* status
    int8_t* source
    int32_t* plan
    int16_t* tier
    money_t* amount


# Pointers to the first element of a typed memoryview; NULL when it is empty (never read then).
cdef inline const int8_t* p_i8(const int8_t[::1] a): return &a[0] if a.shape[0] else NULL
cdef inline const int16_t* p_i16(const int16_t[::1] a): return &a[0] if a.shape[0] else NULL
cdef inline const int32_t* p_i32(const int32_t[::1] a): return &a[0] if a.shape[0] else NULL
cdef inline const int64_t* p_i64(const int64_t[::1] a): return &a[0] if a.shape[0] else NULL
cdef inline int8_t* w_i8(int8_t[::1] a): return &a[0] if a.shape[0] else NULL
cdef inline int16_t* w_i16(int16_t[::1] a): return &a[0] if a.shape[0] else NULL
cdef inline int32_t* w_i32(int32_t[::1] a): return &a[0] if a.shape[0] else NULL
cdef inline int64_t* w_i64(int64_t[::1] a): return &a[0] if a.shape[0] else NULL


cdef inline int32_t pick_plan(
    const int64_t* offset, const int32_t* plans, int32_t* cursor, Py_ssize_t pair,
    instant_t ts, int64_t need, const instant_t* start, const instant_t* end,
    const int64_t* remaining,
) noexcept nogil:
    """First plan of the pair's list (expire-first order) valid at ts with room for need; -1 if none.

    Invariant: the first cursor[pair] plans of the list have less than need left, for good:
    remainders only shrink, and need is fixed for a pair. So they are skipped for ever.
    """
    cdef int64_t k = offset[pair] + cursor[pair]
    cdef int64_t hi = offset[pair + 1]
    cdef int32_t p
    while k < hi and remaining[plans[k]] < need:
        k += 1
        cursor[pair] += 1
    while k < hi:
        p = plans[k]
        if start[p] <= ts and ts < end[p] and remaining[p] >= need:
            return p
        k += 1
    return -1


cdef Py_ssize_t rate_columns(const Tables* t, State* s, Columns* c, Py_ssize_t n) noexcept nogil:
    """The hot loop; see rate_batch. Returns the number of calls rated."""
    cdef Py_ssize_t i, pair, party, api
    cdef int32_t p, tier, first
    cdef int64_t position, need
    cdef money_t price
    cdef instant_t ts
    for i in range(n):
        party = c.party[i]
        api = c.api[i]
        ts = c.ts[i]
        pair = party * t.n_api + api
        c.source[i] = SRC_NONE
        c.plan[i] = -1
        c.tier[i] = -1
        c.amount[i] = 0
        if c.duplicate[i]:
            c.status[i] = ST_DUPLICATE
            continue
        if c.period[i] != s.pair_period[pair]:
            if c.period[i] < s.pair_period[pair]:
                c.status[i] = ST_ERR_LATE
                return i
            s.pair_period[pair] = c.period[i]
            s.free_used[pair] = 0
            s.payg_calls[pair] = 0
            s.payg_tier[pair] = 0
            s.payg_spend[pair] = 0
        if not c.success[i]:
            c.status[i] = ST_FAILED
            continue
        if ts < t.activation[pair]:
            c.status[i] = ST_REJECTED_INACTIVE
            continue
        c.status[i] = ST_CHARGED
        if t.party_official[party]:
            if t.api_kind[api]:
                if s.pool_used[party] < t.pool_total:
                    s.pool_used[party] += 1
                    c.source[i] = SRC_FREE
                    continue
            elif s.free_used[pair] < t.api_free[api]:
                s.free_used[pair] += 1
                c.source[i] = SRC_FREE
                continue
        if t.api_dedicated[api] and t.ded_offset[pair + 1] > t.ded_offset[pair]:
            p = pick_plan(t.ded_offset, t.ded_plans, s.ded_cursor, pair, ts, 1,
                          t.plan_start, t.plan_end, s.plan_remaining)
            if p >= 0:
                s.plan_remaining[p] -= 1
                c.source[i] = SRC_DEDICATED
                c.plan[i] = p
                continue
        if t.api_shared[api] and t.sh_offset[pair + 1] > t.sh_offset[pair]:
            need = t.api_points[api]
            p = pick_plan(t.sh_offset, t.sh_plans, s.sh_cursor, pair, ts, need,
                          t.plan_start, t.plan_end, s.plan_remaining)
            if p >= 0:
                s.plan_remaining[p] -= need
                c.source[i] = SRC_SHARED
                c.plan[i] = p
                continue
        if not t.party_official[party]:
            c.status[i] = ST_REJECTED_NO_PLAN
            continue
        # PAYG: the position counts PAYG calls of this month only; tiers are upper-inclusive.
        position = s.payg_calls[pair] + 1
        first = t.tier_offset[api]
        tier = s.payg_tier[pair]
        while position > t.tier_upto[first + tier]:
            tier += 1
        price = t.tier_price[first + tier]
        if s.payg_spend[pair] > INT64_MAX - price:
            c.status[i] = ST_ERR_OVERFLOW
            return i
        s.payg_calls[pair] = position
        s.payg_tier[pair] = tier
        s.payg_spend[pair] += price
        c.source[i] = SRC_PAYG
        c.tier[i] = <int16_t>tier
        c.amount[i] = price
    return n


def rate_batch(tables, state, batch, out):
    """Rate ``batch`` in order on top of ``state``; write one outcome per call into ``out``.

    Same contract as ``ocrledger._reference.rate_batch`` (the plain-Python equivalent): returns
    how many calls were rated; a smaller count than ``len(batch)`` means the call at that index
    could not be rated (``out.status`` says why) and nothing after it was. Shapes and dtypes
    are checked once by ``ocrledger._kernel``; typed memoryviews re-check dtype and contiguity.
    """
    cdef Tables t
    cdef State s
    cdef Columns c
    cdef Py_ssize_t n = batch.ts.shape[0]
    t.n_api = tables.n_api
    t.pool_total = tables.pool_total
    t.api_kind = p_i8(tables.api_kind)
    t.api_free = p_i64(tables.api_free)
    t.api_points = p_i64(tables.api_points)
    t.api_dedicated = p_i8(tables.api_dedicated)
    t.api_shared = p_i8(tables.api_shared)
    t.tier_offset = p_i32(tables.tier_offset)
    t.tier_upto = p_i64(tables.tier_upto)
    t.tier_price = p_i64(tables.tier_price)
    t.party_official = p_i8(tables.party_official)
    t.activation = p_i64(tables.activation)
    t.plan_start = p_i64(tables.plan_start)
    t.plan_end = p_i64(tables.plan_end)
    t.ded_offset = p_i64(tables.ded_offset)
    t.ded_plans = p_i32(tables.ded_plans)
    t.sh_offset = p_i64(tables.sh_offset)
    t.sh_plans = p_i32(tables.sh_plans)
    s.pair_period = w_i32(state.pair_period)
    s.free_used = w_i64(state.free_used)
    s.payg_calls = w_i64(state.payg_calls)
    s.payg_tier = w_i32(state.payg_tier)
    s.payg_spend = w_i64(state.payg_spend)
    s.pool_used = w_i64(state.pool_used)
    s.plan_remaining = w_i64(state.plan_remaining)
    s.ded_cursor = w_i32(state.ded_cursor)
    s.sh_cursor = w_i32(state.sh_cursor)
    c.party = p_i32(batch.party)
    c.api = p_i32(batch.api)
    c.ts = p_i64(batch.ts)
    c.period = p_i32(batch.period)
    c.success = p_i8(batch.success)
    c.duplicate = p_i8(batch.duplicate)
    c.status = w_i8(out.status)
    c.source = w_i8(out.source)
    c.plan = w_i32(out.plan)
    c.tier = w_i16(out.tier)
    c.amount = w_i64(out.amount)
    with nogil:
        n = rate_columns(&t, &s, &c, n)
    return n


def enum_values():
    """The C enum values, so a test can check them against ocrledger.codes."""
    return {
        "source": {"NONE": SRC_NONE, "FREE": SRC_FREE, "DEDICATED": SRC_DEDICATED,
                   "SHARED": SRC_SHARED, "PAYG": SRC_PAYG},
        "status": {"CHARGED": ST_CHARGED, "FAILED": ST_FAILED, "DUPLICATE": ST_DUPLICATE,
                   "REJECTED_INACTIVE": ST_REJECTED_INACTIVE, "REJECTED_NO_PLAN": ST_REJECTED_NO_PLAN,
                   "REJECTED_CREDENTIAL": ST_REJECTED_CREDENTIAL, "ERR_LATE": ST_ERR_LATE,
                   "ERR_OVERFLOW": ST_ERR_OVERFLOW},
    }
