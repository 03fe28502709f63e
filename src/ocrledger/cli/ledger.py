"""Sub-commands over a ledger file: ingest, bill, quota, close, alerts, log, details, plans, and the lifecycle changes."""
from __future__ import annotations

import argparse
import functools
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any, Callable

from ..errors import OcrledgerError
from ..model.display import printable

Sub = "argparse._SubParsersAction[argparse.ArgumentParser]"


def db_target(text: str) -> Any:
    """A ``--db`` value: a ``postgresql://`` URL stays text (docs/postgres.md), anything else is a file path."""
    from ..store.backends import target_of

    return target_of(text)


def _db(p: argparse.ArgumentParser, creates: bool = False) -> None:
    p.add_argument("--db", type=db_target, required=True, help="the ledger: a SQLite file or a postgresql:// URL" + (
        "; created from --catalog/--accounts if it does not exist yet" if creates else ""))


def _format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "json"), default="json", help="output format (default: json)")


def _open(args: argparse.Namespace) -> Any:
    from ..store.backends import exists
    from ..store.ledger import Ledger

    creating = getattr(args, "catalog", None) is not None or getattr(args, "accounts", None) is not None
    if not exists(args.db):
        if not creating:
            raise OcrledgerError("no ledger here; give --accounts (and --catalog) once to create it", file=str(args.db))
        return Ledger.create(args.db, args.catalog, args.accounts)
    if creating:
        raise OcrledgerError("the ledger exists already; --catalog/--accounts are only for creating it", file=str(args.db))
    return Ledger.open(args.db)


