"""Sphinx configuration of the documentation site: the Markdown pages of docs/ (MyST) and the API reference
made from the docstrings (autodoc). Build: ``sphinx-build -W --keep-going -n -b html docs build/docs``."""
from __future__ import annotations

import dataclasses
from typing import Any

import ocrledger

project = "ocrledger"
author = "The ocrledger authors"
copyright = "The ocrledger authors"  # noqa: A001 (Sphinx's name)
release = version = ocrledger.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"

# The Markdown pages stay readable on GitHub: links between them are plain relative links
# (``[spec.md](spec.md#6-data-contracts)``), which MyST resolves to documents and heading anchors.
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"

# -n: every reference in a signature must resolve. These do not, on purpose: the standard library's and
# numpy's classes (no intersphinx: CI has no network to fetch their inventories), and the engine's
# internal types in the signatures of its lower-level methods (``Engine.run``, ``Engine.bills``, the
# ``Ledger`` constructor, ``Accounts.columns``), which the reference does not document.
nitpick_ignore = [("py:class", name) for name in (
    "pathlib.Path", "decimal.Decimal", "types.ModuleType", "numpy.ndarray",
    "ocrledger.store.sqlite_sql.SqliteStore", "ocrledger.model.account_columns.AccountColumns",
)]
nitpick_ignore_regex = [("py:class", r"ocrledger\.(kernel|engine)\..*")]

html_theme = "alabaster"
html_title = f"ocrledger {release}"


def _factory_defaults(app: Any, what: str, name: str, obj: Any, options: Any, signature: str | None,
                      return_annotation: str | None) -> tuple[str | None, str | None]:
    """A dataclass field made by ``default_factory`` shows as ``=<factory>`` in the class signature, which is
    not Python, so Sphinx could not parse the signature (its annotations became broken references): each
    is shown as the factory's call (``=tuple()``)."""
    if signature and "<factory>" in signature and dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            if f.init and f.default_factory is not dataclasses.MISSING:
                signature = signature.replace("<factory>", f"{getattr(f.default_factory, '__name__', '...')}()", 1)
    return signature, return_annotation


def setup(app: Any) -> None:
    from pygments.lexers.special import TextLexer

    app.add_lexer("csv", TextLexer)  # the README's CSV examples (Pygments has no CSV lexer): shown as text
    app.connect("autodoc-process-signature", _factory_defaults)
