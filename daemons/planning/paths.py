"""Which copy of each partition serves a query: pure decisions over routes and health statuses.

A partition's candidate paths (from the gateway's config, preferred first) lead from the gateway
to daemons that hold it. A path is usable when no daemon on it is unavailable; among usable ones
the healthiest wins, then the preferred. One path per partition means one copy serves it, so
replicas never produce duplicates.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

Path = tuple[str, ...]

# Lower is better; unavailable daemons are never routed through.
_RANK = {"healthy": 0, "unknown": 1, "degraded": 2}


def choose_path(candidates: Iterable[Path], status_of: Callable[[str], str], excluded: Iterable[Path] = ()) -> Path | None:
    """The best usable candidate not in `excluded`, or None when every copy is out of reach."""
    excluded = set(excluded)
    best, best_rank = None, len(_RANK)
    for path in candidates:
        if path in excluded:
            continue
        ranks = [_RANK.get(status_of(hop)) for hop in path]
        if None in ranks:
            continue
        if max(ranks) < best_rank:
            best, best_rank = path, max(ranks)
    return best


def single_failure_losses(routes: Mapping[str, Iterable[Path]]) -> dict[str, list[str]]:
    """For each daemon on some path, the partitions it would take out of reach by failing alone."""
    routes = {partition: [tuple(path) for path in paths] for partition, paths in routes.items()}
    daemons = sorted({hop for paths in routes.values() for path in paths for hop in path})
    losses = {daemon: sorted(p for p, paths in routes.items() if all(daemon in path for path in paths))
              for daemon in daemons}
    return {daemon: lost for daemon, lost in losses.items() if lost}
