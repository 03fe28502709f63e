"""The call columns by name, and the words of the errors for bad cells that both call validators give."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..model.accounts import CHANNELS
from ..model.catalog import Catalog

REQUIRED = ("record_id", "account", "api", "ts", "success")
OPTIONAL = ("channel",)


def show(value: Any) -> str:
    """repr of a cell for messages, numpy scalars shown as the Python values they hold."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _spaced(text: str, known: Any) -> str:
    """" (it has leading or trailing spaces)" when ``text`` stripped would be one of ``known``, else ""."""
    return " (it has leading or trailing spaces)" if text.strip() != text and text.strip() in known else ""


def channel_message(word: Any) -> str:
    """The error for a channel cell that is neither 'official' nor 'marketplace' (rate and rerate alike)."""
    hint = _spaced(word, CHANNELS) if isinstance(word, str) else ""
    return f"channel must be 'official' or 'marketplace', not {show(word)}{hint}"


def api_message(code: Any, catalog: Catalog) -> str:
    """The error for an API code that is not in the catalog (rate and rerate alike)."""
    hint = _spaced(code, catalog.index) if isinstance(code, str) else ""
    return f"API {show(code)} is not in the catalog{hint}"
