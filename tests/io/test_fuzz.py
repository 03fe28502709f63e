"""Fuzzed and truncated catalog, accounts and calls files: a correct result or one clean ocrledger error, never a crash."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocrledger.engine.rate import rate
import ocrledger
from ocrledger.errors import OcrledgerError
from ocrledger.io.account_tables import load_accounts
from ocrledger.io.demo import demo_accounts_text
from ocrledger.model.catalog import default_catalog, load_catalog

# the installed package's copy, so the test also runs from an sdist outside the source tree
DEFAULT_CATALOG = Path(ocrledger.__file__).resolve().parent / "data" / "default_catalog.toml"
CATALOG_TEXT = DEFAULT_CATALOG.read_text(encoding="utf-8")
ACCOUNTS_TEXT = demo_accounts_text()
CALLS_TEXT = (
    "record_id,account,channel,api,ts,success\n"
    "r1,fin-7,official,RecognizeIdcard,2026-10-01T09:30:00+08:00,1\n"
    "r2,shop-42,marketplace,RecognizeAllText,1790818200000,true\n"
    "r3,seed-plan,official,RecognizeGeneral,2026-10-02T00:00:00Z,0\n"
    "r1,fin-7,official,RecognizeIdcard,2026-10-03T09:30:00+08:00,1\n"
)
TOKENS = ["=", "\"", "[", "]", "[[", "{", "}", ",", "\n", "-1", "0", "1e9", "0.0000001", "9" * 30, "true", "\x00",
          "é", "2026-02-30", "T", "+08:00", "price", "upto", "api", "plan", "kind", "\"shared\"", "#", "'", "\\"]


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """The text truncated, with slices replaced by tokens or random text, or lines dropped."""
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "replace", "insert", "drop_line"]))
        if not text:
            break
        i = draw(st.integers(0, len(text)))
        if op == "truncate":
            text = text[:i]
        elif op == "replace":
            j = draw(st.integers(i, min(len(text), i + 12)))
            text = text[:i] + draw(st.sampled_from(TOKENS) | st.text(max_size=6)) + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
        else:
            lines = text.split("\n")
            del lines[draw(st.integers(0, len(lines) - 1))]
            text = "\n".join(lines)
    return text


def _check_error(exc: OcrledgerError, path: Path) -> None:
    message = str(exc)
    assert "\n" not in message and str(path) in message, message


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # examples: the profile's


ORIGINALS = {"catalog": CATALOG_TEXT, "accounts": ACCOUNTS_TEXT, "calls": CALLS_TEXT}


def _load_checked(which: str, body: bytes) -> None:
    """Write ``body`` as the file ``which`` and load it: a result or one clean error naming the file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("calls.csv" if which == "calls" else f"{which}.toml")
        path.write_bytes(body)
        try:
            if which == "catalog":
                load_catalog(path)
            elif which == "accounts":
                load_accounts(path, default_catalog())
            else:
                rate(path)
        except OcrledgerError as exc:
            _check_error(exc, path)


@pytest.mark.parametrize("which", sorted(ORIGINALS))
@FUZZ
@given(data=st.data())
def test_fuzzed_file(which: str, data: st.DataObject) -> None:
    _load_checked(which, data.draw(mutated(ORIGINALS[which])).encode("utf-8", "surrogatepass"))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(["catalog", "accounts", "calls"]), data=st.data())
