"""Two and three hosts in real network namespaces (tests/netns.py), each started with `bin/start
--layout ... --host ...`: a full scan, every host but the gateway's cut off and killed, and, with
three hosts, one cut link between two hosts.

The daemons keep the shipped ports: each host's namespace has ports of its own. Every address is
in a subnet made by this module, and every namespace is torn down afterwards, also on failure.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemons.client import FireClient
from tests import netns
from tests.cluster import ETC, PROGRAMS, epoch_of, host_command, prepare_layout, read_events
from tests.oracle import full_scan
from tests.waiting import wait_for

WHY_NOT = netns.unavailable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")

LAYOUTS = {
    "two-hosts": {"h1": ["gateway_a", "leader_b", "worker_d"], "h2": ["worker_c", "leader_e", "worker_f"]},
    "three-hosts": {"h1": ["gateway_a", "worker_c"], "h2": ["leader_b", "worker_d"], "h3": ["leader_e", "worker_f"]},
}
WATCHES = [("gateway_a", "leader_b"), ("gateway_a", "leader_e"), ("leader_b", "worker_c"), ("leader_e", "worker_f"),
           ("leader_e", "worker_d")]  # (observer, neighbour)
SHIPPED_PORTS = {p: int(json.loads((ETC / f"{p}.json").read_text())["listen"].rsplit(":", 1)[1]) for p in PROGRAMS}


class Deployment:
    def __init__(self, layout: str, home: Path, network: netns.Network, data_root: Path):
        self.layout = layout
        self.home = home
        self.network = network
        self.environment = {**os.environ, "FIRE_DATA_DIR": str(data_root)}
        self.host_of = {program: host for host, programs in LAYOUTS[layout].items() for program in programs}
        self.gateway = f"{network.addresses[self.host_of['gateway_a']]}:{SHIPPED_PORTS['gateway_a']}"
        self.others = [host for host in LAYOUTS[layout] if host != self.host_of["gateway_a"]]

    def across(self, *hosts: str) -> list[tuple[str, str]]:
        """The watches that cross from or into `hosts`."""
        return [(o, n) for o, n in WATCHES if (self.host_of[o] in hosts) != (self.host_of[n] in hosts)]

    def between(self, a: str, b: str) -> list[tuple[str, str]]:
        return [(o, n) for o, n in WATCHES if {self.host_of[o], self.host_of[n]} == {a, b}]

    def bin(self, command: str, host: str) -> None:
        done = self.network.run(host, host_command(command, self.layout, host, self.home),
                                capture_output=True, timeout=300, env=self.environment)
        assert done.returncode == 0, done.stderr

    def transitions(self, observer: str, neighbor: str, since: float) -> list[dict]:
        log = self.home / "state" / self.layout / self.host_of[observer] / "logs" / f"{observer}.log"
        return [e for e in read_events(log) if e.get("event") == "health_transition" and e["neighbor"] == neighbor
                and epoch_of(e) >= since]

    def path(self, observer: str, neighbor: str, since: float) -> list[str]:
        return [e["to"] for e in self.transitions(observer, neighbor, since)]


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def deployment(request, tmp_path_factory, data_root, cache_dir) -> Iterator[Deployment]:
    layout_name = request.param
    home = tmp_path_factory.mktemp(layout_name)
    network = netns.Network(list(LAYOUTS[layout_name]))
    prepare_layout(home, layout_name, LAYOUTS[layout_name], network.addresses, SHIPPED_PORTS, cache_dir)
    try:
        network.create()
        running = Deployment(layout_name, home, network, data_root)
        for host in [*running.others, "h1"]:  # the gateway's host last: it waits for every partition
            running.bin("start", host)
        yield running
    finally:
        network.destroy()


def test_a_full_scan_across_hosts_is_exact(deployment, expected):
    with FireClient(deployment.gateway, deadline_seconds=300) as client:
        checksum, completeness = full_scan(client)
    assert checksum == expected and completeness.complete


def _outage_seen(deployment: Deployment, watches: list[tuple[str, str]], since: float) -> None:
    for observer, neighbor in watches:
        wait_for(lambda o=observer, n=neighbor: deployment.path(o, n, since)[-1:] == ["unavailable"], 10,
                 f"{observer} to see {neighbor} unavailable")
        degraded, unavailable = deployment.transitions(observer, neighbor, since)[-2:]
        assert (degraded["to"], unavailable["to"]) == ("degraded", "unavailable")
        assert epoch_of(degraded) - since <= 1.6 and epoch_of(unavailable) - since <= 3.0, (observer, neighbor)


def _heal_seen(deployment: Deployment, watches: list[tuple[str, str]], healed: float) -> None:
    for observer, neighbor in watches:
        wait_for(lambda o=observer, n=neighbor: deployment.path(o, n, healed) == ["healthy"], 10,
                 f"{observer} to see {neighbor} healthy again")
        (back,) = deployment.transitions(observer, neighbor, healed)
        assert epoch_of(back) - healed <= 1.0
    time.sleep(2)  # no flapping after the heal: still exactly one transition per link
    assert all(deployment.path(o, n, healed) == ["healthy"] for o, n in watches)


def test_a_cut_off_host_is_seen_within_the_targets_and_its_heal_within_a_second(deployment, expected):
    for host in deployment.others:
        since = time.time()
        deployment.network.isolate(host)
        try:
            _outage_seen(deployment, deployment.across(host), since)
            with FireClient(deployment.gateway, deadline_seconds=120) as client:  # planned around the lost host
                rows, answer = client.count()
            assert answer.complete and rows == expected[0]
        finally:
            healed = time.time()
            deployment.network.heal(host)
        _heal_seen(deployment, deployment.across(host), healed)


def test_one_cut_link_between_two_hosts_gives_exact_or_explicitly_partial_answers(deployment, expected):
    if len(deployment.others) < 2:
        pytest.skip("one link between two hosts is a cut-off host: the test above")
    a, b = deployment.others
    since = time.time()
    deployment.network.cut(a, b)
    try:
        _outage_seen(deployment, deployment.between(a, b), since)
        with FireClient(deployment.gateway, deadline_seconds=300) as client:
            (rows, checksum), completeness = full_scan(client)
        if completeness.complete:
            assert (rows, checksum) == expected
        else:
            assert completeness.missing_partitions and rows < expected[0]
    finally:
        healed = time.time()
        deployment.network.mend(a, b)
    _heal_seen(deployment, deployment.between(a, b), healed)


class LoseHost:
    """A full scan's batch callback that kills every process of `host` after a few batches."""

    def __init__(self, network: netns.Network, host: str, after: int = 20):
        self.network, self.host, self.after = network, host, after
        self.batches = 0
        self.lost = False

    def __call__(self, _batch) -> None:
        self.batches += 1
        if self.batches == self.after:
            self.lost = True
            self.network.kill(self.host)  # every process of the host, at once


def test_a_host_lost_in_the_middle_of_a_full_scan_costs_nothing(deployment, expected):
    for host in deployment.others:
        lose = LoseHost(deployment.network, host)
        try:
            with FireClient(deployment.gateway, deadline_seconds=300) as client:
                checksum, completeness = full_scan(client, lose)
            assert lose.lost
            assert checksum == expected and completeness.complete, (host, completeness)
        finally:
            deployment.bin("start", host)
