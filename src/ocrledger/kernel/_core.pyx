"""The rating kernel in Cython: one nogil pass over encoded call columns (twin of ``_reference.py``)."""
from libc.stdint cimport INT32_MAX, INT64_MAX, INT64_MIN, uint8_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcmp, memcpy, memset

IMPLEMENTATION = "cython"

cdef enum:
    PREFETCH_AHEAD = 16  # calls between a pair's prefetch and its use (~100 ns of memory latency)
    PACK_ALL_RATIO = 4   # a batch of >= n_pair / 4 calls may pack every pair up front
    SAMPLE = 4096        # calls looked at to tell timestamp order from grouped
    HASH_BLOCK = 64      # keys hashed (and their slots prefetched) before they are probed

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define OCR_PREFETCH(p) __builtin_prefetch((const void*)(p), 1, 3)
    #define OCR_LIKELY(x) __builtin_expect(!!(x), 1)
    #define OCR_UNLIKELY(x) __builtin_expect(!!(x), 0)
    #else
    #define OCR_PREFETCH(p) ((void)0)
    #define OCR_LIKELY(x) (x)
    #define OCR_UNLIKELY(x) (x)
    #endif
    #define OCR_K0 0x9E3779B97F4A7C15ULL
    #define OCR_K1 0xBF58476D1CE4E5B9ULL
    #define OCR_K2 0x94D049BB133111EBULL
    #define OCR_HI32 0xFFFFFFFF00000000ULL
    #define OCR_LO32 0x00000000FFFFFFFFULL
    """
    const uint64_t OCR_K0, OCR_K1, OCR_K2, OCR_HI32, OCR_LO32
    void OCR_PREFETCH(const void* p) noexcept nogil
    bint OCR_LIKELY(bint x) noexcept nogil
    bint OCR_UNLIKELY(bint x) noexcept nogil


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


# ---------------------------------------------------------------------------------------------
# Helpers of the engine around the kernel (engine/order.py): hashing of fixed-width keys. Plain
# array functions; engine/order.py holds their numpy equivalents and tests compare the two.

ctypedef fused count_t:  # counters: int32 when the calls counted cannot reach 2**31
    int32_t
    int64_t


ctypedef fused offset_t:  # Arrow string offsets: int32 (string) or int64 (large_string), read as they are
    int32_t
    int64_t


cdef inline uint64_t hash_key(const uint8_t* key, Py_ssize_t width, uint64_t tag) noexcept nogil:
    # 8 bytes per step, multiply-xorshift mixing (fixed-width keys, so no length to mix in).
    cdef uint64_t h = OCR_K0 ^ tag, w
    cdef Py_ssize_t k = 0
    while k + 8 <= width:
        memcpy(&w, key + k, 8)
        h = (h ^ w) * OCR_K1
        h ^= h >> 31
        k += 8
    if k < width:
        w = 0
        memcpy(&w, key + k, width - k)
        h = (h ^ w) * OCR_K1
        h ^= h >> 31
    h *= OCR_K2
    return h ^ (h >> 29)


cdef uint64_t* grow(uint64_t* table, Py_ssize_t size) noexcept nogil:
    """A table of twice ``size`` slots holding the same entries (then frees the old one)."""
    cdef Py_ssize_t k, slot, new_size = size * 2
    cdef uint64_t mask = new_size - 1, entry
    cdef uint64_t* bigger = <uint64_t*>calloc(new_size, sizeof(uint64_t))
    if bigger != NULL:
        for k in range(size):
            entry = table[k]
            if entry != 0:
                slot = (entry >> 32) & mask
                while bigger[slot] != 0:
                    slot = (slot + 1) & mask
                bigger[slot] = entry
    free(table)
    return bigger


cdef Py_ssize_t hash_codes(const uint8_t* rows, Py_ssize_t width, Py_ssize_t n,
                           const int8_t* tag, const int64_t* order,
                           int32_t* code, int64_t* first, uint8_t* repeated) noexcept nogil:
    """Dictionary-encode n fixed-width keys (plus a tag byte) visited in ``order``.

    code[j] is the number of distinct keys seen before key order[j]'s first visit (so codes
    count up in visiting order), and first[c] is the visit position of code c's first key;
    repeated[j] (if given) is set to 1 for every visit of a key seen more than once.
    Linear probing in a table that doubles at load 2/3; an entry is the hash's high 32 bits
    (which also place it) and code + 1. Hashes of a block of keys are computed and their slots
    prefetched before the block is probed, so the table's cache misses overlap.
    Returns the number of distinct keys, -1 if memory ran out, -2 if order is not a permutation.
    """
    cdef Py_ssize_t size = 1024, j, b0, b1, i, other, slot, distinct = 0, c
    cdef uint64_t h, mask = size - 1, frag, entry
    cdef uint64_t hashes[HASH_BLOCK]
    cdef uint64_t* table = <uint64_t*>calloc(size, sizeof(uint64_t))
    cdef const uint8_t* key
    cdef int8_t tg
    if table == NULL:
        return -1
    b0 = 0
    while b0 < n:
        b1 = b0 + HASH_BLOCK if b0 + HASH_BLOCK < n else n
        if (distinct + HASH_BLOCK) * 3 >= size * 2:
            table = grow(table, size)
            if table == NULL:
                return -1
            size *= 2
            mask = size - 1
        for j in range(b0, b1):
            i = order[j] if order != NULL else j
            if i < 0 or i >= n:
                free(table)
                return -2
            h = hash_key(rows + i * width, width, <uint64_t><uint8_t>(tag[i] if tag != NULL else 0))
            hashes[j - b0] = h
            OCR_PREFETCH(&table[(h >> 32) & mask])
        for j in range(b0, b1):
            i = order[j] if order != NULL else j
            key = rows + i * width
            tg = tag[i] if tag != NULL else 0
            h = hashes[j - b0]
            frag = h & OCR_HI32
            slot = (h >> 32) & mask
            while True:
                entry = table[slot]
                if entry == 0:
                    table[slot] = frag | <uint64_t>(distinct + 1)
                    first[distinct] = j
                    code[j] = <int32_t>distinct
                    if repeated != NULL:
                        repeated[j] = 0
                    distinct += 1
                    break
                if (entry & OCR_HI32) == frag:
                    c = (entry & OCR_LO32) - 1
                    other = order[first[c]] if order != NULL else first[c]
                    if memcmp(rows + other * width, key, width) == 0 and (tag == NULL or tag[other] == tg):
                        code[j] = <int32_t>c
                        if repeated != NULL:
                            repeated[j] = 1
                            repeated[first[c]] = 1
                        break
                slot = (slot + 1) & mask
        b0 = b1
    free(table)
    return distinct


def dictionary_codes(const uint8_t[:, ::1] rows, const int8_t[::1] tag, const int64_t[::1] order,
                     int32_t[::1] code, int64_t[::1] first, uint8_t[::1] repeated=None):
    """Hash-based dictionary encoding of fixed-width keys; see ``ocrledger.engine.order``.

    rows: n keys of equal width (a numpy ``U``/``S`` array viewed as bytes); tag: optional int8
    that is part of the key; order: optional visiting order (a permutation of range(n)).
    Writes code[j] for the j-th visited key, first[c] for each code and, if given, repeated[j]
    (1 when the j-th visited key occurs more than once); returns the number of codes.
    """
    cdef Py_ssize_t n = rows.shape[0], width = rows.shape[1], distinct
    if n >= INT32_MAX:
        raise OverflowError("more than 2**31 - 2 keys")
    if code.shape[0] < n or first.shape[0] < n or (tag is not None and tag.shape[0] < n) or (
            order is not None and order.shape[0] != n) or (repeated is not None and repeated.shape[0] < n):
        raise ValueError("code, first and repeated need n entries, tag n, order exactly n")
    if n == 0:
        return 0
    with nogil:
        distinct = hash_codes(&rows[0, 0], width, n, &tag[0] if tag is not None else NULL,
                              &order[0] if order is not None else NULL, &code[0], &first[0],
                              &repeated[0] if repeated is not None else NULL)
    if distinct == -1:
        raise MemoryError()
    if distinct < 0:
        raise IndexError("order holds a position outside range(n)")
    return distinct


# ---------------------------------------------------------------------------------------------
# helpers of the in-memory rerate (ocrledger.rerate): variable-length record ids straight from
# Arrow buffers, a radix argsort of instants, a string gather, QPS seconds, JSON re-indentation.
# None of them touches the rating kernel above.

cdef inline uint64_t hash_bytes(const uint8_t* key, Py_ssize_t width, uint64_t tag) noexcept nogil:
    # 8 bytes per step with fixed-size loads; the last (partial) word is the key's last 8 bytes,
    # overlapping the previous one, so no variable-length copy is needed for keys of >= 8 bytes.
    cdef uint64_t h = OCR_K0 ^ tag ^ (<uint64_t>width * OCR_K2), w = 0
    cdef Py_ssize_t k = 0
    if width < 8:
        memcpy(&w, key, width)
        h = (h ^ w) * OCR_K1
        h ^= h >> 31
    else:
        while k + 8 <= width:
            memcpy(&w, key + k, 8)
            h = (h ^ w) * OCR_K1
            h ^= h >> 31
            k += 8
        if k < width:
            memcpy(&w, key + width - 8, 8)
            h = (h ^ w) * OCR_K1
            h ^= h >> 31
    h *= OCR_K2
    return h ^ (h >> 29)


cdef inline Py_ssize_t first_with_key(uint64_t* table, uint64_t mask, uint64_t slot, uint64_t frag, Py_ssize_t i,
                                     const offset_t* offsets, const uint8_t* base, const int8_t* tag) noexcept nogil:
    """Probe the linear-probing table for row i's (string, tag), whose hash gives ``frag`` (the entry's
    high 32 bits) and its first ``slot``: the first row with that key, or -1 after entering row i as
    the first of a new key. The strings are read only when a fragment matches."""
    cdef uint64_t entry
    cdef Py_ssize_t other, width
    while True:
        entry = table[slot]
        if entry == 0:
            table[slot] = frag | <uint64_t>(i + 1)
            return -1
        if (entry & OCR_HI32) == frag:
            other = <Py_ssize_t>(entry & OCR_LO32) - 1
            width = offsets[i + 1] - offsets[i]
            if (offsets[other + 1] - offsets[other] == width and tag[other] == tag[i]
                    and memcmp(base + offsets[other], base + offsets[i], width) == 0):
                return other
        slot = (slot + 1) & mask


cdef inline void note_row(Py_ssize_t i, Py_ssize_t other, int32_t* later, int32_t* first_of, Py_ssize_t* m,
                          Py_ssize_t* distinct) noexcept nogil:
    """Count row i as a new key (other < 0), or list it with the first row of its key."""
    if other < 0:
        distinct[0] += 1
    else:
        later[m[0]] = <int32_t>i
        first_of[m[0]] = <int32_t>other
        m[0] += 1


cdef tuple repeats_partitioned(const offset_t[::1] offsets, const uint8_t* base, const int8_t[::1] tag,
                               Py_ssize_t n, int32_t[::1] later, int32_t[::1] first_of):
    """``string_repeats`` in three passes: hash every row; split (hash, row) pairs by the hash's top
    ``bits`` bits, keeping row order within a partition; then find repeats one partition at a time
    with a small table. Rows keep their order inside a partition, so the first row of a key is found
    first, as in one pass over the input."""
    cdef int bits = 1
    while (n >> bits) > 32768 and bits < 16:
        bits += 1
    cdef Py_ssize_t parts = (<Py_ssize_t>1) << bits, i, j, k, pos, distinct = 0, m = 0
    cdef Py_ssize_t biggest = 0, size, lo, hi
    cdef int shift = 64 - bits
    cdef uint64_t h, mask
    cdef uint64_t* hashes = <uint64_t*>malloc(n * sizeof(uint64_t))
    cdef uint64_t* part_hash = <uint64_t*>malloc(n * sizeof(uint64_t))
    cdef int32_t* part_row = <int32_t*>malloc(n * sizeof(int32_t))
    cdef Py_ssize_t* start = <Py_ssize_t*>calloc(parts + 1, sizeof(Py_ssize_t))
    cdef uint64_t* table = NULL
    cdef const offset_t* off = &offsets[0]
    cdef const int8_t* tags = &tag[0]
    cdef int32_t* lat = &later[0]
    cdef int32_t* fst = &first_of[0]
    if hashes == NULL or part_hash == NULL or part_row == NULL or start == NULL:
        free(hashes); free(part_hash); free(part_row); free(start)
        raise MemoryError()
    with nogil:
        for i in range(n):
            h = hash_bytes(base + offsets[i], offsets[i + 1] - offsets[i], <uint64_t><uint8_t>tag[i])
            hashes[i] = h
            start[(h >> shift) + 1] += 1
        for k in range(parts):
            if start[k + 1] > biggest:
                biggest = start[k + 1]
            start[k + 1] += start[k]
        for i in range(n):  # stable scatter: start[k] advances to the end of partition k
            k = <Py_ssize_t>(hashes[i] >> shift)
            pos = start[k]
            part_hash[pos] = hashes[i]
            part_row[pos] = <int32_t>i
            start[k] = pos + 1
    free(hashes)
    size = 1024
    while biggest * 3 >= size * 2:
        size *= 2
    mask = size - 1
    table = <uint64_t*>malloc(size * sizeof(uint64_t))
    if table == NULL:
        free(part_hash); free(part_row); free(start)
        raise MemoryError()
    with nogil:
        lo = 0
        for k in range(parts):
            hi = start[k]  # the end of partition k (its start is the previous end)
            if hi > lo:
                size = 64
                while (hi - lo) * 3 >= size * 2:
                    size *= 2
                mask = size - 1
                memset(table, 0, size * sizeof(uint64_t))
                for j in range(lo, hi):
                    h = part_hash[j]
                    i = part_row[j]
                    note_row(i, first_with_key(table, mask, h & mask, (h << bits) & OCR_HI32, i, off, base, tags),
                             lat, fst, &m, &distinct)
            lo = hi
    free(table); free(part_hash); free(part_row); free(start)
    return distinct, m


def string_repeats(const offset_t[::1] offsets, const uint8_t[::1] data, const int8_t[::1] tag,
                   int32_t[::1] later, int32_t[::1] first_of, Py_ssize_t partitioned_from=1 << 16):
    """Hash n strings (Arrow offsets + data, plus a tag byte that is part of the key).

    Every row whose (string, tag) was seen on an earlier row is listed: later[k] is the row and
    first_of[k] the first row with its key (the pairs come in no particular order). Returns
    (distinct keys, rows listed). Only the listed entries of ``later`` and ``first_of`` are
    written, so untouched output costs nothing. The linear-probing table keeps a 32-bit hash
    fragment and the first row per key. From ``partitioned_from`` strings on, the rows are first
    split by their hash's top bits into partitions of about 32,768, each with a table that stays
    in cache (``repeats_partitioned``), instead of one table of the whole input's size.
    """
    cdef Py_ssize_t n = offsets.shape[0] - 1
    cdef Py_ssize_t size = 1024, j, b0, b1, distinct = 0, m = 0
    cdef uint64_t h, mask = size - 1
    cdef uint64_t hashes[HASH_BLOCK]
    cdef uint64_t* table
    cdef const uint8_t* base
    cdef const offset_t* off
    cdef const int8_t* tags
    cdef int32_t* lat
    cdef int32_t* fst
    if n < 0:
        raise ValueError("offsets needs n + 1 entries")
    if n >= INT32_MAX:
        raise OverflowError("more than 2**31 - 2 keys")
    if later.shape[0] < n or first_of.shape[0] < n or tag.shape[0] < n:
        raise ValueError("tag, later and first_of need n entries")
    if n == 0:
        return 0, 0
    if offsets[0] < 0 or offsets[n] > data.shape[0]:
        raise ValueError("offsets point outside data")
    base = &data[0] if data.shape[0] else NULL
    off, tags, lat, fst = &offsets[0], &tag[0], &later[0], &first_of[0]
    if n >= partitioned_from:
        return repeats_partitioned(offsets, base, tag, n, later, first_of)
    while (n + HASH_BLOCK) * 3 >= size * 2:  # sized for n distinct keys: the table never grows
        size *= 2
    mask = size - 1
    table = <uint64_t*>calloc(size, sizeof(uint64_t))
    if table == NULL:
        raise MemoryError()
    with nogil:
        b0 = 0
        while b0 < n:
            b1 = b0 + HASH_BLOCK if b0 + HASH_BLOCK < n else n
            for j in range(b0, b1):
                h = hash_bytes(base + offsets[j], offsets[j + 1] - offsets[j], <uint64_t><uint8_t>tag[j])
                hashes[j - b0] = h
                OCR_PREFETCH(&table[(h >> 32) & mask])
            for j in range(b0, b1):
                h = hashes[j - b0]
                note_row(j, first_with_key(table, mask, (h >> 32) & mask, h & OCR_HI32, j, off, base, tags),
                         lat, fst, &m, &distinct)
            b0 = b1
    free(table)
    return distinct, m



def string_index(const offset_t[::1] offsets, const uint8_t[::1] data, const int8_t[::1] tag, uint64_t[::1] table):
    """Enter n (string, tag) keys (Arrow offsets + data) into ``table``, a zeroed linear-probing table of
    a power-of-two size > 3n / 2, built once and kept (``string_find`` then looks keys up in it). An
    entry is the hash's high 32 bits and row + 1; a key that repeats keeps its first row. Returns the
    number of distinct keys."""
    cdef Py_ssize_t n = offsets.shape[0] - 1, size = table.shape[0], i, distinct = 0
    cdef uint64_t h, mask = size - 1
    cdef const uint8_t* base
    if n < 0 or tag.shape[0] < n:
        raise ValueError("offsets needs n + 1 entries, tag n")
    if n >= INT32_MAX:
        raise OverflowError("more than 2**31 - 2 keys")
    if size & (size - 1) or size * 2 <= n * 3:
        raise ValueError("table needs a power-of-two size > 3n / 2")
    if n == 0:
        return 0
    if offsets[0] < 0 or offsets[n] > data.shape[0]:
        raise ValueError("offsets point outside data")
    base = &data[0] if data.shape[0] else NULL
    with nogil:
        for i in range(n):
            h = hash_bytes(base + offsets[i], offsets[i + 1] - offsets[i], <uint64_t><uint8_t>tag[i])
            if first_with_key(&table[0], mask, (h >> 32) & mask, h & OCR_HI32, i, &offsets[0], base, &tag[0]) < 0:
                distinct += 1
    return distinct


def string_find(const uint64_t[::1] table, const offset_t[::1] offsets, const uint8_t[::1] data,
                const int8_t[::1] tag, const offset_t[::1] q_offsets, const uint8_t[::1] q_data,
                const int64_t[::1] q_rows, const int8_t[::1] q_tag, int64_t[::1] out):
    """out[j] = the row of (offsets, data, tag) whose key equals query j's (string q_rows[j] of
    q_offsets + q_data, with q_tag[j]), or -1: lookups in a ``string_index`` table, at a cost that
    grows with the queries, not the table (a few cache misses each)."""
    cdef Py_ssize_t n = offsets.shape[0] - 1, q_n = q_offsets.shape[0] - 1, m = q_rows.shape[0]
    cdef Py_ssize_t size = table.shape[0], j, r, other, width
    cdef uint64_t h, mask = size - 1, slot, frag, entry
    cdef const uint8_t* base
    cdef const uint8_t* q_base
    cdef const uint8_t* key
    if q_n < 0 or q_tag.shape[0] < m or out.shape[0] < m or n < 0 or tag.shape[0] < n:
        raise ValueError("q_offsets needs q_n + 1 entries, q_tag and out len(q_rows); offsets n + 1, tag n")
    if size & (size - 1) or size == 0:
        raise ValueError("table needs a power-of-two size")
    if m == 0:
        return
    if q_offsets[0] < 0 or q_offsets[q_n] > q_data.shape[0] or (n > 0 and (offsets[0] < 0 or offsets[n] > data.shape[0])):
        raise ValueError("offsets point outside data")
    for j in range(m):
        if q_rows[j] < 0 or q_rows[j] >= q_n:
            raise IndexError("q_rows holds a position outside the query strings")
    base = &data[0] if data.shape[0] else NULL
    q_base = &q_data[0] if q_data.shape[0] else NULL
    with nogil:
        for j in range(m):
            r = q_rows[j]
            width = q_offsets[r + 1] - q_offsets[r]
            key = q_base + q_offsets[r]
            h = hash_bytes(key, width, <uint64_t><uint8_t>q_tag[j])
            frag = h & OCR_HI32
            slot = (h >> 32) & mask
            out[j] = -1
            while True:
                entry = table[slot]
                if entry == 0:
                    break
                if (entry & OCR_HI32) == frag:
                    other = <Py_ssize_t>(entry & OCR_LO32) - 1
                    if (other < n and offsets[other + 1] - offsets[other] == width and tag[other] == q_tag[j]
                            and memcmp(base + offsets[other], key, width) == 0):
                        out[j] = other
                        break
                slot = (slot + 1) & mask


def spans(const int64_t[::1] start, const int64_t[::1] count, int64_t[::1] owner, int64_t[::1] index):
    """The items of runs: run k is count[k] items from start[k]; owner[j] / index[j] are the run and
    position of item j (runs in order). owner and index need sum(count) entries; returns that sum."""
    cdef Py_ssize_t m = start.shape[0], k, j = 0, c
    cdef int64_t p
    cdef bint bad = False
    if count.shape[0] != m:
        raise ValueError("start and count differ in length")
    with nogil:
        for k in range(m):
            c = count[k]
            if c < 0 or j + c > owner.shape[0] or j + c > index.shape[0]:
                bad = True
                break
            p = start[k]
            for c in range(c):
                owner[j] = k
                index[j] = p + c
                j += 1
    if bad:
        raise ValueError("a negative count, or owner/index shorter than the items")
    return j

def flag_values(const int32_t[::1] values, uint8_t[::1] seen):
    """seen[v] = 1 for every v in values (a set of small integers without numpy's bincount, which first
    copies an int32 column to 64 bits)."""
    cdef Py_ssize_t n = values.shape[0], m = seen.shape[0], i
    cdef int32_t v
    cdef bint bad = False
    with nogil:
        for i in range(n):
            v = values[i]
            if v < 0 or v >= m:
                bad = True
                break
            seen[v] = 1
    if bad:
        raise IndexError("a value outside seen")


def call_codes(const int32_t[::1] party, const int32_t[::1] period, const int8_t[::1] source,
               const int32_t[::1] plan, const int8_t[::1] status, const int32_t[::1] party_lut,
               const int32_t[::1] channel_of, const int32_t[::1] period_lut, const int32_t[::1] plan_lut,
               int32_t[::1] o_party, int32_t[::1] o_channel, int32_t[::1] o_period, int32_t[::1] o_source,
               uint8_t[::1] source_valid, int32_t[::1] o_plan, uint8_t[::1] plan_valid, int32_t[::1] o_status):
    """The dictionary indices of calls.parquet's text columns for one row group, in one pass:
    o_party = party_lut[party], o_channel = channel_of[party], o_period = period_lut[period],
    o_source = source - 1 (valid when a source paid), o_plan = plan_lut[plan] (valid when plan >= 0),
    o_status = status. Raises IndexError for a value outside its table."""
    cdef Py_ssize_t n = party.shape[0], i
    cdef int32_t p, q, k
    cdef int8_t src
    cdef bint bad = False
    if (period.shape[0] != n or source.shape[0] != n or plan.shape[0] != n or status.shape[0] != n
            or o_party.shape[0] != n or o_channel.shape[0] != n or o_period.shape[0] != n
            or o_source.shape[0] != n or source_valid.shape[0] != n or o_plan.shape[0] != n
            or plan_valid.shape[0] != n or o_status.shape[0] != n):
        raise ValueError("columns of different lengths")
    with nogil:
        for i in range(n):
            p = party[i]
            q = period[i]
            k = plan[i]
            src = source[i]
            if (p < 0 or p >= party_lut.shape[0] or p >= channel_of.shape[0] or q < 0 or q >= period_lut.shape[0]
                    or k >= plan_lut.shape[0] or src < 0):
                bad = True
                break
            o_party[i] = party_lut[p]
            o_channel[i] = channel_of[p]
            o_period[i] = period_lut[q]
            o_source[i] = src - 1 if src > 0 else 0
            source_valid[i] = src > 0
            o_plan[i] = plan_lut[k] if k >= 0 else 0
            plan_valid[i] = k >= 0
            o_status[i] = status[i]
    if bad:
        raise IndexError("a value outside its lookup table")


def byte_counts(const uint8_t[::1] values, int64_t[::1] counts):
    """counts[v] += 1 for every byte v (numpy's bincount first copies the bytes to 64-bit integers)."""
    cdef Py_ssize_t n = values.shape[0], i
    cdef int64_t local[256]
    if counts.shape[0] < 256:
        raise ValueError("counts needs 256 entries")
    with nogil:
        for i in range(256):
            local[i] = 0
        for i in range(n):
            local[values[i]] += 1
        for i in range(256):
            counts[i] += local[i]


def take_int32(const int32_t[::1] values, const int32_t[::1] index, int32_t[::1] out):
    """out[i] = values[index[i]]: numpy would first copy an int32 index to a 64-bit one."""
    cdef Py_ssize_t n = index.shape[0], m = values.shape[0], i
    cdef int32_t k
    cdef bint bad = False
    if out.shape[0] != n:
        raise ValueError("out needs len(index) entries")
    with nogil:
        for i in range(n):
            k = index[i]
            if k < 0 or k >= m:
                bad = True
                break
            out[i] = values[k]
    if bad:
        raise IndexError("index holds a position outside values")


cdef void lsd_range(uint32_t* ka, int32_t* ia, uint32_t* kb, int32_t* ib, Py_ssize_t lo, Py_ssize_t hi,
                    int low_bits, int64_t* hist, uint32_t** keys, int32_t** rows) noexcept nogil:
    """Stable LSD radix sort of ka[lo:hi] (with ia) on their low ``low_bits`` bits, 11 bits a pass,
    ping-ponging with kb/ib; keys[0]/rows[0] point to the buffers holding the result."""
    cdef Py_ssize_t i, d, c, total, n = hi - lo
    cdef int shift = 0
    cdef uint32_t k
    cdef uint32_t* kt
    cdef int32_t* it
    cdef bint same
    while shift < low_bits:
        for d in range(2048):
            hist[d] = 0
        for i in range(lo, hi):
            hist[(ka[i] >> shift) & 2047] += 1
        same = False
        for d in range(2048):
            if hist[d] == n:
                same = True  # every key shares this digit: nothing to move
                break
        if not same:
            total = lo
            for d in range(2048):
                c = hist[d]
                hist[d] = total
                total += c
            for i in range(lo, hi):
                k = ka[i]
                d = (k >> shift) & 2047
                c = hist[d]
                hist[d] = c + 1
                kb[c] = k
                ib[c] = ia[i]
            kt = ka; ka = kb; kb = kt
            it = ia; ia = ib; ib = it
        shift += 11
    keys[0] = ka
    rows[0] = ia


def radix_argsort(const int64_t[::1] ts, int64_t base, int64_t[::1] out, int64_t[::1] sorted_ts,
                  Py_ssize_t partitioned_from=1 << 16):
    """Stable argsort of ts (every ts - base in [0, 2**32)) into out; sorted_ts receives ts[out].

    Equal to ``np.argsort(ts, kind="stable")``. Small inputs: LSD radix, 11-bit digits, over the
    whole array. From ``partitioned_from`` keys on: one stable pass splits the keys by their top
    bits into partitions of about 16,384, then each partition is LSD-sorted on its remaining bits
    while it stays in cache. Digits that every key (of a partition) shares are skipped.
    """
    cdef Py_ssize_t n = ts.shape[0], i, k, pos, lo, hi, parts = 1
    cdef uint32_t* ka
    cdef uint32_t* kb
    cdef int32_t* ia
    cdef int32_t* ib
    cdef uint32_t* rk
    cdef int32_t* ri
    cdef int64_t* hist
    cdef Py_ssize_t* start = NULL
    cdef uint32_t kmax = 0
    cdef int64_t v
    cdef bint bad = False
    cdef int width = 0, pbits = 0, shift = 0
    if out.shape[0] != n or sorted_ts.shape[0] != n:
        raise ValueError("out and sorted_ts need len(ts) entries")
    if n >= INT32_MAX:
        raise OverflowError("more than 2**31 - 2 keys")
    if n == 0:
        return
    ka = <uint32_t*>malloc(n * sizeof(uint32_t))
    kb = <uint32_t*>malloc(n * sizeof(uint32_t))
    ia = <int32_t*>malloc(n * sizeof(int32_t))
    ib = <int32_t*>malloc(n * sizeof(int32_t))
    hist = <int64_t*>calloc(2048, sizeof(int64_t))
    if ka == NULL or kb == NULL or ia == NULL or ib == NULL or hist == NULL:
        free(ka); free(kb); free(ia); free(ib); free(hist)
        raise MemoryError()
    with nogil:
        for i in range(n):
            v = ts[i] - base
            if v < 0 or v > <int64_t>0xFFFFFFFF:
                bad = True
                break
            ka[i] = <uint32_t>v
            ia[i] = <int32_t>i
            if ka[i] > kmax:
                kmax = ka[i]
        while width < 32 and (kmax >> width) != 0:
            width += 1  # the keys' significant bits
    if bad:
        free(ka); free(kb); free(ia); free(ib); free(hist)
        raise ValueError("ts - base must lie in [0, 2**32)")
    if n >= partitioned_from:
        while pbits < 12 and pbits < width and (n >> pbits) > 16384:
            pbits += 1
        shift = width - pbits
        parts = (<Py_ssize_t>1) << pbits
        start = <Py_ssize_t*>calloc(parts + 1, sizeof(Py_ssize_t))
        if start == NULL:
            free(ka); free(kb); free(ia); free(ib); free(hist)
            raise MemoryError()
    with nogil:
        if start == NULL:
            lsd_range(ka, ia, kb, ib, 0, n, width, hist, &rk, &ri)
            for i in range(n):
                out[i] = ri[i]
                sorted_ts[i] = <int64_t>rk[i] + base
        else:
            for i in range(n):
                start[(ka[i] >> shift) + 1] += 1
            for k in range(parts):
                start[k + 1] += start[k]
            for i in range(n):  # stable: start[k] advances to the end of partition k
                k = ka[i] >> shift
                pos = start[k]
                kb[pos] = ka[i]
                ib[pos] = ia[i]
                start[k] = pos + 1
            lo = 0
            for k in range(parts):
                hi = start[k]
                if hi > lo:
                    lsd_range(kb, ib, ka, ia, lo, hi, shift, hist, &rk, &ri)
                    for i in range(lo, hi):
                        out[i] = ri[i]
                        sorted_ts[i] = <int64_t>rk[i] + base
                lo = hi
    free(ka); free(kb); free(ia); free(ib); free(hist); free(start)


def gather_strings(const offset_t[::1] offsets, const uint8_t[::1] data, const int64_t[::1] perm,
                   int32_t[::1] out_offsets, uint8_t[::1] out_data):
    """Strings perm[0], perm[1], ... of (offsets, data) as Arrow buffers out_offsets (n + 1), out_data.

    out_data must hold the total length of the gathered strings (< 2**31 bytes); up to 16 bytes
    more let short strings be copied as two fixed-size words.
    """
    cdef Py_ssize_t n = perm.shape[0], m = offsets.shape[0] - 1, j, i, pos = 0, width, f
    cdef Py_ssize_t size = data.shape[0], cap = out_data.shape[0]
    cdef bint bad = False
    cdef uint64_t w0, w1
    if out_offsets.shape[0] != n + 1:
        raise ValueError("out_offsets needs len(perm) + 1 entries")
    if n and size == 0:
        out_offsets[:] = 0
        return 0
    with nogil:
        out_offsets[0] = 0
        for j in range(n):
            if j + 2 * PREFETCH_AHEAD < n:
                f = perm[j + 2 * PREFETCH_AHEAD]
                if 0 <= f < m:
                    OCR_PREFETCH(&offsets[f])
            if j + PREFETCH_AHEAD < n:
                f = perm[j + PREFETCH_AHEAD]
                if 0 <= f < m and 0 <= offsets[f] < size:
                    OCR_PREFETCH(&data[offsets[f]])
            i = perm[j]
            if i < 0 or i >= m:
                bad = True
                break
            width = offsets[i + 1] - offsets[i]
            if width < 0 or offsets[i] < 0 or offsets[i + 1] > size or pos + width > cap or pos + width > INT32_MAX:
                bad = True
                break
            if width <= 16 and offsets[i] + 16 <= size and pos + 16 <= cap:
                memcpy(&w0, &data[offsets[i]], 8)
                memcpy(&w1, &data[offsets[i] + 8], 8)
                memcpy(&out_data[pos], &w0, 8)
                memcpy(&out_data[pos + 8], &w1, 8)
            elif width:
                memcpy(&out_data[pos], &data[offsets[i]], width)
            pos += width
            out_offsets[j + 1] = <int32_t>pos
    if bad:
        raise ValueError("perm or out_data does not fit the strings")
    return pos


def qps_seconds(const int32_t[::1] party, const int32_t[::1] api, const int64_t[::1] ts,
                const int8_t[::1] status, int8_t skip_status, Py_ssize_t n_api, Py_ssize_t n_party,
                int64_t min_emit, int64_t[::1] o_pair, int64_t[::1] o_sec, int64_t[::1] o_cnt):
    """Calls per (party, API) and second of calls in time order (status != skip_status).

    Writes (pair, second, calls) for every (pair, second) with at least ``min_emit`` calls, in
    the order the seconds end, and returns how many. Requires ts in non-decreasing order.
    """
    cdef Py_ssize_t n = party.shape[0], i, n_pair = n_party * n_api, emitted = 0, cap = o_pair.shape[0]
    cdef int64_t pr, sec, t
    cdef int64_t* last
    cdef int64_t* cnt
    cdef bint bad = False
    if api.shape[0] != n or ts.shape[0] != n or status.shape[0] < n:
        raise ValueError("columns of different lengths")
    if o_sec.shape[0] < cap or o_cnt.shape[0] < cap:
        raise ValueError("output columns of different lengths")
    last = <int64_t*>malloc(max(n_pair, 1) * sizeof(int64_t))
    cnt = <int64_t*>calloc(max(n_pair, 1), sizeof(int64_t))
    if last == NULL or cnt == NULL:
        free(last); free(cnt)
        raise MemoryError()
    with nogil:
        for i in range(n):
            if status[i] == skip_status:
                continue
            if party[i] < 0 or party[i] >= n_party or api[i] < 0 or api[i] >= n_api:
                bad = True
                break
            pr = <int64_t>party[i] * n_api + api[i]
            t = ts[i]
            sec = t // 1000
            if sec * 1000 > t:
                sec -= 1
            if cnt[pr] and last[pr] == sec:
                cnt[pr] += 1
                continue
            if cnt[pr] >= min_emit:
                if emitted >= cap:
                    bad = True
                    break
                o_pair[emitted] = pr
                o_sec[emitted] = last[pr]
                o_cnt[emitted] = cnt[pr]
                emitted += 1
            last[pr] = sec
            cnt[pr] = 1
        if not bad:
            for pr in range(n_pair):
                if cnt[pr] >= min_emit and cnt[pr] > 0:
                    if emitted >= cap:
                        bad = True
                        break
                    o_pair[emitted] = pr
                    o_sec[emitted] = last[pr]
                    o_cnt[emitted] = cnt[pr]
                    emitted += 1
    free(last); free(cnt)
    if bad:
        raise ValueError("a party or API outside the tables, or more seconds than the output holds")
    return emitted


cdef Py_ssize_t reindent_pass(const uint8_t* src, Py_ssize_t n, uint8_t* dst, Py_ssize_t indent) noexcept nogil:
    cdef Py_ssize_t i = 0, o = 0, depth = 0, k
    cdef uint8_t c
    cdef bint in_str = False, esc = False
    while i < n:
        c = src[i]
        if in_str:
            if dst != NULL:
                dst[o] = c
            o += 1
            if esc:
                esc = False
            elif c == 92:  # backslash
                esc = True
            elif c == 34:  # quote
                in_str = False
            i += 1
            continue
        if c == 34:
            in_str = True
            if dst != NULL:
                dst[o] = c
            o += 1
        elif c == 91 or c == 123:  # [ {
            if i + 1 < n and src[i + 1] == c + 2:  # [] {}
                if dst != NULL:
                    dst[o] = c
                    dst[o + 1] = c + 2
                o += 2
                i += 1
            else:
                depth += 1
                if dst != NULL:
                    dst[o] = c
                    dst[o + 1] = 10
                    for k in range(depth * indent):
                        dst[o + 2 + k] = 32
                o += 2 + depth * indent
        elif c == 93 or c == 125:  # ] }
            depth -= 1
            if dst != NULL:
                dst[o] = 10
                for k in range(depth * indent):
                    dst[o + 1 + k] = 32
                dst[o + 1 + depth * indent] = c
            o += 2 + depth * indent
        elif c == 44:  # ,
            if dst != NULL:
                dst[o] = 44
                dst[o + 1] = 10
                for k in range(depth * indent):
                    dst[o + 2 + k] = 32
            o += 2 + depth * indent
        elif c == 58:  # :
            if dst != NULL:
                dst[o] = 58
                dst[o + 1] = 32
            o += 2
        else:
            if dst != NULL:
                dst[o] = c
            o += 1
        i += 1
    return o


def json_reindent(const uint8_t[::1] src, Py_ssize_t indent):
    """``json.dumps(obj, indent=indent)`` bytes from ``json.dumps(obj, separators=(",", ":"))`` bytes.

    Valid compact JSON only (no whitespace outside strings); returns a bytearray.
    """
    cdef Py_ssize_t n = src.shape[0], size
    cdef const uint8_t* s = &src[0] if n else NULL
    cdef uint8_t[::1] view
    with nogil:
        size = reindent_pass(s, n, NULL, indent)
    out = bytearray(size)
    if size:
        view = out
        with nogil:
            reindent_pass(s, n, &view[0], indent)
    return out


def gather_calls(const int64_t[::1] order, const int32_t[::1] party, const int32_t[::1] api,
                 const int8_t[::1] ok, const int8_t[::1] dup, int32_t[::1] o_party, int32_t[::1] o_api,
                 int8_t[::1] o_ok, int8_t[::1] o_dup):
    """o_X[j] = X[order[j]] for the four call columns.

    The columns are first packed into one 64-bit word per call (party, API, success and duplicate
    bits), so that each call of the random-order pass is one memory read instead of four.
    """
    cdef Py_ssize_t n = order.shape[0], m = party.shape[0], j, i, f
    cdef bint bad = False
    cdef uint64_t* packed
    cdef uint64_t w
    if api.shape[0] != m or ok.shape[0] != m or dup.shape[0] != m:
        raise ValueError("columns of different lengths")
    if o_party.shape[0] < n or o_api.shape[0] < n or o_ok.shape[0] < n or o_dup.shape[0] < n:
        raise ValueError("output columns need len(order) entries")
    packed = <uint64_t*>malloc((m if m > 0 else 1) * sizeof(uint64_t))
    if packed == NULL:
        raise MemoryError()
    with nogil:
        for i in range(m):
            if api[i] < 0 or api[i] >= (1 << 24) or ok[i] & ~1 or dup[i] & ~1:
                bad = True
                break
            packed[i] = ((<uint64_t><uint32_t>party[i]) << 32) | (<uint64_t>api[i] << 2) \
                | (<uint64_t>ok[i] << 1) | <uint64_t>dup[i]
        if not bad:
            for j in range(n):
                if j + PREFETCH_AHEAD < n:
                    f = order[j + PREFETCH_AHEAD]
                    if 0 <= f < m:
                        OCR_PREFETCH(&packed[f])
                i = order[j]
                if i < 0 or i >= m:
                    bad = True
                    break
                w = packed[i]
                o_party[j] = <int32_t><uint32_t>(w >> 32)
                o_api[j] = <int32_t>((w >> 2) & 0xFFFFFF)
                o_ok[j] = <int8_t>((w >> 1) & 1)
                o_dup[j] = <int8_t>(w & 1)
    free(packed)
    if bad:
        raise IndexError("order holds a position outside the columns, or a column a value out of range")


def usage_counts(const int32_t[::1] party, const int32_t[::1] api, const int32_t[::1] period,
                 const int8_t[::1] status, const int8_t[::1] source, const int16_t[::1] tier,
                 const int16_t[::1] status_cat, const int16_t[::1] source_cat, int8_t charged,
                 int8_t payg, int16_t tier0, int32_t p0, Py_ssize_t n_per, Py_ssize_t n_api,
                 Py_ssize_t width, count_t[::1] counts):
    """counts[((party * n_per + period - p0) * n_api + api) * width + category] += 1 per call.

    category: status_cat[status], or for charged calls source_cat[source], or tier0 + tier for
    PAYG ones (``usage`` column constants). Returns -1 (and stops) at a key outside counts.
    ``counts`` may be int32 when there are fewer than 2**31 calls: half the memory to scatter
    into, which keeps 10^7 calls' (party, API) counters in the cache.
    """
    cdef Py_ssize_t n = party.shape[0], i, size = counts.shape[0]
    cdef int64_t key
    cdef int16_t cat
    cdef Py_ssize_t bad = 0
    if api.shape[0] != n or period.shape[0] != n or status.shape[0] < n or source.shape[0] < n or tier.shape[0] < n:
        raise ValueError("columns of different lengths")
    if count_t is int32_t and n >= INT32_MAX:
        raise OverflowError("int32 counts hold fewer than 2**31 calls")
    with nogil:
        for i in range(n):
            if status[i] == charged:
                if source[i] == payg:
                    cat = tier0 + tier[i]
                else:
                    cat = source_cat[<uint8_t>source[i]]
            else:
                cat = status_cat[<uint8_t>status[i]]
            key = ((<int64_t>party[i] * n_per + (period[i] - p0)) * n_api + api[i]) * width + cat
            if cat < 0 or cat >= width or key < 0 or key >= size:
                bad = -1
                break
            counts[key] += 1
    return bad


def plan_units(const int32_t[::1] plan, const int8_t[::1] source, const int32_t[::1] api,
               const int32_t[::1] period, const int64_t[::1] api_points, int8_t shared, int32_t p0,
               Py_ssize_t n_per, int64_t[::1] units):
    """units[plan * n_per + period - p0] += what each call took from its plan: one call
    (dedicated) or its API's points (source ``shared``). Calls without a plan (plan < 0) are
    skipped. Returns -1 (and stops) at a key outside units. A plan only pays while it has the
    units left, so no sum can pass its quantity (no overflow).
    """
    cdef Py_ssize_t n = plan.shape[0], i, size = units.shape[0]
    cdef int64_t key
    cdef Py_ssize_t bad = 0
    if source.shape[0] < n or api.shape[0] < n or period.shape[0] < n:
        raise ValueError("columns of different lengths")
    with nogil:
        for i in range(n):
            if plan[i] < 0:
                continue
            key = <int64_t>plan[i] * n_per + (period[i] - p0)
            if key < 0 or key >= size or api[i] < 0 or api[i] >= api_points.shape[0]:
                bad = -1
                break
            units[key] += api_points[api[i]] if source[i] == shared else 1
    return bad


def plain_ends(const offset_t[::1] offsets, const uint8_t[::1] data):
    """True when every string (Arrow offsets + data) is non-empty and starts and ends with a byte in
    0x21..0x7E (printable ASCII, not a space): then trimming whitespace cannot change any of them."""
    cdef Py_ssize_t n = offsets.shape[0] - 1, i, a, b
    cdef bint ok = True
    if n <= 0:
        return True
    if offsets[0] < 0 or offsets[n] > data.shape[0]:
        raise ValueError("offsets point outside data")
    with nogil:
        for i in range(n):
            a = offsets[i]
            b = offsets[i + 1]
            if b <= a or data[a] < 0x21 or data[a] > 0x7E or data[b - 1] < 0x21 or data[b - 1] > 0x7E:
                ok = False
                break
    return ok


def string_lengths(const offset_t[::1] offsets, const int64_t[::1] perm, int32_t[::1] out_offsets):
    """out_offsets = Arrow offsets of strings perm[0], perm[1], ... of (offsets, ...); returns their total
    length (the size ``gather_strings`` needs). Raises OverflowError past 2**31 - 1 bytes."""
    cdef Py_ssize_t n = perm.shape[0], m = offsets.shape[0] - 1, j, i
    cdef int64_t pos = 0
    cdef bint bad = False, big = False
    if out_offsets.shape[0] != n + 1:
        raise ValueError("out_offsets needs len(perm) + 1 entries")
    with nogil:
        out_offsets[0] = 0
        for j in range(n):
            if j + PREFETCH_AHEAD < n and 0 <= perm[j + PREFETCH_AHEAD] < m:
                OCR_PREFETCH(&offsets[perm[j + PREFETCH_AHEAD]])
            i = perm[j]
            if i < 0 or i >= m:
                bad = True
                break
            pos += offsets[i + 1] - offsets[i]
            if pos > INT32_MAX:
                big = True
                break
            out_offsets[j + 1] = <int32_t>pos
    if bad:
        raise IndexError("perm holds a position outside the strings")
    if big:
        raise OverflowError("more than 2**31 - 1 bytes of strings")
    return pos
