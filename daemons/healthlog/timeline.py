"""`bin/healthlog timeline`: one row per watched link, its status over a window of time, drawn in
cells, with the times of its transitions. Pure: events in, rows out; cli.py reads the logs (a
folder's, rotated backups included, or every daemon's through the gateway) and colours the cells.

A cell covers an equal slice of the window and shows the worst status the link was in during it,
so that an outage shorter than a cell still shows. A link's status at the window's start is the
one its last transition before it left it in (unknown if there was none).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from daemons.healthlog.follow import program_of
from daemons.healthlog.summary import DAEMON, DEGRADED, FROM, HEALTHY, NEIGHBOR, TO, UNAVAILABLE, UNKNOWN, Event, event_time

# Worst last: the status a cell shows when the link was in several during it.
SEVERITY = {HEALTHY: 0, UNKNOWN: 1, DEGRADED: 2, UNAVAILABLE: 3}
CELL = {HEALTHY: "█", UNKNOWN: "·", DEGRADED: "▒", UNAVAILABLE: "░"}


@dataclass
class LinkTimeline:
    observer: str
    neighbor: str
    initial: str = UNKNOWN  # at the window's start
    transitions: list[tuple[datetime, str, str]] = field(default_factory=list)  # (when, from, to) inside it

    @property
    def label(self) -> str:
        return f"{self.observer} -> {self.neighbor}"

    def cells(self, start: datetime, end: datetime, width: int) -> list[str]:
        """The worst status in each of `width` equal slices of [start, end]."""
        span = (end - start) / width
        statuses = []
        current, pending = self.initial, list(self.transitions)
        for index in range(width):
            slice_end = end if index == width - 1 else start + span * (index + 1)  # no rounding short of the end
            worst = current
            while pending and pending[0][0] <= slice_end:
                _when, _from, current = pending.pop(0)
                worst = max(worst, current, key=severity)
            statuses.append(worst)
        return statuses


def severity(status: str) -> int:
    """A status this version does not know ranks as unknown."""
    return SEVERITY.get(status, SEVERITY[UNKNOWN])


def build_timelines(transitions: Iterable[Event], start: datetime, end: datetime) -> list[LinkTimeline]:
    """Each link's timeline over [start, end], from its health_transition events in any order."""
    links: dict[tuple[str, str], LinkTimeline] = {}
    for event in sorted(transitions, key=event_time):
        when = event_time(event)
        if when > end:
            continue
        key = (event[DAEMON], event[NEIGHBOR])
        if key not in links:
            # With no transition before the window, the first inside it says where the link was.
            links[key] = LinkTimeline(*key, initial=event[FROM] if when >= start else UNKNOWN)
        link = links[key]
        if when < start:
            link.initial = event[TO]
        else:
            link.transitions.append((when, event[FROM], event[TO]))
    return [links[key] for key in sorted(links)]


def log_files(folder: Path) -> list[Path]:
    """Every daemon's event log in `folder` with its rotated backups (`<program>.log.N`), each
    daemon's oldest first."""
    ordered = []
    for current in sorted(folder.glob("*.log")):
        if program_of(current) is None:  # supervisord's log, or a program's captured output
            continue
        backups = [path for path in folder.glob(f"{current.name}.*") if path.suffix[1:].isdigit()]
        ordered += [*sorted(backups, key=lambda path: int(path.suffix[1:]), reverse=True), current]
    return ordered
