"""Pinning a daemon's threads (daemons/affinity.py): every thread, those started meanwhile too, and
on every CPU while the daemon is busy."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemons.affinity import Placement, pin_threads, usable_cpus


def test_every_thread_is_pinned_including_one_started_while_they_are_listed():
    running = [11, 12]
    pinned: dict[int, set[int]] = {}

    def threads() -> list[int]:
        listed = list(running)
        if 13 not in running:
            running.append(13)  # started by a thread not yet pinned, after this listing
        return listed

    def set_affinity(thread: int, cpus) -> None:
        pinned[thread] = set(cpus)

    pin_threads([1], threads, set_affinity)
    assert pinned == {11: {1}, 12: {1}, 13: {1}}


def test_a_thread_that_ends_while_pinning_is_skipped_and_one_that_refuses_is_named():
    pinned: list[int] = []

    def set_affinity(thread: int, cpus) -> None:
        if thread == 12:
            raise ProcessLookupError(thread)
        if thread == 14:
            raise OSError(errno.EINVAL, "Invalid argument")
        pinned.append(thread)

    assert pin_threads([0], lambda: [11, 12, 13], set_affinity) is None
    assert pinned == [11, 13]
    assert pin_threads([0], lambda: [11, 14, 13], set_affinity) == "thread 14: Invalid argument"
    assert pinned == [11, 13, 11, 13]  # the others moved all the same


@pytest.mark.parametrize("configured, allowed, usable, said", [
    ({1}, {0, 1}, {1}, False),
    ({0, 5}, {0, 1}, {0}, True),  # CPU 5 named, not there: said, and the rest kept to
    ({2, 3}, {0, 1}, {0, 1}, True),  # none there: all it may use
])
def test_the_usable_cpus_are_the_configured_ones_it_may_use_else_all_and_it_says_so(configured, allowed, usable, said):
    chosen, why = usable_cpus(frozenset(configured), frozenset(allowed))
    assert chosen == usable and (why is not None) == said


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin to one")
def test_a_real_process_keeps_its_threads_started_before_and_after_on_the_cpu():
    cpu = min(os.sched_getaffinity(0))
    script = f"""
import os, threading
started = threading.Event()
stop = threading.Event()
def idle():
    started.set()
    stop.wait()
before = threading.Thread(target=idle)
before.start(); started.wait()
from daemons.affinity import pin_threads
pin_threads([{cpu}])
after = threading.Thread(target=stop.wait)
after.start()
print(sorted({{cpu for task in os.listdir('/proc/self/task') for cpu in os.sched_getaffinity(int(task))}}),
      len(os.listdir('/proc/self/task')))
stop.set()
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    cpus, threads = result.stdout.split("] ")
    assert cpus == f"[{cpu}" and int(threads) >= 3


# -- where the threads run as the load changes ---------------------------------------------------------

OWN, EVERY = frozenset({1}), frozenset({0, 1})


def test_a_busy_daemon_moves_to_every_cpu_at_once_and_back_only_after_a_calm_spell():
    placement = Placement(OWN, EVERY, busy_above=32, calm_seconds=5.0)
    assert placement.update(32, now=0.0) is None  # at the bound: still its own
    assert placement.update(33, now=1.0) == EVERY
    assert placement.update(160, now=1.5) is None  # already there
    assert placement.update(10, now=2.0) is None  # calm from here...
    assert placement.update(40, now=6.0) is None  # ...but busy again: the calm spell starts over
    assert placement.update(5, now=7.0) is None
    assert placement.update(5, now=11.9) is None
    assert placement.update(5, now=12.0) == OWN
    assert placement.update(5, now=20.0) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 80), st.floats(0, 4)), max_size=40))
def test_the_threads_are_on_every_cpu_whenever_busy_and_leave_only_after_calm_seconds(steps):
    placement = Placement(OWN, EVERY, busy_above=32, calm_seconds=5.0)
    now, last_busy = 0.0, None
    for active, elapsed in steps:
        now += elapsed
        before = placement.current
        moved = placement.update(active, now)
        assert moved is None or (moved == placement.current != before)
        if active > 32:
            last_busy = now
            assert placement.current == EVERY
        elif moved == OWN:
            assert last_busy is not None and now - last_busy >= 5.0
