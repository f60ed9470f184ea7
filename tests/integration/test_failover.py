"""Replica failover under real supervisord: one failure anywhere below the gateway costs the client
nothing (every row exactly once, complete); two can make it partial; a gateway restart is resumed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import grpc
import pytest

from daemons.client import FireClient
from daemons.rpc import airquality_pb2 as pb
from daemons.rpc import airquality_pb2_grpc as pb_grpc
from tests.cluster import REPO, start_cluster
from tests.oracle import full_scan
from tests.waiting import wait_for

# The partitions whose stream a daemon's death interrupts when every copy is healthy.
STREAMED_BY = {"leader_b": {"aug10-17", "aug18-26"}, "worker_c": {"aug18-26"}, "worker_d": {"aug27-sep04"},
               "leader_e": {"sep05-13", "sep14-24", "aug27-sep04"}, "worker_f": {"sep14-24"}}


@pytest.fixture(scope="module")
def failover_cluster(tmp_path_factory, data_root, cache_dir):
    running = start_cluster(tmp_path_factory.mktemp("failover"), data_root, cache_dir)
    yield running
    running.stop()


def all_healthy(cluster) -> bool:
    gateway = pb_grpc.NodeStub(grpc.insecure_channel(cluster.gateway))
    try:
        view = gateway.GetHealthStatus(pb.HealthStatusRequest(cluster=True), timeout=5)
    except grpc.RpcError:
        return False
    return len(view.neighbors) == 5 and all(n.status == "healthy" for n in view.neighbors) \
        and not view.unreachable_observers


PRIMARY = {"aug10-17": "leader_b", "aug18-26": "worker_c", "aug27-sep04": "worker_d", "sep05-13": "leader_e",
           "sep14-24": "worker_f"}


@pytest.fixture
def client(failover_cluster):
    """A client, once every daemon is healthy again and the gateway routes to the primaries."""
    wait_for(lambda: all_healthy(failover_cluster), 60, "every daemon to be healthy before the next fault")
    with FireClient(failover_cluster.gateway, deadline_seconds=120) as connected:
        def routed_to_primaries() -> bool:
            answer = connected.aggregate(group_by=())
            return {s.partition: s.served_by for s in answer.partitions} == PRIMARY
        wait_for(routed_to_primaries, 30, "the gateway to route every partition to its primary again", 0.05)
        yield connected


def failovers_of(cluster, request_id: str) -> list[dict]:
    return [e for e in cluster.events("gateway_a", "partition_failover") if e["request_id"] == request_id]


@pytest.mark.parametrize("target", list(STREAMED_BY))
def test_a_daemon_killed_before_a_full_scan_costs_nothing(failover_cluster, client, expected, target):
    os.kill(failover_cluster.pid(target), signal.SIGKILL)
    checksum, completeness = full_scan(client)
    assert checksum == expected
    assert completeness.complete and completeness.total_results == expected[0]
    counted = subprocess.run([str(REPO / "bin" / "query"), "--host", failover_cluster.gateway, "--count"],
                             capture_output=True, text=True, timeout=60)
    assert (counted.returncode, counted.stdout.strip()) == (0, str(expected[0]))


@pytest.mark.parametrize("target", list(STREAMED_BY))
def test_a_daemon_killed_in_the_middle_of_a_full_scan_costs_nothing(failover_cluster, client, expected, target):
    killed = []

    def kill_once_streaming(batch) -> None:
        if not killed and batch.partition in STREAMED_BY[target]:
            killed.append(time.time())
            os.kill(failover_cluster.pid(target), signal.SIGKILL)

    request_id = f"kill-{target}-mid-stream"
    checksum, completeness = full_scan(client, kill_once_streaming, request_id)
    assert killed, f"{target} never streamed"
    assert checksum == expected
    assert completeness.complete and completeness.total_results == expected[0]
    moved = failovers_of(failover_cluster, request_id)
    assert moved and all(e["reason"].startswith(f"{target}:") and e["from"] != e["to"] for e in moved)


def test_a_worker_hung_in_the_middle_of_a_stream_is_replaced_after_the_deadline(failover_cluster, client, expected):
    stopped = []

    def hang_once_streaming(batch) -> None:
        if not stopped and batch.partition == "sep14-24":
            stopped.append(time.time())
            os.kill(failover_cluster.pid("worker_f"), signal.SIGSTOP)

    try:
        checksum, completeness = full_scan(client, hang_once_streaming, "hang-worker_f")
    finally:
        if stopped:
            os.kill(failover_cluster.pid("worker_f"), signal.SIGCONT)
    assert stopped
    assert checksum == expected and completeness.complete
    (moved,) = failovers_of(failover_cluster, "hang-worker_f")
    assert (moved["partition"], moved["from"], moved["to"]) == ("sep14-24", "worker_f", "worker_c")
    assert moved["skip_rows"] > 0


def test_two_failures_give_a_partial_answer_naming_what_is_missing(failover_cluster, client, expected):
    for leader in ("leader_b", "leader_e"):
        failover_cluster.ctl("stop", leader, check=True)
    try:
        counted = subprocess.run([str(REPO / "bin" / "query"), "--host", failover_cluster.gateway, "--count"],
                                 capture_output=True, text=True, timeout=60)
        (rows, _), completeness = full_scan(client)
    finally:
        for leader in ("leader_b", "leader_e"):
            failover_cluster.ctl("start", leader, check=True)
    assert counted.returncode == 3
    assert not completeness.complete and rows == 0
    assert sorted(completeness.missing_partitions) == sorted(STREAMED_BY["leader_b"] | STREAMED_BY["leader_e"])
    for partition in completeness.missing_partitions:
        assert partition in counted.stderr


def test_the_client_resumes_when_the_gateway_dies_mid_stream(failover_cluster, client, expected):
    killed = []

    def kill_gateway_once(batch) -> None:
        if not killed and batch.offset > 5000:
            killed.append(failover_cluster.pid("gateway_a"))
            os.kill(killed[0], signal.SIGKILL)

    checksum, completeness = full_scan(client, kill_gateway_once)
    assert killed and failover_cluster.pid("gateway_a") != killed[0]
    assert checksum == expected
    assert completeness.complete and completeness.total_results == expected[0]
