"""One input, one verdict: ``rate``, ``Ledger.ingest`` and ``rerate`` read, validate and encode calls alike.

Ids are exact strings (docs/decisions.md, "Ids are exact strings"): a trailing NUL or a space at an
end keeps two ids apart, and memory grows with the bytes of the input, not with the longest id
times the number of calls. Quirky files (a header with spaces, gzip, a BOM, empty cells far down,
naive Parquet timestamps, odd ids) give the same bills or the same one-line error everywhere.
"""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import CATALOG, OCT, accounts, ms, official

from ocrledger.codes import Status
from ocrledger.engine.order import duplicates, id_buffers
from ocrledger.engine.rate import rate
from ocrledger.errors import OcrledgerError
from ocrledger.io.csv_files import texts
from ocrledger.model.bills import bills_to_json
from ocrledger.rerate.rerater import rerate
from ocrledger.store.ledger import Ledger

ACC = accounts(CATALOG, account=[official("u", "RecognizeIdcard", "RecognizeGeneral")])
MONTH = "2026-10"
T0 = ms(OCT)
FIELDS = ("record_id", "account", "api", "ts", "success")


def rows(ids: list[str], *, account: str = "u", api: str = "RecognizeIdcard") -> dict[str, list[Any]]:
    """One successful call per id, a second apart (so charge order is the id order given)."""
    n = len(ids)
    return {"record_id": list(ids), "account": [account] * n, "api": [api] * n,
            "ts": [T0 + 1000 * i for i in range(n)], "success": [1] * n}


def verdicts(calls: Any, tmp_path: Path) -> dict[str, tuple[str, str, int | None]]:
    """("ok", bills JSON, duplicates) or ("error", message, None) of each entry point on ``calls``."""
    out: dict[str, tuple[str, str, int | None]] = {}

    def run(name: str, fn: Callable[[], tuple[str, int]]) -> None:
        try:
            text, dups = fn()
        except OcrledgerError as exc:
            out[name] = ("error", str(exc), None)
        else:
            out[name] = ("ok", text, dups)

    def by_rate() -> tuple[str, int]:
        res = rate(calls, CATALOG, ACC)
        return bills_to_json(res.bills), int((res.calls["status"] == Status.DUPLICATE).sum())

    def by_ingest() -> tuple[str, int]:
        ledger = Ledger.create(":memory:", CATALOG, ACC)
        res = ledger.ingest(calls, "b1")
        return bills_to_json(ledger.bills(MONTH)), res.duplicates

    def by_rerate() -> tuple[str, int]:
        out_dir = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
        res = rerate(calls, CATALOG, ACC, out=out_dir)
        return bills_to_json(res.bills), int(res.summary["status"]["duplicate"])

    run("rate", by_rate)
    run("ingest", by_ingest)
    run("rerate", by_rerate)
    return out


def same(got: dict[str, tuple[str, str, int | None]]) -> tuple[str, str, int | None]:
    first = got["rate"]
    for name, verdict in got.items():
        assert verdict == first, f"{name} differs from rate: {verdict[:2]} != {first[:2]}"
    return first


def write_csv(path: Path, cols: dict[str, list[Any]], *, header: str | None = None, bom: bool = False) -> Path:
    names = list(cols)
    lines = [header if header is not None else ",".join(names)]
    for values in zip(*(cols[c] for c in names)):
        lines.append(",".join(_cell(v) for v in values))
    text = ("\ufeff" if bom else "") + "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def _cell(v: Any) -> str:
    if v is None:
        return ""
    text = str(v)
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n\r') or text != text.strip() else text


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def write_parquet(path: Path, cols: dict[str, Any]) -> Path:
    pq.write_table(pa.table(cols), path)
    return path


# ----------------------------------------------------------------------------------------------
# (a) exact ids: a trailing NUL or a space at an end never merges two ids


def exact_ids() -> list[str]:
    base = [f"r{i:04d}" for i in range(300)]
    return base + [b + "\x00" for b in base] + ["s", " s", "s ", "\ts", "s\t", "  "]


