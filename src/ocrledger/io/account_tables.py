"""Loading accounts: the accounts TOML, or a folder of tables (CSV or Parquet) for 10^5-10^6 plans (SPEC §6).

A folder holds ``accounts`` (required), ``activations``, ``plans``, ``qps_addons``, ``alerts`` and
``credentials``, each as ``NAME.csv`` or ``NAME.parquet``, one row per record, with the fields of
the accounts TOML. Empty cells (or nulls) mean "not given"; a shared plan's ``apis`` are separated
by ``|``. Instants are epoch milliseconds or ISO 8601 text (without an offset: the billing zone).

Columns are converted in bulk with Arrow (instants, integers, flags, party and API matching) into
``account_columns.AccountColumns``; the ``Account`` and ``Plan`` objects are made only if something asks
for them (``Accounts.of_columns``), so 10^5 plans load in a fraction of a second. The validation
rules are those of the TOML reader and every error names the file, the row and the column.
"""
from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AccountsError, OcrledgerError
from ..model.account_columns import AccountColumns, PlanColumns
from ..model.accounts import (
    ALERT_KINDS,
    CHANNELS,
    DEDICATED,
    MARKETPLACE,
    OFFICIAL,
    SHARED,
    Accounts,
    Alert,
    Credential,
    QpsAddon,
    parse_accounts,
)
from ..model.catalog import Catalog
from ..model.clock import BillingClock
from ..model.money import parse_amount
from ..model.tomlfile import read_toml
from . import arrow_columns as ac

COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": ("id", "channel"),
    "activations": ("account", "channel", "api", "activated"),
    "plans": ("id", "account", "channel", "kind", "api", "apis", "quantity", "start", "end", "price", "refunded"),
    "qps_addons": ("account", "channel", "api", "qps", "start", "end"),
    "alerts": ("account", "channel", "kind", "target", "threshold"),
    "credentials": ("key", "account", "channel", "from", "until"),
}
"""Table name -> its columns (any order in the file; optional columns may be left out)."""
REQUIRED: dict[str, tuple[str, ...]] = {
    "accounts": ("id",),
    "activations": ("account", "api", "activated"),
    "plans": ("id", "account", "kind", "quantity", "start"),
    "qps_addons": ("account", "api", "qps", "start"),
    "alerts": ("account", "kind", "threshold"),
    "credentials": ("key", "account"),
}
_MAX_COUNT = 1 << 62
_IDS = ("id", "account", "key")
"""Columns that hold ids: exact strings, as in the calls and the accounts TOML (nothing trimmed; only a
null or empty cell is blank). The other text columns (channel, API codes, kinds, numbers) are trimmed."""


def load_accounts(path: str | Path | None, catalog: Catalog) -> Accounts:
    """Load and validate an accounts TOML file (or a folder of account tables) against the catalog.

    ``None`` means no accounts. A folder is read by ``load_account_tables``.
    """
    if path is None:
        return Accounts()
    if Path(path).is_dir():
        return load_account_tables(path, catalog)
    return parse_accounts(read_toml(path, AccountsError), catalog, source=str(path))


def load_account_tables(folder: str | Path, catalog: Catalog) -> Accounts:
    """Load and validate a folder of account tables against the catalog."""
    enabled = gc.isenabled()
    gc.disable()  # hundreds of thousands of small objects, none cyclic: skip the collector's passes
    try:
        return _load(Path(folder), catalog)
    finally:
        if enabled:
            gc.enable()


