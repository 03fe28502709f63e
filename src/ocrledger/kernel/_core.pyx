"""The rating kernel in Cython: one nogil pass over encoded call columns (twin of ``_reference.py``)."""
from libc.stdint cimport INT64_MAX, INT64_MIN, uint8_t, uintptr_t
from libc.stdlib cimport calloc, free, malloc

from ._common cimport PREFETCH_AHEAD, PACK_ALL_RATIO, SAMPLE, OCR_PREFETCH, OCR_UNLIKELY

IMPLEMENTATION = "cython"


cdef struct Tables:
    Py_ssize_t n_api
    Py_ssize_t n_party
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


cdef struct Pair:
    # Everything the kernel reads or advances for one (party, API) pair, in one 64-byte cache
    # line: in timestamp order pairs are touched at random, and one line per call instead of one
    # per state array is what makes that order fast. Gathered from the state arrays before a
    # batch and scattered back after it (pack / unpack); the layout never leaves this module.
    instant_t activation
    int64_t free_used
    int64_t payg_calls
    money_t payg_spend
    int64_t ded_base   # ded_offset[pair]
    int32_t period
    int32_t payg_tier
    int32_t ded_cur    # ded_cursor[pair]
    int32_t ded_n      # ded_offset[pair + 1] - ded_offset[pair]
    int32_t sh_cur     # sh_cursor[pair]; the list starts at sh_offset[pair] (read when needed)
    int32_t sh_n


cdef struct Seg:
    # One pair of the party whose run of calls is being rated (rate_grouped, batches grouped
    # by party): the Pair fields beside its API's table entries and the bound and price of its
    # current PAYG tier, so the loop reads one small, always-cached array indexed by API.
    # Packed at the start of the run or on the pair's first call of it (stamp), unpacked when
    # the run ends; the layout never leaves this module. 128 bytes, the fields every call
    # reads in the first 64.
    int64_t stamp
    instant_t activation
    int64_t free_used
    int64_t api_free
    int64_t payg_calls
    money_t payg_spend
    int64_t upto       # tier_upto[tier_first + payg_tier] once known; INT64_MIN until then
    money_t price      # tier_price[tier_first + payg_tier] once known
    int64_t ded_base
    int64_t sh_base
    int64_t need
    int32_t period
    int32_t payg_tier
    int32_t ded_cur
    int32_t ded_n
    int32_t sh_cur
    int32_t sh_n
    int32_t tier_first
    int8_t kind
    int8_t dedicated
    int8_t shared
    int8_t pad[9]


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
    const int32_t* plans, int32_t* cursor, int32_t count, instant_t ts, int64_t need,
    const instant_t* start, const instant_t* end, const int64_t* remaining,
) noexcept nogil:
    """First plan of plans[cursor:count] (the pair's list, expire-first order) valid at ts with
    room for need; -1 if none.

    Invariant: the plans before the cursor have less than need left, for good (remainders only
    shrink and need is fixed for a pair), so the cursor only moves forward.
    """
    cdef int32_t k = cursor[0]
    cdef int32_t p
    while k < count and remaining[plans[k]] < need:
        k += 1
    cursor[0] = k
    while k < count:
        p = plans[k]
        if start[p] <= ts and ts < end[p] and remaining[p] >= need:
            return p
        k += 1
    return -1


