"""Build of the compiled (Cython) modules listed in COMPILED; metadata lives in pyproject.toml."""
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

# Every compiled module, by its name under ocrledger (kernel/select.py is the only way in to the kernel's).
COMPILED = ("kernel._core", "kernel._hashing", "kernel._sorting", "kernel._passes", "bills._billfmt")

extensions = [
    Extension(
        f"ocrledger.{name}",
        [f"src/ocrledger/{name.replace('.', '/')}.pyx"],
        extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
        define_macros=[("CYTHON_TRACE_NOGIL", "1")] if DEBUG else [],
    )
    for name in COMPILED
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives, annotate=False))
