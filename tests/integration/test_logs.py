"""Logs the supervisord way (issue 10, item 6), on a real cluster: each daemon's events on its
stdout, which `supervisorctl tail` shows, and its event log rotated by size by the daemon itself,
with `bin/healthlog --follow` losing nothing across the rotations."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from daemons.client import FireClient
from tests.cluster import REPO, Cluster, epoch_of, read_events, start_cluster
from tests.hosts import WATCHES
from tests.waiting import wait_for

GATEWAY_LOG_BYTES = 8192  # a few dozen lines: the queries below rotate it many times
BACKUPS = 50  # enough to keep every line the test writes, to compare with what healthlog showed


@pytest.fixture(scope="module")
def logs_cluster(tmp_path_factory, data_root, cache_dir) -> Iterator[Cluster]:
    def small_gateway_log(program: str, document: dict) -> None:
        if program == "gateway_a":
            document["log_rotation"] = {"max_bytes": GATEWAY_LOG_BYTES, "backups": BACKUPS}

    running = start_cluster(tmp_path_factory.mktemp("logs-cluster"), data_root, cache_dir, edit=small_gateway_log)
    yield running
    running.stop()


def test_supervisorctl_tail_shows_a_daemons_events(logs_cluster):
    wait_for(lambda: any(e["to"] == "healthy" for e in logs_cluster.events("gateway_a", "health_transition")), 30,
             "the gateway to see its leaders")
    tail = logs_cluster.ctl("tail", "worker_c", check=True).stdout
    assert '"event": "daemon_started"' in tail and '"daemon": "worker_c"' in tail
    # The monitor process's lines too: it writes on its daemon's stdout.
    assert '"event": "health_transition"' in logs_cluster.ctl("tail", "gateway_a", check=True).stdout


def _query_until_rotated(cluster: Cluster, rotations: int) -> None:
    logs = cluster.home / "logs"
    with FireClient(cluster.gateway, deadline_seconds=60) as client:
        while not (logs / f"gateway_a.log.{rotations}").exists():
            client.count()  # a query_finished line each


def test_the_gateway_rotates_its_log_by_size_and_healthlog_follow_loses_nothing(logs_cluster):
    logs = logs_cluster.home / "logs"
    since = datetime.now(UTC).isoformat()
    follower = subprocess.Popen([str(REPO / "bin" / "healthlog"), "--follow", "--json", "--log-dir", str(logs),
                                 "--daemon", "gateway_a", "--neighbor", "leader_b", "--since", since],
                                stdout=subprocess.PIPE, text=True)
    received: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [received.put(line) for line in follower.stdout or ()], daemon=True).start()
    seen: list[str] = []

    def follower_shows(count: int) -> bool:
        while not received.empty():
            seen.append(json.loads(received.get())["to"])
        return len(seen) >= count

    try:
        for cycle in range(2):
            logs_cluster.ctl("stop", "leader_b", check=True)
            wait_for(lambda c=cycle: follower_shows(3 * c + 2), 30, "healthlog to show leader_b's outage")
            _query_until_rotated(logs_cluster, 3 * cycle + 2)  # the log renamed away under the follower
            logs_cluster.ctl("start", "leader_b", check=True)
            wait_for(lambda c=cycle: follower_shows(3 * c + 3), 30, "healthlog to show leader_b back")
            _query_until_rotated(logs_cluster, 3 * cycle + 3)
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    files = sorted(logs.glob("gateway_a.log*"), key=lambda path: int(path.suffix[1:]) if path.suffix[1:].isdigit()
                   else 0, reverse=True)
    assert len(files) >= 7 and all(path.stat().st_size <= GATEWAY_LOG_BYTES + 1024 for path in files)
    written = [e["to"] for path in files for e in read_events(path)
               if e.get("event") == "health_transition" and e["neighbor"] == "leader_b"
               and epoch_of(e) >= epoch_of({"timestamp": since})]
    assert written == seen == ["degraded", "unavailable", "healthy"] * 2


def test_healthlog_timeline_draws_every_watched_link_from_the_rotated_logs_and_through_the_gateway(logs_cluster):
    """After the test above: the gateway's transitions are spread over its rotated files, which a
    log folder has and the gateway's stream (each daemon's current file) has not."""
    def timeline(*source: str) -> str:
        drawn = subprocess.run([str(REPO / "bin" / "healthlog"), "timeline", "--since", "10m", *source],
                               capture_output=True, text=True, timeout=60)
        assert drawn.returncode == 0, drawn.stderr
        return drawn.stdout

    def rows(text: str) -> set[str]:
        return {line.split("  ")[0] for line in text.splitlines() if " -> " in line.split("  ")[0]}

    def transitions(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if line.startswith(" ") and " -> " in line]

    local = timeline("--log-dir", str(logs_cluster.home / "logs"))
    assert rows(local) == {f"{o} -> {n}" for o, n in WATCHES}
    gateway_rows = local.split("gateway_a -> leader_b", 1)[1].split("gateway_a -> leader_e", 1)[0]
    assert gateway_rows.count("healthy -> degraded") >= 2 and "░" in gateway_rows  # the two outages above
    remote = timeline("--gateway", logs_cluster.gateway)
    assert rows(remote) <= rows(local) and set(transitions(remote)) <= set(transitions(local))
    assert rows(remote) >= {f"{o} -> {n}" for o, n in WATCHES if o != "gateway_a"}  # logs not rotated
