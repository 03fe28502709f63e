"""Sorting and gathering in Cython: a radix argsort of instants; strings, lengths, int32 values and calls by a permutation."""
from libc.stdint cimport INT32_MAX, int32_t, int64_t, int8_t, uint32_t, uint64_t, uint8_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

from ._common cimport PREFETCH_AHEAD, OCR_PREFETCH, offset_t


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
