"""Hypothesis strategies: small random rating scenarios, ready for ``rate()``.

``scenarios()`` draws a ``Scenario`` (a named tuple, so ``catalog, accounts, calls = scenario``
works): a catalog of 1-4 APIs with tiny tier widths (1-5 calls, so tier bounds are reached), free
quotas of 0-5 and a small verification pool; accounts on both channels with activations (some
after the calls start) and 0-5 dedicated or shared plans (some refunded, some ending together);
0-80 call records over a three-month window, with failures, repeated record ids and unknown
accounts. Instants are drawn mostly from "landmarks" (month starts, activations, plan starts,
ends and refunds, each also 1 ms early), so the boundaries the rules hinge on are hit often.

The pieces (``catalogs()``, ``accounts_for()``, ``call_columns()``, ``Window``) are exported for
invariant tests that vary one of them. Strategies are built once at import and choices among
per-example lists are drawn as indices (``_pick``): building strategies inside a composite costs
more than the rating itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, Sequence, TypeVar

import numpy as np
from helpers import build_tables
from hypothesis import strategies as st

from ocrledger.engine.encode import encode, party_list
from ocrledger.io.calls import read_calls
from ocrledger.kernel.contract import Batch, KernelTables
from ocrledger.model.accounts import Accounts, parse_accounts
from ocrledger.model.catalog import Catalog, parse_catalog
from ocrledger.model.clock import BillingClock, period_of

T = TypeVar("T")

ZONES = ("Asia/Shanghai", "Asia/Shanghai", "America/New_York", "UTC")
"""Billing time zones drawn (Shanghai, the default, twice as often; New York has DST)."""
FIRST_MONTHS = ((2026, 10), (2026, 12), (2028, 1))
"""First month of the three-month window: plain; across a year end; through 29 February 2028."""
WINDOW_MONTHS = 3
DAY_MS = 86_400_000
OFFICIAL_IDS = ("a", "b")
MARKETPLACE_IDS = ("a", "m")
UNKNOWN_PARTIES = (("ghost", "official"), ("ghost", "marketplace"), ("m", "official"))
"""(account, channel) pairs that no accounts file lists: their calls are rejected."""
PRICES = ("0", "0.0825", "0.0495", "0.009", "0.225", "1", "0.005", "2.5")
ROUNDING = ("down", "half_up", "half_even", "up")
PLAN_ID_ALPHABET = "abAB1-\u00e9"
"""Plan ids mix case, digits and a non-ASCII letter, so ties are broken by byte order."""
PLAN_ID = st.text(alphabet=PLAN_ID_ALPHABET, min_size=1, max_size=3)


class Scenario(NamedTuple):
    catalog: Catalog
    accounts: Accounts
    calls: dict[str, np.ndarray]


@dataclass(frozen=True)
class Window:
    """The calendar months a scenario lives in (billing zone), as epoch-ms bounds."""

    clock: BillingClock
    start: int
    end: int  # exclusive
    month_starts: tuple[int, ...]  # start of each month in the window, then ``end``

    @classmethod
    def of(cls, zone: str, year: int, month: int, months: int = WINDOW_MONTHS) -> "Window":
        clock = BillingClock.for_zone(zone)
        first = period_of(year, month)
        starts = tuple(int(clock.month_starts[first + k]) for k in range(months + 1))
        return cls(clock, starts[0], starts[-1], starts)

    def landmarks(self) -> list[int]:
        """Month starts inside the window, its first and its last instant."""
        return [*self.month_starts[:-1], self.end - 1]


# ---------------------------------------------------------------- building blocks (built once)

_D3 = st.integers(0, 2)
_D4 = st.integers(0, 3)
_D6 = st.integers(0, 5)
_BOOL = st.booleans()
_OFFSET = st.binary(min_size=8, max_size=8).map(lambda b: int.from_bytes(b, "little"))
"""A uniform 64-bit number (hypothesis draws wide integers mostly small; bytes come out uniform)."""


@lru_cache(maxsize=None)
def _below(n: int) -> st.SearchStrategy[int]:
    """0..n-1, one strategy per n (a new strategy per draw would be validated every time)."""
    return st.integers(0, n - 1)


def _micro_text(micro: int) -> str:
    return f"{micro // 1_000_000}.{micro % 1_000_000:06d}"


PRICE = st.one_of(st.sampled_from(PRICES), st.integers(0, 3_000_000).map(_micro_text))
"""A decimal price string: list-like ones, or any with 6 places."""


def _tiers(parts: tuple[list[tuple[int, str]], str]) -> list[dict[str, Any]]:
    bounded, last = parts
    tiers, bound = [], 0
    for width, price in bounded:
        bound += width
        tiers.append({"upto": bound, "price": price})
    return [*tiers, {"price": last}]


TIERS = st.tuples(st.lists(st.tuples(st.integers(1, 5), PRICE), max_size=3), PRICE).map(_tiers)
"""1-4 tiers, each bounded one 1-5 calls wide, ending with an open tier."""

API_FIELDS = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(("recognition", "recognition", "verification")),
        "free_monthly": st.integers(0, 5),
        "shared_points": st.integers(1, 4),
        "dedicated": _BOOL,
        "shared": _BOOL,
        "tier_mode": st.sampled_from(("graduated", "graduated", "volume")),
        "tiers": TIERS,
    },
    optional={"rounding": st.sampled_from(ROUNDING)},
)
"""One [[api]] table without its code."""


def _catalog(fields: dict[str, Any]) -> Catalog:
    apis = [{"code": f"A{i}", **api} for i, api in enumerate(fields.pop("api"))]
    return parse_catalog({"currency": "CNY", **fields, "api": apis}, source="<hypothesis catalog>")


def catalogs(zone: str | None = None) -> st.SearchStrategy[Catalog]:
    """A catalog of 1-4 APIs (codes A0..A3) in ``zone`` (default: one of ZONES)."""
    return st.fixed_dictionaries(
        {
            "timezone": st.just(zone) if zone is not None else st.sampled_from(ZONES),
            "verification_free_total": st.integers(0, 6),
            "rounding": st.sampled_from(ROUNDING),
            "api": st.lists(API_FIELDS, min_size=1, max_size=4),
        }
    ).map(_catalog)


_ROW = st.binary(min_size=16, max_size=16).map(lambda b: int.from_bytes(b, "little"))


class _Digits:
    """Mixed-radix digits of one drawn integer: many small choices for the price of one draw.

    A smaller integer gives smaller digits, so shrinking a row simplifies all of its choices.
    """

    def __init__(self, value: int) -> None:
        self.value = value

    def take(self, n: int) -> int:
        self.value, digit = divmod(self.value, n)
        return digit


def _pick(draw: st.DrawFn, items: Sequence[T]) -> T:
    """One of ``items`` (non-empty), drawn as an index: shrinks towards the first."""
    return items[draw(_below(len(items)))]


def _instant(draw: st.DrawFn, window: Window, landmarks: Sequence[int]) -> int:
    """An instant in the window: two times in three a landmark or 1 ms before one, else anywhere."""
    if draw(_D3) < 2:
        t = _pick(draw, landmarks) - draw(_D3) % 2
        if window.start <= t < window.end:
            return t
    return window.start + draw(_OFFSET) % (window.end - window.start)


# ---------------------------------------------------------------- accounts


@st.composite
def accounts_for(draw: st.DrawFn, catalog: Catalog, window: Window, landmarks: list[int]) -> Accounts:
    """1-2 official and 0-2 marketplace accounts, activations and 0-5 plans, valid for ``catalog``.

    Official APIs are activated before the window (most), inside it, or never. Plans start before
    or inside the window; they end after one year (the default, given or not), a random time
    later, or when an earlier plan ends; one in four is refunded. Appends the instants it draws
    to ``landmarks``.
    """
    codes = [a.code for a in catalog.apis]
    before = window.start - DAY_MS
    official = draw(st.lists(st.sampled_from(OFFICIAL_IDS), unique=True, min_size=1, max_size=2))
    market = draw(st.lists(st.sampled_from(MARKETPLACE_IDS), unique=True, max_size=2))
    tables: list[dict[str, Any]] = []
    for ident in official:
        activated = {}
        for code in codes:
            choice = draw(_D6)
            if choice == 0:
                continue  # never activated: every call to it is rejected
            activated[code] = before if choice <= 3 else _instant(draw, window, landmarks)
            landmarks.append(activated[code])
        tables.append({"id": ident, "channel": "official", "activated": activated})
    tables += [{"id": ident, "channel": "marketplace"} for ident in market]
    parties = [(t["id"], t["channel"]) for t in tables]

    kinds = (["dedicated"] if any(a.dedicated for a in catalog.apis) else []) + (
        ["shared"] if any(a.shared for a in catalog.apis) else [])
    ded_ok = [a.code for a in catalog.apis if a.dedicated]
    sh_ok = [a.code for a in catalog.apis if a.shared]
    ids: list[str] = []
    for _ in range(draw(_D6)):
        pid = draw(PLAN_ID)
        ids.append(pid if pid not in ids else f"{pid}{len(ids)}")  # unique without rejection sampling
    plans: list[dict[str, Any]] = []
    ends: list[int] = []
    for pid in ids if kinds else []:
        account, channel = _pick(draw, parties)
        kind = _pick(draw, kinds)
        plan: dict[str, Any] = {"id": pid, "account": account, "channel": channel, "kind": kind}
        if kind == "dedicated":
            plan["api"] = _pick(draw, ded_ok)
            plan["quantity"] = 1 + draw(_D6)
        else:
            if draw(_BOOL):  # else: every API that accepts shared plans
                chosen = {_pick(draw, sh_ok) for _ in range(1 + draw(_D3))}
                plan["apis"] = [c for c in sh_ok if c in chosen]
            plan["quantity"] = 1 + draw(_below(16))
        start = before if draw(_D4) == 0 else _instant(draw, window, landmarks)
        later = [e for e in ends if e > start]
        how = draw(_D4)
        if how == 1 and later:
            end = _pick(draw, later)  # the same end as an earlier plan: a tie to break
        elif how >= 2:
            end = start + 1 + draw(_OFFSET) % (40 * DAY_MS)
        else:
            end = window.clock.plus_one_year(start)
        plan["start"] = start
        if how != 0 or draw(_BOOL):  # the one-year default is sometimes left implicit
            plan["end"] = end
        ends.append(end)
        landmarks += [start, end]
        if draw(_D4) == 0:
            plan["refunded"] = start + draw(_OFFSET) % (50 * DAY_MS)
            landmarks.append(plan["refunded"])
        plans.append(plan)
    return parse_accounts({"account": tables, "plan": plans}, catalog, source="<hypothesis accounts>")


# ---------------------------------------------------------------- calls


@st.composite
def call_columns(
    draw: st.DrawFn, catalog: Catalog, accounts: Accounts, window: Window, landmarks: Sequence[int],
    max_calls: int = 80,
) -> dict[str, np.ndarray]:
    """0-``max_calls`` call records as columns (record_id, account, channel, api, ts, success).

    Listed parties are called about seven times as often as unknown ones; 10% of calls fail;
    one record in twelve repeats an earlier record's id (a duplicate if on the same channel).
    """
    n = draw(_below(max_calls + 1))
    weighted = list(accounts.parties()) * 7 + list(UNKNOWN_PARTIES)
    codes = [a.code for a in catalog.apis]
    near = sorted({t - d for t in landmarks for d in (0, 1) if window.start <= t - d < window.end})
    span = window.end - window.start
    cols: dict[str, list[Any]] = {k: [] for k in ("record_id", "account", "channel", "api", "ts", "success")}
    for k in range(n):
        row = _Digits(draw(_ROW))  # one draw per row: all of its small choices
        account, channel = weighted[row.take(len(weighted))]
        repeat, other = row.take(12) == 11, row.take(max(k, 1))
        cols["record_id"].append(f"r{other}" if k and repeat else f"r{k}")
        cols["account"].append(account)
        cols["channel"].append(channel)
        cols["api"].append(codes[row.take(len(codes))])
        at_landmark = row.take(3) < 2 and near
        cols["ts"].append(near[row.take(len(near))] if at_landmark else window.start + row.take(span))
        cols["success"].append(0 if row.take(10) == 9 else 1)
    return {
        "record_id": np.array(cols["record_id"], dtype=str),
        "account": np.array(cols["account"], dtype=str),
        "channel": np.array(cols["channel"], dtype=str),
        "api": np.array(cols["api"], dtype=str),
        "ts": np.array(cols["ts"], dtype=np.int64),
        "success": np.array(cols["success"], dtype=np.int8),
    }


@st.composite
def scenarios(draw: st.DrawFn, max_calls: int = 80) -> Scenario:
    """A whole random scenario: (catalog, accounts, calls) for ``rate()``."""
    catalog = draw(catalogs())
    year, month = draw(st.sampled_from(FIRST_MONTHS))
    window = Window.of(catalog.timezone, year, month)
    landmarks = window.landmarks()
    accounts = draw(accounts_for(catalog, window, landmarks))
    calls = draw(call_columns(catalog, accounts, window, landmarks, max_calls))
    return Scenario(catalog, accounts, calls)


def cut_points(n: int) -> st.SearchStrategy[list[int]]:
    """0-6 sorted cut positions in 0..n (repeats allowed: empty batches) to split n calls."""
    return st.lists(st.integers(0, n), max_size=6).map(sorted)


def kernel_inputs(s: Scenario) -> tuple[KernelTables, np.ndarray, Batch]:
    """What the kernel takes for a scenario: its tables, the plans' quantities, the encoded batch."""
    table = read_calls(s.calls, s.catalog)
    parties = party_list(s.accounts.parties(), table)
    tables, plans = build_tables(s.catalog, s.accounts, parties)
    batch = encode(table, parties, s.catalog.clock).batch
    return tables, np.array([p.quantity for p in plans], dtype=np.int64), batch
