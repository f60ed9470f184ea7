"""Placing partitions' copies for a host layout, checked against every single daemon and host loss.

The oracle is independent of the module: the overlay read from the shipped etc/*.json, reachability
by breadth-first search over it with the lost daemons removed, and brute force over copy sets.
"""

from __future__ import annotations

import json
from collections import deque
from itertools import combinations, product
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemons.planning.paths import single_failure_losses, single_host_losses
from daemons.planning.placement import (
    DEFAULT_ROW_BUDGET,
    OVERLAY,
    REAL_DATA_ROWS,
    PlacementError,
    losses,
    place,
    routes_for,
    rows_held,
    single_failure_report,
)

ETC = Path(__file__).resolve().parents[2] / "etc"
CONFIGS = {path.stem: json.loads(path.read_text()) for path in ETC.glob("*.json")}
GATEWAY = "gateway_a"
CHILDREN = {name: [child["name"] for child in config.get("children", [])] for name, config in CONFIGS.items()}
DATA_DAEMONS = sorted(name for name in CONFIGS if name != GATEWAY)
PARTITIONS = sorted(REAL_DATA_ROWS)
# The shipped layouts (etc/layouts), host -> the programs it runs.
LAYOUTS = {path.stem: {host: tuple(section["programs"]) for host, section in json.loads(path.read_text())["hosts"].items()}
           for path in (ETC / "layouts").glob("*.json")}
# What the shipped configs hold, primary first (etc/*.json, data.partitions; the gateway's routes give the order).
DEPLOYED_COPIES = {partition: tuple(dict.fromkeys(path[-1] for path in paths))
                   for partition, paths in CONFIGS[GATEWAY]["routes"].items()}


def reached(lost):
    """The daemons the gateway still reaches with `lost` gone: breadth-first over the configs' children."""
    seen, queue = set(), deque([GATEWAY] if GATEWAY not in lost else [])
    while queue:
        for child in CHILDREN[queue.popleft()]:
            if child not in lost and child not in seen:
                seen.add(child)
                queue.append(child)
    return seen


def losses_to_survive(hosts):
    """Every single daemon below the gateway, and every host but the gateway's, as sets of lost daemons."""
    return [{daemon} for daemon in DATA_DAEMONS] + [set(daemons) for daemons in hosts.values() if GATEWAY not in daemons]


def survives(holders, hosts):
    return all(reached(lost) & set(holders) for lost in losses_to_survive(hosts))


def assert_safe(copies, hosts):
    """Every partition keeps a copy in reach after every loss, by the oracle, by `losses`, by the
    report, and along the gateway's routes (a route is usable when none of its daemons is lost)."""
    routes = routes_for(copies, REAL_DATA_ROWS)
    for lost in losses_to_survive(hosts):
        assert losses(copies, lost) == []
        for partition, holders in copies.items():
            assert reached(lost) & set(holders), (partition, holders, lost)
            assert any(not lost & set(path) for path in routes[partition]), (partition, routes[partition], lost)
    report = single_failure_report(copies, hosts)
    assert report.survives_any_daemon and report.survives_any_host
    assert report.unsafe() == {"daemons": {}, "hosts": {}}
    assert single_failure_losses(routes) == {}
    assert single_host_losses(routes, {host: daemons for host, daemons in hosts.items() if GATEWAY not in daemons}) == {}


def minimal_safe_sets(hosts):
    """The copy sets that survive the layout and have no copy to spare."""
    safe = [set(s) for size in range(1, len(DATA_DAEMONS) + 1) for s in combinations(DATA_DAEMONS, size)
            if survives(s, hosts)]
    return [s for s in safe if not any(other < s for other in safe)]


def fits_somewhere(sets, budget, held=None, partitions=tuple(PARTITIONS)):
    """Whether each partition can take one of `sets` with no daemon over the budget (plain depth-first)."""
    held = held or dict.fromkeys(DATA_DAEMONS, 0)
    if not partitions:
        return True
    rows = REAL_DATA_ROWS[partitions[0]]
    for holders in sets:
        if all(held[d] + rows <= budget for d in holders):
            after = {d: load + rows * (d in holders) for d, load in held.items()}
            if fits_somewhere(sets, budget, after, partitions[1:]):
                return True
    return False


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_placement_survives_every_single_daemon_and_host_loss(layout):
    assert_safe(place(LAYOUTS[layout], REAL_DATA_ROWS, DEPLOYED_COPIES), LAYOUTS[layout])


@pytest.mark.parametrize("layout, budget", [(layout, budget) for layout in sorted(LAYOUTS)
                                            for budget in (DEFAULT_ROW_BUDGET, 650_000)])
