"""Routes and partition fates: pure values, no I/O.

A request carries, for each partition, the path from the receiving daemon down to the one that
scans it. `split_routes` tells a daemon which partitions to scan itself and which to forward to
which child; `Progress` holds the one final status of each partition of a request, so an answer
that lost a partition can never look complete.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from daemons.query.filter import InvalidQuery
from daemons.quoting import quoted
from daemons.rpc import airquality_pb2 as pb

# Far above any deployment's partition count and overlay depth, far below what costs anything.
MAX_ROUTES = 256
MAX_PATH_LENGTH = 16
MAX_FINGERPRINT_LENGTH = 80


@dataclass
class Progress:
    """The fate of each partition routed in one request: the first status given to each counts."""

    expected: tuple[str, ...]
    statuses: dict[str, pb.PartitionStatus] = field(default_factory=dict)

    def record(self, statuses: Iterable[pb.PartitionStatus]) -> None:
        for status in statuses:
            if status.partition in self.expected and status.partition not in self.statuses:
                self.statuses[status.partition] = status

    def fail(self, partitions: Iterable[str], error: str) -> list[pb.PartitionStatus]:
        """Marks the given partitions that have no status yet as failed; returns the new statuses."""
        failed = [pb.PartitionStatus(partition=p, complete=False, error=error)
                  for p in partitions if p not in self.statuses]
        self.record(failed)
        return failed

    @property
    def complete(self) -> list[str]:
        return [p for p, status in self.statuses.items() if status.complete]

    @property
    def pruned(self) -> list[str]:
        """The partitions answered without asking anyone: the query's time range misses them."""
        return [p for p, status in self.statuses.items() if status.pruned]

    @property
    def missing(self) -> list[str]:
        return [p for p in self.expected if not (p in self.statuses and self.statuses[p].complete)]

    def all_statuses(self) -> list[pb.PartitionStatus]:
        return [self.statuses.get(p) or pb.PartitionStatus(partition=p, error="no answer") for p in self.expected]


def check_routes(own: str, routes: Sequence[pb.PartitionRoute]) -> None:
    """Refuses (InvalidQuery) routes that would multiply work: too many, a partition routed twice,
    a path that does not start here or visits a daemon twice (a loop through an ancestor)."""
    if len(routes) > MAX_ROUTES:
        raise InvalidQuery(f"routes: at most {MAX_ROUTES}, got {len(routes)}")
    seen: set[str] = set()
    for index, route in enumerate(routes):
        field_name = f"routes[{index}]"
        if route.partition in seen:
            raise InvalidQuery(f"{field_name}: partition {quoted(route.partition)} is routed more than once")
        seen.add(route.partition)
        path = list(route.path)
        if not path or path[0] != own:
            raise InvalidQuery(f"{field_name}.path: must start at {own}, the daemon receiving it")
        if len(path) > MAX_PATH_LENGTH or len(set(path)) != len(path):
            raise InvalidQuery(f"{field_name}.path: must visit each daemon at most once, in at most "
                               f"{MAX_PATH_LENGTH} hops")
        if len(route.fingerprint) > MAX_FINGERPRINT_LENGTH:
            raise InvalidQuery(f"{field_name}.fingerprint: at most {MAX_FINGERPRINT_LENGTH} characters")


@dataclass
class RouteSplit:
    local: list[str] = field(default_factory=list)
    by_child: dict[str, list[pb.PartitionRoute]] = field(default_factory=dict)  # this daemon removed from paths
    unroutable: dict[str, str] = field(default_factory=dict)  # partition -> why


def split_routes(own: str, children: Collection[str], held: Collection[str],
                 routes: Iterable[pb.PartitionRoute]) -> RouteSplit:
    """Which routed partitions `own` scans itself, which it forwards to which child, and which it
    cannot route (with why)."""
    split = RouteSplit()
    for route in routes:
        path = list(route.path)
        if not path or path[0] != own:
            split.unroutable[route.partition] = f"misrouted: path {path} does not start at {own}"
        elif len(path) == 1:
            if route.partition in held:
                split.local.append(route.partition)
            else:
                split.unroutable[route.partition] = f"{own} does not hold partition {route.partition}"
        elif path[1] not in children:
            split.unroutable[route.partition] = f"{own} has no link to {path[1]}"
        else:
            split.by_child.setdefault(path[1], []).append(
                pb.PartitionRoute(partition=route.partition, path=path[1:], skip_rows=route.skip_rows,
                                  fingerprint=route.fingerprint))
    return split
