"""Work slots: at most a few threads of a daemon produce answers at once.

A stream's thread holds a slot while it produces a message (servicers/requests.py) and gives it
back whenever it waits, for its reader or for its sources (merge.py), so a slow client or a hung
child never holds one.
"""

from __future__ import annotations

import threading
from collections import deque


class WorkSlots:
    """At most `limit` threads of a daemon run query work at once, first come first served.

    The interpreter runs one thread at a time, and hands its lock round every thread that asks for
    it. With a hundred streams producing at once, every thread, gRPC's own completion-queue thread
    included, waits behind all the others at each turn, and a health check took seconds to be
    answered. A stream's thread holds a slot while it produces a message (requests.StreamReader)
    and gives it back whenever it waits: for its reader, or here for its sources, so a slow client
    or a hung child never holds one. Pumps take none: each runs at most `depth` items ahead of its
    consumer, which needs a slot to take them. Locking: `_lock` guards `_free` and `_waiting`.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()
        self._free = limit
        self._waiting: deque[threading.Lock] = deque()  # a locked gate per waiting thread, in arrival order

    def enter(self) -> None:
        """Takes a slot for this thread, waiting for one if none is free; a no-op while it has one."""
        if getattr(_slot_of_thread, "slots", None) is self:
            return
        with self._lock:
            gate = None
            if self._free and not self._waiting:
                self._free -= 1
            else:
                gate = threading.Lock()
                gate.acquire()
                self._waiting.append(gate)
        if gate is not None:
            gate.acquire()  # opened by leave(), which hands its slot over
        _slot_of_thread.slots = self

    def leave(self) -> None:
        """Gives this thread's slot to the thread that has waited longest, or back; a no-op without one."""
        if getattr(_slot_of_thread, "slots", None) is not self:
            return
        _slot_of_thread.slots = None
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._free += 1

    @property
    def free(self) -> int:
        with self._lock:
            return self._free

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)


_slot_of_thread = threading.local()  # .slots: the WorkSlots whose slot this thread holds


def give_back_slot() -> WorkSlots | None:
    """Gives back the slot this thread holds, if any, and returns whose it was (to enter again)."""
    slots: WorkSlots | None = getattr(_slot_of_thread, "slots", None)
    if slots is not None:
        slots.leave()
    return slots
