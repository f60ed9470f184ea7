"""What bin/healthlog computes, kept apart from reading files and printing so it is tested directly.

Events are the parsed JSON objects of the daemons' logs. Event and field names come from
daemons.events by unpacking its tuples, so a renamed or added field there fails here at import
time instead of silently matching nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from daemons import events
from daemons.rpc import airquality_pb2 as pb

TIMESTAMP, _LEVEL, EVENT, DAEMON = events.COMMON_FIELDS
NEIGHBOR, FROM, TO, REASON, CONSECUTIVE_FAILURES, LATENCY_MS = events.HEALTH_TRANSITION.fields
UNKNOWN, HEALTHY, DEGRADED, UNAVAILABLE = events.HEALTH_STATUSES
FAILING = (DEGRADED, UNAVAILABLE)

Event = Mapping[str, Any]
# Every event type daemons.events defines, so a line of a known type missing one of its fields is
# skipped like any other unreadable line rather than failing whatever reads the field.
KNOWN_EVENTS = {value.name: value for value in vars(events).values() if isinstance(value, events.EventType)}
_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime; one without a zone is taken to be UTC already,
    as every time the daemons write is."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def event_time(event: Event) -> datetime:
    return parse_timestamp(event[TIMESTAMP])


def parse_event(line: str) -> dict[str, Any] | None:
    """The event a log line holds, or None when it holds none: not a JSON object, a common field
    missing or not a string, a field of its (known) event type missing, or an unreadable
    timestamp. Callers count such lines; they are never fatal."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not all(isinstance(event.get(name), str) for name in events.COMMON_FIELDS):
        return None
    event_type = KNOWN_EVENTS.get(event[EVENT])
    if event_type is not None and not all(name in event for name in event_type.fields):
        return None
    try:
        event_time(event)
    except ValueError:
        return None
    return event


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: an age before `now` (30s, 15m, 2h, 1d, 1.5h) or an ISO 8601 time."""
    age = _AGE.fullmatch(text.strip())
    if age:
        return now - timedelta(seconds=float(age[1]) * _UNIT_SECONDS[age[2]])
    return parse_timestamp(text)


@dataclass(frozen=True)
class EventFilter:
    """Which events are shown or summarised. An empty tuple does not restrict; a non-empty one
    keeps only events that carry the field with one of its values."""

    event_names: tuple[str, ...]
    since: datetime | None = None
    daemons: tuple[str, ...] = ()
    neighbors: tuple[str, ...] = ()
    to_statuses: tuple[str, ...] = ()

    def matches(self, event: Event) -> bool:
        if event[EVENT] not in self.event_names:
            return False
        if self.since is not None and event_time(event) < self.since:
            return False
        return all(not wanted or event.get(name) in wanted
                   for name, wanted in ((DAEMON, self.daemons), (NEIGHBOR, self.neighbors), (TO, self.to_statuses)))


def select_events(lines: Iterable[str], event_filter: EventFilter) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """The (line, event) pairs the filter keeps, in time order across all the logs, and how many
    lines were not events at all."""
    selected = []
    skipped = 0
    for line in lines:
        event = parse_event(line)
        if event is None:
            skipped += 1
        elif event_filter.matches(event):
            selected.append((line, event))
    selected.sort(key=lambda pair: event_time(pair[1]))
    return selected, skipped


@dataclass
class Outage:
    """One failure of a neighbour that went as far as unavailable."""

    started: datetime | None  # the first failure; None when it happened before the events considered
    unavailable_at: datetime | None = None
    recovered_at: datetime | None = None

    @property
    def detect_seconds(self) -> float | None:
        if self.started is None or self.unavailable_at is None:
            return None
        return (self.unavailable_at - self.started).total_seconds()

    @property
    def recover_seconds(self) -> float | None:
        if self.unavailable_at is None or self.recovered_at is None:
            return None
        return (self.recovered_at - self.unavailable_at).total_seconds()


@dataclass
class LinkSummary:
    """The health history of one neighbour as one observer saw it."""

    observer: str
    neighbor: str
    status: str = UNKNOWN
    transitions: int = 0
    unavailable_seconds: float = 0.0
    last_failure_reason: str | None = None
    last_outage: Outage | None = None
    # Bookkeeping while the events are applied in time order.
    _unavailable_since: datetime | None = field(default=None, init=False, repr=False)
    _failing: Outage | None = field(default=None, init=False, repr=False)

    def apply(self, event: Event) -> None:
        at, target = event_time(event), event[TO]
        self.transitions += 1
        self.status = target
        if target in FAILING:
            self.last_failure_reason = event[REASON]
            if self._failing is None:  # a failure out of healthy/unknown starts an outage
                self._failing = Outage(at if event[FROM] in (HEALTHY, UNKNOWN) else None)
            if target == UNAVAILABLE and self._failing.unavailable_at is None:
                self._failing.unavailable_at = at
                self.last_outage = self._failing
        if target == UNAVAILABLE:
            if self._unavailable_since is None:
                self._unavailable_since = at
        elif self._unavailable_since is not None:
            self.unavailable_seconds += (at - self._unavailable_since).total_seconds()
            self._unavailable_since = None
        if target == HEALTHY and self._failing is not None:
            self._failing.recovered_at = at
            self._failing = None

    def close(self, now: datetime) -> None:
        """Counts a neighbour still unavailable as unavailable up to `now`."""
        if self._unavailable_since is not None:
            self.unavailable_seconds += max(0.0, (now - self._unavailable_since).total_seconds())
            self._unavailable_since = None


def summarize(selected: Iterable[Event], now: datetime) -> list[LinkSummary]:
    """One LinkSummary per (observer, neighbour) from the health_transition events among
    `selected` (others are ignored), sorted by observer and neighbour."""
    links: dict[tuple[str, str], LinkSummary] = {}
    transitions = [event for event in selected if event[EVENT] == events.HEALTH_TRANSITION.name]
    for event in sorted(transitions, key=event_time):
        key = (event[DAEMON], event[NEIGHBOR])
        links.setdefault(key, LinkSummary(*key)).apply(event)
    for link in links.values():
        link.close(now)
    return [links[key] for key in sorted(links)]


@dataclass(frozen=True)
class StatusRow:
    observer: str
    neighbor: str
    status: str
    since: datetime | None
    consecutive_failures: int
    last_latency_ms: float | None
    success_rate_percent: float


@dataclass(frozen=True)
class ClusterHealth:
    rows: list[StatusRow]
    healthy: int
    total: int
    unhealthy: list[str]
    unreachable_observers: list[str]

    @property
    def all_healthy(self) -> bool:
        return not self.unhealthy and not self.unreachable_observers


def cluster_health(response: pb.HealthStatusResponse) -> ClusterHealth:
    """The gateway's cluster view as table rows, and how many daemons are healthy.

    The answering daemon is healthy because it answered; any other daemon is healthy only if every
    view of it says so (a daemon watched by two observers needs both), or, when nobody watches it,
    because it answered as an observer."""
    views: dict[str, list[str]] = {response.daemon: []}
    for view in response.neighbors:
        views.setdefault(view.observer, [])
        views.setdefault(view.neighbor, []).append(view.status)
    unhealthy = [daemon for daemon, statuses in views.items()
                 if daemon != response.daemon and any(status != HEALTHY for status in statuses)]
    rows = [StatusRow(view.observer, view.neighbor, view.status,
                      parse_timestamp(view.since) if view.since else None, view.consecutive_failures,
                      view.last_latency_ms if view.HasField("last_latency_ms") else None,
                      view.success_rate * 100)
            for view in response.neighbors]
    return ClusterHealth(rows, len(views) - len(unhealthy), len(views), sorted(unhealthy),
                         list(response.unreachable_observers))
