"""Where each partition's copies live, so that no single daemon or host loss takes one out of reach.

paths.py chooses among the routes the gateway already has; this module decides the copies behind
them for a host layout: which daemons hold each partition (`place`), what every single daemon or
host loss would take with a given placement (`single_failure_report`), and the gateway's routes to
the copies (`routes_for`). It does not read configs or log: the overlay, the layout and the row
counts come in as values, and the caller writes the configs and the placement events.

Reachability counts, not liveness: a copy survives a loss only if some path from the gateway avoids
every lost daemon, so losing leader_b also takes worker_c, which hangs only under it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations, pairwise, product

from daemons.planning.paths import Path

Copies = Mapping[str, Sequence[str]]  # partition -> the daemons holding it, preferred first
Layout = Mapping[str, Collection[str]]  # host -> the daemons it runs


class PlacementError(ValueError):
    """No placement serves the layout: a host whose loss leaves the gateway no daemon in reach, copies
    that cannot fit the row budget, or a layout that does not run every daemon on exactly one host."""


@dataclass(frozen=True)
class Overlay:
    """Who forwards to whom. A control link may carry a route but is never health-probed, so routes
    over it come last: the gateway cannot tell it is broken until a query fails on it."""

    gateway: str
    links: tuple[tuple[str, str], ...]  # (parent, child), each parent's children in its config's order
    control_links: frozenset[tuple[str, str]]

    @property
    def below_gateway(self) -> tuple[str, ...]:
        return tuple(sorted({child for _, child in self.links} - {self.gateway}))

    def routes_to(self, daemon: str) -> tuple[Path, ...]:
        """Every simple path from a child of the gateway down to `daemon`, those over query links only first."""
        paths = [path[1:] for path in self._extensions((self.gateway,)) if path[-1] == daemon and len(path) > 1]
        return tuple(sorted(paths, key=self.uses_control_link))

    def uses_control_link(self, path: Path) -> bool:
        return any(link in self.control_links for link in pairwise((self.gateway, *path)))

    def reachable(self, lost: Collection[str]) -> frozenset[str]:
        """The daemons below the gateway that some path still reaches once the `lost` daemons are gone."""
        if self.gateway in lost:
            return frozenset()
        return frozenset(daemon for daemon in self.below_gateway
                         if any(all(hop not in lost for hop in path) for path in self.routes_to(daemon)))

    def _extensions(self, path: Path) -> Iterator[Path]:
        yield path
        for parent, child in self.links:
            if parent == path[-1] and child not in path:
                yield from self._extensions((*path, child))


OVERLAY = Overlay(
    gateway="gateway_a",
    links=(("gateway_a", "leader_b"), ("gateway_a", "leader_e"), ("leader_b", "worker_c"), ("leader_b", "worker_d"),
           ("leader_e", "worker_f"), ("leader_e", "worker_d")),
    control_links=frozenset({("leader_b", "worker_d")}),
)

REAL_DATA_ROWS: Mapping[str, int] = {"aug10-17": 134_004, "aug18-26": 243_313, "aug27-sep04": 244_375,
                                     "sep05-13": 245_339, "sep14-24": 300_494}

# Rows one daemon may hold, for resident memory under 300 MB on the real data. The busiest daemon
# today, worker_c, holds 789,146 rows (aug18-26, sep05-13, sep14-24), and the workers measured
# 94-121 MB resident with their replicas on the real data (README, Benchmarks; re-check with
# bin/benchmark query): a budget below 789,146 would rule out today's placement, known to fit.
DEFAULT_ROW_BUDGET = 800_000


@dataclass(frozen=True)
class FailureReport:
    """What each single loss would take out of reach: every daemon below the gateway, and every host
    but the gateway's (all its daemons at once; losing the gateway's own host loses the service)."""

    by_daemon: Mapping[str, list[str]]  # daemon -> partitions its failure takes, sorted ([]: none)
    by_host: Mapping[str, list[str]]  # host -> partitions its loss takes, sorted ([]: none)

    @property
    def survives_any_daemon(self) -> bool:
        return not any(self.by_daemon.values())

    @property
    def survives_any_host(self) -> bool:
        return not any(self.by_host.values())

    def unsafe(self) -> dict[str, dict[str, list[str]]]:
        """Only the losses that take something, for placement_unsafe to name."""
        return {"daemons": {daemon: lost for daemon, lost in self.by_daemon.items() if lost},
                "hosts": {host: lost for host, lost in self.by_host.items() if lost}}


def losses(copies: Copies, lost: Collection[str], overlay: Overlay = OVERLAY) -> list[str]:
    """The partitions none of whose copies is in reach once the `lost` daemons are gone, sorted."""
    reach = overlay.reachable(lost)
    return sorted(partition for partition, holders in copies.items() if reach.isdisjoint(holders))


def single_failure_report(copies: Copies, hosts: Layout, overlay: Overlay = OVERLAY) -> FailureReport:
    """What each single daemon failure, and each single loss of a host but the gateway's, would take."""
    return FailureReport({daemon: losses(copies, {daemon}, overlay) for daemon in overlay.below_gateway},
                         {host: losses(copies, daemons, overlay) for host, daemons in _losable_hosts(hosts, overlay).items()})


