"""A real dask.distributed cluster for the cluster tests: 2 worker processes, one thread each, started once."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def client():  # type: ignore[no-untyped-def]
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=50)
    with cluster, distributed.Client(cluster) as c:
        yield c
