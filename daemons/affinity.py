"""A daemon's threads kept on the CPUs its config names (`cpus`), once it serves.

A daemon's threads hand each request on to one another all the time: gRPC's completion-queue
thread to a request thread, a merge's pumps to its consumer, every thread to the next one that
wants the interpreter, which runs one of them at a time. On two cores the kernel spreads them
over both, and each handoff wakes a thread on the other core: an interrupt to that core, and the
request's data in the other core's cache. Kept on one core, the same handoffs stay on it.
Measured 2026-12-01 on this 2-core machine, 16 clients asking one-site queries: 110-123 queries/s
and 15.0-16.9 ms of CPU per query with the kernel placing the threads, 125-146 queries/s and
12.9-14.8 ms with each daemon on one of the cores (gateway_a, worker_d and worker_f on one,
leader_b, worker_c and leader_e on the other); a full scan, the PM query and the Arrow table took
as long either way.

On one core a daemon has half the machine, though, and a flood of requests arriving at once
queues behind itself there: with 64 never-read queries at the gateway, or 160 never-read scans at
leader_e, a HealthCheck took 1.0-1.3 s, past the monitors' 0.6 s deadline (0.44 s at most on both
cores). So a daemon busy with more than BUSY_ABOVE requests runs on every CPU it may use, at once,
and goes back to its own when no more than that have run for CALM_SECONDS (`Placement`). The
16-client benchmark keeps each daemon at 16 or fewer.

The daemon pins itself only once its data is loaded: a first start parses on every core. Its
health monitor runs in a process of its own, started before, so it keeps every core: answering a
neighbour's probe must not wait behind the daemon's own work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable

TASKS = "/proc/self/task"
BUSY_ABOVE = 32  # requests running at once past which a daemon uses every CPU
CALM_SECONDS = 5.0  # how long it has run no more than that before it keeps to its own again


class Placement:
    """Which CPUs a daemon's threads run on as its load changes: a decision, no I/O.

    On its `configured` CPUs while at most `busy_above` requests run; on `every` CPU it may use as
    soon as more do; on its own again once no more than that have run for `calm_seconds`, so that
    a load hovering at the bound does not move the threads back and forth.
    """

    def __init__(self, configured: frozenset[int], every: frozenset[int], busy_above: int = BUSY_ABOVE,
                 calm_seconds: float = CALM_SECONDS):
        self.configured, self.every = configured, every
        self.busy_above, self.calm_seconds = busy_above, calm_seconds
        self.current = configured
        self._calm_since: float | None = None  # since when no more than busy_above have run, while on every CPU

    def update(self, active: int, now: float) -> frozenset[int] | None:
        """The CPUs to move the threads to, given the requests running now; None: stay."""
        if active > self.busy_above:
            self._calm_since = None
            moved = self.current != self.every
            self.current = self.every
            return self.every if moved else None
        if self.current == self.configured:
            return None
        if self._calm_since is None:
            self._calm_since = now
        if now - self._calm_since < self.calm_seconds:
            return None
        self.current, self._calm_since = self.configured, None
        return self.configured


def thread_ids() -> list[int]:
    return [int(name) for name in os.listdir(TASKS)]


def pin_threads(cpus: Iterable[int], threads: Callable[[], Iterable[int]] = thread_ids,
                set_affinity: Callable[[int, Iterable[int]], None] = os.sched_setaffinity) -> None:
    """Keeps every thread of this process on `cpus`. A thread inherits the affinity of the one that
    starts it, so the threads are listed again until no new one appears: one started meanwhile by a
    thread not yet pinned would otherwise run anywhere."""
    chosen = set(cpus)
    pinned: set[int] = set()
    while new := [thread for thread in threads() if thread not in pinned]:
        for thread in new:
            with contextlib.suppress(ProcessLookupError):  # the thread ended meanwhile
                set_affinity(thread, chosen)
            pinned.add(thread)