def rows_held(copies: Copies, partition_rows: Mapping[str, int]) -> dict[str, int]:
    """Rows each daemon holding a copy keeps in memory."""
    held: Counter[str] = Counter()
    for partition, holders in copies.items():
        for daemon in holders:
            held[daemon] += partition_rows[partition]
    return dict(held)


def place(hosts: Layout, partition_rows: Mapping[str, int], deployed: Copies, row_budget: int = DEFAULT_ROW_BUDGET,
          overlay: Overlay = OVERLAY) -> dict[str, tuple[str, ...]]:
    """Copies of every partition that survive any single daemon failure below the gateway and any
    single host loss but the gateway's, with no daemon holding more than `row_budget` rows.

    The `deployed` placement (what the per-program configs say, etc/*.json) is kept whenever it
    survives the layout within the budget,
    so deployments that are safe do not move data; two copies is already the fewest (a lone copy
    dies with its daemon). Otherwise the placement is derived: the fewest copies in all, then the
    most even rows per daemon (the busiest as light as possible, then the next busiest, ...); ties
    go to the first found placing the largest partition first and trying holders in alphabetical
    order. Each partition's holders are listed serving copy first (see `serving_copies`).
    """
    losses_to_survive = {daemon: frozenset({daemon}) for daemon in overlay.below_gateway}
    losses_to_survive |= {f"host {host} ({', '.join(sorted(lost))})": lost
                          for host, lost in _losable_hosts(hosts, overlay).items()}
    reaches = []
    for loss, lost in losses_to_survive.items():
        reach = overlay.reachable(lost)
        if not reach:
            raise PlacementError(f"losing {loss} leaves the gateway no daemon in reach: no placement survives it")
        reaches.append(reach)

    def safe(holders: Collection[str]) -> bool:
        return all(not reach.isdisjoint(holders) for reach in reaches)

    if (deployed.keys() == partition_rows.keys() and all(safe(holders) for holders in deployed.values())
            and max(rows_held(deployed, partition_rows).values()) <= row_budget):
        return {partition: tuple(holders) for partition, holders in deployed.items()}
    safe_sets = [frozenset(holders) for size in range(1, len(overlay.below_gateway) + 1)
                 for holders in combinations(overlay.below_gateway, size) if safe(holders)]
    # A copy beyond a safe set only adds rows, so only sets with nothing to spare are candidates.
    candidates = [tuple(sorted(s)) for s in safe_sets if not any(other < s for other in safe_sets)]
    copies = _most_even(partition_rows, candidates, row_budget)
    if copies is None:
        needed = sorted(set(candidates[0]).intersection(*candidates[1:]))
        hint = (f"; every partition needs a copy on {', '.join(needed)}, {sum(partition_rows.values()):,} rows"
                if needed else "")
        raise PlacementError(f"no placement survives every single daemon and host loss within "
                             f"{row_budget:,} rows per daemon{hint}")
    serving = serving_copies(copies, partition_rows)
    return {partition: (serving[partition], *(d for d in copies[partition] if d != serving[partition]))
            for partition in partition_rows}