cdef Py_ssize_t rate_columns(const Tables* t, State* s, const Columns* c, Pair* pairs,
                             uint8_t* packed, int64_t* touched, Py_ssize_t* n_touched,
                             Py_ssize_t n) noexcept nogil:
    """The hot loop; see rate_batch. Returns the number of calls rated.

    Pair state is read and advanced in ``pairs[pair]``; the per-party pool and the plan
    remainders are advanced in place. When ``packed`` is NULL every pair was packed beforehand
    and lines are prefetched ahead (timestamp order); otherwise a pair is packed on its first
    call and listed in ``touched`` (small batches in timestamp order; a batch grouped by party
    runs in rate_grouped). Every outcome column is stored exactly once per call, from locals.
    """
    # Local copies: the int8 outcome stores may alias anything, so fields read through t, s or c
    # would be reloaded after every store; locals are not.
    cdef Py_ssize_t n_api = t.n_api
    cdef money_t pool_total = t.pool_total
    cdef const int8_t* api_kind = t.api_kind
    cdef const int64_t* api_free = t.api_free
    cdef const int64_t* api_points = t.api_points
    cdef const int8_t* api_dedicated = t.api_dedicated
    cdef const int8_t* api_shared = t.api_shared
    cdef const int32_t* tier_offset = t.tier_offset
    cdef const int64_t* tier_upto = t.tier_upto
    cdef const money_t* tier_price = t.tier_price
    cdef const int8_t* party_official = t.party_official
    cdef const instant_t* plan_start = t.plan_start
    cdef const instant_t* plan_end = t.plan_end
    cdef const int32_t* ded_plans = t.ded_plans
    cdef const int64_t* sh_offset = t.sh_offset
    cdef const int32_t* sh_plans = t.sh_plans
    cdef int64_t* pool_used = s.pool_used
    cdef int64_t* remaining = s.plan_remaining
    cdef const int32_t* party_col = c.party
    cdef const int32_t* api_col = c.api
    cdef const instant_t* ts_col = c.ts
    cdef const int32_t* period_col = c.period
    cdef const int8_t* success_col = c.success
    cdef const int8_t* duplicate_col = c.duplicate
    cdef int8_t* status_col = c.status
    cdef int8_t* source_col = c.source
    cdef int32_t* plan_col = c.plan
    cdef int16_t* tier_col = c.tier
    cdef money_t* amount_col = c.amount

    cdef Py_ssize_t i, party, api, pair
    cdef Py_ssize_t stop = n - PREFETCH_AHEAD if packed == NULL else 0
    cdef Py_ssize_t m = n_touched[0]
    cdef Pair* q
    cdef int32_t p, tier, period, first
    cdef int64_t position, need
    cdef money_t price
    cdef instant_t ts
    cdef int8_t status, source
    cdef int32_t plan
    cdef int16_t out_tier
    cdef money_t amount

    for i in range(n):
        # Request the line of the pair PREFETCH_AHEAD calls later: in timestamp order the cache
        # misses then overlap instead of stalling one after another.
        if i < stop:
            OCR_PREFETCH(&pairs[party_col[i + PREFETCH_AHEAD] * n_api + api_col[i + PREFETCH_AHEAD]])
        party = party_col[i]
        api = api_col[i]
        pair = party * n_api + api
        q = &pairs[pair]
        if packed != NULL and packed[pair] == 0:
            packed[pair] = 1
            touched[m] = pair
            m += 1
            n_touched[0] = m
            pack_one(t, s, q, pair)
        status = ST_CHARGED
        source = SRC_NONE
        plan = -1
        out_tier = -1
        amount = 0
        while True:  # one pass; every break goes to the single store below
            if OCR_UNLIKELY(duplicate_col[i] != 0):
                status = ST_DUPLICATE
                break
            period = period_col[i]
            # Monthly counters belong to one month: a new month starts them afresh, an older
            # one is an error.
            if OCR_UNLIKELY(period != q.period):
                if period < q.period:
                    status_col[i] = ST_ERR_LATE
                    return i
                q.period = period
                q.free_used = 0
                q.payg_calls = 0
                q.payg_tier = 0
                q.payg_spend = 0
            if OCR_UNLIKELY(success_col[i] == 0):
                status = ST_FAILED
                break
            ts = ts_col[i]
            if OCR_UNLIKELY(ts < q.activation):
                status = ST_REJECTED_INACTIVE
                break
            if party_official[party]:
                if api_kind[api]:
                    if pool_used[party] < pool_total:
                        pool_used[party] += 1
                        source = SRC_FREE
                        break
                elif q.free_used < api_free[api]:
                    q.free_used += 1
                    source = SRC_FREE
                    break
            if q.ded_n > q.ded_cur and api_dedicated[api]:
                p = pick_plan(ded_plans + q.ded_base, &q.ded_cur, q.ded_n, ts, 1,
                              plan_start, plan_end, remaining)
                if p >= 0:
                    remaining[p] -= 1
                    source = SRC_DEDICATED
                    plan = p
                    break
            if q.sh_n > q.sh_cur and api_shared[api]:
                need = api_points[api]
                p = pick_plan(sh_plans + sh_offset[pair], &q.sh_cur, q.sh_n, ts, need,
                              plan_start, plan_end, remaining)
                if p >= 0:
                    remaining[p] -= need
                    source = SRC_SHARED
                    plan = p
                    break
            if not party_official[party]:
                status = ST_REJECTED_NO_PLAN
                break
            # PAYG: the position counts PAYG calls of this month only; tiers are upper-inclusive,
            # and the walk resumes at the tier of the pair's last PAYG call.
            position = q.payg_calls + 1
            first = tier_offset[api]
            tier = q.payg_tier
            while position > tier_upto[first + tier]:
                tier += 1
            price = tier_price[first + tier]
            if OCR_UNLIKELY(q.payg_spend > INT64_MAX - price):
                status_col[i] = ST_ERR_OVERFLOW
                return i
            q.payg_calls = position
            q.payg_tier = tier
            q.payg_spend += price
            source = SRC_PAYG
            out_tier = <int16_t>tier
            amount = price
            break
        status_col[i] = status
        source_col[i] = source
        plan_col[i] = plan
        tier_col[i] = out_tier
        amount_col[i] = amount
    return n


