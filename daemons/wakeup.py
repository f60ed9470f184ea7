"""Waiting in the main thread for something a signal handler or another thread makes true.

Python runs a signal's handler in the main thread, at its next bytecode. The kernel may deliver
a process's SIGTERM to any thread that does not block it, gRPC's own threads included; a main
thread blocked on a lock is then not woken, and the handler waits for the lock's timeout (a
gateway once ignored SIGTERM this way until a second one came). `signal.set_wakeup_fd` makes
every delivered signal write a byte to a socket, whichever thread received it, and the main
thread waits on that socket instead of on a lock.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import threading

# Only bounds a wakeup that could be missed; nothing is polled at this pace otherwise.
SAFETY_SECONDS = 1.0


class MainThreadWakeup:
    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)

    def wake(self) -> None:
        """From any thread: makes `until` look at its event again."""
        with contextlib.suppress(BlockingIOError):  # a full buffer wakes it already
            self._writer.send(b"\0")

    def until(self, event: threading.Event) -> None:
        """Returns once `event` is set; signal handlers run meanwhile."""
        while not event.is_set():  # a pending handler runs as this call begins
            select.select([self._reader], [], [], SAFETY_SECONDS)
            with contextlib.suppress(BlockingIOError):
                self._reader.recv(4096)
