"""What the dashboard shows, decided from what the gateway knows: pure, no threads, no sockets.

Each watched link's status is its observer's word (the gateway's own monitors for its links, each
leader's GetHealthStatus for the links below it). A daemon's status is the best word any of its
watchers gives of it: one watcher that hears it means it answers. A link whose observer cannot be
asked (it is down, or did not answer) is unknown, and the page says why: the picture never shows
an old word as if it were current. A control link is never probed; it shows the worse of its two
ends, since it carries a query only when both are up.

The timeline comes from the cluster's health_transition events, the last hour of them
(TransitionHistory), drawn as healthlog's terminal timeline reads them (healthlog/timeline.py).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from daemons.config import OverlayLink
from daemons.health.status import Status
from daemons.healthlog.summary import DAEMON, FROM, NEIGHBOR, REASON, TO, Event, event_time
from daemons.healthlog.timeline import build_timelines, severity

TIMELINE_SECONDS = 3600.0
QUERY_WINDOW_SECONDS = 60.0
# Transitions kept for the timeline: a link flapping every second for an hour makes 7,200; beyond
# this many the oldest go (their links' rows then start where the kept ones do). At 20,000 making
# the window took 108 ms of the gateway's interpreter, each poll while links flapped.
MAX_TRANSITIONS = 5_000
# Transitions sent per link: the page draws an hour in about a thousand pixels; the earlier ones of
# a link flapping faster are left out (counted in `omitted`), and its row starts where the rest do.
MAX_SHOWN_PER_LINK = 500
MAX_RECENT_QUERIES = 100_000  # queries in the last minute kept for the rate and p99: 1,600 a second


@dataclass(frozen=True)
class LinkView:
    """One observer's word on one neighbour (a NeighborHealth's fields that the page shows)."""

    status: str
    since: str = ""
    reason: str = ""


# observer -> its views of its neighbours, or why it could not be asked
Views = Mapping[str, Mapping[str, LinkView] | str]


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def link_name(parent: str, child: str) -> str:
    return f"{parent}->{child}"


def worse(first: str, second: str) -> str:
    return max(first, second, key=severity)


class Overlay:
    """The daemons and links to draw, from the gateway's config (config.overlay and roles)."""

    def __init__(self, gateway: str, roles: Mapping[str, str], links: Sequence[OverlayLink]):
        self.gateway = gateway
        self.links = tuple(links)
        self.roles = dict(roles)
        self.depth = {gateway: 0}
        for link in self.links:  # parents come first (config.py lists them breadth first)
            self.depth.setdefault(link.child, self.depth.get(link.parent, 0) + 1)
        self.daemons = sorted(self.depth, key=lambda name: (self.depth[name], name))

    def watchers(self, daemon: str) -> list[OverlayLink]:
        return [link for link in self.links if link.child == daemon and link.watched]


def picture(overlay: Overlay, views: Views) -> dict[str, Any]:
    """The daemons, links and notes of the page, from every observer's views (the gateway's own
    among them, under its name)."""
    notes: list[str] = []
    link_views: dict[tuple[str, str], LinkView] = {}
    for link in overlay.links:
        if not link.watched:
            continue
        observed = views.get(link.parent, "no word from it")
        if isinstance(observed, str):
            link_views[link.parent, link.child] = LinkView(Status.UNKNOWN.value, reason=f"cannot be asked: {observed}")
        else:
            link_views[link.parent, link.child] = observed.get(link.child, LinkView(
                Status.UNKNOWN.value, reason="does not report on it"))
    for observer, observed in views.items():
        if isinstance(observed, str):
            watched = sorted({link.child for link in overlay.links if link.parent == observer and link.watched})
            if watched:
                notes.append(f"{observer} cannot be asked ({observed}): the status of {', '.join(watched)} as it "
                             f"sees {'it' if len(watched) == 1 else 'them'} is unknown")
    daemons = []
    status_of = {overlay.gateway: Status.HEALTHY.value}  # it is the one drawing this page
    for name in overlay.daemons:
        if name != overlay.gateway:
            words = [link_views[link.parent, link.child] for link in overlay.watchers(name)]
            best = min((word.status for word in words), key=severity, default=Status.UNKNOWN.value)
            status_of[name] = best
        note = "; ".join(f"{link.parent}: {link_views[link.parent, link.child].reason}"
                         for link in overlay.watchers(name) if link_views[link.parent, link.child].reason)
        daemons.append({"name": name, "role": overlay.roles.get(name, ""), "status": status_of[name],
                        "depth": overlay.depth[name], "note": note})
    links = []
    for link in overlay.links:
        if link.watched:
            view = link_views[link.parent, link.child]
            links.append({"observer": link.parent, "neighbor": link.child, "kind": link.kind, "status": view.status,
                          "since": view.since, "note": view.reason})
        else:
            why = "control link" if link.kind == "control" else "not watched"
            links.append({"observer": link.parent, "neighbor": link.child, "kind": link.kind,
                          "status": worse(status_of[link.parent], status_of[link.child]), "since": "",
                          "note": f"{why}: not probed; shows the worse of its two ends"})
    return {"daemons": daemons, "links": links, "notes": notes}