def _load(root: Path, catalog: Catalog) -> Accounts:
    if not root.is_dir():
        raise AccountsError("is not a folder of account tables", file=str(root))
    if not (root / "accounts.csv").exists() and not (root / "accounts.parquet").exists():
        raise AccountsError(f"the folder has no accounts.csv or accounts.parquet (tables: {', '.join(COLUMNS)})",
                            file=str(root))
    tables = {name: _open(root, name, catalog.clock) for name in COLUMNS}
    assert tables["accounts"] is not None
    clock = catalog.clock

    acc = tables["accounts"]
    ids = acc.text("id")
    channels = acc.channels()
    parties: dict[tuple[str, str], int] = {}
    for i, party in enumerate(zip(ids, channels)):
        if party in parties:
            raise acc.fail(f"account {party[0]!r} is listed twice on the {party[1]} channel", i, "id")
        parties[party] = i
    known = set(parties)

    order = list(parties)
    act_party, act_api, act_when = _activations(tables["activations"], catalog, order)
    if tables["plans"] is not None and len(tables["plans"]):
        plans = _plans(tables["plans"], catalog, order)
    else:
        plans = PlanColumns.of_plans((), order)
    columns = AccountColumns(order, act_party, act_api, act_when, tuple(a.code for a in catalog.apis), plans)
    addons: tuple[QpsAddon, ...] = ()
    qa = tables["qps_addons"]
    if qa is not None and len(qa):
        q_party = qa.parties(known)
        q_api = qa.apis("api", catalog)
        q_qps = qa.counts("qps", 1)
        start = qa.instants("start")
        end = qa.instants("end", optional=True)
        given = ~qa.blank("end")
        end = np.where(given, end, ac.plus_one_year(start, clock))
        bad = end <= start
        if bad.any():
            raise qa.fail("ends before or when it starts", int(np.argmax(bad)), "end")
        addons = tuple(
            QpsAddon(p[0], p[1], code, q, s, e)
            for p, code, q, s, e in zip(q_party, q_api, q_qps.tolist(), start.tolist(), end.tolist())
        )
    alerts: tuple[Alert, ...] = ()
    al = tables["alerts"]
    if al is not None and len(al):
        l_party = al.parties(known)
        kinds = al.text("kind")
        for i, kind in enumerate(kinds):
            if kind not in ALERT_KINDS:
                raise al.fail(f"must be one of {', '.join(ALERT_KINDS)}, not {kind!r}", i, "kind")
        targets = al.text("target", optional=True)
        thresholds = al.text("threshold")
        alerts = tuple(Alert(p[0], p[1], k, t, th) for p, k, t, th in zip(l_party, kinds, targets, thresholds))
    creds: tuple[Credential, ...] = ()
    cr = tables["credentials"]
    if cr is not None and len(cr):
        c_party = cr.parties(known)
        keys = cr.text("key")
        valid_from = cr.instants("from", optional=True)
        until = cr.instants("until", optional=True)
        from_given, until_given = ~cr.blank("from"), ~cr.blank("until")
        creds = tuple(
            Credential(k, p[0], p[1], int(f) if fg else None, int(u) if ug else None)
            for k, p, f, fg, u, ug in zip(keys, c_party, valid_from, from_given, until, until_given)
        )
    return Accounts.of_columns(columns, addons, alerts, creds, str(root))


