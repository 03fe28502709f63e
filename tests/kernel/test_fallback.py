"""Without the compiled modules (a machine without a C compiler) ocrledger runs on its plain-Python twins,
warns once at import unless OCRLEDGER_PURE_PYTHON=1 asked for them, and ``--version`` names the kernel.

The compiled modules are hidden from a fresh interpreter by an import hook; ``.ci/run`` also installs the
sdist with ``CC=/bin/false`` and runs a slice of the suite on what that installs.
"""
from __future__ import annotations

import os
import subprocess
import sys

HIDE = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in ("ocrledger.kernel._core", "ocrledger.bills._billfmt"):
            raise ImportError("hidden: as if built without a C compiler")
sys.meta_path.insert(0, Hide())
from ocrledger.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def run(*args: str, pure: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OCRLEDGER_PURE_PYTHON"}
    if pure:
        env["OCRLEDGER_PURE_PYTHON"] = "1"
    return subprocess.run([sys.executable, "-W", "default", "-c", HIDE, *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_without_the_compiled_modules_it_warns_and_says_which_kernel() -> None:
    r = run("--version", pure=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("(reference kernel)")
    assert r.stderr.count("ocrledger runs on the plain-Python kernel") == 1, r.stderr
    assert "OCRLEDGER_PURE_PYTHON=1" in r.stderr


def test_the_plain_python_kernel_asked_for_is_silent() -> None:
    r = run("--version", pure=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.strip().endswith("(reference kernel)")


def test_without_the_compiled_modules_the_demo_bills_are_the_same() -> None:
    # the billing page's example: 120,200 ID card calls cost CNY 6,110.00, on the twins as compiled
    plain = run("demo", "--format", "json", pure=True)
    compiled = subprocess.run([sys.executable, "-m", "ocrledger", "demo", "--format", "json"], capture_output=True,
                              text=True, timeout=300)
    assert plain.returncode == 0 and compiled.returncode == 0, plain.stderr + compiled.stderr
    assert '"total": "6110.00"' in plain.stdout
    assert plain.stdout == compiled.stdout


def test_without_the_compiled_modules_the_bill_json_of_rate_and_the_ledger_is_the_same(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the bill formatter's twin (Bill.to_json), as a machine without a C compiler writes it, against the compiled one
    assert subprocess.run([sys.executable, "-m", "ocrledger", "demo", "--write", str(tmp_path)], capture_output=True,
                          timeout=300).returncode == 0
    setup = ["--catalog", str(tmp_path / "catalog.toml")]
    calls, acc = str(tmp_path / "calls.csv"), str(tmp_path / "accounts.toml")
    outputs = []
    for hidden in (True, False):
        db = str(tmp_path / f"ledger-{hidden}.sqlite")
        steps = [("rate", "--calls", calls, "--accounts", acc, *setup, "--format", "json"),
                 ("ingest", "--db", db, "--accounts", acc, *setup, "--calls", calls),
                 ("bill", "--db", db, "--month", "2026-10", "--format", "json")]
        done = [run(*step, pure=True) if hidden else
                subprocess.run([sys.executable, "-m", "ocrledger", *step], capture_output=True, text=True, timeout=300)
                for step in steps]
        assert all(d.returncode == 0 for d in done), [d.stderr for d in done]
        outputs.append((done[0].stdout, done[2].stdout))
    assert outputs[0] == outputs[1]
    assert '"total": "6110.00"' in outputs[0][0] and '"total": "6110.00"' in outputs[0][1]