cdef inline void seg_pack(const Tables* t, const State* s, Seg* q, Py_ssize_t api, Py_ssize_t k,
                          int64_t stamp) noexcept nogil:
    q.stamp = stamp
    q.activation = t.activation[k]
    q.free_used = s.free_used[k]
    q.payg_calls = s.payg_calls[k]
    q.payg_spend = s.payg_spend[k]
    q.ded_base = t.ded_offset[k]
    q.sh_base = t.sh_offset[k]
    q.period = s.pair_period[k]
    q.payg_tier = s.payg_tier[k]
    q.ded_cur = s.ded_cursor[k]
    q.ded_n = <int32_t>(t.ded_offset[k + 1] - t.ded_offset[k])
    q.sh_cur = s.sh_cursor[k]
    q.sh_n = <int32_t>(t.sh_offset[k + 1] - t.sh_offset[k])
    q.api_free = t.api_free[api]
    q.need = t.api_points[api]
    q.tier_first = t.tier_offset[api]
    q.kind = t.api_kind[api]
    q.dedicated = t.api_dedicated[api]
    q.shared = t.api_shared[api]
    q.upto = INT64_MIN  # the first PAYG call walks the tiers from payg_tier, as rate_columns does
    q.price = 0


cdef inline void seg_unpack(const Seg* q, State* s, Py_ssize_t k) noexcept nogil:
    s.free_used[k] = q.free_used
    s.payg_calls[k] = q.payg_calls
    s.payg_spend[k] = q.payg_spend
    s.pair_period[k] = q.period
    s.payg_tier[k] = q.payg_tier
    s.ded_cursor[k] = q.ded_cur
    s.sh_cursor[k] = q.sh_cur


