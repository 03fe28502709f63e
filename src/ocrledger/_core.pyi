"""Type stub of the compiled kernel ocrledger._core."""
from .tables import Batch, KernelState, KernelTables, Outcomes

IMPLEMENTATION: str

def rate_batch(tables: KernelTables, state: KernelState, batch: Batch, out: Outcomes) -> int: ...
def enum_values() -> dict[str, dict[str, int]]: ...
