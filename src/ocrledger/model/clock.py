"""Time: instants as int64 epoch milliseconds, calendar months in the billing time zone, plan years."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from ..errors import OcrledgerError

FIRST_YEAR = 1970
LAST_YEAR = 2100
"""Instants are accepted from 1970-01 up to (not including) 2100-01, in the billing time zone."""
N_PERIODS = (LAST_YEAR - FIRST_YEAR) * 12
"""Periods are month indices: period = (year - 1970) * 12 + month - 1."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


def period_of(year: int, month: int) -> int:
    return (year - FIRST_YEAR) * 12 + month - 1


@lru_cache(maxsize=4096)
def period_label(period: int) -> str:
    """Month index -> ``"YYYY-MM"``."""
    year, month0 = divmod(int(period), 12)
    return f"{year + FIRST_YEAR:04d}-{month0 + 1:02d}"


def parse_period(text: str, *, what: str = "month") -> int:
    """``"YYYY-MM"`` -> month index; raises OcrledgerError naming ``what``."""
    m = _PERIOD.match(text.strip()) if isinstance(text, str) else None
    if m is None or not 1 <= int(m.group(2)) <= 12:
        raise OcrledgerError(f"{what} {text!r} is not of the form YYYY-MM")
    year = int(m.group(1))
    if not FIRST_YEAR <= year < LAST_YEAR:
        raise OcrledgerError(f"{what} {text!r} is outside {FIRST_YEAR}-01..{LAST_YEAR - 1}-12")
    return period_of(year, int(m.group(2)))


HOUR_MS = 3_600_000
YEAR_1000_MS = -30_610_224_000_000
"""1000-01-01T00:00Z: from here numpy's and isoformat's years agree (4 digits)."""
YEAR_9999_MS = 253_370_764_800_000
"""9999-01-01T00:00Z: a zone offset cannot push a label past year 9999 below this."""


def to_ms(dt: datetime) -> int:
    """An aware datetime as epoch milliseconds (exact integer arithmetic, no float)."""
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int, tz: ZoneInfo | timezone = timezone.utc) -> datetime:
    return (_EPOCH + timedelta(milliseconds=int(ms))).astimezone(tz)


