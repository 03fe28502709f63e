"""The ``ocrledger`` command: parses options, calls the engine, prints; errors are one line and exit 2."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from ..errors import OcrledgerError
from ..kernel import select as _kernel
from ..version import __version__
from . import ledger as ledger_cli

EXIT_INPUT = 2
"""Exit status for bad input (a file, row or field that cannot be used) and for usage errors."""

Handler = Callable[[argparse.Namespace], int]


def _add_rate(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "rate",
        help="rate call records and print the bills",
        description="Rate call records from scratch and print the bill of every account, channel and "
        "month present in them, sorted by account, channel, period.",
    )
    p.add_argument("--catalog", type=Path, help="catalog TOML (APIs, tiers, time zone); default: the bundled "
                   "Alibaba Cloud OCR catalog")
    p.add_argument("--accounts", type=Path, help="accounts TOML (accounts, activations, plans, refunds, QPS "
                   "add-ons, alerts); default: none, so every official call is rejected as not activated")
    p.add_argument("--calls", type=Path, required=True, help="call records: CSV (record_id, account, api, ts, "
                   "success, optional channel) or Parquet with the same columns")
    p.add_argument("--month", metavar="YYYY-MM", help="print only this month's bills (every call is still "
                   "rated, since plans and the verification pool span months)")
    _add_format(p)
    p.set_defaults(handler=_run_rate)


def _add_demo(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "demo",
        help="rate the bundled sample and print its bills",
        description="Rate a bundled sample for October 2026 with the default catalog: the billing page's two "
        "worked examples (120,200 ID card calls = CNY 6,110.00; a 1,000-call dedicated plan with 5,000 "
        "calls = 200 free, 1,000 plan, 3,800 PAYG), a marketplace shop on a shared plan, and an official "
        "account with a verification API, a shared plan and a refunded plan.",
    )
    p.add_argument("--write", type=Path, metavar="DIR", help="also write the sample's accounts.toml and "
                   "calls.csv into DIR, to try `ocrledger rate` on them")
    _add_format(p, default="text")
    p.set_defaults(handler=_run_demo)


def _add_format(p: argparse.ArgumentParser, default: str = "json") -> None:
    from ..bills.render import FORMATS

    p.add_argument("--format", choices=FORMATS, default=default, help=f"output format (default: {default}); "
                   "json is a list of bill objects (SPEC §6), text a readable statement per bill, markdown a "
                   "document, csv one row per line, tier and total, html one self-contained printable file "
                   "with a usage chart (see docs/statements.md)")


def _run_rate(args: argparse.Namespace) -> int:
    from ..bills.render import render
    from ..engine.rate import rate

    result = rate(args.calls, args.catalog, args.accounts, month=args.month)
    sys.stdout.write(render(result.bills, args.format))
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from ..bills.render import render
    from ..engine.rate import rate
    from ..io.demo import demo_accounts, demo_calls, write_demo
    from ..model.catalog import default_catalog

    catalog = default_catalog()
    result = rate(demo_calls(catalog), catalog, demo_accounts(catalog))
    sys.stdout.write(render(result.bills, args.format))
    if args.write:
        for path in write_demo(args.write):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _add_explain(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "explain",
        help="say why one call record cost what it did",
        description="Rate the calls and explain one record: what paid for it (free quota, which plan and its "
        "remainder before and after, or its PAYG position, tier and unit price), or why it was rejected, a "
        "duplicate or failed.",
    )
    p.add_argument("--catalog", type=Path, help="catalog TOML; default: the bundled catalog")
    p.add_argument("--accounts", type=Path, help="accounts TOML; default: none")
    p.add_argument("--calls", type=Path, help="call records (CSV or Parquet), rated now")
    p.add_argument("--db", type=Path, help="instead of --calls: a ledger file, answered from its deduction log")
    p.add_argument("--record", required=True, metavar="RECORD_ID", help="the record_id to explain")
    p.add_argument("--channel", choices=("official", "marketplace"), help="only the record on this channel")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    p.set_defaults(handler=_run_explain)


def _run_explain(args: argparse.Namespace) -> int:
    from ..engine.explain import explain, explanations_json

    if (args.db is None) == (args.calls is None):
        raise OcrledgerError("give either --calls (rate them now) or --db (a ledger's deduction log)")
    if args.db is not None:
        return ledger_cli.explain_from_log(args.db, args.record, args.channel, args.format)
    items = explain(args.calls, args.record, args.catalog, args.accounts, channel=args.channel)
    sys.stdout.write(explanations_json(items) if args.format == "json" else "\n".join(e.text() for e in items))
    return 0


def _add_advise(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "advise",
        help="find the cheapest resource plans for an account's past usage",
        description="Find the provably cheapest mix of the catalog's [[plan_offer]] entries (plus PAYG for the "
        "rest) that would have paid for an account's calls in a window of months, bought at the window's start, "
        "and show it beside what the account paid (see docs/statements.md for the model).",
    )
    p.add_argument("--catalog", type=Path, help="catalog TOML with [[plan_offer]]; default: the bundled catalog "
                   "and its public Alibaba Cloud OCR plan offers")
    p.add_argument("--accounts", type=Path, help="accounts TOML; default: none")
    p.add_argument("--calls", type=Path, required=True, help="call records (CSV or Parquet)")
    p.add_argument("--account", required=True, help="the account to advise")
    p.add_argument("--channel", choices=("official", "marketplace"), default="official")
    p.add_argument("--months", required=True, metavar="YYYY-MM..YYYY-MM", help="the window (or one YYYY-MM)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    p.set_defaults(handler=_run_advise)


def _run_advise(args: argparse.Namespace) -> int:
    from ..advisor.advise import advise

    advice = advise(args.calls, args.account, args.months, args.catalog, args.accounts, channel=args.channel)
    sys.stdout.write(advice.to_json() if args.format == "json" else advice.text())
    return 0


def _add_rerate(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "rerate",
        help="rerate a period of archived calls in bounded memory and explain every charge",
        description="Rate archived calls from scratch in (ts, record_id) order, streaming in chunks with bounded "
        "memory (input need not be sorted), and write DIR/bills.json, DIR/bills.txt, DIR/calls.parquet (what "
        "paid for every call) and DIR/summary.json. With --against, also DIR/diff.json and DIR/diff.txt.",
    )
    p.add_argument("--catalog", type=Path, help="catalog TOML; default: the bundled Alibaba Cloud OCR catalog")
    p.add_argument("--accounts", type=Path, help="accounts TOML, or a folder of account tables (accounts, "
                   "activations, plans, qps_addons, alerts as CSV or Parquet)")
    p.add_argument("--calls", type=Path, required=True, help="Parquet file, folder of Parquet files, or CSV")
    p.add_argument("--month", metavar="YYYY-MM", help="bill and explain only this month (earlier calls are "
                   "still rated: plans and the verification pool carry over)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (nothing is written "
                   "outside it; temporary spill files live in a hidden folder inside it)")
    p.add_argument("--against", type=Path, metavar="OLD", help="bills that were issued (JSON file or folder): "
                   "write the differences (adjustments) too")
    p.add_argument("--chunk-rows", type=int, default=None, help="rows read at a time")
    p.add_argument("--bucket-rows", type=int, default=None, help="calls held in memory at once (memory bound)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is shown on a terminal only)")
    p.add_argument("--bills-only", action="store_true", help="skip the per-call attribution (no calls.parquet): "
                   "bills, summary and diff only")
    p.add_argument("--scheduler", metavar="ADDRESS|local|local:N", help="rerate on a Dask cluster: a scheduler "
                   "address (tcp://host:8786), or a LocalCluster of one worker per core (local) or N workers "
                   "(local:N); needs 'ocrledger[dask]', and the workers must see --calls and --out")
    p.set_defaults(handler=_run_rerate)


def _run_rerate(args: argparse.Namespace) -> int:
    from ..engine.rate import as_accounts, as_catalog
    from ..rerate.rerater import DEFAULT_BUCKET_ROWS, DEFAULT_CHUNK_ROWS, rerate
    from .process import keep_pandas_out, release_memory_promptly

    release_memory_promptly()
    keep_pandas_out()
    catalog = as_catalog(args.catalog)
    # a path is loaded on a second thread while the calls are read
    accounts = args.accounts if args.accounts is not None else as_accounts(None, catalog)
    if args.scheduler is not None:
        from ..cluster import dask as on_dask

        result = on_dask.rerate(
            args.calls, catalog, accounts, month=args.month, out=args.out, against=args.against,
            scheduler=args.scheduler, bills_only=args.bills_only, chunk_rows=args.chunk_rows or DEFAULT_CHUNK_ROWS,
        )
    else:
        result = rerate(
            args.calls, catalog, accounts, month=args.month, out=args.out,
            against=args.against, chunk_rows=args.chunk_rows or DEFAULT_CHUNK_ROWS,
            bucket_rows=args.bucket_rows or DEFAULT_BUCKET_ROWS, progress=not args.no_progress,
            bills_only=args.bills_only,
        )
    s = result.summary
    print(f"rated {s['calls_rated']:,} calls in {s['seconds']:.1f} s ({s['calls_per_second'] or 0:,} calls/s): "
          f"{s['bills']:,} bills, total {s['bill_total']}; wrote {', '.join(str(f) for f in result.files.values())}")
    if result.diff is not None:
        sys.stdout.write(result.diff.to_text())
    return 0


def _add_diff(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "diff",
        help="list the differences between two sets of bills (the adjustments to issue)",
        description="Compare OLD and NEW bills (JSON files, rerate output folders, or folders of JSON bill "
        "files) per account, channel, month and API: calls by source and amounts.",
    )
    p.add_argument("old", type=Path, metavar="OLD")
    p.add_argument("new", type=Path, metavar="NEW")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when the bills differ")
    p.set_defaults(handler=_run_diff)


def _run_diff(args: argparse.Namespace) -> int:
    import json

    from ..bills.diff import diff_bills, load_bills

    result = diff_bills(load_bills(args.old), load_bills(args.new), old_name=str(args.old), new_name=str(args.new))
    sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n" if args.format == "json" else result.to_text())
    return 1 if args.exit_code and result.has_changes else 0


COMMANDS: list[Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]] = [
    _add_rate, _add_demo, _add_explain, _add_advise,
]
"""Sub-command registrars, in help order; feature modules append theirs here."""
COMMANDS += ledger_cli.REGISTRARS
COMMANDS += [_add_rerate, _add_diff]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocrledger",
        description="Exact rating and deduction engine for per-call-billed APIs, on the Alibaba Cloud OCR "
        "billing model: free quota, then dedicated plans, then shared plans, then graduated pay-as-you-go.",
        epilog="Exit status: 0 ok, 2 bad input or usage (one line on stderr naming the file, row and field).",
    )
    parser.add_argument("--version", action="version", version=f"ocrledger {__version__} ({_kernel.IMPLEMENTATION} kernel)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except OcrledgerError as exc:
        print(f"ocrledger: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:
        return 0


def run() -> None:
    """The ``ocrledger`` command: ``main()``, then exit without tearing the interpreter down.

    Every output is written and closed by then. Freeing a large rerate's millions of objects one
    by one at exit took about 0.15 s, so the command flushes stdout and stderr and leaves with
    ``os._exit``. ``main()`` itself (for programs and tests) returns normally.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said on it
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
