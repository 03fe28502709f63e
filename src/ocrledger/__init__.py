"""ocrledger: exact rating and deduction engine for per-call-billed APIs (public names)."""
from __future__ import annotations

from .accounts import Accounts, load_accounts, parse_accounts
from .bills import Adjustment, Bill, BillLine, PlanBalance, TierCharge, bills_from_json, bills_to_json
from .catalog import Catalog, default_catalog, load_catalog, parse_catalog
from .codes import Source, Status
from .errors import AccountsError, CallsError, CatalogError, MoneyError, OcrledgerError, StateError
from .ledger import IngestResult, Ledger
from .rating import RatingResult, rate

__version__ = "0.1.0"

__all__ = [
    "Accounts", "AccountsError", "Adjustment", "Bill", "BillLine", "CallsError", "Catalog", "CatalogError",
    "IngestResult", "Ledger", "MoneyError", "OcrledgerError", "PlanBalance", "RatingResult", "Source", "StateError",
    "Status", "TierCharge", "bills_from_json", "bills_to_json", "default_catalog", "load_accounts", "load_catalog",
    "parse_accounts", "parse_catalog", "rate", "__version__",
]
