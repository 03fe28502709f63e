"""The catalog: APIs, their free quota, shared points and PAYG tiers; loading and validating its TOML."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import CatalogError, OcrledgerError
from .clock import BillingClock
from .money import INT64_MAX, ROUNDING_MODES, format_price, parse_amount
from .tomlfile import read_toml

RECOGNITION = "recognition"
VERIFICATION = "verification"
GRADUATED = "graduated"
VOLUME = "volume"

_CATALOG_KEYS = {"currency", "timezone", "verification_free_total", "rounding", "api", "plan_offer"}
_OFFER_KEYS = {"name", "kind", "api", "apis", "quantity", "price", "validity"}
_API_KEYS = {
    "code", "name", "kind", "free_monthly", "shared_points", "dedicated", "shared", "qps",
    "tier_mode", "tiers", "rounding",
}


@dataclass(frozen=True)
class Tier:
    """One PAYG price tier: positions up to ``upto`` (inclusive; None = open) at ``price`` micro-units."""

    upto: int | None
    price: int


@dataclass(frozen=True)
class Api:
    """One API of the catalog (``[[api]]``): its code, kind, free quota, plan rules, QPS and PAYG tiers."""

    code: str
    name: str
    kind: str = RECOGNITION
    free_monthly: int = 200
    shared_points: int = 1
    dedicated: bool = True
    shared: bool = True
    qps: int = 10
    tier_mode: str = GRADUATED
    tiers: tuple[Tier, ...] = (Tier(None, 0),)
    rounding: str = "down"

    def tier_from(self, index: int) -> int:
        """First PAYG position of tier ``index`` (1-based positions)."""
        return 1 if index == 0 else (self.tiers[index - 1].upto or 0) + 1


@dataclass(frozen=True)
class PlanOffer:
    """A resource plan the provider sells (``[[plan_offer]]``): what the plan advisor may buy.

    ``quantity`` is calls (dedicated) or points (shared); ``price`` is micro-units; a plan bought
    at ``t`` pays for calls in ``[t, t + validity_months)``.
    """

    name: str
    kind: str
    """'dedicated' or 'shared' (the same words as an accounts file's [[plan]])."""
    apis: tuple[str, ...]
    """The one API of a dedicated offer, or every API a shared offer pays for."""
    quantity: int
    price: int
    validity_months: int = 12
    apis_given: bool = field(default=True, compare=False, repr=False)
    """False when a shared offer named no ``apis`` (it then pays for every API that takes shared plans)."""

    def to_dict(self) -> dict[str, Any]:
        """The ``[[plan_offer]]`` table that parses back to this offer."""
        data: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == OFFER_DEDICATED:
            data["api"] = self.apis[0]
        elif self.apis_given:
            data["apis"] = list(self.apis)
        data["quantity"] = self.quantity
        data["price"] = format_price(self.price)
        data["validity"] = f"{self.validity_months // 12}y" if self.validity_months % 12 == 0 else f"{self.validity_months}m"
        return data


OFFER_DEDICATED = "dedicated"
OFFER_SHARED = "shared"


@dataclass(frozen=True)
class Catalog:
    """A validated catalog: the APIs and their prices, the currency, the billing time zone, the plan offers.

    Made by ``load_catalog``, ``parse_catalog`` or ``default_catalog``; immutable.
    """

    apis: tuple[Api, ...]
    currency: str = "CNY"
    timezone: str = "Asia/Shanghai"
    verification_free_total: int = 50
    source: str = "<catalog>"
    plan_offers: tuple[PlanOffer, ...] = ()
    """Resource plans on sale (``[[plan_offer]]``), in file order; used only by the plan advisor."""
    index: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {api.code: i for i, api in enumerate(self.apis)})

    @property
    def clock(self) -> BillingClock:
        """The calendar of the catalog's time zone: months, plan years, the supported range of instants."""
        return BillingClock.for_zone(self.timezone)

    def api(self, code: str) -> Api:
        """The API with this code; ``KeyError`` if the catalog has none."""
        return self.apis[self.index[code]]

    @property
    def plan_offers_raw(self) -> list[dict[str, Any]]:
        """The plan offers as ``[[plan_offer]]`` tables (what ``parse_catalog`` reads back)."""
        return [offer.to_dict() for offer in self.plan_offers]

    def arrays(self) -> dict[str, np.ndarray]:
        """The dense per-API arrays the kernel reads (see ``kernel.contract.KernelTables``)."""
        n = len(self.apis)
        offsets = np.zeros(n + 1, dtype=np.int32)
        for i, api in enumerate(self.apis):
            offsets[i + 1] = offsets[i] + len(api.tiers)
        upto = np.array(
            [t.upto if t.upto is not None else INT64_MAX for a in self.apis for t in a.tiers], dtype=np.int64
        )
        price = np.array([t.price for a in self.apis for t in a.tiers], dtype=np.int64)
        return {
            "api_kind": np.array([a.kind == VERIFICATION for a in self.apis], dtype=np.int8),
            "api_free": np.array([a.free_monthly for a in self.apis], dtype=np.int64),
            "api_points": np.array([a.shared_points for a in self.apis], dtype=np.int64),
            "api_dedicated": np.array([a.dedicated for a in self.apis], dtype=np.int8),
            "api_shared": np.array([a.shared for a in self.apis], dtype=np.int8),
            "api_volume": np.array([a.tier_mode == VOLUME for a in self.apis], dtype=np.int8),
            "tier_offset": offsets,
            "tier_upto": upto,
            "tier_price": price,
        }