cdef inline Py_ssize_t rate_run(const Tables* t, State* s, const Columns* c, Seg* seg,
                                int32_t* touched, Py_ssize_t* m_io, int64_t* pool_io,
                                Py_ssize_t i, Py_ssize_t n, int64_t stamp, bint lazy,
                                bint* failed) noexcept nogil:
    """Rate calls i, i + 1, ... while they belong to the party of call i (one run of a batch
    grouped by party); same rules, checks and stores as rate_columns. Returns the index after
    the run, or the index of the call that could not be rated with ``failed`` set.

    The run's pairs are read and advanced in ``seg[api]``. With ``lazy`` a pair is packed on
    its first call of the run (``stamp``) and listed in ``touched``; without it the caller has
    packed them all. The party's pool is advanced in ``pool_io[0]``.
    """
    # Local copies: the int8 outcome stores may alias anything (see rate_columns).
    cdef Py_ssize_t n_api = t.n_api
    cdef Py_ssize_t party = c.party[i]
    cdef bint official = t.party_official[party] != 0
    cdef money_t pool_total = t.pool_total
    cdef int64_t pool = pool_io[0]
    cdef Py_ssize_t m = m_io[0]
    cdef const int64_t* tier_upto = t.tier_upto
    cdef const money_t* tier_price = t.tier_price
    cdef const instant_t* plan_start = t.plan_start
    cdef const instant_t* plan_end = t.plan_end
    cdef const int32_t* ded_plans = t.ded_plans
    cdef const int32_t* sh_plans = t.sh_plans
    cdef int64_t* remaining = s.plan_remaining
    cdef const int32_t* party_col = c.party
    cdef const int32_t* api_col = c.api
    cdef const instant_t* ts_col = c.ts
    cdef const int32_t* period_col = c.period
    cdef const int8_t* success_col = c.success
    cdef const int8_t* duplicate_col = c.duplicate
    cdef int8_t* status_col = c.status
    cdef int8_t* source_col = c.source
    cdef int32_t* plan_col = c.plan
    cdef int16_t* tier_col = c.tier
    cdef money_t* amount_col = c.amount

    cdef Py_ssize_t api
    cdef Seg* q
    cdef int32_t p, tier, period, first
    cdef int64_t position, need
    cdef money_t price
    cdef instant_t ts
    cdef int8_t status, source
    cdef int32_t plan
    cdef int16_t out_tier
    cdef money_t amount
    cdef bint bad = False

    while i < n and party_col[i] == party:
        api = api_col[i]
        q = &seg[api]
        if lazy and OCR_UNLIKELY(q.stamp != stamp):
            touched[m] = <int32_t>api
            m += 1
            seg_pack(t, s, q, api, party * n_api + api, stamp)
        status = ST_CHARGED
        source = SRC_NONE
        plan = -1
        out_tier = -1
        amount = 0
        while True:  # one pass; every break goes to the single store below
            if OCR_UNLIKELY(duplicate_col[i] != 0):
                status = ST_DUPLICATE
                break
            period = period_col[i]
            if OCR_UNLIKELY(period != q.period):
                if period < q.period:
                    status_col[i] = ST_ERR_LATE
                    bad = True
                    break
                q.period = period
                q.free_used = 0
                q.payg_calls = 0
                q.payg_tier = 0
                q.payg_spend = 0
                q.upto = INT64_MIN
            if OCR_UNLIKELY(success_col[i] == 0):
                status = ST_FAILED
                break
            ts = ts_col[i]
            if OCR_UNLIKELY(ts < q.activation):
                status = ST_REJECTED_INACTIVE
                break
            if official:
                if q.kind:
                    if pool < pool_total:
                        pool += 1
                        source = SRC_FREE
                        break
                elif q.free_used < q.api_free:
                    q.free_used += 1
                    source = SRC_FREE
                    break
            if q.ded_n > q.ded_cur and q.dedicated:
                p = pick_plan(ded_plans + q.ded_base, &q.ded_cur, q.ded_n, ts, 1,
                              plan_start, plan_end, remaining)
                if p >= 0:
                    remaining[p] -= 1
                    source = SRC_DEDICATED
                    plan = p
                    break
            if q.sh_n > q.sh_cur and q.shared:
                need = q.need
                p = pick_plan(sh_plans + q.sh_base, &q.sh_cur, q.sh_n, ts, need,
                              plan_start, plan_end, remaining)
                if p >= 0:
                    remaining[p] -= need
                    source = SRC_SHARED
                    plan = p
                    break
            if not official:
                status = ST_REJECTED_NO_PLAN
                break
            # PAYG, as in rate_columns; the walk resumes at the pair's tier, whose bound and
            # price the Seg keeps (they may run ahead of payg_tier: they are not state, and
            # after an overflow error this Seg is never read again).
            position = q.payg_calls + 1
            tier = q.payg_tier
            if OCR_UNLIKELY(position > q.upto):
                first = q.tier_first
                while position > tier_upto[first + tier]:
                    tier += 1
                q.upto = tier_upto[first + tier]
                q.price = tier_price[first + tier]
            price = q.price
            if OCR_UNLIKELY(q.payg_spend > INT64_MAX - price):
                status_col[i] = ST_ERR_OVERFLOW
                bad = True
                break
            q.payg_calls = position
            q.payg_tier = tier
            q.payg_spend += price
            source = SRC_PAYG
            out_tier = <int16_t>tier
            amount = price
            break
        if OCR_UNLIKELY(bad):
            break
        status_col[i] = status
        source_col[i] = source
        plan_col[i] = plan
        tier_col[i] = out_tier
        amount_col[i] = amount
        i += 1
    pool_io[0] = pool
    m_io[0] = m
    failed[0] = bad
    return i