@lru_cache(maxsize=None)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True)
class BillingClock:
    """Calendar of one billing time zone: month boundaries and instant parsing."""

    tz_name: str
    month_starts: np.ndarray = field(repr=False, compare=False)
    """int64[N_PERIODS + 1]: epoch ms of local midnight on the 1st of each month (last = 2100-01)."""

    @classmethod
    def for_zone(cls, name: str) -> "BillingClock":
        return _clock(name)

    @property
    def tz(self) -> ZoneInfo:
        return _zone(self.tz_name)

    @property
    def min_ms(self) -> int:
        return int(self.month_starts[0])

    @property
    def max_ms(self) -> int:
        """First instant that is no longer accepted (2100-01-01 local midnight)."""
        return int(self.month_starts[-1])

    def periods(self, ts: np.ndarray) -> np.ndarray:
        """Month index (int32) of each epoch-ms instant; instants must be in range."""
        return (np.searchsorted(self.month_starts, ts, side="right") - 1).astype(np.int32)

    def period(self, ms: int) -> int:
        return int(np.searchsorted(self.month_starts, ms, side="right") - 1)

    def check_range(self, ms: int, *, what: str) -> int:
        if not self.min_ms <= ms < self.max_ms:
            raise OcrledgerError(
                f"{what} {self.label(ms)} is outside the supported range "
                f"{FIRST_YEAR}-01-01..{LAST_YEAR - 1}-12-31 ({self.tz_name})"
            )
        return ms

    def label(self, ms: int) -> str:
        """An instant as ISO 8601 in the billing zone, to the second (milliseconds if any)."""
        try:
            dt = from_ms(ms, self.tz)
        except (OverflowError, ValueError):
            return f"{ms} ms"
        return dt.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")

    def labels(self, ms: np.ndarray) -> list[str]:
        """``label`` of many instants: the zone's UTC offset is looked up once per hour, and an hour
        in which the offset changes, or an instant outside 1000..9998, takes ``label`` itself."""
        ms = np.asarray(ms, dtype=np.int64)
        hour = ms // HOUR_MS
        safe = (ms > YEAR_1000_MS) & (ms < YEAR_9999_MS)
        hours = np.unique(hour[safe])
        if not len(hours):
            return [self.label(t) for t in ms.tolist()]
        tz = self.tz
        offsets: list[int] = []
        steady: list[bool] = []
        suffixes: dict[int, str] = {}
        for h in hours.tolist():  # zone transitions fall on whole seconds
            first = datetime.fromtimestamp(h * 3600, tz)
            off = first.utcoffset()
            assert off is not None
            ms_off = (off.days * 86_400 + off.seconds) * 1000 + off.microseconds // 1000
            offsets.append(ms_off)
            steady.append(off == datetime.fromtimestamp(h * 3600 + 3599, tz).utcoffset())
            if ms_off not in suffixes:
                suffixes[ms_off] = first.isoformat()[19:]  # "+08:00"
        at = np.minimum(np.searchsorted(hours, hour), len(hours) - 1)
        offset = np.array(offsets, dtype=np.int64)[at]
        local = (ms + offset).astype("datetime64[ms]")
        whole = ms % 1000 == 0
        text = np.empty(len(ms), dtype=object)
        text[whole] = np.datetime_as_string(local[whole], unit="s")
        text[~whole] = np.datetime_as_string(local[~whole], unit="ms")
        out = [t + suffixes.get(o, "") for t, o in zip(text.tolist(), offset.tolist())]
        for k in np.flatnonzero(~(safe & np.array(steady, dtype=bool)[at])).tolist():
            out[k] = self.label(int(ms[k]))
        return out

    def instant(self, value: object, *, what: str, naive_ok: bool = True) -> int:
        """Parse an instant: epoch ms (int), ISO 8601 text, TOML date/datetime.

        Text or datetimes without an offset are read in the billing zone when ``naive_ok``; a
        bare date means local midnight. The result must lie in the supported range.
        """
        if isinstance(value, bool):
            raise OcrledgerError(f"{what} must be an instant, not a boolean")
        if isinstance(value, int):
            return self.check_range(value, what=what)
        if isinstance(value, str):
            text = value.strip()
            if re.fullmatch(r"-?\d+", text):
                return self.check_range(int(text), what=what)
            try:
                value = datetime.fromisoformat(text) if "T" in text or " " in text else date.fromisoformat(text)
            except ValueError:
                raise OcrledgerError(f"{what} {text!r} is not an ISO 8601 instant or epoch milliseconds") from None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                if not naive_ok:
                    raise OcrledgerError(f"{what} {value.isoformat()!r} has no UTC offset")
                value = value.replace(tzinfo=self.tz)
            try:
                return self.check_range(to_ms(value), what=what)
            except OverflowError:
                raise OcrledgerError(f"{what} {value.isoformat()!r} is out of range") from None
        if isinstance(value, date):
            if not naive_ok:
                raise OcrledgerError(f"{what} {value.isoformat()!r} has no time and UTC offset")
            local = datetime(value.year, value.month, value.day, tzinfo=self.tz)
            return self.check_range(to_ms(local), what=what)
        raise OcrledgerError(f"{what} {value!r} is not an instant")

    def plus_one_year(self, ms: int) -> int:
        """Same local wall time one calendar year later; 29 February maps to 28 February."""
        local = from_ms(ms, self.tz)
        day = local.day
        if local.month == 2 and day == 29:
            day = 28
        later = local.replace(year=local.year + 1, day=day, tzinfo=None).replace(tzinfo=self.tz)
        return to_ms(later)


@lru_cache(maxsize=None)
def _clock(name: str) -> BillingClock:
    try:
        tz = _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise OcrledgerError(f"unknown time zone {name!r}") from None
    starts = np.empty(N_PERIODS + 1, dtype=np.int64)
    for k in range(N_PERIODS + 1):
        year, month0 = divmod(k, 12)
        starts[k] = to_ms(datetime(year + FIRST_YEAR, month0 + 1, 1, tzinfo=tz))
    starts.setflags(write=False)
    return BillingClock(name, starts)