def _emit(text: str) -> None:
    """Write and flush, so that a failed write (a full disk, /dev/full) is an error before anything is
    acknowledged (the OSError reaches ``cli.main``, which names the output in one line, exit 1)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def _show(rows: Any, fmt: str, text: Callable[[Any], str]) -> None:
    """JSON keeps every id exact; text shows each string value through ``printable`` (an id's control
    characters escaped, so it can neither drive the terminal nor break a line)."""
    _emit(json.dumps(rows, indent=2, ensure_ascii=False) + "\n" if fmt == "json" else text(_printable(rows)))


def _printable(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_printable(v) for v in value)
    return value


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
            _emit("[" + ",\n".join(texts) + "]\n")
        else:
            _emit(render(ledger.bills(args.month, args.account, args.channel), args.format))
    return 0


def add_quota(sub: Sub) -> None:  # type: ignore[valid-type]
    p = sub.add_parser("quota", help="remaining plan, free and verification quota of an account")
    _db(p)
    p.add_argument("--account", required=True, help="the account to look at")
    p.add_argument("--channel", default="official", choices=("official", "marketplace"),
                   help="the account's channel (default: official)")
    p.add_argument("--at", help="instant to look at (ISO 8601 or epoch ms; default: now)")
    _format(p)
    p.set_defaults(handler=_run_quota)


def _quota_text(q: dict[str, Any]) -> str:
    lines = [f"{q['account']} ({q['channel']}) at {q['at']}, month {q['month']}"]
    for p in q["plans"]:
        lines.append(f"  plan {p['id']} ({p['kind']}): {p['remaining']:,} of {p['quantity']:,} left, "
                     f"{p['start']} to {p['end']}{'' if p['active'] else ' (not active)'}")
    for api, left in q["free_remaining"].items():
        lines.append(f"  free {api}: {left:,} left this month")
    if q["verification_pool_remaining"] is not None:
        lines.append(f"  verification pool: {q['verification_pool_remaining']:,} left")
    return "\n".join(lines) + "\n"


@on_ledger
def _run_quota(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        q = ledger.quota(args.account, args.channel, args.at)
    _show(q, args.format, _quota_text)
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
        bills = ledger.close_month(args.month)
    print(f"closed {args.month}: {len(bills)} bills frozen")
    return 0


def add_alerts(sub: Sub) -> None:  # type: ignore[valid-type]
    p = sub.add_parser("alerts", help="print alerts not delivered yet; acknowledged only once printed",
                       description="Print the alerts not acknowledged yet, oldest first, and acknowledge them once "
                       "the output was written (at least once: a failed write acknowledges nothing).")
    _db(p)
    p.add_argument("--peek", action="store_true", help="show without acknowledging them")
    p.add_argument("--ack", type=int, metavar="ID", help="only acknowledge the alerts up to id ID (a reader that "
                   "handled them after --peek)")
    p.add_argument("--format", choices=("text", "json"), default="json",
                   help="json: one JSON object a line (default); text: one sentence a line")
    p.set_defaults(handler=_run_alerts)


@on_ledger
def _run_alerts(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        if args.ack is not None:
            n = ledger.ack_alerts(args.ack)
            print(f"{_count(n, 'alert')} acknowledged")
            return 0
        rows = ledger.alerts()
        if args.format == "json":
            _emit("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in rows))
        else:
            _emit("".join(f"#{a['id']} {a['account']} ({a['channel']}): {a['message']} (record {a['record_id']})\n"
                          for a in _printable(rows)))
        if rows and not args.peek:
            ledger.ack_alerts(rows[-1]["id"])
    return 0


def _call_filters(p: argparse.ArgumentParser, plan_help: str) -> None:
    """The filters the log and the call details share: account, channel, API, plan, time range."""
    p.add_argument("--account", help="only this account's calls")
    p.add_argument("--channel", choices=("official", "marketplace"), help="only this channel's calls")
    p.add_argument("--api", help="only this API's calls")
    p.add_argument("--plan", help=plan_help)
    p.add_argument("--since", help="calls at or after this instant")
    p.add_argument("--until", help="calls before this instant")


def add_log(sub: Sub) -> None:  # type: ignore[valid-type]
    p = sub.add_parser("log", help="the per-call deduction log: what paid for each call, paged and filtered",
                       description="Rows of the per-call deduction log (status, source, plan, tier, exact amount, "
                       "the plan's remainder after the call), oldest first. Continue with --after NEXT.")
    _db(p)
    _call_filters(p, "only the calls this plan paid (its deductions)")
    p.add_argument("--record", metavar="RECORD_ID", help="only this record's rows")
    p.add_argument("--status", action="append", help="charged, failed, duplicate, rejected, ... (repeatable)")
    p.add_argument("--after", type=int, default=0, metavar="SEQ", help="start after this log row (paging)")
    p.add_argument("--limit", type=int, default=100, help="rows a page (default 100, at most 10,000)")
    _format(p)
    p.set_defaults(handler=_run_log)


def _page_text(page: dict[str, Any], line: Callable[[dict[str, Any]], str]) -> str:
    """A page of rows as text, one line each, and where the next page starts."""
    out = [line(r) for r in page["rows"]]
    if page["next_after"] is not None:
        out.append(f"more: --after {page['next_after']}")
    return "\n".join(out) + ("\n" if out else "")


def _log_line(r: dict[str, Any]) -> str:
    return (f"{r['seq']:>8} {r['ts']} {r['account']} {r['api']} {r['record_id']} {r['status']} {r['source']}"
            f"{' ' + r['plan'] + ' left ' + str(r['plan_remaining']) if r['plan'] else ''}"
            f"{' tier ' + str(r['tier']) if r['tier'] else ''} {r['amount']}")


@on_ledger
def _run_log(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        page = ledger.deductions(account=args.account, channel=args.channel, api=args.api, plan=args.plan,
                                 record_id=args.record, since=args.since, until=args.until, status=args.status,
                                 after=args.after, limit=args.limit)
    _show({"rows": page.rows, "next_after": page.next_after}, args.format, lambda p: _page_text(p, _log_line))
    return 0


def add_details(sub: Sub) -> None:  # type: ignore[valid-type]
    p = sub.add_parser("details", help="call details per account, API and day, filtered and paged",
                       description="Per account, API and day (billing zone): calls, failed, rejected, duplicates and "
                       "the successful calls by source (free, dedicated, shared, PAYG). Continue with --after NEXT.")
    _db(p)
    _call_filters(p, "only the calls this plan paid")
    p.add_argument("--after", type=int, default=0, metavar="N", help="skip the first N rows (paging)")
    p.add_argument("--limit", type=int, default=100, help="rows a page (default 100)")
    _format(p)
    p.set_defaults(handler=_run_details)


def _details_line(r: dict[str, Any]) -> str:
    return (f"{r['day']} {r['account']} {r['channel']} {r['api']} calls {r['calls']} failed {r['failed']} "
            f"rejected {r['rejected']} duplicates {r['duplicates']} free {r['free']} dedicated {r['dedicated']} "
            f"shared {r['shared']} payg {r['payg']}")


@on_ledger
def _run_details(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise OcrledgerError(f"--limit must be at least 1, not {args.limit}")
    with _open(args) as ledger:
        rows = ledger.call_details(args.account, args.channel, api=args.api, plan=args.plan, since=args.since,
                                   until=args.until, after=args.after, limit=args.limit + 1)
    more = len(rows) > args.limit
    _show({"rows": rows[: args.limit], "next_after": args.after + args.limit if more else None}, args.format,
          lambda p: _page_text(p, _details_line))
    return 0


def add_plans(sub: Sub) -> None:  # type: ignore[valid-type]
    p = sub.add_parser("plans", help="an account's plans: total, remaining, start, end and status")
    _db(p)
    p.add_argument("--account", required=True, help="the account id")
    p.add_argument("--channel", default="official", choices=("official", "marketplace"),
                   help="the account's channel (default official)")
    p.add_argument("--at", help="instant to look at (default: now)")
    _format(p)
    p.set_defaults(handler=_run_plans)


@on_ledger
def _run_plans(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        states = [s.to_dict() for s in ledger.plan_states(args.account, args.channel, args.at)]
    _show(states, args.format, lambda rows: "".join(
        f"{s['id']} ({s['kind']}): {s['status']}, {s['remaining']:,} of {s['total']:,} left, {s['start']} to "
        f"{s['end']}\n" for s in rows))
    return 0


def _change(name: str, help_: str, fields: list[tuple[str, dict[str, Any]]],
            apply: Callable[[Any, argparse.Namespace], str]) -> Callable[[Any], None]:
    def register(sub: Sub) -> None:  # type: ignore[valid-type]
        p = sub.add_parser(name, help=help_, description=help_ + " (one row, effective from its own instant).")
        _db(p)
        for flag, options in fields:
            p.add_argument(flag, **options)

        def run(args: argparse.Namespace) -> int:
            with _open(args) as ledger:
                print(apply(ledger, args))
            return 0

        p.set_defaults(handler=run)

    return register


def _drop_none(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _activations(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        api, sep, at = pair.partition("=")
        if not sep:
            raise OcrledgerError(f"--activate takes API=INSTANT, not {pair!r}")
        out[api] = at
    return out


ACCOUNT = ("--account", {"required": True, "help": "the account id"})
CHANNEL = ("--channel", {"default": "official", "choices": ("official", "marketplace"),
                         "help": "the account's channel (default official)"})

add_account_cmd = _change(
    "add-account", "list an account on an existing ledger",
    [ACCOUNT, CHANNEL, ("--activate", {"action": "append", "metavar": "API=INSTANT", "help": "activate an API"})],
    lambda led, a: (led.add_account(a.account, a.channel, _activations(a.activate)) or f"account {a.account} added"),
)
activate_cmd = _change(
    "activate", "activate an API for an official account",
    [ACCOUNT, ("--api", {"required": True, "help": "the API code"}),
     ("--at", {"required": True, "help": "the activation instant (ISO 8601 with an offset, or epoch ms)"})],
    lambda led, a: (led.activate(a.account, a.api, a.at) or f"{a.api} active for {a.account} from {a.at}"),
)
buy_plan_cmd = _change(
    "buy-plan", "buy a resource plan",
    [("--id", {"required": True, "help": "the plan's id (unique in the ledger)"}), ACCOUNT, CHANNEL,
     ("--kind", {"required": True, "choices": ("dedicated", "shared"), "help": "dedicated (one API) or shared"}),
     ("--api", {"help": "the API of a dedicated plan"}), ("--apis", {"help": "API codes of a shared plan, '|'-separated"}),
     ("--quantity", {"required": True, "type": int, "help": "calls (dedicated) or points (shared)"}),
     ("--start", {"required": True, "help": "the instant it starts paying"}),
     ("--end", {"help": "the instant it ends (default: one year after the start)"}),
     ("--price", {"help": "what was paid for it (shown, never charged per call)"})],
    lambda led, a: (led.add_plan(**_drop_none(id=a.id, account=a.account, channel=a.channel, kind=a.kind, api=a.api,
                                               apis=a.apis, quantity=a.quantity, start=a.start, end=a.end,
                                               price=a.price)) or f"plan {a.id} bought"),
)
refund_cmd = _change(
    "refund", "refund a plan: it pays for no call at or after the refund",
    [("--id", {"required": True, "help": "the plan's id"}),
     ("--at", {"required": True, "help": "the refund instant: the plan pays for no call at or after it"})],
    lambda led, a: (led.refund(a.id, a.at) or f"plan {a.id} refunded at {a.at}"),
)
add_credential_cmd = _change(
    "add-credential", "add an AccessKey ID (official) or AppCode (marketplace) of an account",
    [("--key", {"required": True, "help": "the AccessKey ID or AppCode"}), ACCOUNT, CHANNEL,
     ("--from", {"dest": "valid_from", "help": "valid from this instant (default: always)"}),
     ("--until", {"help": "valid before this instant (default: always)"})],
    lambda led, a: (led.add_credential(**_drop_none(key=a.key, account=a.account, channel=a.channel,
                                                    **{"from": a.valid_from}, until=a.until)) or "credential added"),
)
add_qps_addon_cmd = _change(
    "add-qps-addon", "buy a QPS add-on for an account's API",
    [ACCOUNT, CHANNEL, ("--api", {"required": True, "help": "the API code"}),
     ("--qps", {"required": True, "type": int, "help": "extra queries per second"}),
     ("--start", {"required": True, "help": "the instant it starts"}), ("--end", {"help": "the instant it ends"})],
    lambda led, a: (led.add_qps_addon(**_drop_none(account=a.account, channel=a.channel, api=a.api, qps=a.qps,
                                                   start=a.start, end=a.end)) or "QPS add-on added"),
)
add_alert_cmd = _change(
    "add-alert", "configure an alert: plan_remaining, free_exhausted or payg_spend",
    [ACCOUNT, CHANNEL, ("--kind", {"required": True, "help": "plan_remaining, free_exhausted or payg_spend"}),
     ("--target", {"help": "the plan id or API code it watches (default: all)"}),
     ("--threshold", {"help": "plan_remaining: calls/points left or a percentage such as 10%%"})],
    lambda led, a: (led.add_alert(**_drop_none(account=a.account, channel=a.channel, kind=a.kind, target=a.target,
                                               threshold=a.threshold)) or "alert added"),
)
retention_cmd = _change(
    "retention", "set how many closed months the deduction log keeps (pruned at each close)",
    [("--months", {"type": int, "help": "months to keep; leave out to keep everything"})],
    lambda led, a: (led.set_retention(a.months) or f"retention: {a.months or 'every'} month(s)"),
)


def explain_from_log(db: Any, record: str, channel: str | None, fmt: str) -> int:
    """``explain --db``: the record's rows of the deduction log."""
    from ..store.ledger import Ledger

    with Ledger.open(db) as ledger:
        rows = ledger.explain(record, channel)
        batch = ledger.committed_by(record, channel) if not rows else None
    if not rows and batch is not None:
        raise OcrledgerError(f"record {record!r} was committed by batch {batch!r}; its log rows were pruned by the "
                             "retention setting (it is still a duplicate if it comes again)", file=str(db))
    if not rows:
        raise OcrledgerError(f"no record {record!r} in the ledger's deduction log", file=str(db))
    _show(rows, fmt, lambda rs: "".join(
        f"{r['record_id']} ({r['account']}, {r['channel']}, {r['api']}, {r['ts']}): {r['status']}, paid by "
        f"{r['source']}{' plan ' + r['plan'] + ' (' + str(r['plan_remaining']) + ' left after it)' if r['plan'] else ''}"
        f"{', tier ' + str(r['tier']) if r['tier'] else ''}, {r['amount']} (batch {r['batch_id']})\n" for r in rs))
    return 0


REGISTRARS = [add_ingest, add_bill, add_quota, add_close, add_alerts, add_log, add_details, add_plans, add_account_cmd,
              activate_cmd, buy_plan_cmd, refund_cmd, add_credential_cmd, add_qps_addon_cmd, add_alert_cmd,
              retention_cmd]
