"""Every command of the real command line driven into each fault class, in a subprocess: bad paths,
unwritable outputs, bad numbers, a full device (``/dev/full``) and an interrupted pipe. Each ends
with one line on stderr naming what failed, never a traceback: exit 2 for bad input, paths and
option values, 1 for an output that could not be written whole, 70 for a bug of ocrledger.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocrledger.io.demo import write_demo

ALERT = """
[[alert]]
account = "seed-idcard"
kind = "free_exhausted"
target = "RecognizeIdcard"
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's files, a ledger made from them (with one alert to deliver), a rerate output folder."""
    root = tmp_path_factory.mktemp("faults")
    write_demo(root / "sample")
    accounts = root / "sample" / "accounts.toml"
    accounts.write_text(accounts.read_text(encoding="utf-8") + ALERT, encoding="utf-8")
    (root / "notadb.sqlite").write_text("this is not a database\n", encoding="utf-8")
    (root / "afile").write_text("x\n", encoding="utf-8")
    r = cli(root, "ingest", "--db", "l.sqlite", "--accounts", "sample/accounts.toml", "--calls", "sample/calls.csv")
    assert r.returncode == 0, r.stderr
    r = cli(root, "rerate", "--accounts", "sample/accounts.toml", "--calls", "sample/calls.csv", "--out", "re",
            "--no-progress")
    assert r.returncode == 0, r.stderr
    return root


def cli(cwd: Path, *args: str, stdout: int | None = subprocess.PIPE, env: dict[str, str] | None = None,
        code: str | None = None) -> subprocess.CompletedProcess[str]:
    """The command in a child, as a user runs it: stdout buffered (PYTHONUNBUFFERED, which some machines set,
    removed: a buffered --help on a full device fails at its flush, not at its write)."""
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "ocrledger", *args]
    base = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(argv, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300,
                          env={**base, **(env or {})})


def one_line(r: subprocess.CompletedProcess[str], code: int, *names: str) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("ocrledger: error: "), lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert r.returncode == code, (r.returncode, lines[0])
    return lines[0]


RATE = ("--accounts", "sample/accounts.toml", "--calls", "sample/calls.csv")

# Each command with arguments that work: the base of the fault cases and of the output faults.
WORKING = {
    "rate": ("rate", *RATE, "--format", "text"),
    "demo": ("demo",),
    "explain": ("explain", *RATE, "--record", "idc-120000"),
    "advise": ("advise", *RATE, "--account", "seed-idcard", "--months", "2026-10"),
    "ingest": ("ingest", "--db", "l.sqlite", "--calls", "sample/calls.csv", "--batch-id", "again"),
    "bill": ("bill", "--db", "l.sqlite", "--month", "2026-10", "--format", "text"),
    "quota": ("quota", "--db", "l.sqlite", "--account", "seed-idcard"),
    "close": ("close", "--db", "COPY", "--month", "2026-10"),
    "alerts": ("alerts", "--db", "l.sqlite", "--peek"),
    "rerate": ("rerate", *RATE, "--out", "re2", "--no-progress"),
    "diff": ("diff", "re", "re"),
    "help": ("--help",),
    "version": ("--version",),
}