def test_no_daemon_holds_more_than_the_budget_and_the_gateway_holds_nothing(layout, budget):
    copies = place(LAYOUTS[layout], REAL_DATA_ROWS, DEPLOYED_COPIES, budget)
    assert sorted(copies) == PARTITIONS
    assert max(rows_held(copies, REAL_DATA_ROWS).values()) <= budget
    assert all(GATEWAY not in holders for holders in copies.values())
    assert_safe(copies, LAYOUTS[layout])


def test_one_host_keeps_todays_copies_and_the_gateways_routes():
    copies = place(LAYOUTS["one-host"], REAL_DATA_ROWS, DEPLOYED_COPIES)
    assert copies == DEPLOYED_COPIES
    configured = {}
    for name, config in CONFIGS.items():
        for partition in config.get("data", {}).get("partitions", []):
            configured.setdefault(partition["name"], set()).add(name)
    assert {partition: set(holders) for partition, holders in copies.items()} == configured
    routes = {partition: [list(path) for path in paths] for partition, paths in routes_for(copies, REAL_DATA_ROWS).items()}
    assert routes == CONFIGS[GATEWAY]["routes"]


def test_the_default_budget_admits_what_the_busiest_daemon_holds_today():
    assert max(rows_held(DEPLOYED_COPIES, REAL_DATA_ROWS).values()) == 789_146 <= DEFAULT_ROW_BUDGET


@pytest.mark.parametrize("layout", ["two-hosts", "three-hosts"])
def test_two_copies_each_as_evenly_spread_as_any_safe_placement(layout):
    hosts = LAYOUTS[layout]
    copies = place(hosts, REAL_DATA_ROWS, DEPLOYED_COPIES)
    assert not any(survives({daemon}, hosts) for daemon in DATA_DAEMONS)  # so two copies is the fewest
    assert all(len(holders) == 2 for holders in copies.values())
    pairs = [set(pair) for pair in combinations(DATA_DAEMONS, 2) if survives(pair, hosts)]
    spreads = (sorted(rows_held(dict(zip(PARTITIONS, choice)), REAL_DATA_ROWS).values(), reverse=True)
               for choice in product(pairs, repeat=len(PARTITIONS)))
    assert sorted(rows_held(copies, REAL_DATA_ROWS).values(), reverse=True) == min(spreads)


def test_the_overlay_is_the_one_the_configs_describe():
    links = {(name, child["name"]) for name, config in CONFIGS.items() for child in config.get("children", [])}
    control = {(name, child["name"]) for name, config in CONFIGS.items() for child in config.get("children", [])
               if child["link"] == "control"}
    assert (set(OVERLAY.links), OVERLAY.control_links, OVERLAY.gateway) == (links, control, GATEWAY)


def test_routes_to_a_daemon_are_every_path_query_links_first():
    assert OVERLAY.routes_to("worker_d") == (("leader_e", "worker_d"), ("leader_b", "worker_d"))
    assert OVERLAY.routes_to("worker_c") == (("leader_b", "worker_c"),)
    assert OVERLAY.routes_to("leader_e") == (("leader_e",),)
    assert OVERLAY.routes_to(GATEWAY) == ()


def test_losing_a_leader_takes_what_hangs_only_under_it():
    assert OVERLAY.reachable({"leader_b"}) == {"leader_e", "worker_d", "worker_f"}
    assert losses({"p": ("worker_c",), "q": ("worker_d",)}, {"leader_b"}) == ["p"]
    assert losses({"p": ("worker_d",)}, {"leader_b", "leader_e"}) == ["p"]


def test_the_report_names_what_each_host_loss_takes_from_todays_copies():
    two = single_failure_report(DEPLOYED_COPIES, LAYOUTS["two-hosts"])
    assert two.by_host == {"h2": ["sep05-13", "sep14-24"]}
    assert two.survives_any_daemon and not two.survives_any_host
    assert two.unsafe() == {"daemons": {}, "hosts": {"h2": ["sep05-13", "sep14-24"]}}
    three = single_failure_report(DEPLOYED_COPIES, LAYOUTS["three-hosts"])
    assert three.by_host == {"h2": ["aug10-17", "aug18-26", "aug27-sep04"], "h3": []}
    assert three.unsafe() == {"daemons": {}, "hosts": {"h2": ["aug10-17", "aug18-26", "aug27-sep04"]}}
    one = single_failure_report(DEPLOYED_COPIES, LAYOUTS["one-host"])
    assert one.by_host == {} and one.by_daemon == {daemon: [] for daemon in DATA_DAEMONS}