def test_fuzzed_files_through_the_command_line(which: str, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for name, text in ORIGINALS.items():
            if name == which:
                text = data.draw(mutated(text))
            paths[name] = Path(folder) / (name + (".csv" if name == "calls" else ".toml"))
            paths[name].write_bytes(text.encode("utf-8", "surrogatepass"))
        proc = subprocess.run(
            [sys.executable, "-m", "ocrledger", "rate", "--catalog", str(paths["catalog"]), "--accounts",
             str(paths["accounts"]), "--calls", str(paths["calls"])],
            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode in (0, 2), proc.stderr
        if proc.returncode == 2:
            assert proc.stdout == ""  # nothing rated, nothing printed
            assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("ocrledger: error: ")
            named = [name for name, path in paths.items() if str(path) in proc.stderr]
            assert named, proc.stderr
            if which not in named:  # the mutated file is valid alone, another names what it lost (an API code)
                assert which == "catalog" and named == ["accounts"], proc.stderr
                load_catalog(paths["catalog"])


# ---- structured fuzzing: the parsed tables with one value replaced or one key removed ----------
import copy  # noqa: E402
import tomllib  # noqa: E402
from datetime import timezone  # noqa: E402

from ocrledger.model.accounts import parse_accounts  # noqa: E402
from ocrledger.model.catalog import parse_catalog  # noqa: E402

WEIRD = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8),
    st.sampled_from(TOKENS + ["10%", "101%", "dedicated", "shared", "volume", "verification", "marketplace",
                              "RecognizeIdcard", "RecognizeAllText", "1790784000000", "2100-01-01", "1969-12-31"]),
    st.lists(st.integers(-3, 3) | st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-3, 3), max_size=2),
    st.datetimes(timezones=st.just(timezone.utc)) | st.datetimes() | st.dates(),
)


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:  # type: ignore[type-arg]
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def poked(draw: st.DrawFn, text: str) -> dict:  # type: ignore[type-arg]
    data = tomllib.loads(text)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths:  # an earlier poke removed every key
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]  # type: ignore[index]
        if isinstance(parent, dict) and draw(st.booleans()) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(WEIRD)  # type: ignore[index]
    return copy.deepcopy(data)


@FUZZ
@given(poked(CATALOG_TEXT))
def test_poked_catalog_values(data: dict) -> None:  # type: ignore[type-arg]
    try:
        parse_catalog(data, source="poked.toml")
    except OcrledgerError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("poked.toml: "), str(exc)


@FUZZ
@given(poked(ACCOUNTS_TEXT))
def test_poked_accounts_values(data: dict) -> None:  # type: ignore[type-arg]
    try:
        parse_accounts(data, default_catalog(), source="poked.toml")
    except OcrledgerError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("poked.toml: "), str(exc)


@st.composite
def poked_columns(draw: st.DrawFn) -> dict:  # type: ignore[type-arg]
    """Valid call columns with a few cells (or a whole column) replaced by odd values."""
    n = draw(st.integers(0, 6))
    cols: dict = {  # type: ignore[type-arg]
        "record_id": [f"r{i}" for i in range(n)],
        "account": ["fin-7"] * n,
        "api": ["RecognizeIdcard"] * n,
        "ts": [1790784000000 + i for i in range(n)],
        "success": [1] * n,
        "channel": ["official"] * n,
    }
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(cols)))
        if draw(st.integers(0, 9)) == 0:
            del cols[name]
        elif n:
            cols[name][draw(st.integers(0, n - 1))] = draw(WEIRD)
    return cols


@FUZZ
@given(poked_columns(), st.sampled_from(["<columns>", "<records>", "<dataframe>"]))
def test_poked_call_columns(cols: dict, form: str) -> None:  # type: ignore[type-arg]
    """Odd cells in a dict of columns, the same as records or a pandas DataFrame: one line naming the input."""
    import pandas as pd

    n = len(next(iter(cols.values()))) if cols else 0
    calls = {"<columns>": lambda: cols,
             "<records>": lambda: [{k: v[i] for k, v in cols.items()} for i in range(n)],
             "<dataframe>": lambda: pd.DataFrame(cols)}[form]()
    try:
        rate(calls)
    except OcrledgerError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(f"{form}: "), str(exc)


@FUZZ
@given(which=st.sampled_from(["catalog", "accounts", "calls"]), data=st.data())
def test_bytes_that_are_not_utf8(which: str, data: st.DataObject) -> None:
    """Raw bytes spliced into a valid file (atheris found a crash on a non-UTF-8 TOML file)."""
    text = ORIGINALS[which].encode()
    i = data.draw(st.integers(0, len(text)))
    _load_checked(which, text[:i] + data.draw(st.binary(min_size=1, max_size=4)) + text[i:])
