"""Process-wide settings the command line makes for a rerate: Arrow's allocator, pandas kept out of pyarrow."""
from __future__ import annotations

import os
import sys
from typing import Any

from ..io.call_files import have_pyarrow


def release_memory_promptly() -> None:
    """Make Arrow allocate from the system allocator unless ARROW_DEFAULT_MEMORY_POOL says otherwise.

    Arrow's default mimalloc pool keeps freed pages of earlier buckets, so a long rerate's RSS
    grows with the input (1.34 GB for 50 M calls, against 0.86 GB with the system allocator,
    which also ran faster). The pool is process-wide, so the command line calls this; a program
    embedding ``rerate`` decides for itself.
    """
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ and have_pyarrow():  # else rerate() says what to install
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())


def keep_pandas_out() -> None:
    """Keep pyarrow from importing pandas in this process: its first ``pa.array`` imports pandas (about
    0.2 s) to recognise pandas objects, which the rerater never passes. pyarrow looks once and remembers,
    so pandas is hidden only while it looks. Process-wide (pyarrow then converts nothing to pandas here),
    so the command calls it; a program embedding ``rerate`` may well use pandas."""
    if "pandas" in sys.modules or not have_pyarrow():
        return
    import importlib.abc

    import pyarrow as pa

    class NoPandas(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> None:
            if name == "pandas":
                raise ImportError("the ocrledger command does not use pandas")
            return None

    hide = NoPandas()
    sys.meta_path.insert(0, hide)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(hide)
