"""What a neighbour's monitor has seen, counted: probe results by kind and outcome, their latencies
in histogram buckets, and status transitions. Pure and cheap (a dict increment per probe).

The monitor process keeps one per neighbour and sends a copy with each view (process.py); the
daemon serves them as Prometheus metrics (daemons/metrics.py). Counts only grow: when a monitor
process is restarted, the daemon adds the new process's counts to what the old one had reported.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class ProbeKind(StrEnum):
    """How a probe result came: a health datagram (its reply, its timeout, or a dying gasp), a gRPC
    call or connection (HealthCheck, a refused or lost connection), or the grpc.health.v1 Watch
    stream opened while the neighbour is not healthy."""

    DATAGRAM = "datagram"
    GRPC = "grpc"
    WATCH = "watch"


SUCCESS, FAILURE = "success", "failure"
# A probe's latency, from sending to its answer: a healthy loopback answer takes about a
# millisecond, one across hosts a few, a busy daemon's tens, and a probe times out at 0.6 s.
LATENCY_BUCKETS_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class LatencyCounts:
    """A histogram: how many latencies fell in each bucket (not cumulative; the last is +Inf)."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_SECONDS) + 1))
    total_seconds: float = 0.0

    def add(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS_SECONDS, seconds)] += 1
        self.total_seconds += seconds

    def plus(self, other: LatencyCounts) -> LatencyCounts:
        return LatencyCounts([a + b for a, b in zip(self.buckets, other.buckets, strict=True)],
                             self.total_seconds + other.total_seconds)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, count at or below it) pairs, as Prometheus histograms are exposed."""
        bounds = [*LATENCY_BUCKETS_SECONDS, math.inf]
        running, pairs = 0, []
        for bound, count in zip(bounds, self.buckets, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


@dataclass
class ProbeTally:
    results: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, outcome) -> probes
    latencies: dict[str, LatencyCounts] = field(default_factory=dict)  # kind -> histogram
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (from, to) -> times

    def probe(self, kind: ProbeKind, ok: bool, latency_seconds: float | None) -> None:
        self.results[kind.value, SUCCESS if ok else FAILURE] += 1
        if latency_seconds is not None:
            self.latencies.setdefault(kind.value, LatencyCounts()).add(latency_seconds)

    def transition(self, previous: str, current: str) -> None:
        self.transitions[previous, current] += 1

    def copy(self) -> ProbeTally:
        return ProbeTally().plus(self)

    def plus(self, other: ProbeTally) -> ProbeTally:
        """The sum, sharing nothing with either."""
        latencies = {kind: LatencyCounts().plus(self.latencies.get(kind, LatencyCounts()))
                     .plus(other.latencies.get(kind, LatencyCounts()))
                     for kind in (*self.latencies, *(kind for kind in other.latencies if kind not in self.latencies))}
        return ProbeTally(self.results + other.results, latencies, self.transitions + other.transitions)