cdef Py_ssize_t rate_grouped(const Tables* t, State* s, const Columns* c, Py_ssize_t n) noexcept nogil:
    """The hot loop for a batch grouped by party; -1 if memory ran out (nothing rated then).

    Grouped, each party's calls come in one run and touch only its n_api pairs. While a run
    lasts those pairs live in a small, always-cached array indexed by API (``Seg``: the pair's
    fields beside its API's table entries), and the party's pool in a local; they are written
    back when the run ends, also after an error. A run that looks at least n_api calls long
    packs all its pairs up front, a shorter one each pair on its first call. A party may come
    back in a later run (its state is then read again from the arrays), so any order gives the
    same outcomes; only the speed needs runs.
    """
    cdef Py_ssize_t n_api = t.n_api
    cdef Py_ssize_t i = 0, j = n, k, api, party, m
    cdef int64_t stamp = 0, pool
    cdef bint failed = False
    cdef Seg* seg = <Seg*>calloc(n_api + 1, sizeof(Seg))
    cdef int32_t* touched = <int32_t*>malloc((n_api + 1) * sizeof(int32_t))
    if seg == NULL or touched == NULL:
        free(seg)
        free(touched)
        return -1
    while i < n:
        party = c.party[i]
        stamp += 1
        pool = s.pool_used[party]
        if n_api > 0 and i + n_api <= n and c.party[i + n_api - 1] == party:
            for api in range(n_api):
                touched[api] = <int32_t>api
                seg_pack(t, s, &seg[api], api, party * n_api + api, stamp)
            m = n_api
            j = rate_run(t, s, c, seg, touched, &m, &pool, i, n, stamp, False, &failed)
        else:
            m = 0
            j = rate_run(t, s, c, seg, touched, &m, &pool, i, n, stamp, True, &failed)
        for k in range(m):
            seg_unpack(&seg[touched[k]], s, party * n_api + touched[k])
        s.pool_used[party] = pool
        if failed:
            break
        i = j
    free(seg)
    free(touched)
    return j if failed else n


cdef inline void pack_one(const Tables* t, const State* s, Pair* q, Py_ssize_t k) noexcept nogil:
    q.activation = t.activation[k]
    q.free_used = s.free_used[k]
    q.payg_calls = s.payg_calls[k]
    q.payg_spend = s.payg_spend[k]
    q.ded_base = t.ded_offset[k]
    q.period = s.pair_period[k]
    q.payg_tier = s.payg_tier[k]
    q.ded_cur = s.ded_cursor[k]
    q.ded_n = <int32_t>(t.ded_offset[k + 1] - t.ded_offset[k])
    q.sh_cur = s.sh_cursor[k]
    q.sh_n = <int32_t>(t.sh_offset[k + 1] - t.sh_offset[k])