# (command, arguments, exit status, text the line must hold): a bad path for every command that reads one
BAD_PATHS = [
    ("rate", ("rate", "--calls", "missing.csv"), 2, "missing.csv"),
    ("demo", ("demo", "--write", "afile/sub"), 2, "afile/sub"),
    ("explain", ("explain", "--calls", "missing.csv", "--record", "r"), 2, "missing.csv"),
    ("advise", ("advise", "--calls", "missing.csv", "--account", "a", "--months", "2026-10"), 2, "missing.csv"),
    ("ingest", ("ingest", "--db", "l.sqlite", "--calls", "missing.csv"), 2, "missing.csv"),
    ("ingest-notadb", ("ingest", "--db", "notadb.sqlite", "--calls", "sample/calls.csv"), 2, "notadb.sqlite"),
    ("bill-folder", ("bill", "--db", "sample", "--month", "2026-10"), 2, "sample"),
    ("bill-notadb", ("bill", "--db", "notadb.sqlite", "--month", "2026-10"), 2, "notadb.sqlite"),
    ("quota-missing", ("quota", "--db", "missing.sqlite", "--account", "a"), 2, "missing.sqlite"),
    ("close-notadb", ("close", "--db", "notadb.sqlite", "--month", "2026-10"), 2, "notadb.sqlite"),
    ("alerts-notadb", ("alerts", "--db", "notadb.sqlite"), 2, "notadb.sqlite"),
    ("rerate", ("rerate", "--calls", "missing.csv", "--out", "o"), 2, "missing.csv"),
    ("rerate-accounts", ("rerate", "--calls", "sample/calls.csv", "--accounts", "missing.toml", "--out", "o"), 2,
     "missing.toml"),
    ("diff", ("diff", "missing.json", "re"), 2, "missing.json"),
]

# outputs that cannot be made: a folder under /proc, a ledger in a folder that does not exist
UNWRITABLE = [
    ("rerate", ("rerate", *RATE, "--out", "/proc/ocrledger-x", "--no-progress"), 2, "/proc/ocrledger-x"),
    ("rerate-file", ("rerate", *RATE, "--out", "afile", "--no-progress"), 2, "afile"),
    ("demo", ("demo", "--write", "/proc/ocrledger-x"), 2, "/proc/ocrledger-x"),
    ("ingest", ("ingest", "--db", "nowhere/l.sqlite", *RATE), 2, "nowhere/l.sqlite"),
]

BAD_NUMBERS = [
    ("rate", ("rate", *RATE, "--month", "2026-13"), 2, "2026-13"),
    ("demo", ("demo", "--format", "pdf"), 2, "--format"),
    ("explain", ("explain", *RATE, "--record", "r", "--channel", "moon"), 2, "--channel"),
    ("advise", ("advise", *RATE, "--account", "a", "--months", "2026-10..2026-13"), 2, "2026-13"),
    ("ingest", ("ingest", "--db", "l.sqlite", "--calls", "bad.csv"), 2, "bad.csv: row 2: field ts"),
    ("bill", ("bill", "--db", "l.sqlite", "--month", "2026-1"), 2, "2026-1"),
    ("quota", ("quota", "--db", "l.sqlite", "--account", "a", "--at", "garbage"), 2, "garbage"),
    ("close", ("close", "--db", "l.sqlite", "--month", "26-10"), 2, "26-10"),
    ("alerts", ("alerts", "--db", "l.sqlite", "--limit", "-1"), 2, "--limit"),
    ("rerate-bucket", ("rerate", *RATE, "--out", "o", "--bucket-rows", "-5"), 2, "--bucket-rows: must be at least 1"),
    ("rerate-chunk", ("rerate", *RATE, "--out", "o", "--chunk-rows", "ten"), 2, "--chunk-rows: must be a whole number"),
    ("rerate-uint64", ("rerate", "--calls", "u64.parquet", "--out", "o"), 2,
     "u64.parquet: row 2: field ts: 9223372036854775813 ms is outside"),
    ("rate-uint64", ("rate", "--calls", "u64.parquet"), 2, "u64.parquet: row 2: field ts"),
    ("diff", ("diff", "re", "re", "--format", "xml"), 2, "--format"),
]


def _cases(table: list[tuple[str, tuple[str, ...], int, str]]) -> list[object]:
    return [pytest.param(args, code, name, id=cid) for cid, args, code, name in table]


