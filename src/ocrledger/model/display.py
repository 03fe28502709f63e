"""How ids and names are shown to people: control characters escaped for terminals and documents."""
from __future__ import annotations

import re
from typing import Sequence

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 control characters and DEL (terminal escape sequences begin with ESC or CSI), line and
paragraph separators, and the bidirectional overrides that reorder what a reader sees."""


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` with every control character shown as an escape (ESC -> ``\\x1b``, U+202E -> ``\\u202e``).

    For text, Markdown and explanations: an id holding ``ESC]0;...BEL`` or ``ESC[2J`` must not retitle or
    clear the reader's terminal, nor a newline break a table. JSON, CSV and Parquet keep the exact id;
    this is only how it is shown. A backslash is left as it is.
    """
    s = str(text)
    return _CONTROL.sub(_escaped, s) if _CONTROL.search(s) else s


def printable_all(strings: Sequence[str]) -> list[str]:
    """``printable`` of each string, with one scan of them all when none holds a control character."""
    if _CONTROL.search("".join(strings)) is None:
        return list(strings)
    return [printable(s) for s in strings]
