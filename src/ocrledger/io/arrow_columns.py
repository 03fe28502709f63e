"""Vectorised column conversions on Arrow arrays: instants, flags, integers (used by the table readers).

Every function works on one chunk at a time and never loops over rows in Python on the common
path; values Arrow cannot convert fall back to the row-by-row rules of ``clock``/``records`` so the
results (and the error messages) are exactly those of the per-row readers.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import numpy as np

from ..errors import OcrledgerError
from ..model.clock import BillingClock, to_ms

DAY_MS = 86_400_000
_DIGITS = r"^\s*-?\d+\s*$"
_OFFSET = r"(Z|z|[+-]\d\d(:?\d\d)?)\s*$"
_TRUE = ("1", "true", "True", "TRUE")
_FALSE = ("0", "false", "False", "FALSE")

Fail = Callable[[str, int], OcrledgerError]
"""fail(message, index within the chunk) -> the error to raise."""


def pa() -> Any:
    import pyarrow

    return pyarrow


def pc() -> Any:
    import pyarrow.compute

    return pyarrow.compute


def instants(arr: Any, clock: BillingClock, fail: Fail, *, naive_ok: bool, what: str = "instant") -> np.ndarray:
    """Epoch ms (int64) of an Arrow array of instants; nulls must have been rejected before.

    Accepts integers (epoch ms), timestamps (any unit; without a zone read in the billing zone
    when ``naive_ok``), dates (local midnight, ``naive_ok`` only) and text: epoch ms, ISO 8601 with
    an offset, or (``naive_ok``) ISO 8601 without one, read in the billing zone. Empty text "is empty";
    ``what`` names the value in the other messages (as ``BillingClock.instant``).
    """
    pa_ = pa()
    t = arr.type
    if pa_.types.is_dictionary(t):
        arr, t = arr.dictionary_decode(), t.value_type
    if pa_.types.is_integer(t):
        if pa_.types.is_uint64(t):  # past INT64_MAX a cast would raise; it is out of range, said as such
            raw = arr.to_numpy(zero_copy_only=False)
            big = raw > np.uint64(np.iinfo(np.int64).max)
            if big.any():
                i = int(np.argmax(big))
                raise fail(f"{int(raw[i])} ms is outside the supported range 1970..2099 ({clock.tz_name})", i)
        ts = (arr if t == pa_.int64() else arr.cast(pa_.int64())).to_numpy(zero_copy_only=False)
    elif pa_.types.is_timestamp(t):
        unit = {"s": 1000, "ms": 1, "us": -1000, "ns": -1_000_000}[t.unit]
        raw = arr.cast(pa_.int64()).to_numpy(zero_copy_only=False)
        if unit > 0:  # seconds: a value past INT64_MAX / 1000 would wrap when multiplied
            far = (raw > clock.max_ms // unit) | (raw < clock.min_ms // unit - 1)
            if far.any():
                i = int(np.argmax(far))
                raise fail(f"{int(raw[i])} s is outside the supported range 1970..2099 ({clock.tz_name})", i)
        ts = raw * unit if unit > 0 else raw // -unit  # sub-millisecond parts are floored
        if t.tz is None:
            if not naive_ok:
                raise fail("has no UTC offset (a timestamp column without a time zone)", 0)
            ts = localize(ts, clock)
    elif pa_.types.is_date(t):
        if not naive_ok:
            raise fail("has no time and UTC offset (a date column)", 0)
        days = arr.cast(pa_.date32()).cast(pa_.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
        ts = localize(days * DAY_MS, clock)
    elif pa_.types.is_string(t) or pa_.types.is_large_string(t):
        ts = _text_instants(arr, clock, fail, naive_ok, what)
    elif pa_.types.is_floating(t):
        raise fail("is a float; give epoch milliseconds as an integer or ISO 8601", 0)
    else:
        raise fail(f"has type {t}, not an instant", 0)
    bad = (ts < clock.min_ms) | (ts >= clock.max_ms)
    if bad.any():
        i = int(np.argmax(bad))
        if pa_.types.is_string(t) or pa_.types.is_large_string(t):  # the per-row message, which quotes the text
            try:
                clock.instant(arr[i].as_py().strip(), what=what, naive_ok=naive_ok)
            except OcrledgerError as exc:
                raise fail(exc.message, i) from None
        raise fail(f"{int(ts[i])} ms is outside the supported range 1970..2099 ({clock.tz_name})", i)
    return ts.astype(np.int64, copy=False)


def _text_instants(arr: Any, clock: BillingClock, fail: Fail, naive_ok: bool, what: str) -> np.ndarray:
    pa_, pc_ = pa(), pc()
    text = pc_.utf8_trim_whitespace(arr)
    n = len(text)
    empty = is_empty(text)
    if empty.any():
        raise fail("is empty", int(np.argmax(empty)))
    ts = np.zeros(n, dtype=np.int64)
    todo = np.ones(n, dtype=bool)
    digits = pc_.match_substring_regex(text, _DIGITS).to_numpy(zero_copy_only=False)
    if digits.any():
        try:
            ts[digits] = pc_.cast(pc_.filter(text, pa_.array(digits)), pa_.int64()).to_numpy(zero_copy_only=False)
            todo &= ~digits
        except pa_.ArrowInvalid:  # past int64: per-row below, for the exact message
            pass
    offset = pc_.match_substring_regex(text, _OFFSET).to_numpy(zero_copy_only=False) & todo
    if offset.any():
        try:
            parsed = pc_.cast(pc_.filter(text, pa_.array(offset)), pa_.timestamp("ms", tz="UTC"))
            ts[offset] = parsed.cast(pa_.int64()).to_numpy(zero_copy_only=False)
            todo &= ~offset
        except (pa_.ArrowInvalid, pa_.ArrowNotImplementedError):
            pass  # per-row below, for the exact message
    naive = todo & ~offset if naive_ok else np.zeros(n, dtype=bool)
    if naive.any():
        try:
            parsed = pc_.cast(pc_.filter(text, pa_.array(naive)), pa_.timestamp("ms"))
            ts[naive] = localize(parsed.cast(pa_.int64()).to_numpy(zero_copy_only=False), clock)
            todo &= ~naive
        except (pa_.ArrowInvalid, pa_.ArrowNotImplementedError):
            pass
    if todo.any():
        values = text.to_pylist()
        for i in np.flatnonzero(todo).tolist():
            try:
                ts[i] = clock.instant(values[i], what=what, naive_ok=naive_ok)
            except OcrledgerError as exc:
                raise fail(exc.message, i) from None
    return ts


def localize(wall_ms: np.ndarray, clock: BillingClock) -> np.ndarray:
    """Epoch ms of local wall times (ms since 1970-01-01 00:00 on the wall clock) in the billing zone.

    Same answer as ``datetime.replace(tzinfo=zone)`` (fold 0): wall times more than a day away
    from any offset change are shifted in bulk; the few near one are redone in Python so gaps and
    folds match exactly.
    """
    wall_ms = np.asarray(wall_ms, dtype=np.int64)
    trans, offsets = _zone_table(clock.tz_name)
    out = wall_ms - offsets[np.searchsorted(trans, wall_ms, side="right") - 1]
    risky = np.searchsorted(trans, wall_ms - 2 * DAY_MS) != np.searchsorted(trans, wall_ms + 2 * DAY_MS)
    if risky.any():
        from datetime import datetime, timedelta

        for i in np.flatnonzero(risky).tolist():
            wall = datetime(1970, 1, 1) + timedelta(milliseconds=int(wall_ms[i]))
            out[i] = to_ms(wall.replace(tzinfo=clock.tz))
    return out


def wall_clock(ms: np.ndarray, clock: BillingClock) -> np.ndarray:
    """Local wall time (ms since 1970-01-01 00:00 on the wall clock) of epoch-ms instants."""
    ms = np.asarray(ms, dtype=np.int64)
    trans, offsets = _zone_table(clock.tz_name)
    return ms + offsets[np.searchsorted(trans, ms, side="right") - 1]


@lru_cache(maxsize=None)
def _zone_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(instants, UTC offsets in ms): the zone's offset changes between 1969 and 2101, from zoneinfo.

    Found by sampling the offset once a day, then bisecting each change to the millisecond.
    """
    from datetime import datetime
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(name)

    def offset(ms: int) -> int:
        dt = datetime.fromtimestamp(ms // 1000, tz).replace(microsecond=(ms % 1000) * 1000)
        delta = dt.utcoffset()
        return int(delta.total_seconds() * 1000) if delta is not None else 0

    lo, hi = -366 * DAY_MS, (131 * 366) * DAY_MS
    days = range(lo, hi, DAY_MS)
    trans = [lo - 10 * 366 * DAY_MS]
    offsets = [offset(lo)]
    prev_ms, prev = lo, offsets[0]
    for ms in days:
        cur = offset(ms)
        if cur != prev:
            a, b = prev_ms, ms  # offset(a) == prev, offset(b) == cur
            while b - a > 1:
                mid = (a + b) // 2
                if offset(mid) == prev:
                    a = mid
                else:
                    b = mid
            trans.append(b)
            offsets.append(cur)
        prev_ms, prev = ms, cur
    return np.array(trans, dtype=np.int64), np.array(offsets, dtype=np.int64)


def plus_one_year(ms: np.ndarray, clock: BillingClock) -> np.ndarray:
    """Vectorised ``BillingClock.plus_one_year``: same wall time a year later, 29 Feb -> 28 Feb."""
    ms = np.asarray(ms, dtype=np.int64)
    if len(ms) == 0:
        return ms
    wall = wall_clock(ms, clock)
    day = wall // DAY_MS
    time_of_day = wall - day * DAY_MS
    dates = day.astype("datetime64[D]")
    months = dates.astype("datetime64[M]")
    dom = (dates - months).astype(np.int64)  # 0-based day of month
    month0 = months.astype(np.int64) % 12
    leap_day = (month0 == 1) & (dom == 28)
    dom = np.where(leap_day, 27, dom)
    # explicit units: numpy 2.5 deprecates adding plain integers (the 'generic' timedelta unit) to dates
    next_year = (months + np.timedelta64(12, "M")).astype("datetime64[D]")
    later = (next_year + dom.astype("timedelta64[D]")).astype(np.int64)
    return localize(later * DAY_MS + time_of_day, clock)


def flags(arr: Any, fail: Fail) -> np.ndarray:
    """int8 0/1 from booleans, 0/1 integers or text (1/0, true/false)."""
    pa_, pc_ = pa(), pc()
    t = arr.type
    if pa_.types.is_dictionary(t):
        arr, t = arr.dictionary_decode(), t.value_type
    if pa_.types.is_boolean(t):
        return arr.to_numpy(zero_copy_only=False).astype(np.int8)
    if pa_.types.is_integer(t):
        values = arr.to_numpy(zero_copy_only=False)
        bad = (values != 0) & (values != 1)
        if bad.any():
            i = int(np.argmax(bad))
            raise fail(f"must be 1/0 or true/false, not {values[i]!r}", i)
        return values.astype(np.int8)
    if pa_.types.is_string(t) or pa_.types.is_large_string(t):
        text = pc_.utf8_trim_whitespace(arr)
        true = pc_.is_in(text, value_set=pa_.array(_TRUE)).to_numpy(zero_copy_only=False)
        false = pc_.is_in(text, value_set=pa_.array(_FALSE)).to_numpy(zero_copy_only=False)
        bad = ~(true | false)
        if bad.any():
            i = int(np.argmax(bad))
            raise fail(f"must be 1/0 or true/false, not {text[i].as_py()!r}", i)
        return true.astype(np.int8)
    raise fail(f"must be 1/0 or true/false, not a column of type {t}", 0)


def is_empty(arr: Any) -> np.ndarray:
    """bool mask of null or empty strings: an id's emptiness (a whitespace-only id is an id like any other)."""
    pc_ = pc()
    return pc_.fill_null(pc_.equal(pc_.binary_length(arr), 0), True).to_numpy(zero_copy_only=False)


def is_blank(arr: Any) -> np.ndarray:
    """bool mask of null or whitespace-only cells."""
    pa_, pc_ = pa(), pc()
    if pa_.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    null = arr.is_null().to_numpy(zero_copy_only=False)
    if pa_.types.is_string(arr.type) or pa_.types.is_large_string(arr.type):
        empty = pc_.equal(pc_.utf8_trim_whitespace(arr), "").fill_null(True).to_numpy(zero_copy_only=False)
        return null | empty
    return null


def string_buffers(arr: Any) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, uint8 data) of an Arrow string or large_string array, without copying either: int32
    offsets for string, int64 for large_string (the compiled string functions take both)."""
    pa_ = pa()
    off_type = np.int64 if pa_.types.is_large_string(arr.type) else np.int32
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=off_type)[arr.offset: arr.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data
