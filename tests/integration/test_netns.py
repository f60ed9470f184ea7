"""Two and three hosts in real network namespaces (tests/hosts.py, tests/netns.py), each started
with `bin/start --layout ... --host ...`: a full scan, every host but the gateway's cut off and
killed, and, with three hosts, one cut link between two hosts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from daemons.health.watchers import STEADY_PROBES
from tests import netns
from tests.cluster import HealthlogFollower, epoch_of
from tests.hosts import LAYOUTS, WATCHES, Deployment, deployed
from tests.oracle import full_scan
from tests.waiting import wait_for

WHY_NOT = netns.unavailable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def deployment(request, tmp_path_factory, data_root, cache_dir) -> Iterator[Deployment]:
    with deployed(request.param, tmp_path_factory.mktemp(request.param), data_root, cache_dir) as running:
        yield running


def test_a_full_scan_across_hosts_is_exact(deployment, expected):
    with deployment.client(300) as client:
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


def _watched_steadily(deployment: Deployment) -> None:
    """Waits until every watch has been healthy for a while: a daemon takes a monitor probing it as a
    watcher only after a few probes (daemons/health/watchers.py), and it has lost none it never had."""
    steady = STEADY_PROBES * 0.4 + 1.0  # the monitors probe every 0.4 s
    for observer, neighbor in WATCHES:
        wait_for(lambda o=observer, n=neighbor: (seen := deployment.transitions(o, n, 0.0)) and seen[-1]["to"] == "healthy"
                 and time.time() - epoch_of(seen[-1]) >= steady, 30, f"{observer} to have watched {neighbor} a while")


def _watchers_across(deployment: Deployment, program: str, host: str) -> tuple[list[str], list[str]]:
    """(the daemons watching `program`, those of them on the other side of `host`'s cut)."""
    watchers = [observer for observer, neighbor in WATCHES if neighbor == program]
    inside = deployment.host_of[program] == host
    return watchers, [w for w in watchers if (deployment.host_of[w] == host) != inside]


def _cut_off_logged(deployment: Deployment, host: str, since: float) -> None:
    """Every daemon that lost watchers to the cut says so, and one that lost them all says what it
    is cut off from."""
    for program in deployment.host_of:
        watchers, lost = _watchers_across(deployment, program, host)
        for watcher in lost:
            wait_for(lambda p=program, w=watcher: [e for e in deployment.events(p, "watcher_lost", since)
                                                   if e["watcher"] == w], 10, f"{program} to log {watcher} lost")
        if watchers and lost == watchers:
            (cut_off,) = wait_for(lambda p=program: deployment.events(p, "cut_off", since), 10,
                                  f"{program} to log what it is cut off from")
            assert sorted(cut_off["lost_watchers"]) == sorted(watchers)


def _watchers_back(deployment: Deployment, host: str, healed: float) -> None:
    for program in deployment.host_of:
        for watcher in _watchers_across(deployment, program, host)[1]:
            wait_for(lambda p=program, w=watcher: [e for e in deployment.events(p, "watcher_back", healed)
                                                   if e["watcher"] == w], 10, f"{program} to log {watcher} back")


def _shown_events(deployment: Deployment, programs: list[str], since: float) -> list[dict]:
    return [e for p in programs for kind in ("health_transition", "partition_failover")
            for e in deployment.events(p, kind, since)]


def test_a_cut_off_host_is_seen_within_the_targets_and_its_heal_within_a_second(deployment, expected):
    """And on both sides the daemons that lost their watchers say so; bin/healthlog --gateway names
    the daemons it cannot hear, and shows what they logged while cut off once they are back."""
    follower = HealthlogFollower(deployment.gateway, deployment.client_tls)
    try:
        wait_for(lambda: "hearing all 6 daemons" in follower.last_note(), 30, "healthlog to hear all six")
        _watched_steadily(deployment)
        for host in deployment.others:
            programs = LAYOUTS[deployment.layout][host]
            since = time.time()
            deployment.network.isolate(host)
            try:
                _outage_seen(deployment, deployment.across(host), since)
                with deployment.client(120) as client:  # planned around the lost host
                    checksum, completeness = full_scan(client)
                assert checksum == expected and completeness.complete, (host, completeness)
                _cut_off_logged(deployment, host, since)
                wait_for(lambda p=programs: follower.last_note().startswith(f"cannot hear from {len(p)}: ", 13)
                         and all(f"{name}: " in follower.last_note() for name in p), 15,
                         f"healthlog to say it cannot hear {', '.join(programs)} (said: {follower.notes[-2:]})")
            finally:
                healed = time.time()
                deployment.network.heal(host)
            _heal_seen(deployment, deployment.across(host), healed)
            _watchers_back(deployment, host, healed)
            wait_for(lambda: "hearing all 6 daemons" in follower.last_note(), 15, "healthlog to hear all six again")
            logged_while_cut = _shown_events(deployment, programs, since)
            wait_for(lambda s=since, w=logged_while_cut: all(follower.saw(e["daemon"], e["event"], s, timestamp=e["timestamp"])
                                                             for e in w), 10,
                     f"what {host}'s daemons logged while cut off, through the gateway")
    finally:
        follower.stop()


def test_one_cut_link_between_two_hosts_gives_exact_or_explicitly_partial_answers(deployment, expected):
    if len(deployment.others) < 2:
        pytest.skip("one link between two hosts is a cut-off host: the test above")
    a, b = deployment.others
    since = time.time()
    deployment.network.cut(a, b)
    try:
        _outage_seen(deployment, deployment.between(a, b), since)
        with deployment.client(300) as client:
            (rows, checksum), completeness = full_scan(client)
        if completeness.complete:
            assert (rows, checksum) == expected
        else:
            assert completeness.missing_partitions and rows < expected[0]
    finally:
        healed = time.time()
        deployment.network.mend(a, b)
    _heal_seen(deployment, deployment.between(a, b), healed)


class FaultMidScan:
    """A full scan's batch callback that makes a fault (a host killed or cut off) after a few batches."""

    def __init__(self, fault: Callable[[], None], after: int = 20):
        self.fault, self.after = fault, after
        self.batches = 0
        self.made_at: float | None = None

    def __call__(self, _batch) -> None:
        self.batches += 1
        if self.batches == self.after:
            self.made_at = time.time()
            self.fault()


def test_a_host_lost_before_or_in_the_middle_of_a_full_scan_costs_nothing(deployment, expected):
    for host in deployment.others:
        for before in (True, False):
            kill = FaultMidScan(lambda h=host: deployment.network.kill(h))  # every process of the host, at once
            try:
                if before:
                    kill.fault()  # the scan is planned before any monitor has seen the loss
                with deployment.client(300) as client:
                    checksum, completeness = full_scan(client, (lambda _batch: None) if before else kill)
                assert before or kill.made_at is not None
                assert checksum == expected and completeness.complete, (host, before, completeness)
            finally:
                deployment.bin("start", host)
                deployment.wait_routed_as_at_start()


def test_a_host_cut_off_in_the_middle_of_a_full_scan_costs_nothing(deployment, expected):
    for host in deployment.others:
        cut = FaultMidScan(lambda h=host: deployment.network.isolate(h))
        try:
            with deployment.client(300) as client:
                checksum, completeness = full_scan(client, cut)
            assert cut.made_at is not None
            assert checksum == expected and completeness.complete, (host, completeness)
            # The scan may end before every watch across the cut has called it: the heal is judged
            # from the steady state, as a heal after a partition that lasted.
            _outage_seen(deployment, deployment.across(host), cut.made_at)
        finally:
            healed = time.time()
            deployment.network.heal(host)
        _heal_seen(deployment, deployment.across(host), healed)
