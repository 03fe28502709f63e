"""The README's promises: its Python example runs as written, and CI runs its test command."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(lang: str) -> list[str]:
    if not README.exists():
        pytest.skip("README.md is not beside the tests (installed package run)")
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_python_example_runs_and_prints_what_it_says() -> None:
    (code,) = _blocks("python")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {})
    printed = out.getvalue().splitlines()
    assert printed[0] == "6110.00" and printed[-1] == "6110.00"
    assert "calls=90000" in printed[1] and "0.0495" in printed[1]


def test_ci_runs_the_readme_test_command() -> None:
    quick = _blocks("sh")[0].strip().splitlines()
    assert len(quick) == 2 and quick[0].endswith("ocrledger demo") and quick[1].endswith("pytest")
    ci = (README.parent / ".ci" / "run").read_text()
    assert quick[1] in ci
