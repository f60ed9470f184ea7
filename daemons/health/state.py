"""The health state machine of one monitored neighbour: pure, no threads, no sockets, no clock.

Fed with probe results and the time they were observed, it moves the neighbour through
unknown -> healthy / degraded / unavailable and returns a Transition exactly when the status
changes, so a neighbour that stays down produces one transition, not one per failed probe. It
also decides how many confirmation probes a suspicion deserves; the monitor only sends them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from daemons.health.status import Status

__all__ = ["InvalidThreshold", "NeighborState", "ProbeResult", "Status", "Thresholds", "Transition"]

# Beyond this a count or a number of seconds in a config is a typo (and gRPC reads huge timeouts
# as already expired); config.py checks its own numbers against the same bound.
MAX_SECONDS_OR_COUNT = 1e6


class InvalidThreshold(ValueError):
    """A threshold out of range; `field` names it as the config spells it."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


@dataclass(frozen=True)
class Thresholds:
    """When a neighbour's status changes; the one place these numbers are defined and checked."""

    # Consecutive failures before a healthy neighbour is degraded (suspected) and before it is
    # declared unavailable (queries stop going to it and calls stuck on it are cancelled). One
    # lost datagram must not make a daemon unavailable, hence more than one for the latter.
    failures_before_degraded: int = 1
    failures_before_unavailable: int = 3
    # Consecutive successes before a failing neighbour is healthy again; above 1 damps flapping at
    # the price of a slower recovery.
    successes_before_healthy: int = 1
    # How long a neighbour that has never answered stays unknown rather than unavailable: at a
    # cold start every daemon comes up at once and the first parses its CSVs for seconds.
    startup_grace_seconds: float = 30.0
    window_seconds: float = 60.0  # for the success rate in the status view

    def __post_init__(self) -> None:
        if not 1 <= self.failures_before_degraded <= MAX_SECONDS_OR_COUNT:
            raise InvalidThreshold("failures_before_degraded", f"must be in 1..{MAX_SECONDS_OR_COUNT:g}")
        if not self.failures_before_degraded <= self.failures_before_unavailable <= MAX_SECONDS_OR_COUNT:
            raise InvalidThreshold("failures_before_unavailable",
                                   f"must be at least failures_before_degraded and at most {MAX_SECONDS_OR_COUNT:g}")
        if not 1 <= self.successes_before_healthy <= MAX_SECONDS_OR_COUNT:
            raise InvalidThreshold("successes_before_healthy", f"must be in 1..{MAX_SECONDS_OR_COUNT:g}")
        if not 0 <= self.startup_grace_seconds <= MAX_SECONDS_OR_COUNT:  # also refuses NaN
            raise InvalidThreshold("startup_grace_seconds", f"must be in 0..{MAX_SECONDS_OR_COUNT:g}")
        if not 0 < self.window_seconds <= MAX_SECONDS_OR_COUNT:
            raise InvalidThreshold("window_seconds", f"must be greater than 0 and at most {MAX_SECONDS_OR_COUNT:g}")


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str  # the gRPC code and message of a failure, or what succeeded
    latency_ms: float | None = None  # None for results that were pushed, not probed
    # When the probe was sent, on the observer's clock; None for results that were pushed. Probes
    # overlap, so their answers can arrive out of order: a failure of a probe sent before one that
    # has since succeeded says nothing new (a deadline running out after the neighbour resumed).
    sent: float | None = None
    # The failure is proof, not a symptom (the neighbour's process is known to have ended: its
    # dying gasp, gasp.py): it makes the neighbour unavailable with no confirmation.
    conclusive: bool = False


@dataclass(frozen=True)
class Transition:
    neighbor: str
    previous: Status
    current: Status
    reason: str
    consecutive_failures: int
    latency_ms: float | None
    at: float


class NeighborState:
    def __init__(self, neighbor: str, thresholds: Thresholds, now: float):
        self.neighbor = neighbor
        self.thresholds = thresholds
        self.status = Status.UNKNOWN
        self.since = now
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.last_latency_ms: float | None = None
        self.last_reason = ""
        # A failure, or a lost connection, that no later result has settled yet.
        self.suspected = False
        self._last_success_sent = -math.inf  # when the latest probe that succeeded was sent
        self._first_seen = now
        self._recent: deque[tuple[float, bool]] = deque()

    def observe(self, result: ProbeResult, now: float) -> Transition | None:
        sent = now if result.sent is None else result.sent
        if result.ok:
            self._last_success_sent = max(self._last_success_sent, sent)
        elif sent < self._last_success_sent:
            return None  # outdated by a later probe's success
        self._remember(result.ok, now)
        self.last_reason = result.reason
        self.suspected = not result.ok
        if result.latency_ms is not None:
            self.last_latency_ms = result.latency_ms
        if result.ok:
            self.consecutive_successes += 1
            self.consecutive_failures = 0
            target = self._after_success()
        else:
            self.consecutive_failures += 1
            if result.conclusive:
                self.consecutive_failures = max(self.consecutive_failures, self.thresholds.failures_before_unavailable)
            self.consecutive_successes = 0
            target = self._after_failure(now)
        if target is None or target == self.status:
            return None
        transition = Transition(self.neighbor, self.status, target, result.reason, self.consecutive_failures,
                                result.latency_ms, now)
        self.status, self.since = target, now
        return transition

    def suspect(self) -> None:
        """The connection to the neighbour broke (or it said GOAWAY): not a failure yet, a question."""
        self.suspected = True

    def running(self) -> None:
        """The neighbour's process was seen running (it answered a PING, or said it is too busy) while
        a probe waited in vain for its interpreter: busy, which settles a suspicion, though neither
        a success (its status is still unheard) nor a failure."""
        self.suspected = False

    def confirmations_wanted(self) -> int:
        """Confirmation probes to have in flight: enough to settle a suspicion in one round trip.

        Only a neighbour believed healthy or degraded has a suspicion to settle: one still starting
        (unknown) or already unavailable is left to the regular probes and the watch, so a daemon
        that is down or not up yet draws no storm of probes.
        """
        if not self.suspected or self.status in (Status.UNKNOWN, Status.UNAVAILABLE):
            return 0
        return max(1, self.thresholds.failures_before_unavailable - self.consecutive_failures)

    def _after_success(self) -> Status | None:
        if self.consecutive_successes >= self.thresholds.successes_before_healthy:
            return Status.HEALTHY
        return None

    def _after_failure(self, now: float) -> Status | None:
        limits = self.thresholds
        if self.consecutive_failures >= limits.failures_before_unavailable:
            if self.status is Status.UNKNOWN and now - self._first_seen < limits.startup_grace_seconds:
                return None
            return Status.UNAVAILABLE
        if self.status is Status.HEALTHY and self.consecutive_failures >= limits.failures_before_degraded:
            return Status.DEGRADED
        return None

    def _remember(self, ok: bool, now: float) -> None:
        self._recent.append((now, ok))
        self._forget(now)

    def _forget(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - self.thresholds.window_seconds:
            self._recent.popleft()

    def success_rate(self, now: float) -> tuple[float, int]:
        """(share of results in the window that succeeded, how many results the window holds)."""
        self._forget(now)
        if not self._recent:
            return 0.0, 0
        return sum(ok for _, ok in self._recent) / len(self._recent), len(self._recent)
