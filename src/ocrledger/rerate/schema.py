"""calls.parquet's shape for the rerater: its Arrow schema and the names its ``status`` and ``source`` columns hold (defined once, in ``codes`` and ``engine.outcomes``)."""
from __future__ import annotations

from ..codes import SOURCE_NAMES, STATUS_NAMES
from ..engine.outcomes import calls_schema

__all__ = ["SOURCE_NAMES", "STATUS_NAMES", "calls_schema"]
