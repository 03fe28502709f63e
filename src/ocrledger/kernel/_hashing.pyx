"""String hashing in Cython: repeats of Arrow strings (duplicates) and a kept string index (the party index)."""
from libc.stdint cimport INT32_MAX, int32_t, int64_t, int8_t, uint64_t, uint8_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcmp, memcpy, memset

from ._common cimport HASH_BLOCK, OCR_K0, OCR_K1, OCR_K2, OCR_HI32, OCR_LO32, OCR_PREFETCH, offset_t


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
    cdef Py_ssize_t size = table.shape[0], j, r, other, width, b0, b1
    cdef uint64_t hashes[HASH_BLOCK]
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
        b0 = 0
        while b0 < m:  # hash a block of queries and prefetch their slots, then probe: the misses overlap
            b1 = b0 + HASH_BLOCK if b0 + HASH_BLOCK < m else m
            for j in range(b0, b1):
                r = q_rows[j]
                h = hash_bytes(q_base + q_offsets[r], q_offsets[r + 1] - q_offsets[r], <uint64_t><uint8_t>q_tag[j])
                hashes[j - b0] = h
                OCR_PREFETCH(&table[(h >> 32) & mask])
            for j in range(b0, b1):
                r = q_rows[j]
                width = q_offsets[r + 1] - q_offsets[r]
                key = q_base + q_offsets[r]
                h = hashes[j - b0]
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
            b0 = b1
