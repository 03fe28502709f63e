"""Reading a TOML file into plain data, with one-line errors that name the file."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ..errors import OcrledgerError


def read_toml(path: str | Path, error: type[OcrledgerError]) -> dict[str, Any]:
    """The parsed file; unreadable, non-UTF-8 or malformed files raise ``error`` naming the file."""
    source = str(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}", file=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"TOML syntax error: {exc}", file=source) from None
    except UnicodeDecodeError as exc:
        raise error(f"is not UTF-8 text ({exc.reason} at byte {exc.start})", file=source) from None
