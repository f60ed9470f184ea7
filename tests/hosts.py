"""A multi-host deployment on one machine, for the namespace tests and `bin/benchmark hosts`: each
host of a layout in a network namespace of its own (tests/netns.py), started with `bin/start
--layout ... --host ...` from a private copy of etc/ (tests/cluster.prepare_layout).

The daemons keep the shipped ports: each host's namespace has ports of its own. Every address is
in a subnet made by tests/netns.py, and every supervisord and namespace is gone afterwards, also
on failure. Not the faults themselves: the callers make those with the Network.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from daemons.client import FireClient
from tests import netns
from tests.cluster import ETC, PROGRAMS, epoch_of, host_command, prepare_layout, read_events
from tests.waiting import wait_for

LAYOUTS = {
    "two-hosts": {"h1": ["gateway_a", "leader_b", "worker_d"], "h2": ["worker_c", "leader_e", "worker_f"]},
    "three-hosts": {"h1": ["gateway_a", "worker_c"], "h2": ["leader_b", "worker_d"], "h3": ["leader_e", "worker_f"]},
}
WATCHES = [("gateway_a", "leader_b"), ("gateway_a", "leader_e"), ("leader_b", "worker_c"), ("leader_e", "worker_f"),
           ("leader_e", "worker_d")]  # (observer, neighbour)
SHIPPED_PORTS = {p: int(json.loads((ETC / f"{p}.json").read_text())["listen"].rsplit(":", 1)[1]) for p in PROGRAMS}
STOP_SECONDS = 60  # for one host's supervisorctl shutdown, which answers at once when it runs


class Deployment:
    def __init__(self, layout: str, home: Path, network: netns.Network, data_root: Path):
        self.layout = layout
        self.home = home
        self.network = network
        self.environment = {**os.environ, "FIRE_DATA_DIR": str(data_root)}
        self.host_of = {program: host for host, programs in LAYOUTS[layout].items() for program in programs}
        self.gateway = f"{network.addresses[self.host_of['gateway_a']]}:{SHIPPED_PORTS['gateway_a']}"
        self.others = [host for host in LAYOUTS[layout] if host != self.host_of["gateway_a"]]
        self.routed_at_start: dict[str, str] = {}

    def across(self, *hosts: str) -> list[tuple[str, str]]:
        """The watches that cross from or into `hosts`."""
        return [(o, n) for o, n in WATCHES if (self.host_of[o] in hosts) != (self.host_of[n] in hosts)]

    def between(self, a: str, b: str) -> list[tuple[str, str]]:
        return [(o, n) for o, n in WATCHES if {self.host_of[o], self.host_of[n]} == {a, b}]

    @property
    def client_tls(self) -> Path:
        """The client's certificates (the deployment runs mutual TLS, as layouts do by default)."""
        return self.home / "tls" / "client"

    def client(self, deadline_seconds: float) -> FireClient:
        return FireClient(self.gateway, deadline_seconds=deadline_seconds, tls_dir=self.client_tls)

    def served_by(self) -> dict[str, str]:
        """partition -> the daemon that served it, as the gateway routes a query now."""
        with self.client(60) as client:
            return {status.partition: status.served_by for status in client.aggregate().partitions}

    def wait_routed_as_at_start(self) -> None:
        """Waits until the gateway routes every partition to the copy it used with all hosts up: the
        restarted daemons are then reached on their query channels too, not only by their monitors
        (a channel still waiting out its reconnect backoff fails a call at once, and with a second
        fault right after, a partition has no copy left)."""
        wait_for(lambda: self.served_by() == self.routed_at_start, 60, "the gateway to route as with all hosts up")

    def bin(self, command: str, host: str) -> None:
        done = self.network.run(host, host_command(command, self.layout, host, self.home),
                                capture_output=True, timeout=300, env=self.environment)
        assert done.returncode == 0, done.stderr

    def stop_supervisords(self) -> None:
        """Every host's supervisord told to shut down, so that none starts a program again while the
        namespaces' processes are killed; a host whose supervisord is gone already (killed) is skipped."""
        for host in LAYOUTS[self.layout]:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self.network.run(host, host_command("stop", self.layout, host, self.home),
                                 capture_output=True, timeout=STOP_SECONDS, env=self.environment)

    def events(self, program: str, event: str, since: float) -> list[dict[str, Any]]:
        """`program`'s events named `event` since `since`, from its host's log folder."""
        log = self.home / "state" / self.layout / self.host_of[program] / "logs" / f"{program}.log"
        return [e for e in read_events(log) if e.get("event") == event and epoch_of(e) >= since]

    def transitions(self, observer: str, neighbor: str, since: float) -> list[dict[str, Any]]:
        return [e for e in self.events(observer, "health_transition", since) if e["neighbor"] == neighbor]

    def path(self, observer: str, neighbor: str, since: float) -> list[str]:
        return [e["to"] for e in self.transitions(observer, neighbor, since)]


@contextlib.contextmanager
def deployed(layout: str, home: Path, data_root: Path, cache_dir: Path) -> Iterator[Deployment]:
    """`layout` running in namespaces, its state in `home` and its parsed partitions in `cache_dir`,
    yielded once every host serves and the gateway counts every row. Afterwards, also on failure, every
    supervisord is stopped and every namespace with its processes torn down."""
    network = netns.Network(list(LAYOUTS[layout]))
    running = Deployment(layout, home, network, data_root)
    prepare_layout(home, layout, LAYOUTS[layout], network.addresses, SHIPPED_PORTS, cache_dir)
    try:
        network.create()
        for host in [*running.others, running.host_of["gateway_a"]]:  # the gateway's host last: it waits for every partition
            running.bin("start", host)
        running.routed_at_start = running.served_by()
        yield running
    finally:
        try:
            running.stop_supervisords()
        finally:
            network.destroy()
