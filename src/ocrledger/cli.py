"""The ``ocrledger`` command: parses options, calls the engine, prints; errors are one line and exit 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import __version__, _kernel, ledger_cli
from .errors import OcrledgerError

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
    from .render import FORMATS

    p.add_argument("--format", choices=FORMATS, default=default, help=f"output format (default: {default}); "
                   "json is a list of bill objects (SPEC §6), text a readable statement per bill")


def _run_rate(args: argparse.Namespace) -> int:
    from .rating import rate
    from .render import render

    result = rate(args.calls, args.catalog, args.accounts, month=args.month)
    sys.stdout.write(render(result.bills, args.format))
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from .catalog import default_catalog
    from .demo import demo_accounts, demo_calls, write_demo
    from .rating import rate
    from .render import render

    catalog = default_catalog()
    result = rate(demo_calls(catalog), catalog, demo_accounts(catalog))
    sys.stdout.write(render(result.bills, args.format))
    if args.write:
        for path in write_demo(args.write):
            print(f"wrote {path}", file=sys.stderr)
    return 0


COMMANDS: list[Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]] = [_add_rate, _add_demo]
"""Sub-command registrars, in help order; feature modules append theirs here."""
COMMANDS += ledger_cli.REGISTRARS


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


if __name__ == "__main__":
    sys.exit(main())
