# cython: language_level=3
"""The bytes of bills.json and bills.txt from bill columns (``engine.bill_columns``), written without the GIL.

``bills.files`` prepares the text pieces (escaped names, tier labels, prices, plan ends, the adjustments
of a ledger's bill) once; the loops here only copy them and format integers and micro-unit amounts, bill
by bill, exactly as ``Bill.to_json`` (indent 2) and ``text.render_text`` would, the twins ``bills.files``
picks when this module is not built. ``tests/engine/test_bill_columns.py`` and
``tests/cluster/test_one_engine.py`` compare the bytes.
"""
from libc.stdint cimport int8_t, int64_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memset, strlen

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeUTF8


cdef struct Buf:
    char* p
    Py_ssize_t n
    Py_ssize_t cap
    int failed


cdef inline int reserve(Buf* b, Py_ssize_t extra) noexcept nogil:
    cdef Py_ssize_t cap
    cdef char* q
    if b.failed:
        return -1
    if b.n + extra <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 1 << 16
    while cap < b.n + extra:
        cap *= 2
    q = <char*>realloc(b.p, cap)
    if q == NULL:
        b.failed = 1
        return -1
    b.p = q
    b.cap = cap
    return 0


cdef inline void put(Buf* b, const char* s, Py_ssize_t n) noexcept nogil:
    if reserve(b, n) == 0:
        memcpy(b.p + b.n, s, n)
        b.n += n


cdef inline void lit(Buf* b, const char* s) noexcept nogil:
    put(b, s, <Py_ssize_t>strlen(s))


cdef inline void spaces(Buf* b, Py_ssize_t n) noexcept nogil:
    if n > 0 and reserve(b, n) == 0:
        memset(b.p + b.n, 32, n)
        b.n += n


cdef inline void piece(Buf* b, const unsigned char[::1] blob, const int64_t[::1] off, Py_ssize_t i) noexcept nogil:
    put(b, <const char*>&blob[0] + off[i], off[i + 1] - off[i])


cdef inline Py_ssize_t digits_of(uint64_t u) noexcept nogil:
    cdef Py_ssize_t d = 1
    while u >= 10:
        u //= 10
        d += 1
    return d


cdef inline uint64_t magnitude(int64_t v) noexcept nogil:
    return <uint64_t>v if v >= 0 else (<uint64_t>0) - <uint64_t>v


cdef inline void put_uint(Buf* b, uint64_t u, bint commas, Py_ssize_t min_digits) noexcept nogil:
    cdef char tmp[40]
    cdef Py_ssize_t i = 40, k = 0
    while True:
        if commas and k and k % 3 == 0:
            i -= 1
            tmp[i] = 44  # ','
        i -= 1
        tmp[i] = <char>(48 + u % 10)
        u //= 10
        k += 1
        if u == 0 and k >= min_digits:
            break
    put(b, tmp + i, 40 - i)


cdef inline void put_int(Buf* b, int64_t v, bint commas) noexcept nogil:
    if v < 0:
        put(b, "-", 1)
    put_uint(b, magnitude(v), commas, 1)


