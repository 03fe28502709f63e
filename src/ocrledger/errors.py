"""The one exception hierarchy of ocrledger: every error names where it happened (file, row, field)."""
from __future__ import annotations

from typing import Any


class OcrledgerError(Exception):
    """Base of every error ocrledger raises on purpose.

    ``str(err)`` is one line: ``FILE: row N: field F: message`` with the parts that are known.
    The command line prints exactly that line and exits with status 2.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.row = row
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(str(self.file))
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.field is not None:
            parts.append(f"field {self.field}")
        parts.append(self.message)
        return ": ".join(parts).replace("\n", " ")

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its parts (a Dask worker's error reaches the client as it was raised)."""
        return (_rebuild, (type(self), self.message, self.file, self.row, self.field), dict(self.__dict__))

    def at(self, *, file: str | None = None, row: int | None = None) -> "OcrledgerError":
        """Return the same error with the file (and row) filled in where they were unknown."""
        if file is not None and self.file is None:
            self.file = file
        if row is not None and self.row is None:
            self.row = row
        self.args = (self.__str__(),)
        return self


class CatalogError(OcrledgerError):
    """The catalog (APIs, tiers, prices, time zone) is malformed."""


class AccountsError(OcrledgerError):
    """The accounts file (accounts, activations, plans, add-ons, alerts) is malformed."""


class CallsError(OcrledgerError):
    """A call record cannot be read or does not fit the catalog."""


class MoneyError(OcrledgerError):
    """A money amount is malformed or would overflow int64 micro-units."""


class StateError(OcrledgerError):
    """Calls were offered out of the order the counters require (e.g. a month already passed)."""


def _rebuild(cls: type, message: str, file: str | None, row: int | None, field: str | None) -> OcrledgerError:
    return cls(message, file=file, row=row, field=field)


class ConflictError(OcrledgerError):
    """A concurrent writer committed a conflicting row first: nothing was committed, the operation can be run
    again (the ledger runs a batch again itself)."""


class ConnectionLostError(OcrledgerError):
    """The connection to the database server failed: the transaction was not committed (unless the server had
    committed it before the line went down); sending the batch again is safe (its id makes it a no-op)."""
