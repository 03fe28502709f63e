"""ocrledger: exact rating and deduction engine for per-call-billed APIs (public names)."""
from __future__ import annotations

import logging

from .codes import Source, Status
from .engine.rate import Engine, RatingResult, rate
from .errors import (
    AccountsError,
    CallsError,
    CatalogError,
    MoneyError,
    OcrledgerError,
    StateError,
)
from .io.account_tables import load_accounts
from .model.accounts import Accounts, parse_accounts
from .model.bill_tables import bills_to_arrow, bills_to_pandas
from .model.bills import (
    Adjustment,
    Bill,
    BillLine,
    PlanBalance,
    TierCharge,
    bills_from_json,
    bills_to_json,
)
from .model.catalog import Catalog, default_catalog, load_catalog, parse_catalog
from .store.ledger import IngestResult, Ledger
from .version import __version__

__all__ = [
    "Accounts", "AccountsError", "Adjustment", "Bill", "BillLine", "CallsError", "Catalog", "CatalogError", "Engine",
    "IngestResult", "Ledger", "MoneyError", "OcrledgerError", "PlanBalance", "RatingResult", "Source", "StateError",
    "Status", "TierCharge", "bills_from_json", "bills_to_arrow", "bills_to_json", "bills_to_pandas", "default_catalog", "load_accounts", "load_catalog",
    "parse_accounts", "parse_catalog", "rate", "__version__",
]

# What the library reports goes to the "ocrledger" logger; it prints nothing itself. A program sets the
# handlers it wants; the ocrledger command sends it to stderr (-v: more, -q: errors only).
logging.getLogger(__name__).addHandler(logging.NullHandler())
