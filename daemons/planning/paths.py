"""Which copy of each partition serves a query: pure decisions over routes and health statuses.

A partition's candidate paths (from the gateway's config, preferred first) lead from the gateway
to daemons that hold it. The healthiest path wins, then the preferred. One path per partition
means one copy serves it, so replicas never produce duplicates.

A path whose first hop is unavailable is never taken: the planner watches that daemon itself.
What it knows of the daemons further down is their watchers' word, fetched up to a second ago
(health/view.py): a path through one reported unavailable is taken only when nothing better is
left, rather than giving a partition up on a stale word. Its watcher, which knows first-hand,
refuses the call at once if the daemon is still down. Measured 2026-11-30, restarting the daemons
one at a time: worker_f stopped half a second after the restarted worker_c was healthy again,
and two answers went without sep14-24, whose other copy worker_c the gateway still believed down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from daemons.health.status import Status

Path = tuple[str, ...]
StatusOf = Callable[[str], str]  # a daemon's health status (a Status, or its value)

# Lower is better.
_PREFERENCE = {Status.HEALTHY: 0, Status.UNKNOWN: 1, Status.DEGRADED: 2}
_REPORTED_UNAVAILABLE = len(_PREFERENCE)  # below the first hop: the last resort


def choose_path(candidates: Iterable[Path], status_of: StatusOf, excluded: Iterable[Path] = ()) -> Path | None:
    """The best candidate not in `excluded`, or None when every copy is out of reach."""
    skipped = set(excluded)
    best, best_rank = None, _REPORTED_UNAVAILABLE + 1
    for path in candidates:
        if path in skipped or Status(status_of(path[0])) is Status.UNAVAILABLE:
            continue
        worst = max(_PREFERENCE.get(Status(status_of(hop)), _REPORTED_UNAVAILABLE) for hop in path)
        if worst < best_rank:
            best, best_rank = path, worst
    return best


def unavailable_on(candidates: Iterable[Path], status_of: StatusOf) -> list[str]:
    """The daemons on any of the paths that are unavailable, sorted: why no copy is in reach."""
    return sorted({hop for path in candidates for hop in path if status_of(hop) == Status.UNAVAILABLE})


def single_failure_losses(routes: Mapping[str, Iterable[Path]]) -> dict[str, list[str]]:
    """For each daemon on some path, the partitions it would take out of reach by failing alone."""
    paths = {partition: [tuple(path) for path in candidates] for partition, candidates in routes.items()}
    daemons = sorted({hop for candidates in paths.values() for path in candidates for hop in path})
    losses = {daemon: sorted(p for p, candidates in paths.items() if all(daemon in path for path in candidates))
              for daemon in daemons}
    return {daemon: lost for daemon, lost in losses.items() if lost}


def single_host_losses(routes: Mapping[str, Iterable[Path]], hosts: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """For each host (its daemons), the partitions it would take out of reach by being lost alone:
    those every path of which crosses one of its daemons. The caller leaves out the gateway's own
    host, whose loss loses the service."""
    paths = {partition: [tuple(path) for path in candidates] for partition, candidates in routes.items()}
    losses = {host: sorted(p for p, candidates in paths.items()
                           if all(not on_host.isdisjoint(path) for path in candidates))
              for host, on_host in ((host, set(daemons)) for host, daemons in hosts.items())}
    return {host: lost for host, lost in losses.items() if lost}
