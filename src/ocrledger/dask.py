"""``ocrledger.dask``: the public name of the Dask rerate (``ocrledger.cluster.dask``)."""
from .cluster.dask import rerate

__all__ = ["rerate"]
