"""The health state machine of one monitored neighbour: pure, no threads, no sockets, no clock.

Fed with probe results and the time they were observed, it moves the neighbour through
unknown -> healthy / degraded / unavailable and returns a Transition exactly when the status
changes, so a neighbour that stays down produces one transition, not one per failed probe.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum


class Status(str, Enum):
    UNKNOWN = "unknown"  # no decisive result yet (the neighbour may still be starting)
    HEALTHY = "healthy"
    DEGRADED = "degraded"  # failing, not yet long enough to be declared unavailable
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Thresholds:
    failures_before_degraded: int = 1
    failures_before_unavailable: int = 3
    successes_before_healthy: int = 1
    # How long a neighbour that has never answered stays unknown rather than unavailable: at a
    # cold start every daemon comes up at once and the first parses its CSVs for seconds.
    startup_grace_seconds: float = 30.0
    window_seconds: float = 60.0  # for the success rate

    def __post_init__(self):
        if not 1 <= self.failures_before_degraded <= self.failures_before_unavailable:
            raise ValueError("need 1 <= failures_before_degraded <= failures_before_unavailable")
        if self.successes_before_healthy < 1:
            raise ValueError("successes_before_healthy must be at least 1")
        if self.startup_grace_seconds < 0 or self.window_seconds <= 0:
            raise ValueError("startup_grace_seconds must be >= 0 and window_seconds > 0")


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str  # the gRPC code and message of a failure, or what succeeded
    latency_ms: float | None = None  # None for results that were pushed, not probed


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
        self._first_seen = now
        self._recent: deque[tuple[float, bool]] = deque()

    def observe(self, result: ProbeResult, now: float) -> Transition | None:
        self._remember(result.ok, now)
        self.last_reason = result.reason
        if result.latency_ms is not None:
            self.last_latency_ms = result.latency_ms
        if result.ok:
            self.consecutive_successes += 1
            self.consecutive_failures = 0
            target = self._after_success()
        else:
            self.consecutive_failures += 1
            self.consecutive_successes = 0
            target = self._after_failure(now)
        if target is None or target == self.status:
            return None
        transition = Transition(self.neighbor, self.status, target, result.reason, self.consecutive_failures,
                                result.latency_ms, now)
        self.status, self.since = target, now
        return transition

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