@pytest.mark.parametrize("form", ["columns", "records", "arrow", "csv", "parquet"])
def test_ids_that_differ_by_a_nul_or_spaces_are_distinct_everywhere(form: str, tmp_path: Path) -> None:
    ids = exact_ids()
    cols = rows(ids)
    calls: Any = {
        "columns": lambda: cols,
        "records": lambda: [dict(zip(cols, values)) for values in zip(*cols.values())],
        "arrow": lambda: pa.table(cols),
        "csv": lambda: write_csv(tmp_path / "calls.csv", cols),
        "parquet": lambda: write_parquet(tmp_path / "calls.parquet", cols),
    }[form]()
    if form == "columns":
        res = rate(calls, CATALOG, ACC)
        assert sorted(res.calls["record_id"].tolist()) == sorted(ids)
    kind, bills, dups = same(verdicts(calls, tmp_path))
    assert kind == "ok" and dups == 0
    assert sum(line["calls"] for bill in json.loads(bills) for line in bill["lines"]) == len(ids)  # all billed


def test_exact_ids_are_kept_through_outcomes_and_the_ledger(tmp_path: Path) -> None:
    ids = exact_ids()
    res = rate(rows(ids), CATALOG, ACC)
    assert res.calls["record_id"].dtype == object
    assert set(res.calls["record_id"].tolist()) == set(ids)  # NULs and spaces kept
    db = tmp_path / "ledger.sqlite"
    ledger = Ledger.create(db, CATALOG, ACC)
    assert ledger.ingest(rows(ids), "b1").duplicates == 0
    again = ledger.ingest(rows(["r0000\x00", "r0000", " s", "new"]), "b2")  # seen before, except "new"
    assert again.duplicates == 3


def test_charge_order_among_equal_instants_is_utf8_byte_order() -> None:
    ids = ["b", "a\x00", "a", "\u00e9", "z", " a", "A"]
    cols = rows(ids)
    cols["ts"] = [T0] * len(ids)
    got = rate(cols, CATALOG, ACC).calls["record_id"].tolist()
    assert got == sorted(ids, key=lambda s: s.encode("utf-8")) == sorted(ids)


