"""One deadline concept for a request and every call made on its behalf.

A request's deadline is fixed once, when it arrives (from the caller's gRPC deadline), and every
timeout derived from it is computed here: what is left, capped; what a call to a child may take,
keeping a margin so that an unanswered child still leaves time to report a partial answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# Shortest timeout ever handed to gRPC: zero or negative means "already expired" there, and a
# call that cannot succeed should still fail through the normal error path.
MIN_TIMEOUT_SECONDS = 0.001
# A child call keeps back 10% of what is left, at most this much, to report a partial answer.
MAX_MARGIN_SECONDS = 1.0
MARGIN_FRACTION = 0.1


class HasTimeRemaining(Protocol):
    def time_remaining(self) -> float | None: ...


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock, or None for "no deadline"."""

    at: float | None
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(None if seconds is None else clock() + seconds, clock)

    @classmethod
    def of_call(cls, context: HasTimeRemaining, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline the caller of an RPC set (gRPC servicer context), if any."""
        return cls.after(context.time_remaining(), clock)

    def remaining(self, cap: float | None = None) -> float | None:
        """Seconds left (never below zero), at most `cap`; None when neither bounds it."""
        if self.at is None:
            return cap
        left = max(0.0, self.at - self.clock())
        return left if cap is None else min(cap, left)

    def expired(self, after: float = 0.0) -> bool:
        """Whether the deadline has passed, or will have `after` seconds from now."""
        return self.at is not None and self.clock() + after >= self.at

    def timeout(self, cap: float | None = None) -> float | None:
        """A timeout to hand to a call that may use all that is left."""
        left = self.remaining(cap)
        return None if left is None else max(MIN_TIMEOUT_SECONDS, left)

    def child_timeout(self, cap: float) -> float:
        """A timeout for a call to a child, which must end early enough for this daemon to report
        whatever the child did not answer before its own caller gives up."""
        left = self.remaining(cap)
        assert left is not None  # a cap always bounds it
        return max(MIN_TIMEOUT_SECONDS, left - min(MAX_MARGIN_SECONDS, MARGIN_FRACTION * left))
