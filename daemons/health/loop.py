"""The one event loop thread on which all of a daemon's neighbour monitors run, in its monitor
process (process.py).

It owns the thread and the monitors' start and stop; what a monitor does is monitor.py's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Sequence
from typing import Protocol


class Monitor(Protocol):
    async def run(self) -> None: ...


class MonitorLoop:
    """The event loop thread that runs every NeighborMonitor of a daemon."""

    def __init__(self, monitors: Sequence[Monitor]):
        self.monitors = monitors
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="health-monitor", daemon=True)
        self._running: concurrent.futures.Future[None] | None = None
        self._finished = threading.Event()

    async def _run_all(self) -> None:
        tasks = [asyncio.create_task(monitor.run()) for monitor in self.monitors]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # their cleanup: channels, sockets
            self._finished.set()

    def start(self) -> None:
        self._thread.start()
        self._running = asyncio.run_coroutine_threadsafe(self._run_all(), self._loop)

    def stop(self) -> None:
        """Cancels the monitors, lets them close their channels and sockets, and ends the loop."""
        if self._running is None:
            return
        self._running.cancel()
        self._finished.wait(timeout=3)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=3)
        if not self._thread.is_alive():
            self._loop.close()
        self._running = None
