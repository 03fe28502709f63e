"""Test fixtures: every kernel test runs on both kernels; hypothesis profiles; swallowed-error guard."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from ocrledger.kernel import select as _kernel

settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

KERNELS = list(_kernel.KERNELS)


@pytest.fixture(params=KERNELS, scope="session")
def kernel(request: pytest.FixtureRequest) -> str:
    """The name of a kernel ('cython', 'reference'): tests taking it run once on each."""
    return str(request.param)


@pytest.fixture(autouse=True)
def no_swallowed_errors(capfd: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Fail a test whose stderr shows an exception that Cython swallowed ("Exception ignored")."""
    yield
    err = capfd.readouterr().err
    assert "Exception ignored" not in err, err
