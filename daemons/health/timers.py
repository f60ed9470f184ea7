"""A monitor's sleeps and deadlines, each fed to its awareness (awareness.py) as it fires.

It owns the measuring of the monitor's own lateness and what a late deadline does; how much a
deadline stretches is the awareness's, and what happens at it is the monitor's (monitor.py).
"""

from __future__ import annotations

from collections.abc import Callable

from daemons.health.awareness import Awareness
from daemons.health.clock import Clock


class MonitorTimers:
    def __init__(self, clock: Clock, awareness: Awareness):
        self.clock = clock
        self.awareness = awareness

    def deadline(self, timeout_seconds: float) -> float:
        """A probe's deadline of `timeout_seconds`, stretched while this prober runs late."""
        return self.awareness.scale(timeout_seconds)

    async def sleep(self, seconds: float) -> None:
        began = self.clock.now()
        await self.clock.sleep(seconds)
        self.awareness.timer_fired(self.clock.now() - began - seconds)

    def at(self, delay: float, judge: Callable[[], None]) -> None:
        """Calls `judge` once `delay` seconds have passed. A timer that fires late says the loop did
        not run meanwhile, so answers may be waiting unread: `judge` then runs one loop turn later,
        after they are read (asyncio reads its sockets before it runs the timers that are due)."""
        due = self.clock.now() + delay

        def fire() -> None:
            lateness = self.clock.now() - due
            self.awareness.timer_fired(lateness)
            if self.awareness.is_late(lateness):
                self.clock.call_later(0, judge)
            else:
                judge()

        self.clock.call_later(delay, fire)
