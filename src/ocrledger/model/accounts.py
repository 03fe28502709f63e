"""Accounts: everything an accounts file or folder lists (``Accounts``), and the accounts TOML read into it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..errors import AccountsError, OcrledgerError
from .account_columns import AccountColumns
from .account_entries import (
    ALERT_KINDS,
    CHANNELS,
    DEDICATED,
    MARKETPLACE,
    OFFICIAL,
    SHARED,
    Account,
    Alert,
    Credential,
    Plan,
    QpsAddon,
)
from .catalog import Catalog
from .money import parse_amount

__all__ = [
    "ALERT_KINDS", "CHANNELS", "DEDICATED", "MARKETPLACE", "OFFICIAL", "SHARED", "Account", "Accounts", "Alert",
    "Credential", "Plan", "QpsAddon", "parse_accounts",
]  # the entries (account_entries) too: callers take the whole accounts model from here

_TOP_KEYS = {"account", "plan", "qps_addon", "alert", "credential"}
_ACCOUNT_KEYS = {"id", "channel", "activated"}
_PLAN_KEYS = {"id", "account", "channel", "kind", "api", "apis", "quantity", "start", "end", "price", "refunded"}
_ADDON_KEYS = {"account", "channel", "api", "qps", "start", "end"}
_ALERT_KEYS = {"account", "channel", "kind", "target", "threshold"}
_CREDENTIAL_KEYS = {"key", "account", "channel", "from", "until"}


@dataclass(frozen=True)
class Accounts:
    """Everything an accounts file or folder lists.

    ``accounts`` and ``plans`` have no class-level default on purpose: accounts made by
    ``of_columns`` (the account tables) make their objects on first access (``__getattr__``).
    """

    accounts: tuple[Account, ...] = field(default_factory=tuple)
    plans: tuple[Plan, ...] = field(default_factory=tuple)
    qps_addons: tuple[QpsAddon, ...] = ()
    alerts: tuple[Alert, ...] = ()
    credentials: tuple[Credential, ...] = ()
    source: str = "<accounts>"

    @classmethod
    def of_columns(cls, columns: AccountColumns, qps_addons: tuple[QpsAddon, ...] = (),
                   alerts: tuple[Alert, ...] = (), credentials: tuple[Credential, ...] = (),
                   source: str = "<accounts>") -> "Accounts":
        """Accounts whose ``Account`` and ``Plan`` objects are made from ``columns`` when first asked for."""
        self = object.__new__(cls)
        for name, value in (("qps_addons", qps_addons), ("alerts", alerts), ("credentials", credentials),
                            ("source", source), ("_columns", columns)):
            object.__setattr__(self, name, value)
        return self

    def __getattr__(self, name: str) -> Any:  # only for what the instance does not hold yet
        columns = self.__dict__.get("_columns")
        if columns is None or name not in ("accounts", "plans"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = columns.account_objects() if name == "accounts" else tuple(columns.plans.objects())
        object.__setattr__(self, name, value)
        return value

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as plain objects: the columns (and their object makers) stay behind."""
        return {f: getattr(self, f) for f in ("accounts", "plans", "qps_addons", "alerts", "credentials", "source")}

    def columns(self) -> AccountColumns:
        """The accounts as columns (made from the objects once, when they were given as objects)."""
        columns = self.__dict__.get("_columns")
        if columns is None:
            columns = AccountColumns.of_objects(self.accounts, self.plans)
            object.__setattr__(self, "_columns", columns)
        return columns

    def parties(self) -> list[tuple[str, str]]:
        """(account, channel) pairs in file order: the units that keep usage, plans and bills."""
        if "accounts" not in self.__dict__ and "_columns" in self.__dict__:
            return list(self.__dict__["_columns"].parties)
        return [(a.id, a.channel) for a in self.accounts]


def parse_accounts(data: Mapping[str, Any], catalog: Catalog, *, source: str = "<accounts>") -> Accounts:
    """Validate accounts given as the dict TOML parses to (instants as datetimes, text or epoch ms)."""
    reader = _Reader(catalog, source)
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise reader.fail(f"unknown table(s) {', '.join(sorted(unknown))}", None)
    accounts = [reader.account(raw, i) for i, raw in enumerate(_list(data, "account", reader))]
    seen: set[tuple[str, str]] = set()
    for i, acc in enumerate(accounts):
        if (acc.id, acc.channel) in seen:
            raise reader.fail(f"account {acc.id!r} is listed twice on the {acc.channel} channel", f"account[{i}].id")
        seen.add((acc.id, acc.channel))
    plans = [reader.plan(raw, i, seen) for i, raw in enumerate(_list(data, "plan", reader))]
    ids: set[str] = set()
    for i, plan in enumerate(plans):
        if plan.id in ids:
            raise reader.fail(f"plan id {plan.id!r} is listed twice", f"plan[{i}].id")
        ids.add(plan.id)
    addons = [reader.addon(raw, i, seen) for i, raw in enumerate(_list(data, "qps_addon", reader))]
    alerts = [reader.alert(raw, i, seen) for i, raw in enumerate(_list(data, "alert", reader))]
    creds = [reader.credential(raw, i, seen) for i, raw in enumerate(_list(data, "credential", reader))]
    return Accounts(tuple(accounts), tuple(plans), tuple(addons), tuple(alerts), tuple(creds), source)


