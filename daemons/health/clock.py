"""Time as the health monitor sees it, injected so that tests can jump it (as trio's MockClock).

The monitor never calls `time` or `asyncio.sleep` itself: every reading and every wait goes
through a Clock, so detection and recovery timing are tested in milliseconds with a fake one
(tests/unit/fakes.py) while the daemons run on the event loop's own monotonic time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds: every interval, deadline and latency is measured on this."""

    def wall(self) -> float:
        """Seconds since the Unix epoch: for timestamps other daemons and people read."""

    async def sleep(self, seconds: float) -> None: ...

    def call_later(self, seconds: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    """The running asyncio loop's clock (time.monotonic), for the daemons."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(seconds, callback)
