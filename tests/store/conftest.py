"""Ledger fixtures: ``ledger_target`` runs a test on SQLite and on a real PostgreSQL server this session starts."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import pg_server
import pytest

BACKENDS = ("sqlite", "postgres")


class Target:
    """Where a test's ledgers go: ``new()`` a fresh, empty location on one backend each call."""

    def __init__(self, backend: str, folder: Path) -> None:
        self.backend, self.folder = backend, folder
        self._count = itertools.count()

    @property
    def postgres(self) -> bool:
        return self.backend == "postgres"

    def new(self, persistent: bool = False) -> str:
        """A new ledger location: a fresh PostgreSQL schema; on SQLite ``:memory:``, or a new file when the test
        reopens it (``persistent``) or other processes use it."""
        if self.postgres:
            return pg_server.server().url()
        if not persistent:
            return ":memory:"
        return str(self.folder / f"ledger-{next(self._count)}.sqlite")


@pytest.fixture(scope="session")
def pg_session() -> Iterator[None]:
    """The session's PostgreSQL server: started on first use (initdb, pg_ctl as postgres), stopped at the end."""
    pg_server.require()
    pg_server.server()
    yield
    pg_server.stop_all()


@pytest.fixture(scope="session", params=BACKENDS)
def ledger_target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Target:
    """Each test taking it runs on SQLite and on PostgreSQL (skipped locally without a server, failed under CI)."""
    if request.param == "postgres":
        request.getfixturevalue("pg_session")
    return Target(str(request.param), tmp_path_factory.mktemp(f"ledgers-{request.param}"))