def serving_copies(copies: Copies, partition_rows: Mapping[str, int]) -> dict[str, str]:
    """The copy that scans each partition while every daemon is up: the choice that spreads the rows
    scanned most evenly over the daemons, ties to the copies listed first."""
    partitions = list(copies)

    def unevenness(choice: tuple[str, ...]) -> tuple[list[int], list[int]]:
        scanned = rows_held({p: (daemon,) for p, daemon in zip(partitions, choice)}, partition_rows)
        listed_at = [list(copies[p]).index(daemon) for p, daemon in zip(partitions, choice)]
        return sorted(scanned.values(), reverse=True), listed_at

    best = min(product(*(copies[p] for p in partitions)), key=unevenness)
    return dict(zip(partitions, best))


def routes_for(copies: Copies, partition_rows: Mapping[str, int], overlay: Overlay = OVERLAY) -> dict[str, list[Path]]:
    """The gateway's candidate paths to each partition's copies, preferred first.

    The serving copy's paths come first, then the other copies' in the order listed; paths over
    query links only come before those crossing a control link. A path through a copy preferred to
    the one it ends at is left out: it would have that daemon forward a partition it is preferred
    to scan itself, and whenever the path is usable the daemon is in reach on its own shorter one.
    A path through a less preferred copy stays: it takes the scan on to the copy preferred for an
    even spread. (So today's routes: leader_b -> worker_d is a candidate for aug27-sep04, which
    worker_d serves, but not for aug10-17, which leader_b serves.)
    """
    serving = serving_copies(copies, partition_rows)
    routes = {}
    for partition, holders in copies.items():
        preferred = [serving[partition], *(daemon for daemon in holders if daemon != serving[partition])]
        rank = {daemon: index for index, daemon in enumerate(preferred)}
        paths = [path for daemon in preferred for path in overlay.routes_to(daemon)
                 if all(rank.get(hop, len(rank)) > rank[daemon] for hop in path[:-1])]
        routes[partition] = sorted(paths, key=overlay.uses_control_link)  # stable: copy order within each kind
    return routes


def _losable_hosts(hosts: Layout, overlay: Overlay) -> dict[str, frozenset[str]]:
    """Every host but the gateway's, with the daemons its loss takes; checks each daemon runs on one host."""
    runs_on = Counter(daemon for daemons in hosts.values() for daemon in daemons)
    expected = {overlay.gateway, *overlay.below_gateway}
    problems = [f"{daemon} runs on {count} hosts" for daemon, count in sorted(runs_on.items()) if count > 1]
    problems += [f"{daemon} runs on no host" for daemon in sorted(expected - runs_on.keys())]
    problems += [f"{daemon} is not in the overlay" for daemon in sorted(runs_on.keys() - expected)]
    if problems:
        raise PlacementError(f"the layout cannot be placed: {'; '.join(problems)}")
    return {host: frozenset(daemons) for host, daemons in sorted(hosts.items()) if overlay.gateway not in daemons}


def _most_even(partition_rows: Mapping[str, int], candidates: Sequence[tuple[str, ...]],
               row_budget: int) -> dict[str, tuple[str, ...]] | None:
    """The candidate holders per partition with the fewest copies, then the most even rows per daemon,
    within the budget; None when nothing fits. Branch and bound: rows only ever add up, so a partial
    placement already as uneven as the best complete one is abandoned."""
    order = sorted(partition_rows, key=lambda p: (-partition_rows[p], p))
    fewest = min(map(len, candidates))
    held = dict.fromkeys({daemon for holders in candidates for daemon in holders}, 0)
    chosen: dict[str, tuple[str, ...]] = {}
    best: tuple[tuple[int, list[int]], dict[str, tuple[str, ...]]] | None = None

    def extend(index: int, copies_so_far: int) -> None:
        nonlocal best
        rest = order[index:]
        bound = (copies_so_far + fewest * len(rest), sorted(held.values(), reverse=True))
        if best is not None and bound >= best[0]:
            return
        if fewest * sum(partition_rows[p] for p in rest) > sum(row_budget - rows for rows in held.values()):
            return  # the rest cannot fit wherever it goes
        if not rest:
            best = (bound, dict(chosen))
            return
        partition, rows = rest[0], partition_rows[rest[0]]
        for holders in candidates:
            if all(held[daemon] + rows <= row_budget for daemon in holders):
                chosen[partition] = holders
                for daemon in holders:
                    held[daemon] += rows
                extend(index + 1, copies_so_far + len(holders))
                for daemon in holders:
                    held[daemon] -= rows
        chosen.pop(partition, None)

    extend(0, 0)
    return None if best is None else {partition: best[1][partition] for partition in partition_rows}
