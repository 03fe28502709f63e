"""Coverage-guided fuzzing of the three parsers with atheris (run by hand; not part of CI).

    pip install atheris
    mkdir -p /tmp/corpus
    python fuzz/fuzz_inputs.py /tmp/corpus fuzz/seeds -atheris_runs=200000 -max_len=4096

The first byte of an input picks the target (0 catalog, 1 accounts, 2 calls); ``fuzz/seeds`` holds
one valid file of each.

Every input must end in a result or an ``OcrledgerError``; anything else is a crash that
atheris reports with the input that caused it.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from ocrledger.engine.rate import rate
    from ocrledger.errors import OcrledgerError
    from ocrledger.io.account_tables import load_accounts
    from ocrledger.model.catalog import default_catalog, load_catalog

FOLDER = Path(tempfile.mkdtemp())
CATALOG = default_catalog()


def one_input(data: bytes) -> None:
    if not data:
        return
    target, body = data[0] % 3, data[1:]
    path = FOLDER / ("input.csv" if target == 2 else "input.toml")
    path.write_bytes(body)
    try:
        if target == 0:
            load_catalog(path)
        elif target == 1:
            load_accounts(path, CATALOG)
        else:
            rate(path, CATALOG)
    except OcrledgerError as exc:
        assert "\n" not in str(exc)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
