"""The documentation site builds with Sphinx with warnings as errors (every reference resolves, every page of
docs/ is in it), and its API reference, made from the docstrings by autodoc, documents every public name:
each of ``ocrledger.__all__`` and of the public modules' ``__all__``, with the public methods and
properties of each public class (autodoc drops a member that has no docstring, silently)."""
from __future__ import annotations

import html
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ocrledger
import ocrledger.dask
import ocrledger.rerate

DOCS = Path(__file__).resolve().parent.parent / "docs"
PUBLIC_MODULES = (ocrledger, ocrledger.rerate, ocrledger.dask)
BUILD = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html"]  # the README's command


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (DOCS / "conf.py").exists():
        pytest.skip("docs/ is not beside the tests")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([*BUILD, str(DOCS), str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "WARNING" not in done.stderr, done.stderr[-4000:]
    return out


def public_names() -> list[str]:
    """Every name the public modules export, qualified: ``ocrledger.rate``, ``ocrledger.rerate.rerate``, ..."""
    return [f"{m.__name__}.{n}" for m in PUBLIC_MODULES for n in m.__all__ if n != "__version__"]


def public_members(cls: type) -> list[str]:
    """The methods and properties a public class defines itself (not an exception's, not dunders)."""
    if issubclass(cls, BaseException):
        return [n for n, v in vars(cls).items() if not n.startswith("_") and inspect.isfunction(v)]
    return [n for n, v in vars(cls).items() if not n.startswith("_")
            and (inspect.isfunction(v) or isinstance(v, (property, classmethod, staticmethod)))]


def test_every_public_name_and_member_is_in_the_built_reference(site: Path) -> None:
    page = (site / "api.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'<dt class="sig sig-object py" id="([^"]+)"', page))
    missing = []
    for qualified in public_names():
        module, name = qualified.rsplit(".", 1)
        obj = getattr(sys.modules[module], name)
        if qualified not in ids:
            missing.append(qualified)
        if isinstance(obj, type):
            missing += [f"{qualified}.{m}" for m in public_members(obj) if f"{qualified}.{m}" not in ids]
    assert not missing, f"not in docs/api.md's reference (no directive, or no docstring): {missing}"


def test_the_reference_has_only_the_sections_of_docs_api_md(site: Path) -> None:
    # a docstring with an underlined heading (NumPy's "Parameters\n----------") would add a section of its own
    page = (site / "api.html").read_text(encoding="utf-8")
    heading = r'<section id="[^"]*">\s*(?:<span[^>]*></span>)*<h([1-6])>(.*?)</h\1>'
    built = [html.unescape(re.sub(r"<[^>]+>", "", h)).rstrip("¶").strip()
             for _, h in re.findall(heading, page, flags=re.S)]
    written = [re.sub(r"`([^`]*)`", r"\1", line.lstrip("#").strip())
               for line in (DOCS / "api.md").read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    assert built == written


def test_every_markdown_page_of_docs_is_a_page_of_the_site(site: Path) -> None:
    pages = sorted(p.stem for p in DOCS.glob("*.md"))
    assert pages and all((site / f"{p}.html").exists() for p in pages), pages
    assert "href=\"api.html\"" in (site / "index.html").read_text(encoding="utf-8")
