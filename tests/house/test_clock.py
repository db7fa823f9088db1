import time

import pytest

from castrig.clock import VirtualClock, WallClock, wait_until


def test_virtual_clock_eight_hours_costs_no_real_time():
    clock = VirtualClock()
    t0 = time.perf_counter()
    for _ in range(8 * 3600):
        clock.sleep(1.0)
    assert clock.now() == pytest.approx(8 * 3600)
    assert time.perf_counter() - t0 < 1.0


def test_virtual_clock_sleep_until_never_goes_back():
    clock = VirtualClock(start=10.0)
    clock.sleep_until(5.0)
    assert clock.now() == 10.0
    clock.sleep_until(12.5)
    assert clock.now() == 12.5
    with pytest.raises(ValueError):
        clock.sleep(-1)


def test_virtual_clock_epoch_is_reproducible():
    a, b = VirtualClock(), VirtualClock()
    a.sleep(3600)
    b.sleep(3600)
    assert a.epoch() == b.epoch()
    assert a.epoch() - VirtualClock().epoch() == pytest.approx(3600)


def test_wait_until_polls_on_the_clock_and_times_out():
    clock = VirtualClock()
    seen = []

    def cond():
        seen.append(clock.now())
        return clock.now() >= 30

    assert wait_until(clock, cond, timeout_s=100, poll_s=10)
    assert seen == [0, 10, 20, 30]
    assert not wait_until(clock, lambda: False, timeout_s=25, poll_s=10)
    assert clock.now() == 55  # 30 + 25: the deadline is honoured exactly


def test_wall_clock_really_sleeps():
    clock = WallClock()
    t0 = clock.now()
    clock.sleep(0.05)
    assert clock.now() - t0 >= 0.045
    assert abs(clock.epoch() - time.time()) < 1.0
