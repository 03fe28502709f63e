"""Build of the compiled (Cython) modules listed in COMPILED; metadata lives in pyproject.toml.

Without a working C compiler (or with OCRLEDGER_PURE_PYTHON=1) the package installs without them and
runs on its plain-Python twins (the reference kernel, numpy helpers), saying so here and at import.
"""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

# Safety checks are off in release builds; OCRLEDGER_DEBUG=1 turns them back on (and line tracing).
DEBUG = os.environ.get("OCRLEDGER_DEBUG") == "1"
PURE = os.environ.get("OCRLEDGER_PURE_PYTHON") == "1"
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


class OptionalBuildExt(build_ext):
    """Build each extension if a C compiler can; else warn and leave it out (its plain-Python twin runs)."""

    def run(self) -> None:
        try:
            super().run()
        except (CCompilerError, ExecError, PlatformError, OSError) as exc:
            warn(f"no C extension could be built ({exc})")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except (CCompilerError, ExecError, PlatformError, OSError) as exc:
            warn(f"{ext.name} could not be compiled ({exc})")


def warn(why: str) -> None:
    print(f"WARNING: ocrledger: {why}; installing the plain-Python kernel and helpers instead, which give the "
          "same results 50-300x slower. Install a C compiler (e.g. gcc) and reinstall for the compiled kernel; "
          "`ocrledger --version` says which kernel is in use.", file=sys.stderr)


if PURE:
    warn("OCRLEDGER_PURE_PYTHON=1 asks for no compiled modules")
setup(
    ext_modules=[] if PURE else cythonize(extensions, compiler_directives=directives, annotate=False),
    cmdclass={"build_ext": OptionalBuildExt},
)
