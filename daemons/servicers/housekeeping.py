"""Housekeeping: one thread per daemon that cuts off streamed answers whose reader stopped
reading (the request registry's sweep), hands the memory of ended requests back to the operating
system, and runs the daemon's other chores of the same rhythm."""

from __future__ import annotations

import ctypes
import threading
import time
import traceback
from collections.abc import Callable, Sequence

from daemons import events
from daemons.errors import describe_error
from daemons.servicers.requests import Clock, RequestRegistry

# malloc_trim took 2 ms to return 100 MB of freed buffers (measured 2026-11-30); after 32
# cancelled full scans it took the gateway from 276 to 65 MB. It runs at most this often, and
# only after requests have ended, so an idle daemon never pays for it.
TRIM_INTERVAL_SECONDS = 2.0
MAX_SWEEP_INTERVAL_SECONDS = 1.0


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, which returns the free memory of every arena to the system; None
    where the C library has none."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


class TrimSchedule:
    """When to hand the heap that ended requests freed back to the operating system.

    glibc keeps freed memory for reuse: cancelled, 32 never-read full scans left the gateway at
    1,350 MB and leader_e at 430 MB, up from 61 and 102 (measured 2026-11-30). Trimming after
    requests have ended, at most once every `interval_seconds`, returns it while costing nothing
    at idle.
    """

    def __init__(self, interval_seconds: float, clock: Clock = time.monotonic):
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._last_at: float | None = None
        self._ended_at_last = 0

    def due(self, ended: int) -> bool:
        """Whether to trim now, given how many requests have ended so far; True counts as done."""
        now = self._clock()
        if ended == self._ended_at_last:
            return False
        if self._last_at is not None and now - self._last_at < self.interval_seconds:
            return False
        self._last_at, self._ended_at_last = now, ended
        return True


class Housekeeper:
    """One thread per daemon: cuts off streamed answers whose reader stopped reading (the request
    registry's sweep), hands the memory of ended requests back to the operating system, and runs
    `chores`, every second at most."""

    def __init__(self, requests: RequestRegistry, log: events.EventLog, chores: Sequence[Callable[[], object]] = ()):
        self.requests = requests
        self.chores = chores  # more to do every round: other registries' sweeps, the watchers' check
        self.log = log
        self.interval_seconds = min(MAX_SWEEP_INTERVAL_SECONDS, requests.idle_timeout_seconds / 10)
        self.trims = TrimSchedule(TRIM_INTERVAL_SECONDS)
        self._trim = malloc_trim()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="housekeeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            for chore in [self._sweep_and_trim, *self.chores]:
                try:
                    chore()
                except Exception as error:  # logged, and the rest runs: one bad request must not end the sweeps
                    events.REQUEST_FAILED.emit(self.log, method=f"Housekeeper.{getattr(chore, '__name__', 'chore')}",
                                               request_id="", error=describe_error(error),
                                               traceback="".join(traceback.format_exception(error)))

    def _sweep_and_trim(self) -> None:
        self.requests.sweep()
        if self._trim is not None and self.trims.due(self.requests.ended):
            self._trim(0)
