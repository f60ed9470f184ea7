"""One request's plan: which copy serves each partition, and the next copy when one fails.

Pure: health statuses come in as a function, decisions go out as values; the gateway turns them
into routes and events. Every copy scans a partition in the same order, so a replacement copy
skips the rows already delivered and the client sees each row exactly once; a copy is tried at
most once per request, so two failures can leave a partition missing but never loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from daemons.fanout.routes import Progress
from daemons.planning.paths import Path, StatusOf, choose_path, unavailable_on
from daemons.rpc import airquality_pb2 as pb


@dataclass(frozen=True)
class Assignment:
    """A partition sent down one path, skipping the rows a failed copy already delivered."""

    partition: str
    path: Path
    skip_rows: int = 0
    replaces: Path | None = None  # the path that failed, for a failover
    reason: str = ""  # why it failed


@dataclass
class RequestPlan:
    candidates: Mapping[str, Sequence[Path]]  # partition -> its paths, preferred first
    delivered: dict[str, int] = field(default_factory=dict)  # partition -> rows the client has received
    progress: Progress = field(init=False)
    _tried: dict[str, list[Path]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.progress = Progress(tuple(self.candidates))

    @classmethod
    def resumed(cls, candidates: Mapping[str, Sequence[Path]], delivered: Mapping[str, int],
                complete: Iterable[str]) -> RequestPlan:
        """The plan of a request continued after a gateway restart, from its resume token."""
        plan = cls(candidates, dict(delivered))
        plan.progress.record(pb.PartitionStatus(partition=p, complete=True, rows=plan.delivered.get(p, 0))
                             for p in complete)
        return plan

    @property
    def rows_delivered(self) -> int:
        return sum(self.delivered.values())

    def assign(self, status_of: StatusOf) -> list[Assignment]:
        """A copy for every partition that has no status yet; those out of reach are recorded as failed."""
        assignments = []
        for partition in self.candidates:
            if partition in self.progress.statuses:
                continue
            assignment = self._next_copy(partition, status_of)
            if assignment is None:
                down = unavailable_on(self.candidates[partition], status_of)
                self.progress.fail([partition], f"no live copy (unavailable: {', '.join(down) or 'none'})")
            else:
                assignments.append(assignment)
        return assignments

    def rows_received(self, partition: str, offset: int, rows: int) -> None:
        """A chunk of `rows` rows starting at `offset` within the partition's answer went to the client."""
        self.delivered[partition] = offset + rows

    def settle(self, status: pb.PartitionStatus, status_of: StatusOf) -> Assignment | None:
        """A copy ended: a complete one is final; a failed one is replaced by the next live copy
        (returned), or recorded as missing when none is left."""
        if status.complete:
            self.progress.record([status])
            return None
        partition = status.partition
        tried = self._tried.get(partition)
        if partition in self.progress.statuses or not tried:
            return None  # not a partition of this plan in flight
        failed = tried[-1]
        replacement = self._next_copy(partition, status_of)
        if replacement is None:
            self.progress.fail([partition], f"{status.error}; no other live copy")
            return None
        return Assignment(partition, replacement.path, replacement.skip_rows, replaces=failed, reason=status.error)

    def _next_copy(self, partition: str, status_of: StatusOf) -> Assignment | None:
        tried = self._tried.setdefault(partition, [])
        path = choose_path(self.candidates[partition], status_of, tried)
        if path is None:
            return None
        tried.append(path)
        return Assignment(partition, path, self.delivered.get(partition, 0))
