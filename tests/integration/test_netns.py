"""Two and three hosts in real network namespaces (tests/hosts.py, tests/netns.py), each started
with `bin/start --layout ... --host ...`: a full scan, every host but the gateway's cut off and
killed, and, with three hosts, one cut link between two hosts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from daemons.client import FireClient
from tests import netns
from tests.cluster import epoch_of
from tests.hosts import LAYOUTS, Deployment, deployed
from tests.oracle import full_scan
from tests.waiting import wait_for

WHY_NOT = netns.unavailable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def deployment(request, tmp_path_factory, data_root, cache_dir) -> Iterator[Deployment]:
    with deployed(request.param, tmp_path_factory.mktemp(request.param), data_root, cache_dir) as running:
        yield running


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
