"""Bad input through the real command line: exit status 2, one line on stderr naming the file and
the row or field, no traceback, nothing rated. The same inputs through the Python API raise the
matching ``ocrledger.errors`` class with ``file``, ``row`` and ``field`` set.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

import pytest

from ocrledger.engine.rate import rate
from ocrledger.errors import AccountsError, CallsError, CatalogError, OcrledgerError

CATALOG = """\
currency = "CNY"
timezone = "Asia/Shanghai"

[[api]]
code = "A"
free_monthly = 1
tiers = [
  { upto = 10, price = "0.0825" },
  { price = "0.0495" },
]
"""

ACCOUNTS = """\
[[account]]
id = "u"
channel = "official"
activated = { A = 2026-01-01T00:00:00+08:00 }

[[plan]]
id = "p"
account = "u"
kind = "dedicated"
api = "A"
quantity = 10
start = 2026-10-01T00:00:00+08:00
end = 2026-11-01T00:00:00+08:00
"""

HEADER = "record_id,account,api,ts,success\n"
ROWS = [
    "r1,u,A,2026-10-01T01:00:00+08:00,1\n",  # row 2
    "r2,u,A,2026-10-02T01:00:00+08:00,1\n",  # row 3
    "r3,u,A,1790000000000,0\n",  # row 4 (epoch ms)
]
CALLS = HEADER + "".join(ROWS)


def calls_with(row3: str) -> str:
    """The calls file with its second record (row 3) replaced."""
    return HEADER + ROWS[0] + row3 + "\n" + ROWS[2]


@dataclass
class Case:
    """One bad input: which file is broken, how, and what the error must name."""

    id: str
    error: type[OcrledgerError]
    broken: str  # "catalog", "accounts" or "calls"
    names: tuple[str, ...]  # text the one stderr line must contain besides the file name
    row: int | None = None
    field: str | None = None
    files: dict[str, str] = dc_field(default_factory=dict)


CASES = [
    Case("unknown API code in the calls", CallsError, "calls",
         ("row 3", "field api", "API 'Nope' is not in the catalog"), 3, "api",
         {"calls": calls_with("r2,u,Nope,2026-10-02T01:00:00+08:00,1")}),
    Case("API code with a leading space", CallsError, "calls",
         ("row 3", "field api", "API ' A' is not in the catalog (it has leading or trailing spaces)"), 3, "api",
         {"calls": calls_with("r2,u, A,2026-10-02T01:00:00+08:00,1")}),
    Case("empty timestamp", CallsError, "calls", ("row 3", "field ts", "is empty"), 3, "ts",
         {"calls": calls_with("r2,u,A,,1")}),
    Case("price with 7 decimals", CatalogError, "catalog", ("field api A.tiers[0].price", "7 decimal places"),
         None, "api A.tiers[0].price", {"catalog": CATALOG.replace('"0.0825"', '"0.0825001"')}),
    Case("float price", CatalogError, "catalog", ("field api A.tiers[1].price", "float"), None,
         "api A.tiers[1].price", {"catalog": CATALOG.replace('"0.0495"', "0.0495")}),
    Case("tier table without an open tier", CatalogError, "catalog", ("field api A.tiers", "open tier"), None,
         "api A.tiers", {"catalog": CATALOG.replace('{ price = "0.0495" }', '{ upto = 20, price = "0.0495" }')}),
    Case("plan ending before it starts", AccountsError, "accounts", ("field plan p.end",), None, "plan p.end",
         {"accounts": ACCOUNTS.replace("end = 2026-11-01T00:00:00+08:00", "end = 2026-09-01T00:00:00+08:00")}),
    Case("plan ending when it starts", AccountsError, "accounts", ("field plan p.end",), None, "plan p.end",
         {"accounts": ACCOUNTS.replace("end = 2026-11-01T00:00:00+08:00", "end = 2026-10-01T00:00:00+08:00")}),
    Case("unparsable timestamp", CallsError, "calls", ("row 3", "field ts", "2026-10-32"), 3, "ts",
         {"calls": calls_with("r2,u,A,2026-10-32T01:00:00+08:00,1")}),
    Case("timestamp that is not a date at all", CallsError, "calls", ("row 3", "field ts", "yesterday"), 3, "ts",
         {"calls": calls_with("r2,u,A,yesterday,1")}),
    Case("timestamp without a UTC offset", CallsError, "calls", ("row 3", "field ts"), 3, "ts",
         {"calls": calls_with("r2,u,A,2026-10-02T01:00:00,1")}),
    Case("CSV row with a missing column", CallsError, "calls", ("row 3", "success"), 3, None,
         {"calls": calls_with("r2,u,A,2026-10-02T01:00:00+08:00")}),
    Case("CSV row with an extra column", CallsError, "calls", ("row 3",), 3, None,
         {"calls": calls_with("r2,u,A,2026-10-02T01:00:00+08:00,1,official,x")}),
    Case("TOML syntax error in the catalog", CatalogError, "catalog", ("TOML", "line 6"), None, None,
         {"catalog": CATALOG.replace("free_monthly = 1", "free_monthly = = 1")}),
    Case("TOML syntax error in the accounts", AccountsError, "accounts", ("TOML", "line 2"), None, None,
         {"accounts": ACCOUNTS.replace('id = "u"', "id = u")}),
    Case("empty calls file", CallsError, "calls", ("empty",), None, None, {"calls": ""}),
    Case("timestamp before 1970 in the billing zone", CallsError, "calls", ("row 3", "field ts", "range"), 3, "ts",
         # 1970-01-01 00:00 in Asia/Shanghai is 1969-12-31T16:00Z; one millisecond earlier is out.
         {"calls": calls_with("r2,u,A,1969-12-31T15:59:59.999Z,1")}),
    Case("timestamp in 2100", CallsError, "calls", ("row 3", "field ts", "range"), 3, "ts",
         {"calls": calls_with("r2,u,A,2100-01-01T00:00:00+08:00,1")}),
    Case("epoch milliseconds past 2100", CallsError, "calls", ("row 3", "field ts", "range"), 3, "ts",
         # 4102444800000 ms = 2100-01-01T00:00Z = 08:00 local on 1 January 2100.
         {"calls": calls_with("r2,u,A,4102444800000,1")}),
    Case("epoch milliseconds far out of int64", CallsError, "calls", ("row 3", "field ts"), 3, "ts",
         {"calls": calls_with("r2,u,A,99999999999999999999999,1")}),
    Case("plan start outside 1970-2100", AccountsError, "accounts", ("field plan p.start", "range"), None,
         "plan p.start", {"accounts": ACCOUNTS.replace("start = 2026-10-01", "start = 2101-10-01").replace(
             "end = 2026-11-01T00:00:00+08:00", "")}),
    Case("success flag that is not 1/0/true/false", CallsError, "calls",
         ("row 3", "field success", "not 'yes'"), 3, "success",
         {"calls": calls_with("r2,u,A,2026-10-02T01:00:00+08:00,yes")}),
    Case("unknown channel", CallsError, "calls", ("row 2", "field channel", "not 'shop'"), 2, "channel",
         {"calls": "record_id,account,api,ts,success,channel\nr1,u,A,2026-10-01T01:00:00+08:00,1,shop\n"}),
    Case("empty record id", CallsError, "calls", ("row 3", "field record_id"), 3, "record_id",
         {"calls": calls_with(",u,A,2026-10-02T01:00:00+08:00,1")}),
    Case("activation of an API the catalog lacks", AccountsError, "accounts", ("field account[0].activated",
         "Nope"), None, "account[0].activated", {"accounts": ACCOUNTS.replace("{ A =", "{ Nope =")}),
    Case("dedicated plan for an unknown API", AccountsError, "accounts", ("field plan p.api",), None, "plan p.api",
         {"accounts": ACCOUNTS.replace('api = "A"', 'api = "B"')}),
    Case("plan for an account that is not listed", AccountsError, "accounts", ("field plan p.account",), None,
         "plan p.account", {"accounts": ACCOUNTS.replace('account = "u"', 'account = "v"')}),
    Case("unknown time zone", CatalogError, "catalog", ("field timezone",), None, "timezone",
         {"catalog": CATALOG.replace("Asia/Shanghai", "Mars/Olympus")}),
    Case("price overflowing int64 micro-units", CatalogError, "catalog", ("field api A.tiers[0].price",), None,
         "api A.tiers[0].price", {"catalog": CATALOG.replace('"0.0825"', '"10000000000000"')}),
]


def write(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    texts = {"catalog": CATALOG, "accounts": ACCOUNTS, "calls": CALLS, **files}
    names = {"catalog": "catalog.toml", "accounts": "accounts.toml", "calls": "calls.csv"}
    paths = {}
    for key, text in texts.items():
        paths[key] = tmp_path / names[key]
        paths[key].write_text(text, encoding="utf-8")
    return paths


def run_rate(paths: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrledger", "rate", "--catalog", str(paths["catalog"]), "--accounts",
         str(paths["accounts"]), "--calls", str(paths["calls"]), "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )


def test_the_unbroken_files_rate(tmp_path: Path) -> None:
    # The baseline every case breaks one thing of: it must rate, so each failure below is the break's.
    # r1 free (free 1), r2 plan, r3 failed.
    proc = run_rate(write(tmp_path, {}))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    bills = json.loads(proc.stdout)
    oct_ = next(b for b in bills if b["period"] == "2026-10")
    line = oct_["lines"][0]
    assert (line["calls"], line["free"], line["dedicated"]) == (2, 1, 1)
    sep = next(b for b in bills if b["period"] == "2026-09")  # 1790000000000 ms = 2026-09-21
    assert sep["lines"][0]["failed"] == 1


def test_range_edges_are_accepted(tmp_path: Path) -> None:
    # The first and last accepted instants: 1970-01-01 00:00 and 2099-12-31 23:59:59.999 local.
    calls = HEADER + "e1,u,A,1970-01-01T00:00:00+08:00,1\ne2,u,A,2099-12-31T23:59:59.999+08:00,1\n"
    proc = run_rate(write(tmp_path, {"calls": calls}))
    assert proc.returncode == 0, proc.stderr
    assert [b["period"] for b in json.loads(proc.stdout)] == ["1970-01", "2099-12"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_command_line_rejects(tmp_path: Path, case: Case) -> None:
    paths = write(tmp_path, case.files)
    proc = run_rate(paths)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == "", "nothing may be rated or printed"
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n"), proc.stderr
    line = proc.stderr.strip()
    assert line.startswith("ocrledger: error: ")
    assert str(paths[case.broken]) in line, line
    for text in case.names:
        assert text in line, (text, line)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_python_api_raises(tmp_path: Path, case: Case) -> None:
    paths = write(tmp_path, case.files)
    with pytest.raises(OcrledgerError) as info:
        rate(paths["calls"], paths["catalog"], paths["accounts"])
    err = info.value
    assert type(err) is case.error, repr(err)
    assert err.file == str(paths[case.broken])
    assert (err.row, err.field) == (case.row, case.field)
    assert "\n" not in str(err)


def test_errors_share_one_base_class() -> None:
    for cls in (CatalogError, AccountsError, CallsError):
        assert issubclass(cls, OcrledgerError)
    err = CallsError("is empty", file="calls.csv", row=7, field="record_id")
    assert str(err) == "calls.csv: row 7: field record_id: is empty"


def test_payg_overflow_is_an_error_not_a_wrap(tmp_path: Path) -> None:
    # A price of 5,000,000,000,000 is 5e18 micro-units: one call fits int64, two (1e19) do not.
    catalog = CATALOG.replace("free_monthly = 1", "free_monthly = 0").replace('"0.0825"', '"5000000000000"')
    one = HEADER + ROWS[0]
    accounts = ACCOUNTS.split("[[plan]]")[0]
    ok = run_rate(write(tmp_path, {"catalog": catalog, "accounts": accounts, "calls": one}))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["total"] == "5000000000000.00"
    two = HEADER + ROWS[0] + ROWS[1]
    paths = write(tmp_path, {"catalog": catalog, "accounts": accounts, "calls": two})
    proc = run_rate(paths)
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == "" and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "overflow" in proc.stderr.lower() or "INT64_MAX" in proc.stderr


def test_row_numbers_count_blank_lines_and_quoted_line_breaks(tmp_path: Path) -> None:
    # line 1 header, line 2 r1, line 3 blank, lines 4-5 r2 (a quoted id with a line break), line 6 bad
    path = tmp_path / "calls.csv"
    path.write_text("record_id,account,api,ts,success\n"
                    "r1,u,A,2026-10-01T00:00:00+08:00,1\n\n"
                    "\"r\n2\",u,A,2026-10-01T00:00:00+08:00,1\n"
                    "r3,u,Nope,2026-10-01T00:00:00+08:00,1\n")
    cat = tmp_path / "catalog.toml"
    cat.write_text(CATALOG)
    with pytest.raises(CallsError) as err:
        rate(path, cat)
    assert (err.value.row, err.value.field) == (6, "api")


def test_a_byte_order_mark_is_not_part_of_the_header(tmp_path: Path) -> None:
    paths = write(tmp_path, {})
    paths["calls"].write_bytes(b"\xef\xbb\xbf" + CALLS.encode())
    assert rate(paths["calls"], paths["catalog"], paths["accounts"]).bills
