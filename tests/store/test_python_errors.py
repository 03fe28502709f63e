"""``Ledger.open`` and ``Ledger.create`` called from Python on what is not a usable ledger file (a directory,
a text file, an empty file, another program's SQLite file, a corrupt or truncated ledger, a missing path,
a folder where no file can be made) raise ``OcrledgerError``, never a raw ``sqlite3`` error: one line that
starts with the path, and ``err.file`` is that path."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable

import pytest
from helpers import CATALOG

from ocrledger.errors import OcrledgerError
from ocrledger.store.ledger import Ledger


def _ledger(path: Path) -> Path:
    Ledger.create(path, CATALOG).close()
    return path


def _corrupt_header(path: Path) -> Path:
    data = bytearray(_ledger(path).read_bytes())
    data[16:100] = b"\xff" * 84  # the page size and the rest of the header
    path.write_bytes(bytes(data))
    return path


def _truncated(path: Path) -> Path:
    whole = _ledger(path.with_name("whole.sqlite")).read_bytes()
    path.write_bytes(whole[: len(whole) // 3])
    return path


def _other_program(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t(x)")
    db.commit()
    db.close()
    return path


OPEN_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a directory": (lambda p: (p.mkdir(), p)[1], "is a directory"),
    "a text file": (lambda p: (p.write_text("id,name\n" * 200), p)[1], "not an ocrledger ledger"),
    "an empty file": (lambda p: (p.touch(), p)[1], "not an ocrledger ledger"),
    "another program's SQLite file": (_other_program, "not an ocrledger ledger"),
    "a ledger with a corrupt header": (_corrupt_header, "corrupt or not an ocrledger ledger"),
    "a truncated ledger": (_truncated, "corrupt or not an ocrledger ledger"),
    "a missing path": (lambda p: p, "no ledger here"),
    "a path under a missing folder": (lambda p: p / "nope" / "l.sqlite", "no ledger here"),
}

CREATE_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a directory": (lambda p: (p.mkdir(), p)[1], "is a directory"),
    "an existing file": (lambda p: (p.write_text("x"), p)[1], "already exists"),
    "a path under a missing folder": (lambda p: p / "nope" / "l.sqlite", "folder of the ledger file does not exist"),
    "a path under a file": (lambda p: (p.write_text("x"), p / "l.sqlite")[1], "folder of the ledger file does not exist"),
}


def _one_line_naming(err: OcrledgerError, path: Path, words: str) -> None:
    text = str(err)
    assert not isinstance(err, sqlite3.Error) and err.__cause__ is None
    assert "\n" not in text and text.startswith(f"{path}: ") and err.file == str(path), text
    assert words in text, text


@pytest.mark.parametrize("case", sorted(OPEN_CASES))
def test_open_raises_one_ocrledger_error_naming_the_file(tmp_path: Path, case: str) -> None:
    make, words = OPEN_CASES[case]
    path = make(tmp_path / "l.sqlite")
    with pytest.raises(OcrledgerError) as caught:
        Ledger.open(path)
    _one_line_naming(caught.value, path, words)


@pytest.mark.parametrize("case", sorted(CREATE_CASES))
def test_create_raises_one_ocrledger_error_naming_the_file(tmp_path: Path, case: str) -> None:
    make, words = CREATE_CASES[case]
    path = make(tmp_path / "l.sqlite")
    with pytest.raises(OcrledgerError) as caught:
        Ledger.create(path, CATALOG)
    _one_line_naming(caught.value, path, words)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc (a folder where no file can be made, even by root)")
def test_create_where_no_file_can_be_made_raises_one_ocrledger_error() -> None:
    path = Path("/proc/ocrledger-test.sqlite")
    with pytest.raises(OcrledgerError) as caught:
        Ledger.create(path, CATALOG)
    _one_line_naming(caught.value, path, "cannot create the ledger file")
