"""The ``ocrledger`` command: parses options, calls the engine, prints; errors are one line and exit 2."""
from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from pathlib import Path
from typing import IO, Callable, NoReturn, Sequence

from ..errors import OcrledgerError
from ..kernel import select as _kernel
from ..version import __version__
from . import ledger as ledger_cli

EXIT_INPUT = 2
"""Exit status for bad input (a file, row or field that cannot be used) and for usage errors."""
EXIT_OUTPUT = 1
"""Exit status when an output could not be written whole: a closed pipe, a full device."""
EXIT_INTERNAL = 70
"""Exit status for a bug in ocrledger itself (``EX_SOFTWARE`` of sysexits.h): one line asking for a report."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT, as shells report it)."""

WRITE_ERRNOS = frozenset({errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.ESHUTDOWN})
"""OSError numbers that mean an output could not be written whole (exit 1), not a bad path (exit 2)."""

REPORT_URL = "https://github.com/ocrledger/ocrledger/issues"
"""Where an internal error asks to be reported."""


class Parser(argparse.ArgumentParser):
    """``argparse`` with usage errors on one line (exit 2), like every other error of the command."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(EXIT_INPUT, f"ocrledger: error: {self.prog}: {message} (see {self.prog} --help)\n")

    def _print_message(self, message: str, file: "IO[str] | None" = None) -> None:
        if message:  # --help and --version: a failed write is reported by main(), never hidden
            (file or sys.stderr).write(message)


def positive_int(text: str) -> int:
    """An option value that must be a whole number of at least 1 (``--chunk-rows``, ``--bucket-rows``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value

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
                   "json is a list of bill objects (docs/spec.md §6), text a readable statement per bill, markdown a "
                   "document, csv one row per line, tier and total, html one self-contained printable file "
                   "with a usage chart (see docs/statements.md)")