@pytest.mark.parametrize(("args", "code", "name"), _cases(BAD_PATHS + UNWRITABLE + BAD_NUMBERS))
def test_bad_paths_outputs_and_numbers(work: Path, args: tuple[str, ...], code: int, name: str) -> None:
    (work / "bad.csv").write_text("record_id,account,api,ts,success\nr1,a,RecognizeIdcard,soon,1\n", encoding="utf-8")
    if not (work / "u64.parquet").exists():
        import pyarrow as pa
        import pyarrow.parquet as pq

        # 2^63 + 5 does not fit int64: it is out of range at its row, never a failed cast or a wrap
        pq.write_table(pa.table({
            "record_id": ["a", "b"], "account": ["u", "u"], "api": ["RecognizeIdcard"] * 2,
            "ts": pa.array([1790818200000, 2**63 + 5], pa.uint64()), "success": pa.array([1, 1], pa.int8()),
        }), work / "u64.parquet")
    before = sorted(p.name for p in work.iterdir())
    r = cli(work, *args)
    one_line(r, code, name)
    assert r.stdout == ""
    if args[0] != "demo":  # nothing half-made (demo writes its files only after printing)
        assert sorted(p.name for p in work.iterdir() if p.name not in ("bad.csv", "u64.parquet")) == [
            n for n in before if n not in ("bad.csv", "u64.parquet")]


def _working(work: Path, command: str) -> tuple[str, ...]:
    args = WORKING[command]
    if "COPY" in args:  # close changes the ledger: each run gets its own copy
        import shutil

        copy = work / f"copy-{os.getpid()}-{len(list(work.glob('copy-*')))}.sqlite"
        shutil.copy(work / "l.sqlite", copy)
        args = tuple(copy.name if a == "COPY" else a for a in args)
    return args


@pytest.mark.parametrize("command", sorted(WORKING))
def test_full_device(work: Path, command: str) -> None:
    with open("/dev/full", "w") as full:
        r = cli(work, *_working(work, command), stdout=full.fileno())
    one_line(r, 1, "<stdout>: cannot write: No space left on device")


@pytest.mark.parametrize("command", sorted(WORKING))
def test_interrupted_pipe(work: Path, command: str) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader has gone before anything is written
    try:
        r = cli(work, *_working(work, command), stdout=write)
    finally:
        os.close(write)
    one_line(r, 1, "<stdout>: cannot write: Broken pipe")


@pytest.mark.parametrize("command", sorted(WORKING))
def test_working_commands_say_nothing_on_stderr(work: Path, command: str) -> None:
    """The same commands with a working stdout succeed: the faults above are the outputs', not the commands'."""
    r = cli(work, *_working(work, command))
    assert r.returncode == 0, r.stderr
    assert r.stdout
    if command != "rerate":
        assert r.stderr == ""


BOOM = """
import sys
import ocrledger.engine.rate as rate_module
from ocrledger.cli.main import main

def boom(*args, **kwargs):
    raise {exc}
rate_module.rate = boom
sys.exit(main(sys.argv[1:]))
"""


def test_internal_error_is_one_line_asking_for_a_report(work: Path) -> None:
    r = cli(work, *WORKING["rate"], code=BOOM.format(exc="ZeroDivisionError('a bug')"))
    assert "Traceback" not in r.stderr
    assert r.returncode == 70
    [line] = r.stderr.splitlines()
    assert line.startswith("ocrledger: internal error: ZeroDivisionError: a bug; this is a bug in ocrledger ")
    assert "please report it" in line and "OCRLEDGER_TRACEBACK=1" in line
    r = cli(work, *WORKING["rate"], code=BOOM.format(exc="ZeroDivisionError('a bug')"),
            env={"OCRLEDGER_TRACEBACK": "1"})
    assert r.returncode == 70 and "Traceback" in r.stderr and "def boom" not in r.stdout


def test_interrupt_is_one_line(work: Path) -> None:
    r = cli(work, *WORKING["rate"], code=BOOM.format(exc="KeyboardInterrupt()"))
    one_line(r, 130, "interrupted")
