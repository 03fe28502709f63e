"""Picks the kernel (compiled ``_core`` unless OCRLEDGER_PURE_PYTHON=1) and runs it safely on a batch."""
from __future__ import annotations

import os
from dataclasses import fields
from types import ModuleType
from typing import Callable, Protocol

import numpy as np

from ..codes import Status
from ..errors import MoneyError, StateError
from . import reference as _reference
from .contract import Batch, KernelState, KernelTables, Outcomes


class Kernel(Protocol):
    IMPLEMENTATION: str

    def rate_batch(self, tables: KernelTables, state: KernelState, batch: Batch, out: Outcomes) -> int: ...


PURE_PYTHON_WARNING = (
    "ocrledger runs on the plain-Python kernel: the compiled kernel is not installed (built without a C "
    "compiler?); results are the same, 50-300x slower. Reinstall with a C compiler for the compiled kernel, "
    "or set OCRLEDGER_PURE_PYTHON=1 to choose the plain-Python one and silence this warning."
)
"""Warned once at import when the compiled kernel is missing and the plain-Python one was not asked for."""

try:
    from . import _core as _compiled
except ImportError:  # built without a compiler (setup.py says so too); tests assert the compiled one loads
    _compiled = None
    if os.environ.get("OCRLEDGER_PURE_PYTHON") != "1":
        import warnings

        warnings.warn(PURE_PYTHON_WARNING, RuntimeWarning, stacklevel=2)


def helpers() -> ModuleType | None:
    """The compiled module (its array helpers beside the kernel pass), or None when it is not built or
    OCRLEDGER_PURE_PYTHON=1 (callers then use their plain-numpy twins). The only way in to ``_core``."""
    if os.environ.get("OCRLEDGER_PURE_PYTHON") == "1":
        return None
    return _compiled


default: ModuleType = helpers() or _reference
IMPLEMENTATION: str = default.IMPLEMENTATION
KERNELS: dict[str, ModuleType] = {"reference": _reference}
if _compiled is not None:
    KERNELS["cython"] = _compiled


def get(name: str | None = None) -> ModuleType:
    """The kernel module by name ('cython' or 'reference'); None gives the default."""
    if name is None:
        return default
    try:
        return KERNELS[name]
    except KeyError:
        raise ValueError(f"no kernel {name!r}; available: {', '.join(KERNELS)}") from None


_DTYPES = {
    "party": np.int32, "api": np.int32, "ts": np.int64, "period": np.int32,
    "success": np.int8, "duplicate": np.int8,
}
_OUT_DTYPES = {"status": np.int8, "source": np.int8, "plan": np.int32, "tier": np.int16, "amount": np.int64}


def check(tables: KernelTables, state: KernelState, batch: Batch, out: Outcomes) -> None:
    """Check dtypes, contiguity, shapes and index ranges once, so the kernel can trust them."""
    n = len(batch)
    for name, dtype in _DTYPES.items():
        col = getattr(batch, name)
        if col.dtype != dtype or col.ndim != 1 or len(col) != n or not col.flags.c_contiguous:
            raise TypeError(f"batch.{name} must be a contiguous 1-d {np.dtype(dtype).name} array of length {n}")
    for name, dtype in _OUT_DTYPES.items():
        col = getattr(out, name)
        if col.dtype != dtype or col.ndim != 1 or len(col) < n or not col.flags.c_contiguous or not col.flags.writeable:
            raise TypeError(f"out.{name} must be a writeable contiguous 1-d {np.dtype(dtype).name} array of length >= {n}")
    n_pair = tables.n_party * tables.n_api
    for f in fields(state):
        expected = tables.n_party if f.name == "pool_used" else tables.n_plan if f.name == "plan_remaining" else n_pair
        if len(getattr(state, f.name)) != expected:
            raise TypeError(f"state.{f.name} has {len(getattr(state, f.name))} entries, expected {expected}")
    if n:
        if batch.party.min() < 0 or batch.party.max() >= tables.n_party:
            raise IndexError("batch.party holds an index outside the party table")
        if batch.api.min() < 0 or batch.api.max() >= tables.n_api:
            raise IndexError("batch.api holds an index outside the catalog")


def run(kernel: ModuleType, tables: KernelTables, state: KernelState, batch: Batch, *, out: Outcomes | None = None,
        step: int = 0, progress: Callable[[int], None] | None = None) -> Outcomes:
    """Rate a batch all-or-nothing: on an error the counters are restored and it is raised.

    The outcomes go to ``out`` when given (else new arrays). With ``step``, the batch is rated
    ``step`` calls at a time (the counters carry over, so the outcomes are the same) and
    ``progress(k)`` is called once the first k calls are rated: a reader of ``out`` can start
    before the whole batch is done.
    """
    n = len(batch)
    out = Outcomes.empty(n) if out is None else out
    check(tables, state, batch, out)
    before = state.copy()
    step = step if step > 0 else max(n, 1)
    for lo in range(0, max(n, 1), step):
        hi = min(n, lo + step)
        done = lo + kernel.rate_batch(tables, state, batch.slice(lo, hi), out.slice(lo, hi))
        if done != hi:
            state.restore(before)
            raise _error(out, done)
        if progress is not None:
            progress(hi)
    return out


def _error(out: Outcomes, done: int) -> MoneyError | StateError:
    code = Status(int(out.status[done]))
    error: MoneyError | StateError
    if code == Status.ERR_OVERFLOW:
        error = MoneyError(f"call {done} of the batch: PAYG spend would pass INT64_MAX micro-units")
    else:
        error = StateError(f"call {done} of the batch belongs to a month before one its counters already closed")
    error.call_index = done  # type: ignore[attr-defined]
    return error


def name_call(error: MoneyError | StateError, record_id: str, source: str | None,
              row: int | None) -> MoneyError | StateError:
    """The same kernel error, naming the record, file and row instead of a batch position."""
    what = ("its PAYG spend this month would pass INT64_MAX micro-units" if isinstance(error, MoneyError)
            else "its month is earlier than one its counters already moved to")
    return type(error)(f"record {record_id}: {what}", file=source, row=row)