class TransitionHistory:
    """The cluster's health_transition events of the last TIMELINE_SECONDS, and, for each link,
    the last one before them (where the link stood when the window starts)."""

    def __init__(self) -> None:
        self._recent: deque[Event] = deque()  # in the order heard, which is each daemon's own order
        self._before: dict[tuple[str, str], Event] = {}

    def add(self, event: Event) -> None:
        self._recent.append(event)
        while len(self._recent) > MAX_TRANSITIONS:
            self._forget(self._recent.popleft())

    def _forget(self, event: Event) -> None:
        key = (event[DAEMON], event[NEIGHBOR])
        kept = self._before.get(key)
        if kept is None or event_time(kept) <= event_time(event):
            self._before[key] = event

    def window(self, now: float) -> dict[str, Any]:
        end = datetime.fromtimestamp(now, UTC)
        start = end - timedelta(seconds=TIMELINE_SECONDS)
        # Events of different daemons arrive in any order: only those old enough are moved out.
        kept: deque[Event] = deque()
        for event in self._recent:
            if event_time(event) < start:
                self._forget(event)
            else:
                kept.append(event)
        self._recent = kept
        reasons = {(event[DAEMON], event[NEIGHBOR], event_time(event)): str(event.get(REASON, "")) for event in kept}
        rows = []
        for timeline in build_timelines([*self._before.values(), *kept], start, end):
            shown = timeline.transitions[-MAX_SHOWN_PER_LINK:]
            omitted = len(timeline.transitions) - len(shown)
            rows.append({"link": link_name(timeline.observer, timeline.neighbor),
                         "initial": shown[0][1] if omitted else timeline.initial, "omitted": omitted,
                         "transitions": [{"at": iso(when.timestamp()), "from": before, "to": after,
                                          "reason": reasons.get((timeline.observer, timeline.neighbor, when), "")}
                                         for when, before, after in shown]})
        return {"start": iso(start.timestamp()), "end": iso(now), "links": rows}


@dataclass
class QueryWindow:
    """Client requests that ended in the last QUERY_WINDOW_SECONDS: how many a second, and the
    99th percentile of their durations."""

    _ended: deque[tuple[float, float]] = field(default_factory=deque)  # (when, seconds), oldest first

    def add(self, when: float, seconds: float) -> None:
        self._ended.append((when, seconds))
        while len(self._ended) > MAX_RECENT_QUERIES:
            self._ended.popleft()

    def summary(self, now: float) -> dict[str, Any]:
        while self._ended and self._ended[0][0] < now - QUERY_WINDOW_SECONDS:
            self._ended.popleft()
        durations = sorted(seconds for _when, seconds in self._ended)
        return {"window_seconds": QUERY_WINDOW_SECONDS, "count": len(durations),
                "per_second": round(len(durations) / QUERY_WINDOW_SECONDS, 3),
                "p99_seconds": round(percentile(durations, 0.99), 6) if durations else None}


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted values (the smallest value at or above that share)."""
    # Rounded first: 0.07 * 100 is 7.000000000000001 in floating point, whose ceiling is 8.
    return ordered[max(0, math.ceil(round(fraction * len(ordered), 9)) - 1)]


def serving(copies: Mapping[str, tuple[Sequence[str], str]]) -> list[dict[str, Any]]:
    """partition -> (the path a query would take now, or none, and why none) as the page lists them."""
    return [{"partition": partition, "path": list(path), "holder": path[-1] if path else "", "problem": problem}
            for partition, (path, problem) in sorted(copies.items())]


def transitions_in(lines: Iterable[Event]) -> list[Event]:
    """The health_transition events among parsed lines whose fields the timeline needs."""
    return [event for event in lines if all(key in event for key in (DAEMON, NEIGHBOR, FROM, TO)) and _timed(event)]


def _timed(event: Event) -> bool:
    try:
        event_time(event)
    except (KeyError, TypeError, ValueError):
        return False
    return True

