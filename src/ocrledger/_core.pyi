"""Type stub of the compiled kernel ocrledger._core."""
import numpy as np

from .tables import Batch, KernelState, KernelTables, Outcomes

IMPLEMENTATION: str

def rate_batch(tables: KernelTables, state: KernelState, batch: Batch, out: Outcomes) -> int: ...
def enum_values() -> dict[str, dict[str, int]]: ...
def group_by_party(
    party: np.ndarray, api: np.ndarray, ts: np.ndarray, period: np.ndarray, success: np.ndarray,
    duplicate: np.ndarray, n_party: int, perm: np.ndarray, g_party: np.ndarray, g_api: np.ndarray,
    g_ts: np.ndarray, g_period: np.ndarray, g_success: np.ndarray, g_duplicate: np.ndarray,
) -> None: ...
def scatter_outcomes(
    perm: np.ndarray, status: np.ndarray, source: np.ndarray, plan: np.ndarray, tier: np.ndarray,
    amount: np.ndarray, o_status: np.ndarray, o_source: np.ndarray, o_plan: np.ndarray, o_tier: np.ndarray,
    o_amount: np.ndarray,
) -> None: ...
def dictionary_codes(
    rows: np.ndarray, tag: np.ndarray | None, order: np.ndarray | None, code: np.ndarray, first: np.ndarray,
    repeated: np.ndarray | None = None,
) -> int: ...
