"""docs/api.md is the API reference made from the public names' docstrings and signatures (``ocrledger.__all__``):
every public name is in it, and it is up to date (``OCRLEDGER_UPDATE_DOCS=1 pytest tests/test_api_reference.py``
rewrites it)."""
from __future__ import annotations

import enum
import inspect
import os
import re
from pathlib import Path

import pytest

import ocrledger

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"

GROUPS = [
    ("Rating", ["rate", "Engine", "RatingResult"]),
    ("The catalog and the accounts", ["default_catalog", "load_catalog", "parse_catalog", "Catalog", "load_accounts",
                                      "parse_accounts", "Accounts"]),
    ("Bills", ["Bill", "BillLine", "TierCharge", "PlanBalance", "Adjustment", "bills_to_json", "bills_from_json",
               "bills_to_arrow", "bills_to_pandas"]),
    ("The ledger", ["Ledger", "IngestResult"]),
    ("Per-call outcomes", ["Status", "Source"]),
    ("Errors", ["OcrledgerError", "CatalogError", "AccountsError", "CallsError", "MoneyError", "StateError"]),
]


def _signature(obj: object) -> str:
    try:
        text = str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(...)"
    return re.sub(r" at 0x[0-9a-f]+", "", text)


def _doc(obj: object) -> str:
    return inspect.getdoc(obj) or "(no docstring)"


def _members(cls: type) -> list[str]:
    out = []
    for name, member in sorted(vars(cls).items()):
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            out.append(f"- `{name}` (property): {_first(_doc(member))}")
        elif isinstance(member, (staticmethod, classmethod)):
            fn = member.__func__
            out.append(f"- `{name}{_signature(getattr(cls, name))}`: {_first(_doc(fn))}")
        elif inspect.isfunction(member):
            out.append(f"- `{name}{_signature(member)}`: {_first(_doc(member))}")
    return out


def _first(doc: str) -> str:
    return " ".join(doc.split("\n\n", 1)[0].split())


def reference() -> str:
    """The text of docs/api.md."""
    listed = [name for _, names in GROUPS for name in names]
    public = sorted(n for n in ocrledger.__all__ if n != "__version__")
    assert sorted(listed) == public, set(listed) ^ set(public)
    out = [
        "# API reference",
        "",
        "The public names of `ocrledger` (`ocrledger.__all__`), made from their signatures and docstrings by",
        "`tests/test_api_reference.py` (`OCRLEDGER_UPDATE_DOCS=1 pytest tests/test_api_reference.py` rewrites",
        "this file; the test fails when it is out of date). File formats: [formats.md](formats.md) and",
        "[spec.md](spec.md); the command line: `ocrledger --help`. `ocrledger.dask.rerate` and",
        "`ocrledger.rerate.rerate` are documented in [rerater.md](rerater.md).",
        "",
    ]
    for title, names in GROUPS:
        out += [f"## {title}", ""]
        for name in names:
            obj = getattr(ocrledger, name)
            if isinstance(obj, type) and issubclass(obj, enum.Enum):
                out += [f"### `{name}`", "", _doc(obj), "", ", ".join(f"`{m.name}` = {m.value}" for m in obj), ""]
            elif isinstance(obj, type):
                head = f"### `class {name}{_signature(obj)}`" if not issubclass(obj, Exception) else \
                    f"### `class {name}({obj.__mro__[1].__name__})`"
                out += [head, "", _doc(obj), ""]
                members = _members(obj) if not issubclass(obj, Exception) else []
                out += [*members, ""] if members else []
            else:
                out += [f"### `{name}{_signature(obj)}`", "", _doc(obj), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def test_every_public_name_is_in_the_reference() -> None:
    text = reference()
    for name in ocrledger.__all__:
        if name != "__version__":
            assert f"`{name}" in text or f"`class {name}" in text, name


def test_docs_api_md_is_up_to_date() -> None:
    text = reference()
    if os.environ.get("OCRLEDGER_UPDATE_DOCS") == "1":
        DOC.write_text(text, encoding="utf-8")
    if not DOC.exists():
        pytest.skip("docs/ is not beside the tests")
    assert DOC.read_text(encoding="utf-8") == text, "docs/api.md is out of date: OCRLEDGER_UPDATE_DOCS=1 pytest " + __file__
