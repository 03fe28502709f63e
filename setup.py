"""Build of the one compiled module, ocrledger._core (Cython); metadata lives in pyproject.toml."""
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

extension = Extension(
    "ocrledger._core",
    ["src/ocrledger/_core.pyx"],
    extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
    define_macros=[("CYTHON_TRACE_NOGIL", "1")] if DEBUG else [],
)

setup(ext_modules=cythonize([extension], compiler_directives=directives, annotate=False))
