"""Cancellation of one request: set once, from any thread, and every registered action runs once.

A request's work is spread over threads (a merge's pumps, child calls in flight); each piece
registers how to stop it, and a Cancel, a vanished client or the end of the request runs them all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Cancellation:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _cancelled and _actions
        self._cancelled = False
        self._actions: list[Callable[[], Any]] = []

    @property
    def cancelled(self) -> bool:
        with self._lock:
            return self._cancelled

    def on_cancel(self, action: Callable[[], Any]) -> None:
        """Runs `action` when the request is cancelled, or at once if it already is."""
        with self._lock:
            if not self._cancelled:
                self._actions.append(action)
                return
        action()

    def cancel(self) -> bool:
        """Cancels; False when it already was. Actions run outside the lock, in registration order."""
        with self._lock:
            if self._cancelled:
                return False
            self._cancelled = True
            actions, self._actions = self._actions, []
        for action in actions:
            action()
        return True