def test_the_report_names_what_each_daemon_failure_takes():
    report = single_failure_report({"p": ("worker_c", "worker_d"), "q": ("worker_c",)}, LAYOUTS["one-host"])
    assert report.unsafe()["daemons"] == {"leader_b": ["q"], "worker_c": ["q"]}


def test_a_path_through_a_copy_preferred_to_its_end_is_left_out():
    routes = routes_for({"p": ("leader_b", "worker_d")}, {"p": 1})
    assert routes == {"p": [("leader_b",), ("leader_e", "worker_d")]}
    routes = routes_for({"p": ("worker_d", "leader_b")}, {"p": 1})
    assert routes == {"p": [("leader_e", "worker_d"), ("leader_b",), ("leader_b", "worker_d")]}


def test_a_host_holding_both_leaders_cannot_be_survived():
    hosts = {"h1": ("gateway_a", "worker_c"), "h2": ("leader_b", "leader_e"), "h3": ("worker_d", "worker_f")}
    with pytest.raises(PlacementError, match=r"losing host h2 \(leader_b, leader_e\) leaves the gateway no daemon"):
        place(hosts, REAL_DATA_ROWS, DEPLOYED_COPIES)


def test_a_budget_too_small_for_two_copies_each_is_refused():
    with pytest.raises(PlacementError, match="within 400,000 rows per daemon"):
        place(LAYOUTS["three-hosts"], REAL_DATA_ROWS, DEPLOYED_COPIES, 400_000)


def test_a_refusal_names_the_daemon_every_partition_would_need():
    hosts = {"h1": ("gateway_a", "leader_b", "worker_f"), "h2": ("worker_c", "worker_d", "leader_e")}
    with pytest.raises(PlacementError, match="every partition needs a copy on leader_b, 1,167,525 rows"):
        place(hosts, REAL_DATA_ROWS, DEPLOYED_COPIES)
    assert all("leader_b" in holders for holders in place(hosts, REAL_DATA_ROWS, DEPLOYED_COPIES, 1_200_000).values())


def test_a_layout_must_run_every_daemon_on_exactly_one_host():
    with pytest.raises(PlacementError, match="worker_c runs on 2 hosts; worker_f runs on no host"):
        place({"h1": ("gateway_a", "leader_b", "worker_c", "worker_d"), "h2": ("worker_c", "leader_e")}, REAL_DATA_ROWS,
              DEPLOYED_COPIES)
    with pytest.raises(PlacementError, match="worker_z is not in the overlay"):
        single_failure_report(DEPLOYED_COPIES, {"h1": (GATEWAY, *DATA_DAEMONS, "worker_z")})


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=len(DATA_DAEMONS), max_size=len(DATA_DAEMONS)),
       st.integers(250_000, 1_300_000), st.randoms(use_true_random=False))
def test_a_random_layout_is_placed_safely_or_refused_for_a_reason(host_numbers, budget, rng):
    hosts = {"h1": [GATEWAY]}
    for daemon, number in zip(DATA_DAEMONS, host_numbers):
        hosts.setdefault(f"h{number}", []).append(daemon)
    try:
        copies = place(hosts, REAL_DATA_ROWS, DEPLOYED_COPIES, budget)
    except PlacementError:
        cut_off = any(not reached(lost) for lost in losses_to_survive(hosts))
        assert cut_off or not fits_somewhere(minimal_safe_sets(hosts), budget)
        return
    assert_safe(copies, hosts)
    assert max(rows_held(copies, REAL_DATA_ROWS).values()) <= budget
    assert all(survives(holders, hosts) and not any(survives(set(holders) - {d}, hosts) for d in holders)
               for holders in copies.values())  # no copy to spare
    shuffled = {host: rng.sample(daemons, len(daemons)) for host, daemons in reversed(hosts.items())}
    assert place(shuffled, REAL_DATA_ROWS, DEPLOYED_COPIES, budget) == copies  # the order a layout is written in does not matter



def test_the_gateways_host_check_names_what_each_host_loss_takes_along_its_routes():
    """Today's routes under three-hosts: every path to the three August partitions crosses h2."""
    routes = {partition: [tuple(path) for path in paths] for partition, paths in CONFIGS[GATEWAY]["routes"].items()}
    hosts = {host: daemons for host, daemons in LAYOUTS["three-hosts"].items() if GATEWAY not in daemons}
    assert single_host_losses(routes, hosts) == {"h2": ["aug10-17", "aug18-26", "aug27-sep04"]}
