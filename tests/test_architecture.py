"""The package's house rules, read from the source with ast: no import cycles, imports run one way down
the layers, no private name crosses a subpackage, a small root, and every module says what it owns."""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

PACKAGE = "ocrledger"
# the package that is imported: the source tree (editable install) or site-packages (an sdist's tests)
SOURCE = Path(importlib.util.find_spec(PACKAGE).origin).resolve().parent  # type: ignore[arg-type, union-attr]

# Lowest first. A module may import from its own layer or a lower one, never a higher one.
LAYERS = [
    ("errors", "codes", "version"),
    ("kernel",),
    ("model",),
    ("io",),
    ("engine",),
    ("bills",),
    ("store",),
    ("rerate",),
    ("cluster",),
    ("advisor",),
    ("cli",),
    ("__init__", "__main__", "dask"),
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
# The compiled modules of a package (every .pyx in it) are reached only through its selector: the kernel's
# (rating kernel, array helpers) through kernel.select, the bill formatter through bills.files (``formatter()``).
SELECTORS = {f"{PACKAGE}.kernel": f"{PACKAGE}.kernel.select", f"{PACKAGE}.bills": f"{PACKAGE}.bills.files"}
MAX_ROOT_MODULES = 8


def module_name(path: Path, root: Path) -> str:
    """The dotted name of one source file (a package's __init__ is the package itself)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    """True for a package's __init__.py (its relative imports start from the package itself)."""
    return path.name == "__init__.py"


def source_modules(root: Path) -> dict[str, Path]:
    """Every .py module under root by dotted name."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def compiled_modules(root: Path) -> set[str]:
    """Cython modules (.pyx) by dotted name: importable, but not read here."""
    return {module_name(path, root) for path in root.rglob("*.pyx")}


def compiled_selected(root: Path) -> dict[str, str]:
    """Each compiled module by dotted name, with the one module that may import it (its package's selector)."""
    return {name: SELECTORS.get(name.rsplit(".", 1)[0], f"{name.rsplit('.', 1)[0]} has no selector")
            for name in compiled_modules(root)}


def resolve(name: str, path: Path, level: int, module: str | None) -> str:
    """The absolute name a relative `from` import points at."""
    if level == 0:
        return module or ""
    base = name.split(".") if is_package(path) else name.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """Every (imported module, imported name or '', line) in one file, function-level ones included; a `from X
    import y` where X.y is itself a module counts as importing X.y."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    found.append((alias.name, "", node.lineno))
        elif isinstance(node, ast.ImportFrom):
            target = resolve(name, path, node.level, node.module)
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    found.append((sub, "", node.lineno))
                else:
                    found.append((target, alias.name, node.lineno))
    return found


def subpackage(name: str) -> str:
    """The top-level part of the package a module belongs to ('errors', 'kernel', '__init__' for the root)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def import_graph(root: Path) -> tuple[dict[str, Path], dict[str, list[tuple[str, str, int]]]]:
    modules = source_modules(root)
    known = set(modules) | compiled_modules(root)
    return modules, {name: imports(name, path, known) for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of module names (first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def cycle_problems(root: Path) -> list[str]:
    modules, graph = import_graph(root)
    edges = {name: {target for target, _, _ in found if target in modules and target != name}
             for name, found in graph.items()}
    # The edges are the imports written. Importing a module also runs its parent packages first, but counting
    # that would make every package that re-exports one of its modules a cycle.
    cycle = find_cycle(edges)
    return [" -> ".join(cycle)] if cycle else []


def layer_problems(root: Path) -> list[str]:
    _, graph = import_graph(root)
    problems = []
    for name, found in graph.items():
        own = subpackage(name)
        for target, _, line in found:
            other = subpackage(target)
            if other == own:
                continue
            if other not in RANK or own not in RANK:
                problems.append(f"{name}:{line} imports {target}: {other if other not in RANK else own} is in no layer")
            elif own == "kernel" and other not in LAYERS[0]:
                problems.append(f"{name}:{line} kernel imports {target} (kernel may import only errors/codes/version)")
            elif RANK[other] > RANK[own]:
                problems.append(f"{name}:{line} imports {target}: layer {other} is above {own}")
    return problems


def private_problems(root: Path) -> list[str]:
    _, graph = import_graph(root)
    compiled = compiled_selected(root)
    problems = []
    for name, found in graph.items():
        for target, imported, line in found:
            if target in compiled:
                if name != compiled[target]:
                    problems.append(f"{name}:{line} imports {target} (only {compiled[target]} may)")
                continue
            if subpackage(target) == subpackage(name):
                continue
            last = target.rsplit(".", 1)[-1]
            if is_private(imported) or is_private(last):
                problems.append(f"{name}:{line} imports private {target}{'.' + imported if imported else ''}")
    return problems


def contract_problems(root: Path) -> list[str]:
    """The kernel contract (its dataclasses) imports nothing but numpy, the standard library and errors/codes."""
    modules, graph = import_graph(root)
    name = f"{PACKAGE}.kernel.contract"
    if name not in modules:
        return []
    problems = [f"{name}:{line} imports {target}" for target, _, line in graph[name]
                if subpackage(target) not in ("errors", "codes")]
    for node in ast.walk(ast.parse(modules[name].read_text())):
        if isinstance(node, ast.Import):
            tops = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops = [node.module.split(".")[0]]
        else:
            continue
        problems += [f"{name}:{node.lineno} imports {top}" for top in tops
                     if top not in sys.stdlib_module_names and top not in ("__future__", "numpy")]
    return problems


def root_problems(root: Path) -> list[str]:
    modules = sorted(path.name for path in root.glob("*.py"))
    if len(modules) > MAX_ROOT_MODULES:
        return [f"{len(modules)} modules at the package root (at most {MAX_ROOT_MODULES}): {', '.join(modules)}"]
    return []


def pyx_docstring(path: Path) -> str:
    """The first docstring line of a Cython module: its first line of code after comments and blank lines."""
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()[3:].strip() if line.strip().startswith('"""') else ""
    return ""


def docstring_problems(root: Path) -> list[str]:
    problems = []
    for name, path in source_modules(root).items():
        doc = ast.get_docstring(ast.parse(path.read_text(), str(path)))
        if not doc or not doc.strip().splitlines()[0].strip():
            problems.append(f"{name} has no docstring saying what it owns")
    for path in sorted(root.rglob("*.pyx")):
        if not pyx_docstring(path).strip('"'):
            problems.append(f"{module_name(path, root)} has no docstring saying what it owns")
    return problems


CHECKS = {
    "cycles": cycle_problems,
    "layers": layer_problems,
    "private names": private_problems,
    "kernel contract": contract_problems,
    "root size": root_problems,
    "docstrings": docstring_problems,
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_house_rules(check: str) -> None:
    problems = CHECKS[check](SOURCE)
    assert not problems, f"{check}:\n" + "\n".join(problems)


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / PACKAGE
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


CLEAN = {
    "__init__.py": '"""Root."""\nfrom .engine.rate import rate\n',
    "errors.py": '"""Errors."""\n',
    "kernel/__init__.py": '"""Kernel."""\n',
    "kernel/select.py": '"""Selector."""\nfrom . import _core\nfrom . import _hashing, _passes\nfrom ._sorting import f\n',
    "kernel/_core.pyx": '"""Kernel."""\n',
    "kernel/_hashing.pyx": '# cython: language_level=3\n"""Hashing."""\n',
    "kernel/_sorting.pyx": '"""Sorting."""\n',
    "kernel/_passes.pyx": '"""Passes."""\n',
    "kernel/contract.py": '"""Contract."""\nfrom dataclasses import dataclass\nimport numpy as np\nfrom ..errors import E\n',
    "model/__init__.py": '"""Model."""\n',
    "model/money.py": '"""Money."""\nfrom ..errors import OcrledgerError\n',
    "engine/__init__.py": '"""Engine."""\n',
    "engine/rate.py": '"""Rate."""\nfrom ..model.money import x\nfrom ..kernel.select import helpers\n',
    "bills/__init__.py": '"""Bills."""\n',
    "bills/_billfmt.pyx": '"""Formatter."""\n',
    "bills/files.py": '"""Writer."""\nfrom ..kernel.select import pure_python\nfrom . import _billfmt\n',
    "bills/render.py": '"""Render."""\nfrom .files import json_text\n',
}


def test_checks_pass_a_clean_package(tmp_path: Path) -> None:
    root = _package(tmp_path, CLEAN)
    assert {check: run(root) for check, run in CHECKS.items()} == {check: [] for check in CHECKS}


@pytest.mark.parametrize("check, changes, expected", [
    ("cycles", {"model/money.py": '"""Money."""\ndef f():\n    from ..engine import rate\n'},
     "ocrledger.engine.rate -> ocrledger.model.money -> ocrledger.engine.rate"),
    ("layers", {"model/money.py": '"""Money."""\ndef f():\n    from ..engine.rate import rate\n'},
     "ocrledger.model.money:3 imports ocrledger.engine.rate: layer engine is above model"),
    ("layers", {"kernel/select.py": '"""Selector."""\nfrom ..model.money import x\n'},
     "ocrledger.kernel.select:2 kernel imports ocrledger.model.money (kernel may import only errors/codes/version)"),
    ("private names", {"engine/rate.py": '"""Rate."""\nfrom ..model.money import _x\n'},
     "ocrledger.engine.rate:2 imports private ocrledger.model.money._x"),
    ("private names", {"engine/rate.py": '"""Rate."""\nfrom ..kernel import _core\n'},
     "ocrledger.engine.rate:2 imports ocrledger.kernel._core (only ocrledger.kernel.select may)"),
    ("private names", {"engine/rate.py": '"""Rate."""\nfrom ..kernel import select, _hashing\n'},
     "ocrledger.engine.rate:2 imports ocrledger.kernel._hashing (only ocrledger.kernel.select may)"),
    ("private names", {"engine/rate.py": '"""Rate."""\ndef f():\n    from ..kernel._passes import spans\n'},
     "ocrledger.engine.rate:3 imports ocrledger.kernel._passes (only ocrledger.kernel.select may)"),
    ("private names", {"kernel/reference.py": '"""Reference."""\nimport ocrledger.kernel._sorting\n'},
     "ocrledger.kernel.reference:2 imports ocrledger.kernel._sorting (only ocrledger.kernel.select may)"),
    ("private names", {"bills/render.py": '"""Render."""\nfrom . import _billfmt\n'},
     "ocrledger.bills.render:2 imports ocrledger.bills._billfmt (only ocrledger.bills.files may)"),
    ("layers", {"model/money.py": '"""Money."""\nfrom ..stray import x\n'},
     "ocrledger.model.money:2 imports ocrledger.stray: stray is in no layer"),
    ("kernel contract", {"kernel/contract.py": '"""Contract."""\nimport numpy as np\nimport pandas as pd\n'},
     "ocrledger.kernel.contract:3 imports pandas"),
    ("kernel contract", {"kernel/contract.py": '"""Contract."""\nfrom .select import helpers\n'},
     "ocrledger.kernel.contract:2 imports ocrledger.kernel.select"),
    ("root size", {f"m{i}.py": f'"""M{i}."""\n' for i in range(8)}, "10 modules at the package root"),
    ("docstrings", {"model/money.py": "from ..errors import OcrledgerError\n"},
     "ocrledger.model.money has no docstring saying what it owns"),
    ("docstrings", {"kernel/_passes.pyx": "# cython: language_level=3\nfrom libc.stdint cimport int32_t\n"},
     "ocrledger.kernel._passes has no docstring saying what it owns"),
    ("docstrings", {"kernel/_sorting.pyx": '""""""\n'}, "ocrledger.kernel._sorting has no docstring saying what it owns"),
])
def test_checks_catch_a_broken_rule(tmp_path: Path, check: str, changes: dict[str, str], expected: str) -> None:
    root = _package(tmp_path, {**CLEAN, **changes})
    problems = CHECKS[check](root)
    assert any(problem.startswith(expected) for problem in problems), problems
