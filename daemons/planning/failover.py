"""One request's plan: which copy serves each partition, and the next copy when one fails.

Pure: health statuses come in as a function, decisions go out as values; the gateway turns them
into routes and events. Copies with the same content fingerprint scan a partition in the same
order, so a replacement copy skips the rows already delivered and the client sees each row exactly
once. Once rows of a partition have been delivered, the plan is pinned to their copy's fingerprint:
every replacement is sent with it and refuses if it holds anything else (replicas.py decides which
copies are candidates at all). A copy is tried at most once per request, so failures can leave a
partition missing but never loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from daemons.fanout.routes import Progress
from daemons.planning.paths import Path, StatusOf, choose_path, unavailable_on
from daemons.planning.replicas import PartitionChoice
from daemons.rpc import airquality_pb2 as pb


@dataclass(frozen=True)
class Assignment:
    """A partition sent down one path, skipping the rows a failed copy already delivered."""

    partition: str
    path: Path
    skip_rows: int = 0
    fingerprint: str = ""  # the content the copy must hold ("": not known, any)
    replaces: Path | None = None  # the path that failed, for a failover
    reason: str = ""  # why it failed


@dataclass
class RequestPlan:
    choices: Mapping[str, PartitionChoice]  # partition -> its candidate copies
    delivered: dict[str, int] = field(default_factory=dict)  # partition -> rows the client has received
    # partition -> the fingerprint of the copy whose rows the client has: replacements must match it
    pinned: dict[str, str] = field(default_factory=dict)
    progress: Progress = field(init=False)
    _tried: dict[str, list[Path]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.progress = Progress(tuple(self.choices))

    @classmethod
    def resumed(cls, choices: Mapping[str, PartitionChoice], delivered: Mapping[str, int], complete: Iterable[str],
                pinned: Mapping[str, str]) -> RequestPlan:
        """The plan of a request continued after a gateway restart, from its resume token."""
        plan = cls(choices, dict(delivered), dict(pinned))
        plan.progress.record(pb.PartitionStatus(partition=p, complete=True, rows=plan.delivered.get(p, 0))
                             for p in complete)
        return plan

    @property
    def rows_delivered(self) -> int:
        return sum(self.delivered.values())

    def prune(self, first: int | None, last: int | None, process_of: Callable[[str], int | None]) -> list[str]:
        """Records as complete, with no rows, every partition no copy of which holds a row in
        [first, last] (epoch minutes, None: unbounded), its holders' processes (`process_of`) still
        those that said so: assign then leaves them out, and nobody holding them is asked. Returns them."""
        pruned = [partition for partition, choice in self.choices.items()  # none whose rows a client has
                  if partition not in self.progress.statuses and partition not in self.delivered
                  and choice.misses(first, last, process_of)]
        self.progress.record(pb.PartitionStatus(partition=partition, complete=True, pruned=True) for partition in pruned)
        return pruned

    def assign(self, status_of: StatusOf) -> list[Assignment]:
        """A copy for every partition that has no status yet; those out of reach are recorded as failed."""
        assignments = []
        for partition, choice in self.choices.items():
            if partition in self.progress.statuses:
                continue
            assignment = self._next_copy(partition, status_of)
            if assignment is None:
                down = unavailable_on((*choice.paths, *choice.fallback), status_of)
                self.progress.fail([partition], f"no live copy (unavailable: {', '.join(down) or 'none'})")
            else:
                assignments.append(assignment)
        return assignments

    def rows_received(self, partition: str, offset: int, rows: int, fingerprint: str = "") -> None:
        """A chunk of `rows` rows starting at `offset` within the partition's answer went to the client,
        from a copy holding `fingerprint`."""
        self.delivered[partition] = offset + rows
        if fingerprint:
            self.pinned.setdefault(partition, fingerprint)

    def settle(self, status: pb.PartitionStatus, status_of: StatusOf) -> Assignment | None:
        """A copy ended. One that scanned all it holds is final (complete, or incomplete by its gaps,
        or unverified when copies disagree); a failed one is replaced by the next live copy
        (returned), or recorded as missing when none is left."""
        partition = status.partition
        tried = self._tried.get(partition)
        if partition in self.progress.statuses or not tried:
            return None  # not a partition of this plan in flight
        if status.complete or status.gaps:
            disputed = self.choices[partition].disputed
            if status.complete and disputed:
                status = pb.PartitionStatus(partition=partition, rows=status.rows, served_by=status.served_by,
                                            fingerprint=status.fingerprint, error=disputed)
            self.progress.record([status])
            return None
        failed = tried[-1]
        replacement = self._next_copy(partition, status_of)
        if replacement is None:
            self.progress.fail([partition], f"{status.error}; no other live copy")
            return None
        return Assignment(partition, replacement.path, replacement.skip_rows, replacement.fingerprint,
                          replaces=failed, reason=status.error)

    def _next_copy(self, partition: str, status_of: StatusOf) -> Assignment | None:
        choice = self.choices[partition]
        tried = self._tried.setdefault(partition, [])
        path = choose_path(choice.paths, status_of, tried)
        if path is None and partition not in self.pinned:
            path = choose_path(choice.fallback, status_of, tried)  # incomplete, but better than nothing
        if path is None:
            return None
        tried.append(path)
        return Assignment(partition, path, self.delivered.get(partition, 0),
                          self.pinned.get(partition) or choice.expected(path))
