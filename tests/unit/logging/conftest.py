from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    from surefoot.logging import reset_logging

    reset_logging()
    yield
    reset_logging()
