"""The batch rerater: a period of archived calls rated from scratch in bounded memory, with every output file."""
from .rerater import RerateResult, rerate

__all__ = ["RerateResult", "rerate"]
