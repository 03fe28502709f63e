"""Type stub of the compiled kernel ocrledger.kernel._core."""
from .contract import Batch, KernelState, KernelTables, Outcomes

IMPLEMENTATION: str

def rate_batch(tables: KernelTables, state: KernelState, batch: Batch, out: Outcomes) -> int: ...
def enum_values() -> dict[str, dict[str, int]]: ...
