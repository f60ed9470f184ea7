"""A daemon's threads kept on the CPUs its config names (`cpus`), once it serves.

A daemon's threads hand each request on to one another all the time: gRPC's completion-queue
thread to a request thread, a merge's pumps to its consumer, every thread to the next one that
wants the interpreter, which runs one of them at a time. On two cores the kernel spreads them
over both, and each handoff wakes a thread on the other core: an interrupt to that core, and the
request's data in the other core's cache. Kept on one core, the same handoffs stay on it.
Measured 2026-12-01 on this 2-core machine, 16 clients asking one-site queries, paired against
the commit before: 115-141 queries/s and 13.2-15.9 ms of CPU per query with the kernel placing the
threads, 152-188 queries/s and 10.1-12.3 ms with each daemon on one of the cores (gateway_a,
worker_d and worker_f on one, leader_b, worker_c and leader_e on the other; README, Benchmarks);
a full scan, the PM query and the Arrow table took as long either way.

On one core a daemon has half the machine, though, and a flood of requests arriving at once
queues behind itself there: with 64 never-read queries at the gateway, or 160 never-read scans at
leader_e, a HealthCheck took 1.0-1.3 s, past the monitors' 0.6 s deadline (0.44 s at most on both
cores). So a daemon busy with more than BUSY_ABOVE requests runs on every CPU it may use, at once,
and goes back to its own when no more than that have run for CALM_SECONDS (`Placement`). The
16-client benchmark keeps each daemon at 16 or fewer; the bound counts one daemon, while a core
holds three, so it is well below the floods that were measured.

The daemon pins itself only once its data is loaded: a first start parses on every core. Its
health monitor runs in a process of its own, which puts itself on every CPU the daemon could use
at start (health/process.py `Setup.cpus`), also when a pinned daemon restarts it: answering a
neighbour's probe must not wait behind the daemon's own work. Pinning is a speed-up and never a
condition: a thread that refuses (an io_uring worker, a sandbox without the call) keeps running
where it was.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable

from daemons import events
from daemons.events import EventLog

TASKS = "/proc/self/task"
BUSY_ABOVE = 24  # requests running at once past which a daemon uses every CPU
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


def usable_cpus(configured: frozenset[int], allowed: frozenset[int]) -> tuple[frozenset[int], str | None]:
    """The CPUs to keep to: those configured that this process may use, or, when it may use none
    of them, all it may. With why, when that is not all of those configured."""
    usable = configured & allowed
    if usable == configured:
        return usable, None
    if not usable:
        return allowed, "none of them is among the CPUs this process may use: running on all of those"
    return usable, f"CPUs {sorted(configured - allowed)} are not among those this process may use"


def thread_ids() -> list[int]:
    return [int(name) for name in os.listdir(TASKS)]


def pin_threads(cpus: Iterable[int], threads: Callable[[], Iterable[int]] = thread_ids,
                set_affinity: Callable[[int, Iterable[int]], None] = os.sched_setaffinity) -> str | None:
    """Keeps every thread of this process on `cpus`, as far as each lets itself be moved; returns
    why one would not, if one would not. A thread inherits the affinity of the one that starts it,
    so the threads are listed again until no new one appears: one started meanwhile by a thread
    not yet pinned would otherwise run anywhere."""
    chosen = set(cpus)
    pinned: set[int] = set()
    refused: str | None = None
    while new := [thread for thread in threads() if thread not in pinned]:
        for thread in new:
            try:
                set_affinity(thread, chosen)
            except ProcessLookupError:  # the thread ended meanwhile
                pass
            except OSError as error:  # refused: it runs where it was (see the module's docstring)
                refused = f"thread {thread}: {error.strerror or error}"
            pinned.add(thread)
    return refused


class CpuKeeper:
    """Keeps this process's threads where its config and its load say (Placement), and logs it:
    the I/O around the decision. Locking: `_lock` guards `_placement` and orders the moves and
    their events."""

    def __init__(self, configured: frozenset[int] | None, log: EventLog):
        self.configured = configured  # None: the threads run wherever the kernel puts them
        self.every = frozenset(os.sched_getaffinity(0))  # those it may use, before it keeps to its own
        self.log = log
        self._placement: Placement | None = None
        self._lock = threading.Lock()

    def keep_to_configured(self) -> list[int]:
        """Pins the threads to the configured CPUs this process may use; returns those it runs on."""
        if self.configured is None:
            return sorted(self.every)
        usable, why = usable_cpus(self.configured, self.every)
        if why is not None:
            self._unavailable(why)
        with self._lock:
            self._placement = Placement(usable, self.every)
            self._pin(usable)
        return sorted(usable)

    def update(self, active: int) -> None:
        """Moves the threads as `active` requests running ask; told on each admission, and by the
        housekeeper, which moves them back once the daemon is calm."""
        if self._placement is None:
            return
        with self._lock:
            cpus = self._placement.update(active, time.monotonic())
            if cpus is not None:
                self._pin(cpus)
                events.CPUS_CHANGED.emit(self.log, cpus=sorted(cpus), active_requests=active)

    def _pin(self, cpus: frozenset[int]) -> None:
        refused = pin_threads(cpus)
        if refused is not None:
            self._unavailable(f"{refused}; it runs where it was")

    def _unavailable(self, why: str) -> None:
        events.CPUS_UNAVAILABLE.emit(self.log, configured=sorted(self.configured or ()), available=sorted(self.every),
                                     reason=why)
