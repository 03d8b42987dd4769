import pytest

from surefoot._core.clock import SYSTEM_CLOCK, Clock
from surefoot.testing import FakeClock


def test_fake_clock_is_a_clock():
    assert isinstance(FakeClock(), Clock)
    assert isinstance(SYSTEM_CLOCK, Clock)


async def test_fake_clock_sleeps_advance_time():
    clock = FakeClock(start=100.0)
    clock.sleep(1.5)
    await clock.asleep(2.5)
    assert clock.time() == 104.0
    assert clock.monotonic() == 4.0
    assert clock.sleeps == [1.5, 2.5]
    with pytest.raises(ValueError):
        clock.advance(-1)