@pytest.mark.parametrize("seed", range(5))
def test_compiled_duplicate_hash_agrees_with_numpy_on_exact_ids(seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = ["a", "a\x00", " a", "a ", "\ta", "", "\u00e9", "a\x00\x00", "b" * 300]
    ids = texts([words[k] for k in rng.integers(0, len(words), 400)])
    tag = rng.integers(0, 2, 400).astype(np.int8)
    order = rng.permutation(400).astype(np.int64)
    ts = np.empty(400, dtype=np.int64)
    ts[order] = np.arange(400)  # the charge order is ``order``
    offsets, data = id_buffers(ids)
    zero = np.zeros(400, dtype=np.int64)
    compiled = duplicates(offsets, data, tag, ts, zero, zero[:1], zero, zero, compiled=True)
    assert np.array_equal(compiled, duplicates(offsets, data, tag, ts, zero, zero[:1], zero, zero, compiled=False))
    seen: set[tuple[str, int]] = set()
    want = []
    for i in order.tolist():
        want.append(int((ids[i], int(tag[i])) in seen))
        seen.add((ids[i], int(tag[i])))
    assert compiled[order].tolist() == want


# ----------------------------------------------------------------------------------------------
# (b) memory grows with the bytes of the input

PEAK = textwrap.dedent("""
    import resource, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from helpers import CATALOG, OCT, accounts, ms, official
    from ocrledger.engine.rate import rate
    from ocrledger.store.ledger import Ledger
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard")])
    n = 2000
    ids = [f"r{{i}}" for i in range(n)]
    ids[7] = "x" * 130_000
    cols = {{"record_id": ids, "account": ["u"] * n, "api": ["RecognizeIdcard"] * n,
            "ts": [ms(OCT) + 1000 * i for i in range(n)], "success": [1] * n}}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if {what!r} == "rate":
        rate(cols, CATALOG, acc)
    elif {what!r} == "rerate":
        import tempfile
        from ocrledger.rerate.rerater import rerate
        with tempfile.TemporaryDirectory() as out:
            rerate(cols, CATALOG, acc, out=out)
    else:
        Ledger.create(":memory:", CATALOG, acc).ingest(cols, "b1")
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
""")


@pytest.mark.parametrize("what", ["rate", "ingest", "rerate"])
def test_one_long_id_does_not_widen_every_cell(what: str) -> None:
    script = PEAK.format(tests=str(Path(__file__).parent.parent), what=what)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    grown_mb = int(proc.stdout.strip().splitlines()[-1])
    assert grown_mb < 200, f"{what} grew the peak by {grown_mb} MB (a fixed-width copy of the ids?)"


# ----------------------------------------------------------------------------------------------
# (c) quirky and bad files: the same verdict through rate, ingest and rerate

N = 1200
AT = 1000  # the row (as errors give it) of the odd cell


def plain() -> dict[str, list[Any]]:
    cols = rows([f"r{i:05d}" for i in range(N)])
    cols["api"] = ["RecognizeIdcard" if i % 3 else "RecognizeGeneral" for i in range(N)]
    cols["success"] = [0 if i % 17 == 0 else 1 for i in range(N)]
    return cols


def with_cell(col: str, row: int, value: Any, *, base: int) -> dict[str, list[Any]]:
    cols = plain()
    cols[col][row - base] = value
    return cols


@dataclass
class Quirk:
    id: str
    make: Callable[[Path], Path]
    expect: str  # "plain" (the plain file's bills), "ok" (some bills) or the error text after the file name


def _naive(path: Path) -> Path:
    cols: dict[str, Any] = plain()
    cols["ts"] = pa.array(np.array(cols["ts"], dtype="datetime64[ms]"), pa.timestamp("ms"))
    return write_parquet(path, cols)


def _long_id(path: Path) -> Path:
    cols = plain()
    cols["record_id"][5] = "L" * (1 << 20)
    return write_csv(path, cols)


def _odd_ids(path: Path) -> Path:
    cols = plain()
    for k, rid in enumerate(["r00001\x00", " r00001", "r00001 ", "\tr00001", "  "]):
        cols["record_id"][10 + k] = rid
    return write_parquet(path, cols) if path.suffix == ".parquet" else write_csv(path, cols)


def _lines_file(path: Path, last: str) -> Path:
    """Header (line 1), r1 (2), a blank line (3), r2 with a quoted line break (4-5), then ``last`` (6)."""
    ts = T0 + 5000
    path.write_text(f"record_id,account,api,ts,success\nr1,u,RecognizeIdcard,{ts},1\n\n"
                    f'"r2\nx",u,RecognizeIdcard,{ts},1\n{last}\n', encoding="utf-8")
    return path


QUIRKS = [
    Quirk("blank line and quoted line break, then an unknown API",
          lambda d: _lines_file(d / "c.csv", f"r3,u,Nope,{T0},1"), "row 6: field api: API 'Nope' is not in the catalog"),
    Quirk("blank line and quoted line break, then a missing field",
          lambda d: _lines_file(d / "c.csv", f"r3,u,RecognizeIdcard,{T0}"),
          "row 6: has 4 fields, the header has 5 (missing column 'success')"),
    Quirk("blank line and quoted line break, fine", lambda d: _lines_file(d / "c.csv", f"r3,u,RecognizeIdcard,{T0},1"),
          "ok"),
    Quirk("integer record ids (parquet)",
          lambda d: write_parquet(d / "c.parquet", {**plain(), "record_id": list(range(N))}),
          "row 1: field record_id: must be text, not a column of type int64"),
    Quirk("float ts (parquet)",
          lambda d: write_parquet(d / "c.parquet", {**plain(), "ts": [float(t) for t in plain()["ts"]]}),
          "row 1: field ts: is a float; give epoch milliseconds as an integer or ISO 8601"),
    Quirk("no such parquet file", lambda d: d / "missing.parquet", "cannot read: No such file or directory"),
    Quirk("no such csv file", lambda d: d / "missing.csv", "cannot read: No such file or directory"),
    Quirk("empty file", lambda d: _write(d / "c.csv", b""), "the file is empty (no header row)"),
    Quirk("header names a column twice", lambda d: _write(d / "c.csv", b"record_id,account,api,ts,ts,success\n"),
          "row 1: the header names a column twice"),
    Quirk("not UTF-8", lambda d: _write(d / "c.csv", b"record_id,account,api,ts,success\nr\xff,u,A,1,1\n"),
          "is not UTF-8 text (invalid start byte)"),
    Quirk("plain csv", lambda d: write_csv(d / "c.csv", plain()), "plain"),
    Quirk("header with spaces", lambda d: write_csv(d / "c.csv", plain(), header="record_id, account ,api,ts ,success"),
          "plain"),
    Quirk("csv.gz", lambda d: write_csv(d / "c.csv.gz", plain()), "plain"),
    Quirk("UTF-8 BOM", lambda d: write_csv(d / "c.csv", plain(), bom=True), "plain"),
    Quirk("parquet", lambda d: write_parquet(d / "c.parquet", plain()), "plain"),
    Quirk("empty ts at row 1000 (csv)", lambda d: write_csv(d / "c.csv", with_cell("ts", AT, None, base=2)),
          "row 1000: field ts: is empty"),
    Quirk("null ts at row 1000 (parquet)",
          lambda d: write_parquet(d / "c.parquet", with_cell("ts", AT, None, base=1)), "row 1000: field ts: is empty"),
    Quirk("empty record_id at row 1000 (csv)",
          lambda d: write_csv(d / "c.csv", with_cell("record_id", AT, None, base=2)),
          "row 1000: field record_id: is empty"),
    Quirk("null record_id at row 1000 (parquet)",
          lambda d: write_parquet(d / "c.parquet", with_cell("record_id", AT, None, base=1)),
          "row 1000: field record_id: is empty"),
    Quirk("naive parquet timestamps", lambda d: _naive(d / "c.parquet"),
          "row 1: field ts: has no UTC offset (a timestamp column without a time zone)"),
    Quirk("NUL and spaces in ids (csv)", lambda d: _odd_ids(d / "c.csv"), "ok"),
    Quirk("NUL and spaces in ids (parquet)", lambda d: _odd_ids(d / "c.parquet"), "ok"),
    Quirk("1 MB id", lambda d: _long_id(d / "c.csv"), "ok"),
    Quirk("unknown API", lambda d: write_csv(d / "c.csv", with_cell("api", AT, "Nope", base=2)),
          "row 1000: field api: API 'Nope' is not in the catalog"),
    Quirk("API with spaces", lambda d: write_csv(d / "c.csv", with_cell("api", AT, " RecognizeIdcard", base=2)),
          "row 1000: field api: API ' RecognizeIdcard' is not in the catalog (it has leading or trailing spaces)"),
    Quirk("channel with spaces", lambda d: write_csv(d / "c.csv", {**plain(), "channel": [
        "official "if i == AT - 2 else "official" for i in range(N)]}),
          "row 1000: field channel: channel must be 'official' or 'marketplace', not 'official ' "
          "(it has leading or trailing spaces)"),
]


@pytest.fixture(scope="module")
def plain_bills(tmp_path_factory: pytest.TempPathFactory) -> str:
    return bills_to_json(rate(plain(), CATALOG, ACC).bills)


@pytest.mark.parametrize("quirk", QUIRKS, ids=[q.id for q in QUIRKS])
def test_quirky_input_gets_one_verdict(quirk: Quirk, tmp_path: Path, plain_bills: str) -> None:
    path = quirk.make(tmp_path)
    kind, text, dups = same(verdicts(path, tmp_path))
    if quirk.expect == "plain":
        assert kind == "ok" and text == plain_bills
    elif quirk.expect == "ok":
        assert kind == "ok" and dups == 0, text
    else:
        assert kind == "error" and text == f"{path}: {quirk.expect}"


ACCOUNTS_TOML = """\
[[account]]
id = "u"
channel = "official"
activated = { RecognizeIdcard = 2026-01-01T00:00:00+08:00, RecognizeGeneral = 2026-01-01T00:00:00+08:00 }
"""
CLI_QUIRKS = [q for q in QUIRKS if q.id in (
    "null ts at row 1000 (parquet)", "API with spaces", "blank line and quoted line break, then a missing field",
    "naive parquet timestamps")]


@pytest.mark.parametrize("quirk", CLI_QUIRKS, ids=[q.id for q in CLI_QUIRKS])
def test_command_line_gives_one_line_everywhere(quirk: Quirk, tmp_path: Path) -> None:
    path = quirk.make(tmp_path)
    accounts_file = tmp_path / "accounts.toml"
    accounts_file.write_text(ACCOUNTS_TOML)
    commands = {
        "rate": ["rate", "--accounts", str(accounts_file), "--calls", str(path)],
        "ingest": ["ingest", "--db", str(tmp_path / "l.sqlite"), "--accounts", str(accounts_file), "--calls",
                   str(path)],
        "rerate": ["rerate", "--accounts", str(accounts_file), "--calls", str(path), "--out", str(tmp_path / "out"),
                   "--no-progress"],
    }
    lines = {}
    for name, args in commands.items():
        proc = subprocess.run([sys.executable, "-m", "ocrledger", *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (name, proc.stderr)
        assert proc.stdout == "" and proc.stderr.count("\n") == 1, (name, proc.stderr)
        lines[name] = proc.stderr
    assert lines["rate"] == f"ocrledger: error: {path}: {quirk.expect}\n"
    assert lines["ingest"] == lines["rate"] == lines["rerate"]


def _folder(path: Path, bad_second: bool) -> Path:
    """Two Parquet files (600 calls each) and files a folder reader must skip (a _SUCCESS marker, a text file)."""
    path.mkdir()
    cols = plain()
    first = {k: v[:600] for k, v in cols.items()}
    second = {k: v[600:] for k, v in cols.items()}
    if bad_second:
        second["ts"][399] = None  # row 400 of the second file (row 1000 of the whole month)
    write_parquet(path / "part-0.parquet", first)
    write_parquet(path / "part-1.parquet", second)
    (path / "_SUCCESS").write_bytes(b"")
    (path / "notes.txt").write_text("not calls")
    return path


def test_a_parquet_folder_is_read_file_by_file_alike(tmp_path: Path, plain_bills: str) -> None:
    """rate/ingest and rerate read a folder with one reader: the same files, and an error names the file and its row."""
    kind, text, _ = same(verdicts(_folder(tmp_path / "ok", False), tmp_path))
    assert kind == "ok" and text == plain_bills
    folder = _folder(tmp_path / "bad", True)
    kind, text, _ = same(verdicts(folder, tmp_path))
    assert kind == "error" and text == f"{folder / 'part-1.parquet'}: row 400: field ts: is empty"


# ----------------------------------------------------------------------------------------------
# (d) the same quirks in memory (a dict, records, pandas, polars): converted to Arrow once, the same verdicts


def _records(cols: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(cols, values)) for values in zip(*cols.values())]


def _odd_id_cols() -> dict[str, list[Any]]:
    cols = plain()
    for k, rid in enumerate(["r00001\x00", " r00001", "r00001 ", "\tr00001", "  "]):
        cols["record_id"][10 + k] = rid
    return cols


def _naive_cols() -> dict[str, Any]:
    cols: dict[str, Any] = plain()
    cols["ts"] = np.array(cols["ts"], dtype="datetime64[ms]")
    return cols


def _long_id_cols() -> dict[str, list[Any]]:
    cols = plain()
    cols["record_id"][5] = "L" * (1 << 20)
    return cols


FRAME_QUIRKS = [
    ("null ts at row 1000", lambda: with_cell("ts", AT, None, base=1), "row 1000: field ts: is empty"),
    ("null record_id at row 1000", lambda: with_cell("record_id", AT, None, base=1),
     "row 1000: field record_id: is empty"),
    ("unknown API at row 1000", lambda: with_cell("api", AT, "Nope", base=1),
     "row 1000: field api: API 'Nope' is not in the catalog"),
    ("API with spaces", lambda: with_cell("api", AT, " RecognizeIdcard", base=1),
     "row 1000: field api: API ' RecognizeIdcard' is not in the catalog (it has leading or trailing spaces)"),
    ("naive timestamps", _naive_cols, "row 1: field ts: has no UTC offset (a timestamp column without a time zone)"),
    ("NUL and spaces in ids", _odd_id_cols, "ok"),
    ("1 MB id", _long_id_cols, "ok"),
    ("plain", plain, "plain"),
]
FRAME_FORMS: dict[str, tuple[str, Callable[[dict[str, Any]], Any]]] = {
    "dict": ("<columns>", lambda c: c),
    "records": ("<records>", lambda c: _records({k: list(v) for k, v in c.items()})),
    "pandas": ("<dataframe>", lambda c: __import__("pandas").DataFrame(c)),
    "polars": ("<polars DataFrame>", lambda c: __import__("polars").DataFrame(c)),
}


@pytest.mark.parametrize("form", list(FRAME_FORMS))
@pytest.mark.parametrize(("quirk", "make", "expect"), FRAME_QUIRKS, ids=[q[0] for q in FRAME_QUIRKS])
def test_quirks_in_memory_get_the_file_verdict(quirk: str, make: Callable[[], Any], expect: str, form: str,
                                               tmp_path: Path, plain_bills: str) -> None:
    """What a Parquet file with the same cells gets (rows are record numbers there too), from rate, ingest, rerate."""
    name, convert = FRAME_FORMS[form]
    kind, text, dups = same(verdicts(convert(make()), tmp_path))
    if expect == "plain":
        assert kind == "ok" and text == plain_bills
    elif expect == "ok":
        assert kind == "ok" and dups == 0, text
    else:
        assert kind == "error" and text == f"{name}: {expect}"
