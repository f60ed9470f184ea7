"""Which copies of a partition may stand in for each other: pure decisions over content fingerprints.

Copies of a partition are only interchangeable when they hold the same rows in the same order:
a failover resumes a stream at a row offset, and a count is only right if every copy counts the
same rows. The gateway learns each copy's fingerprint ("rows:checksum", computed where the data is
loaded) and its gaps (days missing on disk, unreadable files); this module turns what it knows
into, per partition:
- the copies to plan with: those agreeing with the reference content (the preferred complete
  copy's), or not known yet (the scanning daemon checks the fingerprint the route expects, so an
  unknown copy that differs refuses instead of answering);
- a fallback: copies with gaps, used only while no row of the partition has been delivered, whose
  answers are incomplete by exactly their gaps;
- a dispute: when complete copies disagree nobody can tell which is right, so the preferred one
  serves and the answer says the partition is not verified, instead of claiming it complete;
- the minutes its rows fall within, across every copy, once every copy has said: a query whose
  time range misses them is complete for the partition without asking anyone (pruning).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from daemons.planning.paths import Path


@dataclass(frozen=True)
class Copy:
    daemon: str
    fingerprint: str
    gaps: tuple[str, ...] = ()
    # The first and last minute of its rows, NO_ROWS when it holds none, None when not known. Equal
    # fingerprints mean equal rows, hence equal spans.
    minutes: tuple[int, int] | None = None
    process_id: int = 0  # the holder's process that said so (rows change only with the process)


NO_ROWS = (1, 0)  # a span no minute falls in


@dataclass(frozen=True)
class Mismatch:
    """Two copies of a partition that hold different rows; `preferred` comes first in the routes."""

    partition: str
    preferred: str
    preferred_fingerprint: str
    other: str
    other_fingerprint: str


@dataclass(frozen=True)
class PartitionChoice:
    paths: tuple[Path, ...]  # copies agreeing with the reference, or unknown; preferred first
    fingerprints: Mapping[Path, str]  # what each copy is expected to hold ("": not known yet)
    fallback: tuple[Path, ...] = ()  # copies with gaps: only before any row is delivered
    disputed: str = ""  # why no copy can be called right, when complete copies disagree
    # The minutes every copy's rows fall within (the union of their spans), when every copy's is
    # known; None otherwise. A query whose time range misses it needs no copy at all, as long as
    # the processes that said so still hold the copies: `holders`, (daemon, its process).
    minutes: tuple[int, int] | None = None
    holders: tuple[tuple[str, int], ...] = ()

    def misses(self, first: int | None, last: int | None, process_of: Callable[[str], int | None]) -> bool:
        """No row of any copy falls within [first, last] (None: unbounded on that side), as long as
        each holder still runs the process that said so (`process_of`: its current one, as its
        watcher last heard it): a restarted holder may have read other files."""
        if self.minutes is None or any(not pid or process_of(daemon) != pid for daemon, pid in self.holders):
            return False
        low, high = self.minutes
        return low > high or (first is not None and first > high) or (last is not None and last < low)

    @classmethod
    def unverified(cls, paths: Sequence[Path]) -> PartitionChoice:
        """Every path, nothing known of their contents (the scanners still check nothing)."""
        return cls(tuple(paths), {})

    def expected(self, path: Path) -> str:
        return self.fingerprints.get(path, "")


def unverified_choices(routes: Mapping[str, Sequence[Path]]) -> dict[str, PartitionChoice]:
    return {partition: PartitionChoice.unverified(paths) for partition, paths in routes.items()}


class ReplicaCatalog:
    """What this gateway knows of every copy; `learn` is fed from status fetches and from scans.

    Locking: `_lock` guards `_copies` and `_reported`; request threads plan while fetches learn.
    """

    def __init__(self, routes: Mapping[str, Sequence[Path]]):
        self.routes = {partition: tuple(tuple(path) for path in paths) for partition, paths in routes.items()}
        self._lock = threading.Lock()
        self._copies: dict[tuple[str, str], Copy] = {}  # (partition, daemon) -> what it holds
        self._reported: set[Mismatch] = set()

    def learn(self, partition: str, copy: Copy) -> list[Mismatch]:
        """Records a copy's content; returns the disagreements with other copies not reported before."""
        if partition not in self.routes or not copy.fingerprint:
            return []
        with self._lock:
            known = self._copies.get((partition, copy.daemon))
            if copy.minutes is None and known is not None and known.fingerprint == copy.fingerprint:
                if known.gaps == copy.gaps:  # what every scan of a known copy says: nothing new
                    return []
                # A scan's status says nothing of the span; the same content, the same span.
                copy = replace(copy, minutes=known.minutes, process_id=known.process_id)
            self._copies[(partition, copy.daemon)] = copy
            mismatches = [m for m in self._mismatches(partition) if m not in self._reported]
            self._reported.update(mismatches)
        return mismatches

    def known(self, partition: str, daemon: str) -> Copy | None:
        with self._lock:
            return self._copies.get((partition, daemon))

    def _mismatches(self, partition: str) -> list[Mismatch]:
        holders = list(dict.fromkeys(path[-1] for path in self.routes[partition]))
        copies = [self._copies[(partition, h)] for h in holders if (partition, h) in self._copies]
        return [Mismatch(partition, first.daemon, first.fingerprint, second.daemon, second.fingerprint)
                for index, first in enumerate(copies) for second in copies[index + 1:]
                if first.fingerprint != second.fingerprint]

    def choose(self, partition: str) -> PartitionChoice:
        paths = self.routes[partition]
        with self._lock:
            copies = {path: self._copies.get((partition, path[-1])) for path in paths}
        complete = [copy for copy in copies.values() if copy is not None and not copy.gaps]
        reference = complete[0].fingerprint if complete else None
        contents = list(dict.fromkeys(copy.fingerprint for copy in complete))
        disputed = ""
        if len(contents) > 1:
            holders = ", ".join(f"{copy.daemon} {copy.fingerprint}" for copy in complete)
            disputed = f"copies disagree ({holders}): served by the preferred copy, not verified"
        usable, fallback = [], []
        for path, copy in copies.items():
            if copy is not None and copy.gaps:  # even with the reference's rows: its answers say "incomplete"
                fallback.append(path)
            elif copy is None or copy.fingerprint == reference:
                usable.append(path)
        fingerprints = {path: copy.fingerprint for path, copy in copies.items() if copy is not None}
        processes = tuple(sorted({(copy.daemon, copy.process_id) for copy in copies.values() if copy is not None}))
        return PartitionChoice(tuple(usable), fingerprints, tuple(fallback), disputed, _span(copies.values()), processes)

    def choices(self) -> dict[str, PartitionChoice]:
        return {partition: self.choose(partition) for partition in self.routes}


def _span(copies: Iterable[Copy | None]) -> tuple[int, int] | None:
    """The minutes all of `copies` fall within; None when one of them, or its span, is unknown, or
    when one has gaps: the rows it lacks could fall anywhere in its days, and its answer must say
    it is incomplete, never that the partition had nothing."""
    spans = []
    for copy in copies:
        if copy is None or copy.minutes is None or copy.gaps:
            return None
        if copy.minutes != NO_ROWS:
            spans.append(copy.minutes)
    if not spans:
        return NO_ROWS
    return min(first for first, _last in spans), max(last for _first, last in spans)
