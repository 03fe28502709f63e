"""Build of the compiled modules, ocrledger.kernel._core and ocrledger.bills._billfmt (Cython); metadata lives in pyproject.toml."""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

# Safety checks are off in release builds; OCRLEDGER_DEBUG=1 turns them back on (and line tracing).
DEBUG = os.environ.get("OCRLEDGER_DEBUG") == "1"
directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}
if DEBUG:
    directives["linetrace"] = True

extensions = [
    Extension(
        f"ocrledger.{name}",
        [f"src/ocrledger/{name.replace('.', '/')}.pyx"],
        extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
        define_macros=[("CYTHON_TRACE_NOGIL", "1")] if DEBUG else [],
    )
    for name in ("kernel._core", "bills._billfmt")
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives, annotate=False))
