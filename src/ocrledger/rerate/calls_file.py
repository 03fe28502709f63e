"""calls.parquet's rows: rated calls as Arrow columns, text columns dictionary-encoded, for both rerate passes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..kernel import select as _kernel
from ..kernel.contract import Batch, Outcomes
from ..model.accounts import CHANNELS
from ..model.catalog import Catalog
from ..model.clock import period_label
from .schema import SOURCE_NAMES, STATUS_NAMES


def distinct_values(values: np.ndarray, size: int) -> np.ndarray:
    """The distinct values of ``values`` (each in [0, size)), ascending: flagged by a compiled pass for
    int32 (no 64-bit copy, no sort), else by numpy."""
    seen = np.zeros(max(size, 1), dtype=np.uint8)
    core = _kernel.helpers()
    if core is not None and values.dtype == np.int32:
        core.flag_values(values, seen)
    else:
        seen[values] = 1
    return np.flatnonzero(seen)


def lookup(index: np.ndarray, size: int, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(used values in increasing order, int32 lookup value -> position among the used)."""
    used = distinct_values(index if valid is None else index[valid], size)
    lut = np.zeros(max(size, 1), dtype=np.int32)
    lut[used] = np.arange(len(used), dtype=np.int32)
    return used, lut


def nullable(typ: Any, values: np.ndarray, valid: np.ndarray) -> Any:
    """An Arrow array of ``values`` (already of ``typ``'s width) with a validity bitmap from ``valid``."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    if valid.all():
        return pa.Array.from_buffers(typ, len(values), [None, pa.py_buffer(values)])
    bitmap = np.packbits(valid, bitorder="little")
    return pa.Array.from_buffers(typ, len(values), [pa.py_buffer(bitmap), pa.py_buffer(values)],
                                 null_count=int(len(valid) - np.count_nonzero(valid)))


@dataclass
class Dictionaries:
    """The account and period dictionaries of some rows: their Arrow values and each code's position."""

    party: Any
    party_lut: np.ndarray
    period: Any
    period_lut: np.ndarray


class CallColumns:
    """Builds calls.parquet's columns (``schema.calls_schema``) from rated calls in charge order.

    ``account`` and ``period`` are dictionary-encoded with the dictionaries the caller takes for the
    rows (``dictionaries``: a whole in-memory batch, or one spilled bucket); ``plan`` with each row
    group's own plans; ``api``, ``channel``, ``source`` and ``status`` with fixed dictionaries. The
    dictionary indices come from one compiled pass (``call_codes``) or its numpy twin.
    """

    def __init__(self, catalog: Catalog, party_names: np.ndarray, party_market: np.ndarray,
                 plan_ids: Sequence[str], n_plan: int) -> None:
        import pyarrow as pa

        self.api_codes = pa.array([a.code for a in catalog.apis], pa.string())
        self.channels = pa.array(list(CHANNELS), pa.string())
        self.statuses = pa.array(list(STATUS_NAMES), pa.string())
        self.sources = pa.array(list(SOURCE_NAMES), pa.string())
        self.party_names = party_names
        self.channel_of = party_market.astype(np.int32)
        self.plan_ids = plan_ids
        self.n_party, self.n_plan = len(party_names), n_plan

    def dictionaries(self, party: np.ndarray, period: np.ndarray) -> Dictionaries:
        """The account and period dictionaries of calls with these parties and periods."""
        import pyarrow as pa

        parties, party_lut = lookup(party, self.n_party)
        periods, period_lut = lookup(period, int(period.max()) + 1 if len(period) else 0)
        return Dictionaries(pa.array(self.party_names[parties].tolist() if len(parties) else [], pa.string()),
                            party_lut, pa.array([period_label(p) for p in periods.tolist()], pa.string()), period_lut)

    def columns(self, rid: Any, batch: Batch, out: Outcomes, dicts: Dictionaries) -> list[Any]:
        """The columns of the rows of ``batch`` and ``out`` (equal lengths), record ids ``rid`` (Arrow strings)."""
        import pyarrow as pa

        plan, tier = out.plan, out.tier
        plans, plan_lut = lookup(plan, self.n_plan, plan >= 0)
        plan_dict = pa.array([self.plan_ids[k] for k in plans.tolist()], pa.string())
        m = len(batch)
        idx = [np.empty(m, dtype=np.int32) for _ in range(6)]  # party, channel, period, source, plan, status
        source_valid, plan_valid = np.empty(m, dtype=np.uint8), np.empty(m, dtype=np.uint8)
        args = (batch.party, batch.period, out.source, plan, out.status, dicts.party_lut, self.channel_of,
                dicts.period_lut, plan_lut, idx[0], idx[1], idx[2], idx[3], source_valid, idx[4], plan_valid, idx[5])
        core = _kernel.helpers()
        (core.call_codes if core is not None else _call_codes)(*args)
        dict_of = pa.DictionaryArray.from_arrays
        return [
            rid,
            dict_of(pa.array(idx[0]), dicts.party),
            dict_of(pa.array(batch.api.astype(np.int32, copy=False)), self.api_codes),
            dict_of(pa.array(idx[1]), self.channels),
            pa.array(batch.ts),
            dict_of(pa.array(idx[2]), dicts.period),
            dict_of(nullable(pa.int32(), idx[3], source_valid.view(bool)), self.sources),
            dict_of(nullable(pa.int32(), idx[4], plan_valid.view(bool)), plan_dict),
            nullable(pa.int16(), np.ascontiguousarray(tier, dtype=np.int16), tier >= 0),
            pa.array(out.amount),
            dict_of(pa.array(idx[5]), self.statuses),
        ]


def _call_codes(party: np.ndarray, period: np.ndarray, source: np.ndarray, plan: np.ndarray, status: np.ndarray,
                party_lut: np.ndarray, channel_of: np.ndarray, period_lut: np.ndarray, plan_lut: np.ndarray,
                o_party: np.ndarray, o_channel: np.ndarray, o_period: np.ndarray, o_source: np.ndarray,
                source_valid: np.ndarray, o_plan: np.ndarray, plan_valid: np.ndarray, o_status: np.ndarray) -> None:
    """The numpy twin of the compiled ``call_codes``."""
    o_party[:] = party_lut[party]
    o_channel[:] = channel_of[party]
    o_period[:] = period_lut[period]
    paid = source > 0
    o_source[:] = np.where(paid, source.astype(np.int32) - 1, 0)
    source_valid[:] = paid
    o_plan[:] = np.where(plan >= 0, plan_lut[np.maximum(plan, 0)], 0)
    plan_valid[:] = plan >= 0
    o_status[:] = status