cdef inline void unpack_one(const Pair* q, State* s, Py_ssize_t k) noexcept nogil:
    s.free_used[k] = q.free_used
    s.payg_calls[k] = q.payg_calls
    s.payg_spend[k] = q.payg_spend
    s.pair_period[k] = q.period
    s.payg_tier[k] = q.payg_tier
    s.ded_cursor[k] = q.ded_cur
    s.sh_cursor[k] = q.sh_cur


cdef bint scattered(const Columns* c, Py_ssize_t n) noexcept nogil:
    """Whether the batch looks like timestamp order rather than grouped by party: more than a
    quarter of the first SAMPLE calls change party. Only speed depends on the answer."""
    cdef Py_ssize_t i, changes = 0, k = n if n < SAMPLE else SAMPLE
    for i in range(1, k):
        changes += c.party[i] != c.party[i - 1]
    return changes * 4 > k


cdef Py_ssize_t rate_packed(const Tables* t, State* s, const Columns* c, Py_ssize_t n) noexcept nogil:
    """Run the hot loop on packed pair state; -1 if memory ran out (nothing rated then).

    A batch that looks grouped by party (see scattered) runs in rate_grouped, one party's run
    of calls at a time. A large batch in timestamp order (at least n_pair / PACK_ALL_RATIO
    calls) packs every pair in one sequential sweep and prefetches; a smaller one packs pairs
    on first use, so its cost is O(calls + pairs it touches). Every way, every packed pair is
    unpacked at the end, also after an error, so the state holds every call before the one
    that failed.
    """
    cdef Py_ssize_t n_pair = t.n_api * t.n_party
    cdef Py_ssize_t k, m = 0, done
    cdef uint8_t* packed = NULL
    cdef int64_t* touched = NULL
    cdef void* block
    cdef Pair* pairs
    cdef bint spread = scattered(c, n)
    cdef bint eager = spread and n * PACK_ALL_RATIO >= n_pair
    if not spread:
        return rate_grouped(t, s, c, n)
    block = malloc(n_pair * sizeof(Pair) + 64)
    if not eager:
        packed = <uint8_t*>calloc(n_pair, 1)
        touched = <int64_t*>malloc((n if n < n_pair else n_pair) * sizeof(int64_t))
    if block == NULL or (not eager and (packed == NULL or touched == NULL)):
        free(block)
        free(packed)
        free(touched)
        return -1
    pairs = <Pair*>((<uintptr_t>block + 63) & ~(<uintptr_t>63))  # one pair per cache line
    if eager:
        for k in range(n_pair):
            pack_one(t, s, &pairs[k], k)
    done = rate_columns(t, s, c, pairs, packed, touched, &m, n)
    if eager:
        for k in range(n_pair):
            unpack_one(&pairs[k], s, k)
    else:
        for k in range(m):
            unpack_one(&pairs[touched[k]], s, touched[k])
    free(block)
    free(packed)
    free(touched)
    return done


def rate_batch(tables, state, batch, out):
    """Rate ``batch`` in order on top of ``state``; write one outcome per call into ``out``.

    Same contract as ``ocrledger.kernel.reference.rate_batch`` (the plain-Python equivalent): returns
    how many calls were rated; a smaller count than ``len(batch)`` means the call at that index
    could not be rated (``out.status`` says why) and nothing after it was. Shapes and dtypes
    are checked once by ``ocrledger.kernel.select``; typed memoryviews re-check dtype and contiguity.
    """
    cdef Tables t
    cdef State s
    cdef Columns c
    cdef Py_ssize_t n = batch.ts.shape[0]
    t.n_api = tables.n_api
    t.n_party = tables.party_official.shape[0]
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
    if n == 0:
        return 0
    with nogil:
        n = rate_packed(&t, &s, &c, n)
    if n < 0:
        raise MemoryError("no memory for the kernel's packed pair state")
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
