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


def test_every_readme_command_runs_as_written(tmp_path: Path) -> None:
    """The command-line blocks of the README, in order, in an empty folder: each line exits 0."""
    import shlex
    import subprocess
    import sys

    text = README.read_text(encoding="utf-8") if README.exists() else pytest.skip("README.md is not beside the tests")
    section = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
    lines = [ln for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S) for ln in block.splitlines()
             if ln.strip()]
    assert lines[0].startswith("ocrledger demo --write sample/")
    assert len(lines) >= 14
    ran = []
    for line in lines:
        assert line.startswith("ocrledger "), line
        command = shlex.quote(sys.executable) + " -m ocrledger " + line[len("ocrledger "):]
        r = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (line, r.stderr)
        ran.append(line.split()[1])
    assert {"demo", "rate", "ingest", "bill", "quota", "close", "alerts", "rerate", "diff", "explain",
            "advise"} <= set(ran)


def test_every_option_has_help() -> None:
    import argparse

    from ocrledger.cli.main import build_parser

    missing = []
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                assert sub.description or action._choices_actions, name
                missing += [f"{name} {a.option_strings or a.dest}" for a in sub._actions if not a.help]
    assert missing == []
