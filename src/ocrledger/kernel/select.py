"""Picks the kernel (compiled ``_core`` unless OCRLEDGER_PURE_PYTHON=1), runs it safely on a batch, and hands out
the compiled helpers (``_hashing``, ``_sorting``, ``_passes``): the only way in to the compiled modules."""
from __future__ import annotations

import os
from dataclasses import fields
from types import ModuleType
from typing import Callable, Protocol

import numpy as np

from ..codes import Fault, Status
from ..errors import MoneyError, StateError
from . import reference as _reference
from .contract import Batch, KernelState, KernelTables, Outcomes


class Kernel(Protocol):
    IMPLEMENTATION: str

    def rate_batch(self, tables: KernelTables, state: KernelState, batch: Batch, out: Outcomes) -> int: ...


def _namespace(modules: tuple[ModuleType, ...]) -> ModuleType:
    """One namespace holding the public names of the compiled helper modules (no name in two of them)."""
    space = ModuleType(f"{__package__}.helpers", "The compiled array helpers, from " +
                       ", ".join(module.__name__ for module in modules) + ".")
    for module in modules:
        for name in dir(module):
            if name.startswith("_"):
                continue
            if hasattr(space, name):
                raise ImportError(f"{module.__name__}.{name} is also in another compiled helper module")
            setattr(space, name, getattr(module, name))
    return space


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
try:
    from . import _hashing, _passes, _sorting
except ImportError:
    _helpers: ModuleType | None = None
else:
    _helpers = _namespace((_hashing, _sorting, _passes))


def pure_python() -> bool:
    """True when OCRLEDGER_PURE_PYTHON=1 asks for the twins: the one rule by which every compiled module is
    chosen or not (the helpers here, the bill formatter by ``bills.files.formatter``)."""
    return os.environ.get("OCRLEDGER_PURE_PYTHON") == "1"


def helpers() -> ModuleType | None:
    """The compiled array helpers (string hashing, sorting and gathering, counting passes) as one namespace,
    built once, or None when they are not built or OCRLEDGER_PURE_PYTHON=1 (callers then use their
    plain-numpy twins). The only way in to ``_hashing``, ``_sorting`` and ``_passes``."""
    return None if pure_python() else _helpers


default: ModuleType = _compiled if _compiled is not None and not pure_python() else _reference
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
        step: int = 0, progress: Callable[[int], None] | None = None, restore: bool = True) -> Outcomes:
    """Rate a batch all-or-nothing: on an error the counters are restored and it is raised.

    ``restore=False`` skips the copy kept for that, for a caller that drops ``state`` on an error
    (a batch rated from fresh counters).

    The outcomes go to ``out`` when given (else new arrays). With ``step``, the batch is rated
    ``step`` calls at a time (the counters carry over, so the outcomes are the same) and
    ``progress(k)`` is called once the first k calls are rated: a reader of ``out`` can start
    before the whole batch is done.
    """
    n = len(batch)
    out = Outcomes.empty(n) if out is None else out
    check(tables, state, batch, out)
    before = state.copy() if restore else None
    step = step if step > 0 else max(n, 1)
    for lo in range(0, max(n, 1), step):
        hi = min(n, lo + step)
        done = lo + kernel.rate_batch(tables, state, batch.slice(lo, hi), out.slice(lo, hi))
        if done != hi:
            if before is not None:
                state.restore(before)
            raise _error(out, done)
        if progress is not None:
            progress(hi)
    return out


def _error(out: Outcomes, done: int) -> MoneyError | StateError:
    code = int(out.status[done])
    error: MoneyError | StateError
    if code == Fault.ERR_OVERFLOW:
        error = MoneyError(f"call {done} of the batch: PAYG spend would pass INT64_MAX micro-units")
    else:
        error = StateError(f"call {done} of the batch belongs to a month before one its counters already closed")
    error.call_index = done  # type: ignore[attr-defined]
    return error


def hold_back(batch: Batch, bad: np.ndarray) -> np.ndarray:
    """The calls of ``batch`` (charge order) with an unknown or expired credential (``bad``) that are not duplicates:
    flagged as duplicates here, so that the kernel charges and counts nothing for them (``reject`` after it)."""
    blocked = bad.astype(bool) & (batch.duplicate == 0)
    if not batch.duplicate.flags.writeable:  # a view of an Arrow column
        batch.duplicate = batch.duplicate.copy()
    batch.duplicate |= blocked.astype(np.int8)
    return blocked


def reject(batch: Batch, out: Outcomes, blocked: np.ndarray) -> None:
    """After the kernel: the ``hold_back`` calls are REJECTED_CREDENTIAL (FAILED when the call failed), not duplicates."""
    batch.duplicate[blocked] = 0
    out.status[blocked] = np.where(batch.success[blocked] == 1, Status.REJECTED_CREDENTIAL, Status.FAILED)


def name_call(error: MoneyError | StateError, record_id: str, source: str | None,
              row: int | None, call: tuple[str, int, int, int, int] | None = None) -> MoneyError | StateError:
    """The same kernel error, naming the record, file and row instead of a batch position.

    Where the file and row are not known (a pass over shuffled calls), ``call`` (account, channel code, API
    index, instant, success) is kept on the error as ``call``, with the record id: the Dask rerate looks the
    call up in its inputs to name its file and row (``cluster.dask.locate``)."""
    what = ("its PAYG spend this month would pass INT64_MAX micro-units" if isinstance(error, MoneyError)
            else "its month is earlier than one its counters already moved to")
    named = type(error)(f"record {record_id}: {what}", file=source, row=row)
    if source is None and call is not None:
        named.call = (record_id, *call)  # type: ignore[attr-defined]
    return named
