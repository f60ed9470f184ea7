"""Several hosts' supervisords from one checkout (`bin/start --layout NAME --host HOST`).

The hosts here are loopback addresses, 127.0.0.1 and 127.0.0.2 (Linux answers the whole of
127/8), so each host's daemons bind an address of their own at the same ports, as on separate
machines. Cut links need network namespaces; this module covers starting, placement, a lost
host and stopping.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from daemons.client import FireClient
from daemons.deploy.cli import venv_tool
from tests.cluster import PROGRAMS, free_ports, host_command, prepare_layout, read_events
from tests.waiting import wait_for

HOSTS = {"h1": "127.0.0.1", "h2": "127.0.0.2"}
PLACES = {"h1": ["gateway_a", "leader_b", "worker_d"], "h2": ["worker_c", "leader_e", "worker_f"]}


class Hosts:
    def __init__(self, home: Path, data_root: Path):
        self.home = home
        self.etc = home / "etc"
        self.state = home / "state"
        self.environment = {**os.environ, "FIRE_DATA_DIR": str(data_root)}

    def run(self, command: str, host: str) -> subprocess.CompletedProcess[str]:
        """bin/start or bin/stop for `host`, on this module's configs and state folder."""
        return subprocess.run(host_command(command, "two-hosts", host, self.home), capture_output=True, text=True,
                              timeout=300, env=self.environment)

    def folder(self, host: str) -> Path:
        return self.state / "two-hosts" / host

    def processes(self, host: str) -> list[psutil.Process]:
        """The host's supervisord and everything under it."""
        pid_file = self.folder(host) / "run" / "supervisord.pid"
        if not pid_file.exists():
            return []
        try:
            supervisor = psutil.Process(int(pid_file.read_text()))
            return [supervisor, *supervisor.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def events(self, host: str, program: str, event: str) -> list[dict]:
        return [e for e in read_events(self.folder(host) / "logs" / f"{program}.log") if e.get("event") == event]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, data_root, cache_dir) -> Iterator[Hosts]:
    home = tmp_path_factory.mktemp("hosts")
    prepare_layout(home, "two-hosts", PLACES, HOSTS, dict(zip(PROGRAMS, free_ports(len(PROGRAMS)))), cache_dir)
    running = Hosts(home, data_root)
    try:
        started = running.run("start", "h2")  # no gateway: ready when its own programs serve
        assert started.returncode == 0, started.stderr
        started = running.run("start", "h1")  # the gateway's: ready when every partition answers
        assert started.returncode == 0, started.stderr
        yield running
    finally:
        for host in HOSTS:
            running.run("stop", host)
            for process in running.processes(host):
                with contextlib.suppress(psutil.NoSuchProcess):  # it ended meanwhile, as it was told to
                    process.kill()


def _count(hosts: Hosts, gateway: str) -> tuple[int, bool, list[str]]:
    with FireClient(gateway, deadline_seconds=120, tls_dir=hosts.home / "tls" / "client") as client:
        rows, answer = client.count()
    return rows, answer.complete, list(answer.missing_partitions)


def test_each_host_runs_its_own_programs_apart(hosts):
    for host, programs in (("h1", {"gateway_a", "leader_b", "worker_d"}), ("h2", {"worker_c", "leader_e", "worker_f"})):
        conf = hosts.folder(host) / "etc" / "supervisord.conf"
        status = subprocess.run([venv_tool("supervisorctl"), "-c", str(conf), "status"],
                                capture_output=True, text=True, timeout=60)
        assert {line.split()[0] for line in status.stdout.splitlines()} == programs
        assert all(" RUNNING " in line for line in status.stdout.splitlines())
        for program in programs:
            assert hosts.events(host, program, "daemon_started"), f"{program} logs in {host}'s folder"
            listen = json.loads((hosts.folder(host) / "etc" / f"{program}.json").read_text())["listen"]
            assert listen.startswith(f"{HOSTS[host]}:")
    assert (hosts.folder("h1") / "run" / "supervisor.sock").exists() and (hosts.folder("h2") / "run" / "supervisor.sock").exists()


def test_the_placement_keeps_every_partition_on_the_gateways_host_too(hosts):
    """In two-hosts, losing h2 leaves leader_b and worker_d: between them they hold every partition."""
    held = {program: [spec["name"] for spec in json.loads((hosts.folder("h1") / "etc" / f"{program}.json")
                                                           .read_text()).get("data", {}).get("partitions", [])]
            for program in ("leader_b", "worker_d")}
    assert sorted(held["leader_b"] + held["worker_d"]) == ["aug10-17", "aug18-26", "aug27-sep04", "sep05-13", "sep14-24"]


def test_the_gateway_checks_its_placement_against_the_layout(hosts):
    (checked,) = hosts.events("h1", "gateway_a", "placement_checked")[-1:]
    assert (checked["layout"], checked["single_failure_safe"], checked["single_host_safe"]) == ("two-hosts", True, True)
    assert hosts.events("h1", "gateway_a", "placement_unsafe") == []


def test_a_lost_host_leaves_the_answers_complete(hosts):
    gateway = f"{HOSTS['h1']}:{json.loads((hosts.etc / 'gateway_a.json').read_text())['listen'].rsplit(':', 1)[1]}"
    rows, complete, _ = _count(hosts, gateway)
    assert complete
    for process in hosts.processes("h2"):  # the whole host at once: its supervisord and all it runs
        process.send_signal(signal.SIGKILL)
    wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in hosts.processes("h2")),
             10, "h2's processes to end")
    assert _count(hosts, gateway) == (rows, True, [])