def _run_rate(args: argparse.Namespace) -> int:
    from ..bills.render import render
    from ..engine.rate import rate

    result = rate(args.calls, args.catalog, args.accounts, month=args.month)
    sys.stdout.write(render(result.bill_set, args.format))
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from ..bills.render import render
    from ..engine.rate import rate
    from ..io.demo import demo_accounts, demo_calls, write_demo
    from ..model.catalog import default_catalog

    catalog = default_catalog()
    result = rate(demo_calls(catalog), catalog, demo_accounts(catalog))
    text = render(result.bill_set, args.format)
    if args.write:  # the files first: a folder that cannot be written stops before anything is printed
        for path in write_demo(args.write):
            print(f"wrote {path}", file=sys.stderr)
    sys.stdout.write(text)
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
    p.add_argument("--db", type=ledger_cli.db_target, help="instead of --calls: a ledger (file or postgresql:// "
                   "URL), answered from its deduction log")
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
    p.add_argument("--channel", choices=("official", "marketplace"), default="official",
                   help="the account's channel (default: official)")
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
    p.add_argument("--chunk-rows", type=positive_int, default=None, metavar="N", help="rows read at a time "
                   "(at least 1)")
    p.add_argument("--bucket-rows", type=positive_int, default=None, metavar="N", help="calls held in memory at "
                   "once (the memory bound; at least 1)")
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
            bucket_rows=args.bucket_rows or DEFAULT_BUCKET_ROWS,
            tune_malloc=True,  # on the workers, while a range is rated in memory: as the local command
        )
    else:
        result = rerate(
            args.calls, catalog, accounts, month=args.month, out=args.out,
            against=args.against, chunk_rows=args.chunk_rows or DEFAULT_CHUNK_ROWS,
            bucket_rows=args.bucket_rows or DEFAULT_BUCKET_ROWS, progress=not args.no_progress,
            bills_only=args.bills_only,
            tune_malloc=True,  # process-wide malloc tuning: the command's process, never a library call's
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
    p.add_argument("old", type=Path, metavar="OLD", help="the bills issued: a JSON file, a rerate output folder or a "
                   "folder of JSON bill files")
    p.add_argument("new", type=Path, metavar="NEW", help="the bills to compare them with (same forms as OLD)")
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
    parser = Parser(
        prog="ocrledger",
        description="Exact rating and deduction engine for per-call-billed APIs, on the Alibaba Cloud OCR "
        "billing model: free quota, then dedicated plans, then shared plans, then graduated pay-as-you-go.",
        epilog=f"Exit status: 0 ok; 2 bad input, a bad path or usage (one line on stderr naming the file, row "
        f"and field); 1 an output that could not be written whole (a closed pipe, a full device), or diff "
        f"--exit-code with differences; {EXIT_INTERNAL} a bug in ocrledger (please report it); "
        f"{EXIT_INTERRUPTED} interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"ocrledger {__version__} ({_kernel.IMPLEMENTATION} kernel)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="say more on stderr: -v what the library "
                        "reports (the rerate pass, files written), -vv timings too")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr (no warnings)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit status. Every failure is one line on stderr, never a traceback.

    Bad input, bad paths and bad option values exit 2; an output that could not be written whole
    (a closed pipe, a full device) exits 1; a bug of ocrledger exits 70 with a line asking for a
    report (``OCRLEDGER_TRACEBACK=1`` prints the traceback as well).
    """
    stdout = sys.stdout
    sys.stdout = NamedOutput(stdout, "<stdout>")  # type: ignore[assignment]
    restore_logging: Callable[[], None] = lambda: None  # noqa: E731
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as done:  # --help or --version printed, or a usage error said on stderr
            sys.stdout.flush()  # a buffered stdout's full device or closed pipe is found here, not at exit
            return done.code if isinstance(done.code, int) else EXIT_INPUT if done.code else 0
        restore_logging = _log_to_stderr(args.verbose, args.quiet)
        handler: Handler = args.handler
        code = handler(args)
        sys.stdout.flush()  # a full device or a closed pipe is found here, while it can still be said
        return code
    except OcrledgerError as exc:
        return _say(str(exc), EXIT_INPUT)
    except OSError as exc:
        return _os_error(exc)
    except MemoryError:
        return _say("out of memory", EXIT_OUTPUT)
    except KeyboardInterrupt:
        return _say("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:  # a bug: one line and a request for a report, the traceback on demand
        if os.environ.get("OCRLEDGER_TRACEBACK") == "1":
            traceback.print_exc()
        where = f"ocrledger {__version__}, {_kernel.IMPLEMENTATION} kernel, Python {sys.version.split()[0]}"
        return _say(f"{type(exc).__name__}: {exc}; this is a bug in {where}: please report it "
                    f"with the command line at {REPORT_URL} (OCRLEDGER_TRACEBACK=1 shows the traceback)",
                    EXIT_INTERNAL, kind="internal error")
    finally:
        sys.stdout = stdout
        restore_logging()  # main() called in a program leaves the program's logging as it was


class NamedOutput:
    """A text stream whose write errors carry its name (``OSError.filename``), so the one error line
    can say ``<stdout>: cannot write: No space left on device``. Everything else is the stream's."""

    def __init__(self, stream: IO[str], name: str) -> None:
        self._stream = stream
        self._name = name

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise self._named(exc)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._named(exc)

    def _named(self, exc: OSError) -> OSError:
        if exc.filename is None:
            exc.filename = self._name
        return exc

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def _log_to_stderr(verbose: int, quiet: bool) -> Callable[[], None]:
    """The ``ocrledger`` logger's records on stderr, one line each: warnings by default, INFO with -v,
    DEBUG with -vv, errors only with -q. The library itself only logs (``logging``), never prints.
    Returns what puts the logger back as it was (the handler removed, the level restored)."""
    import logging

    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO)[verbose] if verbose < 2 else logging.DEBUG
    logger = logging.getLogger("ocrledger")
    before = logger.level
    added: list[logging.Handler] = []
    if not any(getattr(h, "ocrledger_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("ocrledger: %(message)s"))
        handler.ocrledger_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        added.append(handler)
    logger.setLevel(level)

    def restore() -> None:
        for h in added:
            logger.removeHandler(h)
        logger.setLevel(before)

    return restore


def _os_error(exc: OSError) -> int:
    """One line for an OSError: the path and the reason; exit 1 for an output cut short, else 2."""
    name = exc.filename
    reason = exc.strerror or str(exc) or type(exc).__name__
    code = EXIT_OUTPUT if exc.errno in WRITE_ERRNOS else EXIT_INPUT
    if code == EXIT_OUTPUT:
        reason = f"cannot write: {reason}" + (" (the reader closed the pipe)" if exc.errno == errno.EPIPE else
                                              "; the output is incomplete")
    parts = [str(p) for p in (name, exc.filename2) if p is not None]
    return _say(": ".join([" -> ".join(parts), reason] if parts else [reason]), code)


def _say(line: str, code: int, kind: str = "error") -> int:
    """Print ``ocrledger: error: LINE`` on stderr (one line; a broken stderr is left alone); return ``code``."""
    try:
        print(f"ocrledger: {kind}: " + line.replace("\n", " "), file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
    return code


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
