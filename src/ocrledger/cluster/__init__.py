"""Past one machine: the rerate on a Dask cluster."""
