"""Type stubs of the compiled bill formatter (``_billfmt.pyx``)."""
from typing import Any

import numpy as np

class Texts:
    def __init__(self, blob: bytes, off: np.ndarray, chars: np.ndarray) -> None: ...

class Columns:
    def __init__(self, cols: Any, head_json: Texts, head_text: Texts, api_json: Texts, api_text: Texts,
                 tier_from: np.ndarray, tier_to: np.ndarray, price_json: Texts, price_text: Texts,
                 tier_label: Texts, plan_json: Texts, plan_text: Texts, plan_end: Texts, headers: Texts,
                 adj_json: Texts | None = None) -> None: ...

def json_chunk(c: Columns, lo: int, hi: int) -> bytes: ...
def json_bills(c: Columns, lo: int, hi: int) -> list[str]: ...
def text_chunk(c: Columns, lo: int, hi: int) -> bytes: ...
