"""Sub-commands over a ledger file: ingest, bill, quota, close, alerts (registered in ``cli.COMMANDS``)."""
from __future__ import annotations

import argparse
import functools
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any, Callable

from ..errors import OcrledgerError

Sub = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _db(p: argparse.ArgumentParser, creates: bool = False) -> None:
    p.add_argument("--db", type=Path, required=True, help="the ledger's SQLite file" + (
        "; created from --catalog/--accounts if it does not exist yet" if creates else ""))


def _open(args: argparse.Namespace) -> Any:
    from ..store.ledger import Ledger

    creating = getattr(args, "catalog", None) is not None or getattr(args, "accounts", None) is not None
    if not args.db.exists():
        if not creating:
            raise OcrledgerError("no ledger here; give --accounts (and --catalog) once to create it", file=str(args.db))
        return Ledger.create(args.db, args.catalog, args.accounts)
    if creating:
        raise OcrledgerError("the ledger exists already; --catalog/--accounts are only for creating it", file=str(args.db))
    return Ledger.open(args.db)


SQLITE_FULL = 13
"""SQLite's result code for a full disk (``sqlite3.Error.sqlite_errorcode``)."""


def on_ledger(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a ledger command with SQLite's errors (a file that is not a database, a folder, a full disk)
    turned into one line naming ``--db``: ``OcrledgerError`` (exit 2), or ``OSError(ENOSPC)`` for a
    full disk (exit 1, an output that could not be written)."""

    @functools.wraps(run)
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL:
                import errno

                raise OSError(errno.ENOSPC, f"the ledger's disk is full ({exc})", str(args.db)) from None
            raise OcrledgerError(f"cannot use this file as a ledger: {exc}", file=str(args.db)) from None

    return guarded


def add_ingest(sub: Sub) -> None:  # type: ignore[valid-type]
    p = sub.add_parser("ingest", help="rate a batch of calls into a ledger (all or nothing)",
                       description="Rate a batch of call records on top of the ledger's counters and commit it in "
                       "one transaction. Re-sending a committed --batch-id does nothing and says so.")
    _db(p, creates=True)
    p.add_argument("--calls", type=Path, required=True, help="call records (CSV or Parquet); may carry a "
                   "'credential' column instead of account/channel")
    p.add_argument("--batch-id", help="idempotency key of the batch (default: the calls file name)")
    p.add_argument("--catalog", type=Path, help="catalog TOML, only when creating the ledger (default: bundled)")
    p.add_argument("--accounts", type=Path, help="accounts TOML, only when creating the ledger")
    p.set_defaults(handler=_run_ingest)


@on_ledger
def _run_ingest(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        result = ledger.ingest(args.calls, args.batch_id or args.calls.name)
    if result.replayed:
        print(f"batch {result.batch_id} was already committed: nothing done")
        return 0
    n = len(result.calls.get("ts", []))
    print(f"batch {result.batch_id}: {_count(n, 'call')} rated, {_count(result.duplicates, 'duplicate')}, "
          f"{result.late:,} late (adjustments), {_count(len(result.alerts), 'alert')} raised")
    return 0


def _count(n: int, word: str) -> str:
    """``1 call``, ``2 calls``: a count with its noun."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def add_bill(sub: Sub) -> None:  # type: ignore[valid-type]
    from ..bills.render import FORMATS

    p = sub.add_parser("bill", help="print the bills of a month from a ledger",
                       description="Print a month's bills: frozen if the month is closed, provisional otherwise.")
    _db(p)
    p.add_argument("--month", required=True, metavar="YYYY-MM", help="the month of the bills (in the catalog's "
                   "time zone)")
    p.add_argument("--account", help="only this account")
    p.add_argument("--channel", choices=("official", "marketplace"), help="only this channel")
    p.add_argument("--format", choices=FORMATS, default="json", help="output format (default: json)")
    p.set_defaults(handler=_run_bill)


@on_ledger
def _run_bill(args: argparse.Namespace) -> int:
    from ..bills.render import render

    with _open(args) as ledger:
        if args.format == "json":
            texts = ledger.bill_texts(args.month, args.account, args.channel)
            sys.stdout.write("[" + ",\n".join(texts) + "]\n")
        else:
            sys.stdout.write(render(ledger.bills(args.month, args.account, args.channel), args.format))
    return 0


def add_quota(sub: Sub) -> None:  # type: ignore[valid-type]
    p = sub.add_parser("quota", help="remaining plan, free and verification quota of an account")
    _db(p)
    p.add_argument("--account", required=True, help="the account to look at")
    p.add_argument("--channel", default="official", choices=("official", "marketplace"),
                   help="the account's channel (default: official)")
    p.add_argument("--at", help="instant to look at (ISO 8601 or epoch ms; default: now)")
    p.set_defaults(handler=_run_quota)


@on_ledger
def _run_quota(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        print(json.dumps(ledger.quota(args.account, args.channel, args.at), indent=2))
    return 0


def add_close(sub: Sub) -> None:  # type: ignore[valid-type]
    p = sub.add_parser("close", help="close a month: freeze its bills",
                       description="Freeze a month's bills (the seed: generated on the 1st of the next month). "
                       "Calls of a closed month that arrive later become adjustments on the next open bill.")
    _db(p)
    p.add_argument("--month", required=True, metavar="YYYY-MM", help="the month to close (every earlier month "
                   "with calls must be closed first)")
    p.set_defaults(handler=_run_close)


@on_ledger
def _run_close(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        bills = ledger.close(args.month)
    print(f"closed {args.month}: {len(bills)} bills frozen")
    return 0


def add_alerts(sub: Sub) -> None:  # type: ignore[valid-type]
    p = sub.add_parser("alerts", help="print alerts not delivered yet (each is delivered once)")
    _db(p)
    p.add_argument("--peek", action="store_true", help="show without marking them delivered")
    p.set_defaults(handler=_run_alerts)


@on_ledger
def _run_alerts(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        for alert in ledger.pending_alerts(acknowledge=not args.peek):
            print(json.dumps(alert))
    return 0


REGISTRARS = [add_ingest, add_bill, add_quota, add_close, add_alerts]
