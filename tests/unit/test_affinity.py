"""Pinning a daemon's threads (daemons/affinity.py): every thread, those started meanwhile too."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from daemons.affinity import pin_threads


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


def test_a_thread_that_ends_while_pinning_is_skipped():
    pinned: list[int] = []

    def set_affinity(thread: int, cpus) -> None:
        if thread == 12:
            raise ProcessLookupError(thread)
        pinned.append(thread)

    pin_threads([0], lambda: [11, 12, 13], set_affinity)
    assert pinned == [11, 13]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin to one")
def test_a_real_process_keeps_every_thread_and_later_ones_on_the_cpu():
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