def _activations(act: "_Table | None", catalog: Catalog, parties: list[tuple[str, str]]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(party position, API index, instant) of every activation, in row order, checked in bulk.

    Errors come in the order a row-by-row reading gives them: a bad account, channel, API or
    instant anywhere first, then the first row that activates a marketplace account or repeats
    an (account, API) pair.
    """
    if act is None or not len(act):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    party = act.party_codes(parties)
    api = act.api_codes("api", catalog)
    when = act.instants("activated")
    n = len(party)
    market = np.array([ch == MARKETPLACE for _, ch in parties], dtype=bool)[party]
    first_market = int(np.argmax(market)) if market.any() else n
    key = party * len(catalog.apis) + api
    by_key = np.argsort(key, kind="stable")
    repeats = by_key[1:][key[by_key][1:] == key[by_key][:-1]]  # every row after the first of its pair
    first_repeat = int(repeats.min()) if len(repeats) else n
    if first_market < n and first_market <= first_repeat:
        raise act.fail("marketplace accounts need no activation; remove the row", first_market, "channel")
    if first_repeat < n:
        code, account = catalog.apis[api[first_repeat]].code, parties[party[first_repeat]][0]
        raise act.fail(f"API {code!r} of account {account!r} is activated twice", first_repeat, "api")
    return party, api, when


def _plans(t: "_Table", catalog: Catalog, parties: list[tuple[str, str]]) -> PlanColumns:
    clock = catalog.clock
    n = len(t)
    ids = t.text("id")
    party = t.party_codes(parties)
    default_shared = tuple(a.code for a in catalog.apis if a.shared)
    keys, first, key_of = t.distinct(("kind", "api", "apis"), optional=(False, True, True))
    api_sets = tuple(_plan_apis(t, i, key, catalog, default_shared) for key, i in zip(keys, first.tolist()))
    dedicated = np.array([kind == DEDICATED for kind, _, _ in keys], dtype=bool)[key_of]
    quantity = t.counts("quantity", 1)
    start = t.instants("start")
    end_given = ~t.blank("end")
    end = np.where(end_given, t.instants("end", optional=True), 0)
    if (~end_given).any():
        end[~end_given] = ac.plus_one_year(start[~end_given], clock)
    bad = end <= start
    if bad.any():
        i = int(np.argmax(bad))
        raise t.fail(f"ends ({clock.label(int(end[i]))}) before or when it starts ({clock.label(int(start[i]))})",
                     i, "end")
    refund_given = ~t.blank("refunded")
    refunded = t.instants("refunded", optional=True)
    bad = refund_given & (refunded < start)
    if bad.any():
        raise t.fail("is refunded before it starts", int(np.argmax(bad)), "refunded")
    texts, first, price_of = t.distinct(("price",), optional=(True,))
    prices: list[int | None] = []
    for (text,), i in zip(texts, first.tolist()):
        try:
            prices.append(None if text is None else parse_amount(text, what="price"))
        except OcrledgerError as exc:
            raise t.fail(exc.message, i, "price") from None
    if len(set(ids)) != n:
        seen: set[str] = set()
        for i, ident in enumerate(ids):
            if ident in seen:
                raise t.fail(f"plan id {ident!r} is listed twice", i, "id")
            seen.add(ident)
    return PlanColumns(ids=ids, party=party, parties=parties, dedicated=dedicated, api_set=key_of, api_sets=api_sets,
                       quantity=quantity, start=start, end=end.astype(np.int64), refunded=refunded,
                       refund_given=refund_given, price=price_of, prices=tuple(prices))


def _plan_apis(t: "_Table", i: int, key: tuple[str, str | None, str | None], catalog: Catalog,
               default_shared: tuple[str, ...]) -> tuple[str, ...]:
    kind, api, listed = key
    if kind == DEDICATED:
        if listed is not None:
            raise t.fail("a dedicated plan names one 'api', not 'apis'", i, "apis")
        if api is None:
            raise t.fail("is required for a dedicated plan", i, "api")
        _known_api(t, i, "api", api, catalog, lambda a: a.dedicated, "does not accept dedicated plans")
        return (api,)
    if kind == SHARED:
        if api is not None:
            raise t.fail("a shared plan names 'apis' (separated by |), not 'api'", i, "api")
        if listed is None:
            return default_shared
        codes = tuple(s.strip() for s in listed.split("|") if s.strip())
        if not codes:
            raise t.fail("must be a non-empty list of API codes separated by |", i, "apis")
        for code in codes:
            _known_api(t, i, "apis", code, catalog, lambda a: a.shared, "does not accept shared plans")
        if len(set(codes)) != len(codes):
            raise t.fail("lists an API twice", i, "apis")
        return codes
    raise t.fail(f"must be 'dedicated' or 'shared', not {kind!r}", i, "kind")


def _known_api(t: "_Table", i: int, col: str, code: str, catalog: Catalog, accepts: Any, why: str) -> None:
    if code not in catalog.index:
        raise t.fail(f"API {code!r} is not in the catalog", i, col)
    if not accepts(catalog.api(code)):
        raise t.fail(f"API {code!r} {why}", i, col)


def _open(root: Path, name: str, clock: BillingClock) -> "_Table | None":
    csv_path, pq_path = root / f"{name}.csv", root / f"{name}.parquet"
    if csv_path.exists() and pq_path.exists():
        raise AccountsError(f"holds both {name}.csv and {name}.parquet; keep one", file=str(root))
    if not csv_path.exists() and not pq_path.exists():
        return None
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq
    except ImportError:
        raise AccountsError("a folder of account tables needs pyarrow: pip install 'ocrledger[parquet]'",
                            file=str(root)) from None
    path = csv_path if csv_path.exists() else pq_path
    try:
        if path is csv_path:
            table = pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in COLUMNS[name]}, strings_can_be_null=False
                ),
            )
            base = 2
        else:
            table = pq.ParquetFile(path).read()  # not read_table: its dataset layer imports pandas (0.2 s)
            base = 1
    except (OSError, pa.ArrowInvalid) as exc:
        raise AccountsError(f"cannot read: {exc}", file=str(path)) from None
    header = [c.strip() for c in table.column_names]
    unknown = set(header) - set(COLUMNS[name])
    if unknown:
        raise AccountsError(f"unknown column(s) {', '.join(sorted(unknown))} (a {name} table has "
                            f"{', '.join(COLUMNS[name])})", file=str(path), row=1 if base == 2 else None)
    if len(set(header)) != len(header):
        raise AccountsError("names a column twice", file=str(path))
    table = table.rename_columns(header).combine_chunks()
    t = _Table(name, str(path), table, base, clock)
    for col in REQUIRED[name]:
        if col not in header:
            raise AccountsError(f"missing column {col!r} (needs {', '.join(REQUIRED[name])})", file=str(path))
        blank = t.blank(col)
        if blank.any():
            raise t.fail("is required", int(np.argmax(blank)), col)
    return t


class _Table:
    """One table's columns with bulk conversions whose errors name the file, row and column."""

    def __init__(self, name: str, path: str, table: Any, base: int, clock: BillingClock) -> None:
        self.name, self.path, self.table, self.base, self.clock = name, path, table, base, clock
        self._blank: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def fail(self, message: str, i: int, col: str) -> AccountsError:
        return AccountsError(message, file=self.path, row=self.base + int(i), field=col)

    def column(self, col: str) -> Any:
        import pyarrow as pa

        if col not in self.table.column_names:
            return pa.nulls(len(self), pa.string())
        arr = self.table.column(col)
        if arr.num_chunks == 1:
            return arr.chunk(0)
        return pa.concat_arrays(arr.chunks) if arr.num_chunks else pa.array([], arr.type)

    def blank(self, col: str) -> np.ndarray:
        """Null or whitespace-only cells of ``col`` (computed once per column)."""
        mask = self._blank.get(col)
        if mask is None:
            arr = self.column(col)
            exact = col in _IDS and self._is_text(arr)
            mask = self._blank[col] = ac.is_empty(arr) if exact else ac.is_blank(arr)
        return mask

    @staticmethod
    def _is_text(arr: Any) -> bool:
        import pyarrow as pa

        t = arr.type.value_type if pa.types.is_dictionary(arr.type) else arr.type
        return bool(pa.types.is_string(t) or pa.types.is_large_string(t))

    def text_array(self, col: str, *, optional: bool = False) -> tuple[Any, np.ndarray]:
        """(strings as an Arrow array, stripped unless an id, blank mask); a blank cell is an error unless
        ``optional``."""
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = self.column(col)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            if pa.types.is_integer(arr.type) or pa.types.is_null(arr.type):
                arr = arr.cast(pa.string())
            else:
                raise self.fail(f"must be text, not a column of type {arr.type}", 0, col)
        blank = self.blank(col)
        if blank.any() and not optional:
            raise self.fail("is empty", int(np.argmax(blank)), col)
        return (arr if col in _IDS else pc.utf8_trim_whitespace(arr)), blank

    def text(self, col: str, *, optional: bool = False) -> list[Any]:
        """Stripped strings; blank cells are None when ``optional`` (else an error)."""
        arr, blank = self.text_array(col, optional=optional)
        values = arr.to_pylist()
        if blank.any():
            for i in np.flatnonzero(blank).tolist():
                values[i] = None
        return values

    def distinct(self, cols: tuple[str, ...], optional: tuple[bool, ...]) -> tuple[list[tuple[Any, ...]], np.ndarray,
                                                                               np.ndarray]:
        """The distinct rows of the stripped text columns ``cols`` (blank cells None), in order of first
        appearance: (their values, the row each first appears on, each row's index into them).

        Checking each distinct value at its first row reports the same row as a row-by-row check."""
        import pyarrow.compute as pc

        codes, values = [], []
        for col, opt in zip(cols, optional):
            arr, blank = self.text_array(col, optional=opt)
            enc = pc.dictionary_encode(arr)
            words = enc.dictionary.to_pylist()
            code = enc.indices.fill_null(len(words)).to_numpy(zero_copy_only=False).astype(np.int64)
            code[blank] = len(words)
            codes.append(code)
            values.append(words + [None])
        key = np.zeros(len(self), dtype=np.int64)
        for code, words in zip(codes, values):  # renumbered after each column, so the key stays below rows^2
            key = np.unique(key * len(words) + code, return_inverse=True)[1].reshape(-1).astype(np.int64)
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        by_first = np.argsort(first, kind="stable")
        rank = np.empty(len(first), dtype=np.int64)
        rank[by_first] = np.arange(len(first))
        first = first[by_first]
        rows = [tuple(words[int(code[i])] for code, words in zip(codes, values)) for i in first.tolist()]
        return rows, first.astype(np.int64), rank[inverse.reshape(-1)]

    def channel_array(self) -> Any:
        """``channels()`` as an Arrow array (blank cells official), with the same errors."""
        import pyarrow as pa
        import pyarrow.compute as pc

        arr, blank = self.text_array("channel", optional=True)
        arr = pc.if_else(pa.array(blank), pa.scalar(OFFICIAL), arr)
        bad = ~pc.is_in(arr, value_set=pa.array(CHANNELS)).to_numpy(zero_copy_only=False)
        if bad.any():
            i = int(np.argmax(bad))
            raise self.fail(f"must be 'official' or 'marketplace', not {arr[i].as_py()!r}", i, "channel")
        return arr

    def party_codes(self, parties: list[tuple[str, str]]) -> np.ndarray:
        """The position of each row's (account, channel) in ``parties``: ``parties()`` without a tuple per
        row, same errors in the same order."""
        import pyarrow as pa
        import pyarrow.compute as pc

        accounts, _ = self.text_array("account")
        channels = self.channel_array()
        keys = pc.binary_join_element_wise(accounts, channels, "\0")  # channel has no NUL: keys are unique
        known = pa.array([f"{a}\0{c}" for a, c in parties], pa.string())
        at = pc.index_in(keys, value_set=known)
        if at.null_count:
            i = int(np.argmax(at.is_null().to_numpy(zero_copy_only=False)))
            raise self.fail(f"account {accounts[i].as_py()!r} is not listed on the {channels[i].as_py()} channel",
                            i, "account")
        return at.to_numpy(zero_copy_only=False).astype(np.int64)

    def api_codes(self, col: str, catalog: Catalog) -> np.ndarray:
        """The catalog index of each row's API: ``apis()`` without a string per row, same errors."""
        import pyarrow as pa
        import pyarrow.compute as pc

        codes, _ = self.text_array(col)
        at = pc.index_in(codes, value_set=pa.array([a.code for a in catalog.apis], pa.string()))
        if at.null_count:
            i = int(np.argmax(at.is_null().to_numpy(zero_copy_only=False)))
            raise self.fail(f"API {codes[i].as_py()!r} is not in the catalog", i, col)
        return at.to_numpy(zero_copy_only=False).astype(np.int64)

    def channels(self) -> list[str]:
        values = self.text("channel", optional=True)
        if set(values) - {None, *CHANNELS}:
            for i, v in enumerate(values):
                if v is not None and v not in CHANNELS:
                    raise self.fail(f"must be 'official' or 'marketplace', not {v!r}", i, "channel")
        return [OFFICIAL if v is None else v for v in values]

    def parties(self, known: set[tuple[str, str]]) -> list[tuple[str, str]]:
        pairs = list(zip(self.text("account"), self.channels()))
        if not known.issuperset(pairs):
            for i, pair in enumerate(pairs):
                if pair not in known:
                    raise self.fail(f"account {pair[0]!r} is not listed on the {pair[1]} channel", i, "account")
        return pairs

    def apis(self, col: str, catalog: Catalog) -> list[str]:
        codes = self.text(col)
        for i, code in enumerate(codes):
            if code not in catalog.index:
                raise self.fail(f"API {code!r} is not in the catalog", i, col)
        return codes

    def counts(self, col: str, minimum: int) -> np.ndarray:
        import pyarrow as pa

        arr = self.column(col)
        if pa.types.is_integer(arr.type):
            values = arr.cast(pa.int64()).to_numpy(zero_copy_only=False)
        else:
            text = self.text(col)
            values = np.zeros(len(text), dtype=np.int64)
            for i, v in enumerate(text):
                if not v.isdigit() or len(v) > 19:
                    raise self.fail(f"must be an integer of at least {minimum}, not {v!r}", i, col)
                values[i] = int(v) if int(v) < _MAX_COUNT else _MAX_COUNT
        bad = (values < minimum) | (values >= _MAX_COUNT)
        if bad.any():
            i = int(np.argmax(bad))
            raise self.fail(f"must be an integer of at least {minimum}, not {int(values[i])!r}", i, col)
        return values

    def instants(self, col: str, *, optional: bool = False) -> np.ndarray:
        """Epoch ms; blank cells give 0 when ``optional`` (mask them with ``blank``)."""
        import pyarrow as pa

        arr = self.column(col)
        blank = self.blank(col)
        if blank.any() and not optional:
            raise self.fail("is required", int(np.argmax(blank)), col)
        out = np.zeros(len(arr), dtype=np.int64)
        if blank.all():
            return out
        keep = ~blank
        part = arr.filter(pa.array(keep)) if blank.any() else arr
        index = np.flatnonzero(keep)
        out[keep] = ac.instants(part, self.clock, lambda m, i: self.fail(m, int(index[i]), col), naive_ok=True)
        return out
