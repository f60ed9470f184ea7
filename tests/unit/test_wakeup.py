"""The main thread hears a signal even when the kernel hands it to another thread."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from daemons import wakeup
from daemons.wakeup import MainThreadWakeup


@pytest.fixture
def restored_signals():
    previous = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, previous)
    signal.set_wakeup_fd(-1)


def test_a_signal_delivered_to_another_thread_wakes_the_main_thread(restored_signals, monkeypatch) -> None:
    monkeypatch.setattr(wakeup, "SAFETY_SECONDS", 60.0)  # only the wakeup itself can end the wait in time
    heard = threading.Event()
    signal.signal(signal.SIGUSR1, lambda number, frame: heard.set())
    waiting = MainThreadWakeup()
    parked = threading.Event()
    bystander = threading.Thread(target=parked.wait, daemon=True)  # as one of gRPC's threads
    bystander.start()
    threading.Timer(0.05, signal.pthread_kill, (bystander.ident, signal.SIGUSR1)).start()
    started = time.monotonic()
    waiting.until(heard)
    assert time.monotonic() - started < 10
    parked.set()


def test_another_thread_can_wake_it_for_its_own_event(restored_signals) -> None:
    waiting = MainThreadWakeup()
    done = threading.Event()

    def finish() -> None:
        done.set()
        waiting.wake()

    threading.Timer(0.01, finish).start()
    waiting.until(done)
    assert done.is_set()
