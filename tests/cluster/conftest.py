"""A real dask.distributed cluster for the cluster tests: 2 worker processes, one thread each, started once."""
from __future__ import annotations

import random

import pytest


@pytest.fixture(scope="session")
def client():  # type: ignore[no-untyped-def]
    distributed = pytest.importorskip("distributed")
    import dask.sizeof
    import distributed.utils_comm

    # The client's and the in-process scheduler's threads draw from the global random module (sampling a message's
    # size, choosing a worker to gather from) at any moment, e.g. while hypothesis draws the next example, which it
    # reports as a strategy using `random`: give them a generator of their own.
    for module in (dask.sizeof, distributed.utils_comm):
        module.random = random.Random(0)  # type: ignore[attr-defined]
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=50)
    with cluster, distributed.Client(cluster) as c:
        yield c