def _list(data: Mapping[str, Any], key: str, reader: "_Reader") -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise reader.fail(f"must be an array of tables ([[{key}]])", key)
    return value


class _Reader:
    """Field-level validation with errors that name the file and the field."""

    def __init__(self, catalog: Catalog, source: str) -> None:
        self.catalog = catalog
        self.clock = catalog.clock
        self.source = source

    def fail(self, message: str, field_: str | None) -> AccountsError:
        return AccountsError(message, file=self.source, field=field_)

    def table(self, raw: Any, where: str, keys: set[str], required: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail("must be a table", where)
        unknown = set(raw) - keys
        if unknown:
            raise self.fail(f"unknown key(s) {', '.join(sorted(unknown))}", where)
        for key in required:
            if raw.get(key) in (None, ""):
                raise self.fail("is required", f"{where}.{key}")
        return raw

    def text(self, value: Any, where: str) -> str:
        """An id or code exactly as written (never stripped; only "" is empty, as in the calls)."""
        if not isinstance(value, str) or not value:
            raise self.fail(f"must be a non-empty string, not {value!r}", where)
        return value

    def channel(self, value: Any, where: str) -> str:
        if value not in CHANNELS:
            raise self.fail(f"must be 'official' or 'marketplace', not {value!r}", where)
        return str(value)

    def api(self, value: Any, where: str, accepts: Callable[[Any], bool] | None = None, why: str = "") -> str:
        code = self.text(value, where)
        if code not in self.catalog.index:
            raise self.fail(f"API {code!r} is not in the catalog", where)
        if accepts is not None and not accepts(self.catalog.api(code)):
            raise self.fail(f"API {code!r} {why}", where)
        return code

    def instant(self, value: Any, where: str) -> int:
        try:
            return self.clock.instant(value, what="instant")
        except OcrledgerError as exc:
            raise self.fail(exc.message, where) from None

    def count(self, value: Any, where: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value >= 1 << 62:
            raise self.fail(f"must be an integer of at least {minimum}, not {value!r}", where)
        return value

    def party(self, raw: dict[str, Any], where: str, known: set[tuple[str, str]]) -> tuple[str, str]:
        account = self.text(raw.get("account"), f"{where}.account")
        channel = self.channel(raw.get("channel", OFFICIAL), f"{where}.channel")
        if (account, channel) not in known:
            raise self.fail(f"account {account!r} is not listed on the {channel} channel", f"{where}.account")
        return account, channel

    def account(self, raw: Any, i: int) -> Account:
        where = f"account[{i}]"
        raw = self.table(raw, where, _ACCOUNT_KEYS, ("id",))
        ident = self.text(raw["id"], f"{where}.id")
        channel = self.channel(raw.get("channel", OFFICIAL), f"{where}.channel")
        activated_raw = raw.get("activated", {})
        if not isinstance(activated_raw, dict):
            raise self.fail("must be a table of API code = instant", f"{where}.activated")
        if activated_raw and channel == MARKETPLACE:
            raise self.fail("marketplace accounts need no activation; remove 'activated'", f"{where}.activated")
        activated = {
            self.api(code, f"{where}.activated"): self.instant(when, f"{where}.activated.{code}")
            for code, when in activated_raw.items()
        }
        return Account(ident, channel, activated)

    def plan(self, raw: Any, i: int, known: set[tuple[str, str]]) -> Plan:
        where = f"plan[{i}]"
        raw = self.table(raw, where, _PLAN_KEYS, ("id", "account", "kind", "quantity", "start"))
        ident = self.text(raw["id"], f"{where}.id")
        where = f"plan {ident}"
        account, channel = self.party(raw, where, known)
        kind = raw["kind"]
        if kind == DEDICATED:
            if "apis" in raw:
                raise self.fail("a dedicated plan names one 'api', not 'apis'", f"{where}.apis")
            apis: tuple[str, ...] = (
                self.api(raw.get("api"), f"{where}.api", lambda a: a.dedicated, "does not accept dedicated plans"),
            )
        elif kind == SHARED:
            if "api" in raw:
                raise self.fail("a shared plan names 'apis' (a list), not 'api'", f"{where}.api")
            listed = raw.get("apis")
            if listed is None:
                apis = tuple(a.code for a in self.catalog.apis if a.shared)
            else:
                if isinstance(listed, str):
                    listed = [s for s in listed.split("|") if s]
                if not isinstance(listed, list) or not listed:
                    raise self.fail("must be a non-empty list of API codes", f"{where}.apis")
                apis = tuple(
                    self.api(code, f"{where}.apis", lambda a: a.shared, "does not accept shared plans")
                    for code in listed
                )
                if len(set(apis)) != len(apis):
                    raise self.fail("lists an API twice", f"{where}.apis")
        else:
            raise self.fail(f"must be 'dedicated' or 'shared', not {kind!r}", f"{where}.kind")
        quantity = self.count(raw["quantity"], f"{where}.quantity", minimum=1)
        start = self.instant(raw["start"], f"{where}.start")
        if raw.get("end") is None:
            end = self.clock.plus_one_year(start)
        else:
            end = self.instant(raw["end"], f"{where}.end")
        if end <= start:
            raise self.fail(
                f"ends ({self.clock.label(end)}) before or when it starts ({self.clock.label(start)})", f"{where}.end"
            )
        price = None
        if raw.get("price") is not None:
            try:
                price = parse_amount(raw["price"], what="price")
            except OcrledgerError as exc:
                raise self.fail(exc.message, f"{where}.price") from None
        refunded = None
        if raw.get("refunded") is not None:
            refunded = self.instant(raw["refunded"], f"{where}.refunded")
            if refunded < start:
                raise self.fail("is refunded before it starts", f"{where}.refunded")
        return Plan(ident, account, channel, kind, apis, quantity, start, end, price, refunded)

    def addon(self, raw: Any, i: int, known: set[tuple[str, str]]) -> QpsAddon:
        where = f"qps_addon[{i}]"
        raw = self.table(raw, where, _ADDON_KEYS, ("account", "api", "qps", "start"))
        account, channel = self.party(raw, where, known)
        start = self.instant(raw["start"], f"{where}.start")
        end = self.clock.plus_one_year(start) if raw.get("end") is None else self.instant(raw["end"], f"{where}.end")
        if end <= start:
            raise self.fail("ends before or when it starts", f"{where}.end")
        return QpsAddon(
            account, channel, self.api(raw["api"], f"{where}.api"), self.count(raw["qps"], f"{where}.qps", 1), start, end
        )

    def alert(self, raw: Any, i: int, known: set[tuple[str, str]]) -> Alert:
        where = f"alert[{i}]"
        raw = self.table(raw, where, _ALERT_KEYS, ("account", "kind"))
        account, channel = self.party(raw, where, known)
        kind = raw["kind"]
        if kind not in ALERT_KINDS:
            raise self.fail(f"must be one of {', '.join(ALERT_KINDS)}, not {kind!r}", f"{where}.kind")
        target = raw.get("target")
        if target is not None:
            target = self.text(target, f"{where}.target")
            if kind == "free_exhausted":
                self.api(target, f"{where}.target")
        threshold = raw.get("threshold")
        if kind == "plan_remaining":
            text = str(threshold).strip() if isinstance(threshold, (int, str)) and not isinstance(threshold, bool) else ""
            number = text[:-1] if text.endswith("%") else text
            if not number.isdigit() or (text.endswith("%") and int(number) > 100):
                raise self.fail("must be a count of calls/points or a percentage such as \"10%\"", f"{where}.threshold")
            threshold = text
        elif kind == "payg_spend":
            try:
                parse_amount(threshold, what="threshold")
            except OcrledgerError as exc:
                raise self.fail(exc.message, f"{where}.threshold") from None
            threshold = str(threshold)
        else:
            threshold = ""
        return Alert(account, channel, kind, target, threshold)

    def credential(self, raw: Any, i: int, known: set[tuple[str, str]]) -> Credential:
        where = f"credential[{i}]"
        raw = self.table(raw, where, _CREDENTIAL_KEYS, ("key", "account"))
        account, channel = self.party(raw, where, known)
        valid_from = None if raw.get("from") is None else self.instant(raw["from"], f"{where}.from")
        until = None if raw.get("until") is None else self.instant(raw["until"], f"{where}.until")
        return Credential(self.text(raw["key"], f"{where}.key"), account, channel, valid_from, until)