cdef inline Py_ssize_t int_len(int64_t v, bint commas) noexcept nogil:
    cdef Py_ssize_t d = digits_of(magnitude(v))
    return d + (v < 0) + ((d - 1) // 3 if commas else 0)


cdef inline void put_amount(Buf* b, int64_t micro, int places, bint commas) noexcept nogil:
    """micro-units as str(Decimal) with 6 places (exact) or 2 places (cents); commas as f"{d:,}"."""
    cdef uint64_t u = magnitude(micro)
    if micro < 0:
        put(b, "-", 1)
    put_uint(b, u // 1000000, commas, 1)
    put(b, ".", 1)
    if places == 6:
        put_uint(b, u % 1000000, 0, 6)
    else:
        put_uint(b, (u % 1000000) // 10000, 0, 2)


cdef inline Py_ssize_t amount_len(int64_t micro, int places, bint commas) noexcept nogil:
    cdef Py_ssize_t d = digits_of(magnitude(micro) // 1000000)
    return (micro < 0) + d + ((d - 1) // 3 if commas else 0) + 1 + places


cdef class Texts:
    """Strings as one UTF-8 blob with offsets, and each string's length in characters."""

    cdef const unsigned char[::1] blob
    cdef const int64_t[::1] off
    cdef const int64_t[::1] chars

    def __init__(self, bytes blob, off, chars):
        self.blob = blob if len(blob) else b"\0"
        self.off = off
        self.chars = chars


cdef class Columns:
    """Everything one bills.json / bills.txt needs, as typed views (built by ``billfiles``)."""

    cdef const int64_t[::1] line_start, plan_start, total, line_api, exact, amount, free_left
    cdef const int8_t[::1] official
    cdef const int64_t[:, ::1] numbers, qps
    cdef const int64_t[::1] tier_start, tier_index, tier_calls, tier_amount
    cdef const int64_t[::1] plan_index, plan_used, plan_remaining
    cdef const int64_t[::1] tier_from, tier_to
    cdef Texts head_json, head_text, api_json, api_text, price_json, price_text, tier_label
    cdef Texts plan_json, plan_text, plan_end, headers, adj_json
    cdef bint has_adj

    def __init__(self, cols, Texts head_json, Texts head_text, Texts api_json, Texts api_text,
                 const int64_t[::1] tier_from, const int64_t[::1] tier_to, Texts price_json, Texts price_text,
                 Texts tier_label, Texts plan_json, Texts plan_text, Texts plan_end, Texts headers,
                 Texts adj_json=None):
        self.line_start = cols.line_start
        self.plan_start = cols.plan_start
        self.total = cols.bill_total
        self.official = cols.bill_official
        self.line_api = cols.line_api
        self.numbers = cols.line_numbers
        self.exact = cols.line_exact
        self.amount = cols.line_amount
        self.qps = cols.line_qps
        self.free_left = cols.line_free_left
        self.tier_start = cols.tier_start
        self.tier_index = cols.tier_index
        self.tier_calls = cols.tier_calls
        self.tier_amount = cols.tier_amount
        self.plan_index = cols.plan_index
        self.plan_used = cols.plan_used
        self.plan_remaining = cols.plan_remaining
        self.tier_from = tier_from
        self.tier_to = tier_to
        self.head_json, self.head_text = head_json, head_text
        self.api_json, self.api_text = api_json, api_text
        self.price_json, self.price_text, self.tier_label = price_json, price_text, tier_label
        self.plan_json, self.plan_text, self.plan_end = plan_json, plan_text, plan_end
        self.headers = headers
        self.has_adj = adj_json is not None
        self.adj_json = adj_json if adj_json is not None else headers


cdef inline void text(Buf* b, Texts t, Py_ssize_t i) noexcept nogil:
    piece(b, t.blob, t.off, i)


cdef bytes finish(Buf* b):
    cdef bytes out
    if b.failed:
        free(b.p)
        raise MemoryError("bills: out of memory while formatting")
    if b.p == NULL:
        return b""
    out = PyBytes_FromStringAndSize(b.p, b.n)
    free(b.p)
    return out


# --- bills.json ---------------------------------------------------------------------------------

cdef const char* NUMBER_KEYS[8]
# The count fields of a line, in the order of ``billcols.NUMBERS`` (the columns of line_numbers).
NUMBER_KEYS[:] = [
    ",\n        \"calls\": ", ",\n        \"failed\": ", ",\n        \"rejected\": ", ",\n        \"free\": ",
    ",\n        \"dedicated\": ", ",\n        \"shared_calls\": ", ",\n        \"shared_points\": ",
    ",\n        \"payg\": ",
]


cdef void json_line(Buf* b, Columns c, Py_ssize_t j) noexcept nogil:
    cdef Py_ssize_t t, g, k
    lit(b, "      {\n        \"api\": ")
    text(b, c.api_json, c.line_api[j])
    for k in range(8):
        lit(b, NUMBER_KEYS[k])
        put_int(b, c.numbers[j, k], 0)
    lit(b, ",\n        \"tiers\": [")
    for t in range(c.tier_start[j], c.tier_start[j + 1]):
        g = c.tier_index[t]
        lit(b, ",\n          {\n            \"from\": " if t > c.tier_start[j] else "\n          {\n            \"from\": ")
        put_int(b, c.tier_from[g], 0)
        lit(b, ",\n            \"to\": ")
        if c.tier_to[g] < 0:
            lit(b, "null")
        else:
            put_int(b, c.tier_to[g], 0)
        lit(b, ",\n            \"calls\": ")
        put_int(b, c.tier_calls[t], 0)
        lit(b, ",\n            \"unit_price\": ")
        text(b, c.price_json, g)
        lit(b, ",\n            \"amount\": \"")
        put_amount(b, c.tier_amount[t], 6, 0)
        lit(b, "\"\n          }")
    if c.tier_start[j + 1] > c.tier_start[j]:
        lit(b, "\n        ")
    lit(b, "],\n        \"amount_exact\": \"")
    put_amount(b, c.exact[j], 6, 0)
    lit(b, "\",\n        \"amount\": \"")
    put_amount(b, c.amount[j], 2, 0)
    lit(b, "\",\n        \"qps_peak\": ")
    put_int(b, c.qps[j, 0], 0)
    lit(b, ",\n        \"qps_over_seconds\": ")
    put_int(b, c.qps[j, 1], 0)
    lit(b, "\n      }")


cdef void json_bill(Buf* b, Columns c, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t j, p
    cdef Py_ssize_t l0 = c.line_start[i], l1 = c.line_start[i + 1]
    cdef Py_ssize_t p0 = c.plan_start[i], p1 = c.plan_start[i + 1]
    text(b, c.head_json, i)
    lit(b, "[")
    for j in range(l0, l1):
        lit(b, ",\n" if j > l0 else "\n")
        json_line(b, c, j)
    if l1 > l0:
        lit(b, "\n    ")
    lit(b, "],\n    \"total\": \"")
    put_amount(b, c.total[i], 2, 0)
    lit(b, "\",\n    \"plans\": [")
    for p in range(p0, p1):
        lit(b, ",\n      {\n        \"id\": " if p > p0 else "\n      {\n        \"id\": ")
        text(b, c.plan_json, c.plan_index[p])
        lit(b, ",\n        \"used\": ")
        put_int(b, c.plan_used[p], 0)
        lit(b, ",\n        \"remaining\": ")
        put_int(b, c.plan_remaining[p], 0)
        lit(b, ",\n        \"end\": \"")
        text(b, c.plan_end, c.plan_index[p])
        lit(b, "\"\n      }")
    if p1 > p0:
        lit(b, "\n    ")
    lit(b, "],\n    \"free_remaining\": {")
    if c.official[i]:
        for j in range(l0, l1):
            lit(b, ",\n      " if j > l0 else "\n      ")
            text(b, c.api_json, c.line_api[j])
            lit(b, ": ")
            put_int(b, c.free_left[j], 0)
        if l1 > l0:
            lit(b, "\n    ")
    lit(b, "},\n    \"adjustments\": ")
    if c.has_adj and c.adj_json.off[i + 1] > c.adj_json.off[i]:
        text(b, c.adj_json, i)  # the bill's adjustments, as JSON at this depth (``bills.files``)
    else:
        lit(b, "[]")
    lit(b, "\n  }")


def json_chunk(Columns c, Py_ssize_t lo, Py_ssize_t hi) -> bytes:
    """Bills lo..hi as the items of the top-level JSON list: ``[`` + this + ... + ``\\n]`` (indent 2)."""
    cdef Buf b
    cdef Py_ssize_t i
    b.p, b.n, b.cap, b.failed = NULL, 0, 0, 0
    with nogil:
        for i in range(lo, hi):
            lit(&b, ",\n  " if i > 0 else "\n  ")
            json_bill(&b, c, i)
    return finish(&b)


cdef void dedent(Buf* b) noexcept nogil:
    """Drop the two spaces that follow every newline: a bill at depth 1 of the list becomes a bill at the top
    level (JSON strings hold no raw newline, and every line of a list item is indented by two at least)."""
    cdef Py_ssize_t k = 0, j = 0
    while k < b.n:
        b.p[j] = b.p[k]
        j += 1
        if b.p[k] == 10 and k + 2 < b.n and b.p[k + 1] == 32 and b.p[k + 2] == 32:
            k += 3
        else:
            k += 1
    b.n = j


def json_bills(Columns c, Py_ssize_t lo, Py_ssize_t hi) -> list:
    """Bills lo..hi each as its own JSON text, as ``Bill.to_json()`` (indent 2, the bill at the top level)."""
    cdef Buf b
    cdef Py_ssize_t i
    out = []
    for i in range(lo, hi):
        b.p, b.n, b.cap, b.failed = NULL, 0, 0, 0
        with nogil:
            json_bill(&b, c, i)
            dedent(&b)
        if b.failed:
            free(b.p)
            raise MemoryError("bills: out of memory while formatting")
        try:
            out.append(PyUnicode_DecodeUTF8(b.p, b.n, NULL))
        finally:
            free(b.p)
    return out


# --- bills.txt ----------------------------------------------------------------------------------

cdef inline void cell_left(Buf* b, Texts t, Py_ssize_t i, Py_ssize_t width) noexcept nogil:
    text(b, t, i)
    spaces(b, width - t.chars[i])


cdef inline void cell_right(Buf* b, Texts t, Py_ssize_t i, Py_ssize_t width) noexcept nogil:
    lit(b, "  ")
    spaces(b, width - t.chars[i])
    text(b, t, i)


cdef inline void count_right(Buf* b, int64_t v, Py_ssize_t width) noexcept nogil:
    lit(b, "  ")
    spaces(b, width - int_len(v, 1))
    put_int(b, v, 1)


cdef inline void amount_right(Buf* b, int64_t micro, int places, Py_ssize_t width) noexcept nogil:
    lit(b, "  ")
    spaces(b, width - amount_len(micro, places, 1))
    put_amount(b, micro, places, 1)


cdef inline Py_ssize_t wider(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a > b else b


cdef enum:
    # Cells of ``Columns.headers`` (``billfiles.HEADERS``): the lines table, the tier table, the plans
    # table, the two sum rows of a tier table, and "Total  CNY ".
    LINE_H = 0
    TIER_H = 10
    PLAN_H = 14
    EXACT_ROW = 18
    BILLED_ROW = 19
    TOTAL = 20


cdef void text_tiers(Buf* b, Columns c, Py_ssize_t j) noexcept nogil:
    cdef Py_ssize_t t, g, k
    cdef Py_ssize_t w[4]
    for k in range(4):
        w[k] = c.headers.chars[TIER_H + k]
    w[0] = wider(w[0], wider(c.headers.chars[EXACT_ROW], c.headers.chars[BILLED_ROW]))
    w[3] = wider(w[3], wider(amount_len(c.exact[j], 6, 1), amount_len(c.amount[j], 2, 1)))
    for t in range(c.tier_start[j], c.tier_start[j + 1]):
        g = c.tier_index[t]
        w[0] = wider(w[0], c.tier_label.chars[g])
        w[1] = wider(w[1], int_len(c.tier_calls[t], 1))
        w[2] = wider(w[2], c.price_text.chars[g])
        w[3] = wider(w[3], amount_len(c.tier_amount[t], 6, 1))
    lit(b, "\nPAYG tiers of ")
    text(b, c.api_text, c.line_api[j])
    lit(b, "\n  ")
    cell_left(b, c.headers, TIER_H, w[0])
    for k in range(1, 4):
        cell_right(b, c.headers, TIER_H + k, w[k])
    lit(b, "\n")
    for t in range(c.tier_start[j], c.tier_start[j + 1]):
        g = c.tier_index[t]
        lit(b, "  ")
        cell_left(b, c.tier_label, g, w[0])
        count_right(b, c.tier_calls[t], w[1])
        cell_right(b, c.price_text, g, w[2])
        amount_right(b, c.tier_amount[t], 6, w[3])
        lit(b, "\n")
    lit(b, "  ")
    cell_left(b, c.headers, EXACT_ROW, w[0])
    spaces(b, 2 + w[1] + 2 + w[2])
    amount_right(b, c.exact[j], 6, w[3])
    lit(b, "\n  ")
    cell_left(b, c.headers, BILLED_ROW, w[0])
    spaces(b, 2 + w[1] + 2 + w[2])
    amount_right(b, c.amount[j], 2, w[3])
    lit(b, "\n")


cdef void text_bill(Buf* b, Columns c, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t j, k, p, first
    cdef Py_ssize_t l0 = c.line_start[i], l1 = c.line_start[i + 1]
    cdef Py_ssize_t p0 = c.plan_start[i], p1 = c.plan_start[i + 1]
    cdef Py_ssize_t w[10]
    text(b, c.head_text, i)  # "Bill ...\n\n"
    for k in range(10):
        w[k] = c.headers.chars[LINE_H + k]
    for j in range(l0, l1):
        w[0] = wider(w[0], c.api_text.chars[c.line_api[j]])
        for k in range(8):
            w[k + 1] = wider(w[k + 1], int_len(c.numbers[j, k], 1))
        w[9] = wider(w[9], amount_len(c.amount[j], 2, 1))
    cell_left(b, c.headers, LINE_H, w[0])
    for k in range(1, 10):
        cell_right(b, c.headers, LINE_H + k, w[k])
    lit(b, "\n")
    for j in range(l0, l1):
        cell_left(b, c.api_text, c.line_api[j], w[0])
        for k in range(8):
            count_right(b, c.numbers[j, k], w[k + 1])
        amount_right(b, c.amount[j], 2, w[9])
        lit(b, "\n")
    for j in range(l0, l1):
        if c.tier_start[j + 1] > c.tier_start[j]:
            text_tiers(b, c, j)
    lit(b, "\n")
    text(b, c.headers, TOTAL)
    put_amount(b, c.total[i], 2, 1)
    lit(b, "\n")
    first = 1
    for j in range(l0, l1):
        if c.qps[j, 1]:
            lit(b, "\nQPS over the entitled limit: " if first else ", ")
            first = 0
            text(b, c.api_text, c.line_api[j])
            lit(b, " peak ")
            put_int(b, c.qps[j, 0], 1)
            lit(b, "/s, ")
            put_int(b, c.qps[j, 1], 1)
            lit(b, " s over")
    if not first:
        lit(b, "\n")
    if p1 > p0:
        for k in range(4):
            w[k] = c.headers.chars[PLAN_H + k]
        for p in range(p0, p1):
            w[0] = wider(w[0], c.plan_text.chars[c.plan_index[p]])
            w[1] = wider(w[1], int_len(c.plan_used[p], 1))
            w[2] = wider(w[2], int_len(c.plan_remaining[p], 1))
            w[3] = wider(w[3], c.plan_end.chars[c.plan_index[p]])
        lit(b, "\nResource plans\n  ")
        cell_left(b, c.headers, PLAN_H, w[0])
        for k in range(1, 4):
            cell_right(b, c.headers, PLAN_H + k, w[k])
        lit(b, "\n")
        for p in range(p0, p1):
            lit(b, "  ")
            cell_left(b, c.plan_text, c.plan_index[p], w[0])
            count_right(b, c.plan_used[p], w[1])
            count_right(b, c.plan_remaining[p], w[2])
            cell_right(b, c.plan_end, c.plan_index[p], w[3])
            lit(b, "\n")
    if c.official[i] and l1 > l0:
        lit(b, "\nFree quota left: ")
        for j in range(l0, l1):
            if j > l0:
                lit(b, ", ")
            text(b, c.api_text, c.line_api[j])
            lit(b, " ")
            put_int(b, c.free_left[j], 1)
        lit(b, "\n")


def text_chunk(Columns c, Py_ssize_t lo, Py_ssize_t hi) -> bytes:
    """Statements of bills lo..hi as ``render(bills, "text")`` joins them (a blank line between bills)."""
    cdef Buf b
    cdef Py_ssize_t i
    b.p, b.n, b.cap, b.failed = NULL, 0, 0, 0
    with nogil:
        for i in range(lo, hi):
            if i > 0:
                lit(&b, "\n")
            text_bill(&b, c, i)
    return finish(&b)