def default_catalog() -> Catalog:
    """The bundled Alibaba Cloud OCR catalog (public list prices)."""
    text = resources.files("ocrledger").joinpath("data/default_catalog.toml").read_text("utf-8")
    return parse_catalog(tomllib.loads(text), source="<default catalog>")


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and validate a catalog TOML file; ``None`` gives the default catalog."""
    if path is None:
        return default_catalog()
    return parse_catalog(read_toml(path, CatalogError), source=str(path))


def parse_catalog(data: Mapping[str, Any], *, source: str = "<catalog>") -> Catalog:
    """Validate a catalog given as the dict TOML parses to."""

    def fail(message: str, field_: str | None = None) -> CatalogError:
        return CatalogError(message, file=source, field=field_)

    unknown = set(data) - _CATALOG_KEYS
    if unknown:
        raise fail(f"unknown key(s) {', '.join(sorted(unknown))}")
    currency = _string(data.get("currency", "CNY"), "currency", fail)
    tz = _string(data.get("timezone", "Asia/Shanghai"), "timezone", fail)
    try:
        BillingClock.for_zone(tz)
    except OcrledgerError as exc:
        raise fail(exc.message, "timezone") from None
    pool = _count(data.get("verification_free_total", 50), "verification_free_total", fail)
    rounding = _rounding(data.get("rounding", "down"), "rounding", fail)
    raw_apis = data.get("api")
    if not isinstance(raw_apis, list) or not raw_apis:
        raise fail("the catalog lists no [[api]]", "api")
    apis = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_apis):
        api = _parse_api(raw, i, rounding, fail)
        if api.code in seen:
            raise fail(f"API code {api.code!r} is listed twice", f"api[{i}].code")
        seen.add(api.code)
        apis.append(api)
    offers = _parse_offers(data.get("plan_offer", []), {a.code: a for a in apis}, fail)
    return Catalog(tuple(apis), currency, tz, pool, source, offers)


def _parse_offers(raw: Any, apis: Mapping[str, Api], fail: Any) -> tuple[PlanOffer, ...]:
    """Validate ``[[plan_offer]]`` tables: kind, api (dedicated) or apis (shared), quantity, price, validity."""
    if not isinstance(raw, list):
        raise fail("must be an array of tables ([[plan_offer]])", "plan_offer")
    offers: list[PlanOffer] = []
    seen: dict[tuple[str, tuple[str, ...], int], int] = {}
    for i, item in enumerate(raw):
        where = f"plan_offer[{i}]"
        _table(item, where, _OFFER_KEYS, fail)
        kind = item.get("kind")
        quantity = _count(item.get("quantity"), f"{where}.quantity", fail)
        if quantity < 1:
            raise fail("must be at least 1", f"{where}.quantity")
        given = True
        if kind == OFFER_DEDICATED:
            if "apis" in item:
                raise fail("a dedicated offer names one 'api', not 'apis'", f"{where}.apis")
            code = _string(item.get("api"), f"{where}.api", fail)
            if code not in apis:
                raise fail(f"API {code!r} is not in the catalog", f"{where}.api")
            if not apis[code].dedicated:
                raise fail(f"API {code!r} does not accept dedicated plans", f"{where}.api")
            covered: tuple[str, ...] = (code,)
        elif kind == OFFER_SHARED:
            if "api" in item:
                raise fail("a shared offer names 'apis' (a list), not 'api'", f"{where}.api")
            listed = item.get("apis")
            if listed is None:
                given = False
                covered = tuple(code for code, a in apis.items() if a.shared)
                if not covered:
                    raise fail("no API of the catalog accepts shared plans", where)
            else:
                if not isinstance(listed, list) or not listed:
                    raise fail("must be a non-empty list of API codes", f"{where}.apis")
                for code in listed:
                    if not isinstance(code, str) or code not in apis:
                        raise fail(f"API {code!r} is not in the catalog", f"{where}.apis")
                    if not apis[code].shared:
                        raise fail(f"API {code!r} does not accept shared plans", f"{where}.apis")
                if len(set(listed)) != len(listed):
                    raise fail("lists an API twice", f"{where}.apis")
                # Catalog order, so two offers over the same APIs compare equal whatever their listing order.
                covered = tuple(code for code in apis if code in set(listed))
        else:
            raise fail(f"kind must be 'dedicated' or 'shared', not {kind!r}", f"{where}.kind")
        if "price" not in item:
            raise fail("is required", f"{where}.price")
        try:
            price = parse_amount(item["price"], what="price")
        except OcrledgerError as exc:
            raise fail(exc.message, f"{where}.price") from None
        months = _validity(item.get("validity", "1y"), f"{where}.validity", fail)
        unit = "calls" if kind == OFFER_DEDICATED else "points"
        default_name = f"{kind} {covered[0] + ' ' if kind == OFFER_DEDICATED else ''}{quantity:,} {unit}"
        name = _string(item.get("name", default_name), f"{where}.name", fail)
        key = (kind, covered, quantity)
        if key in seen:
            raise fail(f"offers the same plan as plan_offer[{seen[key]}] (kind, APIs and quantity)", where)
        seen[key] = i
        offers.append(PlanOffer(name, kind, covered, quantity, price, months, given))
    return tuple(offers)


def _validity(value: Any, where: str, fail: Any) -> int:
    """``"1y"``, ``"6m"`` (or an integer count of months) -> months, at least 1."""
    if isinstance(value, int) and not isinstance(value, bool):
        months = value
    elif isinstance(value, str) and value.strip()[:-1].isdigit() and value.strip()[-1:] in ("y", "m"):
        text = value.strip()
        months = int(text[:-1]) * (12 if text[-1] == "y" else 1)
    else:
        raise fail(f"must be a duration such as \"1y\" or \"6m\", not {value!r}", where)
    if not 1 <= months <= 120:
        raise fail(f"must be between 1 month and 10 years, not {value!r}", where)
    return months


def _parse_api(raw: Any, i: int, rounding: str, fail: Any) -> Api:
    where = f"api[{i}]"
    _table(raw, where, _API_KEYS, fail)
    code = _string(raw.get("code"), f"{where}.code", fail)
    where = f"api {code}"
    kind = raw.get("kind", RECOGNITION)
    if kind not in (RECOGNITION, VERIFICATION):
        raise fail(f"kind must be 'recognition' or 'verification', not {kind!r}", f"{where}.kind")
    mode = raw.get("tier_mode", GRADUATED)
    if mode not in (GRADUATED, VOLUME):
        raise fail(f"tier_mode must be 'graduated' or 'volume', not {mode!r}", f"{where}.tier_mode")
    points = _count(raw.get("shared_points", 1), f"{where}.shared_points", fail)
    if points < 1:
        raise fail("shared_points must be at least 1", f"{where}.shared_points")
    qps = _count(raw.get("qps", 10), f"{where}.qps", fail)
    return Api(
        code=code,
        name=_string(raw.get("name", code), f"{where}.name", fail),
        kind=kind,
        free_monthly=_count(raw.get("free_monthly", 200), f"{where}.free_monthly", fail),
        shared_points=points,
        dedicated=_flag(raw.get("dedicated", True), f"{where}.dedicated", fail),
        shared=_flag(raw.get("shared", True), f"{where}.shared", fail),
        qps=qps,
        tier_mode=mode,
        tiers=_parse_tiers(raw.get("tiers"), f"{where}.tiers", fail),
        rounding=_rounding(raw.get("rounding", rounding), f"{where}.rounding", fail),
    )


def _parse_tiers(raw: Any, where: str, fail: Any) -> tuple[Tier, ...]:
    if not isinstance(raw, list) or not raw:
        raise fail("must be a non-empty list of {upto = N, price = \"0.0825\"}", where)
    tiers = []
    last = 0
    for j, item in enumerate(raw):
        at = f"{where}[{j}]"
        if not isinstance(item, dict) or set(item) - {"upto", "price"} or "price" not in item:
            raise fail("each tier is {upto = N, price = \"…\"} (upto omitted on the last)", at)
        try:
            price = parse_amount(item["price"], what="price")
        except OcrledgerError as exc:
            raise fail(exc.message, f"{at}.price") from None
        upto = item.get("upto")
        if upto is None:
            if j != len(raw) - 1:
                raise fail("only the last tier may be open (no upto)", at)
        else:
            upto = _count(upto, f"{at}.upto", fail)
            if upto <= last:
                raise fail(f"upto {upto} must be greater than the previous bound {last}", f"{at}.upto")
            last = upto
        tiers.append(Tier(upto, price))
    if tiers[-1].upto is not None:
        raise fail("the tier table does not end with an open tier (a last tier without upto)", where)
    return tuple(tiers)


def _table(value: Any, where: str, keys: set[str], fail: Any) -> None:
    """A TOML table with no keys but ``keys`` (a typo is an error, not a silent default)."""
    if not isinstance(value, dict):
        raise fail("must be a table", where)
    unknown = set(value) - keys
    if unknown:
        raise fail(f"unknown key(s) {', '.join(sorted(unknown))}", where)


def _string(value: Any, where: str, fail: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail("must be a non-empty string", where)
    return value


def _count(value: Any, where: str, fail: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > INT64_MAX:
        raise fail(f"must be a non-negative integer, not {value!r}", where)
    return value


def _flag(value: Any, where: str, fail: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(f"must be true or false, not {value!r}", where)
    return value


def _rounding(value: Any, where: str, fail: Any) -> str:
    if not isinstance(value, str) or value not in ROUNDING_MODES:
        raise fail(f"must be one of {', '.join(ROUNDING_MODES)}, not {value!r}", where)
    return str(value)
