import pytest


@pytest.fixture(autouse=True)
def _fresh_outbox_globals():
    from surefoot.outbox import default_catalogue, default_router

    default_catalogue.clear()
    default_router.clear()
    yield
    default_catalogue.clear()
    default_router.clear()
