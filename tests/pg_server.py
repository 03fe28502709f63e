"""A throw-away PostgreSQL server for the tests and benchmarks: initdb in a temporary folder, started as the
``postgres`` user on a unix socket and port of its own, a fresh schema per ledger, stopped at the end."""
from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from typing import Any
from pathlib import Path

_SERVERS: dict[bool, "PgServer"] = {}
_COUNTER = itertools.count()


def bindir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("pg_config")
    if found:
        done = subprocess.run([found, "--bindir"], capture_output=True, text=True)
        folder = Path(done.stdout.strip())
        if done.returncode == 0 and (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda f: int(f.split("/")[-2]), reverse=True):
        if (Path(folder) / "initdb").exists():
            return Path(folder)
    return None


def missing_reason() -> str | None:
    """Why no server can be started here (None: one can)."""
    if bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver is not installed: pip install 'ocrledger[postgres]'"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and no 'postgres' user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One server: ``url()`` a fresh ledger location (a schema of its own) in the ``postgres`` database."""

    def __init__(self, durable: bool) -> None:
        folder = bindir()
        assert folder is not None, missing_reason()
        self.bin = folder
        self.dir = Path(tempfile.mkdtemp(prefix="ocrledger-pg-"))
        self.port = _free_port()
        self.as_user: dict[str, Any] = {}
        if os.geteuid() == 0:  # the server refuses to run as root: its commands run as postgres (no runuser/su
            user = pwd.getpwnam("postgres")  # binary needed, which a PATH without /usr/sbin would not find)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [],
                            "env": {**os.environ, "HOME": user.pw_dir, "USER": "postgres", "LOGNAME": "postgres"}}
        data = self.dir / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        options = f"-k {self.dir} -p {self.port} -c listen_addresses='' -c max_connections=200"
        if not durable:  # tests: the clients are killed, never the server; durability costs only time here
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-o", options, "-w",
                  "-t", "60", "start")
        self.started = True
        atexit.register(self.stop)

    def _run(self, *cmd: str) -> None:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, cwd=self.dir, **self.as_user)
        if done.returncode != 0:
            log = self.dir / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{cmd[0]} failed: {done.stderr.strip()} {tail}")

    def base_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.dir}&port={self.port}"

    def url(self, prefix: str = "t") -> str:
        """A new, empty ledger location: a schema name never used before (the ledger creates it)."""
        return f"{self.base_url()}&ocrledger_schema={prefix}{os.getpid()}_{next(_COUNTER)}"

    def stop(self) -> None:
        if not getattr(self, "started", False):
            return
        self.started = False
        subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=120, cwd=self.dir, **self.as_user)
        shutil.rmtree(self.dir, ignore_errors=True)


def server(durable: bool = False) -> PgServer:
    """This process's server (started on first use, stopped at exit or by ``stop_all``)."""
    if durable not in _SERVERS:
        _SERVERS[durable] = PgServer(durable)
    return _SERVERS[durable]


def stop_all() -> None:
    for s in _SERVERS.values():
        s.stop()
    _SERVERS.clear()


def require() -> None:
    """Skip (locally) or fail (under CI=true) when no server can be started here."""
    import pytest

    reason = missing_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the PostgreSQL tests: {reason}", pytrace=False)
    pytest.skip(reason)


def split_url_for_driver(url: str) -> str:
    """The URL without the ledger's own ``ocrledger_schema`` parameter (for a plain driver connection)."""
    return url.split("&ocrledger_schema=")[0]
