"""The library reports through ``logging`` (the "ocrledger" logger) and prints nothing; the command sends
the records to stderr: warnings by default, INFO with -v, DEBUG (timings) with -vv, errors only with -q."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from ocrledger.io.demo import write_demo
from ocrledger.model.catalog import default_catalog
from ocrledger.rerate.rerater import rerate


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocrledger", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("logging")
    write_demo(root / "sample")
    return root


REPORT = ("rerate", "--accounts", "sample/accounts.toml", "--calls", "sample/calls.csv", "--no-progress", "--out")


def test_verbosity_of_the_command(sample: Path) -> None:
    quiet, default, verbose, debug = (run(sample, *flags, *REPORT, f"out{k}")
                                      for k, flags in enumerate([("-q",), (), ("-v",), ("-vv",)]))
    assert all(r.returncode == 0 for r in (quiet, default, verbose, debug))
    assert quiet.stderr == "" and default.stderr == ""
    assert verbose.stderr.splitlines()[0] == "ocrledger: rated 127,440 calls in the in-memory pass"
    assert "wall" not in verbose.stderr
    assert "ocrledger: read+validate: " in debug.stderr and "ocrledger: rated 127,440" in debug.stderr


def test_the_library_logs_and_prints_nothing(sample: Path, caplog: pytest.LogCaptureFixture,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    cat = default_catalog()
    with caplog.at_level(logging.INFO, logger="ocrledger"):
        rerate(sample / "sample" / "calls.csv", cat, sample / "sample" / "accounts.toml", out=sample / "lib")
    assert any(r.name == "ocrledger.rerate" and r.getMessage().startswith("rated 127,440 calls")
               for r in caplog.records)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_main_in_a_program_leaves_its_logging_as_it_was(tmp_path: Path) -> None:
    # the command line attaches its stderr handler for one run only: a program (or a test) calling main()
    # keeps its own logging afterwards
    import logging

    from ocrledger.cli.main import main

    logger = logging.getLogger("ocrledger")
    handlers, level = list(logger.handlers), logger.level
    assert main(["-v", "demo", "--write", str(tmp_path)]) == 0
    assert logger.handlers == handlers and logger.level == level
