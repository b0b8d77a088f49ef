"""One thread for BLAS and OpenMP, as `kinfolk recommender evaluate` runs: on a busy machine
spinning threads made these small fits several times slower."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield
