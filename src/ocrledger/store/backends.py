"""Which backend holds a ledger: a ``postgresql://`` URL is a PostgreSQL server, anything else a SQLite file."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .postgres_sql import PostgresStore, is_postgres
from .sqlite_sql import SqliteStore

Store = Any
"""A ``SqliteStore`` or a ``PostgresStore``: the same methods, one backend's SQL each."""


def store_class(target: str | Path) -> type:
    """The store class of a ledger target (a URL or a file path)."""
    return PostgresStore if is_postgres(target) else SqliteStore


def create_store(target: str | Path, init: Callable[[Store], None], *, timeout: float) -> Store:
    """A new ledger's store, made complete with ``init`` or not at all."""
    return store_class(target).create(str(target), init, timeout=timeout)


def open_store(target: str | Path, *, readonly: bool | None, timeout: float) -> Store:
    """An existing ledger's store."""
    return store_class(target).open(str(target), readonly=readonly, timeout=timeout)


def exists(target: str | Path) -> bool:
    """True when a ledger is there (a file, or the meta table in the URL's schema)."""
    if is_postgres(target):
        return PostgresStore.exists(str(target))
    return Path(target).exists()


def target_of(text: str) -> str | Path:
    """A ``--db`` argument: a URL stays text, anything else is a path."""
    return text if is_postgres(text) else Path(text)
