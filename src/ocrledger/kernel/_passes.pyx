"""Counting passes over columns in Cython (usage, plan units, QPS seconds, codes, bytes, flags, spans, setup slices) and json_reindent."""
from libc.stdint cimport INT32_MAX, int16_t, int32_t, int64_t, int8_t, uint8_t
from libc.stdlib cimport calloc, free, malloc

from ._common cimport OCR_PREFETCH, SLICE_AHEAD, count_t, offset_t

import numpy as _np


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



def slice_setup(const int64_t[::1] sel, const int8_t[::1] official, const int64_t[:, ::1] block,
                const int64_t[:, ::1] plan_kernel, const int32_t[:, ::1] ded, const int32_t[:, ::1] sh,
                int64_t no_activation, int64_t always_active, int64_t[::1] activation, int64_t[::1] ded_offset,
                int64_t[::1] sh_offset):
    """The kernel tables of some parties, sliced from a setup's packed rows in one pass (``engine.tables``).

    Slice party j is setup party sel[j] (-1: not listed). A setup party's row of ``block`` holds its
    plan run (first, count), its dedicated and shared entry runs (first, count each), then its
    activation instant per API; ``plan_kernel`` is (start, effective end, quantity) per plan; an entry
    of ``ded``/``sh`` is (API, plan position among its party's plans), a party's sorted by API, then
    plan. Writes ``activation`` (m * n_api; an unlisted party: no_activation if official, else
    always_active) and the zeroed CSR offsets ``ded_offset``/``sh_offset`` (m * n_api + 1); returns
    (chosen plan rows int64, plan start, plan end, quantity, dedicated plans int32, shared plans int32),
    the slice's plans being the listed parties' runs in slice order."""
    cdef Py_ssize_t m = sel.shape[0], n = block.shape[0], width = block.shape[1], n_api = width - 6
    cdef Py_ssize_t n_plan = plan_kernel.shape[0], j, c, k
    cdef int64_t p, total_plans = 0, total_ded = 0, total_sh = 0, value
    cdef bint bad = False
    if width < 6 or official.shape[0] != m or activation.shape[0] != m * n_api \
            or ded_offset.shape[0] != m * n_api + 1 or sh_offset.shape[0] != m * n_api + 1 \
            or plan_kernel.shape[1] != 3 or ded.shape[1] != 2 or sh.shape[1] != 2:
        raise ValueError("slice_setup: arrays of the wrong shape")
    with nogil:
        for j in range(m):
            p = sel[j]
            if p < -1 or p >= n:
                bad = True
                break
            if p >= 0:
                total_plans += block[p, 1]
                total_ded += block[p, 3]
                total_sh += block[p, 5]
    if bad:
        raise ValueError("slice_setup: a party outside the setup")
    chosen = _np.empty(total_plans, dtype=_np.int64)
    start = _np.empty(total_plans, dtype=_np.int64)
    end = _np.empty(total_plans, dtype=_np.int64)
    quantity = _np.empty(total_plans, dtype=_np.int64)
    ded_plans = _np.empty(total_ded, dtype=_np.int32)
    sh_plans = _np.empty(total_sh, dtype=_np.int32)
    cdef int64_t[::1] o_chosen = chosen, o_start = start, o_end = end, o_quantity = quantity
    cdef int32_t[::1] o_ded = ded_plans, o_sh = sh_plans
    cdef int64_t run, first, count, q_ded = 0, q_sh = 0
    k = 0
    with nogil:
        for j in range(m):
            _prefetch_rows(sel, j, m, block, plan_kernel, ded, sh)
            p = sel[j]
            if p < 0:
                value = no_activation if official[j] else always_active
                for c in range(n_api):
                    activation[j * n_api + c] = value
                continue
            for c in range(n_api):
                activation[j * n_api + c] = block[p, 6 + c]
            run = k
            first, count = block[p, 0], block[p, 1]
            if first < 0 or count < 0 or first + count > n_plan:
                bad = True
                break
            for c in range(count):
                o_chosen[k] = first + c
                o_start[k] = plan_kernel[first + c, 0]
                o_end[k] = plan_kernel[first + c, 1]
                o_quantity[k] = plan_kernel[first + c, 2]
                k += 1
            if not _entries(ded, block[p, 2], block[p, 3], j * n_api, n_api, run, count, ded_offset, o_ded, &q_ded):
                bad = True
                break
            if not _entries(sh, block[p, 4], block[p, 5], j * n_api, n_api, run, count, sh_offset, o_sh, &q_sh):
                bad = True
                break
        if not bad:
            for c in range(m * n_api):
                ded_offset[c + 1] += ded_offset[c]
                sh_offset[c + 1] += sh_offset[c]
    if bad:
        raise ValueError("slice_setup: a plan or entry run outside its arrays, or a party's entries out of order")
    return chosen, start, end, quantity, ded_plans, sh_plans


cdef inline void _prefetch_rows(const int64_t[::1] sel, Py_ssize_t j, Py_ssize_t m, const int64_t[:, ::1] block,
                                const int64_t[:, ::1] plan_kernel, const int32_t[:, ::1] ded,
                                const int32_t[:, ::1] sh) noexcept nogil:
    """Prefetch the block row of party j + 2 * SLICE_AHEAD, and the plan and entry runs of party j + SLICE_AHEAD
    (whose row was prefetched before): the parties' rows are far apart, so each is a trip to memory."""
    cdef Py_ssize_t w, far = j + 2 * SLICE_AHEAD, near = j + SLICE_AHEAD
    cdef int64_t p
    if far < m and sel[far] >= 0:
        p = sel[far]
        for w in range(0, block.shape[1], 8):
            OCR_PREFETCH(&block[p, w])
    if near < m and sel[near] >= 0:
        p = sel[near]
        if block[p, 1] > 0 and block[p, 0] < plan_kernel.shape[0]:
            OCR_PREFETCH(&plan_kernel[block[p, 0], 0])
            if block[p, 1] > 2 and block[p, 0] + 2 < plan_kernel.shape[0]:
                OCR_PREFETCH(&plan_kernel[block[p, 0] + 2, 2])
        if block[p, 3] > 0 and block[p, 2] < ded.shape[0]:
            OCR_PREFETCH(&ded[block[p, 2], 0])
        if block[p, 5] > 0 and block[p, 4] < sh.shape[0]:
            OCR_PREFETCH(&sh[block[p, 4], 0])


cdef bint _entries(const int32_t[:, ::1] entries, int64_t first, int64_t count, Py_ssize_t base, Py_ssize_t n_api,
                   int64_t run, int64_t n_plans, int64_t[::1] offset, int32_t[::1] plans, int64_t* q) noexcept nogil:
    """One party's entries (API, plan position) into the CSR offsets (counts at pair + 1) and plan list."""
    cdef int64_t e, api, rank, last = -1
    if first < 0 or count < 0 or first + count > entries.shape[0] or q[0] + count > plans.shape[0]:
        return False
    for e in range(first, first + count):
        api, rank = entries[e, 0], entries[e, 1]
        if api < last or api >= n_api or rank < 0 or rank >= n_plans:
            return False
        last = api
        offset[base + api + 1] += 1
        plans[q[0]] = <int32_t>(run + rank)
        q[0] += 1
    return True

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
