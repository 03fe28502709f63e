"""ocrledger: exact rating and deduction engine for per-call-billed APIs (public names)."""
from __future__ import annotations

__version__ = "0.1.0"
