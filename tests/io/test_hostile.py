"""Hostile input: no code from input is ever run, spreadsheet formulas are neutralised in CSV output."""
from __future__ import annotations

import csv
import io
import io as _io
import subprocess
import sys
import tokenize
from pathlib import Path

from helpers import CATALOG, OCT, accounts, calls, official, repeat

import ocrledger
from ocrledger.bills.render import render
from ocrledger.engine.rate import rate

FORBIDDEN = {"eval", "exec", "pickle", "marshal", "shelve", "__import__", "os.system", "yaml", "dill"}


def test_the_package_has_no_code_execution_primitives() -> None:
    src = Path(ocrledger.__file__).parent
    for path in sorted(src.rglob("*.py")) + sorted(src.rglob("*.pyx")):
        tokens = list(tokenize.generate_tokens(_io.StringIO(path.read_text()).readline))
        for k, tok in enumerate(tokens):
            if tok.type != tokenize.NAME:
                continue
            after_dot = k > 0 and tokens[k - 1].string == "."
            name = tok.string
            dotted = f"{name}.{tokens[k + 2].string}" if k + 2 < len(tokens) and tokens[k + 1].string == "." else ""
            assert after_dot or (name not in FORBIDDEN and dotted not in FORBIDDEN), f"{path.name}:{tok.start[0]} {name}"


def test_code_in_cells_is_data(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    acc = accounts(CATALOG, account=[official(payload, "RecognizeIdcard")])
    rows = repeat(3, payload, "RecognizeIdcard", OCT, prefix=payload)
    result = rate(calls(rows), CATALOG, acc)
    assert result.bills[0].account == payload and not marker.exists()


def test_formulas_are_neutralised_in_csv_bills(tmp_path: Path) -> None:
    hostile = ["=HYPERLINK(\"x\")", "+1+1", "-2+3", "@SUM(A1)"]
    acc = accounts(CATALOG, account=[official(h, "RecognizeIdcard") for h in hostile])
    rows = [row for k, h in enumerate(hostile) for row in repeat(2, h, "RecognizeIdcard", OCT, prefix=f"h{k}-")]
    text = render(rate(calls(rows), CATALOG, acc).bills, "csv")
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    for h in hostile:
        assert "'" + h in cells  # kept, but as text


def test_command_line_csv_output_is_neutralised(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text("record_id,account,api,ts,success\n=cmd|' /C calc'!A0,=evil,RecognizeIdcard,1790784000000,1\n")
    proc = subprocess.run([sys.executable, "-m", "ocrledger", "rate", "--calls", str(path), "--format", "csv"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cells = [cell for row in csv.reader(io.StringIO(proc.stdout)) for cell in row]
    assert "'=evil" in cells and not any(c.startswith("=") for c in cells)
