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

The daemon pins itself only once its data is loaded: a first start parses on every core. Its
health monitor runs in a process of its own, started before, so it keeps every core: answering a
neighbour's probe must not wait behind the daemon's own work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable

TASKS = "/proc/self/task"


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
