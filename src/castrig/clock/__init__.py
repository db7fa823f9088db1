"""Time for everything that waits: the wall clock for hardware, a virtual clock for the twin.

Every wait in castrig goes through a :class:`Clock`, so the same recipe runs against the rig in
real time and against the digital twin in virtual time (an 8-hour hold costs microseconds).
"""

from castrig.clock.base import Clock, wait_until
from castrig.clock.virtual import VirtualClock
from castrig.clock.wall import WallClock

__all__ = ["Clock", "VirtualClock", "WallClock", "wait_until"]
