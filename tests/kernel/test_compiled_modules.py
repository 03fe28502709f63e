"""The compiled modules of the kernel package: built from setup.py's one list, one concern each, the helpers
reached through one namespace of the selector (kernel/select.py)."""
from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ocrledger.kernel import reference as _reference
from ocrledger.kernel import select as _kernel

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "ocrledger"
# The module map: what each compiled module of kernel/ exposes.
OWNS = {
    "_core": {"IMPLEMENTATION", "rate_batch", "enum_values"},
    "_hashing": {"string_repeats", "string_index", "string_find"},
    "_sorting": {"radix_argsort", "gather_strings", "string_lengths", "take_int32", "gather_calls"},
    "_passes": {"usage_counts", "plan_units", "qps_seconds", "call_codes", "byte_counts", "flag_values",
                "plain_ends", "spans", "slice_setup", "json_reindent"},
}
needs_build = pytest.mark.skipif(os.environ.get("OCRLEDGER_PURE_PYTHON") == "1", reason="pure-Python run requested")


def setup_list() -> tuple[str, ...]:
    """setup.py's COMPILED tuple, read with ast (running setup.py would build)."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no COMPILED tuple")


def public(module: ModuleType) -> set[str]:
    return {name for name in dir(module) if not name.startswith("_")}


@pytest.mark.skipif(not SOURCE.is_dir(), reason="the sources are not beside the tests (an installed package run)")
def test_setup_builds_every_cython_module_once() -> None:
    listed = setup_list()
    on_disk = {".".join(path.relative_to(SOURCE).with_suffix("").parts) for path in SOURCE.rglob("*.pyx")}
    assert len(set(listed)) == len(listed)
    assert set(listed) == on_disk
    assert {f"kernel.{name}" for name in OWNS} <= on_disk


@needs_build
def test_each_compiled_module_owns_its_concern() -> None:
    for name, owns in OWNS.items():
        module = importlib.import_module(f"ocrledger.kernel.{name}")
        assert module.__file__ is not None and module.__file__.endswith((".so", ".pyd")), name
        assert public(module) == owns, name
    assert _kernel.KERNELS["cython"] is importlib.import_module("ocrledger.kernel._core")


@needs_build
def test_helpers_is_one_namespace_of_every_helper_module() -> None:
    space = _kernel.helpers()
    assert space is not None and space is _kernel.helpers()  # built once: a patch of one attribute is seen by all
    helpers = {name: importlib.import_module(f"ocrledger.kernel.{name}") for name in OWNS if name != "_core"}
    assert public(space) == set().union(*(public(module) for module in helpers.values()))
    for module in helpers.values():
        for name in public(module):
            assert getattr(space, name) is getattr(module, name)
    assert not hasattr(space, "rate_batch")  # the kernel is KERNELS["cython"], not a helper


def test_a_name_in_two_helper_modules_is_refused() -> None:
    a, b = ModuleType("a"), ModuleType("b")
    a.spans = b.spans = len  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match="b.spans is also in another compiled helper module"):
        _kernel._namespace((a, b))


def test_pure_python_gives_no_helpers_and_the_reference_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCRLEDGER_PURE_PYTHON", "1")
    assert _kernel.helpers() is None
    code = "from ocrledger.kernel import select; print(select.helpers() is None, select.default.IMPLEMENTATION)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OCRLEDGER_PURE_PYTHON": "1"})
    assert out.stdout.split() == ["True", _reference.IMPLEMENTATION]
